"""Unit tests for spec3flow.qa (quick-look plots and program summary)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from PIL import Image
from stdatamodels.jwst import datamodels as dm

from spec3flow import qa

CRDS_CTX = "jwst_1413.pmap"
CAL_VER = "3.0.0"


def _common_meta(model, exp_type="NRS_FIXEDSLIT"):
    model.meta.exposure.type = exp_type
    model.meta.instrument.name = "NIRSPEC" if exp_type.startswith("NRS") else "MIRI"
    if exp_type.startswith("NRS"):
        model.meta.instrument.grating = "G235M"
        model.meta.instrument.filter = "F170LP"
        model.meta.instrument.detector = "NRS1"
    else:
        model.meta.instrument.detector = "MIRIFUSHORT"
        model.meta.instrument.channel = "12"
        model.meta.instrument.band = "SHORT"
    model.meta.calibration_software_version = CAL_VER
    model.meta.ref_file.crds.context_used = CRDS_CTX
    model.meta.target.proposer_name = "NGC-TEST"
    model.meta.cal_step.outlier_detection = "COMPLETE"
    model.meta.cal_step.pixel_replace = "SKIPPED"
    model.meta.cal_step.master_background = "SKIPPED"
    return model


def _spec_table(n, wmin, wmax, flux, err, dq=None):
    table = np.zeros(n, dtype=dm.SpecModel().get_dtype("spec_table"))
    table["WAVELENGTH"] = np.linspace(wmin, wmax, n)
    table["FLUX"] = flux
    table["FLUX_ERROR"] = err
    table["DQ"] = 0 if dq is None else dq
    table["SURF_BRIGHT"] = np.nan
    return table


def _slit_wcs(nx, ny, lam0=1.7, dlam=0.001):
    """Simple 2D slit gWCS: x -> wavelength (um), y -> dec offset."""
    fwd = models.Mapping((1, 1, 0)) | (
        (models.Multiply(0.0) | models.Shift(53.1))
        & (models.Multiply(1e-5) | models.Shift(-27.8))
        & (models.Multiply(dlam) | models.Shift(lam0))
    )
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS(),
                            unit=(u.deg, u.deg))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    world = cf.CompositeFrame([sky, spec], name="world")
    return gwcs_wcs.WCS([(det, fwd), (world, None)])


@pytest.fixture
def x1d_path(tmp_path):
    n = 200
    m = _common_meta(dm.MultiSpecModel())
    m.meta.resample.pointings = 3  # NDRIZ as copied from the s2d
    m.meta.cal_step.resample = "COMPLETE"
    m.meta.cal_step.extract_1d = "COMPLETE"
    flux = 10.0 + np.sin(np.linspace(0, 6, n))
    err = np.full(n, 0.5)
    dq = np.zeros(n, np.uint32)
    dq[:5] = 1  # DO_NOT_USE points must be excluded from S/N and range
    flux[:5] = 1e6
    flux[-3:] = np.nan  # padding
    spec = dm.SpecModel(spec_table=_spec_table(n, 1.6, 3.2, flux, err, dq))
    spec.source_id = 123
    spec.name = "S200A1"
    spec.source_name = "star_123"
    spec.spectral_order = 1
    m.spec.append(spec)
    path = tmp_path / "jw01234-o001_s000000123_nirspec_f170lp-g235m-s200a1_x1d.fits"
    m.save(path)
    return path


@pytest.fixture
def c1d_path(tmp_path):
    n = 100
    m = _common_meta(dm.MultiCombinedSpecModel())
    m.meta.cal_step.combine_1d = "COMPLETE"
    tab = np.zeros(n, dtype=dm.CombinedSpecModel().get_dtype("spec_table"))
    tab["WAVELENGTH"] = np.linspace(2.0, 3.0, n)
    tab["FLUX"] = 4.0
    tab["ERROR"] = 1.0
    tab["N_INPUT"] = 2
    tab["N_INPUT"][10:20] = 4
    sp = m.spec.item()
    sp.spec_table = tab
    sp.source_id = 7
    sp.spectral_order = 1
    m.spec.append(sp)
    path = tmp_path / "jw01234-o001_s000000007_nirspec_f170lp-g235m_c1d.fits"
    m.save(path)
    return path


@pytest.fixture
def s2d_path(tmp_path):
    ny, nx = 20, 300
    m = _common_meta(dm.SlitModel())
    rng = np.random.default_rng(1)
    data = rng.normal(0, 1, (ny, nx)).astype(np.float32)
    data[8:12] += 20.0
    data[:2, :] = np.nan
    m.data = data
    m.err = np.full((ny, nx), 2.0, np.float32)
    m.dq = np.zeros((ny, nx), np.uint32)
    m.dq[:2, :] = 1
    m.source_id = 42
    m.name = "S200A1"
    m.source_name = "galaxy_42"
    m.meta.wcsinfo.dispersion_direction = 1
    m.meta.wcs = _slit_wcs(nx, ny, lam0=1.7, dlam=0.002)
    m.meta.resample.pointings = 4
    m.meta.cal_step.resample = "COMPLETE"
    m.meta.bunit_data = "MJy"
    path = tmp_path / "jw01234-o001_s000000042_nirspec_f170lp-g235m-s200a1_s2d.fits"
    m.save(path)
    return path


@pytest.fixture
def s3d_path(tmp_path):
    nw, ny, nx = 60, 15, 13
    m = _common_meta(dm.IFUCubeModel(), exp_type="MIR_MRS")
    lam = 5.0 + 0.01 * np.arange(nw)
    cube = np.ones((nw, ny, nx), np.float32)
    cube[:, 9, 4] = 50.0 + np.arange(nw)  # brightest spaxel at (x=4, y=9)
    cube[:, 0, :] = np.nan
    m.data = cube
    m.err = np.full(cube.shape, 0.5, np.float32)
    m.dq = np.zeros(cube.shape, np.uint32)
    m.meta.wcsinfo.crval3 = float(lam[0])
    m.meta.wcsinfo.cdelt3 = 0.01
    m.meta.wcsinfo.crpix3 = 1.0
    m.meta.wcsinfo.ctype3 = "WAVE"
    m.meta.wcsinfo.cunit3 = "um"
    m.meta.cal_step.cube_build = "COMPLETE"
    m.meta.bunit_data = "MJy/sr"
    path = tmp_path / "jw01234-o002_t001_miri_ch1-short_s3d.fits"
    m.save(path)
    return path


@pytest.fixture
def crf_path(tmp_path):
    ny, nx = 30, 400
    m = _common_meta(dm.SlitModel())
    m.data = np.random.default_rng(2).normal(5, 1, (ny, nx)).astype(np.float32)
    m.err = np.ones((ny, nx), np.float32)
    m.dq = np.zeros((ny, nx), np.uint32)
    m.dq[10, 100] = 1 | 16  # outlier
    m.dq[11, 200] = 1 | 16
    m.dq[0, :] = 1  # other DO_NOT_USE
    m.wavelength = np.tile(np.linspace(1.7, 3.1, nx), (ny, 1)).astype(np.float32)
    m.source_id = 42
    m.name = "S200A1"
    path = tmp_path / "jw01234001001_03101_00001_nrs1_s000000042_crf.fits"
    m.save(path)
    return path


def _assert_png(png):
    assert png.exists() and png.stat().st_size > 5000
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size[0] > 400 and im.size[1] > 200
    # no temp files left behind
    assert not [p for p in os.listdir(png.parent) if p.endswith(".tmp.png")]


@pytest.mark.parametrize("fixture", ["x1d_path", "c1d_path", "s2d_path", "s3d_path", "crf_path"])
def test_plot_product_writes_png(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    png = tmp_path / "plots" / (path.stem + ".png")
    out = qa.plot_product(path, png)
    assert out == png
    _assert_png(png)


def test_plot_cli_takes_product_png_pairs(s2d_path, x1d_path, tmp_path):
    """A plot_batch job's command: one process plots several products."""
    pngs = [tmp_path / "s2d.png", tmp_path / "x1d.png"]
    assert qa.main(["plot", str(s2d_path), str(pngs[0]), str(x1d_path), str(pngs[1])],
                   allow_remote=False) == 0
    for png in pngs:
        _assert_png(png)
    with pytest.raises(SystemExit):
        qa.main(["plot", str(s2d_path)], allow_remote=False)


