"""strun-style step configuration through the workflow equals the same through Spec3Pipeline."""

from __future__ import annotations

import pytest

from spec3flow.compare import compare_dirs

from conftest import make_program, run_baseline, run_snakemake, write_config

pytestmark = pytest.mark.e2e


def test_mos_without_resampling_equals_pipeline(tmp_path, crds_cache):
    """resample_spec skipped: extract_1d on the exposures, then combine_1d (c1d), as the pipeline does;
    outlier_detection with non-default parameters."""
    steps = {"resample_spec": {"skip": True}, "outlier_detection": {"snr": "4.0 3.0"}}
    input_dir = make_program(tmp_path / "input", modes=("mos",), n_sources=2, seed=11)
    config = write_config(tmp_path, input_dir=str(input_dir), results_dir=str(tmp_path / "results"),
                          modes=["NRS_MSASPEC"], steps=steps,
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    run_snakemake(tmp_path, config)
    run_baseline(sorted((tmp_path / "results" / "asn").glob("*_asn.json")), tmp_path / "baseline",
                 crds_cache, steps=steps)
    only_workflow, only_pipeline, diffs = compare_dirs(tmp_path / "results" / "products", tmp_path / "baseline")
    assert only_workflow == [] and only_pipeline == []
    suffixes = {d.name.rsplit("_", 1)[-1] for d in diffs}
    assert suffixes == {"cal.fits", "crf.fits", "x1d.fits", "c1d.fits"}
    for diff in diffs:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], diff.name
