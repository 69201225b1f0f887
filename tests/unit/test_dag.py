"""Job chains of the DAG: which steps get jobs, what each reads and writes, what it runs first.

Plans are built by hand (no files): the Dag only looks at names.
"""

from __future__ import annotations

import pytest

from spec3flow.dag import Dag, exposure_stem, is_skipped
from spec3flow.plan import Plan, Product, Source

R = "res"
IN = "/data"
MOS_EXPS = [f"{IN}/jw01234001001_02101_{i:05d}_nrs1_cal.fits" for i in (1, 2, 3)]
LRS_EXPS = [f"{IN}/jw01234003001_02101_{i:05d}_mirimage_cal.fits" for i in (1, 2)]
LRS_BKG = [f"{IN}/jw01234004001_02101_{i:05d}_mirimage_x1d.fits" for i in (1, 2)]
MOS_ASN = "jw01234-o001_spec3_00001_asn"
STEMS = ["jw01234-o001_s000000001_nirspec_f170lp-g235m", "jw01234-o001_b000001003_nirspec_f170lp-g235m"]


def mos_product() -> Product:
    return Product(
        asn_name=MOS_ASN, name="jw01234-o001_{source_id}_nirspec_f170lp-g235m", exp_type="NRS_MSASPEC",
        science=list(MOS_EXPS), background=[],
        sources=[Source(STEMS[0], "s000000001", [p.rsplit("/", 1)[1] for p in MOS_EXPS]),
                 Source(STEMS[1], "b000001003", [p.rsplit("/", 1)[1] for p in MOS_EXPS[:2]])])


def lrs_product(asn_id="o003", background=True) -> Product:
    name = f"jw01234-{asn_id}_t001_miri_p750l"
    return Product(asn_name=f"jw01234-{asn_id}_spec3_00001_asn", name=name, exp_type="MIR_LRS-FIXEDSLIT",
                   science=list(LRS_EXPS), background=list(LRS_BKG) if background else [],
                   sources=[Source(name, None, [p.rsplit("/", 1)[1] for p in LRS_EXPS])])


def dag(*products, **steps) -> Dag:
    return Dag(Plan(products=list(products), skipped=[]), R, steps)


def prod(name):
    return f"{R}/products/{name}"


def asn(product_asn):
    return f"{R}/asn/{product_asn}.json"


# ------------------------------------------------------------------- helpers
def test_is_skipped_defaults():
    assert is_skipped({}, "adaptive_trace_model") and is_skipped({}, "pixel_replace")
    assert not is_skipped({}, "outlier_detection") and not is_skipped({}, "resample_spec")
    assert not is_skipped({"pixel_replace": {"skip": False}}, "pixel_replace")
    assert is_skipped({"resample_spec": {"skip": True}}, "resample_spec")
    assert not is_skipped({"outlier_detection": {"snr": "5 4"}}, "outlier_detection")


def test_exposure_stem():
    assert exposure_stem("/a/b/jw01234003001_02101_00001_mirimage_cal.fits") == \
        "jw01234003001_02101_00001_mirimage"


# ----------------------------------------------------------------- MOS chains
def test_mos_default_chain():
    d = dag(mos_product())
    assert d.job_counts() == {"exp_to_source": 1, "outlier_detection": 2, "resample_spec": 2, "extract_1d": 2}
    e2s = d.job("exp_to_source", MOS_ASN)
    assert e2s.asn == asn(MOS_ASN)
    assert e2s.inputs == [] and e2s.depends == MOS_EXPS and e2s.run_before == []
    assert e2s.outputs == [prod(f"{s}_cal.fits") for s in STEMS]
    for stem in STEMS:
        od = d.job("outlier_detection", stem)
        assert (od.inputs, od.outputs, od.run_before) == ([prod(f"{stem}_cal.fits")], [prod(f"{stem}_crf.fits")], [])
        assert od.output_stem == stem and od.depends == [] and od.input_names == []
        rs = d.job("resample_spec", stem)
        # the default-skipped steps between outlier_detection and resample_spec run (skipped) first
        assert rs.run_before == ["adaptive_trace_model", "pixel_replace"]
        assert (rs.inputs, rs.outputs) == (od.outputs, [prod(f"{stem}_s2d.fits")])
        x1d = d.job("extract_1d", stem)
        assert (x1d.inputs, x1d.outputs, x1d.run_before) == (rs.outputs, [prod(f"{stem}_x1d.fits")], [])
    assert sorted(d.final) == sorted(prod(f"{s}_{sfx}.fits") for s in STEMS for sfx in ("cal", "crf", "s2d", "x1d"))
    assert sorted(d.plotted_products()) == sorted(f"{s}_{sfx}" for s in STEMS for sfx in ("s2d", "x1d"))
    assert d.per_exposure_jobs() == []
    with pytest.raises(KeyError, match="no combine_1d job"):
        d.job("combine_1d", STEMS[0])


