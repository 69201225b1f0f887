"""Unit tests for spec3flow.associations (fake cal files: primary headers only)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from astropy.io import fits

from spec3flow.associations import (
    AssociationError,
    associations_from_pool_csv,
    find_associations,
    generate_associations,
    load_level3_association,
    pool_from_cal_files,
)

PROG = "01234"


def fake_cal(d: Path, obs: str, expnum: int, det: str = "NRS1", prog: str = PROG,
             suffix: str = "cal", **kw) -> Path:
    """A tiny FITS file whose primary header carries a real cal file's keywords."""
    name = f"jw{prog}{obs}001_03101_{expnum:05d}_{det.lower()}_{suffix}.fits"
    h = fits.Header()
    h.update(dict(
        PROGRAM=prog, OBSERVTN=obs, VISIT="001", VISITGRP="03", SEQ_ID="1", ACT_ID="01",
        EXPOSURE=f"{expnum:05d}", DETECTOR=det, TARGPROP="NGC-1", TARGNAME="NGC 1",
        TARG_RA=53.1, TARG_DEC=-27.8, VISITYPE="PRIME_TARGETED_FIXED", TSOVISIT=False,
        BKGDTARG=False, IS_IMPRT=False, SUBARRAY="FULL", DATE_OBS="2024-01-01",
        TIME_OBS="00:00:00.000", EXPSTART=60310.0 + expnum / 100,
    ))
    h.update(kw)
    d.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(header=h).writeto(d / name, overwrite=True)
    return d / name


def mos_program(d: Path, obs: str = "001") -> list[Path]:
    """NIRSpec MOS, 3-shutter nod: 3 exposures with their MSA metadata file."""
    return [
        fake_cal(d, obs, i, INSTRUME="NIRSPEC", EXP_TYPE="NRS_MSASPEC", FILTER="F170LP",
                 GRATING="G235M", FXD_SLIT="NONE", MSAMETFL=f"jw{PROG}{obs}001_01_msa.fits",
                 MSAMETID=1, PATTTYPE="NONE", NOD_TYPE="3-SHUTTER-SLITLET", PATT_NUM=i,
                 NUMDTHPT=3, TEMPLATE="NIRSpec MultiObject Spectroscopy")
        for i in (1, 2, 3)
    ]


def fs_program(d: Path, obs: str = "002", det: str = "NRS1", grating: str = "G395H") -> list[Path]:
    """NIRSpec FS, 3-point nod in S200A1 (the primary slit; other slits ride along)."""
    return [
        fake_cal(d, obs, i, det=det, INSTRUME="NIRSPEC", EXP_TYPE="NRS_FIXEDSLIT",
                 FILTER="F290LP", GRATING=grating, FXD_SLIT="S200A1", SUBARRAY="SUBS200A1",
                 PATTTYPE="3-POINT-NOD", PATT_NUM=i, NUMDTHPT=3,
                 TEMPLATE="NIRSpec Fixed Slit Spectroscopy")
        for i in (1, 2, 3)
    ]


def lrs_program(d: Path, sci_obs: str = "003", bkg_obs: str = "004") -> list[Path]:
    """MIRI LRS slit, 2-point along-slit nod, plus a dedicated background observation."""
    common = dict(det="MIRIMAGE", INSTRUME="MIRI", EXP_TYPE="MIR_LRS-FIXEDSLIT",
                  FILTER="P750L", PATTTYPE="ALONG-SLIT-NOD", NUMDTHPT=2,
                  TEMPLATE="MIRI Low Resolution Spectroscopy")
    sci = [fake_cal(d, sci_obs, i, PATT_NUM=i, TARGPROP="STAR", TARGNAME="HD 1", **common)
           for i in (1, 2)]
    bkg = [fake_cal(d, bkg_obs, i, PATT_NUM=i, TARGPROP="STAR-BKG", TARGNAME="HD 1 BKG",
                    BKGDTARG=True, **common) for i in (1, 2)]
    return sci + bkg


