"""The first correctness test: the workflow's products are Spec3Pipeline's products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from spec3flow.compare import compare_dirs

pytestmark = pytest.mark.e2e

MODE_PREFIX = {  # product name prefixes of the synthetic program's observations
    "NRS_MSASPEC": "jw01234-o001_",
    "NRS_FIXEDSLIT": "jw01234-o002_",
    "MIR_LRS-FIXEDSLIT": ("jw01234-o003_", "jw01234-o004_", "jw01234-c1000_", "jw01234003001_",
                          "jw01234004001_"),
}


@pytest.mark.parametrize("mode", sorted(MODE_PREFIX))
def test_products_equal_spec3pipeline(slit_program, mode):
    only_workflow, only_pipeline, diffs = compare_dirs(slit_program["results"] / "products",
                                                       slit_program["baseline"])
    prefix = MODE_PREFIX[mode]
    assert not [n for n in only_workflow if n.startswith(prefix)]
    assert not [n for n in only_pipeline if n.startswith(prefix)]
    mine = [d for d in diffs if d.name.startswith(prefix)]
    suffixes = {d.name.rsplit("_", 1)[-1] for d in mine}
    expected = {"crf.fits", "s2d.fits", "x1d.fits"} | ({"cal.fits"} if mode != "MIR_LRS-FIXEDSLIT" else set())
    assert suffixes == expected
    for diff in mine:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff, diff.nan_mismatch, diff.shape_mismatch)
        assert diff.keyword_diffs == [], diff.name


def test_inputs_untouched(slit_program):
    after = {p.name: p.stat().st_mtime_ns for p in slit_program["input"].iterdir()}
    assert after == slit_program["input_mtimes"]


def test_mos_flux_recovered(slit_program):
    """Each MOS source's x1d flux matches its injected spectrum within the noise."""
    truth = pd.read_csv(slit_program["input"] / "truth_nirspec_mos_spectra.csv")
    sources = pd.read_csv(slit_program["input"] / "truth_nirspec_mos_sources.csv")
    checked = 0
    for row in sources.itertuples():
        if "BKG" in str(row.source_name):
            continue
        x1d = slit_program["results"] / "products" / f"jw01234-o001_{row.product_source_id}_nirspec_f170lp-g235m_x1d.fits"
        table = fits.getdata(x1d, "EXTRACT1D")
        wave, flux, err = table["WAVELENGTH"], table["FLUX"], table["FLUX_ERROR"]
        t = truth[truth.source_id == row.source_id].sort_values("wavelength_um")
        expected = np.interp(wave, t.wavelength_um, t.flux_jy)
        good = np.isfinite(flux) & np.isfinite(err) & (err > 0)
        pull = (flux[good] - expected[good]) / err[good]
        assert abs(np.median(pull)) < 1.0, row.source_id
        assert np.nansum(flux[good]) / np.sum(expected[good]) == pytest.approx(1.0, abs=0.05)
        checked += 1
    assert checked >= 2


def test_cosmic_rays_flagged(slit_program):
    """Every injected MOS cosmic ray is flagged OUTLIER in its source's crf."""
    crs = pd.read_csv(slit_program["input"] / "truth_nirspec_mos_cosmic_rays.csv")
    sources = pd.read_csv(slit_program["input"] / "truth_nirspec_mos_sources.csv")
    product_id = dict(zip(sources.source_id, sources.product_source_id))
    outlier = 16  # jwst DQ bit OUTLIER
    assert len(crs) > 0
    for cr in crs.itertuples():
        crf = slit_program["results"] / "products" / f"jw01234-o001_{product_id[cr.source_id]}_nirspec_f170lp-g235m_crf.fits"
        with fits.open(crf) as hdul:
            dqs = [h.data for h in hdul if h.name == "DQ"]
            flagged = any(dq[cr.y, cr.x] & outlier for dq in dqs if dq.shape[0] > cr.y and dq.shape[1] > cr.x)
        assert flagged, cr


def test_every_product_has_provenance(slit_program):
    """A sidecar per final product whose references, statuses and context are the product's own."""
    import json

    from spec3flow.provenance import history, sidecar_path

    products = sorted((slit_program["results"] / "products").glob("*.fits"))
    assert products
    for path in products:
        sidecar = json.loads(sidecar_path(path).read_text())
        job = sidecar["job"]
        header = fits.getheader(path)
        recorded = job["product_header"]
        assert recorded["reference_files"] == {k: header[k] for k in header if k.startswith("R_")}
        assert recorded["step_status"] == {k: header[k] for k in header if k.startswith("S_")}
        assert recorded["crds_context"] == header.get("CRDS_CTX")
        assert job["software"]["jwst"] == "3.0.0"
        assert job["inputs"] or job["association"]["sha256"]
        steps = [j["step"] for j in history(sidecar)]
        assert steps[-1] == job["step"]
        for name in job["steps_run"]:
            if name in ("exp_to_source", "wfss_gather"):
                continue
            assert "skip" in job["parameters"][name]
    manifest = json.loads((slit_program["results"] / "provenance.json").read_text())
    assert {p["product"] for p in manifest["products"]} == {p.name for p in products}


def test_html_report_has_a_plot_per_final_product(slit_program):
    """`snakemake --report`: self-contained HTML with a quick-look per plotted product."""
    import re

    from conftest import run_snakemake

    report = slit_program["root"] / "report.html"
    run_snakemake(slit_program["root"], slit_program["config"], "--report", str(report))
    html = report.read_text(errors="replace")
    plotted = [p.name[: -len(".fits")] for p in (slit_program["results"] / "products").glob("*.fits")
               if re.search(r"_(s2d|x1d|c1d|s3d)\.fits$", p.name)]
    assert plotted
    for name in plotted:
        assert f"{name}.png" in html, name
    assert "summary.csv" in html and "provenance.json" in html
