"""The Snakemake planning shortcuts in workflow_support give Snakemake's own answers."""

from __future__ import annotations

from types import SimpleNamespace

import snakemake.api  # noqa: F401  (imports snakemake's modules in an order that works)
from snakemake.common import get_function_params
from snakemake.io import IOFile

from spec3flow import workflow_support as support


def _rule(outputs):
    files = [IOFile(o) for o in outputs]
    return SimpleNamespace(products=lambda: iter(files),
                           is_producer=lambda f: any(x.match(f) for x in files))


def test_static_producer_index_answers_like_the_regex_match():
    many = [f"results/products/jw01234-o001_s{i:09d}_nirspec_cal.fits" for i in range(40)]
    static, patterned, few = _rule(many), _rule(["results/{stem}_crf.fits"] * 20), _rule(many[:3])
    before = {id(r): r.is_producer for r in (static, patterned, few)}
    workflow = SimpleNamespace(rules=[static, patterned, few])

    assert support.index_static_producers(workflow) == 1
    probes = many + ["results/products/jw01234-o001_s000000001_nirspec_cal.fitsx",
                     "results/products/jw01234-o001_s000000001_nirspec_crf.fits", "x"]
    for probe in probes:
        assert static.is_producer(probe) == before[id(static)](probe)
    assert patterned.is_producer is before[id(patterned)]  # wildcards: left to Snakemake
    assert few.is_producer is before[id(few)]


def test_static_producer_index_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("SPEC3FLOW_PLAIN_SNAKEMAKE", "1")
    rule = _rule([f"f{i}.fits" for i in range(40)])
    original = rule.is_producer
    assert support.index_static_producers(SimpleNamespace(rules=[rule])) == 0
    assert rule.is_producer is original


def test_rule_callable_keeps_the_signature_snakemake_reads():
    def mem(wildcards, input, attempt):
        return 1

    expected = list(get_function_params(mem))
    assert list(get_function_params(support.rule_callable(mem))) == expected
    assert support.rule_callable(mem)(None, [], 1) == 1


def test_input_size_counts_existing_files_only(tmp_path):
    (tmp_path / "a.fits").write_bytes(b"\0" * 2**20)
    assert support.input_size_mb([tmp_path / "a.fits", tmp_path / "missing.fits"]) == 1.0
    (tmp_path / "a_cal.cubepart").write_bytes(b"\0" * 2**21)
    # a cube job's memory follows its exposures, not the partial sums it adds up
    assert support.exposure_input_mb([str(tmp_path / "a.fits"), str(tmp_path / "a_cal.cubepart")]) == 1.0


def test_jwst_version_is_read_once():
    support.jwst_version.cache_clear()
    support.jwst_version()
    support.jwst_version()
    assert support.jwst_version.cache_info().misses == 1


def test_until_check_short_circuit_keeps_the_answer(monkeypatch):
    from snakemake.dag import DAG

    monkeypatch.setattr(DAG, "in_until", DAG.in_until)  # restored after the test
    assert support.skip_empty_until_check()
    job = SimpleNamespace(rule=SimpleNamespace(name="extract_1d"), output=["a.fits", "b.fits"])
    for rules, files, expected in (([], set(), False), (["extract_1d"], set(), True),
                                   ([], {"b.fits"}, True), ([], {"c.fits"}, False)):
        dag = SimpleNamespace(untilrules=rules, untilfiles=files)
        assert DAG.in_until(dag, job) is expected or DAG.in_until(dag, job) == expected


def test_temp_cleanup_runs_only_where_a_temp_file_is_in_reach(monkeypatch):
    import asyncio

    from snakemake.dag import DAG
    from snakemake.io import temp

    calls = []

    async def original(self, job):
        calls.append(job.name)

    monkeypatch.setattr(DAG, "handle_temp", original)  # restored after the test
    assert support.skip_temp_free_jobs()

    class Job:
        def __init__(self, name, outputs):
            self.name, self.rule = name, SimpleNamespace(output=outputs)

        def is_group(self):
            return False

    job = Job

    plain = job("exp_to_source", [IOFile(f"s{i}_cal.fits") for i in range(3)])
    partial = job("cube_build_partial", [temp("e1.cubepart")])
    source = job("resample_spec", [IOFile("s0_s2d.fits")])
    cube = job("cube_build", [IOFile("c_s3d.fits")])
    dag = SimpleNamespace(_dependencies={plain: {}, partial: {}, source: {plain: {"s0_cal.fits"}},
                                         cube: {partial: {"e1.cubepart"}}})
    for j in (plain, partial, source, cube):
        asyncio.run(DAG.handle_temp(dag, j))
    assert calls == ["cube_build_partial", "cube_build"]  # its own temp output; its temp input


class _Rule:
    """Hashable stand-in with the two things OutputIndex and match_producers use."""

    def __init__(self, name, outputs):
        self.name, self.files = name, [IOFile(o) for o in outputs]

    def products(self):
        return iter(self.files)

    def is_producer(self, f):
        return any(x.match(f) for x in self.files)


