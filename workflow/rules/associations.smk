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
