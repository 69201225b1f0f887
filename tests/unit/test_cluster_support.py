"""Cluster support: memory ceiling, source groups, what crds_prefetch resolves for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spec3flow import workflow_support as support


def test_memory_grows_with_input_and_attempt_up_to_the_ceiling():
    assert support.mem_mb("outlier_detection", 10) == 1300
    assert support.mem_mb("outlier_detection", 10, attempt=2) == 2600
    assert support.mem_mb("outlier_detection", 10, attempt=3, max_mem_mb=3000) == 3000
    support.configure_resources({"resources": {"max_mem_mb": 2000}})
    try:
        assert support.mem_mb("outlier_detection", 10, attempt=2) == 2000
        assert support.cube_build_mem_mb(0, 10**9) == 2000
    finally:
        support.configure_resources({})
    assert support.mem_mb("outlier_detection", 10, attempt=100) == support.DEFAULT_MAX_MEM_MB


def test_source_groups_bundle_n_sources_in_plan_order():
    stems = [f"jw01234-o001_s{i:09d}_nirspec_f170lp-g235m" for i in range(5)]
    plan = SimpleNamespace(source_index=lambda: {s: None for s in stems})
    groups = support.SourceGroups(plan, 2)
    assert [groups(s) for s in stems] == [
        "spec3flow_sources_00000", "spec3flow_sources_00000", "spec3flow_sources_00001",
        "spec3flow_sources_00001", "spec3flow_sources_00002"]
    assert groups(stems[3] + "_x1d") is None  # products are not grouped (plots run in batches)
    assert groups("jw01234-o009_something_else") is None
    assert support.SourceGroups(plan, 0)(stems[0]) is None


def test_crds_marker_adds_the_prefetch_manifest():
    config = {"results_dir": "out/", "crds": {"prefetch": True}}
    assert support.crds_marker(config) == ["out/crds_references.json"]
    assert support.crds_marker(config, prefetched=False) == []


@pytest.mark.parametrize("executor, cluster", [("local", False), ("dryrun", False),
                                               ("slurm", True), (None, True)])
def test_groups_only_for_the_executor_asked_for(monkeypatch, executor, cluster):
    """A dry run uses Snakemake's dry-run executor; groups follow the one on the command line."""
    from snakemake.api import DAGApi

    calls = []
    monkeypatch.setattr(DAGApi, "execute_workflow", lambda self, *a, **k: calls.append(k))
    monkeypatch.setattr(support, "_REQUESTED_EXECUTOR", {})
    support.remember_requested_executor()
    support.remember_requested_executor()  # wraps once
    DAGApi.execute_workflow(object(), executor=executor, pseudo_executor="dryrun")
    assert calls == [{"executor": executor, "pseudo_executor": "dryrun"}]
    assert support.cluster_execution() is cluster


def test_groups_kept_when_executor_unknown(monkeypatch):
    monkeypatch.setattr(support, "_REQUESTED_EXECUTOR", {})
    assert support.cluster_execution() is True  # not run through the CLI: Snakemake decides
