# Planning (parse time): associations + cheap header reads -> every job of the program.
import os
import re
import sys

from spec3flow import workflow_support as support

PYTHON = sys.executable
support.configure_crds(config)
support.version_results_dir(config)
RESULTS = config["results_dir"].rstrip("/")
support.configure_resources(config)
PLAN = support.load_plan(config)
JOBS = support.make_dag(PLAN, config)
LAYOUT = JOBS.layout


# A stem not ending in _<index> (those are per-exposure spectra of unresampled sources).
RESAMPLED_STEM = r"jw\d{5}-[^/]*[^/\d](?<!_\d)(?<!_\d\d)"


wildcard_constraints:
    # Level 3 product stems have a dash after the program number (jw01234-o001_...);
    # exposure names (jw01234001001_...) never do.
    stem=r"jw\d{5}-[^/]+",
    asn=r"[^/]+",


# Every function below is wrapped in support.rule_callable: Snakemake then reads its
# signature once instead of at each of the ~10 evaluations per job.


def step_inputs(step):
    """Input function of a per-source step rule: data, association and raw members."""

    @support.rule_callable
    def inputs(wildcards):
        job = JOBS.jobs.get((step, wildcards.stem))
        if job is None:  # another rule makes this file (or nothing does: the path says why)
            return support.not_planned(step, wildcards.stem, config)
        return support.job_inputs(job, config)

    return inputs


def step_args(step, key=None):
    """The spec3flow.execute command-line arguments of a job, shell-quoted."""

    @support.rule_callable
    def args(wildcards):
        return support.execute_args(JOBS.job(step, key or wildcards.stem), config)

    return args


def step_key(step):
    """What a job's results depend on beyond its files (see support.rerun_key)."""

    @support.rule_callable
    def key(wildcards):
        return support.rerun_key(JOBS.job(step, wildcards.stem), config)

    return key


def mem_mb(step):
    return support.rule_callable(
        lambda wildcards, input, attempt: support.mem_mb(step, support.input_size_mb(input), attempt))


def runtime(step):
    return support.rule_callable(
        lambda wildcards, input, attempt: support.runtime_min(step, support.input_size_mb(input), attempt))


SOURCE_GROUPS = support.SourceGroups(PLAN, config["cluster"]["sources_per_group"])
support.remember_requested_executor()


def source_group(key=None):
    """``group:`` of a per-source rule: the jobs of cluster.sources_per_group sources share
    one id; ``--group-components spec3flow_sources=...`` (slurm profile) makes each id one
    cluster job. None (no group) when sources_per_group is 0 or the executor is local."""
    if SOURCE_GROUPS.per_group <= 0:
        return None

    @support.rule_callable
    def group(wildcards):
        if not support.cluster_execution():  # a local (dry) run: Snakemake ignores groups
            return None
        gid = SOURCE_GROUPS(key or wildcards.stem)
        if gid:  # lets --group-components spec3flow_sources=N apply to every bundle id
            workflow.parent_groupids[gid] = support.SOURCE_GROUP
        return gid

    return group


# The warm server starts as soon as Snakemake executes (before the DAG is built), or at onstart.
support.start_warm_interpreter_early(config, workflow)


onstart:
    support.start_warm_interpreter(config, workflow)


onsuccess:
    support.stop_warm_interpreter(config)


onerror:
    support.stop_warm_interpreter(config)
