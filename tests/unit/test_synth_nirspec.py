"""Unit tests for the synthetic NIRSpec MOS / FS Stage 2 generator.

Fast tests check file layout, headers, WCS invertibility, determinism and the
missing-source exposure.  ``test_spec3_mos_small`` runs the real Spec3Pipeline (in a
subprocess, offline CRDS cache in tmp) on a 2-source MOS program and compares the x1d
flux with the truth table and the crf DQ with the cosmic-ray table (~30 s).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from spec3flow.synth.common import ExposureId, jwst_filename, make_noise, make_rng
from spec3flow.synth.nirspec import (
    generate_nirspec_fs,
    generate_nirspec_mos,
    make_slit_wcs,
    mos_product_source_id,
    source_flux_jy,
)

MOS_NAMES = [f"jw01234001001_02101_0000{k}_nrs1_cal.fits" for k in (1, 2, 3)]
FS_NAMES = [f"jw01234002001_02101_0000{k}_nrs1_cal.fits" for k in (1, 2, 3)]


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def mos_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mos")
    files = generate_nirspec_mos(d, n_sources=3, seed=7, nx=120, virtual_slit=True)
    assert [f.name for f in files] == MOS_NAMES
    return d


@pytest.fixture(scope="module")
def fs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs")
    files = generate_nirspec_fs(d, seed=7, nx=120)
    assert [f.name for f in files] == FS_NAMES
    return d


def test_filenames_and_ids():
    e = ExposureId(program="01234", observation=2, visit=1, visit_group=2, sequence=1,
                   activity=1, exposure=3, detector="NRS2")
    assert e.filename() == "jw01234002001_02101_00003_nrs2_cal.fits"
    assert e.filename() == jwst_filename(1234, 2, 1, 2, 1, 1, 3, "NRS2")
    assert e.visit_id == "01234002001"
    assert e.obs_id == "V01234002001P0000000002101"


def test_rng_and_noise_deterministic():
    a = make_rng(5, "x", 1).normal(size=4)
    b = make_rng(5, "x", 1).normal(size=4)
    c = make_rng(5, "x", 2).normal(size=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    truth = np.full((4, 5), 1e-10)
    n = make_noise(truth, make_rng(1), flux_per_electron=1e-14)
    np.testing.assert_allclose(n.err**2, n.var_poisson + n.var_rnoise + n.var_flat, rtol=1e-5)


def test_slit_wcs_roundtrip():
    nx, ny = 50, 16
    w = make_slit_wcs(nx, ny, lam0=2.0, dlam=0.001, y0_pix=7.5, pix_per_unit_y=4.6,
                      src_ra=10.0, src_dec=-20.0, src_xpos=0.1, src_ypos=-0.05,
                      xscale_arcsec=0.2, yscale_arcsec=0.46, pa_deg=33.0)
    assert w.available_frames == ["detector", "slit_frame", "world"]
    y, x = np.mgrid[0:ny, 0:nx]
    ra, dec, lam = w(x, y)
    xs, ys, lam2 = w.get_transform("detector", "slit_frame")(x, y)
    np.testing.assert_allclose(lam, lam2)
    np.testing.assert_allclose(lam[0], 2.0 + 0.001 * np.arange(nx))
    np.testing.assert_allclose(ys[:, 0], (np.arange(ny) - 7.5) / 4.6)
    sl = w.get_transform("world", "slit_frame")(ra, dec, lam)
    xb, yb = w.get_transform("slit_frame", "detector")(*sl)
    np.testing.assert_allclose(xb, x, atol=1e-6)
    np.testing.assert_allclose(yb, y, atol=1e-6)
    ra0, dec0, _ = w.get_transform("slit_frame", "world")(0.1, -0.05, 2.1)
    assert abs(ra0 - 10.0) < 1e-9 and abs(dec0 + 20.0) < 1e-9
    # pixel scale along the slit ~0.1 arcsec
    d = np.hypot((ra[1, 0] - ra[0, 0]) * np.cos(np.radians(-20)), dec[1, 0] - dec[0, 0]) * 3600
    assert abs(d - 0.1) < 1e-3


def test_mos_headers_and_slits(mos_dir):
    from astropy.io import fits
    from stdatamodels.jwst import datamodels as dm

    src = _read_csv(mos_dir / "truth_nirspec_mos_sources.csv")
    kinds = [s["kind"] for s in src]
    assert kinds == ["source"] * 3 + ["background", "virtual"]
    assert {s["product_source_id"][0] for s in src} == {"s", "b", "v"}
    h = fits.getheader(mos_dir / MOS_NAMES[0])
    assert h["FILENAME"] == MOS_NAMES[0]
    for key, val in {"PROGRAM": "01234", "OBSERVTN": "001", "EXP_TYPE": "NRS_MSASPEC",
                     "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "FILTER": "F170LP",
                     "GRATING": "G235M", "NOD_TYPE": "3-SHUTTER-SLITLET", "PATT_NUM": 1,
                     "NUMDTHPT": 3, "BKGDTARG": False, "IS_IMPRT": False, "TARGETID": 1,
                     "PNTGTYPE": "SCIENCE", "S_PHOTOM": "COMPLETE",
                     "MSAMETFL": "jw01234001001_01_msa.fits"}.items():
        assert h[key] == val, key
    assert h["EXPEND"] > h["EXPMID"] > h["EXPSTART"] and h["EFFEXPTM"] > 0

    ids_per_exp = []
    for k, name in enumerate(MOS_NAMES):
        with dm.open(mos_dir / name) as m:
            assert m.meta.filename == name
            assert m.meta.dither.position_number == k + 1
            ids_per_exp.append([s.source_id for s in m.slits])
            for s in m.slits:
                assert s.meta.wcsinfo.dispersion_direction == 1
                assert s.data.shape == (16, 120) == (s.ysize, s.xsize)
                assert s.meta.wcs.bounding_box is not None
                assert s.meta.photometry.pixelarea_steradians > 0
                if s.source_id > 0 and "BKG" not in s.source_name:
                    assert s.source_type == "POINT" and s.meta.bunit_data == "MJy"
                    assert -0.5 <= s.source_ypos <= 0.5
                    assert s.shutter_state.count("x") == 1
                if "BKG" in (s.source_name or ""):
                    assert s.meta.bunit_data == "MJy/sr"
    # 2nd source missing from the last exposure; everything else everywhere
    assert 2 in ids_per_exp[0] and 2 in ids_per_exp[1] and 2 not in ids_per_exp[2]
    assert len(ids_per_exp[0]) == 5 and len(ids_per_exp[2]) == 4
    assert any(i < 0 for i in ids_per_exp[0])
    exps = _read_csv(mos_dir / "truth_nirspec_mos_exposures.csv")
    assert [e["n_slits"] for e in exps] == ["5", "5", "4"]


def test_mos_source_moves_between_nods(mos_dir):
    """The source peak lands on different rows in each nod, at the WCS position."""
    from stdatamodels.jwst import datamodels as dm

    rows = []
    for name in MOS_NAMES:
        with dm.open(mos_dir / name) as m:
            s = [s for s in m.slits if s.source_id == 1][0]
            prof = np.nansum(s.data, axis=1)
            x, y = s.meta.wcs.get_transform("slit_frame", "detector")(
                s.source_xpos, s.source_ypos, float(np.nanmean(s.wavelength)))
            assert abs(np.argmax(prof) - y) < 1.0
            rows.append(int(np.argmax(prof)))
            ra, dec, _ = s.meta.wcs.get_transform("slit_frame", "world")(
                s.source_xpos, s.source_ypos, 2.0)
            assert abs(ra - s.source_ra) < 1e-9 and abs(dec - s.source_dec) < 1e-9
    assert len(set(rows)) == 3


def test_mos_cosmic_rays_and_truth(mos_dir):
    from stdatamodels.jwst import datamodels as dm

    crs = _read_csv(mos_dir / "truth_nirspec_mos_cosmic_rays.csv")
    assert crs and {c["exposure"] for c in crs} == {"1", "3"}
    for c in crs:
        with dm.open(mos_dir / c["file"]) as m:
            s = [s for s in m.slits if s.name == c["slit_name"]][0]
            y, x = int(c["y"]), int(c["x"])
            assert s.dq[y, x] == 0
            assert s.data[y, x] > 30 * s.err[y, x]
    spec = _read_csv(mos_dir / "truth_nirspec_mos_spectra.csv")
    src = {s["source_id"]: s for s in _read_csv(mos_dir / "truth_nirspec_mos_sources.csv")}
    r = spec[10]
    p = {k: float(src[r["source_id"]][k])
         for k in ("cont_jy", "alpha", "line_um", "line_sigma_um", "line_peak_jy")}
    assert np.isclose(source_flux_jy(float(r["wavelength_um"]), **p), float(r["flux_jy"]))


def test_determinism(tmp_path):
    from stdatamodels.jwst import datamodels as dm

    a = generate_nirspec_mos(tmp_path / "a", n_sources=2, seed=3, nx=60, n_nods=2)
    b = generate_nirspec_mos(tmp_path / "b", n_sources=2, seed=3, nx=60, n_nods=2)
    c = generate_nirspec_mos(tmp_path / "c", n_sources=2, seed=4, nx=60, n_nods=2)
    for fa, fb, fc in zip(a, b, c):
        with dm.open(fa) as ma, dm.open(fb) as mb, dm.open(fc) as mc:
            for sa, sb, sc in zip(ma.slits, mb.slits, mc.slits):
                np.testing.assert_array_equal(sa.data, sb.data)
                assert not np.array_equal(np.nan_to_num(sa.data), np.nan_to_num(sc.data))
    for name in ("sources", "cosmic_rays", "exposures"):
        assert ((tmp_path / "a" / f"truth_nirspec_mos_{name}.csv").read_text()
                == (tmp_path / "b" / f"truth_nirspec_mos_{name}.csv").read_text())


def test_fs_layout(fs_dir):
    from astropy.io import fits
    from stdatamodels.jwst import datamodels as dm

    h = fits.getheader(fs_dir / FS_NAMES[0])
    assert h["EXP_TYPE"] == "NRS_FIXEDSLIT" and h["FXD_SLIT"] == "S200A1"
    assert h["OBSERVTN"] == "002" and h["PATTTYPE"] == "3-POINT-NOD"
    ypos = []
    for name in FS_NAMES:
        with dm.open(fs_dir / name) as m:
            assert [s.name for s in m.slits] == ["S200A1", "S200A2"]
            assert [s.source_id for s in m.slits] == [1, 2]
            assert all(not s.source_name for s in m.slits)
            ypos.append(m.slits[0].source_ypos)
            for s in m.slits:
                ra, dec, _ = s.meta.wcs.get_transform("slit_frame", "world")(
                    s.source_xpos, s.source_ypos, 2.0)
                assert abs(ra - s.source_ra) < 1e-9
    assert len(set(ypos)) == 3
    assert len(_read_csv(fs_dir / "truth_nirspec_fs_cosmic_rays.csv")) == 4


def test_cli(tmp_path):
    from spec3flow.synth.__main__ import main

    assert main(["--mode", "fs", "--outdir", str(tmp_path), "--seed", "2", "--n-nods", "2"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*_cal.fits")) == FS_NAMES[:2]


_SPEC3_SCRIPT = textwrap.dedent("""
    import json, sys
    from jwst.pipeline import Spec3Pipeline
    asn = sys.argv[1]
    steps = {
        "extract_1d": {f"override_{r}": "N/A" for r in
                       ("extract1d", "apcorr", "psf", "pastasoss", "speckernel", "specprofile")},
        "photom": {"override_photom": "N/A", "override_area": "N/A"},
        "cube_build": {"override_cubepar": "N/A"},
        "spectral_leak": {"override_mrsptcorr": "N/A"},
    }
    Spec3Pipeline.call(asn, output_dir=sys.argv[2], save_results=True, steps=steps)
