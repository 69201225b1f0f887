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
