"""What the Snakefile calls at parse time: plan loading, CRDS set-up, job arguments.

Kept out of the .smk files so the rules stay declarative and this logic is
unit-tested like any other module.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shlex
import sys
import threading
from pathlib import Path

from spec3flow.dag import CUBE_PARTIAL_MIN_PIXELS, Dag, StepJob
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
    "photom": (1000, 3.0),
    "cube_build": (1200, 4.0),  # plus the cubes themselves: see cube_build_mem_mb
    "spectral_leak": (1000, 2.0),
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
    if crds.get("prefetch"):
        configure_offline_jobs()


def configure_offline_jobs() -> None:
    """crds.prefetch: every job runs offline (``CRDS_MODE=local``, ``CRDS_READONLY_CACHE=1``,
    no server) on the context the crds_prefetch job fetched for. The user's CRDS settings
    are kept in ``SPEC3FLOW_CRDS_ONLINE_ENV`` for that job. The context is pinned here,
    before any job: ``crds.context``, else ``CRDS_CONTEXT``, else what CRDS resolves now
    (for jwst the build context of the installed jwst; needs the server). Cluster jobs
    inherit all of it from the submitting process."""
    from spec3flow.crds_local import SERVERLESS_URL
    from spec3flow.crds_prefetch import CRDS_VARS, ONLINE_ENV

    if ONLINE_ENV in os.environ:  # a job re-reading the Snakefile: already set
        return
    online = {k: os.environ.get(k) for k in CRDS_VARS}
    if not os.environ.get("CRDS_CONTEXT"):
        try:
            from crds.core import heavy_client

            os.environ["CRDS_CONTEXT"] = heavy_client.get_context_name("jwst")
        except Exception as exc:  # crds raises many unrelated types when offline
            fail(f"crds.prefetch: cannot resolve the CRDS context ({exc}); set crds.context "
                 "(or CRDS_CONTEXT), or run where the CRDS server is reachable")
        print(f"spec3flow: crds.prefetch: jobs use CRDS context {os.environ['CRDS_CONTEXT']}",
              file=sys.stderr)
    os.environ[ONLINE_ENV] = json.dumps(online)
    os.environ.update({"CRDS_MODE": "local", "CRDS_READONLY_CACHE": "1",
                       "CRDS_SERVER_URL": SERVERLESS_URL})


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
        execution = config.get("execution", {})
        min_pixels = (execution.get("cube_build_partial_min_pixels", CUBE_PARTIAL_MIN_PIXELS)
                      if execution.get("cube_build_partials", True) else None)
        return Dag(plan, config["results_dir"], steps, cube_partial_min_pixels=min_pixels)
    except ValueError as exc:
        fail(str(exc))


#: mrs_imatch is accepted by the schema only to say this while planning.
MRS_IMATCH_REMOVED = (
    "config steps.mrs_imatch: the mrs_imatch step (MIRI MRS background matching, deprecated "
    "and skipped by default) was removed from jwst in 1.20 and calwebb_spec3 no longer has it; "
    "nothing replaces it: MIRI MRS background is subtracted by calwebb_spec2's bkg_subtract or "
    "by calwebb_spec3's master_background (associations with background members); remove "
    "steps.mrs_imatch from the config")


def validate_step_params(steps: dict) -> None:
    """Unknown step or parameter names fail at planning time, as strun would reject them."""
    from jwst.pipeline import Spec3Pipeline

    known_steps = set(Spec3Pipeline.step_defs)
    for step, params in steps.items():
        if step == "mrs_imatch":
            raise ValueError(MRS_IMATCH_REMOVED)
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
    params = {s: steps[s] for s in [*job.run_before, job.jwst_step] if s in steps}
    if job.params:  # the job's own selection (a one-band cube_build) on top of the config's
        params[job.jwst_step] = {**params.get(job.jwst_step, {}), **job.params}
    return params


def execute_args(job: StepJob, config: dict) -> str:
    args = [job.step, "--asn", job.asn, "--outputs", *job.outputs]
    if job.inputs:
        args += ["--inputs", *job.inputs]
    if job.input_names:
        args += ["--input-names", *job.input_names]
    if job.pars:
        args += ["--pars-file", job.pars]
    if job.output_stem:
        args += ["--output-stem", job.output_stem]
    params = step_params_for(job, config)
    if params:
        args += ["--params", json.dumps(params, sort_keys=True)]
    if job.run_before:
        args += ["--run-before", *job.run_before]
    if not config.get("crds", {}).get("use_step_pars", True):
        args.append("--no-step-pars")
    if job.step == "outlier_detection" and not config.get("execution", {}).get("median_filter_in_slabs", True):
        args.append("--whole-frame-median")
    return shlex.join(args)


def job_inputs(job: StepJob, config: dict) -> list[str]:
    """A job's declared inputs. Its association, CRDS parameters and CRDS files are
    declared only by the jobs that start from the association: every other job runs
    after one of those, and fewer inputs per job keep planning fast at 10k sources."""
    if job.inputs:
        return job.inputs + job.depends
    return job.depends + [job.asn] + ([job.pars] if job.pars else []) + crds_marker(config)


def not_planned(step: str, key: str, config: dict) -> list[str]:
    """Input of a generic per-source rule asked for a file the plan gives to another rule
    (an IFU x1d is extract_1d's per-association rule's, not the per-source one's): a path
    no rule makes, so Snakemake drops this candidate quietly (a raised KeyError would be
    printed as an InputFunctionException warning for every such file). Should nothing else
    make the file, Snakemake's "missing input" error names this path, which says why."""
    return [f"{config['results_dir'].rstrip('/')}/.plan/not-planned/{step}/{key}"]


def effective_crds_context(config: dict) -> str:
    """The CRDS context jobs will use, as far as planning can know it without a server."""
    crds = config.get("crds", {})
    if crds.get("context"):
        return crds["context"]
    return os.environ.get("CRDS_CONTEXT") or "server-default"


@functools.cache
def jwst_version() -> str:
    """Read once per process: importlib.metadata parses the package's METADATA on every
    call (1 ms, i.e. 30 s of a 10k-source dry run when asked per job)."""
    from importlib import metadata

    return metadata.version("jwst")


def version_results_dir(config: dict) -> None:
    """``results_versioned: true``: write into <results_dir>/jwst-<version>_<context>, so
    processings with different software or references live side by side."""
    if not config.get("results_versioned"):
        return
    context = effective_crds_context(config).replace(".pmap", "")
    label = f"jwst-{jwst_version()}_{context}"
    config["results_dir"] = f"{config['results_dir'].rstrip('/')}/{label}"


def rerun_key(job: StepJob, config: dict) -> str:
    """Rule params that make Snakemake rerun a job when what made it changes: its
    association product's content, the CRDS context, or the jwst version. (Its own step
    parameters are in its command line; input files are tracked by Snakemake.)"""
    return (f"product={job.product_digest} crds={effective_crds_context(config)} "
            f"jwst={jwst_version()}")


def crds_marker(config: dict, prefetched: bool = True) -> list[str]:
    """CRDS files every job waits for: the local context (demo/tests) and, with
    crds.prefetch, the manifest of the prefetched references."""
    crds = config.get("crds", {})
    files = []
    if crds.get("use_local_context"):
        files.append(f"{crds.get('local_path', 'results/crds_cache')}/spec3flow_crds.json")
    if prefetched and crds.get("prefetch"):
        files.append(crds_manifest(config))
    return files


def crds_manifest(config: dict) -> str:
    return f"{config['results_dir'].rstrip('/')}/crds_references.json"


def prefetch_steps(dag: Dag) -> dict[str, list[str]]:
    """Level 3 association -> the steps this run runs for it (what crds_prefetch resolves
    references for)."""
    by_pars = {dag.layout.pars(p): dag.layout.asn(p) for p in dag.plan.products}
    steps: dict[str, set[str]] = {asn: set() for asn in by_pars.values()}
    for job in dag.jobs.values():
        if job.pars in by_pars:
            steps[by_pars[job.pars]].add(job.step)
    return {asn: sorted(s) for asn, s in steps.items()}


#: cube_build memory per detector pixel feeding a cube (``cube_pixels``): about two
#: spaxels per pixel (measured 1.4-2.7 on the synthetic programs) at 56 bytes each while
#: building (four float64 accumulators and a uint32 DQ, then the output SCI/ERR/WMAP
#: float32 and DQ), plus ~90 bytes of point cloud per pixel (coordinates, flux, error, DQ).
CUBE_BYTES_PER_PIXEL = 200


def ifu_outputs(job: StepJob) -> list:
    """An IFU job's outputs; cube partial sums are temporary (deleted once summed)."""
    if job.step != "cube_build_partial":
        return job.outputs
    from snakemake.io import temp

    return [temp(path) for path in job.outputs]


def cube_build_mem_mb(input_mb: float, cube_pixels: int, attempt: int = 1) -> int:
    """``(1200 + 4 * input_MB + 200 B * cube_pixels / 1e6) * attempt``: the inputs are read
    once (models, WCS); the cubes and the point cloud grow with the detector pixels that
    feed them (``cube_pixels``, from the headers at planning, per band)."""
    base, per_mb = MEMORY_MODEL["cube_build"]
    return cap_mem((base + per_mb * input_mb + CUBE_BYTES_PER_PIXEL * cube_pixels / 1e6) * attempt)


def cube_build_runtime_min(input_mb: float, cube_pixels: int, attempt: int = 1) -> int:
    """``(5 + 0.05 * input_MB + 1 min per 10 million cube pixels) * attempt``."""
    base, per_mb = RUNTIME_MODEL["cube_build"]
    return int((base + per_mb * input_mb + cube_pixels / 1e7) * attempt)


def exposure_input_mb(files) -> float:
    """Size of a cube job's exposures: partial sums are read one exposure's at a time and
    add to the running totals that ``cube_pixels`` already accounts for."""
    from spec3flow.cube_partials import is_partial

    return input_size_mb([f for f in files if not is_partial(f)])


def cube_build_mem(job: StepJob):
    """resources.mem_mb of a cube_build rule (a function of the job's input size)."""
    return rule_callable(lambda wildcards, input, attempt:
                         cube_build_mem_mb(exposure_input_mb(input), job.cube_pixels, attempt))


def cube_build_runtime(job: StepJob):
    return rule_callable(lambda wildcards, input, attempt:
                         cube_build_runtime_min(exposure_input_mb(input), job.cube_pixels, attempt))


#: Rules with at least this many wildcard-free products get a set lookup (see below).
STATIC_PRODUCER_MIN_OUTPUTS = 16


def plain_snakemake() -> bool:
    """SPEC3FLOW_PLAIN_SNAKEMAKE=1 leaves Snakemake's planning code untouched."""
    return os.environ.get("SPEC3FLOW_PLAIN_SNAKEMAKE") == "1"


def index_static_producers(workflow) -> int:
    """Make "does this rule make file F?" a set lookup for rules whose products are all
    concrete paths (exp_to_source, per-association and gather rules).

    Snakemake asks every candidate rule ``is_producer(F)`` for each input it resolves and
    answers by matching F against each of the rule's outputs in turn; an exp_to_source job
    of a 10,000-source program declares 10,000 files, so a dry run spent 200 million
    regex matches (140 s) there. For a path without wildcards that match is string
    equality, so a frozenset gives the same answer. Applied per rule instance (the
    method is looked up on the instance first). Returns how many rules were indexed."""
    if plain_snakemake():
        return 0
    indexed = 0
    for rule in workflow.rules:
        products = list(rule.products())
        if len(products) < STATIC_PRODUCER_MIN_OUTPUTS or any(
                p.get_wildcard_names() for p in products):
            continue
        concrete = frozenset(str(p) for p in products)
        rule.is_producer = concrete.__contains__
        indexed += 1
    return indexed


def skip_empty_until_check() -> bool:
    """Without ``--until``, answer Snakemake's "was this job named by --until?" at once.

    ``DAG.finish`` asks it of a finished job once per dependent job, and answers with
    ``set().isdisjoint(job.output)``, which walks the job's outputs even when the set is
    empty: exp_to_source's 10,000 outputs x 10,000 dependents = 10^8 lookups (12 s) per
    10k-source run or dry run. The answer is unchanged: False when nothing was named."""
    if plain_snakemake():
        return False
    from snakemake.dag import DAG

    original = DAG.in_until
    if getattr(original, "spec3flow_short_circuit", False):
        return True

    def in_until(self, job):
        return bool(self.untilrules or self.untilfiles) and original(self, job)

    in_until.spec3flow_short_circuit = True
    DAG.in_until = in_until
    return True


def skip_temp_free_jobs() -> bool:
    """Skip Snakemake's temp-file clean-up after a job when neither its rule nor a rule it
    depends on declares a ``temp()`` output.

    ``DAG.handle_temp`` collects, per finished job, the temp outputs of each job it depends
    on by walking all of that job's outputs: exp_to_source's 10,000 outputs x 10,000
    dependents = 10^8 flag checks (80 s) per 10k-source run or dry run, for nothing, as
    only cube_build_partial declares temp files. The answer is unchanged: with no temp
    output in reach the original removes nothing."""
    if plain_snakemake():
        return False
    from snakemake.dag import DAG
    from snakemake.io import is_flagged

    original = DAG.handle_temp
    if getattr(original, "spec3flow_short_circuit", False):
        return True
    rules_with_temp: dict[int, bool] = {}

    def declares_temp(rule) -> bool:
        key = id(rule)
        if key not in rules_with_temp:
            rules_with_temp[key] = any(is_flagged(f, "temp") for f in rule.output)
        return rules_with_temp[key]

    async def handle_temp(self, job):
        jobs = list(job) if job.is_group() else [job]
        if any(declares_temp(j.rule) or any(declares_temp(dep.rule) for dep in self._dependencies[j])
               for j in jobs):
            await original(self, job)

    handle_temp.spec3flow_short_circuit = True
    DAG.handle_temp = handle_temp
    return True


def index_concrete_outputs() -> bool:
    """Find the rules making file F by a dict lookup for wildcard-free products.

    Snakemake's ``OutputIndex`` keeps every product's constant prefix in one sorted list
    and, per file it resolves, walks it by bisection and a character-by-character
    common-prefix loop; exp_to_source's 10,000 concrete outputs sit beside the very names
    looked up (the sources' crf/s2d/x1d), so each look-up took ~9 steps (15% of a
    10k-source dry run). ``match_producers`` (the only look-up the DAG makes) keeps only
    the rules whose ``is_producer(F)`` holds, and a wildcard-free product p can make F only
    when F == p, so here concrete products are looked up by equality and only patterned
    products by prefix and suffix as before; ``is_producer`` then decides exactly as
    before. ``OutputIndex.match`` is untouched."""
    if plain_snakemake():
        return False
    from collections import defaultdict

    from snakemake.common.prefix_lookup import PrefixLookup
    from snakemake.output_index import OutputIndex

    original_init = OutputIndex.__init__
    if getattr(original_init, "spec3flow_short_circuit", False):
        return True

    @functools.wraps(original_init)
    def __init__(self, rules):
        original_init(self, rules)
        concrete, patterned = defaultdict(list), []
        for rule in rules:
            for product in rule.products():
                if product.get_wildcard_names():
                    patterned.append((str(product.constant_prefix()),
                                      (rule, str(product.constant_suffix()))))
                else:
                    concrete[str(product)].append(rule)
        self.spec3flow_concrete = dict(concrete)
        self.spec3flow_patterned = PrefixLookup(entries=patterned)

    def match_producers(self, targetfile):
        rules = set(self.spec3flow_concrete.get(targetfile, ()))
        rules.update(rule for _, (rule, suffix) in self.spec3flow_patterned.match_iter(targetfile)
                     if targetfile.endswith(suffix))
        return {rule for rule in rules if rule.is_producer(targetfile)}

    __init__.spec3flow_short_circuit = True
    OutputIndex.__init__ = __init__
    OutputIndex.match_producers = match_producers
    return True


def memoize_resource_signatures(workflow) -> int:
    """Read the signatures of Snakemake's resource evaluators once, as rule_callable does
    for ours.

    Snakemake evaluates each resource of each job through ``Resource.evaluate`` (a bound
    method, whose signature it inspects twice per evaluation) and, for the default
    resources (``tmpdir``...), an evaluator closure (inspected once more): ~8
    ``inspect.signature`` calls per job, 320,000 in a 10k-source dry run. The parameters
    are set as the ``_overwrite_params`` Snakemake reads first (a bound method finds it on
    its function), computed by ``inspect.signature`` itself, so the answer is the same.
    Returns how many callables were marked."""
    if plain_snakemake():
        return 0
    import inspect

    try:
        from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR
        from snakemake.resources import Resource
    except ImportError:  # another Snakemake: it inspects as usual
        return 0
    marked = 0
    if not hasattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR):
        bound = Resource("spec3flow_probe", 1).evaluate  # the parameters Snakemake sees
        setattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR, inspect.signature(bound).parameters)
        marked += 1
    for rule in workflow.rules:
        for resource in (rule.resources or {}).values():
            evaluator = getattr(resource, "_evaluator", None)
            if (inspect.isfunction(evaluator)
                    and not hasattr(evaluator, FUNC_OVERWRITE_PARAMS_ATTR)):
                setattr(evaluator, FUNC_OVERWRITE_PARAMS_ATTR, inspect.signature(evaluator).parameters)
                marked += 1
    return marked


