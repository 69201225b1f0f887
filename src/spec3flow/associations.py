"""Level 3 spectroscopic associations for spec3flow.

Two ways in:

* MAST-shipped ``*_asn.json`` files: :func:`find_associations` +
  :func:`load_level3_association`.
* A directory of Stage 2 ``*_cal.fits`` files (or a DMS pool CSV): build a DMS-like
  association pool from the primary headers (:func:`pool_from_cal_files`), then run
  jwst's own generator with the default DMS Level 3 rules
  (:func:`generate_associations`; :func:`associations_from_pool_csv` for a pool CSV).

The associations are jwst's own objects dumped with ``Association.dump`` (same JSON
layout, rule names, ``asn_id``/product names and ``<asn_name>.json`` file names as
``asn_generate``).  Generation follows ``asn_generate``'s default per-candidate
algorithm restricted to the candidate associations (``--all-candidates`` without
``--discover``): per-observation ``oNNN`` candidates plus any ``cNNNN`` candidates in
the pool; those are what MAST ships.  Discovered ``a3001`` associations are not made.

Why a pool needs more than ``asn_make_pool`` gives (the DMS Level 3 rules, see
``jwst/associations/lib/rules_level3_base.py`` and ``dms_base.py``):

* the rules compare many values as exact lower-case strings (``pntgtype ==
  'science'``, ``(slit, grating, filter, detector)`` look-ups, ``tsovisit == 't'``,
  ``exp_type in LEVEL2B_EXPTYPES``), while ``mkpool`` keeps header case: every value
  is lower-cased here, as ``AssociationPool.read`` does for pool CSVs;
* booleans must be ``t``/``f`` (``bkgdtarg`` is matched against ``T``; ``str(True)``
  = ``'True'`` never matches, ``'False'`` only happens to be an "empty" value);
* ``FILENAME`` must be the Level 1b name ``..._uncal.fits``: the rules turn it into
  the member name (``_cal``/``_calints``, ``_x1d`` for background members); a
  ``_cal.fits`` FILENAME is kept verbatim for science and never becomes ``_x1d``;
* ``obs_num``, ``targetid`` and the ``asn_candidate`` observation candidate are not
  header keywords;
* ``FXD_SLIT = 'NONE'`` (what non-FS NIRSpec headers carry) is not an empty value to
  the rules: it would end up as ``-none`` in MOS product names; DMS pools have NULL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AssociationError",
    "POOL_COLUMNS",
    "SPEC3_EXP_TYPES",
    "associations_from_pool_csv",
    "find_associations",
    "find_cal_files",
    "generate_associations",
    "load_level3_association",
    "pool_from_cal_files",
]

log = logging.getLogger("spec3flow.associations")

#: EXP_TYPEs whose Level 3 product comes from calwebb_spec3 (``asn_type == 'spec3'``).
SPEC3_EXP_TYPES: tuple[str, ...] = (
    "NRS_MSASPEC",
    "NRS_FIXEDSLIT",
    "NRS_IFU",
    "NRS_AUTOFLAT",
    "NRS_AUTOWAVE",
    "MIR_LRS-FIXEDSLIT",
    "MIR_MRS",
    "MIR_WFSS",
    "NIS_WFSS",
    "NRC_WFSS",
    "NRC_GRISM",
    "NIS_SOSS",
)

#: Columns of a current DMS pool (``jw09505_20251216t202003_pool.csv`` shipped with
#: jwst 3.0.0) plus the older SUBPXPNS/SUBPXNUM columns some rules still read.
POOL_COLUMNS: tuple[str, ...] = (
    "filename", "obs_id", "program", "obs_num", "visit", "visit_id", "visitgrp",
    "visitype", "seq_id", "act_id", "exposure", "exp_type", "nexposur", "expcount",
    "instrume", "detector", "channel", "targetid", "targprop", "targname", "targtype",
    "template", "pntgtype", "pntg_seq", "targordn", "expspcin", "dithptin", "mostilno",
    "module", "filter", "pupil", "ditherid", "patttype", "pattstrt", "numdthpt",
    "pattsize", "subpxpts", "subpxpns", "patt_num", "subpxnum", "subpixel", "apername",
    "sdp_ver", "subarray", "grating", "fxd_slit", "band", "gwa_xtil", "gwa_ytil",
    "asn_candidate", "exposerr", "is_psf", "is_imprt", "bkgdtarg", "tsovisit",
    "msastate", "msametfl", "opmode", "lamp", "spec_num", "spat_num", "dms_note",
    "exsegtot", "nints", "ngroups", "mtshadow",
)

# Columns copied from the header keyword of the same (upper-case) name.
_DIRECT = (
    "visitype", "exp_type", "nexposur", "expcount", "instrume", "detector", "channel",
    "targprop", "targname", "targtype", "template", "pntg_seq", "targordn", "expspcin",
    "module", "filter", "pupil", "ditherid", "patttype", "pattstrt", "numdthpt",
    "pattsize", "subpxpts", "subpxpns", "patt_num", "subpxnum", "subpixel", "apername",
    "sdp_ver", "subarray", "grating", "fxd_slit", "band", "gwa_xtil", "gwa_ytil",
    "exposerr", "msastate", "opmode", "lamp", "spec_num", "spat_num", "dms_note",
    "exsegtot", "nints", "ngroups", "mtshadow",
)
# Boolean header keywords -> 't'/'f' (missing -> 'f').
_BOOLEAN = ("is_psf", "is_imprt", "bkgdtarg", "tsovisit")
# Optical-path columns where the header's 'NONE' means "not used" (DMS pools: NULL).
_NONE_IS_NULL = ("filter", "pupil", "grating", "fxd_slit", "band", "channel", "module",
                 "lamp", "opmode", "msametfl")
_NULL = "null"

# Target acquisition / confirmation exposures (pntgtype when the header has none).
_ACQ_EXP_TYPES = {
    "mir_tacq", "mir_taconfirm", "nis_tacq", "nis_taconfirm", "nrc_tacq",
    "nrc_taconfirm", "nrs_confirm", "nrs_msata", "nrs_taconfirm", "nrs_taslit",
    "nrs_tacq", "nrs_wata", "nrs_verify", "fgs_acq1", "fgs_acq2", "fgs_fineguide",
    "fgs_id-image", "fgs_id-stack", "fgs_track",
}

# Stage 2/3 product suffixes a DMS file name may carry; all map back to ``_uncal``.
_SUFFIX_RE = re.compile(
    r"^(?P<stem>.+)_(?P<suffix>uncal|rate|rateints|cal|calints|x1d|x1dints|s2d|s3d|crf|"
    r"crfints|bsub|bsubints)(?P<ext>\.fits(\.gz)?)$"
)

_LEVEL2_ASN_TYPES = {"spec2", "image2", "tso-spec2", "tso-image2", "wfs-image2"}


class AssociationError(ValueError):
    """Any problem with an association, a pool or its members (one-line message)."""


# ----------------------------------------------------------------------------- pool
def find_cal_files(input_dir: str | os.PathLike) -> list[Path]:
    """Stage 2 products in ``input_dir``: ``*_cal.fits`` and ``*_calints.fits``, sorted."""
    d = Path(input_dir)
    if not d.is_dir():
        raise AssociationError(f"{d}: not a directory")
    files = sorted(set(d.glob("*_cal.fits")) | set(d.glob("*_calints.fits")))
    return files


def _str(value: Any) -> str:
    """Pool string of a header value: bools -> t/f, None/'' -> null, lower case."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = str(value).strip()
    return s.lower() if s else _NULL


