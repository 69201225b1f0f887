"""IFU spectroscopy (NIRSpec IFU, MIRI MRS) through Snakemake equals Spec3Pipeline.

One synthetic program, 2 dithers per mode (NRS_IFU obs 006: G235M/F170LP; MIR_MRS obs 005:
MIRIFUSHORT ch1B+ch2B and MIRIFULONG ch3A+ch4A, so spectral_leak corrects ch3A), run by
the workflow and by Spec3Pipeline on the same associations and CRDS context.

A second program (``--ifu-background``) adds a uniform sky (known analytically:
``sky_spectrum_mjysr()`` of the synth modules, and the truth CSVs) to every exposure and
dedicated background observations (NRS_IFU obs 007, MIR_MRS obs 008, 2 exposures per
detector, BKGDTARG=T, with their Stage 2 x1d).  jwst's rules make six associations from
its headers; only the two background candidates are shipped in the input directory
(c1000 MRS, c1001 NRS: the background x1d are ``exptype: background`` members, so
master_background subtracts the sky), and those two run both ways.  Left in, the sky
would be 9-160% of the source in the extraction aperture: the products are judged
against the injected truth.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from astropy.io import fits
from conftest import make_program, run_baseline, run_snakemake, write_config

from spec3flow.compare import compare_dirs
from spec3flow.median_slabs import LOG_PREFIX as MEDIAN_IN_SLABS
from spec3flow.synth import miri_mrs, nirspec_ifu

pytestmark = pytest.mark.e2e

MRS = "jw01234-o005_t003_miri"
NRS = "jw01234-o006_t004_nirspec"
MRS_BANDS = ["ch1-medium", "ch2-medium", "ch3-short", "ch4-short"]
MRS_EXPOSURES = ((1, "mirifushort"), (2, "mirifushort"), (3, "mirifulong"), (4, "mirifulong"))
IFU_MODES = ["NRS_IFU", "MIR_MRS"]
# background program: the master background candidates (science + background x1d)
MRS_MB, NRS_MB = "jw01234-c1000_t003_miri", "jw01234-c1001_t004_nirspec"
MB_ASNS = ["jw01234-c1000_spec3_00001_asn.json", "jw01234-c1001_spec3_00001_asn.json"]


def _cubes(mrs: str, nrs: str) -> list[str]:
    return [f"{mrs}_{band}" for band in MRS_BANDS] + [f"{nrs}_g235m-f170lp"]


def _crfs(mrs_obs: str, nrs_obs: str, mrs_asn: str, nrs_asn: str) -> list[str]:
    return ([f"jw01234{mrs_obs}001_02101_{i:05d}_{det}_{mrs_asn}_crf.fits"
             for i, det in MRS_EXPOSURES]
            + [f"jw01234{nrs_obs}001_02101_{i:05d}_nrs1_{nrs_asn}_crf.fits" for i in (1, 2)])


CUBES = _cubes(MRS, NRS)
CRFS = _crfs("005", "006", "o005", "o006")
MB_CUBES = _cubes(MRS_MB, NRS_MB)
MB_CRFS = _crfs("005", "006", "c1000", "c1001")


def _ship_master_background_associations(input_dir):
    """Put only the two background candidates' associations (what jwst's rules make from
    the headers, member names next to the files as MAST ships them) into ``input_dir``:
    the workflow then runs those as given (``associations.source: auto``)."""
    from spec3flow.plan import make_associations

    written = make_associations(input_dir, input_dir, IFU_MODES)
    assert sorted(p.name for p in written) == sorted(
        f"jw01234-{c}_spec3_00001_asn.json" for c in ("c1000", "c1001", "o005", "o006", "o007", "o008"))
    for path in written:
        if path.name not in MB_ASNS:
            path.unlink()


def _run_both_ways(root, crds_cache, *synth_args, ship=None, fast_paths=True):
    """Generate an IFU program (``ship``: then prepare its input directory), run the
    workflow on it, run Spec3Pipeline on the associations the workflow ran.
    ``fast_paths``: cube_build split by exposure, outlier_detection's median in slabs."""
    input_dir = make_program(root / "input", ("ifu",), 3, 7, "--n-dithers", "2", *synth_args)
    if ship is not None:
        ship(input_dir)
    config = write_config(root, input_dir=str(input_dir), results_dir=str(root / "results"),
                          modes=IFU_MODES,
                          execution={"cube_build_partials": fast_paths,
                                     "cube_build_partial_min_pixels": 0,  # small test exposures
                                     "median_filter_in_slabs": fast_paths},
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    run_snakemake(root, config)
    run_baseline(sorted((root / "results" / "asn").glob("*_asn.json")), root / "baseline", crds_cache)
    return {"root": root, "input": input_dir, "results": root / "results", "baseline": root / "baseline"}


@pytest.fixture(scope="module")
def ifu_program(tmp_path_factory, crds_cache):
    """Cubes built one job per exposure plus a gather job (spec3flow.cube_partials),
    outlier_detection's median filter in row slabs (spec3flow.median_slabs)."""
    program = _run_both_ways(tmp_path_factory.mktemp("ifu"), crds_cache)
    assert len(list((program["results"] / "logs" / "cube_build_partial").rglob("*.log"))) == 10
    assert list((program["results"] / "intermediate").rglob("*.cubepart")) == []  # temp()
    outlier_logs = list((program["results"] / "logs" / "outlier_detection").glob("*.log"))
    assert len(outlier_logs) == 2
    assert all(MEDIAN_IN_SLABS in log.read_text() for log in outlier_logs)
    return program


@pytest.fixture(scope="module")
def ifu_background_program(tmp_path_factory, crds_cache):
    """Cubes built one job per cube and a whole-frame median filter, as Spec3Pipeline's steps do."""
    program = _run_both_ways(tmp_path_factory.mktemp("ifu_bkg"), crds_cache, "--ifu-background",
                             ship=_ship_master_background_associations, fast_paths=False)
    assert not (program["results"] / "logs" / "cube_build_partial").exists()
    outlier_logs = list((program["results"] / "logs" / "outlier_detection").glob("*.log"))
    assert outlier_logs and not any(MEDIAN_IN_SLABS in log.read_text() for log in outlier_logs)
    assert sorted(p.name for p in (program["results"] / "asn").glob("*_asn.json")) == MB_ASNS
    return program


def _assert_products_equal(program, crfs, cubes):
    products = program["results"] / "products"
    only_workflow, only_pipeline, diffs = compare_dirs(products, program["baseline"])
    assert only_workflow == [] and only_pipeline == []
    expected = sorted(crfs + [f"{c}_s3d.fits" for c in cubes] + [f"{c}_x1d.fits" for c in cubes])
    assert sorted(d.name for d in diffs) == expected
    for diff in diffs:
        # every array and table column exactly equal, NaN in the same places
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], (diff.name, diff.keyword_diffs)