_SHELLCMD_MEMO = threading.local()


def format_shell_command_once() -> bool:
    """Format a job's shell command once when Snakemake lists the job, not twice.

    ``Job.log_info`` (each job of ``snakemake -n``, and each job started by a run) asks
    ``job.shellcmd`` for the job-info record and again for the "Shell command" record; each
    call formats the command anew with a copy of Snakemake's globals (12 s of a
    10k-source dry run for the pair). Here ``log_info`` formats it once, before
    Snakemake's own body runs, and ``shellcmd`` returns that string to calls made inside
    it for the same job (per thread); every other call formats as before. Same string:
    nothing a job's command depends on changes during ``log_info``."""
    if plain_snakemake():
        return False
    from snakemake.jobs import Job

    original_log_info = Job.log_info
    if getattr(original_log_info, "spec3flow_short_circuit", False):
        return True
    format_shellcmd = Job.shellcmd.fget

    def shellcmd(self):
        memo = getattr(_SHELLCMD_MEMO, "job_cmd", None)
        if memo is not None and memo[0] is self:
            return memo[1]
        return format_shellcmd(self)

    @functools.wraps(original_log_info)
    def log_info(self, *args, **kwargs):
        _SHELLCMD_MEMO.job_cmd = (self, format_shellcmd(self))
        try:
            return original_log_info(self, *args, **kwargs)
        finally:
            _SHELLCMD_MEMO.job_cmd = None

    log_info.spec3flow_short_circuit = True
    Job.shellcmd = property(shellcmd, doc=Job.shellcmd.__doc__)
    Job.log_info = log_info
    return True


