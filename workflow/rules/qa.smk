# Quick-look PNGs, qa.plots_per_job final products to a job (one rule per batch: its
# outputs are the batch's concrete PNGs). A job per product was a quarter of a large
# program's jobs; a batch also pays the matplotlib import once.
for batch in JOBS.plot_batches(config["qa"]["plots_per_job"]) if config["qa"]["plots"] else []:

    rule:
        name:
            batch.rule
        input:
            batch.products,
        output:
            [report(png, caption=f"../report/{suffix}.rst", category="Quick-look plots",
                    subcategory=suffix) for png, suffix in batch.suffixed_pngs()],
        params:
            pairs=batch.plot_args(),
        log:
            LAYOUT.log("plot", batch.rule),
        benchmark:
            LAYOUT.benchmark("plot", batch.rule)
        resources:
            mem_mb=1000,
            runtime=5 + len(batch.pngs) // 10,
        shell:
            "{PYTHON} -m spec3flow.qa plot {params.pairs} > {log:q} 2>&1"


rule summary:
    """Program summary table: one row per final product."""
    input:
        JOBS.final,
    output:
        report(f"{RESULTS}/summary.csv", caption="../report/summary.rst", category="Summary"),
    log:
        f"{RESULTS}/logs/summary/summary.log",
    threads: workflow.cores
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    shell:
        "{PYTHON} -m spec3flow.qa summary --jobs {threads} {output:q} {input:q} > {log:q} 2>&1"


rule provenance_manifest:
    """Program provenance: per final product, the jobs, parameters, references and software behind it."""
    input:
        JOBS.final,
    output:
        report(f"{RESULTS}/provenance.json", caption="../report/provenance.rst", category="Summary"),
    log:
        f"{RESULTS}/logs/provenance_manifest/provenance_manifest.log",
    localrule: True
    shell:
        "{PYTHON} -m spec3flow.provenance {output:q} {input:q} > {log:q} 2>&1"
