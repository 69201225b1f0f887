# One job for both plots of a resampled slit source (one job fewer per source: Snakemake
# costs ~1 ms to plan and ~30 ms to run each job). Sources without an s2d, and every
# other product, have no s2d input here and fall through to plot_product.
ruleorder: plot_source > plot_product


rule plot_source:
    """Quick-look PNGs of a resampled source: its 2D spectrum and its 1D spectrum."""
    input:
        s2d=LAYOUT.product("{stem}_s2d.fits"),
        x1d=LAYOUT.product("{stem}_x1d.fits"),
    output:
        s2d=report(LAYOUT.plot("{stem}_s2d"), caption="../report/s2d.rst",
                   category="Quick-look plots", subcategory="s2d"),
        x1d=report(LAYOUT.plot("{stem}_x1d"), caption="../report/x1d.rst",
                   category="Quick-look plots", subcategory="x1d"),
    log:
        LAYOUT.log("plot_source", "{stem}"),
    wildcard_constraints:
        stem=RESAMPLED_STEM,
    resources:
        mem_mb=1000,
        runtime=5,
    group:
        source_group()
    shell:
        "{PYTHON} -m spec3flow.qa plot {input.s2d:q} {output.s2d:q} {input.x1d:q} {output.x1d:q}"
        " > {log:q} 2>&1"


rule plot_product:
    """Quick-look PNG of a final product (spectrum with error band, or 2D image)."""
    input:
        LAYOUT.product("{name}.fits"),
    output:
        report(
            LAYOUT.plot("{name}"),
            caption="../report/x1d.rst",
            category="Quick-look plots",
            subcategory=lambda wildcards: wildcards.name.rsplit("_", 1)[-1],
        ),
    log:
        LAYOUT.log("plot_product", "{name}"),
    resources:
        mem_mb=1000,
        runtime=5,
    group:
        source_group()
    shell:
        "{PYTHON} -m spec3flow.qa plot {input:q} {output:q} > {log:q} 2>&1"


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