#: Young-generation threshold of Python's cyclic garbage collector while Snakemake plans
#: (the default is 700 allocations).
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> bool:
    """Make Python's cyclic garbage collector cheaper for Snakemake's large DAG.

    Building and listing the jobs of a 10k-source program allocates tens of millions of
    objects that live until the end: with the default thresholds the collector ran 13,000
    times (18 s of a dry run) finding almost nothing, and at interpreter exit it traversed
    the whole DAG once more before freeing it object by object (~10 s). Here: objects that
    exist after parsing (modules, the plan) are frozen (never scanned again; they live
    until exit anyway), a young collection waits for GC_YOUNG_THRESHOLD allocations
    instead of 700 (older generations keep their ratios), and at exit everything is
    frozen so the process ends without that last traversal (the OS frees the memory;
    files are flushed and closed as before: Snakemake closes its own, and Python flushes
    the standard streams and runs the logging shutdown regardless). Nothing Snakemake
    computes depends on when garbage is collected."""
    if plain_snakemake():
        return False
    import atexit
    import gc

    if getattr(tune_garbage_collector, "applied", False):
        return True
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if young:  # 0: collection disabled by the user; leave it so
        gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
    atexit.register(gc.freeze)
    tune_garbage_collector.applied = True
    return True


def rule_name(step: str, key: str) -> str:
    return f"{step}__" + re.sub(r"\W", "_", key)


