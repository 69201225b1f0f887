"""Dedicated background observations of the synthetic IFU programs (``background=True``):
the sky in every exposure, the BKGDTARG exposures and their Stage 2 x1d, and the
Level 3 associations jwst's rules make from the headers (background x1d as
``exptype: background`` members of a ``c1000``-style candidate)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from spec3flow.synth import miri_mrs, nirspec_ifu

dm = pytest.importorskip("stdatamodels.jwst.datamodels")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    out = tmp_path_factory.mktemp("ifu_bkg")
    nrs = nirspec_ifu.generate_nirspec_ifu(out, seed=3, n_dithers=2, background=True)
    mrs = miri_mrs.generate_miri_mrs(out, seed=3, n_dithers=2, background=True)
    return out, nrs, mrs


def _names(paths, suffix):
    return [p.name for p in paths if p.name.endswith(suffix)]


def test_files_written(program):
    _, nrs, mrs = program
    assert _names(nrs, "_cal.fits") == [
        "jw01234006001_02101_00001_nrs1_cal.fits", "jw01234006001_02101_00002_nrs1_cal.fits",
        "jw01234007001_02101_00001_nrs1_cal.fits", "jw01234007001_02101_00002_nrs1_cal.fits"]
    assert _names(nrs, "_x1d.fits") == ["jw01234007001_02101_00001_nrs1_x1d.fits",
                                        "jw01234007001_02101_00002_nrs1_x1d.fits"]
    assert _names(mrs, "_x1d.fits") == [
        "jw01234008001_02101_00001_mirifushort_x1d.fits",
        "jw01234008001_02101_00002_mirifushort_x1d.fits",
        "jw01234008001_02101_00003_mirifulong_x1d.fits",
        "jw01234008001_02101_00004_mirifulong_x1d.fits"]


@pytest.mark.parametrize("mode", ["nrs", "mrs"])
def test_background_exposures_are_sky_only_bkgdtarg(program, mode):
    out, nrs, mrs = program
    module, files, obs = ((nirspec_ifu, nrs, "007") if mode == "nrs" else (miri_mrs, mrs, "008"))
    bkg_cals = [p for p in files if p.name.endswith("_cal.fits") and p.name[7:10] == obs]
    assert bkg_cals
    for path in bkg_cals:
        with dm.open(path) as m:
            assert m.meta.observation.bkgdtarg is True
            assert m.meta.target.source_type == "EXTENDED"
            assert m.meta.target.proposer_name == module.BKG_TARGET["proposer_name"]
            lam = (nirspec_ifu.wavelength_map(m.data.shape[1], m.regions) if mode == "nrs"
                   else miri_mrs.wavelength_map(m.meta.instrument.detector, m.data.shape[0],
                                                m.regions))
            on = np.isfinite(lam)
            # sky only: the residual from the sky spectrum is pure noise
            pull = (m.data[on] - module.sky_spectrum_mjysr(lam[on])) / m.err[on]
            assert abs(pull.mean()) < 0.05 and pull.std() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("mode", ["nrs", "mrs"])
def test_background_x1d_holds_the_sky(program, mode):
    """The x1d master_background reads: EXTENDED, BKGDTARG, SURF_BRIGHT = BACKGROUND =
    the sky within its error, a spectral WCS (combine_1d takes RA/Dec from it)."""
    _, nrs, mrs = program
    module, files = (nirspec_ifu, nrs) if mode == "nrs" else (miri_mrs, mrs)
    x1ds = [p for p in files if p.name.endswith("_x1d.fits")]
    for path in x1ds:
        with dm.open(path) as m:
            assert isinstance(m, dm.MRSMultiSpecModel if mode == "mrs" else dm.MultiSpecModel)
            assert m.meta.observation.bkgdtarg is True
            assert m.meta.exposure.type == ("MIR_MRS" if mode == "mrs" else "NRS_IFU")
            assert m.meta.cal_step.extract_1d == "COMPLETE"
            assert len(m.spec) == 1
            spec = m.spec[0]
            assert spec.source_type == "EXTENDED"
            t = spec.spec_table
            assert np.all(np.diff(t["WAVELENGTH"]) > 0)
            np.testing.assert_array_equal(t["SURF_BRIGHT"], t["BACKGROUND"])
            assert np.all(np.isfinite(t["FLUX"])) and np.all(t["SB_ERROR"] > 0)
            pull = (t["SURF_BRIGHT"] - module.sky_spectrum_mjysr(t["WAVELENGTH"])) / t["SB_ERROR"]
            assert np.median(np.abs(pull)) < 1.5 and np.max(np.abs(pull)) < 5
            assert spec.spec_table.columns["surf_bright"].unit == "MJy/sr"
            ra, dec, lam = spec.meta.wcs(0.0)
            assert np.isfinite(ra) and lam == pytest.approx(t["WAVELENGTH"][0])
    if mode == "mrs":  # one spectrum over both channels of the detector
        with dm.open(x1ds[0]) as m:
            wave = m.spec[0].spec_table["WAVELENGTH"]
        assert wave.min() < 6.01 and wave.max() > 9.0


def test_science_exposures_carry_the_sky(program):
    out, nrs, _ = program
    with dm.open(nrs[0]) as m:
        lam = nirspec_ifu.wavelength_map(m.data.shape[1], m.regions)
        assert m.meta.observation.bkgdtarg is False
        # far from the point source the science pixels are sky
        on = np.isfinite(lam)
        assert np.median(m.data[on]) == pytest.approx(
            np.median(nirspec_ifu.sky_spectrum_mjysr(lam[on])), rel=0.1)


def test_truth_tables_list_the_sky(program):
    out, _, _ = program
    rows = list(csv.DictReader(open(out / "nrs_ifu_truth_spectrum.csv")))
    lam = np.array([float(r["wavelength_um"]) for r in rows])
    np.testing.assert_allclose([float(r["sky_mjy_sr"]) for r in rows],
                               nirspec_ifu.sky_spectrum_mjysr(lam))
    rows = list(csv.DictReader(open(out / "mrs_truth_spectrum.csv")))
    lam = np.array([float(r["wavelength_um"]) for r in rows])
    np.testing.assert_allclose([float(r["sky_mjy_sr"]) for r in rows],
                               miri_mrs.sky_spectrum_mjysr(lam))
    roles = [r["role"] for r in csv.DictReader(open(out / "mrs_truth_exposures.csv"))]
    assert roles == ["science"] * 4 + ["background"] * 4


def test_default_program_unchanged_without_background(tmp_path):
    """No background: the same science files, bit for bit in the arrays, and no sky."""
    from astropy.io import fits

    a = nirspec_ifu.generate_nirspec_ifu(tmp_path / "a", seed=5, n_dithers=1, nx=20)
    b = nirspec_ifu.generate_nirspec_ifu(tmp_path / "b", seed=5, n_dithers=1, nx=20,
                                         background=True, n_background=1)
    assert [p.name for p in a] == [
        "jw01234006001_02101_00001_nrs1_cal.fits", "nrs_ifu_truth_spectrum.csv",
        "nrs_ifu_truth_outliers.csv", "nrs_ifu_truth_exposures.csv"]
    sky = nirspec_ifu.sky_spectrum_mjysr(nirspec_ifu.wavelength_of_column(np.arange(20)))
    da, db = fits.getdata(a[0], "SCI"), fits.getdata(b[0], "SCI")
    # same noise draw; the background program's science pixels hold the sky on top
    assert np.nanmedian(db - da) == pytest.approx(np.median(sky), rel=0.1)
    assert all(float(r["sky_mjy_sr"]) == 0.0 for r in csv.DictReader(open(a[1])))


def test_associations_include_background_x1d(program, tmp_path):
    """What the workflow's association rule runs (spec3flow.plan.make_associations: pool
    from the cal headers -> jwst's generator): the dedicated background observations
    become c-candidates whose associations list their x1d as background members."""
    from spec3flow.plan import make_associations

    out, _, _ = program
    written = make_associations(out, tmp_path, ["NRS_IFU", "MIR_MRS"])
    asns = {p.name: json.loads(p.read_text()) for p in written}
    assert sorted(asns) == [f"jw01234-{c}_spec3_00001_asn.json"
                            for c in ("c1000", "c1001", "o005", "o006", "o007", "o008")]

    def members(name):
        (product,) = asns[name]["products"]
        return product["name"], sorted((m["exptype"], m["expname"].rsplit("/", 1)[-1])
                                       for m in product["members"])

    name, mem = members("jw01234-c1001_spec3_00001_asn.json")
    assert asns["jw01234-c1001_spec3_00001_asn.json"]["asn_rule"] == "candidate_Asn_Lv3NRSIFU"
    assert name == "jw01234-c1001_t004_nirspec_g235m"
    assert mem == [("background", "jw01234007001_02101_00001_nrs1_x1d.fits"),
                   ("background", "jw01234007001_02101_00002_nrs1_x1d.fits"),
                   ("science", "jw01234006001_02101_00001_nrs1_cal.fits"),
                   ("science", "jw01234006001_02101_00002_nrs1_cal.fits")]
    name, mem = members("jw01234-c1000_spec3_00001_asn.json")
    assert asns["jw01234-c1000_spec3_00001_asn.json"]["asn_rule"] == "candidate_Asn_Lv3MIRMRS"
    assert name == "jw01234-c1000_t003_miri"
    assert [m for m in mem if m[0] == "background"] == [
        ("background", f"jw01234008001_02101_{i:05d}_{det}_x1d.fits")
        for i, det in ((1, "mirifushort"), (2, "mirifushort"), (3, "mirifulong"),
                       (4, "mirifulong"))]
    assert len([m for m in mem if m[0] == "science"]) == 4
    # the observation candidates keep their science-only associations and products
    assert members("jw01234-o006_spec3_00001_asn.json")[0] == "jw01234-o006_t004_nirspec_g235m"
    assert members("jw01234-o005_spec3_00001_asn.json")[0] == "jw01234-o005_t003_miri"
    for name in ("o005", "o006", "o007", "o008"):
        _, mem = members(f"jw01234-{name}_spec3_00001_asn.json")
        assert {m[0] for m in mem} == {"science"}
    assert members("jw01234-o007_spec3_00001_asn.json")[0] == "jw01234-o007_t006_nirspec_g235m"
    assert members("jw01234-o008_spec3_00001_asn.json")[0] == "jw01234-o008_t005_miri"
