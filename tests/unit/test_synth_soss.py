"""Fast unit tests for spec3flow.synth.soss (synthetic NIS_SOSS Stage 2 data + SOSS refs).

No pipeline run here: the end-to-end proof (Spec3Pipeline, box ~6 s, ATOCA ~3 min on
2 cores) is described in the module docstring.  The geometry test imports jwst's own
PASTASOSS code (a few seconds: it pulls in jwst.extract_1d).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3flow.synth import soss

CAL = "jw01234020001_03101_00001_nis_cal.fits"


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    out = tmp_path_factory.mktemp("soss")
    paths = soss.generate_soss(out, nints=2, seed=5)
    return out, paths


def test_files_and_headers(program):
    out, paths = program
    assert [p.name for p in paths] == [CAL, "soss_truth_spectrum.csv", "soss_truth_badpix.csv",
                                       "soss_truth_exposures.csv"]
    h = fits.getheader(out / CAL)
    want = {"EXP_TYPE": "NIS_SOSS", "INSTRUME": "NIRISS", "DETECTOR": "NIS", "FILTER": "CLEAR",
            "PUPIL": "GR700XD", "SUBARRAY": "SUBSTRIP96", "OBSERVTN": "020", "PROGRAM": "01234",
            "NINTS": 2, "TSOVISIT": False}
    assert {k: h[k] for k in want} == want
    lo, hi = soss.PWCPOS_BOUNDS
    assert lo <= h["PWCPOS"] <= hi and h["PWCPOS"] != soss.PWCPOS_CMD
    with dm.open(out / CAL) as m:
        assert isinstance(m, dm.CubeModel)
        assert m.data.shape == (2, soss.NY, soss.NX) == (2, 96, 2048)
        assert len(m.int_times) == 2 and list(m.int_times["integration_number"]) == [1, 2]
        assert np.all(np.diff(m.int_times["int_mid_MJD_UTC"]) > 0)
        assert m.meta.bunit_data == "DN/s"
        dnu = dm.dqflags.pixel["DO_NOT_USE"]
        ref = dm.dqflags.pixel["REFERENCE_PIXEL"]
        assert np.all(m.dq[:, :, list(soss.REF_COLUMNS)] & ref)
        # NaN exactly where DO_NOT_USE (as match_nans_and_flags leaves cal files)
        assert np.array_equal(np.isnan(m.data), (m.dq & dnu) != 0)
        assert np.all(np.isfinite(m.err[(m.dq & dnu) == 0]))
        assert np.all(m.err[(m.dq & dnu) == 0] > 0)


def test_truth_tables(program):
    out, _ = program
    rows = list(csv.DictReader((out / "soss_truth_spectrum.csv").open()))
    assert len(rows) == 2 * soss.NX
    o1 = [r for r in rows if r["order"] == "1"]
    lam = np.array([float(r["wavelength_um"]) for r in o1])
    assert lam[0] == pytest.approx(2.85) and np.all(np.diff(lam) < 0)
    np.testing.assert_allclose([float(r["flux_mjy"]) for r in o1], soss.truth_flux_mjy(lam))
    bad = list(csv.DictReader((out / "soss_truth_badpix.csv").open()))
    with dm.open(out / CAL) as m:
        for b in bad:
            ints = range(2) if b["integration"] == "all" else [int(b["integration"]) - 1]
            for i in ints:
                assert np.isnan(m.data[i, int(b["y"]), int(b["x"])])


def test_geometry_matches_jwst_pastasoss():
    """Our traces/wavelengths are what jwst's PASTASOSS code computes from our reference."""
    from jwst.extract_1d.soss_extract import pastasoss as jp

    ref = soss.build_pastasoss_model()
    ours = soss.soss_traces(soss.PWCPOS)
    for order in soss.ORDERS:
        _, x, y, wl = jp._get_soss_traces(ref, soss.PWCPOS, order, "SUBSTRIP96")
        np.testing.assert_allclose(x, ours[order].x)
        np.testing.assert_allclose(y, ours[order].y, atol=1e-9)
        np.testing.assert_allclose(wl, soss.order_wavelength(order, x), atol=1e-12)
    maps = jp.get_soss_wavemaps(soss.PWCPOS, subarray="SUBSTRIP96", refmodel=ref)
    assert maps.shape == (2, 96, 2048)
    cols = np.arange(10, 2040)
    np.testing.assert_allclose(maps[0][50, cols], soss.order_wavelength(1, cols), atol=1e-3)