def rule_callable(func):
    """Mark a rule's input/params/resources/group function with its signature, read once.

    Snakemake inspects a callable's signature on every evaluation to know which of
    wildcards/input/attempt/... to pass (630,000 ``inspect.signature`` calls, 16 s, in a
    10k-source dry run); it first looks for the ``_overwrite_params`` attribute that
    ``snakemake.common.overwrite_function_params`` sets, so setting it once is enough."""
    import inspect

    try:
        from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR
    except ImportError:  # another Snakemake: it inspects as usual
        return func
    setattr(func, FUNC_OVERWRITE_PARAMS_ATTR, inspect.signature(func).parameters)
    return func


def input_size_mb(files) -> float:
    """Total size of a job's existing input files, MB (missing ones count 0, as Snakemake's
    ``input.size_mb`` does). Plain ``os.stat``: ``input.size_mb`` runs a fresh asyncio event
    loop per call, which cost 50 s of a 10k-source dry run (two resources per job)."""
    total = 0
    for name in files:
        try:
            total += os.stat(name).st_size
        except OSError:
            pass
    return total / 2**20


#: Ceiling of any job's memory request, MB (config ``resources.max_mem_mb``).
DEFAULT_MAX_MEM_MB = 64000
_LIMITS = {"max_mem_mb": DEFAULT_MAX_MEM_MB}


