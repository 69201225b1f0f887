"""Fast unit tests for spec3flow.synth.wfss (synthetic NIS/NRC/MIR_WFSS Stage 2 data).

No pipeline run here (the end-to-end proof runs Spec3Pipeline; ~10 s per mode).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3flow.synth import wfss


@pytest.fixture(scope="module")
def nis_program(tmp_path_factory):
    out = tmp_path_factory.mktemp("nis_wfss")
    paths = wfss.generate_wfss(out, "nis_wfss", n_sources=3, n_dithers=2, seed=3)
    return out, paths


def _grism_cals(paths):
    return [p for p in paths if p.name.endswith("_cal.fits") and "_02102_" in p.name]


@pytest.mark.parametrize("mode", wfss.WFSS_MODES)
def test_slit_wcs_round_trip(mode):
    cfg = wfss.WFSS_CONFIGS[mode]
    w = wfss.build_exposure_wcs(cfg, 150.1, 2.2)
    # detector <-> world is invertible
    det2w = w.get_transform("detector", "world")
    ra, dec, lam, order = det2w(1000.3, 500.7, 2.0, 1)
    x, y, _, _ = det2w.inverse(ra, dec, lam, order)
    assert abs(x - 1000.3) < 1e-6 and abs(y - 500.7) < 1e-6
    # slit: grism_slit -> world (ra, dec of the source, wavelength, order) and back
    x0, y0 = 600.25, 400.75
    g = wfss._slit_geometry(cfg, x0, y0, 1)
    sw = wfss.build_slit_wcs(cfg, w, g.xmin, g.ymin, g.shape, x0, y0)
    assert sw.available_frames == ["grism_slit", "grism_detector", "detector", "v2v3", "world"]
    ny, nx = g.shape
    if cfg.dispaxis == 1:
        xs, ys = np.array([2.0, nx / 2, nx - 3.0]), np.full(3, ny / 2)
    else:
        xs, ys = np.full(3, nx / 2), np.array([2.0, ny / 2, ny - 3.0])
    ra, dec, lam, order = sw(xs, ys)
    sra, sdec, _, _ = det2w(x0, y0, 2.0, 1)
    np.testing.assert_allclose(ra, sra, atol=1e-9)
    np.testing.assert_allclose(dec, sdec, atol=1e-9)
    assert np.all(order == 1)
    # wavelength is the linear trace solution
    along = (xs + g.xmin - x0) if cfg.dispaxis == 1 else (ys + g.ymin - y0)
    t = (along - cfg.trace_start) / cfg.trace_len
    np.testing.assert_allclose(lam, cfg.lam_min + (cfg.lam_max - cfg.lam_min) * t, rtol=1e-6)
    # backward: dispersion coordinate comes back exactly; the cross-dispersion one is the
    # trace centre at that wavelength
    bx, by = sw.backward_transform(ra, dec, lam, order)
    if cfg.dispaxis == 1:
        np.testing.assert_allclose(bx, xs, atol=1e-4)
        np.testing.assert_allclose(by, y0 + cfg.trace_tilt * t - g.ymin, atol=1e-4)
    else:
        np.testing.assert_allclose(by, ys, atol=1e-4)
        np.testing.assert_allclose(bx, x0 + cfg.trace_tilt * t - g.xmin, atol=1e-4)


def test_files_headers_and_missing_source(nis_program):
    out, paths = nis_program
    names = [p.name for p in paths]
    assert names[0] == "jw01234010001_02101_00001_nis_cal.fits"  # direct image
    cals = _grism_cals(paths)
    assert [p.name for p in cals] == [
        "jw01234010001_02102_00001_nis_cal.fits", "jw01234010001_02102_00002_nis_cal.fits"]
    h = fits.getheader(paths[0])
    assert (h["EXP_TYPE"], h["FILTER"], h["PUPIL"]) == ("NIS_IMAGE", "CLEAR", "F200W")
    ids = []
    for p in cals:
        h = fits.getheader(p)
        assert (h["EXP_TYPE"], h["FILTER"], h["PUPIL"], h["SUBARRAY"]) == (
            "NIS_WFSS", "GR150C", "F200W", "FULL")
        assert h["TARGETID"] == 1 and h["OBSERVTN"] == "010"
        with dm.open(p) as m:
            assert isinstance(m, dm.MultiSlitModel)
            assert m.slits[0].meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            ids.append([s.source_id for s in m.slits])
            for s in m.slits:
                assert s.meta.wcsinfo.dispersion_direction == 1
                assert s.meta.wcsinfo.spectral_order == 1
                assert s.wavelength.shape == s.data.shape
                assert s.meta.bunit_data == "MJy/sr"
                assert s.meta.photometry.pixelarea_steradians > 0
                # wavelength array equals the WCS
                wl = s.meta.wcs(3.0, 4.0)[2]
                assert abs(wl - s.wavelength[4, 3]) < 1e-5
    assert ids == [[1, 2, 3], [1, 2]]  # source 3 is off the detector in dither 2
    rows = list(csv.DictReader((out / "truth_nis_wfss_sources.csv").open()))
    assert [r["n_exposures"] for r in rows] == ["2", "2", "1"]
    assert rows[2]["missing_from"] == "jw01234010001_02102_00002_nis_cal.fits"


def test_flux_scale_matches_truth(nis_program):
    """Column sums * pixel area = truth F_nu (what the spec3 box extraction returns)."""
    out, paths = nis_program
    cfg = wfss.WFSS_CONFIGS["nis_wfss"]
    rows = {int(r["source_id"]): r for r in csv.DictReader((out / "truth_nis_wfss_sources.csv").open())}
    with dm.open(_grism_cals(paths)[0]) as m:
        s = m.slits[0]
        src = rows[s.source_id]
        ws = wfss.WfssSource(s.source_id, float(src["ra"]), float(src["dec"]),
                             float(src["f0_jy"]), float(src["alpha"]), float(src["line_um"]),
                             float(src["line_jy"]), float(src["line_sigma_um"]))
        data = np.where(s.dq & 1, 0.0, s.data)  # DO_NOT_USE pixels hold CRs / hot pixels
        flux = np.nansum(data, axis=0) * cfg.pixarea_sr * 1e6
        lam = s.wavelength[s.data.shape[0] // 2]
        truth = wfss.source_flux_jy(ws, lam, float(src["lam_c_um"]))
        inner = slice(5, -5)
        ratio = np.median(flux[inner] / truth[inner])
        assert 0.97 < ratio < 1.03


def test_determinism(tmp_path):
    a = wfss.generate_wfss(tmp_path / "a", "mir_wfss", n_sources=2, n_dithers=2, seed=7,
                           direct_image=False)
    b = wfss.generate_wfss(tmp_path / "b", "mir_wfss", n_sources=2, n_dithers=2, seed=7,
                           direct_image=False)
    for pa, pb in zip(a, b):
        assert pa.name == pb.name
        if pa.suffix == ".csv":
            assert pa.read_text() == pb.read_text()
            continue
        with dm.open(pa) as ma, dm.open(pb) as mb:
            for sa, sb in zip(ma.slits, mb.slits):
                np.testing.assert_array_equal(sa.data, sb.data)
                np.testing.assert_array_equal(sa.dq, sb.dq)
    c = wfss.generate_wfss(tmp_path / "c", "mir_wfss", n_sources=2, n_dithers=2, seed=8,
                           direct_image=False)
    with dm.open(a[0]) as ma, dm.open(c[0]) as mc:
        assert not np.array_equal(ma.slits[0].data, mc.slits[0].data)


def test_associations_from_headers(nis_program, tmp_path):
    from spec3flow.associations import generate_associations, pool_from_cal_files

    out, _ = nis_program
    written = generate_associations(pool_from_cal_files(out), tmp_path, modes=["NIS_WFSS"])
    assert [p.name for p in written] == ["jw01234-o010_spec3_00001_asn.json"]
    import json

    asn = json.loads(written[0].read_text())
    assert asn["asn_rule"] == "candidate_Asn_Lv3WFSSNIS"
    assert asn["products"][0]["name"] == "jw01234-o010_t001_niriss_f200w-gr150c"
    assert len(asn["products"][0]["members"]) == 2


def test_bad_mode(tmp_path):
    with pytest.raises(ValueError):
        wfss.generate_wfss(tmp_path, "nrs_wfss")
