"""Re-processing reruns exactly what a change touches (counted in dry runs after a real run)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import make_program, run_snakemake, write_config
from test_dry_run import job_stats as dry_run_job_stats

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def processed(tmp_path_factory, crds_cache):
    """A MOS (2 sources + background slitlet) and FS program, processed once."""
    root = tmp_path_factory.mktemp("rerun")
    input_dir = make_program(root / "input", ("mos", "fs"), 2, 3)
    # The last FS nod "arrives later" (test_added_exposure_reruns_only_its_product).
    (root / "later").mkdir()
    shutil.move(input_dir / "jw01234002001_02101_00003_nrs1_cal.fits", root / "later")
    base = dict(input_dir=str(input_dir), results_dir=str(root / "results"),
                modes=["NRS_MSASPEC", "NRS_FIXEDSLIT"],
                crds={"use_local_context": True, "local_path": str(crds_cache)}, qa={"plots": False})
    config = write_config(root, **base)
    run_snakemake(root, config)
    return root, input_dir, base, config


def job_stats(stdout: str) -> dict[str, int]:
    """Job counts of a dry run; {} when there is nothing to do."""
    return dry_run_job_stats(stdout) if "Job stats:" in stdout else {}


def dry_run_with(root, base, **changes):
    config = dict(base, **changes)
    path = root / "changed-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return job_stats(run_snakemake(root, path, "-n").stdout)


def test_nothing_to_do_after_a_run(processed):
    root, _, base, _ = processed
    assert dry_run_with(root, base) == {}


def test_step_parameter_reruns_that_step_and_downstream_only(processed):
    root, _, base, _ = processed
    counts = dry_run_with(root, base, steps={"outlier_detection": {"snr": "4.0 3.0"}})
    sources = 3 + 2  # MOS: 2 sources + background slitlet; FS: 2 slits (two nods so far)
    assert counts == {"outlier_detection": sources, "resample_spec": sources, "extract_1d": sources,
                      "summary": 1, "provenance_manifest": 1, "all": 1}


def test_changed_crds_context_reruns_every_step(processed):
    root, _, base, _ = processed
    crds = dict(base["crds"], context="jwst_0002.pmap")
    counts = dry_run_with(root, base, crds=crds)
    assert counts["outlier_detection"] == 5 and counts["extract_1d"] == 5
    assert counts["exp_to_source__jw01234_o001_spec3_00001_asn"] == 1


def test_added_exposure_reruns_only_its_product(processed):
    """The last FS nod arrives: the FS product is re-made, the MOS product is not."""
    root, input_dir, base, _ = processed
    late = root / "later" / "jw01234002001_02101_00003_nrs1_cal.fits"
    shutil.copy(late, input_dir / late.name)
    try:
        counts = dry_run_with(root, base)
    finally:
        (input_dir / late.name).unlink()
    assert counts.get("exp_to_source__jw01234_o002_spec3_00001_asn") == 1
    assert "exp_to_source__jw01234_o001_spec3_00001_asn" not in counts
    assert counts["outlier_detection"] == 2  # the two FS sources only