def test_plot_batches_cover_every_plotted_product_in_order():
    d = dag(mos_product(), lrs_product())
    names = d.plotted_products()
    batches = d.plot_batches(3)
    assert [b.rule for b in batches] == [f"plot_batch_{k:04d}" for k in range(1, len(batches) + 1)]
    assert [len(b.pngs) for b in batches] == [3] * (len(names) // 3) + ([len(names) % 3] if len(names) % 3 else [])
    assert [p for b in batches for p in b.products] == [prod(f"{n}.fits") for n in names]
    assert [p for b in batches for p in b.pngs] == [f"{R}/qa/{n}.png" for n in names]
    first = batches[0]
    assert first.plot_args().split() == [x for pair in zip(first.products, first.pngs) for x in pair]
    assert [suffix for _, suffix in first.suffixed_pngs()] == [n.rsplit("_", 1)[1] for n in names[:3]]
    assert len(d.plot_batches(1000)) == 1
    with pytest.raises(ValueError, match="plots_per_job"):
        d.plot_batches(0)


def test_outlier_detection_skipped_runs_before_resample():
    d = dag(mos_product(), outlier_detection={"skip": True})
    assert d.jobs_of("outlier_detection") == []
    rs = d.job("resample_spec", STEMS[0])
    assert rs.run_before == ["outlier_detection", "adaptive_trace_model", "pixel_replace"]
    assert rs.inputs == [prod(f"{STEMS[0]}_cal.fits")]
    assert not [f for f in d.final if f.endswith("_crf.fits")]


def test_pixel_replace_enabled_is_an_intermediate_job():
    d = dag(mos_product(), pixel_replace={"skip": False, "n_adjacent_cols": 2})
    pr = d.job("pixel_replace", STEMS[0])
    assert pr.run_before == ["adaptive_trace_model"]
    assert pr.inputs == [prod(f"{STEMS[0]}_crf.fits")]
    assert pr.outputs == [f"{R}/intermediate/sources/{STEMS[0]}_pixel_replace.fits"]
    assert pr.outputs[0] not in d.final
    rs = d.job("resample_spec", STEMS[0])
    assert rs.run_before == [] and rs.inputs == pr.outputs


def test_resample_skipped_extracts_then_combines():
    product = mos_product()
    d = dag(product, resample_spec={"skip": True})
    assert d.jobs_of("resample_spec") == []
    x1d_names = []
    for source in product.sources:
        stem = source.stem
        x1d = d.job("extract_1d", stem)
        assert x1d.inputs == [prod(f"{stem}_crf.fits")]
        assert x1d.run_before == ["adaptive_trace_model", "pixel_replace", "resample_spec"]
        # one spectrum per exposure of this source, indexed as stpipe names container members
        assert x1d.outputs == [prod(f"{stem}_{i}_x1d.fits") for i in range(len(source.exposures))]
        x1d_names += [f"{stem}_{i}_x1d" for i in range(len(source.exposures))]
        c1d = d.job("combine_1d", stem)
        assert (c1d.inputs, c1d.outputs, c1d.run_before) == (x1d.outputs, [prod(f"{stem}_c1d.fits")], [])
    assert sorted(d.plotted_products()) == sorted(x1d_names + [f"{s}_c1d" for s in STEMS])
    assert not [f for f in d.final if f.endswith("_s2d.fits")]
    # sources grouped by exposure count (one Snakemake rule per count)
    assert d.unresampled_extract_groups() == {3: [STEMS[0]], 2: [STEMS[1]]}


def test_resampled_sources_are_not_in_unresampled_groups():
    assert dag(mos_product()).unresampled_extract_groups() == {}


def test_resample_not_skipped_has_no_combine():
    assert dag(mos_product()).jobs_of("combine_1d") == []


# ----------------------------------------------------------------- background
def test_background_members_get_a_master_background_job():
    p = lrs_product("o003")
    d = dag(p)
    mb = d.job("master_background", p.asn_name)
    assert mb.inputs == [] and mb.depends == LRS_EXPS + LRS_BKG and mb.run_before == []
    assert mb.outputs == [f"{R}/intermediate/{p.asn_name}/master_background/{e.rsplit('/', 1)[1]}"
                          for e in LRS_EXPS]
    assert mb.outputs[0] not in d.final
    od = d.job("outlier_detection", p.name)
    assert od.inputs == mb.outputs and od.depends == [] and od.run_before == []
    assert [p_.name for p_ in d.products_with("master_background")] == [p.name]


def test_master_background_skipped_runs_before_next_job():
    p = lrs_product("o003")
    d = dag(p, master_background={"skip": True})
    assert d.jobs_of("master_background") == []
    od = d.job("outlier_detection", p.name)
    assert od.run_before == ["master_background"]
    assert od.inputs == [] and od.depends == LRS_EXPS + LRS_BKG  # reads the association's members
    assert od.input_names == []


def test_no_background_no_master_background():
    d = dag(lrs_product("o004", background=False), mos_product())
    assert d.jobs_of("master_background") == []


def test_mos_with_background_members_runs_exp_to_source_on_subtracted():
    p = mos_product()
    p.background = [f"{IN}/jw01234005001_02101_00001_nrs1_x1d.fits"]
    d = dag(p)
    mb = d.job("master_background", MOS_ASN)
    e2s = d.job("exp_to_source", MOS_ASN)
    assert e2s.inputs == mb.outputs and e2s.run_before == []


# ------------------------------------------------------------------------ LRS
def test_lrs_crf_names_and_input_names():
    p = lrs_product("o004", background=False)
    d = dag(p)
    od = d.job("outlier_detection", p.name)
    # per-exposure crf as Spec3Pipeline names them: <exposure>_<asn_id>_crf.fits
    assert od.outputs == [prod("jw01234003001_02101_00001_mirimage_o004_crf.fits"),
                          prod("jw01234003001_02101_00002_mirimage_o004_crf.fits")]
    assert od.inputs == [] and od.depends == LRS_EXPS  # no master background: reads the asn
    assert od.input_names == []
    rs = d.job("resample_spec", p.name)
    assert rs.inputs == od.outputs
    # the crf files are read back under the names the pipeline held them by (the exposures)
    assert rs.input_names == ["jw01234003001_02101_00001_mirimage_cal.fits",
                              "jw01234003001_02101_00002_mirimage_cal.fits"]
    assert rs.outputs == [prod(f"{p.name}_s2d.fits")]
    x1d = d.job("extract_1d", p.name)
    assert x1d.inputs == rs.outputs and x1d.input_names == []
    assert d.per_exposure_jobs() == [od]


def test_lrs_master_background_outputs_keep_exposure_names():
    p = lrs_product("c1000")
    d = dag(p)
    od = d.job("outlier_detection", p.name)
    assert od.input_names == [e.rsplit("/", 1)[1] for e in LRS_EXPS]
    assert od.outputs == [prod(f"{exposure_stem(e)}_c1000_crf.fits") for e in LRS_EXPS]


def test_lrs_resample_skipped_extracts_per_exposure():
    p = lrs_product("o004", background=False)
    d = dag(p, resample_spec={"skip": True})
    x1d = d.job("extract_1d", p.name)
    assert x1d.inputs == d.job("outlier_detection", p.name).outputs
    assert x1d.input_names == [e.rsplit("/", 1)[1] for e in LRS_EXPS]
    assert x1d.outputs == [prod(f"{p.name}_{i}_x1d.fits") for i in range(len(LRS_EXPS))]
    c1d = d.job("combine_1d", p.name)
    assert c1d.inputs == x1d.outputs and c1d.input_names == []
    assert c1d.outputs == [prod(f"{p.name}_c1d.fits")]


def test_multisource_inputs_have_no_input_names():
    d = dag(mos_product(), resample_spec={"skip": True})
    assert all(job.input_names == [] for job in d.jobs.values())


def test_keys_and_counts_over_products():
    d = dag(mos_product(), lrs_product("o003"), lrs_product("o004", background=False))
    assert d.job_counts() == {"master_background": 1, "exp_to_source": 1, "outlier_detection": 4,
                              "resample_spec": 4, "extract_1d": 4}
    assert d.keys("master_background") == ["jw01234-o003_spec3_00001_asn"]
    assert sorted(j.key for j in d.per_exposure_jobs()) == ["jw01234-o003_t001_miri_p750l",
                                                           "jw01234-o004_t001_miri_p750l"]