def members(asn: dict) -> list[tuple[str, str]]:
    return [(Path(m["expname"]).name, m["exptype"]) for p in asn["products"] for m in p["members"]]


def written(paths) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in paths}


# --------------------------------------------------------------------------- pool
def test_pool_columns_derived(tmp_path):
    mos_program(tmp_path)
    lrs_program(tmp_path)
    pool = pool_from_cal_files(tmp_path)
    assert len(pool) == 7
    r = {row["filename"]: row for row in pool}
    mos = r["jw01234001001_03101_00001_nrs1_uncal.fits"]  # Level 1b name, as in DMS pools
    assert mos["program"] == "1234" and mos["obs_num"] == "1" and mos["exposure"] == "1"
    assert mos["act_id"] == "01" and mos["visit_id"] == "01234001001"
    assert mos["obs_id"] == "v01234001001p0000000003101"
    assert mos["exp_type"] == "nrs_msaspec" and mos["detector"] == "nrs1"  # lower case
    assert mos["fxd_slit"] == "null"  # header 'NONE' is not empty to the rules
    assert mos["msametfl"] == "jw01234001001_01_msa.fits"
    assert mos["asn_candidate"] == "[('o001', 'observation')]"
    assert mos["pntgtype"] == "science" and mos["is_imprt"] == "f" and mos["tsovisit"] == "f"
    assert mos["targetid"] == "1"
    bkg = r["jw01234004001_03101_00001_mirimage_uncal.fits"]
    sci = r["jw01234003001_03101_00001_mirimage_uncal.fits"]
    assert bkg["bkgdtarg"] == "t" and sci["bkgdtarg"] == "f"
    assert (sci["targetid"], bkg["targetid"]) == ("2", "3")  # by TARGPROP
    assert sci["asn_candidate"] == "[('o003', 'observation'), ('c1000', 'background')]"
    assert bkg["asn_candidate"] == "[('o004', 'observation'), ('c1000', 'background')]"
    assert sci["patttype"] == "along-slit-nod"
    assert pool.meta["cal_files"][sci["filename"]] == str(
        (tmp_path / "jw01234003001_03101_00001_mirimage_cal.fits").resolve())


def test_pool_header_targetid_and_pntgtype_win(tmp_path):
    p = fake_cal(tmp_path, "001", 1, INSTRUME="NIRSPEC", EXP_TYPE="NRS_MSATA", TARGETID=7,
                 FILTER="F140X", PNTGTYPE="TARGET_ACQUISITION")
    pool = pool_from_cal_files([p])
    assert pool[0]["targetid"] == "7" and pool[0]["pntgtype"] == "target_acquisition"
    q = fake_cal(tmp_path, "001", 2, INSTRUME="NIRSPEC", EXP_TYPE="NRS_WATA")
    assert pool_from_cal_files([q])[0]["pntgtype"] == "target_acquisition"


def test_pool_errors(tmp_path):
    with pytest.raises(AssociationError, match="no Stage 2 cal files"):
        pool_from_cal_files(tmp_path)
    bad = tmp_path / "notjwst.fits"
    fits.PrimaryHDU(header=fits.Header({"PROGRAM": "01234"})).writeto(bad)
    with pytest.raises(AssociationError, match="notjwst.fits: file name"):
        pool_from_cal_files([bad])
    nokw = tmp_path / "x_cal.fits"
    fits.PrimaryHDU(header=fits.Header({"PROGRAM": "01234"})).writeto(nokw)
    with pytest.raises(AssociationError, match="x_cal.fits: primary header lacks OBSERVTN"):
        pool_from_cal_files([nokw])
    with pytest.raises(AssociationError, match="missing_cal.fits: no such file"):
        pool_from_cal_files([tmp_path / "missing_cal.fits"])
    a = fake_cal(tmp_path / "a", "001", 1, INSTRUME="MIRI", EXP_TYPE="MIR_MRS")
    b = fake_cal(tmp_path / "b", "001", 1, INSTRUME="MIRI", EXP_TYPE="MIR_MRS")
    with pytest.raises(AssociationError, match="same exposure"):
        pool_from_cal_files([a, b])


