"""Bad slitless inputs fail with one clear line naming the file (issue: slitless modes)."""

from __future__ import annotations

import json
import shutil

import pytest
from astropy.io import fits
from conftest import make_program, run_snakemake, write_config


@pytest.fixture(scope="module")
def wfss_input(tmp_path_factory):
    return make_program(tmp_path_factory.mktemp("wfss_bad") / "input", modes=("wfss",))


def _config(tmp_path, input_dir, modes, crds_path=None):
    return write_config(tmp_path, input_dir=str(input_dir), results_dir=str(tmp_path / "results"),
                        modes=modes, crds={"use_local_context": True,
                                           "local_path": str(crds_path or tmp_path / "crds")})


def test_wfss_exposure_without_source_slits(wfss_input, tmp_path):
    input_dir = tmp_path / "input"
    shutil.copytree(wfss_input, input_dir)
    victim = sorted(input_dir.glob("jw01234010001_02102_*_nis_cal.fits"))[0]
    with fits.open(victim) as hdul:
        fits.HDUList([hdul[0].copy()]).writeto(victim, overwrite=True)  # the slits are gone
    proc = run_snakemake(tmp_path, _config(tmp_path, input_dir, ["NIS_WFSS"]), "-n", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"{victim.name}: NIS_WFSS exposure has no SCI slit extensions" in text


def test_wfss_association_members_disagree_on_filter(wfss_input, tmp_path):
    input_dir = tmp_path / "input"
    shutil.copytree(wfss_input, input_dir)
    victim = sorted(input_dir.glob("jw01234010001_02102_*_nis_cal.fits"))[-1]
    members = sorted(input_dir.glob("jw01234010001_02102_*_nis_cal.fits"))
    fits.setval(victim, "FILTER", value="F150W")
    asn = {"asn_type": "spec3", "asn_rule": "candidate_Asn_Lv3WFSSNIS", "asn_id": "o010",
           "asn_pool": "handmade", "program": "01234",
           "products": [{"name": "jw01234-o010_t001_niriss_f200w-gr150c",
                         "members": [{"expname": p.name, "exptype": "science"} for p in members]}]}
    (input_dir / "jw01234-o010_spec3_00001_asn.json").write_text(json.dumps(asn))
    proc = run_snakemake(tmp_path, _config(tmp_path, input_dir, ["NIS_WFSS"]), "-n", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "WFSS members disagree on filter/pupil" in text and victim.name in text


@pytest.mark.e2e
def test_soss_pupil_position_outside_trace_model(tmp_path, crds_cache):
    input_dir = make_program(tmp_path / "input", modes=("soss",))
    (cal,) = input_dir.glob("*_cal.fits")
    fits.setval(cal, "PWCPOS", value=250.0)  # PASTASOSS covers 245.51-246.01
    proc = run_snakemake(tmp_path, _config(tmp_path, input_dir, ["NIS_SOSS"], crds_cache), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"{cal.name}: its pupil wheel position (PWCPOS) is outside the PASTASOSS trace model" in text
    assert not list((tmp_path / "results" / "products").glob("*.fits"))  # nothing half-written
