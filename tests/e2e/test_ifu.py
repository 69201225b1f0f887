"""IFU spectroscopy (NIRSpec IFU, MIRI MRS) through Snakemake equals Spec3Pipeline.

One synthetic program, 2 dithers per mode (NRS_IFU obs 006: G235M/F170LP; MIR_MRS obs 005:
MIRIFUSHORT ch1B+ch2B and MIRIFULONG ch3A+ch4A, so spectral_leak corrects ch3A), run by
the workflow and by Spec3Pipeline on the same associations and CRDS context.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from astropy.io import fits
from conftest import make_program, run_baseline, run_snakemake, write_config

from spec3flow.compare import compare_dirs

pytestmark = pytest.mark.e2e

MRS = "jw01234-o005_t003_miri"
NRS = "jw01234-o006_t004_nirspec"
MRS_BANDS = ["ch1-medium", "ch2-medium", "ch3-short", "ch4-short"]
CUBES = [f"{MRS}_{band}" for band in MRS_BANDS] + [f"{NRS}_g235m-f170lp"]
CRFS = ([f"jw01234005001_02101_{i:05d}_{det}_o005_crf.fits"
         for i, det in ((1, "mirifushort"), (2, "mirifushort"), (3, "mirifulong"), (4, "mirifulong"))]
        + [f"jw01234006001_02101_{i:05d}_nrs1_o006_crf.fits" for i in (1, 2)])


@pytest.fixture(scope="module")
def ifu_program(tmp_path_factory, crds_cache):
    root = tmp_path_factory.mktemp("ifu")
    input_dir = make_program(root / "input", ("ifu",), 3, 7, "--n-dithers", "2")
    config = write_config(root, input_dir=str(input_dir), results_dir=str(root / "results"),
                          modes=["NRS_IFU", "MIR_MRS"],
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    run_snakemake(root, config)
    run_baseline(sorted((root / "results" / "asn").glob("*_asn.json")), root / "baseline", crds_cache)
    return {"root": root, "input": input_dir, "results": root / "results", "baseline": root / "baseline"}


def test_ifu_products_equal_spec3pipeline(ifu_program):
    products = ifu_program["results"] / "products"
    only_workflow, only_pipeline, diffs = compare_dirs(products, ifu_program["baseline"])
    assert only_workflow == [] and only_pipeline == []
    expected = sorted(CRFS + [f"{c}_s3d.fits" for c in CUBES] + [f"{c}_x1d.fits" for c in CUBES])
    assert sorted(d.name for d in diffs) == expected
    for diff in diffs:
        # every array and table column exactly equal, NaN in the same places
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], (diff.name, diff.keyword_diffs)


def test_ifu_status_keywords(ifu_program):
    products = ifu_program["results"] / "products"
    for crf in CRFS:
        assert fits.getval(products / crf, "S_OUTLIR") == "COMPLETE"
    for cube in CUBES:
        assert fits.getval(products / f"{cube}_s3d.fits", "S_IFUCUB") == "COMPLETE"
        assert fits.getval(products / f"{cube}_x1d.fits", "S_EXTR1D") == "COMPLETE"
    # spectral_leak corrects ch3A from ch1B; it writes the MRS x1d files
    assert fits.getval(products / f"{MRS}_ch3-short_x1d.fits", "S_SPLEAK") == "COMPLETE"


def _truth(path, band=None):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if band is None or r["band"] == band]
    wave = np.array([float(r["wavelength_um"]) for r in rows])
    flux = np.array([float(r["source_flux_jy"]) for r in rows])
    leak = np.array([float(r.get("leak_flux_jy") or 0.0) for r in rows])
    return wave, flux, leak


def _spectrum(path):
    data = fits.getdata(path, "EXTRACT1D")
    good = np.isfinite(data["FLUX"]) & (data["FLUX"] != 0) & (data["FLUX_ERROR"] > 0)
    return data["WAVELENGTH"][good], data["FLUX"][good], data["FLUX_ERROR"][good]


@pytest.mark.parametrize("cube", CUBES)
def test_injected_flux_recovered(ifu_program, cube):
    """The point source's injected spectrum comes back from the x1d within the noise."""
    products, input_dir = ifu_program["results"] / "products", ifu_program["input"]
    if cube.startswith(MRS):
        wave_t, flux_t, _ = _truth(input_dir / "mrs_truth_spectrum.csv", cube.split("_")[-1])
    else:
        wave_t, flux_t, _ = _truth(input_dir / "nrs_ifu_truth_spectrum.csv")
    wave, flux, err = _spectrum(products / f"{cube}_x1d.fits")
    assert len(wave) > 30
    truth = np.interp(wave, wave_t, flux_t)
    assert abs(np.median(flux / truth) - 1) < 0.02
    assert np.median(np.abs(flux - truth) / err) < 2.0


def test_spectral_leak_removes_injected_leak(ifu_program):
    """ch3A: extract_1d's spectrum (an intermediate) holds the injected 2nd-order leak;
    spectral_leak's x1d is back on the source spectrum."""
    results, input_dir = ifu_program["results"], ifu_program["input"]
    wave_t, flux_t, leak_t = _truth(input_dir / "mrs_truth_spectrum.csv", "ch3-short")
    name = f"{MRS}_ch3-short_x1d.fits"
    (before,) = (results / "intermediate").glob(f"*/extract_1d/{name}")
    offsets = []
    for path in (before, results / "products" / name):
        wave, flux, _ = _spectrum(path)
        offsets.append(np.median(flux / np.interp(wave, wave_t, flux_t)) - 1)
    leak = np.median(np.interp(wave, wave_t, leak_t) / np.interp(wave, wave_t, flux_t))
    assert leak > 0.005
    assert abs(offsets[0] - leak) < abs(offsets[0])  # before: source + leak
    assert abs(offsets[1]) < 0.5 * abs(offsets[0])  # after: the source


def test_quicklook_plots_for_every_cube_and_spectrum(ifu_program):
    qa = ifu_program["results"] / "qa"
    for cube in CUBES:
        for suffix in ("s3d", "x1d"):
            png = qa / f"{cube}_{suffix}.png"
            assert png.is_file() and png.stat().st_size > 1000, png