# ------------------------------------------------------------------- generation
def test_mos_fs_lrs_names(tmp_path):
    mos_program(tmp_path)
    fs_program(tmp_path)
    lrs_program(tmp_path)
    out = generate_associations(pool_from_cal_files(tmp_path), tmp_path)
    asns = written(out)
    assert sorted(asns) == [
        "jw01234-c1000_spec3_00001_asn.json",
        "jw01234-o001_spec3_00001_asn.json",
        "jw01234-o002_spec3_00001_asn.json",
        "jw01234-o003_spec3_00001_asn.json",
        "jw01234-o004_spec3_00001_asn.json",
    ]
    mos = asns["jw01234-o001_spec3_00001_asn.json"]
    assert mos["asn_rule"] == "candidate_Asn_Lv3SpectralSource"
    assert mos["asn_type"] == "spec3" and mos["asn_id"] == "o001" and mos["program"] == "01234"
    assert [p["name"] for p in mos["products"]] == ["jw01234-o001_{source_id}_nirspec_f170lp-g235m"]
    assert members(mos) == [(f"jw01234001001_03101_0000{i}_nrs1_cal.fits", "science") for i in (1, 2, 3)]

    fs = asns["jw01234-o002_spec3_00001_asn.json"]
    assert fs["asn_rule"] == "candidate_Asn_Lv3NRSFSS"
    assert [p["name"] for p in fs["products"]] == [
        "jw01234-o002_t001-{source_id}_nirspec_f290lp-g395h-{slit_name}-subs200a1"
    ]
    assert len(members(fs)) == 3

    lrs = asns["jw01234-o003_spec3_00001_asn.json"]
    assert lrs["asn_rule"] == "candidate_Asn_Lv3SpectralTarget"
    assert [p["name"] for p in lrs["products"]] == ["jw01234-o003_t002_miri_p750l"]
    # nodded: every science exposure's x1d doubles as background (make_fixedslit_bkg)
    assert members(lrs) == [
        ("jw01234003001_03101_00001_mirimage_cal.fits", "science"),
        ("jw01234003001_03101_00002_mirimage_cal.fits", "science"),
        ("jw01234003001_03101_00001_mirimage_x1d.fits", "background"),
        ("jw01234003001_03101_00002_mirimage_x1d.fits", "background"),
    ]
    aux = asns["jw01234-o004_spec3_00001_asn.json"]  # the background target on its own
    assert aux["asn_rule"] == "candidate_Asn_Lv3SpecAux"
    assert [p["name"] for p in aux["products"]] == ["jw01234-o004_t003_miri_p750l"]
    assert {t for _, t in members(aux)} == {"science"}
    comb = asns["jw01234-c1000_spec3_00001_asn.json"]  # science + background target x1d
    assert [p["name"] for p in comb["products"]] == ["jw01234-c1000_t002_miri_p750l"]
    assert ("jw01234004001_03101_00001_mirimage_x1d.fits", "background") in members(comb)
    assert ("jw01234004001_03101_00002_mirimage_x1d.fits", "background") in members(comb)

    # jwst reads what we wrote, as a Level 3 association
    from jwst.associations import load_asn

    with open(tmp_path / "jw01234-o001_spec3_00001_asn.json") as fh:
        asn = load_asn(fh)
    assert asn["products"][0]["name"].startswith("jw01234-o001_")


