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
#: NIRISS SOSS (not TSO): extract_1d -> photom (saved as x1d) -> combine_1d.
SOSS_TYPES = frozenset({"NIS_SOSS"})
#: IFU modes: outlier_detection (mode ifu) -> cube_build -> extract_1d [-> spectral_leak].
IFU_TYPES = frozenset({"NRS_IFU", "MIR_MRS"})
#: Modes this workflow knows how to run.
SUPPORTED_TYPES = (frozenset({"NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-FIXEDSLIT"}) | WFSS_TYPES
                   | IFU_TYPES | SOSS_TYPES)



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
    #: IFU only: per science exposure, what cube_build reads from its headers
    #: ({"name", "bands": [[channel|grating, band|filter], ...], "npix"}).
    ifu_exposures: list[dict] = field(default_factory=list)

    @property
    def soss(self) -> bool:
        return self.exp_type in SOSS_TYPES

    @property
    def ifu(self) -> bool:
        return self.exp_type in IFU_TYPES

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


#: The slit keywords planning needs (exp_to_source groups by SRCNAME, else SOURCEID).
SLIT_KEYWORDS = ("SLTNAME", "SOURCEID", "SRCNAME")
_BLOCK = 2880


def slit_headers(path: Path) -> list[dict]:
    """SLTNAME/SOURCEID/SRCNAME of each SCI extension (one per slit) of a MultiSlitModel.

    A 1,000-slit exposure has ~7,000 extensions; astropy parses every card of every
    header (8 s a file), so headers are scanned here for the few keywords needed
    (~0.3 s), falling back to astropy for anything unusual."""
    try:
        return _scan_slit_keywords(path)
    except (ValueError, KeyError, IndexError):
        pass
    try:
        with fits.open(path) as hdul:
            return [{k: hdu.header.get(k) for k in SLIT_KEYWORDS} for hdu in hdul[1:]
                    if hdu.header.get("EXTNAME") == "SCI"]
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable FITS file ({exc})") from None


