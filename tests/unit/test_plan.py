"""Parse-time planning: source IDs and product names as Spec3Pipeline makes them."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import make_program
from spec3flow.plan import (
    PlanError,
    build_plan,
    check_input_dir,
    mos_source_id,
    plan_sources,
    read_exp_type,
)

MOS_NAME = "jw01234-o001_{source_id}_nirspec_f170lp-g235m"
FS_NAME = "jw01234-o002_t002-{source_id}_nirspec_f170lp-g235m-{slit_name}-allslits"


# ------------------------------------------------------------------ mos_source_id
@pytest.mark.parametrize("source_id, source_name, expected", [
    (1, "01234_1", "s000000001"),
    (123456789, "01234_123456789", "s123456789"),
    (1003, "01234_BKG5", "b000001003"),  # background slitlet: "BKG" in the name
    (7, "BKG", "b000000007"),
    (-42, "01234_-42", "v000000042"),  # virtual slit: negative id, sign dropped
    (-1234567, "01234_-1234567", "v001234567"),
])
def test_mos_source_id(source_id, source_name, expected):
    assert mos_source_id(source_id, source_name) == expected


def test_mos_source_id_matches_spec3pipeline():
    """Same rule as Spec3Pipeline._create_nrsmos_source_id on slit models."""
    from types import SimpleNamespace

    from jwst.pipeline import Spec3Pipeline

    pipe = Spec3Pipeline()
    for sid, name in [(1, "01234_1"), (1003, "01234_BKG5"), (-42, "01234_-42")]:
        slit = SimpleNamespace(source_id=sid, source_name=name)
        assert mos_source_id(sid, name) == pipe._create_nrsmos_source_id([slit])


# --------------------------------------------------------------- hand-made slits
def write_multislit(path: Path, exp_type: str, slits: list[dict]) -> Path:
    """A minimal MultiSlit-like file: primary + one SCI extension per slit."""
    primary = fits.PrimaryHDU()
    primary.header["EXP_TYPE"] = exp_type
    hdus = [primary]
    for slit in slits:
        sci = fits.ImageHDU(np.zeros((2, 2), dtype="f4"), name="SCI")
        for key, value in slit.items():
            sci.header[key] = value
        hdus.append(sci)
    fits.HDUList(hdus).writeto(path)
    return path


def test_fs_slit_names_joined_in_order(tmp_path):
    """NRS_FIXEDSLIT: one source seen through two slits -> slit names joined with '-'."""
    e1 = write_multislit(tmp_path / "e1_cal.fits", "NRS_FIXEDSLIT",
                         [{"SLTNAME": "S200A1", "SOURCEID": 1}, {"SLTNAME": "S200A2", "SOURCEID": 2}])
    e2 = write_multislit(tmp_path / "e2_cal.fits", "NRS_FIXEDSLIT",
                         [{"SLTNAME": "S200A2", "SOURCEID": 1}, {"SLTNAME": "S200A1", "SOURCEID": 2}])
    e3 = write_multislit(tmp_path / "e3_cal.fits", "NRS_FIXEDSLIT", [{"SLTNAME": "S200A1", "SOURCEID": 1}])
    sources = plan_sources("NRS_FIXEDSLIT", FS_NAME, [e1, e2, e3])
    assert [(s.source_id, s.stem, s.exposures) for s in sources] == [
        ("s000000001", "jw01234-o002_t002-s000000001_nirspec_f170lp-g235m-s200a1-s200a2-allslits",
         ["e1_cal.fits", "e2_cal.fits", "e3_cal.fits"]),
        ("s000000002", "jw01234-o002_t002-s000000002_nirspec_f170lp-g235m-s200a2-s200a1-allslits",
         ["e1_cal.fits", "e2_cal.fits"]),
    ]


def test_mos_groups_by_source_name(tmp_path):
    """NRS_MSASPEC slits group by SRCNAME (as exp_to_source), ids get s/b/v prefixes."""
    e1 = write_multislit(tmp_path / "e1_cal.fits", "NRS_MSASPEC", [
        {"SLTNAME": "10", "SOURCEID": 5, "SRCNAME": "01234_5"},
        {"SLTNAME": "11", "SOURCEID": -3, "SRCNAME": "01234_-3"},
        {"SLTNAME": "12", "SOURCEID": 900, "SRCNAME": "01234_BKG12"},
    ])
    e2 = write_multislit(tmp_path / "e2_cal.fits", "NRS_MSASPEC", [
        {"SLTNAME": "10", "SOURCEID": 5, "SRCNAME": "01234_5"},
    ])
    sources = plan_sources("NRS_MSASPEC", MOS_NAME, [e1, e2])
    assert [(s.stem, s.exposures) for s in sources] == [
        ("jw01234-o001_s000000005_nirspec_f170lp-g235m", ["e1_cal.fits", "e2_cal.fits"]),
        ("jw01234-o001_v000000003_nirspec_f170lp-g235m", ["e1_cal.fits"]),
        ("jw01234-o001_b000000900_nirspec_f170lp-g235m", ["e1_cal.fits"]),
    ]


def test_single_source_mode_one_source(tmp_path):
    paths = [tmp_path / "a_cal.fits", tmp_path / "b_cal.fits"]
    (source,) = plan_sources("MIR_LRS-FIXEDSLIT", "jw01234-o003_t001_miri_p750l", paths)
    assert source.stem == "jw01234-o003_t001_miri_p750l"
    assert source.source_id is None
    assert source.exposures == ["a_cal.fits", "b_cal.fits"]


def test_multislit_without_slits_is_an_error(tmp_path):
    path = write_multislit(tmp_path / "e1_cal.fits", "NRS_MSASPEC", [])
    with pytest.raises(PlanError, match=r"e1_cal\.fits: NRS_MSASPEC exposure has no SCI slit extensions"):
        plan_sources("NRS_MSASPEC", MOS_NAME, [path])


# --------------------------------------------------------------- header checks
def test_read_exp_type(tmp_path):
    path = tmp_path / "x_cal.fits"
    hdu = fits.PrimaryHDU()
    hdu.header["EXP_TYPE"] = "nrs_msaspec "
    hdu.writeto(path)
    assert read_exp_type(path) == "NRS_MSASPEC"
    bad = tmp_path / "y_cal.fits"
    bad.write_text("not fits")
    with pytest.raises(PlanError, match=r"y_cal\.fits: not a readable FITS file"):
        read_exp_type(bad)
    fits.PrimaryHDU().writeto(tmp_path / "z_cal.fits")
    with pytest.raises(PlanError, match=r"z_cal\.fits: primary header has no EXP_TYPE keyword"):
        read_exp_type(tmp_path / "z_cal.fits")


def test_check_input_dir_errors(tmp_path):
    with pytest.raises(PlanError, match="no such directory"):
        check_input_dir(tmp_path / "missing")
    with pytest.raises(PlanError, match=r"holds no Stage 2 products \(\*_cal\.fits\)"):
        check_input_dir(tmp_path)


# ------------------------------------------------------ generated MOS program
@pytest.fixture(scope="module")
def mos3(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    input_dir = make_program(root / "input", modes=("mos",), n_sources=3, seed=7)
    return input_dir, build_plan(input_dir, root / "asn", ["NRS_MSASPEC"])


def test_plan_sources_generated_mos(mos3):
    input_dir, plan = mos3
    (product,) = plan.products
    assert product.exp_type == "NRS_MSASPEC" and product.multisource
    assert product.asn_name == "jw01234-o001_spec3_00001_asn"
    assert product.asn_id == "o001"
    assert product.name == MOS_NAME
    assert [Path(p).name for p in product.science] == sorted(p.name for p in input_dir.glob("*_cal.fits"))
    assert product.background == []
    # one Source per slit group: three sources and the background slitlet
    assert [s.source_id for s in product.sources] == ["s000000001", "s000000002", "s000000003", "b000001003"]
    assert [s.stem for s in product.sources] == [MOS_NAME.format(source_id=s.source_id) for s in product.sources]
    # truth: source 2 is not in the third exposure
    with open(input_dir / "truth_nirspec_mos_sources.csv") as f:
        truth = {row["product_source_id"]: row["exposures"] for row in csv.DictReader(f)}
    exps = sorted(p.name for p in input_dir.glob("*_cal.fits"))
    for source in product.sources:
        expected = [exps[int(i) - 1] for i in truth[source.source_id].split()]
        assert source.exposures == expected, source
    by_id = {s.source_id: s for s in product.sources}
    assert len(by_id["s000000002"].exposures) == 2
    assert exps[2] not in by_id["s000000002"].exposures
    assert plan.skipped == []
    assert set(plan.source_index()) == {s.stem for s in product.sources}


def test_members_resolve_from_plan_asn_dir(mos3):
    """The planned association's member names point at input_dir from asn_dir."""
    input_dir, plan = mos3
    (product,) = plan.products
    for path in product.science:
        assert Path(path).resolve().parent == input_dir.resolve()


def test_skipped_files_are_reported(tmp_path, mos3, caplog):
    input_dir, _ = mos3
    d = tmp_path / "input"
    d.mkdir()
    for p in input_dir.glob("*_cal.fits"):
        (d / p.name).symlink_to(p)
    with fits.open(next(input_dir.glob("*_cal.fits"))) as hdul:
        hdul[0].header["EXP_TYPE"] = "NRS_IMAGE"
        hdul.writeto(d / "jw01234001001_02101_00009_nrs1_cal.fits")
    (d / "jw01234-o001_spec2_00001_asn.json").write_text(json.dumps({"asn_type": "spec2", "products": []}))
    with caplog.at_level(logging.INFO, logger="spec3flow"):
        plan = build_plan(d, tmp_path / "asn", ["NRS_MSASPEC"])
    assert len(plan.products) == 1
    skipped = dict(plan.skipped)
    assert "NRS_IMAGE" in skipped["jw01234001001_02101_00009_nrs1_cal.fits"]
    assert "'spec2'" in skipped["jw01234-o001_spec2_00001_asn.json"]
    assert "jw01234001001_02101_00009_nrs1_cal.fits" in caplog.text
