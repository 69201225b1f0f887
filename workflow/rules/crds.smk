import json

if config["crds"]["use_local_context"]:

    rule local_crds_context:
        """The project's synthetic offline CRDS context (tests and demo only)."""
        output:
            f"{config['crds']['local_path']}/spec3flow_crds.json",
        log:
            f"{RESULTS}/logs/local_crds_context/local_crds_context.log",
        localrule: True
        shell:
            "{PYTHON} -m spec3flow.crds_local --crds-path {config[crds][local_path]:q} > {log:q} 2>&1"


if config["crds"]["prefetch"]:

    rule crds_prefetch:
        """Resolve and download every CRDS reference and pars-* file the run needs, where the
        network is (a local job), before any step job; step jobs then run offline."""
        input:
            asn=sorted(support.prefetch_steps(JOBS)),
            members=sorted({str(m) for p in PLAN.products for m in p.science + p.background}),
            crds=support.crds_marker(config, prefetched=False),
        output:
            support.crds_manifest(config),
        params:
            steps=json.dumps(support.prefetch_steps(JOBS), sort_keys=True),
        log:
            f"{RESULTS}/logs/crds_prefetch/crds_prefetch.log",
        benchmark:
            f"{RESULTS}/benchmarks/crds_prefetch/crds_prefetch.tsv"
        localrule: True
        shell:
            "{PYTHON} -m spec3flow.crds_prefetch --output {output:q} --steps {params.steps:q} "
            "{input.asn:q} > {log:q} 2>&1"
