# Wide-field slitless (WFSS): calwebb_spec3 extracts and combines each source in memory
# and saves only two files per association. Here each source's extract_1d and
# combine_1d are jobs writing intermediates, and one job per association gathers
# them into <product>_x1d.fits and <product>_c1d.fits.
for step, suffix in (("extract_1d", "x1d"), ("combine_1d", "c1d")):

    rule:
        name:
            f"{step}_wfss_source"
        input:
            step_inputs(step),
        output:
            LAYOUT.source_intermediate("{stem}", suffix),
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


for job in JOBS.jobs_of("wfss_gather"):

    rule:
        name:
            support.rule_name("wfss_gather", job.key)
        input:
            support.job_inputs(job, config),
        output:
            job.outputs,
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log("wfss_gather", job.key),
        benchmark:
            LAYOUT.benchmark("wfss_gather", job.key)
        resources:
            mem_mb=mem_mb("wfss_gather"),
            runtime=runtime("wfss_gather"),
        threads: 1
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"


# NIRISS SOSS: extract_1d (an intermediate: the pipeline keeps it in memory), photom
# (saved as <product>_x1d.fits) and combine_1d (<product>_c1d.fits), one job each.
for job in JOBS.soss_jobs():

    rule:
        name:
            support.rule_name(f"{job.step}_soss", job.key)
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
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
