"""Unit tests for spec3flow.whatchanged (what a re-processing changed), on synthetic products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3flow import compare, whatchanged

X1D = "jw01234-o001_s000000123_nirspec_f170lp-g235m-s200a1_x1d.fits"
C1D = "jw01234-o001_s000000007_nirspec_f170lp-g235m_c1d.fits"
S2D = "jw01234-o001_s000000123_nirspec_f170lp-g235m-s200a1_s2d.fits"


def _meta(model, context="jwst_1413.pmap", cal_ver="3.0.0"):
    model.meta.exposure.type = "NRS_FIXEDSLIT"
    model.meta.instrument.name = "NIRSPEC"
    model.meta.instrument.detector = "NRS1"
    model.meta.calibration_software_version = cal_ver
    model.meta.ref_file.crds.context_used = context
    model.meta.cal_step.outlier_detection = "COMPLETE"
    model.meta.cal_step.resample = "COMPLETE"
    model.meta.cal_step.extract_1d = "COMPLETE"
    return model


def _flux(n=200):
    return 10.0 + np.sin(np.linspace(0, 6, n))


def write_x1d(path, flux, *, xstart=10, wave=None, dq=None, **meta):
    n = flux.size
    model = _meta(dm.MultiSpecModel(), **meta)
    table = np.zeros(n, dtype=dm.SpecModel().get_dtype("spec_table"))
    table["WAVELENGTH"] = np.linspace(1.6, 3.2, n) if wave is None else wave
    table["FLUX"] = flux
    table["FLUX_ERROR"] = 0.5
    table["DQ"] = 0 if dq is None else dq
    table["SURF_BRIGHT"] = np.nan
    spec = dm.SpecModel(spec_table=table)
    spec.source_id = 123
    spec.name = "S200A1"
    spec.extraction_xstart = xstart
    spec.extraction_xstop = 190
    model.spec.append(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def write_c1d(path, flux, **meta):
    model = _meta(dm.MultiCombinedSpecModel(), **meta)
    model.meta.cal_step.combine_1d = "COMPLETE"
    table = np.zeros(flux.size, dtype=dm.CombinedSpecModel().get_dtype("spec_table"))
    table["WAVELENGTH"] = np.linspace(2.0, 3.0, flux.size)
    table["FLUX"] = flux
    table["ERROR"] = 1.0
    table["N_INPUT"] = 2
    sp = model.spec.item()
    sp.spec_table = table
    sp.source_id = 7
    model.spec.append(sp)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def write_s2d(path, data, *, flat="N/A", step_status="COMPLETE", **meta):
    model = _meta(dm.SlitModel(), **meta)
    model.meta.cal_step.pixel_replace = step_status
    model.meta.ref_file.flat.name = flat
    model.data = data.astype(np.float32)
    model.err = np.ones(data.shape, np.float32)
    model.dq = np.zeros(data.shape, np.uint32)
    model.name = "S200A1"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _image(seed=1, shape=(20, 60)):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 1, shape)
    data[8:12] += 20.0
    return data


def _row(df, name):
    rows = df[df["product"] == name]
    assert len(rows) == 1, name
    return rows.iloc[0]


def test_one_step_parameter_changed(tmp_path, capsys):
    """Acceptance: two processings that differ by one step parameter (extract_1d's aperture).

    The x1d FLUX differs by 10 % and the extraction keyword EXTRXSTR changed; an s2d
    product before that step is identical (its DATE/FILENAME differ, which do not count).
    """
    a, b, out = tmp_path / "results_a", tmp_path / "results_b", tmp_path / "out"
    flux = _flux()
    write_x1d(a / "products" / X1D, flux, xstart=10)
    write_x1d(b / "products" / X1D, flux * 1.1, xstart=12)
    image = _image()
    write_s2d(a / "products" / S2D, image)
    write_s2d(b / "products" / S2D, image)
    with fits.open(b / "products" / S2D, mode="update") as hdul:  # a re-processing's volatile keywords
        hdul[0].header["DATE"] = "2099-01-01T00:00:00.000"

    assert whatchanged.main([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 products: 2 in both (1 changed, 1 identical)" in printed
    assert X1D in printed

    df = pd.read_csv(out / "whatchanged.csv", keep_default_na=False, na_values=[""])
    assert list(df.columns) == whatchanged.COLUMNS
    x1d = _row(df, X1D)
    assert x1d["present_in"] == "both"
    assert x1d["product_type"] == "x1d"
    assert x1d["max_abs_diff"] == pytest.approx(0.1 * flux.max(), rel=1e-5)
    assert x1d["rel_diff"] == pytest.approx(0.1 / 1.1 * 1.1, rel=1e-4)
    assert x1d["nan_mismatch"] == 0
    assert x1d["flux_ratio_median"] == pytest.approx(1.1, rel=1e-6)
    assert x1d["n_changed_keywords"] == 1
    assert x1d["changed_keywords"] == "EXTRACT1D,1:EXTRXSTR"
    assert pd.isna(x1d["changed_steps"]) and pd.isna(x1d["changed_reffiles"])
    assert pd.isna(x1d["crds_context_changed"]) and pd.isna(x1d["cal_ver_changed"])
    assert x1d["plot"].startswith("plots/") and (out / x1d["plot"]).stat().st_size > 0

    s2d = _row(df, S2D)
    assert s2d["max_abs_diff"] == 0 and s2d["nan_mismatch"] == 0
    assert s2d["n_changed_keywords"] == 0  # DATE and FILENAME are volatile
    assert pd.isna(s2d["flux_ratio_median"])
    assert pd.isna(s2d["plot"])
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [f"01_{X1D[:-5]}.png"]


def test_provenance_and_2d_difference(tmp_path):
    """A re-processing with a new CRDS context, jwst version, flat and a step status: all reported."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    image = _image()
    changed = image.copy()
    changed[9, 30] += 5.0
    changed[0, 0] = np.nan
    write_s2d(a / S2D, image, flat="crds://jwst_nirspec_flat_0001.fits")
    write_s2d(b / S2D, changed, flat="crds://jwst_nirspec_flat_0002.fits", step_status="SKIPPED",
              context="jwst_1464.pmap", cal_ver="3.0.1")
    df = whatchanged.what_changed(a, b, out)  # plain directories of products, no products/
    row = _row(df, S2D)
    assert row["max_abs_diff"] == pytest.approx(5.0, rel=1e-5)
    assert row["nan_mismatch"] == 1
    assert row["changed_steps"] == "S_PXREPL: COMPLETE->SKIPPED"
    assert row["changed_reffiles"] == ("R_FLAT: crds://jwst_nirspec_flat_0001.fits->"
                                       "crds://jwst_nirspec_flat_0002.fits")
    assert row["crds_context_changed"] == "jwst_1413.pmap->jwst_1464.pmap"
    assert row["cal_ver_changed"] == "3.0.0->3.0.1"
    assert {"CRDS_CTX", "CAL_VER", "R_FLAT", "S_PXREPL"} <= set(row["changed_keywords"].split(";"))
    assert "DATE" not in row["changed_keywords"].split(";")
    assert (out / row["plot"]).is_file()
    summary = whatchanged.summary_text(df)
    assert "jwst_1413.pmap->jwst_1464.pmap" in summary and "3.0.0->3.0.1" in summary


def test_presence_and_plot_ranking(tmp_path):
    """Products only on one side are listed; only the N largest relative differences are plotted."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    flux = _flux(100)
    names = [X1D.replace("123", f"{i:03d}") for i in (1, 2, 3)]
    for name, factor in zip(names, (1.01, 1.5, 1.2)):
        write_x1d(a / "products" / name, flux)
        write_x1d(b / "products" / name, flux * factor)
    write_c1d(a / "products" / C1D, flux)
    write_c1d(b / "products" / C1D.replace("007", "008"), flux)
    df = whatchanged.what_changed(a, b, out, n_plots=2)
    present = dict(zip(df["product"], df["present_in"]))
    assert present[C1D] == "a" and present[C1D.replace("007", "008")] == "b"
    assert all(present[n] == "both" for n in names)
    plotted = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plotted == [f"01_{names[1][:-5]}.png", f"02_{names[2][:-5]}.png"]
    only = _row(df, C1D)
    assert pd.isna(only["max_abs_diff"]) and only["plot"] == ""


def test_c1d_ratio_and_dq_masking(tmp_path):
    """The median ratio uses valid points only (finite, not DO_NOT_USE); c1d is handled like x1d."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    flux = _flux(100)
    bad = flux * 0.9
    bad[:60] = flux[:60] * 100.0  # garbage where DQ says DO_NOT_USE
    dq = np.zeros(100, np.uint32)
    dq[:60] = 1
    write_x1d(a / X1D, flux, dq=dq)
    write_x1d(b / X1D, bad, dq=dq)
    write_c1d(a / C1D, flux)
    write_c1d(b / C1D, flux * 2.0)
    df = whatchanged.what_changed(a, b, out)
    assert _row(df, X1D)["flux_ratio_median"] == pytest.approx(0.9)
    assert _row(df, C1D)["flux_ratio_median"] == pytest.approx(2.0)
    assert _row(df, C1D)["product_type"] == "c1d"


def test_different_wavelength_grids(tmp_path):
    """Spectra of different lengths: flagged as a structure change, ratio by interpolation."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    write_x1d(a / X1D, np.full(100, 4.0), wave=np.linspace(2.0, 3.0, 100))
    write_x1d(b / X1D, np.full(80, 5.0), wave=np.linspace(1.9, 3.1, 80))
    df = whatchanged.what_changed(a, b, out)
    row = _row(df, X1D)
    assert row["max_abs_diff"] == np.inf
    assert "shape" in row["structure_diff"]
    assert row["flux_ratio_median"] == pytest.approx(1.25)
    assert (out / row["plot"]).is_file()


def test_reuses_compare_volatile_sets():
    assert whatchanged.VOLATILE_KEYWORDS is compare.VOLATILE_KEYWORDS


def test_find_products_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        whatchanged.find_products(tmp_path / "missing")
    (tmp_path / "products").mkdir()
    (tmp_path / "products" / "x_x1d.fits").write_bytes(b"")
    (tmp_path / "y_x1d.fits").write_bytes(b"")
    assert list(whatchanged.find_products(tmp_path)) == ["x_x1d.fits"]


def test_unreadable_product_is_reported_not_fatal(tmp_path):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    write_x1d(a / X1D, _flux())
    b.mkdir()
    (b / X1D).write_bytes(b"not a FITS file")
    df = whatchanged.what_changed(a, b, out)
    assert _row(df, X1D)["error"]
    assert (out / "whatchanged.csv").is_file()
