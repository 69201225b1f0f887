# master_background: one job per association with background members; its outputs are
# the background-subtracted science exposures (kept in memory by Spec3Pipeline).
for job in JOBS.jobs_of("master_background"):

    rule:
        name:
            support.rule_name("master_background", job.key)
        input:
            support.job_inputs(job, config),
        output:
            job.outputs,
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log("master_background", job.key),
        benchmark:
            LAYOUT.benchmark("master_background", job.key)
        resources:
            mem_mb=mem_mb("master_background"),
            runtime=runtime("master_background"),
        threads: 1
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