def test_ifu_products_equal_spec3pipeline(ifu_program):
    _assert_products_equal(ifu_program, CRFS, CUBES)


def test_ifu_status_keywords(ifu_program):
    products = ifu_program["results"] / "products"
    for crf in CRFS:
        assert fits.getval(products / crf, "S_OUTLIR") == "COMPLETE"
    for cube in CUBES:
        assert fits.getval(products / f"{cube}_s3d.fits", "S_IFUCUB") == "COMPLETE"
        assert fits.getval(products / f"{cube}_x1d.fits", "S_EXTR1D") == "COMPLETE"
    # spectral_leak corrects ch3A from ch1B; it writes the MRS x1d files
    assert fits.getval(products / f"{MRS}_ch3-short_x1d.fits", "S_SPLEAK") == "COMPLETE"


def _truth_rows(path, band=None):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if band is None or r["band"] == band]


def _truth(path, band=None):
    rows = _truth_rows(path, band)
    wave = np.array([float(r["wavelength_um"]) for r in rows])
    flux = np.array([float(r["source_flux_jy"]) for r in rows])
    leak = np.array([float(r.get("leak_flux_jy") or 0.0) for r in rows])
    return wave, flux, leak


def _truth_of_cube(input_dir, cube):
    """Injected source (Jy) and sky (MJy/sr) spectra of a cube's band."""
    if "_miri" in cube:
        path, band = input_dir / "mrs_truth_spectrum.csv", cube.split("_")[-1]
    else:
        path, band = input_dir / "nrs_ifu_truth_spectrum.csv", None
    rows = _truth_rows(path, band)
    return {k: np.array([float(r[k]) for r in rows])
            for k in ("wavelength_um", "source_flux_jy", "sky_mjy_sr")}


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


# ----------------------------------------------------------------------- master background
def test_ifu_background_products_equal_spec3pipeline(ifu_background_program):
    _assert_products_equal(ifu_background_program, MB_CRFS, MB_CUBES)


def test_master_background_status(ifu_background_program):
    """S_MSBSUB = COMPLETE in every product of the associations with background members."""
    products = ifu_background_program["results"] / "products"
    for name in MB_CRFS + [f"{c}_{s}.fits" for c in MB_CUBES for s in ("s3d", "x1d")]:
        assert fits.getval(products / name, "S_MSBSUB") == "COMPLETE", name


