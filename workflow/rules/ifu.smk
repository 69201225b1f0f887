# IFU spectroscopy (NRS_IFU, MIR_MRS). outlier_detection (mode ifu) and the optional
# per-exposure steps are declared with the other single-source products (outliers.smk).
# Then cube_build writes the cubes (<product>_<band>_s3d, names from spec3flow.plan.ifu_cubes):
# default band cubes one job per band (spec3flow.plan.cube_jobs), else one job for all;
# a cube of several exposures first gets one cube_build_partial job per exposure, whose
# temporary partial sums its cube_build job adds up (spec3flow.cube_partials);
# extract_1d extracts each cube (or the cube container), and for MIR_MRS spectral_leak
# writes the final x1d files from all spectra (extract_1d's spectra then stay
# intermediates, as Spec3Pipeline keeps them in memory).
for job in JOBS.ifu_jobs():

    rule:
        name:
            support.rule_name(job.step, job.key)
        input:
            support.job_inputs(job, config),
        output:
            support.ifu_outputs(job),
        params:
            args=support.execute_args(job, config),
            key=support.rerun_key(job, config),
        log:
            LAYOUT.log(job.step, job.key),
        benchmark:
            LAYOUT.benchmark(job.step, job.key)
        resources:
            mem_mb=support.cube_build_mem(job) if job.jwst_step == "cube_build" else mem_mb(job.step),
            runtime=support.cube_build_runtime(job) if job.jwst_step == "cube_build" else runtime(job.step),
        threads: 1
        shell:
            "{PYTHON} -m spec3flow.execute {params.args} > {log:q} 2>&1"