def test_photom_calibrates_box_to_truth():
    """Noise-free: jwst-style box sum x photmj x relresponse = truth x (1 + order-2
    contamination) for order 1."""
    img = soss.make_truth_image()
    y1 = soss.soss_traces()[1]
    x = np.arange(soss.NX)
    w = soss.box_weights(np.interp(x, y1.x, y1.y))
    counts = (w * img).sum(axis=0)
    row = soss.build_photom_model().phot_table[0]
    assert (row["order"], row["filter"], row["pupil"]) == (1, "CLEAR", "GR700XD")
    lam = soss.order_wavelength(1, x)
    conv = row["photmj"] * np.interp(lam, row["wavelength"], row["relresponse"])
    cols = np.setdiff1d(np.arange(8, soss.NX - 8), soss.REF_COLUMNS)
    expected = soss.truth_flux_mjy(lam) * (1 + soss.order2_contamination())
    np.testing.assert_allclose((counts * conv)[cols], expected[cols], rtol=2e-4)
    contam = soss.order2_contamination()
    assert contam[:20].min() > 0.01 and contam[1000:].max() < 1e-3  # mostly the red end


@pytest.mark.parametrize("reftype", ["pastasoss", "specprofile", "speckernel", "photom"])
def test_reference_files_validate(tmp_path, reftype):
    ext = ".asdf" if reftype == "pastasoss" else ".fits"
    path = soss.write_reference_file(reftype, tmp_path / f"ref_{reftype}{ext}",
                                     {"reftype": reftype.upper(), "pedigree": "DUMMY",
                                      "author": "test", "useafter": "1900-01-01T00:00:00",
                                      "description": "test"})
    cls = {"pastasoss": dm.PastasossModel, "specprofile": dm.SpecProfileModel,
           "speckernel": dm.SpecKernelModel, "photom": dm.NisSossPhotomModel}[reftype]
    with cls(str(path), strict_validation=True) as m:
        m.validate()
        assert m.meta.exposure.type == "NIS_SOSS"
        if reftype == "specprofile":
            assert [p.data.shape for p in m.profile] == [(96, 2048)] * 2
        if reftype == "pastasoss":
            assert [int(t.spectral_order) for t in m.traces] == [1, 2]
            assert m.meta.soss_xdim == 2048


def test_level3_association(program, tmp_path):
    from spec3flow.associations import generate_associations, pool_from_cal_files

    out, _ = program
    paths = generate_associations(pool_from_cal_files(out), tmp_path, ["NIS_SOSS"])
    assert [p.name for p in paths] == ["jw01234-o020_spec3_00001_asn.json"]
    asn = json.loads(paths[0].read_text())
    assert asn["asn_rule"] == "candidate_Asn_Lv3SlitlessSpectral"
    (product,) = asn["products"]
    assert product["name"] == "jw01234-o020_t001_niriss_clear-gr700xd-substrip96"
    assert [m["exptype"] for m in product["members"]] == ["science"]
    assert product["members"][0]["expname"].endswith(CAL)


def test_crds_table_has_soss_refs():
    from spec3flow import crds_local

    rows = {e.reftype: e for e in crds_local.REFERENCE_TABLE if e.instrument == "niriss"}
    assert {"pastasoss", "specprofile", "speckernel", "photom"} <= set(rows)
    assert all(rows[r].exp_types == ("NIS_SOSS",) for r in
               ("pastasoss", "specprofile", "speckernel", "photom"))
    assert rows["pastasoss"].ext == ".asdf"
    assert rows["photom"].params["src"] == soss.source_sha1()


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="nints"):
        soss.generate_soss(tmp_path, nints=1)
    with pytest.raises(ValueError, match="pwcpos"):
        soss.generate_soss(tmp_path, pwcpos=250.0)