def _int_str(value: Any, default: str = _NULL) -> str:
    """'001' -> '1' (DMS pools carry unpadded numbers); non-numbers unchanged."""
    s = _str(value)
    if s == _NULL:
        return default
    try:
        return str(int(s))
    except ValueError:
        return s


def _level1b_name(path: Path) -> str:
    """``..._cal.fits`` -> ``..._uncal.fits`` (the DMS pool FILENAME)."""
    m = _SUFFIX_RE.match(path.name)
    if m is None:
        raise AssociationError(
            f"{path}: file name does not end in a JWST product suffix "
            "(_cal.fits, _calints.fits, ...); cannot derive the Level 1b pool FILENAME"
        )
    return f"{m['stem']}_uncal{m['ext']}"


def _read_header(path: Path):
    from astropy.io import fits

    try:
        return fits.getheader(path, 0)
    except FileNotFoundError:
        raise AssociationError(f"{path}: no such file") from None
    except OSError as exc:
        raise AssociationError(f"{path}: cannot read FITS primary header ({exc})") from None


def _row_from_header(path: Path, hdr) -> dict[str, str]:
    """One DMS pool row from a primary header (no targetid/asn_candidate yet)."""
    filename = _level1b_name(path)
    for key in ("PROGRAM", "OBSERVTN", "EXP_TYPE", "INSTRUME"):
        if key not in hdr:
            raise AssociationError(f"{path}: primary header lacks {key}; not a JWST product")
    row = dict.fromkeys(POOL_COLUMNS, _NULL)
    for col in _DIRECT:
        if col.upper() in hdr:
            row[col] = _str(hdr[col.upper()])
    for col in _NONE_IS_NULL:
        if row[col] in ("none", "n/a", "any"):
            row[col] = _NULL
    # slitless (SOSS): DMS pools carry PATTTYPE NULL for SOSS; Asn_Lv3SlitlessSpectral
    # rejects *any* patttype value (its not-nod check has no value), so 'NONE' -> NULL.
    if row["exp_type"] == "nis_soss" and row["patttype"] in ("none", "n/a"):
        row["patttype"] = _NULL

    program = f"{int(hdr['PROGRAM']):05d}" if str(hdr["PROGRAM"]).isdigit() else str(hdr["PROGRAM"])
    obs = _int_str(hdr["OBSERVTN"])
    visit = _int_str(hdr.get("VISIT"), "1")
    visitgrp = _int_str(hdr.get("VISITGRP"), "1")
    seq = _int_str(hdr.get("SEQ_ID"), "1")
    act = _str(hdr.get("ACT_ID", "01"))
    row["filename"] = filename
    row["program"] = _int_str(program)
    row["obs_num"] = obs
    row["visit"] = visit
    row["visitgrp"] = visitgrp
    row["seq_id"] = seq
    row["act_id"] = act
    row["exposure"] = _int_str(hdr.get("EXPOSURE"), "1")
    pad = lambda v, n: f"{int(v):0{n}d}" if v.isdigit() else v  # noqa: E731
    visit_id = f"{program}{pad(obs, 3)}{pad(visit, 3)}"
    row["visit_id"] = _str(hdr.get("VISIT_ID")) if hdr.get("VISIT_ID") else visit_id
    row["obs_id"] = (
        _str(hdr.get("OBS_ID"))
        if hdr.get("OBS_ID")
        else f"v{visit_id}p00000000{pad(visitgrp, 2)}{seq}{pad(act, 2)}"
    )
    for col in _BOOLEAN:
        row[col] = _str(bool(hdr[col.upper()])) if col.upper() in hdr else "f"
    # MSA: DMS pools flag the MSA metadata file; the header names it (MSAMETFL).
    if hdr.get("MSAMETFL") and _str(hdr["MSAMETFL"]) not in ("none", "n/a"):
        row["msametfl"] = _str(hdr["MSAMETFL"])
    elif row["exp_type"] == "nrs_msaspec" and hdr.get("MSAMETID") not in (None, ""):
        row["msametfl"] = "t"
    # Pointing type: header card when present, else TA/confirm types are acquisitions.
    if "PNTGTYPE" in hdr:
        row["pntgtype"] = _str(hdr["PNTGTYPE"])
    else:
        row["pntgtype"] = (
            "target_acquisition" if row["exp_type"] in _ACQ_EXP_TYPES else "science"
        )
    if row["pntgtype"] == _NULL:
        row["pntgtype"] = "science"
    row["dithptin"] = _int_str(hdr.get("DITHPTIN"), "1")
    row["mostilno"] = _int_str(hdr.get("MOSTILNO"), "1")
    row["targetid"] = _int_str(hdr.get("TARGETID"), _NULL)
    return row


