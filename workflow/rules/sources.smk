# exp_to_source: the fan-out. One job per multi-source association writes every
# source's _cal.fits (MultiExposureModel), named as Spec3Pipeline names them.
for job in JOBS.jobs_of("exp_to_source"):

    rule:
        name:
            support.rule_name("exp_to_source", job.key)
        input:
            support.job_inputs(job, config),
        output:
            job.outputs,
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log("exp_to_source", job.key),
        benchmark:
            LAYOUT.benchmark("exp_to_source", job.key)
        resources:
            mem_mb=mem_mb("exp_to_source"),
            runtime=runtime("exp_to_source"),
        threads: 1
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
