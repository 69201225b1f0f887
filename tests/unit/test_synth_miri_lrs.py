"""Unit tests for spec3flow.synth.miri_lrs (synthetic MIR_LRS-FIXEDSLIT Stage 2 data).

The last test runs the real jwst 3.0.0 Spec3Pipeline on the generated program in a
subprocess with a throwaway offline CRDS cache (~15 s on 2 cores).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm
from stdatamodels.jwst.datamodels import dqflags

from spec3flow.synth import miri_lrs as lrs

NAME_RE = re.compile(r"^jw\d{5}\d{3}\d{3}_\d{2}\d\d{2}_\d{5}_mirimage_(cal|x1d)\.fits$")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    out = tmp_path_factory.mktemp("lrs")
    paths = lrs.generate_miri_lrs(out, seed=1, write_asn=True)
    return out, paths


def _cal_files(paths):
    return [p for p in paths if p.name.endswith("_cal.fits")]


# --------------------------------------------------------------------------- WCS
def test_wcs_round_trip_and_frames():
    w = lrs.build_lrs_wcs(80.4876, -69.4983)
    assert w.input_frame.name == "detector"
    assert w.output_frame.name == "world"
    assert [f.name for f in w.output_frame.frames] == ["icrs", "spec"]
    assert w.available_frames == ["detector", "alpha_beta", "v2v3", "world"]
    (x0, x1), (y0, y1) = w.bounding_box.bounding_box(order="F")
    assert x0 < lrs.X_REF < x1 and y0 == lrs.Y_LO and y1 == lrs.Y_HI

    x = np.array([12.0, 31.5, 40.0, 52.0])
    y = np.array([15.0, 200.0, 300.0, 385.0])
    ra, dec, lam = w(x, y)
    assert np.all(np.isfinite(ra + dec + lam))
    np.testing.assert_allclose(lam, lrs.wavelength_of_row(y), rtol=1e-12)
    xb, yb = w.invert(ra, dec, lam)
    np.testing.assert_allclose(xb, x, atol=1e-6)
    np.testing.assert_allclose(yb, y, atol=1e-6)
    # vertical dispersion, wavelength decreasing with row, constant along a row
    assert np.all(np.diff(w(np.full(5, 31.5), np.linspace(20, 380, 5))[2]) < 0)
    assert np.ptp(w(np.linspace(12, 50, 5), np.full(5, 150.0))[2]) < 1e-12
    # along-slit pixel scale
    r0, d0, _ = w(31.5, 200.0)
    r1, d1, _ = w(32.5, 200.0)
    sep = np.hypot((r1 - r0) * np.cos(np.deg2rad(d0)), d1 - d0) * 3600
    assert sep == pytest.approx(lrs.PSCALE, rel=1e-4)
    # outside the bounding box -> NaN
    assert np.isnan(w(2.0, 200.0)[2])


def test_nod_positions_put_target_at_offsets():
    exps = lrs._exposures("01234", 2, 1)
    sci = [e for e in exps if e.role == "science"]
    xs = sorted({round(e.source_x, 6) for e in sci})
    assert xs == pytest.approx([lrs.X_REF + o / lrs.PSCALE for o in sorted(lrs.NOD_OFFSETS)],
                               abs=1e-4)


# --------------------------------------------------------------------------- files
def test_file_layout(program):
    out, paths = program
    names = [p.name for p in paths]
    cal = [n for n in names if n.endswith("_cal.fits")]
    x1d = [n for n in names if n.endswith("_x1d.fits")]
    assert len(cal) == 6 and len(x1d) == 6  # calwebb_spec2 writes an x1d per exposure
    assert all(NAME_RE.match(n) for n in cal + x1d)
    assert sum(n.startswith("jw01234003001_02101_") for n in cal) == 4
    assert sum(n.startswith("jw01234004001_02101_") for n in cal) == 2
    assert {n.replace("_x1d", "_cal") for n in x1d} == set(cal)
    for n in ("miri_lrs_truth_spectrum.csv", "miri_lrs_truth_cosmic_rays.csv",
              "miri_lrs_truth_exposures.csv", "jw01234-o003_spec3_00001_asn.json"):
        assert n in names
    assert all(p.exists() and p.parent == out for p in paths)
    assert all(p.stat().st_size < 1_000_000 for p in paths)


def test_header_completeness(program):
    _, paths = program
    for p in _cal_files(paths):
        with dm.open(p) as m:
            assert isinstance(m, dm.ImageModel)
            meta = m.meta
            assert meta.filename == p.name
            assert meta.exposure.type == "MIR_LRS-FIXEDSLIT"
            assert meta.instrument.name == "MIRI"
            assert meta.instrument.detector == "MIRIMAGE"
            assert meta.instrument.filter == "P750L"
            # real LRS slit data are FULL frame (DMS pools: subarray 'full'); the stored
            # array is a cut-out described by SUBSTRT/SUBSIZE
            assert meta.subarray.name == "FULL"
            assert (meta.subarray.xsize, meta.subarray.ysize) == (lrs.NX, lrs.NY)
            assert meta.aperture.name == "MIRIM_SLIT"
            assert meta.dither.primary_type == "ALONG-SLIT-NOD"
            assert meta.wcsinfo.dispersion_direction == 2
            assert meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            assert meta.bunit_data == "MJy/sr"
            assert meta.photometry.pixelarea_steradians == pytest.approx(lrs.PIXAR_SR)
            assert meta.exposure.exposure_time > 0
            assert meta.exposure.start_time < meta.exposure.mid_time < meta.exposure.end_time
            assert meta.observation.program_number == "01234"
            assert meta.observation.visit_number == "001"
            assert meta.observation.visit_group == "02"
            assert meta.observation.sequence_id == "1"
            assert meta.observation.activity_id == "01"
            stem = (f"jw{meta.observation.program_number}{meta.observation.observation_number}"
                    f"{meta.observation.visit_number}_{meta.observation.visit_group}"
                    f"{meta.observation.sequence_id}{meta.observation.activity_id}"
                    f"_{meta.observation.exposure_number}_mirimage")
            assert p.name == stem + "_cal.fits"
            assert meta.dither.primary_type == "ALONG-SLIT-NOD"
            assert meta.dither.total_points == 2
            assert meta.dither.position_number in (1, 2)
            assert meta.dither.dithered_ra == pytest.approx(meta.target.ra)
            assert meta.dither.dithered_dec == pytest.approx(meta.target.dec)
            for step in ("assign_wcs", "flat_field", "srctype", "photom", "ramp_fit", "jump"):
                assert getattr(meta.cal_step, step) == "COMPLETE"
            assert meta.cal_step.bkg_subtract != "COMPLETE"
            assert meta.cal_step.master_background is None
            bkg = meta.observation.observation_number == lrs.BKG_OBS
            assert meta.observation.bkgdtarg is bkg
            assert meta.target.source_type == ("EXTENDED" if bkg else "POINT")
            assert meta.target.proposer_name == ("SYNTH-LRS-BKG" if bkg else "SYNTH-LRS-STAR")
            assert meta.wcs is not None
            # sky footprint contains the slit centre
            ra, dec, _ = meta.wcs(lrs.X_REF, 200.0)
            v = np.array(meta.wcsinfo.s_region.split()[2:], float).reshape(4, 2)
            assert v[:, 0].min() < ra < v[:, 0].max() and v[:, 1].min() < dec < v[:, 1].max()
            assert m.data.shape == m.err.shape == m.dq.shape == m.var_poisson.shape


def test_stage2_x1d(program):
    """Every exposure has its Stage 2 x1d; the column master_background reads is the
    background: SURF_BRIGHT for the background target (BKGDTARG=T), BACKGROUND for
    the nodded science exposures (BKGDTARG=F)."""
    _, paths = program
    x1ds = [p for p in paths if p.name.endswith("_x1d.fits")]
    assert len(x1ds) == 6
    for p in x1ds:
        with dm.open(p) as x:
            assert isinstance(x, dm.MultiSpecModel)
            assert x.meta.filename == p.name
            assert x.meta.cal_step.extract_1d == "COMPLETE"
            assert x.meta.subarray.name == "FULL"
            bkg = x.meta.observation.observation_number == lrs.BKG_OBS
            assert x.meta.observation.bkgdtarg is bkg
            t = x.spec[0].spec_table
            col = "SURF_BRIGHT" if bkg else "BACKGROUND"
            good = np.isfinite(t[col]) & np.isfinite(t["WAVELENGTH"])
            assert good.sum() > 300
            ratio = t[col][good] / lrs.background_spectrum_mjysr(t["WAVELENGTH"][good])
            assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
            if not bkg:  # box on the source: FLUX is the source (no APCORR: < 1)
                truth = lrs.source_spectrum_jy(t["WAVELENGTH"][good])
                assert 0.8 < np.median(t["FLUX"][good] / truth) < 1.0


def test_generated_associations_load(program, tmp_path):
    """jwst's own Level 3 associations from the synthetic headers: every one loads with
    load_level3_association (all members, including the nodded science x1d, exist)."""
    from spec3flow.associations import (generate_associations, load_level3_association,
                                        pool_from_cal_files)

    out, paths = program
    pool = pool_from_cal_files(sorted(out.glob("*_cal.fits")))
    assert set(pool["subarray"]) == {"full"}
    asns = generate_associations(pool, tmp_path, ["MIR_LRS-FIXEDSLIT"])
    by_name = {a.name: a for a in asns}
    assert set(by_name) == {f"jw01234-{c}_spec3_00001_asn.json" for c in ("o003", "o004", "c1000")}
    sci_x1d = {p.name for p in paths if p.name.startswith("jw01234003") and "_x1d" in p.name}
    bkg_x1d = {p.name for p in paths if p.name.startswith("jw01234004") and "_x1d" in p.name}
    expect = {"o003": ("jw01234-o003_t001_miri_p750l", sci_x1d),
              "c1000": ("jw01234-c1000_t001_miri_p750l", sci_x1d | bkg_x1d),
              "o004": ("jw01234-o004_t002_miri_p750l", set())}
    for cid, (prod_name, bkg_members) in expect.items():
        asn = load_level3_association(by_name[f"jw01234-{cid}_spec3_00001_asn.json"])
        (prod,) = asn["products"]
        assert prod["name"] == prod_name  # no '-subslit'
        members = {(m["exptype"], os.path.basename(m["expname"])) for m in prod["members"]}
        assert {n for t, n in members if t == "background"} == bkg_members
        assert all((tmp_path / m["expname"]).is_file() for m in prod["members"])


def test_noise_consistent_with_err(program):
    _, paths = program
    bkg = [p for p in _cal_files(paths) if p.name.startswith("jw01234004")][0]
    with dm.open(bkg) as m:
        yy, _ = np.mgrid[0 : lrs.NY, 0 : lrs.NX]
        truth = lrs.background_spectrum_mjysr(lrs.wavelength_of_row(yy))
        good = (m.dq == 0) & np.isfinite(m.data)
        z = ((m.data - truth) / m.err)[good]
        assert z.std() == pytest.approx(1.0, abs=0.05)
        assert abs(z.mean()) < 0.05
        np.testing.assert_allclose(
            m.err[good] ** 2, (m.var_poisson + m.var_rnoise + m.var_flat)[good], rtol=1e-4)
        off = (m.dq & dqflags.pixel["NON_SCIENCE"]) > 0
        assert off.any() and np.all(np.isnan(m.data[off]))


def test_cosmic_ray_truth(program):
    out, _ = program
    rows = list(csv.DictReader(open(out / "miri_lrs_truth_cosmic_rays.csv")))
    assert len(rows) == 3
    for r in rows:
        with dm.open(out / r["file"]) as m:
            y, x = int(r["y"]), int(r["x"])
            assert m.dq[y, x] == 0
            assert m.data[y, x] > 50 * m.err[y, x]
            assert m.meta.observation.bkgdtarg is False


def test_truth_spectrum_table(program):
    out, _ = program
    t = np.loadtxt(out / "miri_lrs_truth_spectrum.csv", delimiter=",", skiprows=1)
    assert t.shape[1] == 3 and np.all(np.diff(t[:, 0]) > 0)
    assert t[0, 0] == pytest.approx(lrs.LAM_MIN) and t[-1, 0] == pytest.approx(lrs.LAM_MAX)
    np.testing.assert_allclose(t[:, 1], lrs.source_spectrum_jy(t[:, 0]))


def test_asn_json(program):
    out, _ = program
    asn = json.loads((out / "jw01234-o003_spec3_00001_asn.json").read_text())
    prod = asn["products"][0]
    assert prod["name"] == "jw01234-o003_t001_miri_p750l"
    sci = [m["expname"] for m in prod["members"] if m["exptype"] == "science"]
    bkg = [m["expname"] for m in prod["members"] if m["exptype"] == "background"]
    assert len(sci) == 4 and all(s.endswith("_cal.fits") for s in sci)
    assert len(bkg) == 2 and all(b.endswith("_x1d.fits") for b in bkg)
    assert all((out / n).exists() for n in sci + bkg)


def test_deterministic(program, tmp_path):
    out, paths = program
    again = lrs.generate_miri_lrs(tmp_path / "a", seed=1)
    other = lrs.generate_miri_lrs(tmp_path / "b", seed=2, write_x1d=False)
    first = {p.name: p for p in paths}
    for p in _cal_files(again):
        with dm.open(first[p.name]) as a, dm.open(p) as b:
            for ext in ("data", "err", "dq", "var_poisson"):
                np.testing.assert_array_equal(getattr(a, ext), getattr(b, ext))
            assert a.meta.wcsinfo.s_region == b.meta.wcsinfo.s_region
    for n in ("miri_lrs_truth_cosmic_rays.csv", "miri_lrs_truth_spectrum.csv",
              "miri_lrs_truth_exposures.csv"):
        assert (out / n).read_text() == (tmp_path / "a" / n).read_text()
    p0 = _cal_files(other)[0]
    with dm.open(first[p0.name]) as a, dm.open(p0) as b:
        assert not np.array_equal(np.nan_to_num(a.data), np.nan_to_num(b.data))


# --------------------------------------------------------------------------- spec3
SPEC3_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from jwst.pipeline import Spec3Pipeline
    asn = Path(sys.argv[1])
    d = asn.parent
    na = lambda *ks: {k: "N/A" for k in ks}
    Spec3Pipeline.call(str(asn), output_dir=str(d), save_results=True, steps={
        "extract_1d": na("override_extract1d", "override_apcorr", "override_psf",
                         "override_pastasoss", "override_specprofile", "override_speckernel"),
        "photom": na("override_photom", "override_area"),
        "cube_build": na("override_cubepar"),
        "spectral_leak": na("override_mrsptcorr"),
    })
    """
)


