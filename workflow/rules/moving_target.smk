# assign_mtwcs: moving-target programs (TARGTYPE MOVING) get a moving_target WCS frame
# on every member before any other step, one job per association.
for job in JOBS.jobs_of("assign_mtwcs"):

    rule:
        name:
            support.rule_name("assign_mtwcs", job.key)
        input:
            support.job_inputs(job, config),
        output:
            job.outputs,
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log("assign_mtwcs", job.key),
        benchmark:
            LAYOUT.benchmark("assign_mtwcs", job.key)
        resources:
            mem_mb=mem_mb("assign_mtwcs"),
            runtime=runtime("assign_mtwcs"),
        threads: 1
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