def _assign_targetids(rows: list[dict[str, str]]) -> None:
    """TARGETID when the headers lack it: APT target order = first appearance of TARGPROP
    (else TARGNAME) per program, in file-name order (``mkpool`` does the same with TARGNAME)."""
    seen: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        if row["targetid"] != _NULL:
            continue
        name = row["targprop"] if row["targprop"] != _NULL else row["targname"]
        ids = seen[row["program"]]
        if name not in ids:
            used = {int(r["targetid"]) for r in rows
                    if r["program"] == row["program"] and r["targetid"].isdigit()}
            nxt = 1
            while nxt in used or nxt in ids.values():
                nxt += 1
            ids[name] = nxt
        row["targetid"] = str(ids[name])


def _optical_key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row[c] for c in ("instrume", "exp_type", "filter", "pupil", "grating", "subarray"))


def _assign_candidates(rows: list[dict[str, str]], background_candidates: bool) -> None:
    """``asn_candidate``: the observation candidate ``oNNN`` of every exposure, plus
    ``cNNNN`` background candidates the way DMS pools carry them (cf.
    ``pool_025_nirspec_fss_nod_chop.csv``): one candidate per science observation that
    has a matching dedicated background observation (all its science-pointing
    exposures BKGDTARG=T; same program, instrument, EXP_TYPE, filter/pupil/grating,
    subarray), holding that science observation and its background observation(s).
    Numbered c1000, c1001, ... per program in science-observation order.

    DMS takes these candidates from APT (the proposer ties a background observation to
    its science observation); headers do not say it, hence the optical-path match.
    """
    cands: dict[int, list[tuple[str, str]]] = {}
    for i, row in enumerate(rows):
        obs = row["obs_num"]
        oid = f"o{int(obs):03d}" if obs.isdigit() else f"o{obs}"
        cands[i] = [(oid, "observation")]
    if background_candidates:
        by_obs: dict[tuple[str, str], list[int]] = OrderedDict()
        for i, row in enumerate(rows):
            by_obs.setdefault((row["program"], row["obs_num"]), []).append(i)

        def science(idx):
            return [i for i in idx if rows[i]["pntgtype"] == "science"]

        bkg_obs = {
            key: {_optical_key(rows[i]) for i in science(idx)}
            for key, idx in by_obs.items()
            if science(idx) and all(rows[i]["bkgdtarg"] == "t" for i in science(idx))
        }
        counter: dict[str, int] = defaultdict(lambda: 1000)
        for (prog, obs), idx in by_obs.items():
            if (prog, obs) in bkg_obs:
                continue
            keys = {_optical_key(rows[i]) for i in science(idx) if rows[i]["bkgdtarg"] != "t"}
            partners = [k for k, bkeys in bkg_obs.items() if k[0] == prog and keys & bkeys]
            if not partners:
                continue
            cid = f"c{counter[prog]:04d}"
            counter[prog] += 1
            for key in [(prog, obs), *partners]:
                for i in by_obs[key]:
                    cands[i].append((cid, "background"))
    for i, row in enumerate(rows):
        row["asn_candidate"] = str(cands[i])


