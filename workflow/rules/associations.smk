def association_inputs(wildcards):
    """What one association is made from: its members (and a shipped asn or pool CSV).
    Adding an exposure to one association reruns that association's jobs only."""
    product = PRODUCTS_BY_ASN[wildcards.asn]
    files = product.science + product.background
    shipped = os.path.join(config["input_dir"], f"{wildcards.asn}.json")
    if os.path.exists(shipped):
        files.append(shipped)
    if config["associations"]["pool_csv"]:
        files.append(config["associations"]["pool_csv"])
    return files


PRODUCTS_BY_ASN = {p.asn_name: p for p in PLAN.products}


rule association:
    """A Level 3 association: MAST's *_asn.json, or jwst's generator over a pool of the cal headers."""
    input:
        association_inputs,
    output:
        f"{RESULTS}/asn/{{asn}}.json",
    params:
        modes=config["modes"],
        source=config["associations"]["source"],
        pool=f"--pool-csv {config['associations']['pool_csv']}" if config["associations"]["pool_csv"] else "",
    log:
        f"{RESULTS}/logs/associations/{{asn}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/associations/{{asn}}.tsv"
    wildcard_constraints:
        asn=r"[^/]+_asn",
    localrule: True
    shell:
        "{PYTHON} -m spec3flow.plan --input-dir {config[input_dir]:q} --outdir {RESULTS}/asn "
        "--modes {params.modes} --source {params.source} {params.pool} --expect {wildcards.asn}.json "
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
