rule associations:
    """Level 3 associations: MAST's *_asn.json, or a pool of the cal headers through jwst's generator."""
    input:
        support.association_inputs(config),
    output:
        sorted({LAYOUT.asn(p) for p in PLAN.products}),
    params:
        modes=config["modes"],
        expect=sorted({os.path.basename(LAYOUT.asn(p)) for p in PLAN.products}),
        source=config["associations"]["source"],
        pool=f"--pool-csv {config['associations']['pool_csv']}" if config["associations"]["pool_csv"] else "",
    log:
        f"{RESULTS}/logs/associations/associations.log",
    benchmark:
        f"{RESULTS}/benchmarks/associations/associations.tsv"
    localrule: True
    shell:
        "{PYTHON} -m spec3flow.plan --input-dir {config[input_dir]:q} --outdir {RESULTS}/asn "
        "--modes {params.modes} --source {params.source} {params.pool} --expect {params.expect} "
        "> {log:q} 2>&1"


rule crds_step_parameters:
    """The CRDS step parameters (pars-spec3pipeline) of an association, resolved once for all its jobs."""
    input:
        f"{RESULTS}/asn/{{asn}}.json",
        support.crds_marker(config),
    output:
        f"{RESULTS}/asn/{{asn}}.pars.json",
    params:
        flag="" if config["crds"]["use_step_pars"] else "--no-step-pars",
    log:
        f"{RESULTS}/logs/crds_step_parameters/{{asn}}.log",
    wildcard_constraints:
        asn=r"[^/]+_asn",
    localrule: True
    shell:
        "{PYTHON} -m spec3flow.execute crds_step_pars --asn {input[0]:q} --outputs {output:q} "
        "{params.flag} > {log:q} 2>&1"
