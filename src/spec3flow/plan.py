"""The complete job plan of a program, known before anything runs.

Snakemake must see every job at parse time (``snakemake -n`` lists each source's
``x1d``), so the plan is built here from the Level 3 associations and cheap FITS
header reads, never from step outputs.  Names follow jwst (``format_product`` and
Spec3Pipeline's source-ID rules) so products sit beside MAST's without surprise.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from spec3flow import associations as asnlib

log = logging.getLogger("spec3flow.plan")

#: Wide-field slitless modes: every source extracted, then gathered into one product.
WFSS_TYPES = frozenset({"NIS_WFSS", "NRC_WFSS", "MIR_WFSS"})
#: Modes whose exposures hold many sources (MultiSlitModel): exp_to_source fans out.
MULTISOURCE_SLIT_TYPES = frozenset({"NRS_MSASPEC", "NRS_FIXEDSLIT"}) | WFSS_TYPES
#: Modes this workflow knows how to run.
SUPPORTED_TYPES = frozenset({"NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-FIXEDSLIT"}) | WFSS_TYPES

#: Step order of calwebb_spec3 for slit modes after exp_to_source.
SOURCE_STEPS = ("outlier_detection", "adaptive_trace_model", "pixel_replace", "resample_spec")


class PlanError(ValueError):
    """A problem with the inputs found while planning (one line, naming the file)."""


@dataclass
class Source:
    """One astronomical source of a product: the unit the DAG fans out over."""

    stem: str  # output name stem, e.g. jw01234-o001_s000000001_nirspec_f170lp-g235m
    source_id: str | None  # s/b/v + 9 digits for multi-source modes, else None
    exposures: list[str] = field(default_factory=list)  # science exposure basenames


@dataclass
class Product:
    """One Level 3 association product and everything the DAG needs to run it."""

    asn_name: str  # association file stem, e.g. jw01234-o001_spec3_00001_asn
    name: str  # product name as in the association (may hold {source_id})
    exp_type: str
    science: list[str]  # member paths relative to the input directory
    background: list[str]
    sources: list[Source]
    moving_target: bool = False  # TARGTYPE MOVING: assign_mtwcs runs first

    @property
    def multisource(self) -> bool:
        return self.exp_type in MULTISOURCE_SLIT_TYPES

    @property
    def wfss(self) -> bool:
        return self.exp_type in WFSS_TYPES

    @property
    def asn_id(self) -> str:
        return self.name.split("_")[0].split("-")[1]


@dataclass
class Plan:
    products: list[Product]
    skipped: list[tuple[str, str]]  # (file, reason)

    def source_index(self) -> dict[str, tuple[Product, Source]]:
        return {s.stem: (p, s) for p in self.products for s in p.sources}


# --------------------------------------------------------------------------- inputs
def check_input_dir(input_dir: Path) -> list[Path]:
    """Stage 2 products in ``input_dir``, each checked to be a FITS file with EXP_TYPE."""
    if not input_dir.is_dir():
        raise PlanError(f"input_dir {input_dir}: no such directory")
    cal_files = sorted(input_dir.glob("*_cal.fits"))
    if not cal_files and not list(input_dir.glob("*_asn.json")):
        raise PlanError(f"input_dir {input_dir}: holds no Stage 2 products (*_cal.fits)")
    for path in cal_files:
        read_exp_type(path)
    return cal_files


def read_exp_type(path: Path) -> str:
    try:
        header = fits.getheader(path)
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable FITS file ({exc})") from None
    exp_type = header.get("EXP_TYPE")
    if not exp_type:
        raise PlanError(f"{path}: primary header has no EXP_TYPE keyword")
    return str(exp_type).strip().upper()


# ---------------------------------------------------------------------- source IDs
def mos_source_id(source_id: int, source_name: str) -> str:
    """Spec3Pipeline._create_nrsmos_source_id from header values."""
    if "BKG" in source_name:
        return f"b{source_id!s:>09s}"
    if source_id < 0:
        return f"v{str(source_id)[1:]:>09s}"
    return f"s{source_id!s:>09s}"


def slit_headers(path: Path) -> list[fits.Header]:
    """The SCI extension headers of a MultiSlitModel file (one per slit)."""
    try:
        with fits.open(path) as hdul:
            return [hdu.header for hdu in hdul[1:] if hdu.header.get("EXTNAME") == "SCI"]
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable FITS file ({exc})") from None


def plan_sources(exp_type: str, name: str, science_paths: list[Path]) -> list[Source]:
    """Group slits into sources exactly as exp_to_source and Spec3Pipeline name them."""
    from jwst.associations.lib.rules_level3_base import format_product

    if exp_type not in MULTISOURCE_SLIT_TYPES:
        return [Source(stem=name, source_id=None, exposures=[p.name for p in science_paths])]

    groups: OrderedDict[str, list] = OrderedDict()
    for path in science_paths:
        headers = slit_headers(path)
        if not headers:
            raise PlanError(f"{path}: {exp_type} exposure has no SCI slit extensions")
        for hdr in headers:
            source_name = str(hdr.get("SRCNAME", "") or "").strip()
            key = source_name if source_name else str(hdr.get("SOURCEID"))
            groups.setdefault(key, []).append((path.name, hdr))

    sources = []
    for key, slits in groups.items():
        first = slits[0][1]
        if exp_type == "NRS_MSASPEC":
            srcid = mos_source_id(int(first["SOURCEID"]), str(first.get("SRCNAME", "")))
            stem = format_product(name, source_id=srcid)
        elif exp_type in WFSS_TYPES:
            # One product holds every source: the per-source stem only names intermediates.
            srcid = f"s{key:>09s}"
            stem = format_product(name, source_id=srcid)
            if "{source_id}" not in name:
                stem = f"{stem}_{srcid}"
        else:  # NRS_FIXEDSLIT: source_id from the group key, slit names joined
            srcid = f"s{key:>09s}"
            slit_names: list[str] = []
            for _, hdr in slits:
                slit = str(hdr.get("SLTNAME", "")).lower()
                if slit not in slit_names:
                    slit_names.append(slit)
            stem = format_product(name, source_id=srcid, slit_name="-".join(slit_names))
        exposures = list(OrderedDict.fromkeys(fname for fname, _ in slits))
        sources.append(Source(stem=stem, source_id=srcid, exposures=exposures))
    return sources


# ---------------------------------------------------------------------- products
def products_from_association(asn_path: Path, modes: set[str],
                              skipped: list[tuple[str, str]] | None = None) -> list[Product]:
    data = asnlib.load_level3_association(asn_path)
    base = asn_path.resolve().parent
    out = []
    for product in data["products"]:
        members = [m for m in product["members"]
                   if str(m["exptype"]).lower() in ("science", "background")]
        science = [Path(os.path.normpath(base / m["expname"])) for m in members if m["exptype"].lower() == "science"]
        background = [Path(os.path.normpath(base / m["expname"])) for m in members if m["exptype"].lower() == "background"]
        exp_type = read_exp_type(science[0])
        for member in science[1:] + background:
            read_exp_type(member)  # every member a readable FITS file with EXP_TYPE
        if exp_type not in modes:
            log.info("skipping %s: EXP_TYPE %s is not among the configured modes", asn_path, exp_type)
            if skipped is not None:
                skipped.append((asn_path.name, f"product {product['name']} has EXP_TYPE {exp_type}, "
                                               f"not among the configured modes"))
            continue
        if exp_type not in SUPPORTED_TYPES:
            raise PlanError(f"{asn_path}: EXP_TYPE {exp_type} is not supported yet")
        out.append(Product(
            asn_name=asn_path.name[: -len(".json")],
            name=product["name"],
            exp_type=exp_type,
            science=[os.fspath(p) for p in science],
            background=[os.fspath(p) for p in background],
            sources=plan_sources(exp_type, product["name"], science),
            moving_target=is_moving_target(science[0]),
        ))
    return out


def is_moving_target(path: Path) -> bool:
    """jwst.lib.exposure_types.is_moving_target, from the primary header (TARGTYPE)."""
    return str(fits.getval(path, "TARGTYPE", default="") or "").strip().lower() == "moving"


def _asn_type(path: Path) -> str:
    try:
        return repr(json.loads(path.read_text()).get("asn_type"))
    except (OSError, ValueError, AttributeError):
        return "unreadable"


def make_associations(input_dir: Path, asn_dir: Path, modes: list[str],
                      source: str = "auto", pool_csv: str | None = None,
                      skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Write the Level 3 associations of ``input_dir`` into ``asn_dir``; return them.

    MAST-shipped ``*_asn.json`` are rewritten only so that member names resolve from
    ``asn_dir``; otherwise a pool built from the cal headers (or ``pool_csv``) goes
    through jwst's association generator.
    """
    skipped = [] if skipped is None else skipped
    asn_dir.mkdir(parents=True, exist_ok=True)
    shipped = asnlib.find_associations(input_dir) if source in ("auto", "files") else []
    not_level3 = []
    if source in ("auto", "files"):
        for path in sorted(input_dir.glob("*_asn.json")):
            if path not in shipped:
                asn_type = _asn_type(path)
                not_level3.append(f"{path.name} (asn_type {asn_type})")
                skipped.append((path.name, f"asn_type {asn_type} is not a Level 3 "
                                           "spectroscopic association"))
    if shipped:
        written = []
        for path in shipped:
            data = asnlib.load_level3_association(path)
            for product in data["products"]:
                for member in product["members"]:
                    member["expname"] = os.path.relpath(
                        (input_dir / member["expname"]).resolve(), asn_dir.resolve())
            out = asn_dir / path.name
            out.write_text(json.dumps(data, indent=4))
            written.append(out)
        return written
    if source == "files":
        if not_level3:
            raise PlanError(f"input_dir {input_dir}: associations.source is 'files' but it holds no "
                            f"Level 3 spec3 association, only {', '.join(not_level3)}")
        raise PlanError(f"input_dir {input_dir}: associations.source is 'files' but it holds no *_asn.json")
    if source == "pool" or pool_csv:
        if not pool_csv:
            raise PlanError("associations.source is 'pool' but associations.pool_csv is not set")
        return asnlib.associations_from_pool_csv(pool_csv, asn_dir, modes, member_dir=input_dir)
    cal_files = check_input_dir(input_dir)
    for path in cal_files:
        exp_type = read_exp_type(path)
        if exp_type not in modes:
            log.info("skipping %s: EXP_TYPE %s is not among the configured modes %s",
                     path.name, exp_type, ", ".join(modes))
            skipped.append((path.name, f"EXP_TYPE {exp_type} is not among the configured modes "
                                       f"{', '.join(modes)}"))
    pool = asnlib.pool_from_cal_files(cal_files)
    return asnlib.generate_associations(pool, asn_dir, modes, member_dir=input_dir)