def test_spec3pipeline_runs(program, tmp_path):
    """Real Spec3Pipeline on jwst's generated c1000 association: 4 nodded science
    exposures, background members = their own x1d + the background target's x1d."""
    from spec3flow.associations import generate_associations, pool_from_cal_files

    out, paths = program
    asn_dir = tmp_path / "asn"
    pool = pool_from_cal_files(sorted(out.glob("*_cal.fits")))
    (asn,) = [a for a in generate_associations(pool, asn_dir, ["MIR_LRS-FIXEDSLIT"])
              if "-c1000_" in a.name]
    crds = tmp_path / "crds"
    (crds / "config" / "jwst").mkdir(parents=True)
    (crds / "config" / "jwst" / "server_config").write_text(repr({
        "observatory": "jwst", "latest_context": "jwst_0001.pmap",
        "operational_context": "jwst_0001.pmap", "last_synced": "2025-01-01 00:00:00",
        "force_remote_mode": False, "bad_files_list": []}))
    script = tmp_path / "run_spec3.py"
    script.write_text(SPEC3_SCRIPT)
    env = dict(os.environ, CRDS_PATH=str(crds), CRDS_MODE="local",
               CRDS_SERVER_URL="https://jwst-crds.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="True")
    res = subprocess.run([sys.executable, str(script), str(asn)], cwd=asn_dir, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]

    prod = "jw01234-c1000_t001_miri_p750l"
    x1d = asn_dir / f"{prod}_x1d.fits"
    s2d = asn_dir / f"{prod}_s2d.fits"
    crfs = sorted(asn_dir.glob("*_c1000_crf.fits"))
    assert x1d.exists() and s2d.exists() and len(crfs) == 4

    with dm.open(s2d) as s:
        assert s.meta.cal_step.master_background == "COMPLETE"
        assert s.meta.cal_step.resample == "COMPLETE"
    with dm.open(x1d) as x:
        assert x.meta.cal_step.master_background == "COMPLETE"
        t = x.spec[0].spec_table
        truth = np.loadtxt(out / "miri_lrs_truth_spectrum.csv", delimiter=",", skiprows=1)
        ratio = t["FLUX"] / np.interp(t["WAVELENGTH"], truth[:, 0], truth[:, 1])
        assert np.isfinite(ratio).sum() > 300
        assert np.nanmedian(ratio) == pytest.approx(1.0, abs=0.01)
        assert np.nanpercentile(np.abs(ratio - 1), 90) < 0.02

    crs = list(csv.DictReader(open(out / "miri_lrs_truth_cosmic_rays.csv")))
    outlier = dqflags.pixel["OUTLIER"]
    for crf in crfs:
        with dm.open(crf) as m:
            assert m.meta.cal_step.master_background == "COMPLETE"
            assert m.meta.cal_step.outlier_detection == "COMPLETE"
            flagged = set(zip(*(a.tolist() for a in np.nonzero(m.dq & outlier))))
            cal_name = crf.name.replace("_c1000_crf", "_cal")
            truth = {(int(r["y"]), int(r["x"])) for r in crs if r["file"] == cal_name}
            assert truth <= flagged
            assert len(flagged - truth) <= 3  # few false positives