def pool_from_cal_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    background_candidates: bool = True,
):
    """Build a DMS-like association pool from Stage 2 products' primary headers.

    ``paths``: cal files, or one directory (its ``*_cal.fits``/``*_calints.fits``).
    Returns a ``jwst.associations.AssociationPool`` (an astropy Table of lower-case
    strings with the columns of :data:`POOL_COLUMNS`), rows sorted by file name
    (DMS order; jwst numbers associations in pool order).
    ``pool.meta['cal_files']`` maps each pool FILENAME (``..._uncal.fits``) to its cal
    file's absolute path; :func:`generate_associations` uses it to point member names
    at the files and to name skipped files.  ``pool.meta['pool_file']`` is ``'in-memory'``.

    Derivations (header keyword -> pool column):

    * FILENAME: basename with the product suffix replaced by ``_uncal`` (DMS pools hold
      Level 1b names; the rules derive ``_cal``/``_calints``/``_x1d`` member names).
    * PROGRAM, OBS_NUM (from OBSERVTN), VISIT, VISITGRP, SEQ_ID, EXPOSURE: unpadded
      numbers as in DMS pools; ACT_ID kept ('01').  VISIT_ID and OBS_ID from the header
      or rebuilt (``V{prog:05}{obs:03}{visit:03}P00000000{vgrp:02}{seq}{act:02}``).
    * TARGETID: header card if present, else numbered per program by first appearance
      of TARGPROP (fallback TARGNAME) in file-name order.
    * ASN_CANDIDATE: ``[('oNNN', 'observation')]`` from OBSERVTN, plus (when
      ``background_candidates``) one ``('c1000', 'background')``, ``c1001``, ...
      candidate per science observation that has a dedicated BKGDTARG=T observation
      with the same instrument, EXP_TYPE, filter/pupil/grating and subarray; the
      candidate holds both observations (as ``pool_025_nirspec_fss_nod_chop.csv``).
    * IS_PSF, IS_IMPRT, BKGDTARG, TSOVISIT: header booleans -> 't'/'f' (missing: 'f').
    * MSAMETFL: the header's file name; 't' for NRS_MSASPEC with only MSAMETID.
    * PNTGTYPE: header card if present, else 'target_acquisition' for TA/confirmation
      EXP_TYPEs, 'science' otherwise.  DITHPTIN, MOSTILNO: header or '1' (mkpool).
    * FILTER/PUPIL/GRATING/FXD_SLIT/BAND/CHANNEL/MODULE/LAMP/OPMODE: 'NONE' -> NULL.
    * All other columns: the header keyword of the same name, or NULL.
    """
    from jwst.associations import AssociationPool

    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        files = find_cal_files(p) if p.is_dir() else [p]
    else:
        files = [Path(p) for p in paths]
    if not files:
        raise AssociationError(f"{paths}: no Stage 2 cal files given")

    rows: list[dict[str, str]] = []
    cal_dirs: dict[str, str] = {}
    for path in files:
        row = _row_from_header(path, _read_header(path))
        if row["filename"] in cal_dirs:
            raise AssociationError(
                f"{path}: same exposure as {cal_dirs[row['filename']]} "
                f"(both map to pool FILENAME {row['filename']})"
            )
        cal_dirs[row["filename"]] = str(path.resolve())
        rows.append(row)
    rows.sort(key=lambda r: r["filename"])  # DMS pools list exposures by file name
    _assign_targetids(rows)
    _assign_candidates(rows, background_candidates)

    pool = AssociationPool(
        rows=[[r[c] for c in POOL_COLUMNS] for r in rows],
        names=list(POOL_COLUMNS),
        dtype=[object] * len(POOL_COLUMNS),
    )
    pool.meta["pool_file"] = "in-memory"
    pool.meta["cal_files"] = cal_dirs
    return pool


