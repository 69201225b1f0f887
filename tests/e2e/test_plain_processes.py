"""The fast path off: every step job is its own Python process (as on a cluster node), and
the products are still Spec3Pipeline's."""

from __future__ import annotations

import pytest

from spec3flow.compare import compare_dirs

from conftest import make_program, run_baseline, run_snakemake, write_config

pytestmark = pytest.mark.e2e


def test_mos_in_plain_processes_equals_pipeline(tmp_path, crds_cache):
    input_dir = make_program(tmp_path / "input", modes=("mos",), n_sources=2, seed=5)
    results = tmp_path / "results"
    config = write_config(tmp_path, input_dir=str(input_dir), results_dir=str(results),
                          modes=["NRS_MSASPEC"], qa={"plots": False},
                          execution={"warm_interpreter": False},
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    run_snakemake(tmp_path, config)
    assert not (results / "benchmarks" / "warm_interpreter_jobs.jsonl").exists()
    assert not (results / "logs" / "warm_interpreter.log").exists()
    run_baseline(sorted((results / "asn").glob("*_asn.json")), tmp_path / "baseline", crds_cache)
    # extract_1d's SLIT_RA/SLIT_DEC (the WCS at a profile-weighted aperture centre) can
    # differ in the last digits between processes (seen: 2e-14 deg in one spectrum, also
    # once in 204 products of a warm 50-source run); every array stays exactly equal.
    only_workflow, only_pipeline, diffs = compare_dirs(results / "products", tmp_path / "baseline",
                                                       keyword_rtol=1e-14)
    assert only_workflow == [] and only_pipeline == []
    assert {d.name.rsplit("_", 1)[-1] for d in diffs} == {"cal.fits", "crf.fits", "s2d.fits", "x1d.fits"}
    for diff in diffs:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], diff.name
