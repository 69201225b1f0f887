"""Bad IFU inputs and configurations fail with one clear line naming the file or association.

Planning errors are `snakemake -n` runs (nothing written). A CRDS context without CUBEPAR
can only be found by the job that asks CRDS: its cube_build job fails, naming the exposure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from astropy.io import fits

from conftest import make_program, planning_error, run_snakemake, snapshot, write_config

NRS_EXPOSURES = [f"jw01234006001_02101_{i:05d}_nrs1_cal.fits" for i in (1, 2)]
MRS_EXPOSURES = [f"jw01234005001_02101_{i:05d}_{d}_cal.fits"
                 for i, d in ((1, "mirifushort"), (2, "mirifushort"), (3, "mirifulong"), (4, "mirifulong"))]


@pytest.fixture(scope="module")
def ifu_source(tmp_path_factory) -> Path:
    return make_program(tmp_path_factory.mktemp("ifu") / "input", ("ifu",), 3, 7, "--n-dithers", "2")


@pytest.fixture
def input_dir(ifu_source, tmp_path) -> Path:
    d = tmp_path / "input"
    d.mkdir()
    for name in NRS_EXPOSURES + MRS_EXPOSURES:
        shutil.copy(ifu_source / name, d / name)
    return d


def plan(workdir: Path, input_dir: Path, modes=("NRS_IFU", "MIR_MRS"), **extra):
    before = snapshot(input_dir)
    config = write_config(workdir, input_dir=str(input_dir), results_dir=str(workdir / "results"),
                          modes=list(modes),
                          crds={"use_local_context": True, "local_path": str(workdir / "crds")},
                          **extra)
    proc = run_snakemake(workdir, config, "-n", check=False)
    assert snapshot(input_dir) == before, "planning wrote into input_dir"
    assert not (workdir / "results" / "products").exists()
    return proc, proc.stdout + proc.stderr


def assert_fails(workdir, input_dir, *phrases, **extra) -> str:
    return planning_error(*plan(workdir, input_dir, **extra), *phrases)


def test_ifu_exposure_without_regions_extension(tmp_path, input_dir):
    path = input_dir / MRS_EXPOSURES[2]
    with fits.open(path) as hdul:
        kept = fits.HDUList([hdu.copy() for hdu in hdul if hdu.name != "REGIONS"])
    kept.writeto(path, overwrite=True)
    assert_fails(tmp_path, input_dir, str(path), "MIR_MRS", "no REGIONS extension")


def test_cube_for_a_band_no_input_covers(tmp_path, input_dir):
    line = assert_fails(tmp_path, input_dir, "jw01234-o005_spec3_00001_asn", "band=long",
                        "no input covers", "ch1-medium", modes=["MIR_MRS"],
                        steps={"cube_build": {"band": "long"}})
    assert "\n" not in line


def test_nirspec_grating_no_input_covers(tmp_path, input_dir):
    assert_fails(tmp_path, input_dir, "jw01234-o006_spec3_00001_asn", "grating=g395h",
                 "no input covers", "g235m-f170lp", modes=["NRS_IFU"],
                 steps={"cube_build": {"grating": "g395h", "filter": "f290lp"}})


def test_nirspec_grating_without_filter(tmp_path, input_dir):
    assert_fails(tmp_path, input_dir, "jw01234-o006_spec3_00001_asn", "Grating specified",
                 modes=["NRS_IFU"], steps={"cube_build": {"grating": "g235m"}})


def test_mrs_imatch_was_removed(tmp_path, input_dir):
    assert_fails(tmp_path, input_dir, "steps.mrs_imatch", "removed from jwst in 1.20",
                 "master_background", steps={"mrs_imatch": {"skip": False}})


@pytest.fixture
def crds_without_cubepar(crds_cache, tmp_path) -> Path:
    """The project's local CRDS cache with the NIRSpec CUBEPAR entry removed (N/A)."""
    from spec3flow.crds_local import _update_checksum

    cache = tmp_path / "crds_no_cubepar"
    shutil.copytree(crds_cache, cache)
    imap = cache / "mappings" / "jwst" / "jwst_nirspec_0001.imap"
    text = imap.read_text()
    entry = "'jwst_nirspec_cubepar_0001.rmap'"
    assert entry in text
    imap.write_text(text.replace(entry, "'N/A'"))
    _update_checksum(imap)
    (cache / "mappings" / "jwst" / "jwst_nirspec_cubepar_0001.rmap").unlink()
    return cache


def test_missing_cubepar_in_local_context(tmp_path, input_dir, crds_without_cubepar):
    """cube_build cannot run without CUBEPAR: the job fails, its log naming the exposure."""
    config = write_config(tmp_path, input_dir=str(input_dir), results_dir=str(tmp_path / "results"),
                          modes=["NRS_IFU"], steps={"outlier_detection": {"skip": True}},
                          crds={"use_local_context": True, "local_path": str(crds_without_cubepar)},
                          qa={"plots": False})
    proc = run_snakemake(tmp_path, config, check=False)
    assert proc.returncode != 0
    log = tmp_path / "results" / "logs" / "cube_build" / "jw01234-o006_t004_nirspec_g235m.log"
    assert "cube_build__jw01234_o006_t004_nirspec_g235m" in proc.stderr + proc.stdout
    (line,) = [ln for ln in log.read_text().splitlines() if "CUBEPAR" in ln and "ERROR" in ln]
    assert NRS_EXPOSURES[0] in line and "NRS_IFU" in line and "jwst_0001.pmap" in line
    # no half-written product
    assert not list((tmp_path / "results" / "products").glob("*_s3d.fits"))