# ------------------------------------------------------------------------- generate
def _member_exp_types(asn) -> set[str]:
    """Upper-case EXP_TYPEs of an association's science/background members."""
    out = set()
    for product in asn["products"]:
        for member in product["members"]:
            if member["exptype"] in ("science", "background") and member.item is not None:
                out.add(str(member.item["exp_type"]).upper())
    return out


def _member_files(asn) -> list[str]:
    return [m["expname"] for p in asn["products"] for m in p["members"]]


def _run_generator(pool):
    """jwst's per-candidate generator, candidates only (asn_generate --all-candidates)."""
    from jwst.associations.generator.generate_per_candidate import generate_per_candidate

    # The generator logs per-candidate progress at INFO and, from ``prune``, pages of
    # WARNINGs about Level 2 duplicates we discard anyway; what matters is reported by
    # our own logger (written / skipped associations, orphaned exposures).
    jlog = logging.getLogger("jwst.associations")
    level = jlog.level
    if jlog.getEffectiveLevel() < logging.ERROR:
        jlog.setLevel(logging.ERROR)
    try:
        return generate_per_candidate(
            pool, None, all_candidates=True, discover=False, version_id=None
        )
    finally:
        jlog.setLevel(level)


def generate_associations(
    pool,
    outdir: str | os.PathLike,
    modes: Sequence[str] | None = None,
    *,
    member_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Run jwst's association generator on ``pool``; write the Level 3 spec3 ones.

    Keeps associations with ``asn_type == 'spec3'`` whose science/background members'
    EXP_TYPEs are all in ``modes`` (upper-case EXP_TYPE strings; None: any spec3 mode).
    Each is written as ``<asn_name>.json`` in ``outdir``
    (e.g. ``jw01234-o001_spec3_00001_asn.json``).  Everything else (Level 2, image3,
    tso3, other modes) and every exposure that ends up in no written association is
    logged (logger ``spec3flow.associations``) with its file names.

    Member names: jwst writes basenames.  When the members' directory (``member_dir``,
    else the cal file directories recorded by :func:`pool_from_cal_files`, else
    ``outdir``) differs from ``outdir``, names are made relative to ``outdir`` so that
    jwst resolves them from the association's location.
    """
    outdir = Path(outdir)
    modes_u = None if modes is None else {m.upper() for m in modes}
    if modes_u is not None:
        unknown = modes_u - set(SPEC3_EXP_TYPES)
        if unknown:
            raise AssociationError(
                f"modes {sorted(unknown)} are not calwebb_spec3 EXP_TYPEs "
                f"(known: {', '.join(SPEC3_EXP_TYPES)})"
            )
    if len(pool) == 0:
        raise AssociationError("association pool is empty")
    missing = {"filename", "exp_type", "asn_candidate"} - set(pool.colnames)
    if missing:
        raise AssociationError(f"pool {pool.meta.get('pool_file')}: lacks columns {sorted(missing)}")

    asns = _run_generator(pool)

    cal_files = dict(pool.meta.get("cal_files", {}))
    cal_dirs = {k: str(Path(v).parent) for k, v in cal_files.items()}
    outdir.mkdir(parents=True, exist_ok=True)
    out_res = outdir.resolve()
    written: list[Path] = []
    used: set[str] = set()
    for asn in asns:
        name = asn.asn_name
        rule = asn.data.get("asn_rule", type(asn).__name__)
        asn_type = asn.data.get("asn_type")
        files = _member_files(asn)
        if asn_type != "spec3":
            log.info("skipping %s (%s, asn_type %s): not a Level 3 spectroscopic association; "
                     "members: %s", name, rule, asn_type, ", ".join(files))
            continue
        exp_types = _member_exp_types(asn)
        if modes_u is not None and not exp_types <= modes_u:
            log.info("skipping %s (%s): EXP_TYPE %s not in modes %s; members: %s",
                     name, rule, ",".join(sorted(exp_types)), ",".join(sorted(modes_u)),
                     ", ".join(files))
            continue
        # Point member names at the files when they are not next to the asn.
        for product in asn["products"]:
            for member in product["members"]:
                item = member.item or {}
                src = member_dir if member_dir is not None else cal_dirs.get(item.get("filename"))
                if src is not None and Path(src).resolve() != out_res:
                    member["expname"] = os.path.relpath(
                        Path(src).resolve() / Path(member["expname"]).name, out_res
                    )
        with warnings.catch_warnings():
            # jwst warns when expnames carry a directory; we put it there on purpose.
            warnings.filterwarnings("ignore", "Input association file contains path information")
            fname, serialized = asn.dump(format="json")
        path = outdir / fname
        path.write_text(serialized)
        written.append(path)
        used.update(str(it) for it in (m.item.get("filename") for p in asn["products"]
                                       for m in p["members"] if m.item is not None))
        log.info("wrote %s (%s): %s", path, rule,
                 "; ".join(f"{p['name']} <- {len(p['members'])} members" for p in asn["products"]))

    unused = [(Path(cal_files.get(r["filename"], r["filename"])).name, str(r["exp_type"]).upper())
              for r in pool if r["filename"] not in used]
    other_modes = [(f, e) for f, e in unused if modes_u is not None and e not in modes_u]
    orphans = [(f, e) for f, e in unused if (f, e) not in other_modes]
    if other_modes:
        log.info("%d exposure(s) not in modes %s: %s", len(other_modes), sorted(modes_u),
                 ", ".join(f"{f} ({e})" for f, e in other_modes))
    if orphans:
        log.warning("%d exposure(s) in no written Level 3 spec association: %s", len(orphans),
                    ", ".join(f"{f} ({e})" for f, e in orphans))
    if not written:
        log.warning("no Level 3 spectroscopic association generated from pool %s%s",
                    pool.meta.get("pool_file", "in-memory"),
                    "" if modes_u is None else f" for modes {sorted(modes_u)}")
    return written


def associations_from_pool_csv(
    pool_csv: str | os.PathLike,
    outdir: str | os.PathLike,
    modes: Sequence[str] | None = None,
    *,
    member_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Generate associations from a DMS pool CSV (``|``-separated, as MAST/DMS write).

    Read with ``jwst.associations.AssociationPool.read``; members are named as in the
    pool (Level 1b -> Level 2 names) and resolved next to the written association, or
    in ``member_dir``.
    """
    from jwst.associations import AssociationPool

    pool_csv = Path(pool_csv)
    if not pool_csv.is_file():
        raise AssociationError(f"{pool_csv}: pool file not found")
    try:
        pool = AssociationPool.read(str(pool_csv))
    except Exception as exc:  # astropy raises many types for malformed tables
        raise AssociationError(f"{pool_csv}: cannot read as an association pool ({exc})") from None
    return generate_associations(pool, outdir, modes, member_dir=member_dir)


