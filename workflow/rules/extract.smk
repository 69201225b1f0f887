rule extract_1d:
    """1D spectrum of a source (_x1d) from its _s2d, or from its exposures when not resampled."""
    input:
        step_inputs("extract_1d"),
    output:
        LAYOUT.product("{stem}_x1d.fits"),
    wildcard_constraints:
        stem=RESAMPLED_STEM,
    params:
        args=step_args("extract_1d"),
        key=step_key("extract_1d"),
    log:
        LAYOUT.log("extract_1d", "{stem}"),
    benchmark:
        LAYOUT.benchmark("extract_1d", "{stem}")
    resources:
        mem_mb=mem_mb("extract_1d"),
        runtime=runtime("extract_1d"),
    threads: 1
    group:
        source_group()
    shell:
        "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"


# Without resampling, extract_1d writes one x1d per exposure (<stem>_<i>_x1d.fits), so
# sources are grouped by exposure count: one rule per count, constrained to its stems.
for n_exposures, stems in JOBS.unresampled_extract_groups().items():

    rule:
        name:
            f"extract_1d_{n_exposures}_exposures"
        input:
            step_inputs("extract_1d"),
        output:
            [LAYOUT.product(f"{{stem}}_{i}_x1d.fits") for i in range(n_exposures)],
        params:
            args=step_args("extract_1d"),
            key=step_key("extract_1d"),
        log:
            LAYOUT.log("extract_1d", "{stem}"),
        benchmark:
            LAYOUT.benchmark("extract_1d", "{stem}")
        wildcard_constraints:
            stem="|".join(re.escape(stem) for stem in stems),
        resources:
            mem_mb=mem_mb("extract_1d"),
            runtime=runtime("extract_1d"),
        threads: 1
        group:
            source_group()
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"


rule combine_1d:
    """Combined spectrum (_c1d) of a source's per-exposure spectra (when not resampled)."""
    input:
        step_inputs("combine_1d"),
    output:
        LAYOUT.product("{stem}_c1d.fits"),
    params:
        args=step_args("combine_1d"),
        key=step_key("combine_1d"),
    log:
        LAYOUT.log("combine_1d", "{stem}"),
    benchmark:
        LAYOUT.benchmark("combine_1d", "{stem}")
    resources:
        mem_mb=mem_mb("combine_1d"),
        runtime=runtime("combine_1d"),
    threads: 1
    group:
        source_group()
    shell:
        "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
