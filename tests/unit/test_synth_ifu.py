"""Synthetic NRS_IFU and MIR_MRS Stage 2 products (spec3flow.synth.nirspec_ifu / miri_mrs),
their IFU reference files in the local CRDS context, and one real Spec3Pipeline run per
mode (~40 s together)."""

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

from spec3flow.synth import miri_mrs, nirspec_ifu

dm = pytest.importorskip("stdatamodels.jwst.datamodels")


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ifu")
    nrs = nirspec_ifu.generate_nirspec_ifu(out, seed=3)
    mrs = miri_mrs.generate_miri_mrs(out, seed=3)
    return out, nrs, mrs


# ----------------------------------------------------------------------------- NRS_IFU
def test_nrs_ifu_wcs_slices_and_round_trip(programs):
    from jwst.assign_wcs.nirspec import nrs_wcs_set_input

    out, nrs, _ = programs
    with dm.open(nrs[0]) as m:
        w = m.meta.wcs
        assert w.available_frames == ["coordinates", "detector", "slicer", "v2v3", "world"]
        assert m.regions.shape == m.data.shape == (nirspec_ifu.NY, nirspec_ifu.NX_DEFAULT)
        assert set(np.unique(m.regions)) == set(range(nirspec_ifu.NSLICE + 1))
        for i in (0, 7, 29):
            sw = nrs_wcs_set_input(m, i)
            y0, y1 = nirspec_ifu.slice_rows(i)
            assert tuple(sw.bounding_box[1]) == (y0 - 0.5, y1 + 0.5)
            ra, dec, lam = sw(np.array([0.0, 50.0]), np.array([y0 + 3.0, y1 - 3.0]))
            assert np.all(np.isfinite(ra))
            np.testing.assert_allclose(lam, nirspec_ifu.wavelength_of_column([0, 50]))
        # gap rows and columns are undefined; the slicer lambda is in metres
        assert np.isnan(w(10.0, 0.0)[2])
        d2s = w.get_transform("detector", "slicer")
        assert d2s(10.0, 20.0)[2] == pytest.approx(nirspec_ifu.wavelength_of_column(10) * 1e-6)
        # the target sits at the slicer position recorded in the truth table
        row = next(csv.DictReader(open(out / "nrs_ifu_truth_exposures.csv")))
        s2w = w.get_transform("slicer", "world")
        ra, dec, _ = s2w(float(row["target_across_arcsec"]), float(row["target_along_arcsec"]),
                         2.05e-6)
        assert ra == pytest.approx(nirspec_ifu.TARGET["ra"], abs=1e-8)
        assert dec == pytest.approx(nirspec_ifu.TARGET["dec"], abs=1e-8)


def test_nrs_ifu_headers_and_dq(programs):
    _, nrs, _ = programs
    with dm.open(nrs[1]) as m:
        assert isinstance(m, dm.IFUImageModel)
        assert m.meta.exposure.type == "NRS_IFU"
        assert (m.meta.instrument.grating, m.meta.instrument.filter) == ("G235M", "F170LP")
        assert m.meta.instrument.detector == "NRS1"
        assert m.meta.target.source_type == "POINT"
        assert m.meta.cal_step.assign_wcs == "COMPLETE"
        assert m.meta.bunit_data == "MJy/sr"
        assert m.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
        gap = m.regions == 0
        assert np.all(np.isnan(m.data[gap])) and np.all(m.dq[gap] == 513)
        assert np.all(np.isfinite(m.data[~gap])) and np.all(m.dq[~gap] == 0)


# ----------------------------------------------------------------------------- MIR_MRS
def test_mrs_wcs_channels_and_round_trip(programs):
    out, _, mrs = programs
    rows = list(csv.DictReader(open(out / "mrs_truth_exposures.csv")))
    for path, row in zip(mrs, rows):
        with dm.open(path) as m:
            det = m.meta.instrument.detector
            assert det == row["detector"]
            w = m.meta.wcs
            assert w.available_frames == ["detector", "alpha_beta", "v2v3", "world"]
            d2ab = w.get_transform("detector", "alpha_beta")
            for c in miri_mrs.DETECTORS[det][2]:
                ch = miri_mrs.CHANNELS[c]
                assert str(ch.channel) in m.meta.instrument.channel
                for k in (1, ch.nslice):
                    x = ch.strip_x0(k) + 2.0
                    assert m.regions[5, int(x)] == 100 * int(c) + k
                    a, b, lam = d2ab(x, 5.0)
                    assert b == pytest.approx(ch.beta(k))
                    assert lam == pytest.approx(miri_mrs.wavelength_of_row(5, c))
                    assert np.isfinite(w(x, 5.0)[0])
                assert np.isnan(w(ch.strip_x0(1) - 2.0, 5.0)[0])  # gap before slice 1
            ab2w = w.get_transform("alpha_beta", "world")
            ra, dec, _ = ab2w(float(row["target_alpha_arcsec"]),
                              float(row["target_beta_arcsec"]), 10.0)
            assert ra == pytest.approx(miri_mrs.TARGET["ra"], abs=1e-8)
            assert dec == pytest.approx(miri_mrs.TARGET["dec"], abs=1e-8)
            # the gwcs pixel-units pitfall: the first transform must carry parameters
            assert len(w.pipeline[0].transform.parameters) > 0


