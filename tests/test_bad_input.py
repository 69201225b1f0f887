"""Bad inputs fail at planning time with one clear line naming the file and the problem.

Every case is a `snakemake -n` on a copy of a small synthetic MOS program: nothing runs,
nothing is written into input_dir, and no product is left behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from astropy.io import fits

from conftest import error_line, make_program, planning_error, run_snakemake, snapshot, write_config

MODES = ["NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-FIXEDSLIT"]
EXPOSURES = [f"jw01234001001_02101_{i:05d}_nrs1_cal.fits" for i in (1, 2, 3)]
PRODUCT = "jw01234-o001_{source_id}_nirspec_f170lp-g235m"


@pytest.fixture(scope="module")
def mos_source(tmp_path_factory) -> Path:
    return make_program(tmp_path_factory.mktemp("mos") / "input", modes=("mos",), n_sources=2, seed=3)


@pytest.fixture
def input_dir(mos_source, tmp_path) -> Path:
    """A private copy of the MOS program, cal files only."""
    d = tmp_path / "input"
    d.mkdir()
    for name in EXPOSURES:
        shutil.copy(mos_source / name, d / name)
    return d


def plan(workdir: Path, input_dir: Path, **extra):
    """Dry run; returns (process, combined output). Checks nothing was written."""
    before = snapshot(input_dir)
    config = write_config(workdir, input_dir=str(input_dir), results_dir=str(workdir / "results"),
                          modes=MODES, crds={"use_local_context": True, "local_path": str(workdir / "crds")},
                          **extra)
    proc = run_snakemake(workdir, config, "-n", check=False)
    assert snapshot(input_dir) == before, "planning wrote into input_dir"
    results = workdir / "results"
    assert not (results / "products").exists() and not (results / "asn").exists()
    assert not (workdir / "crds").exists()
    return proc, proc.stdout + proc.stderr


def assert_fails(workdir, input_dir, *phrases, **extra) -> str:
    return planning_error(*plan(workdir, input_dir, **extra), *phrases)


def write_asn(path: Path, members: list[str], asn_type: str = "spec3", **extra) -> Path:
    data = {
        "asn_type": asn_type, "asn_rule": "candidate_Asn_Lv3SpectralSource", "asn_id": "o001",
        "program": "01234", "target": "t001", "asn_pool": "test",
        "products": [{"name": PRODUCT,
                      "members": [{"expname": m, "exptype": "science"} for m in members]}],
        **extra,
    }
    path.write_text(json.dumps(data, indent=4))
    return path


# --------------------------------------------------------------------------- (a)
def test_non_fits_cal_file(tmp_path, input_dir):
    bad = input_dir / "jw01234001001_02101_00004_nrs1_cal.fits"
    bad.write_text("this is not a FITS file\n")
    assert_fails(tmp_path, input_dir, str(bad), "not a readable FITS file")


def test_non_fits_member_of_shipped_association(tmp_path, input_dir):
    """The same problem reached through a MAST association (header read per member)."""
    (input_dir / EXPOSURES[2]).write_text("truncated download\n")
    write_asn(input_dir / "jw01234-o001_spec3_00001_asn.json", EXPOSURES)
    assert_fails(tmp_path, input_dir, EXPOSURES[2], "not a readable FITS file")


# --------------------------------------------------------------------------- (b)
def test_cal_file_without_exp_type(tmp_path, input_dir):
    path = input_dir / EXPOSURES[1]
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["EXP_TYPE"]
    assert_fails(tmp_path, input_dir, str(path), "no EXP_TYPE")


# --------------------------------------------------------------------------- (c)
def test_association_with_missing_member(tmp_path, input_dir):
    missing = "jw01234001001_02101_00009_nrs1_cal.fits"
    asn = write_asn(input_dir / "jw01234-o001_spec3_00001_asn.json", [*EXPOSURES, missing])
    line = assert_fails(tmp_path, input_dir, str(asn), missing, "not found")
    assert "(science)" in line


# --------------------------------------------------------------------------- (d)
def test_level2_association_beside_level3_is_skipped(tmp_path, input_dir):
    """MAST ships Level 2 associations next to Level 3 ones: skipped, with a line."""
    write_asn(input_dir / "jw01234-o001_spec3_00001_asn.json", EXPOSURES)
    write_asn(input_dir / "jw01234-o001_spec2_00001_asn.json", EXPOSURES, asn_type="spec2",
              asn_rule="candidate_Asn_Lv2NRSMSA")
    proc, out = plan(tmp_path, input_dir)
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"skipping jw01234-o001_spec2_00001_asn\.json: asn_type 'spec2'", proc.stderr), proc.stderr
    assert "exp_to_source__jw01234_o001_spec3_00001_asn" in proc.stdout
    assert [p.name for p in (tmp_path / "results" / ".plan" / "asn").iterdir()] == [
        "jw01234-o001_spec3_00001_asn.json"]


def test_only_a_level2_association_fails(tmp_path, input_dir):
    """associations.source 'files' with nothing but a Level 2 association."""
    write_asn(input_dir / "jw01234-o001_spec2_00001_asn.json", EXPOSURES, asn_type="spec2",
              asn_rule="candidate_Asn_Lv2NRSMSA")
    line = assert_fails(tmp_path, input_dir, "jw01234-o001_spec2_00001_asn.json", "spec2",
                        "no Level 3", associations={"source": "files"})
    assert str(input_dir) in line


# --------------------------------------------------------------------------- (e)
@pytest.mark.parametrize("exp_type", ["NRS_IMAGE"])
def test_imaging_exposure_among_spectra_is_skipped(tmp_path, input_dir, exp_type):
    image = input_dir / "jw01234001001_02101_00004_nrs1_cal.fits"
    with fits.open(input_dir / EXPOSURES[0]) as hdul:
        hdul[0].header["EXP_TYPE"] = exp_type
        hdul.writeto(image)
    proc, out = plan(tmp_path, input_dir)
    assert proc.returncode == 0, out[-3000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if image.name in ln]
    assert "skipping" in line and exp_type in line
    asns = list((tmp_path / "results" / ".plan" / "asn").glob("*_asn.json"))
    assert len(asns) == 1 and image.name not in asns[0].read_text()
    assert "exp_to_source__jw01234_o001_spec3_00001_asn" in proc.stdout


# --------------------------------------------------------------------------- (f)
def test_unknown_step_name(tmp_path, input_dir):
    proc, out = plan(tmp_path, input_dir, steps={"outlier_detectoin": {"snr": "5.0 4.0"}})
    assert proc.returncode != 0
    # Snakemake's schema validation: one line naming the unknown step.
    (line,) = [ln for ln in out.splitlines() if ln.startswith("ValidationError:")]
    assert "'outlier_detectoin' is not one of" in line


def test_unknown_step_parameter(tmp_path, input_dir):
    assert_fails(tmp_path, input_dir, "steps.outlier_detection.snrr", "OutlierDetectionStep",
                 "no parameter 'snrr'", steps={"outlier_detection": {"snrr": "5.0 4.0"}})


# --------------------------------------------------------------------------- (g)
def test_empty_input_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_fails(tmp_path, empty, str(empty), "no Stage 2 products")


def test_missing_input_dir(tmp_path):
    missing = tmp_path / "nowhere"
    config = write_config(tmp_path, input_dir=str(missing), results_dir=str(tmp_path / "results"),
                          modes=MODES)
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = error_line(out)
    assert str(missing) in line and "not a directory" in line
    assert not missing.exists()
