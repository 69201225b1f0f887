"""Header skeletons of NIRSpec MOS programs: thousands of sources in seconds, for planning
benchmarks only.

``snakemake -n`` never reads pixels: planning reads each cal file's primary header
(association pool) and, per slit, the ``SCI`` extension's ``SLTNAME/SOURCEID/SRCNAME``
(:func:`spec3flow.plan.slit_headers`).  The real generator
(:func:`spec3flow.synth.nirspec.generate_nirspec_mos`) builds a datamodel with noise and a
gwcs per slit, ~156 s and 150 MB for 1,000 sources, so 10,000-source dry runs could not be
benchmarked.  :func:`write_mos_skeleton` instead copies the headers of a small real program
(the *template*, made on the fly with 3 sources unless given) and repeats its slit headers
once per source with that source's values, writing header blocks directly:

* same file names (``jw01234001001_02101_0000{1,2,3}_nrs1_cal.fits``), primary headers
  (plus one ``COMMENT`` card saying what the file is) and slit layout as the template:
  sources ``1..N`` (slitlet ``i + 1``, name ``{program}_{i}``), then the background
  slitlet (source id ``N + 1000``, name ``{program}_BKG{N + 2}``); source 2 is left out
  of the last exposure, as the generator's default ``missing`` does;
* each slit has the template's seven extensions (``SCI, DQ, ERR, WAVELENGTH, VAR_*``)
  with every card the generator writes; the per-source cards (slit name and ids, source
  name, position, RA/Dec, S_REGION, wavelength range, corner) get fresh values drawn
  like the generator draws them, so the header scan reads as many blocks as for real
  files;
* but ``SCI`` is 1 x 1 pixel, the other six extensions hold no data (``NAXIS = 0``) and
  there is no ``ASDF`` extension: jwst cannot open or run these files.  10,000 sources
  x 3 exposures is ~0.8 GB and takes a few seconds.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["write_mos_skeleton", "TEMPLATE_SOURCES"]

#: Sources of the on-the-fly template: 3 so every exposure, even the last (which lacks
#: source 2), holds a source slit other than the first (the first carries extra cards).
TEMPLATE_SOURCES = 3
_BLOCK = 2880
_END = "END".ljust(80)
#: SCI cards that differ between sources (all else is per exposure).
_SOURCE_KEYS = ("SLTNAME", "SLTSTRT1", "SLTSTRT2", "SLITID", "SHUTTRID", "SOURCEID",
                "SRCNAME", "SRCALIAS", "SRCXPOS", "SRCYPOS", "MSAQUAD", "SRCRA", "SRCDEC",
                "WAVSTART", "WAVEND")
_COMMENT = ("spec3flow header skeleton (spec3flow.synth.skeleton): headers only, for "
            "planning benchmarks; not runnable by jwst")


# ----------------------------------------------------------------------------- cards
def _value(value) -> str:
    """A fixed-format value field exactly as astropy writes it (Card._format_value)."""
    if isinstance(value, str):
        return f"{_fits_string(value):20}" if value else "''"
    if isinstance(value, (bool, np.bool_)):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):>20d}"
    text = str(float(value)).replace("e", "E")
    if len(text) > 20:
        idx = text.find("E")
        text = text[:20] if idx < 0 else text[: 20 - (len(text) - idx)] + text[idx:]
    return f"{text:>20}"


def _fits_string(value: str) -> str:
    return "'" + f"{value.replace(chr(39), chr(39) * 2):8}" + "'"


def card(key: str, value, comment: str = "") -> str:
    """One 80-character card, as astropy writes it; ``fits.Card`` costs ~30 us, 5 s for the
    160,000 per-source cards of 10,000 sources."""
    text = f"{key:8}= {_value(value)}"
    if comment:
        text += f" / {comment}"
    return f"{text[:80]:80}"


def _header_block(cards: list[str]) -> str:
    text = "".join(cards) + _END
    return text + " " * (-len(text) % _BLOCK)


# -------------------------------------------------------------------------- template
@dataclass
class _Slit:
    """One slit of a template exposure: its seven HDU headers as card images."""

    sci: list[str]
    sci_index: dict[str, int]
    comments: dict[str, str]
    companions: list[tuple[list[str], int]]  # (cards, index of EXTVER) per extension
    src_ra: float
    src_dec: float
    s_region: list[float]  # polygon corners as offsets from (src_ra, src_dec)
    size: tuple[int, int]  # SLTSIZE1, SLTSIZE2: the real cutout (the skeleton's is 1 x 1)


@dataclass
class _Exposure:
    name: str
    primary: str  # the whole primary header, blocks included
    first: _Slit  # slit 1 of the file (it alone carries MJD-*, TDB-*, XPOSURE, TELAPSE)
    source: _Slit  # a later source slit
    background: _Slit


def _images(header) -> list[str]:
    return [c.image for c in header.cards]


def _read_slit(hdus) -> _Slit:
    sci = hdus[0].header.copy()
    sci["NAXIS1"], sci["NAXIS2"] = 1, 1
    images = _images(sci)
    index = {c.keyword: i for i, c in enumerate(sci.cards)}
    companions = []
    for hdu in hdus[1:]:
        hdr = hdu.header.copy()
        hdr["NAXIS"] = 0
        del hdr["NAXIS1"], hdr["NAXIS2"]
        companions.append((_images(hdr), list(hdr.keys()).index("EXTVER")))
    corners = [float(v) for v in re.findall(r"[-+]?\d+\.\d+", str(sci["S_REGION"]))]
    ra, dec = float(sci["SRCRA"]), float(sci["SRCDEC"])
    offsets = [v - (ra if k % 2 == 0 else dec) for k, v in enumerate(corners)]
    return _Slit(images, index, {k: sci.comments[k] for k in (*_SOURCE_KEYS, "S_REGION", "EXTVER")},
                 companions, ra, dec, offsets, (int(sci["SLTSIZE1"]), int(sci["SLTSIZE2"])))


def _read_template(path: Path) -> _Exposure:
    from astropy.io import fits

    with fits.open(path) as hdul:
        primary = hdul[0].header.copy()
        primary.add_comment(_COMMENT)
        starts = [i for i, h in enumerate(hdul) if h.name == "SCI"]
        ends = starts[1:] + [next((i for i, h in enumerate(hdul) if h.name == "ASDF"), len(hdul))]
        slits = [hdul[a:b] for a, b in zip(starts, ends)]
        if len(slits) < 3:
            raise ValueError(f"{path}: a skeleton template needs a NIRSpec MOS exposure with two "
                             "source slits and the background slitlet")
        is_bkg = ["BKG" in str(s[0].header.get("SRCNAME", "")) for s in slits]
        later = [s for s, bkg in zip(slits[1:], is_bkg[1:]) if not bkg]
        bkgs = [s for s, bkg in zip(slits, is_bkg) if bkg]
        if is_bkg[0] or not later or not bkgs:
            raise ValueError(f"{path}: template exposure lacks a first source slit, a later "
                             "source slit or a background slitlet")
        return _Exposure(path.name, primary.tostring(), _read_slit(slits[0]),
                         _read_slit(later[0]), _read_slit(bkgs[0]))


# ------------------------------------------------------------------------- sources
def _draw_sources(n_sources: int, seed: int, primary, first: _Slit) -> dict[str, np.ndarray]:
    """Per-slit values (N sources + background), drawn as the generator draws them."""
    from .nirspec import GRATING_RANGES, _offset_radec

    n = n_sources + 1
    rng = np.random.default_rng([seed, n_sources, 7717])
    nx, ny = first.size
    _, gmin, gmax, dlam = GRATING_RANGES[str(primary["GRATING"]).strip().upper()]
    lam0 = rng.uniform(gmin + 0.02, gmax - 0.02 - nx * dlam, n)
    dra, ddec = rng.uniform(-90, 90, (2, n))
    ra, dec = _offset_radec(float(primary["TARG_RA"]), float(primary["TARG_DEC"]), dra, ddec)
    index = np.arange(n)
    real = index < n_sources
    return {
        "index": index,
        "ra": ra, "dec": dec,
        "lam0": lam0, "lam1": lam0 + (nx - 1) * dlam,
        "xpos": np.where(real, rng.uniform(-0.15, 0.15, n), 0.0),
        "ypos": np.where(real, rng.uniform(-0.1, 0.1, n), 0.0),
        "quadrant": rng.integers(1, 5, n),
        "shutter": rng.integers(1, 172, n),
        "xstart": np.rint((lam0 - gmin) / dlam).astype(int) + 1,
        "ystart": 1 + (index * (ny + 2)) % (2048 - ny - 2),
    }


def _s_region(slit: _Slit, ra: float, dec: float) -> str:
    from astropy.io import fits

    pts = " ".join(f"{(ra if k % 2 == 0 else dec) + off:.9f}"
                   for k, off in enumerate(slit.s_region))
    # The one long-string (CONTINUE) card: astropy formats it.
    return fits.Card("S_REGION", f"POLYGON ICRS  {pts}", slit.comments["S_REGION"]).image


def _sci_header(slit: _Slit, values: dict, i: int, n_sources: int, program: str,
                extver: str) -> str:
    """The template slit's SCI header with source ``i``'s (0-based; ``n_sources`` is the
    background slitlet) cards; names and ids follow generate_nirspec_mos."""
    slitlet = i + 2
    if i < n_sources:
        source_id, name, alias = i + 1, f"{program}_{i + 1}", str(i + 1)
    else:
        source_id, name, alias = n_sources + 1000, f"{program}_BKG{slitlet}", f"BKG{slitlet}"
    new = {
        "SLTNAME": str(slitlet), "SLITID": slitlet, "SOURCEID": source_id, "SRCNAME": name,
        "SRCALIAS": alias, "SLTSTRT1": int(values["xstart"][i]),
        "SLTSTRT2": int(values["ystart"][i]), "SHUTTRID": int(values["shutter"][i]),
        "MSAQUAD": int(values["quadrant"][i]), "SRCXPOS": float(values["xpos"][i]),
        "SRCYPOS": float(values["ypos"][i]), "SRCRA": float(values["ra"][i]),
        "SRCDEC": float(values["dec"][i]), "WAVSTART": float(values["lam0"][i] * 1e-6),
        "WAVEND": float(values["lam1"][i] * 1e-6),
    }
    cards = list(slit.sci)
    for key, value in new.items():
        cards[slit.sci_index[key]] = card(key, value, slit.comments[key])
    cards[slit.sci_index["EXTVER"]] = extver
    cards[slit.sci_index["S_REGION"]] = _s_region(slit, new["SRCRA"], new["SRCDEC"])
    return _header_block(cards)


_SCI_DATA = np.zeros(1, ">f4").tobytes().ljust(_BLOCK, b"\0")


def _write_exposure(path: Path, exp: _Exposure, present: list[int], values: dict,
                    n_sources: int, program: str, extvers: list[str]) -> None:
    with open(path, "wb", buffering=1 << 22) as fh:
        fh.write(exp.primary.encode("ascii"))
        for pos, i in enumerate(present):
            slit = exp.first if pos == 0 else exp.background if i == n_sources else exp.source
            fh.write(_sci_header(slit, values, i, n_sources, program, extvers[pos]).encode("ascii"))
            fh.write(_SCI_DATA)
            for cards, at in slit.companions:
                cards = list(cards)
                cards[at] = extvers[pos]
                fh.write(_header_block(cards).encode("ascii"))


# ---------------------------------------------------------------------------- main
def write_mos_skeleton(outdir: str | Path, n_sources: int, template_dir: str | Path | None = None,
                       *, seed: int = 1) -> list[Path]:
    """Write a header-only NIRSpec MOS program of ``n_sources`` sources into ``outdir``.

    ``template_dir``: a program written by ``generate_nirspec_mos`` (>= 3 sources, with
    its background slitlet; CLI ``python -m spec3flow.synth --mode mos``) whose headers
    are copied; by default one of :data:`TEMPLATE_SOURCES` sources is generated in a
    temporary directory (~2 s).  Returns the cal files written (exposure order), named
    as the template's.  Planning benchmarks only: see the module docstring."""
    if n_sources < 2:
        raise ValueError("n_sources must be >= 2 (the generator's layout: source 2 is missing "
                         "from the last exposure)")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        if template_dir is None:
            from .nirspec import generate_nirspec_mos

            tmp = Path(tempfile.mkdtemp(prefix="spec3flow-skeleton-"))
            generate_nirspec_mos(tmp, n_sources=TEMPLATE_SOURCES, write_spectra=False)
            template_dir = tmp
        templates = sorted(Path(template_dir).glob("jw*_nrs1_cal.fits"))
        if not templates:
            raise ValueError(f"{template_dir}: no NIRSpec MOS *_nrs1_cal.fits template")
        exposures = [_read_template(p) for p in templates]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    from astropy.io import fits

    primary = fits.Header.fromstring(exposures[0].primary)
    if str(primary.get("EXP_TYPE", "")).strip() != "NRS_MSASPEC":
        raise ValueError(f"{templates[0]}: template is not an NRS_MSASPEC exposure")
    program = f"{int(primary['PROGRAM']):05d}"
    values = _draw_sources(n_sources, seed, primary, exposures[0].first)
    comment = exposures[0].first.comments["EXTVER"]
    extvers = [card("EXTVER", v, comment) for v in range(1, n_sources + 2)]
    files = []
    last = len(exposures) - 1
    for k, exp in enumerate(exposures):
        present = [i for i in range(n_sources + 1) if not (i == 1 and k == last and last > 0)]
        path = outdir / exp.name
        _write_exposure(path, exp, present, values, n_sources, program, extvers)
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    """``python -m spec3flow.synth.skeleton --outdir D --n-sources N``."""
    import argparse
    import time

    p = argparse.ArgumentParser(prog="python -m spec3flow.synth.skeleton",
                                description=__doc__.splitlines()[0])
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--n-sources", type=int, required=True)
    p.add_argument("--template-dir", type=Path, default=None)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    files = write_mos_skeleton(args.outdir, args.n_sources, args.template_dir, seed=args.seed)
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"skeleton: {args.n_sources} sources, {len(files)} files, {size:.0f} MiB in "
          f"{args.outdir} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
