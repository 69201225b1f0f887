"""Moving targets: assign_mtwcs runs first as its own job, and products equal Spec3Pipeline's."""

from __future__ import annotations

import pytest
from astropy.io import fits
from conftest import make_program, run_baseline, run_snakemake, write_config

from spec3flow.compare import compare_dirs

pytestmark = pytest.mark.e2e


def test_moving_target_mos_equals_pipeline(tmp_path, crds_cache):
    input_dir = make_program(tmp_path / "input", ("mos",), 2, 5, "--moving-target")
    config = write_config(tmp_path, input_dir=str(input_dir), results_dir=str(tmp_path / "results"),
                          modes=["NRS_MSASPEC"],
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    dry = run_snakemake(tmp_path, config, "-n")
    assert "assign_mtwcs__" in dry.stdout
    run_snakemake(tmp_path, config)
    run_baseline(sorted((tmp_path / "results" / "asn").glob("*_asn.json")), tmp_path / "baseline", crds_cache)
    only_workflow, only_pipeline, diffs = compare_dirs(tmp_path / "results" / "products", tmp_path / "baseline")
    assert only_workflow == [] and only_pipeline == []
    assert {d.name.rsplit("_", 1)[-1] for d in diffs} == {"cal.fits", "crf.fits", "s2d.fits", "x1d.fits"}
    for diff in diffs:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], diff.name
        assert fits.getval(tmp_path / "results" / "products" / diff.name, "S_MTWCS") == "COMPLETE"