def test_master_background_subtracts_the_injected_sky(ifu_background_program):
    """Detector level: what master_background took out of each science exposure (its cal
    file minus the crf) is the injected sky at each pixel's wavelength."""
    products, input_dir = ifu_background_program["results"] / "products", ifu_background_program["input"]
    for crf in MB_CRFS:
        cal = input_dir / (crf.rsplit("_", 2)[0] + "_cal.fits")
        before, regions = fits.getdata(cal, "SCI"), fits.getdata(cal, "REGIONS")
        after = fits.getdata(products / crf, "SCI")
        if "_mirifu" in crf:
            module = miri_mrs
            lam = miri_mrs.wavelength_map(fits.getval(cal, "DETECTOR"), before.shape[0], regions)
        else:
            module = nirspec_ifu
            lam = nirspec_ifu.wavelength_map(before.shape[1], regions)
        on = np.isfinite(lam) & np.isfinite(before) & np.isfinite(after)
        assert on.sum() > 10_000, crf
        removed = (before - after)[on] / module.sky_spectrum_mjysr(lam[on])
        assert abs(np.median(removed) - 1) < 0.01, (crf, np.median(removed))


def _sky_mjysr(cube, wave):
    """The injected sky (MJy/sr) at ``wave`` (um), from the generator's own model."""
    return (miri_mrs if "_miri" in cube else nirspec_ifu).sky_spectrum_mjysr(wave)


MB_IDS = [c.split("_", 3)[-1] for c in MB_CUBES]


@pytest.mark.parametrize("cube", MB_CUBES, ids=MB_IDS)
def test_master_background_removes_sky_from_spectrum(ifu_background_program, cube):
    """The x1d is the injected source within the noise; the sky flux in its aperture
    (9-160% of the source) would not be: what is left of it is < 5%."""
    products = ifu_background_program["results"] / "products"
    truth = _truth_of_cube(ifu_background_program["input"], cube)
    # the truth CSV's sky is the generator's analytic sky
    np.testing.assert_allclose(truth["sky_mjy_sr"], _sky_mjysr(cube, truth["wavelength_um"]),
                               rtol=1e-6)
    table = fits.getdata(products / f"{cube}_x1d.fits", "EXTRACT1D")
    spaxel_sr = fits.getval(products / f"{cube}_s3d.fits", "PIXAR_SR", "SCI")
    good = np.isfinite(table["FLUX"]) & (table["FLUX"] != 0) & (table["FLUX_ERROR"] > 0)
    assert good.sum() > 30
    wave, flux, err = table["WAVELENGTH"][good], table["FLUX"][good], table["FLUX_ERROR"][good]
    source = np.interp(wave, truth["wavelength_um"], truth["source_flux_jy"])
    sky = _sky_mjysr(cube, wave) * table["NPIXELS"][good] * spaxel_sr * 1.0e6  # Jy in aperture
    # the sky left in would be far outside the 2% tolerance below
    assert np.median(sky / source) > 0.05
    assert abs(np.median((flux - source) / sky)) < 0.05
    assert abs(np.median(flux / source) - 1) < 0.02
    assert np.median(np.abs(flux - source) / err) < 2.0


def _far_from_source(cube_path, radius_arcsec=2.0):
    """Wavelengths (um) and the spaxels farther than ``radius_arcsec`` from the source."""
    with fits.open(cube_path) as hdul:
        data, hdr = hdul["SCI"].data, hdul["SCI"].header
    scale = abs(hdr["CDELT1"]) * 3600.0
    wave = hdr["CRVAL3"] + (np.arange(data.shape[0]) + 1 - hdr["CRPIX3"]) * hdr["CDELT3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spaxels off the field
        image = np.nanmedian(data, axis=0)
    peak = np.unravel_index(np.nanargmax(np.where(np.isfinite(image), image, -np.inf)), image.shape)
    yy, xx = np.indices(image.shape)
    far = (np.hypot(yy - peak[0], xx - peak[1]) * scale > radius_arcsec) & np.isfinite(image)
    assert far.sum() > 100
    return wave, data[:, far]


@pytest.mark.parametrize("cube", MB_CUBES, ids=MB_IDS)
def test_master_background_empties_sky_spaxels(ifu_background_program, cube):
    """Spaxels away from the point source held only the sky: ~0 after subtraction,
    < 5% of the injected sky level."""
    products = ifu_background_program["results"] / "products"
    wave, far = _far_from_source(products / f"{cube}_s3d.fits")
    sky = _sky_mjysr(cube, wave)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        residual = np.nanmedian(far, axis=1) / sky  # per wavelength, in units of the sky
    residual = residual[np.isfinite(residual)]
    assert len(residual) > 30
    assert abs(np.median(residual)) < 0.05
    assert abs(float(np.nanmedian(far))) < 0.05 * float(np.median(sky))