def test_modes_filter_and_skips_logged(tmp_path, caplog):
    mos_program(tmp_path)
    lrs_program(tmp_path)
    img = fake_cal(tmp_path, "005", 1, det="MIRIMAGE", INSTRUME="MIRI", EXP_TYPE="MIR_IMAGE",
                   FILTER="F770W")
    # NRS2 cannot see G395M in S200A1: jwst's rules drop it (nrsfss_valid_detector)
    nrs2 = fs_program(tmp_path, obs="006", det="NRS2", grating="G395M")
    with caplog.at_level(logging.INFO, logger="spec3flow.associations"):
        out = generate_associations(pool_from_cal_files(tmp_path), tmp_path / "asn",
                                    modes=["nrs_msaspec", "NRS_FIXEDSLIT"])
    assert [p.name for p in out] == ["jw01234-o001_spec3_00001_asn.json"]
    text = caplog.text
    assert "skipping jw01234-o003_spec3_00001_asn" in text and "MIR_LRS-FIXEDSLIT" in text
    assert "jw01234005001_03101_00001_mirimage_rate.fits" in text  # image2 asn skipped
    orphan = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(orphan) == 1 and nrs2[0].name in orphan[0]  # really dropped by the rules
    assert img.name not in orphan[0]  # merely another mode: INFO
    assert "not in modes ['NRS_FIXEDSLIT', 'NRS_MSASPEC']: " in text and img.name in text
    # members point back at the cal files from the asn directory
    asn = json.loads(out[0].read_text())
    assert asn["products"][0]["members"][0]["expname"] == (
        "../jw01234001001_03101_00001_nrs1_cal.fits"
    )
    assert load_level3_association(out[0])["asn_id"] == "o001"


def test_modes_validated(tmp_path):
    mos_program(tmp_path)
    with pytest.raises(AssociationError, match="MIR_IMAGE"):
        generate_associations(pool_from_cal_files(tmp_path), tmp_path, modes=["MIR_IMAGE"])


def test_no_level3_warns(tmp_path, caplog):
    fake_cal(tmp_path, "001", 1, det="MIRIMAGE", INSTRUME="MIRI", EXP_TYPE="MIR_IMAGE",
             FILTER="F770W")
    with caplog.at_level(logging.WARNING, logger="spec3flow.associations"):
        assert generate_associations(pool_from_cal_files(tmp_path), tmp_path) == []
    assert "no Level 3 spectroscopic association" in caplog.text


def test_pool_csv_roundtrip(tmp_path):
    mos_program(tmp_path)
    pool = pool_from_cal_files(tmp_path)
    csv = tmp_path / "jw01234_20240101t000000_pool.csv"
    pool.write(str(csv))
    out = associations_from_pool_csv(csv, tmp_path / "fromcsv", member_dir=tmp_path)
    direct = generate_associations(pool, tmp_path / "direct")
    a, b = (json.loads(p.read_text()) for p in (out[0], direct[0]))
    assert out[0].name == direct[0].name == "jw01234-o001_spec3_00001_asn.json"
    assert a["products"] == b["products"]
    assert a["asn_pool"] == csv.name
    with pytest.raises(AssociationError, match="nope.csv: pool file not found"):
        associations_from_pool_csv(tmp_path / "nope.csv", tmp_path)


# ------------------------------------------------- parity with jwst's shipped pools
def _headers_from_pool(pool, d: Path) -> None:
    """Turn each exposure of a shipped DMS test pool into a fake cal header."""
    d.mkdir()
    for row in pool:
        if not str(row["obs_num"]).isdigit():  # the 'set acid' dummy rows
            continue
        h = fits.Header()
        for col in pool.colnames:
            v = str(row[col])
            if col in ("filename", "asn_candidate", "obs_num") or v.lower() in ("null", ""):
                continue
            if col in ("bkgdtarg", "is_imprt", "is_psf", "tsovisit"):
                h[col.upper()] = v.lower() == "t"
            else:
                h[col.upper()[:8]] = v
        h["OBSERVTN"] = f"{int(row['obs_num']):03d}"
        fits.PrimaryHDU(header=h).writeto(d / str(row["filename"]).replace("_uncal", "_cal"))


def _summary(asns):
    return sorted(
        (a.asn_name, a["asn_rule"], tuple(p["name"] for p in a["products"]),
         tuple(sorted((m["expname"], m["exptype"]) for p in a["products"] for m in p["members"])))
        for a in asns if a["asn_type"] == "spec3"
    )