# ----------------------------------------------------------------------- load/find
def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AssociationError(f"{path}: association file not found") from None
    except OSError as exc:
        raise AssociationError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssociationError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise AssociationError(f"{path}: not an association (JSON top level is not an object)")
    return data


def _is_level2(data: dict) -> bool:
    asn_type = str(data.get("asn_type", "")).lower()
    rule = str(data.get("asn_rule", ""))
    return asn_type in _LEVEL2_ASN_TYPES or "_lv2" in rule.lower() or asn_type.endswith("2")


def load_level3_association(
    path: str | os.PathLike, *, check_members: bool = True
) -> dict:
    """Read and validate a Level 3 spectroscopic association; return its dict.

    Raises :class:`AssociationError` (one line, naming the file) for unreadable JSON,
    a Level 2 association, a non-spectroscopic association, a structure that does not
    follow jwst's Level 3 schema, or (``check_members``) members missing on disk
    (names are resolved relative to the association's directory, as jwst does).
    """
    path = Path(path)
    data = _read_json(path)
    if _is_level2(data):
        raise AssociationError(
            f"{path} is a Level 2 association (asn_type {data.get('asn_type')!r}); "
            "spec3flow needs Level 3 spec3 associations (e.g. jw01234-o001_spec3_00001_asn.json)"
        )
    products = data.get("products")
    if not isinstance(products, list) or not products:
        raise AssociationError(f"{path}: no 'products' list; not a jwst association")
    for i, product in enumerate(products):
        members = product.get("members") if isinstance(product, dict) else None
        if not isinstance(members, list) or not members:
            raise AssociationError(f"{path}: product {i} has no 'members' list")
        for member in members:
            if not isinstance(member, dict) or "expname" not in member or "exptype" not in member:
                raise AssociationError(
                    f"{path}: product {product.get('name', i)!r} has a member without "
                    "'expname'/'exptype'"
                )
    asn_type = str(data.get("asn_type", "")).lower()
    if asn_type != "spec3":
        raise AssociationError(
            f"{path}: asn_type {data.get('asn_type')!r} is not a spectroscopic Level 3 "
            "association (spec3flow runs calwebb_spec3: asn_type 'spec3')"
        )
    for product in products:
        if not any(str(m["exptype"]).lower() == "science" for m in product["members"]):
            raise AssociationError(
                f"{path}: product {product.get('name')!r} has no science member"
            )
    if check_members:
        base = path.resolve().parent
        for product in products:
            for member in product["members"]:
                if str(member["exptype"]).lower() not in ("science", "background"):
                    continue  # pipeline ignores target_acquisition etc.
                if not (base / member["expname"]).is_file():
                    hint = ""
                    if str(member["expname"]).endswith("_x1d.fits"):
                        hint = " (background members are the Stage 2 x1d of those exposures)"
                    raise AssociationError(
                        f"{path}: member {member['expname']} ({member['exptype']}) of product "
                        f"{product.get('name')!r} not found in {base}{hint}"
                    )
    return data


def find_associations(
    input_dir: str | os.PathLike, *, level3_spec_only: bool = True
) -> list[Path]:
    """``*_asn.json`` files in ``input_dir`` (sorted).

    MAST ships Level 2 and Level 3 associations side by side: with
    ``level3_spec_only`` only ``asn_type == 'spec3'`` ones are returned; the others are
    logged as skipped.  Unparseable files raise :class:`AssociationError`.
    """
    d = Path(input_dir)
    if not d.is_dir():
        raise AssociationError(f"{d}: not a directory")
    found = sorted(d.glob("*_asn.json"))
    if not level3_spec_only:
        return found
    keep = []
    for path in found:
        data = _read_json(path)
        if str(data.get("asn_type", "")).lower() == "spec3":
            keep.append(path)
        else:
            log.info("skipping %s: asn_type %r is not a Level 3 spectroscopic association",
                     path, data.get("asn_type"))
    return keep