def configure_resources(config: dict) -> None:
    """Parse time: the memory ceiling from ``resources.max_mem_mb``."""
    _LIMITS["max_mem_mb"] = int((config.get("resources") or {}).get("max_mem_mb", DEFAULT_MAX_MEM_MB))


def cap_mem(mb: float, max_mem_mb: int | None = None) -> int:
    """A memory request, bounded by the ceiling (no request exceeds what a node can give)."""
    return min(int(mb), int(max_mem_mb or _LIMITS["max_mem_mb"]))


def mem_mb(step: str, input_mb: float, attempt: int = 1, max_mem_mb: int | None = None) -> int:
    """``min((base + per_MB * input_MB) * attempt, max_mem_mb)``: a retry (attempt 2, ...)
    asks for proportionally more, never more than the ceiling."""
    base, per_mb = MEMORY_MODEL.get(step, (1200, 6.0))
    return cap_mem((base + per_mb * input_mb) * attempt, max_mem_mb)


def runtime_min(step: str, input_mb: float, attempt: int = 1) -> int:
    base, per_mb = RUNTIME_MODEL.get(step, (5, 0.05))
    return int((base + per_mb * input_mb) * attempt)


# ------------------------------------------------------------- cluster job groups
#: Group id template of per-source jobs (``--group-components spec3flow_sources=...``).
SOURCE_GROUP = "spec3flow_sources"