def _card_value(card: bytes):
    text = card[10:].decode("ascii", "replace")
    if text.lstrip().startswith("'"):
        body = text.lstrip()[1:]
        out, i = [], 0
        while i < len(body):
            if body[i] == "'":
                if body[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(body[i])
            i += 1
        return "".join(out).rstrip()
    value = text.split("/", 1)[0].strip()
    if value in ("T", "F"):
        return value == "T"
    try:
        return int(value)
    except ValueError:
        return float(value) if value else None


def _scan_slit_keywords(path: Path) -> list[dict]:
    """Walk the HDUs of an uncompressed FITS file reading only the cards needed."""
    wanted = {k.encode().ljust(8) for k in (*SLIT_KEYWORDS, "EXTNAME", "BITPIX", "NAXIS", "PCOUNT",
                                            "GCOUNT", "XTENSION")}
    slits = []
    with open(path, "rb") as fh:
        first = True
        while True:
            cards: dict[str, object] = {}
            naxes: dict[int, int] = {}
            ended = False
            while not ended:
                block = fh.read(_BLOCK)
                if not block:
                    if first:
                        raise ValueError("empty file")
                    return slits
                if len(block) != _BLOCK:
                    raise ValueError("truncated header block")
                for i in range(0, _BLOCK, 80):
                    card = block[i:i + 80]
                    key = card[:8]
                    if key == b"END     ":
                        ended = True
                        break
                    if key.startswith(b"NAXIS") and key[5:8].strip().isdigit():
                        naxes[int(key[5:8])] = int(_card_value(card))
                    elif key in wanted:
                        cards[key.decode().strip()] = _card_value(card)
            if first and cards.get("XTENSION") is not None:
                raise ValueError("not a primary header")
            if not first and not cards.get("XTENSION"):
                raise ValueError("extension without XTENSION")
            if cards.get("XTENSION") not in (None, "IMAGE", "BINTABLE", "TABLE"):
                raise ValueError("unsupported extension")
            if cards.get("EXTNAME") == "SCI":
                slits.append({k: cards.get(k) for k in SLIT_KEYWORDS})
            n_axes = int(cards.get("NAXIS", 0))
            size = 0
            if n_axes:
                size = 1
                for axis in range(1, n_axes + 1):
                    size *= naxes[axis]
            size = abs(int(cards["BITPIX"])) // 8 * int(cards.get("GCOUNT", 1)) * (
                int(cards.get("PCOUNT", 0)) + size)
            fh.seek((size + _BLOCK - 1) // _BLOCK * _BLOCK, 1)
            first = False


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
        if exp_type in WFSS_TYPES:
            check_same_optical_path(asn_path, science)
        out.append(Product(
            asn_name=asn_path.name[: -len(".json")],
            name=product["name"],
            exp_type=exp_type,
            science=[os.fspath(p) for p in science],
            background=[os.fspath(p) for p in background],
            sources=plan_sources(exp_type, product["name"], science),
            moving_target=is_moving_target(science[0]),
            ifu_exposures=([ifu_exposure_info(p, exp_type) for p in science]
                           if exp_type in IFU_TYPES else []),
        ))
    return out


def check_same_optical_path(asn_path: Path, members: list[Path]) -> None:
    """WFSS sources are extracted and combined across exposures: they must share FILTER/PUPIL."""
    paths = {}
    for path in members:
        header = fits.getheader(path)
        paths.setdefault((header.get("FILTER"), header.get("PUPIL")), []).append(path.name)
    if len(paths) > 1:
        found = "; ".join(f"FILTER={f} PUPIL={p}: {', '.join(names)}" for (f, p), names in paths.items())
        raise PlanError(f"{asn_path}: WFSS members disagree on filter/pupil ({found})")


def is_moving_target(path: Path) -> bool:
    """jwst.lib.exposure_types.is_moving_target, from the primary header (TARGTYPE)."""
    return str(fits.getval(path, "TARGTYPE", default="") or "").strip().lower() == "moving"


# ---------------------------------------------------------------------------- IFU
#: cube_build's FileTable: the (channel, band) cells MIRI data can fill, in its loop order.
MIRI_CHANNELS = ("1", "2", "3", "4")
MIRI_SUBCHANNELS = ("short", "medium", "long", "short-medium", "short-long", "medium-short",
                    "medium-long", "long-short", "long-medium")
#: cube_build.CubeData.determine_band_coverage's NIRSpec (grating, filter) order.
NRS_BANDS = (("g140m", "f070lp"), ("g140h", "f070lp"), ("g140m", "f100lp"), ("g140h", "f100lp"),
             ("g235m", "f170lp"), ("g235h", "f170lp"), ("g395m", "f290lp"), ("g395h", "f290lp"),
             ("prism", "clear"), ("prism", "opaque"), ("g140m", "opaque"), ("g140h", "opaque"),
             ("g235m", "opaque"), ("g235h", "opaque"), ("g395m", "opaque"), ("g395h", "opaque"))
#: CubeBuildStep.read_user_input's accepted grating / filter values (jwst 3.0.0: its filter
#: list spells F170LP "g170lp", so a user filter f170lp is dropped, as jwst drops it).
_USER_GRATINGS = ("g140m", "g140h", "g235m", "g235h", "g395m", "g395h", "prism")
_USER_FILTERS = ("f070lp", "f100lp", "g170lp", "f290lp", "clear", "opaque")
_NRS_GRATING_SUFFIXES = ("g140m", "g235m", "g395m", "g140h", "g235h", "g395h", "prism")


def ifu_exposure_info(path: Path, exp_type: str) -> dict:
    """What cube_build reads from an IFU exposure, from its headers: its bands (MIRI
    CHANNEL x BAND, NIRSpec GRATING/FILTER) and its size; it must have a REGIONS slice map."""
    try:
        with fits.open(path) as hdul:
            names = [hdu.name for hdu in hdul]
            primary = hdul[0].header
            sci = hdul["SCI"].header if "SCI" in names else None
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable FITS file ({exc})") from None
    if sci is None:
        raise PlanError(f"{path}: {exp_type} exposure has no SCI extension")
    if "REGIONS" not in names:
        raise PlanError(f"{path}: {exp_type} exposure has no REGIONS extension (the slice map "
                        "assign_wcs writes), which outlier_detection and cube_build need")
    if exp_type == "MIR_MRS":
        channel = str(primary.get("CHANNEL", "") or "").strip()
        band = str(primary.get("BAND", "") or "").strip().lower()
        if not channel or any(c not in MIRI_CHANNELS for c in channel) or band not in MIRI_SUBCHANNELS:
            raise PlanError(f"{path}: MIR_MRS exposure has CHANNEL={channel!r} BAND={band!r}; "
                            "cube_build needs CHANNEL digits 1-4 and a MIRI BAND")
        bands = [[c, band] for c in channel]
    else:
        grating = str(primary.get("GRATING", "") or "").strip().lower()
        filt = str(primary.get("FILTER", "") or "").strip().lower()
        if (grating, filt) not in NRS_BANDS:
            raise PlanError(f"{path}: NRS_IFU exposure has GRATING={grating!r} FILTER={filt!r}, "
                            "not a grating/filter pair cube_build knows")
        bands = [[grating, filt]]
    npix = int(sci.get("NAXIS1", 0) or 0) * int(sci.get("NAXIS2", 0) or 0)
    return {"name": path.name, "bands": bands, "npix": npix}


@dataclass
class IfuCube:
    """One cube cube_build writes: ``<stem>_s3d.fits``, the bands it holds, the detector
    pixels of the inputs covering them (for the memory estimate) and which science
    exposures (indices into ``Product.science``) cover them."""

    stem: str
    bands: list[tuple[str, str]]
    npix: int
    members: tuple[int, ...] = ()


def _cube_param(params: dict, name: str, default: str = "all") -> str:
    value = params.get(name, default)
    return default if value is None else str(value).strip()


def ifu_cubes(product: Product, params: dict | None = None) -> list[IfuCube]:
    """The cubes CubeBuildStep (jwst 3.0.0) writes for ``product`` under ``params``
    (``output_type``, ``channel``, ``band``, ``grating``, ``filter``, ``coord_system``):
    band coverage as ``CubeData.determine_band_coverage``, grouping as ``number_cubes``,
    names as ``IFUCubeData.define_cubename_suffix`` on the product name."""
    params = params or {}
    where = f"{product.asn_name} (product {product.name})"
    output_type = _cube_param(params, "output_type", "band").lower()
    coord_system = _cube_param(params, "coord_system", "skyalign").lower()
    if coord_system == "internal_cal":
        output_type = "band"  # what CubeBuildStep forces
    table: dict[tuple[str, str], list[dict]] = {}
    for exposure in product.ifu_exposures:
        for a, b in exposure["bands"]:
            table.setdefault((a, b), []).append(exposure)

    if product.exp_type == "MIR_MRS":
        if coord_system == "internal_cal":
            raise PlanError(f"{where}: config steps.cube_build.coord_system=internal_cal is not "
                            "valid for MIRI (cube_build rejects it; use ifualign)")
        channel = _cube_param(params, "channel")
        band = _cube_param(params, "band").lower()
        user_ch = [channel] if channel in MIRI_CHANNELS else []  # 'all' (or unknown): all
        user_sub = [band] if band in MIRI_SUBCHANNELS else []
        covered = [(c, b) for c in MIRI_CHANNELS for b in MIRI_SUBCHANNELS
                   if table.get((c, b)) and (not user_ch or c in user_ch)
                   and (not user_sub or b in user_sub)]
        if not covered:
            have = ", ".join(f"ch{c}-{b}" for c, b in sorted(table))
            raise PlanError(f"{where}: config steps.cube_build (channel={channel}, band={band}) "
                            f"asks for a cube no input covers (the inputs cover {have})")
        if output_type == "band":
            groups = [[cb] for cb in covered]
        elif output_type == "channel":
            groups = [[cb for cb in covered if cb[0] == c]
                      for c in dict.fromkeys(c for c, _ in covered)]
        elif output_type == "multi":
            groups = [covered]
        else:
            raise PlanError(f"{where}: config steps.cube_build.output_type={output_type} makes "
                            "no MIRI cube (use band, channel or multi)")
    else:
        grating = _cube_param(params, "grating").lower()
        filt = _cube_param(params, "filter").lower()
        user_g = [grating] if grating in _USER_GRATINGS else []
        user_f = [filt] if filt in _USER_FILTERS else []
        if not user_g and user_f:
            raise PlanError(f"{where}: config steps.cube_build: filter={filt} without a grating "
                            "(cube_build stops: 'Filter specified, but Grating was not')")
        if user_g and not user_f:
            hint = (" (jwst 3.0.0's cube_build drops filter f170lp, it expects 'g170lp')"
                    if filt == "f170lp" else "")
            raise PlanError(f"{where}: config steps.cube_build: grating={grating} without a usable "
                            f"filter{hint} (cube_build stops: 'Grating specified, but Filter was "
                            "not')")
        covered = [(g, f) for g, f in NRS_BANDS
                   if table.get((g, f)) and (not user_g or (g in user_g and f in user_f))]
        if not covered:
            have = ", ".join(f"{g}-{f}" for g, f in sorted(table))
            raise PlanError(f"{where}: config steps.cube_build (grating={grating}, filter={filt}) "
                            f"asks for a cube no input covers (the inputs cover {have})")
        if output_type in ("band", "grating"):
            groups = [[gf] for gf in covered]
        elif output_type == "multi":
            groups = [covered]
        else:
            raise PlanError(f"{where}: config steps.cube_build.output_type={output_type} makes "
                            "no NIRSpec cube (use band, grating or multi)")

    cubes = []
    for group in groups:
        users = {e["name"]: e for band in group for e in table[band]}
        if coord_system == "internal_cal" and len(users) > 1:
            raise PlanError(f"{where}: config steps.cube_build.coord_system=internal_cal builds "
                            f"a cube from one exposure; {len(users)} cover {'-'.join(group[0])}")
        npix = sum(e["npix"] * sum(1 for b in e["bands"] if tuple(b) in group) // len(e["bands"])
                   for e in users.values())
        members = tuple(i for i, e in enumerate(product.ifu_exposures)
                        if any(tuple(b) in group for b in e["bands"]))
        cubes.append(IfuCube(_cube_stem(product, group, coord_system), group, npix, members))
    return cubes


@dataclass
class CubeJob:
    """One cube built by its own cube_build job: the exposures it reads (indices into
    ``Product.science``) and the cube_build parameters that select its band."""

    cube: IfuCube
    members: tuple[int, ...]
    params: dict


def cube_jobs(product: Product, cubes: list[IfuCube], params: dict | None = None) -> list[CubeJob] | None:
    """Default band cubes, one cube_build job each, or None where one job must build them all.

    A cube of one band, built from the exposures that cover that band, is the cube the
    all-band call builds (arrays and keywords: cube_build's point cloud, WCS, reference
    model and blended metadata take only that band's exposures), so the bands of a MIRI
    MRS program can run side by side. MIRI bands are chosen with ``channel``/``band``;
    NIRSpec's user grating/filter selection cannot name every band (jwst 3.0.0 drops
    F170LP), so a NIRSpec band is chosen by its exposures alone. cube_build blends
    metadata only when it reads more than one exposure: a band covered by one exposure of
    several is built from all of them (MIRI) or not split (NIRSpec)."""
    params = params or {}
    output_type = _cube_param(params, "output_type", "band").lower()
    coord_system = _cube_param(params, "coord_system", "skyalign").lower()
    if len(cubes) < 2 or output_type != "band" or coord_system == "internal_cal":
        return None
    n_science = len(product.ifu_exposures)
    jobs = []
    for cube in cubes:
        members = cube.members if len(cube.members) > 1 else tuple(range(n_science))
        if product.exp_type == "MIR_MRS":
            ((channel, band),) = cube.bands
            jobs.append(CubeJob(cube, members, {"channel": channel, "band": band}))
        elif len(members) < n_science:
            jobs.append(CubeJob(cube, members, {}))
        else:
            return None
    return jobs


def _cube_stem(product: Product, group: list[tuple[str, str]], coord_system: str) -> str:
    base = product.name
    if product.exp_type == "MIR_MRS":
        channels = list(dict.fromkeys(c for c, _ in group))
        subchannels = sorted({b for _, b in group})[::-1]  # short, medium, long
        suffix = "_ch" + "-".join(channels) + "-" + "".join(subchannels)
    else:
        last = base[base.rfind("_") + 1:]
        if last in _NRS_GRATING_SUFFIXES:
            base = base[: base.rfind("_")]
        suffix = "_" + "-".join(f"{g}-{f}" for g, f in group)
    if coord_system == "internal_cal":
        suffix += "_internal"
    return base + suffix.lower()


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
PLAN_FORMAT = 4


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
                        help="write only these association files (names the plan was built from)")
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
        wanted = names if args.expect is None else sorted(args.expect)
        missing = sorted(set(wanted) - set(names))
        if missing:
            print(f"spec3flow: associations changed since planning: planned {missing}, "
                  f"generated {names}; rerun snakemake to re-plan", file=sys.stderr)
            return 1
        for path in written:
            if path.name in wanted:
                os.replace(path, args.outdir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