def test_concrete_output_index_answers_like_the_prefix_lookup(monkeypatch):
    from snakemake.output_index import OutputIndex

    cal = [f"results/products/jw01234-o001_s{i:09d}_nirspec_cal.fits" for i in range(50)]
    rules = [_Rule("exp_to_source", cal), _Rule("few", cal[:2] + ["results/a.fits"]),
             _Rule("outlier", ["results/products/{stem}_crf.fits"]),
             _Rule("extract", ["results/products/{stem}_x1d.fits"]),
             _Rule("plot", ["results/qa/{name}.png"]), _Rule("mixed", ["results/a.fits", "results/{x}.txt"]),
             _Rule("prefix", ["results/products/jw01234-o001_s000000001_nirspec_cal.fits.bak"])]
    probes = cal + [c.replace("_cal", "_crf") for c in cal] + [
        "results/products/jw01234-o001_s000000001_nirspec_x1d.fits", "results/qa/x_s2d.png",
        "results/a.fits", "results/b.txt", "results/a.fitsresults/a.fits", cal[0] + "\n", cal[0][:-1],
        cal[0] + ".bak", "x", "results/products/_crf.fits"]
    expected = {p: OutputIndex(rules).match_producers(p) for p in probes}

    monkeypatch.setattr(OutputIndex, "__init__", OutputIndex.__init__)  # restored after the test
    monkeypatch.setattr(OutputIndex, "match_producers", OutputIndex.match_producers)
    assert support.index_concrete_outputs()
    index = OutputIndex(rules)
    assert {p: index.match_producers(p) for p in probes} == expected
    assert index.match("results/a.fits") == {rules[1], rules[5]}  # match() itself unchanged
    assert expected[cal[3]] == {rules[0]} and expected[cal[1]] == {rules[0], rules[1]}


def test_resource_signatures_are_the_ones_snakemake_reads(monkeypatch):
    from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR
    from snakemake.resources import Resource, Resources

    defaults = Resources.default("full")  # tmpdir, mem_mb, disk_mb: evaluator closures
    resources = {"mem": Resource("mem_mb", support.rule_callable(lambda wildcards, input: 1)),
                 **{name: defaults[name] for name in defaults}}
    calls = [r.evaluate for r in resources.values()] + [
        r._evaluator for r in resources.values() if r._evaluator is not None]
    expected = [list(get_function_params(f).items()) for f in calls]

    had = hasattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR)  # set by an earlier Snakefile?
    monkeypatch.delattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR, raising=False)
    try:
        rule = SimpleNamespace(resources=resources)
        assert support.memoize_resource_signatures(SimpleNamespace(rules=[rule])) >= 2
        assert all(hasattr(f, FUNC_OVERWRITE_PARAMS_ATTR) for f in calls)
        assert [list(get_function_params(f).items()) for f in calls] == expected
        assert resources["mem"].evaluate(None, input=[], attempt=1).value == 1
    finally:
        if not had:
            delattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR)


def test_shell_command_is_formatted_once_per_listing(monkeypatch):
    from snakemake.jobs import Job

    formatted = []

    def shellcmd(self):
        formatted.append(self)
        return f"run {self.name} #{len(formatted)}"

    def log_info(self, indent=False, printshellcmd=True):  # reads it twice, as Snakemake does
        return self.shellcmd, self.shellcmd, indent

    class FakeJob:  # Job's own shellcmd and log_info, whatever they are when called
        shellcmd = property(lambda self: Job.shellcmd.__get__(self))

        def __init__(self, name):
            self.name = name

    monkeypatch.setattr(Job, "shellcmd", property(shellcmd))  # restored after the test
    monkeypatch.setattr(Job, "log_info", log_info)
    assert support.format_shell_command_once()
    job, other = FakeJob("a"), FakeJob("b")
    assert Job.log_info(job, indent=True) == ("run a #1", "run a #1", True)
    assert formatted == [job]
    assert Job.shellcmd.fget(job) == "run a #2"  # outside log_info: formatted as before
    assert Job.shellcmd.fget(other) == "run b #3"


def test_garbage_collector_tuning(monkeypatch):
    import gc

    before = gc.get_threshold()
    monkeypatch.delattr(support.tune_garbage_collector, "applied", raising=False)
    try:
        assert support.tune_garbage_collector()
        assert gc.get_threshold() == (support.GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_planning_shortcuts_can_be_switched_off(monkeypatch):
    import gc

    monkeypatch.setenv("SPEC3FLOW_PLAIN_SNAKEMAKE", "1")
    monkeypatch.delattr(support.tune_garbage_collector, "applied", raising=False)
    threshold = gc.get_threshold()
    assert not support.index_concrete_outputs()
    assert support.memoize_resource_signatures(SimpleNamespace(rules=[])) == 0
    assert not support.format_shell_command_once()
    assert not support.tune_garbage_collector()
    assert gc.get_threshold() == threshold
