"""What the Snakefile calls at parse time: plan loading, CRDS set-up, job arguments.

Kept out of the .smk files so the rules stay declarative and this logic is
unit-tested like any other module.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from pathlib import Path

from spec3flow.dag import Dag, StepJob
from spec3flow.plan import Plan, PlanError, load_or_build_plan

log = logging.getLogger("spec3flow.workflow")

#: Memory model per step: fixed MB + MB per MB of input (files are read, copied, resampled).
MEMORY_MODEL = {
    "assign_mtwcs": (1200, 3.0),
    "master_background": (1200, 6.0),
    "exp_to_source": (1200, 4.0),
    "outlier_detection": (1200, 10.0),
    "adaptive_trace_model": (1200, 6.0),
    "pixel_replace": (1200, 4.0),
    "resample_spec": (1200, 10.0),
    "extract_1d": (1200, 4.0),
    "combine_1d": (800, 2.0),
    "wfss_gather": (1200, 4.0),
}
#: Runtime model per step: fixed minutes + minutes per MB of input.
RUNTIME_MODEL = {step: (5, 0.05) for step in MEMORY_MODEL}


def fail(message: str):
    """Stop planning with one clear line (Snakemake prints the exception message)."""
    from snakemake.exceptions import WorkflowError

    raise WorkflowError(f"spec3flow: {message}")


def configure_crds(config: dict) -> None:
    """Set the CRDS environment every job inherits; users' own settings stay untouched
    unless the config asks for the local context or pins a context."""
    crds = config.get("crds", {})
    if crds.get("use_local_context"):
        from spec3flow.crds_local import crds_env

        os.environ.update(crds_env(Path(crds.get("local_path", "results/crds_cache")).resolve()))
    if crds.get("context"):
        os.environ["CRDS_CONTEXT"] = crds["context"]


def load_plan(config: dict) -> Plan:
    results = config["results_dir"].rstrip("/")
    asn_cfg = config.get("associations", {})
    try:
        plan = load_or_build_plan(config["input_dir"], f"{results}/.plan", config["modes"],
                                  asn_cfg.get("source", "auto"), asn_cfg.get("pool_csv"))
    except PlanError as exc:
        fail(str(exc))
    # Parse-time logging has no handler: say what was left out, one line per file.
    for name, reason in plan.skipped:
        print(f"spec3flow: skipping {name}: {reason}", file=sys.stderr)
    return plan


def make_dag(plan: Plan, config: dict) -> Dag:
    steps = config.get("steps") or {}
    try:
        if steps:
            validate_step_params(steps)
        return Dag(plan, config["results_dir"], steps)
    except ValueError as exc:
        fail(str(exc))


def validate_step_params(steps: dict) -> None:
    """Unknown step or parameter names fail at planning time, as strun would reject them."""
    from jwst.pipeline import Spec3Pipeline

    known_steps = set(Spec3Pipeline.step_defs)
    for step, params in steps.items():
        if step not in known_steps:
            raise ValueError(f"config steps.{step}: unknown calwebb_spec3 step "
                             f"(known: {', '.join(sorted(known_steps))})")
        spec = Spec3Pipeline.step_defs[step].load_spec_file()
        for name in params or {}:
            if name not in spec:
                raise ValueError(f"config steps.{step}.{name}: {Spec3Pipeline.step_defs[step].__name__} "
                                 f"has no parameter {name!r}")


def step_params_for(job: StepJob, config: dict) -> dict:
    """Only the parameters of the steps this job runs: a change re-runs just those jobs."""
    steps = config.get("steps") or {}
    return {s: steps[s] for s in [*job.run_before, job.step] if s in steps}


def execute_args(job: StepJob, config: dict) -> str:
    args = [job.step, "--asn", job.asn, "--outputs", *job.outputs]
    if job.inputs:
        args += ["--inputs", *job.inputs]
    if job.input_names:
        args += ["--input-names", *job.input_names]
    if job.output_stem:
        args += ["--output-stem", job.output_stem]
    params = step_params_for(job, config)
    if params:
        args += ["--params", json.dumps(params, sort_keys=True)]
    if job.run_before:
        args += ["--run-before", *job.run_before]
    if not config.get("crds", {}).get("use_step_pars", True):
        args.append("--no-step-pars")
    return shlex.join(args)


def association_inputs(config: dict) -> list[str]:
    """Files the associations rule reads (cal files, shipped asns or the pool CSV)."""
    input_dir = Path(config["input_dir"])
    files = sorted(str(p) for p in input_dir.glob("*_cal.fits"))
    files += sorted(str(p) for p in input_dir.glob("*_asn.json"))
    if config.get("associations", {}).get("pool_csv"):
        files.append(config["associations"]["pool_csv"])
    return files


def crds_marker(config: dict) -> list[str]:
    crds = config.get("crds", {})
    if crds.get("use_local_context"):
        return [f"{crds.get('local_path', 'results/crds_cache')}/spec3flow_crds.json"]
    return []


def rule_name(step: str, key: str) -> str:
    return f"{step}__" + re.sub(r"\W", "_", key)


def mem_mb(step: str, input_mb: float, attempt: int = 1) -> int:
    base, per_mb = MEMORY_MODEL.get(step, (1200, 6.0))
    return int((base + per_mb * input_mb) * attempt)


def runtime_min(step: str, input_mb: float, attempt: int = 1) -> int:
    base, per_mb = RUNTIME_MODEL.get(step, (5, 0.05))
    return int((base + per_mb * input_mb) * attempt)


# ------------------------------------------------------------- warm interpreter
def warm_socket_path(config: dict) -> Path:
    """A short, per-results-dir socket path (AF_UNIX paths are limited to ~100 bytes)."""
    import hashlib
    import tempfile

    key = hashlib.sha1(str(Path(config["results_dir"]).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"spec3flow-{key}.sock"


def start_warm_interpreter(config: dict, workflow) -> None:
    """onstart: a warm server for the local executor (cluster jobs run plain processes)."""
    from spec3flow import warm

    if not config.get("execution", {}).get("warm_interpreter", True):
        return
    if not workflow.local_exec or workflow.dryrun:
        return
    results = Path(config["results_dir"])
    socket_path = warm_socket_path(config)
    server = warm.start_background(socket_path, results / "logs" / "warm_interpreter.log",
                                   ledger=results / "benchmarks" / "warm_interpreter_jobs.jsonl")
    if server is not None:
        _WARM_SERVERS.append(server)
        os.environ[warm.SOCKET_ENV] = str(socket_path)
        log.info("warm interpreter ready at %s", socket_path)
    else:
        log.warning("warm interpreter did not start; jobs run as plain processes")


_WARM_SERVERS: list = []


def stop_warm_interpreter(config: dict) -> None:
    import subprocess

    from spec3flow import warm

    os.environ.pop(warm.SOCKET_ENV, None)
    warm.shutdown(warm_socket_path(config))
    while _WARM_SERVERS:
        server = _WARM_SERVERS.pop()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