def build_plan(input_dir: str | os.PathLike, asn_dir: str | os.PathLike, modes: list[str],
               source: str = "auto", pool_csv: str | None = None) -> Plan:
    input_dir, asn_dir = Path(input_dir), Path(asn_dir)
    skipped: list[tuple[str, str]] = []
    try:
        asn_paths = make_associations(input_dir, asn_dir, modes, source, pool_csv, skipped)
    except asnlib.AssociationError as exc:
        raise PlanError(str(exc)) from None
    if not asn_paths:
        raise PlanError(f"input_dir {input_dir}: no Level 3 spectroscopic association "
                        f"for modes {', '.join(modes)}")
    products = []
    for path in sorted(asn_paths):
        try:
            products.extend(products_from_association(path, set(modes), skipped))
        except asnlib.AssociationError as exc:
            raise PlanError(str(exc)) from None
    if not products:
        raise PlanError(f"input_dir {input_dir}: no Level 3 spectroscopic association "
                        f"for modes {', '.join(modes)}")
    return Plan(products=products, skipped=skipped)


# -------------------------------------------------------------------------- cache
#: Bump when the plan's content or layout changes so old caches are not reused.
PLAN_FORMAT = 3


def inventory_key(input_dir: Path, modes: list[str], source: str, pool_csv: str | None) -> str:
    """A fingerprint of everything a plan depends on: file names, sizes, mtimes, settings."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(json.dumps([PLAN_FORMAT, sorted(modes), source, pool_csv,
                              os.fspath(input_dir.resolve())]).encode())
    extra = [Path(pool_csv)] if pool_csv else []
    for path in sorted(input_dir.iterdir()) + extra if input_dir.is_dir() else extra:
        if path.name.endswith((".fits", ".json", ".csv")) and path.is_file():
            st = path.stat()
            digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def plan_to_dict(plan: Plan) -> dict:
    from dataclasses import asdict

    return {"format": PLAN_FORMAT, "products": [asdict(p) for p in plan.products],
            "skipped": [list(s) for s in plan.skipped]}


def plan_from_dict(data: dict) -> Plan:
    products = []
    for p in data["products"]:
        sources = [Source(**s) for s in p.pop("sources")]
        products.append(Product(**p, sources=sources))
    return Plan(products=products, skipped=[tuple(s) for s in data["skipped"]])


def load_or_build_plan(input_dir: str | os.PathLike, cache_dir: str | os.PathLike, modes: list[str],
                       source: str = "auto", pool_csv: str | None = None) -> Plan:
    """The plan, from cache when no input file changed: dry runs and cluster-side
    re-parses then cost a directory listing, not jwst imports and header reads."""
    input_dir, cache_dir = Path(input_dir), Path(cache_dir)
    key = inventory_key(input_dir, modes, source, pool_csv)
    cached = cache_dir / f"plan-{key}.json"
    if cached.is_file():
        try:
            return plan_from_dict(json.loads(cached.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or stale cache: plan again
    plan = build_plan(input_dir, cache_dir / "asn", modes, source, pool_csv)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(plan_to_dict(plan)))
    os.replace(tmp, cached)
    return plan


# ---------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m spec3flow.plan``: write the associations rule's outputs."""
    import argparse
    import shutil
    import sys
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m spec3flow.plan",
                                     description="Write the Level 3 associations of a program")
    parser.add_argument("--input-dir", type=Path, required=True)
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", required=True)
    parser.add_argument("--source", default="auto", choices=["auto", "files", "pool"])
    parser.add_argument("--pool-csv", default=None)
    parser.add_argument("--expect", nargs="*", default=None,
                        help="association file names the plan was built from")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.outdir.mkdir(parents=True, exist_ok=True)
    # Generate beside the destination so relative member paths stay valid after the move.
    tmp = Path(tempfile.mkdtemp(prefix=".asn-", dir=args.outdir.parent))
    try:
        try:
            written = make_associations(args.input_dir, tmp, args.modes, args.source, args.pool_csv)
        except (PlanError, asnlib.AssociationError) as exc:
            print(f"spec3flow: {exc}", file=sys.stderr)
            return 1
        names = sorted(p.name for p in written)
        if args.expect is not None and sorted(args.expect) != names:
            print(f"spec3flow: associations changed since planning: planned {sorted(args.expect)}, "
                  f"generated {names}; rerun snakemake to re-plan", file=sys.stderr)
            return 1
        for path in written:
            os.replace(path, args.outdir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