def test_mrs_headers_bands(programs):
    _, _, mrs = programs
    seen = set()
    for path in [p for p in mrs if p.name.endswith("_cal.fits")]:
        with dm.open(path) as m:
            assert m.meta.exposure.type == "MIR_MRS"
            seen.add((m.meta.instrument.detector, m.meta.instrument.channel,
                      m.meta.instrument.band))
            assert m.meta.wcsinfo.dispersion_direction == 2
    assert seen == {("MIRIFUSHORT", "12", "MEDIUM"), ("MIRIFULONG", "34", "SHORT")}


def test_outlier_truth(programs):
    out, nrs, mrs = programs
    for name, files in (("nrs_ifu_truth_outliers.csv", nrs), ("mrs_truth_outliers.csv", mrs)):
        rows = list(csv.DictReader(open(out / name)))
        crs = [r for r in rows if r["kind"] == "cosmic_ray"]
        assert len(crs) == 5 and len({r["file"] for r in crs}) == 1
        hot = [r for r in rows if r["kind"] == "hot_pixel"]
        cal = [p for p in files if p.name.endswith("_cal.fits")]
        assert {r["file"] for r in hot} == {p.name for p in cal}


def test_deterministic(tmp_path):
    a = nirspec_ifu.generate_nirspec_ifu(tmp_path / "a", seed=5, n_dithers=1, nx=20)
    b = nirspec_ifu.generate_nirspec_ifu(tmp_path / "b", seed=5, n_dithers=1, nx=20)
    c = miri_mrs.generate_miri_mrs(tmp_path / "a", seed=5, n_dithers=1, ny=24)
    d = miri_mrs.generate_miri_mrs(tmp_path / "b", seed=5, n_dithers=1, ny=24)
    for p, q in zip(a + c, b + d):
        assert p.name == q.name
        if p.suffix == ".csv":
            assert p.read_text() == q.read_text()
            continue
        with dm.open(p) as m1, dm.open(q) as m2:
            for attr in ("data", "err", "dq", "regions", "var_poisson"):
                np.testing.assert_array_equal(getattr(m1, attr), getattr(m2, attr))


def test_cli_sizes_and_full_width_cutout(tmp_path):
    """``--nrs-ifu-nx`` / ``--mrs-ny`` reach the generators; a cut-out wider than fits
    from SUBSTRT1 900 moves left so that it stays on the 2048-column detector."""
    from spec3flow.synth.__main__ import main

    assert nirspec_ifu.sub_xstart(nirspec_ifu.NX_DEFAULT) == 900
    assert nirspec_ifu.sub_xstart(1149) == 900 and nirspec_ifu.sub_xstart(1150) == 899
    assert nirspec_ifu.sub_xstart(2048) == 1
    assert main(["--mode", "ifu", "--outdir", str(tmp_path), "--n-dithers", "1",
                 "--nrs-ifu-nx", "24", "--mrs-ny", "20"]) == 0
    with dm.open(tmp_path / "jw01234006001_02101_00001_nrs1_cal.fits") as m:
        assert m.data.shape == (nirspec_ifu.NY, 24)
        assert (m.meta.subarray.xstart, m.meta.subarray.xsize) == (900, 24)
    with dm.open(tmp_path / "jw01234005001_02101_00001_mirifushort_cal.fits") as m:
        assert m.data.shape == (20, miri_mrs.NX)
        assert m.meta.subarray.ysize == 20


def test_associations_from_headers(programs, tmp_path):
    from spec3flow.associations import generate_associations, pool_from_cal_files

    out, nrs, mrs = programs
    pool = pool_from_cal_files(sorted(out.glob("*_cal.fits")))
    asns = generate_associations(pool, tmp_path, ["NRS_IFU", "MIR_MRS"])
    got = {}
    for a in asns:
        j = json.loads(a.read_text())
        (prod,) = j["products"]
        got[a.name] = (j["asn_rule"], prod["name"], len(prod["members"]))
    assert got == {
        "jw01234-o005_spec3_00001_asn.json": ("candidate_Asn_Lv3MIRMRS",
                                              "jw01234-o005_t003_miri", 8),
        "jw01234-o006_spec3_00001_asn.json": ("candidate_Asn_Lv3NRSIFU",
                                              "jw01234-o006_t004_nirspec_g235m", 4),
    }