""")


def _offline_crds_env(root: Path) -> dict:
    cfg = root / "config" / "jwst"
    cfg.mkdir(parents=True)
    (cfg / "server_config").write_text(repr({
        "observatory": "jwst", "latest_context": "jwst_0001.pmap",
        "operational_context": "jwst_0001.pmap", "last_synced": "2024-01-01 00:00:00",
        "force_remote_mode": False, "bad_files_list": [], "reftypes": [],
        "effective_mode": "local", "download_metadata": [],
    }))
    (cfg / "ref_cache_subdir_mode").touch()
    env = dict(os.environ)
    env.update(CRDS_PATH=str(root), CRDS_MODE="local",
               CRDS_SERVER_URL="https://jwst-crds.invalid",
               STPIPE_DISABLE_CRDS_STEPPARS="True")
    return env


def test_spec3_mos_small(tmp_path):
    """Real Spec3Pipeline on a 2-source MOS program (+ BKG slitlet)."""
    from stdatamodels.jwst import datamodels as dm

    indir = tmp_path / "in"
    out = tmp_path / "out"
    out.mkdir()
    files = generate_nirspec_mos(indir, n_sources=2, seed=11, nx=150)
    product = "jw01234-o001_{source_id}_nirspec_f170lp-g235m"
    asn = {"asn_type": "spec3", "asn_rule": "DMS_Level3_Base", "program": "01234",
           "asn_id": "o001", "asn_pool": "synthetic", "target": "1",
           "products": [{"name": product, "members": [
               {"expname": str(f), "exptype": "science"} for f in files]}]}
    asn_path = out / "jw01234-o001_spec3_00001_asn.json"
    asn_path.write_text(json.dumps(asn))
    env = _offline_crds_env(tmp_path / "crds")
    r = subprocess.run([sys.executable, "-c", _SPEC3_SCRIPT, str(asn_path), str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    src = _read_csv(indir / "truth_nirspec_mos_sources.csv")
    for s in src:
        stem = f"jw01234-o001_{s['product_source_id']}_nirspec_f170lp-g235m"
        for suffix in ("cal", "crf", "s2d", "x1d"):
            assert (out / f"{stem}_{suffix}.fits").exists(), (stem, suffix)
        with dm.open(out / f"{stem}_x1d.fits") as x1d:
            t = x1d.spec[0].spec_table
            f, e, w = t["FLUX"], t["FLUX_ERROR"], t["WAVELENGTH"]
            good = np.isfinite(f) & np.isfinite(e) & (e > 0)
            assert good.sum() > 0.9 * len(f)
            p = {k: float(s[k]) for k in
                 ("cont_jy", "alpha", "line_um", "line_sigma_um", "line_peak_jy")}
            truth = source_flux_jy(w, **p)
            chi = (f[good] - truth[good]) / e[good]
            assert abs(np.mean(chi)) < 1.0 and 0.6 < np.std(chi) < 1.6, s["source_id"]
            if s["kind"] == "source":
                assert abs(np.sum(f[good]) / np.sum(truth[good]) - 1) < 0.03
    n_flagged = 0
    crs = _read_csv(indir / "truth_nirspec_mos_cosmic_rays.csv")
    for c in crs:
        pid = mos_product_source_id(int(c["source_id"]), c["source_name"])
        with dm.open(out / f"jw01234-o001_{pid}_nirspec_f170lp-g235m_crf.fits") as crf:
            ex = [e for e in crf.exposures if e.meta.filename == c["file"]][0]
            n_flagged += bool(ex.dq[int(c["y"]), int(c["x"])] & 16)  # OUTLIER
    assert crs and n_flagged == len(crs)
