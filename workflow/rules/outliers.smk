# outlier_detection (mode spec), adaptive_trace_model and pixel_replace.
# Multi-source products: one job per source, one MultiExposureModel file in and out.
# Single-source products (MIRI LRS): one job per association, one file per exposure,
# so those jobs are declared per association with their exact file lists.
PER_SOURCE_OUTPUT = {
    "outlier_detection": LAYOUT.product("{stem}_crf.fits"),
    "adaptive_trace_model": LAYOUT.source_intermediate("{stem}", "adaptive_trace_model"),
    "pixel_replace": LAYOUT.source_intermediate("{stem}", "pixel_replace"),
}

for step, output_pattern in PER_SOURCE_OUTPUT.items():

    rule:
        name:
            step
        input:
            step_inputs(step),
        output:
            output_pattern,
        params:
            args=step_args(step),
            key=step_key(step),
        log:
            LAYOUT.log(step, "{stem}"),
        benchmark:
            LAYOUT.benchmark(step, "{stem}")
        resources:
            mem_mb=mem_mb(step),
            runtime=runtime(step),
        threads: 1
        group:
            source_group()
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"


for job in JOBS.per_exposure_jobs():

    rule:
        name:
            support.rule_name(job.step, job.key)
        input:
            support.job_inputs(job, config),
        output:
            job.outputs,
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log(job.step, job.key),
        benchmark:
            LAYOUT.benchmark(job.step, job.key)
        resources:
            mem_mb=mem_mb(job.step),
            runtime=runtime(job.step),
        threads: 1
        group:
            source_group(job.key)
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