# ----------------------------------------------------------------------------- CRDS
def test_ifu_reference_files(crds_cache):
    import crds

    os.environ.setdefault("CRDS_PATH", str(crds_cache))
    refs = crds_cache / "references" / "jwst"
    marker = json.loads((crds_cache / "spec3flow_crds.json").read_text())["references"]
    assert marker["nirspec"]["cubepar"]["NRS_IFU"].endswith(".fits")
    assert marker["miri"]["cubepar"]["MIR_MRS"].endswith(".fits")
    assert marker["miri"]["mrsptcorr"]["MIR_MRS"].endswith(".fits")
    for instr, exp in (("nirspec", "NRS_IFU"), ("miri", "MIR_MRS")):
        path = refs / instr / marker[instr]["extract1d"][exp]
        assert path.suffix == ".asdf"
        assert b"BLK" not in path.read_bytes()  # arrays inline, no binary blocks
        with dm.Extract1dIFUModel(str(path)) as r:
            assert r.data.radius.size == r.data.wavelength.size > 1
            assert r.meta.subtract_background is False
    with dm.MiriIFUCubeParsModel(str(refs / "miri" / marker["miri"]["cubepar"]["MIR_MRS"])) as c:
        t = c.ifucubepars_table
        bands = {(str(ch), str(b)) for ch, b in zip(t["channel"], t["band"])}
        assert ("1", "MEDIUM") in bands and ("3", "SHORT") in bands and len(bands) == 12
        # the synthetic bands' CUBEPAR ranges contain the generated wavelengths
        for ch in miri_mrs.CHANNELS.values():
            (i,) = [k for k, (a, b) in enumerate(zip(t["channel"], t["band"]))
                    if (str(a), str(b)) == (ch.channel, ch.band)]
            lam = miri_mrs.wavelength_of_row([0, miri_mrs.NY_DEFAULT - 1], ch.channel)
            assert t["wavemin"][i] <= lam[0] and lam[1] <= t["wavemax"][i] + 1e-3
    with dm.NirspecIFUCubeParsModel(
            str(refs / "nirspec" / marker["nirspec"]["cubepar"]["NRS_IFU"])) as c:
        t = c.ifucubepars_table
        assert "G235M" in [str(g) for g in t["disperser"]]
    with dm.MirMrsPtCorrModel(str(refs / "miri" / marker["miri"]["mrsptcorr"]["MIR_MRS"])) as p:
        assert np.max(p.leakcor_table["frac_leak"]) == pytest.approx(0.03, rel=1e-3)
    del crds


# ----------------------------------------------------------------------------- pipeline
SPEC3_SCRIPT = textwrap.dedent(
    """
    import sys
    from jwst.pipeline import Spec3Pipeline
    for asn in sys.argv[2:]:
        Spec3Pipeline.call(asn, save_results=True, output_dir=sys.argv[1])
    """
)


def test_spec3pipeline_ifu_runs(programs, crds_cache, tmp_path):
    """Real Spec3Pipeline on both generated associations against the local CRDS context:
    crf/s3d/x1d written, x1d = injected spectrum, hot pixels flagged, spectral_leak ran."""
    from spec3flow.associations import generate_associations, pool_from_cal_files
    from spec3flow.crds_local import apply_crds_env

    out, _, _ = programs
    pool = pool_from_cal_files(sorted(out.glob("*_cal.fits")))
    asns = generate_associations(pool, tmp_path / "asn", ["NRS_IFU", "MIR_MRS"])
    res_dir = tmp_path / "out"
    script = tmp_path / "run_spec3.py"
    script.write_text(SPEC3_SCRIPT)
    env = apply_crds_env(crds_cache, dict(os.environ))
    env["STPIPE_DISABLE_CRDS_STEPPARS"] = "True"
    res = subprocess.run([sys.executable, str(script), str(res_dir)] + [str(a) for a in asns],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]

    assert len(list(res_dir.glob("*_o006_crf.fits"))) == 4
    assert len(list(res_dir.glob("*_o005_crf.fits"))) == 8
    expected = {"jw01234-o006_t004_nirspec_g235m-f170lp": nirspec_ifu.source_spectrum_jy}
    for ch in miri_mrs.CHANNELS.values():
        expected[f"jw01234-o005_t003_miri_{ch.name}"] = miri_mrs.source_spectrum_jy
    for prod, truth in expected.items():
        assert (res_dir / f"{prod}_s3d.fits").exists()
        with dm.open(res_dir / f"{prod}_x1d.fits") as x:
            t = x.spec[0].spec_table
            ok = np.isfinite(t["FLUX"]) & (t["FLUX"] != 0)
            assert ok.sum() > 30
            ratio = t["FLUX"][ok] / truth(t["WAVELENGTH"][ok])
            assert np.median(ratio) == pytest.approx(1.0, abs=0.01), prod
            assert np.percentile(np.abs(ratio - 1), 90) < 0.05, prod
            if "ch3-short" in prod:
                assert x.meta.cal_step.spectral_leak == "COMPLETE"

    # persistent hot pixels: OUTLIER in every crf; single-exposure cosmic rays are not
    # (IFU outlier detection uses the minimum neighbour difference over all exposures)
    for name in ("nrs_ifu_truth_outliers.csv", "mrs_truth_outliers.csv"):
        for row in csv.DictReader(open(out / name)):
            stem = row["file"][: -len("_cal.fits")]
            (crf,) = res_dir.glob(f"{stem}_*_crf.fits")
            with dm.open(crf) as m:
                flagged = bool(m.dq[int(row["y"]), int(row["x"])] & 16)
            assert flagged == (row["kind"] == "hot_pixel"), row