#: The executor asked for on the command line (``--executor``), once Snakemake says it.
_REQUESTED_EXECUTOR: dict = {}


def remember_requested_executor() -> None:
    """Record the executor a run is for. A dry run hands the DAG Snakemake's dry-run
    executor and forms groups whatever the real one: a local dry run of 10,000 sources
    built and printed 10,000 group jobs (~6 s) that the local run itself ignores."""
    from snakemake.api import DAGApi

    original = DAGApi.execute_workflow
    if getattr(original, "spec3flow_wrapped", False):
        return

    @functools.wraps(original)
    def execute_workflow(self, *args, **kwargs):
        _REQUESTED_EXECUTOR.clear()
        _REQUESTED_EXECUTOR["name"] = kwargs.get("executor", args[0] if args else None)
        return original(self, *args, **kwargs)

    execute_workflow.spec3flow_wrapped = True
    DAGApi.execute_workflow = execute_workflow


def cluster_execution() -> bool:
    """Whether the run (or dry run) is for a non-local executor, where groups become
    cluster jobs. True when not known (API use): groups as Snakemake makes them."""
    if "cluster" not in _REQUESTED_EXECUTOR:
        name = _REQUESTED_EXECUTOR.get("name")
        cluster = True
        if name:
            from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

            try:
                cluster = not ExecutorPluginRegistry().get_plugin(name).common_settings.local_exec
            except Exception:  # unknown plugin: Snakemake itself reports it
                cluster = True
        _REQUESTED_EXECUTOR["cluster"] = cluster
    return _REQUESTED_EXECUTOR["cluster"]