@pytest.mark.parametrize("pool_name", [
    "pool_023_nirspec_msa_3nod.csv",       # MOS 3-nod, two gratings
    "pool_024_nirspec_fss_nods.csv",       # FS nods / dithers, NRS1+NRS2
    "pool_025_nirspec_fss_nod_chop.csv",   # FS with dedicated background observation
    "pool_007_spec_miri.csv",              # MIRI LRS / MRS
])
def test_same_as_shipped_pools(tmp_path, pool_name):
    from astropy.utils.data import get_pkg_data_filename
    from jwst.associations.generator.generate_per_candidate import generate_per_candidate
    from jwst.associations.tests.helpers import combine_pools

    from spec3flow.associations import _run_generator

    ref_pool = combine_pools(
        get_pkg_data_filename(f"data/{pool_name}", package="jwst.associations.tests")
    )
    ref = _summary(generate_per_candidate(ref_pool, None, all_candidates=True, discover=False))
    _headers_from_pool(ref_pool, tmp_path / "cal")
    mine = _summary(_run_generator(pool_from_cal_files(tmp_path / "cal")))
    assert ref and mine == ref


# -------------------------------------------------------------- load / validate
def _asn(tmp_path, name="jw01234-o001_spec3_00001_asn.json", asn_type="spec3",
         rule="candidate_Asn_Lv3SpectralSource", expname="a_cal.fits", exptype="science"):
    p = tmp_path / name
    p.write_text(json.dumps({
        "asn_type": asn_type, "asn_rule": rule, "asn_id": "o001", "program": "01234",
        "products": [{"name": "jw01234-o001_{source_id}_nirspec_f170lp-g235m",
                      "members": [{"expname": expname, "exptype": exptype}]}],
    }))
    return p


def test_load_level3_ok_and_missing_member(tmp_path):
    p = _asn(tmp_path)
    with pytest.raises(AssociationError, match=r"member a_cal.fits \(science\).*not found"):
        load_level3_association(p)
    (tmp_path / "a_cal.fits").write_bytes(b"")
    assert load_level3_association(p)["asn_type"] == "spec3"
    assert load_level3_association(_asn(tmp_path, expname="zz_cal.fits"),
                                   check_members=False)["asn_id"] == "o001"


def test_load_level3_rejects(tmp_path):
    bad = tmp_path / "bad_asn.json"
    bad.write_text("{ not json")
    with pytest.raises(AssociationError, match="bad_asn.json: not valid JSON"):
        load_level3_association(bad)
    l2 = _asn(tmp_path, "jw01234-o001_spec2_00001_asn.json", asn_type="spec2",
              rule="candidate_Asn_Lv2NRSMSA")
    with pytest.raises(AssociationError, match="is a Level 2 association.*needs Level 3"):
        load_level3_association(l2)
    img = _asn(tmp_path, "jw01234-o001_image3_00001_asn.json", asn_type="image3",
               rule="candidate_Asn_Lv3Image")
    with pytest.raises(AssociationError, match="not a spectroscopic Level 3"):
        load_level3_association(img)
    with pytest.raises(AssociationError, match="association file not found"):
        load_level3_association(tmp_path / "nope_asn.json")
    noprod = tmp_path / "np_asn.json"
    noprod.write_text(json.dumps({"asn_type": "spec3"}))
    with pytest.raises(AssociationError, match="no 'products' list"):
        load_level3_association(noprod)


def test_find_associations(tmp_path, caplog):
    _asn(tmp_path)
    _asn(tmp_path, "jw01234-o001_spec2_00001_asn.json", asn_type="spec2",
         rule="candidate_Asn_Lv2NRSMSA")
    (tmp_path / "other.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="spec3flow.associations"):
        found = find_associations(tmp_path)
    assert [p.name for p in found] == ["jw01234-o001_spec3_00001_asn.json"]
    assert "jw01234-o001_spec2_00001_asn.json" in caplog.text
    assert len(find_associations(tmp_path, level3_spec_only=False)) == 2
    with pytest.raises(AssociationError, match="not a directory"):
        find_associations(tmp_path / "nodir")
