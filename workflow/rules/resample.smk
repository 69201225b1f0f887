rule resample_spec:
    """Combine a source's exposures into one rectified 2D spectrum (_s2d)."""
    input:
        step_inputs("resample_spec"),
    output:
        LAYOUT.product("{stem}_s2d.fits"),
    params:
        args=step_args("resample_spec"),
        key=step_key("resample_spec"),
    log:
        LAYOUT.log("resample_spec", "{stem}"),
    benchmark:
        LAYOUT.benchmark("resample_spec", "{stem}")
    resources:
        mem_mb=mem_mb("resample_spec"),
        runtime=runtime("resample_spec"),
    threads: 1
    group:
        source_group()
    shell:
        "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