class SourceGroups:
    """Snakemake ``group:`` ids bundling ``per_group`` sources: every job of the same
    ``per_group`` sources (in plan order) gets ``spec3flow_sources_<k>``, so a cluster
    executor submits them as one job (with ``--group-components spec3flow_sources=N``,
    N >= per_group; otherwise one cluster job per source chain). ``per_group`` 0: no groups.
    The local executor ignores groups."""

    def __init__(self, plan: Plan, per_group: int):
        self.per_group = int(per_group or 0)
        self.order = {stem: i for i, stem in enumerate(plan.source_index())}

    def __call__(self, stem: str) -> str | None:
        """Group id of the source ``stem``; None if not a source."""
        if self.per_group <= 0 or stem not in self.order:
            return None
        return f"{SOURCE_GROUP}_{self.order[stem] // self.per_group:05d}"


# ------------------------------------------------------------- warm interpreter
def warm_socket_path(config: dict) -> Path:
    """A short, per-results-dir socket path (AF_UNIX paths are limited to ~100 bytes)."""
    import hashlib
    import tempfile

    key = hashlib.sha1(str(Path(config["results_dir"]).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"spec3flow-{key}.sock"


def start_warm_interpreter(config: dict, workflow, local_exec: bool | None = None,
                           dryrun: bool | None = None) -> None:
    """A warm server for the local executor (cluster jobs run plain processes), started
    once: before the DAG is built (start_warm_interpreter_early) or at onstart."""
    from spec3flow import warm

    if _WARM_SERVERS or not config.get("execution", {}).get("warm_interpreter", True):
        return
    local_exec = workflow.local_exec if local_exec is None else local_exec
    dryrun = workflow.dryrun if dryrun is None else dryrun
    if not local_exec or dryrun:
        return
    results = Path(config["results_dir"])
    socket_path = warm_socket_path(config)
    server = warm.start_background(socket_path, results / "logs" / "warm_interpreter.log",
                                   ledger=results / "benchmarks" / "warm_interpreter_jobs.jsonl")
    if server is not None:
        _WARM_SERVERS.append(server)
        os.environ[warm.SOCKET_ENV] = str(socket_path)
        log.info("warm interpreter listening at %s", socket_path)
    else:
        log.warning("warm interpreter did not start; jobs run as plain processes")


_WARM_SERVERS: list = []


def start_warm_interpreter_early(config: dict, workflow) -> None:
    """Start the warm server when Snakemake starts executing, before it builds the DAG:
    the server's jwst import (~5 s) then overlaps planning and the first jobs instead of
    delaying the first step job. Only ``Workflow.execute`` learns whether jobs run here
    (its executor plugin), so that call is wrapped on this workflow instance; onstart
    still starts the server when this did not (SPEC3FLOW_PLAIN_SNAKEMAKE=1)."""
    if plain_snakemake():
        return
    from snakemake_interface_executor_plugins.settings import ExecMode

    execute = workflow.execute

    @functools.wraps(execute)
    def execute_with_warm_server(*args, executor_plugin=None, **kwargs):
        settings = getattr(executor_plugin, "common_settings", None)
        if (settings is not None and workflow.exec_mode == ExecMode.DEFAULT
                and not workflow.execution_settings.no_hooks):
            # --touch runs no step either
            start_warm_interpreter(config, workflow, settings.local_exec,
                                   settings.dryrun_exec or getattr(settings, "touch_exec", False))
        return execute(*args, executor_plugin=executor_plugin, **kwargs)

    workflow.execute = execute_with_warm_server


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