def test_plot_unsupported_product(tmp_path):
    m = dm.ImageModel(np.zeros((4, 4), np.float32))
    path = tmp_path / "jw01234_something_i2d.fits"
    m.save(path)
    with pytest.raises(ValueError, match="jw01234_something_i2d.fits"):
        qa.plot_product(path, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    junk = tmp_path / "junk_foo.fits"
    junk.write_bytes(b"nope")
    with pytest.raises(ValueError, match="junk_foo.fits"):
        qa.plot_product(junk, tmp_path / "y.png")


def test_plot_failure_leaves_no_png(x1d_path, tmp_path, monkeypatch):
    png = tmp_path / "out" / "fail.png"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(qa.plt.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        qa.plot_product(x1d_path, png)
    assert not png.exists()
    assert not list(png.parent.iterdir())


def test_summary_values(x1d_path, c1d_path, s2d_path, s3d_path, crf_path, tmp_path):
    csv = tmp_path / "summary.csv"
    df = qa.write_summary([x1d_path, c1d_path, s2d_path, s3d_path, crf_path], csv)
    assert csv.exists()
    assert list(df.columns[: len(qa.SUMMARY_COLUMNS)]) == qa.SUMMARY_COLUMNS
    by = df.set_index("product_type")
    assert by["error"].isna().all()

    x1d = by.loc["x1d"]
    assert x1d["source_id"] == 123
    assert x1d["source_name"] == "star_123"
    assert x1d["exp_type"] == "NRS_FIXEDSLIT"
    assert x1d["mode"] == "G235M F170LP"
    assert x1d["n_input_files"] == 3 and x1d["n_input_origin"].startswith("NDRIZ")
    good = 10.0 + np.sin(np.linspace(0, 6, 200))[5:-3]
    assert x1d["median_snr"] == pytest.approx(np.median(good / 0.5))
    w = np.linspace(1.6, 3.2, 200)
    assert x1d["wavelength_min"] == pytest.approx(w[5])
    assert x1d["wavelength_max"] == pytest.approx(w[-4])
    assert x1d["step_extract_1d"] == "COMPLETE"
    assert x1d["step_outlier_detection"] == "COMPLETE"
    assert x1d["step_pixel_replace"] == "SKIPPED"
    assert x1d["jwst_version"] == CAL_VER
    assert x1d["crds_context"] == CRDS_CTX

    c1d = by.loc["c1d"]
    assert c1d["median_snr"] == pytest.approx(4.0)
    assert c1d["n_input_files"] == 4
    assert c1d["source_id"] == 7
    assert c1d["step_combine_1d"] == "COMPLETE"
    assert (c1d["wavelength_min"], c1d["wavelength_max"]) == pytest.approx((2.0, 3.0))

    s2d = by.loc["s2d"]
    assert s2d["source_id"] == 42 and s2d["source_name"] == "galaxy_42"
    assert s2d["n_input_files"] == 4
    assert s2d["wavelength_min"] == pytest.approx(1.7)
    assert s2d["wavelength_max"] == pytest.approx(1.7 + 0.002 * 299)
    assert s2d["step_resample"] == "COMPLETE"
    assert 0 < s2d["median_snr"] < 2  # noise-dominated, rows 0-1 (DO_NOT_USE) excluded

    s3d = by.loc["s3d"]
    assert s3d["exp_type"] == "MIR_MRS"
    assert s3d["median_snr"] == pytest.approx(2.0)
    assert (s3d["wavelength_min"], s3d["wavelength_max"]) == pytest.approx((5.0, 5.59))
    assert s3d["step_cube_build"] == "COMPLETE"
    assert s3d["source_name"] == "NGC-TEST"

    crf = by.loc["crf"]
    assert crf["n_input_files"] == 1
    assert crf["source_id"] == 42
    assert (crf["wavelength_min"], crf["wavelength_max"]) == pytest.approx((1.7, 3.1), rel=1e-6)

    # CSV round-trip keeps the columns
    import pandas as pd

    back = pd.read_csv(csv)
    assert list(back.columns) == list(df.columns)
    assert len(back) == 5


def test_summary_in_parallel_equals_serial(x1d_path, c1d_path, s2d_path, s3d_path, crf_path, tmp_path):
    paths = [x1d_path, c1d_path, s2d_path, s3d_path, crf_path, tmp_path / "missing_x1d.fits"]
    serial = qa.summarize_products(paths)
    parallel = qa.summarize_products(paths, jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_summary_bad_file_gets_error_row(x1d_path, tmp_path):
    bad = tmp_path / "broken_x1d.fits"
    bad.write_bytes(b"not a fits file")
    df = qa.summarize_products([x1d_path, bad])
    assert len(df) == 2
    row = df.set_index("product").loc["broken_x1d.fits"]
    assert isinstance(row["error"], str) and row["error"]


def test_product_suffix():
    assert qa.product_suffix("a/jw1_s000000001_nirspec_x1d.fits") == "x1d"
    assert qa.product_suffix("jw1_t001_miri_ch1-short_s3d.fits") == "s3d"


def test_quicklook_job_forks_from_the_warm_server_and_records_memory(x1d_path, tmp_path):
    """The warm path: the job runs in a child of the server (same PNG as in-process) and
    the ledger gets the server's job line and the job's memory line, joined by pid."""
    import json

    from spec3flow import warm

    socket_path, ledger = tmp_path / "warm.sock", tmp_path / "jobs.jsonl"
    server = warm.start_background(socket_path, tmp_path / "warm.log", ledger)
    assert server is not None, (tmp_path / "warm.log").read_text()
    png = tmp_path / "warm.png"
    try:
        assert warm.run_remote(["plot", str(x1d_path), str(png)], os.fspath(socket_path),
                               module="spec3flow.qa") == 0
    finally:
        warm.shutdown(socket_path)
        server.wait(timeout=60)
    _assert_png(png)
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    (job,) = [r for r in lines if r.get("kind") != "memory"]
    (memory,) = [r for r in lines if r.get("kind") == "memory"]
    assert job["returncode"] == 0 and job["pid"] == memory["pid"]
    assert 0 < memory["own_peak_mb"] < memory["peak_rss_mb"]
    assert memory["shared_mb"] > 50  # the server's imports, shared copy-on-write
