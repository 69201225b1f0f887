"""What changed between two processings of the same program.

Programs are re-processed when jwst or the CRDS context changes; this module says
what a re-processing changed, product by product::

    python -m spec3flow.whatchanged RESULTS_A RESULTS_B --out DIR [--n-plots 6]

``RESULTS_A``/``RESULTS_B`` are the workflow's results directories (their
``products/*.fits`` are compared) or any two directories of FITS products.

Writes

``DIR/whatchanged.csv``
    One row per product name (columns :data:`COLUMNS`): where it is present
    (``both``/``a``/``b``), the largest absolute difference of the data arrays
    (``SCI`` images, or the ``FLUX`` column of ``EXTRACT1D``/``COMBINE1D`` tables),
    NaN-placement mismatches, for x1d/c1d the median flux ratio b/a over valid
    points, the changed header keywords (volatile ones -- dates, file names,
    checksums -- ignored, as in :mod:`spec3flow.compare`), and which ``S_*`` step
    statuses, ``R_*`` reference files, CRDS context (``CRDS_CTX``) and jwst version
    (``CAL_VER``) changed.
``DIR/plots/*.png``
    The ``n_plots`` largest differences (ranked by the data difference relative to
    the data's peak): for spectra both spectra overlaid and their ratio; for 2D
    products a, b and b - a.

and prints a short summary table.

Columns: ``max_abs_diff``/``nan_mismatch`` cover the data arrays only (SCI / FLUX;
``inf`` when their shapes differ), ``rel_diff`` is ``max_abs_diff`` over the peak
``|data|`` of a (the plot ranking), ``arrays_equal`` is compare_files' verdict on *all*
arrays and table columns (ERR, DQ, WAVELENGTH, ... too), ``structure_diff`` lists
extension or shape changes, ``changed_keywords`` names changed keywords (``KEY`` for the
primary header, ``EXTNAME,VER:KEY`` otherwise), ``changed_steps``/``changed_reffiles``
are ``KEY: a->b`` lists, ``error`` is set when a product cannot be read.  Header keywords and all arrays are compared by
:func:`spec3flow.compare.compare_files` (the equivalence tests' comparison); this
module adds the data-array and flux-ratio measures and the provenance columns.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from astropy.io import fits  # noqa: E402

from spec3flow.compare import VOLATILE_KEYWORDS, _array_diff, compare_files  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "compare_product", "find_products", "main", "plot_difference", "what_changed"]

#: Table extensions holding spectra, and their data column.
SPEC_EXTNAMES = ("EXTRACT1D", "COMBINE1D")
FLUX_COLUMN = "FLUX"
#: jwst DQ bit DO_NOT_USE (constant so the module does not need stdatamodels).
DO_NOT_USE = 1
#: Primary-header provenance keywords reported in their own columns.
PROVENANCE_KEYWORDS = ("CRDS_CTX", "CAL_VER")

COLUMNS = [
    "product",
    "product_type",
    "present_in",
    "max_abs_diff",
    "rel_diff",
    "nan_mismatch",
    "flux_ratio_median",
    "arrays_equal",
    "structure_diff",
    "n_changed_keywords",
    "changed_keywords",
    "changed_steps",
    "changed_reffiles",
    "crds_context_changed",
    "cal_ver_changed",
    "plot",
    "error",
]

_LABEL_RE = re.compile(r"^(?P<ext>[^,]+),(?P<ver>\d+) (?P<key>[^:]*):")


def find_products(path: str | os.PathLike) -> dict[str, Path]:
    """FITS products of a results directory (``products/``) or of a plain directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a directory")
    products = path / "products"
    root = products if products.is_dir() else path
    return {p.name: p for p in sorted(root.glob("*.fits")) if p.is_file()}


def _suffix(name: str) -> str:
    stem = name[: -len(".fits")] if name.lower().endswith(".fits") else name
    return stem.rsplit("_", 1)[-1].lower() if "_" in stem else ""


@dataclass
class _DataPair:
    """One data array of a product in both processings."""

    label: str
    a: np.ndarray
    b: np.ndarray
    kind: str  # "spec" or "image"
    wave_a: np.ndarray | None = None
    wave_b: np.ndarray | None = None
    dq_a: np.ndarray | None = None
    dq_b: np.ndarray | None = None


def _column(data, name):
    return np.asarray(data[name], dtype=float) if name in data.columns.names else None


def _data_pairs(ha: fits.HDUList, hb: fits.HDUList) -> tuple[list[_DataPair], list[str]]:
    """The SCI / FLUX arrays present in both files, and notes on those only in one."""
    def index(hdul):
        out = {}
        for hdu in hdul:
            if hdu.name == "SCI" and hdu.data is not None and not isinstance(hdu.data, fits.FITS_rec):
                out[(hdu.name, hdu.ver)] = hdu
            elif hdu.name in SPEC_EXTNAMES and isinstance(hdu.data, fits.FITS_rec) \
                    and FLUX_COLUMN in hdu.data.columns.names:
                out[(hdu.name, hdu.ver)] = hdu
        return out

    ia, ib = index(ha), index(hb)
    notes = [f"{n},{v} only in a" for n, v in ia.keys() - ib.keys()]
    notes += [f"{n},{v} only in b" for n, v in ib.keys() - ia.keys()]
    pairs = []
    for key in sorted(ia.keys() & ib.keys(), key=lambda k: (k[0], k[1])):
        hdu_a, hdu_b = ia[key], ib[key]
        label = f"{key[0]},{key[1]}"
        if key[0] == "SCI":
            pairs.append(_DataPair(label, np.asarray(hdu_a.data), np.asarray(hdu_b.data), "image"))
        else:
            da, db = hdu_a.data, hdu_b.data
            pairs.append(_DataPair(
                f"{label}:{FLUX_COLUMN}", _column(da, FLUX_COLUMN), _column(db, FLUX_COLUMN), "spec",
                wave_a=_column(da, "WAVELENGTH"), wave_b=_column(db, "WAVELENGTH"),
                dq_a=_column(da, "DQ"), dq_b=_column(db, "DQ"),
            ))
    return pairs, sorted(notes)


def _valid(flux, dq):
    ok = np.isfinite(flux)
    if dq is not None:
        ok &= (np.nan_to_num(dq).astype(np.int64) & DO_NOT_USE) == 0
    return ok


def _spectrum_on_a_grid(pair: _DataPair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flux a, flux b on a's points, valid mask): pointwise, or b interpolated onto a's wavelengths."""
    fa, fb = pair.a, pair.b
    ok_a = _valid(fa, pair.dq_a)
    if fa.shape == fb.shape and (pair.wave_a is None or pair.wave_b is None
                                 or np.allclose(pair.wave_a, pair.wave_b, equal_nan=True)):
        return fa, fb, ok_a & _valid(fb, pair.dq_b)
    if pair.wave_a is None or pair.wave_b is None:
        return fa, np.full_like(fa, np.nan), np.zeros(fa.shape, bool)
    ok_b = _valid(fb, pair.dq_b) & np.isfinite(pair.wave_b)
    wb, fbv = pair.wave_b[ok_b], fb[ok_b]
    order = np.argsort(wb)
    wb, fbv = wb[order], fbv[order]
    wa = pair.wave_a
    inside = np.isfinite(wa)
    if wb.size:
        inside &= (wa >= wb[0]) & (wa <= wb[-1])
    else:
        inside[:] = False
    fb_on_a = np.full_like(fa, np.nan)
    if wb.size:
        fb_on_a[inside] = np.interp(wa[inside], wb, fbv)
    return fa, fb_on_a, ok_a & inside & np.isfinite(fb_on_a)


def _primary_diff(ha: fits.Header, hb: fits.Header, prefix: str) -> list[str]:
    keys = sorted(k for k in set(ha) | set(hb) if k.startswith(prefix))
    return [f"{k}: {ha.get(k)}->{hb.get(k)}" for k in keys if ha.get(k) != hb.get(k)]


def _value_change(ha: fits.Header, hb: fits.Header, key: str) -> str:
    va, vb = ha.get(key), hb.get(key)
    return "" if va == vb else f"{va}->{vb}"


def _keyword_names(keyword_diffs: Sequence[str]) -> list[str]:
    """'PRIMARY,1 S_EXTR1D: ...' -> 'S_EXTR1D'; other extensions keep their label ('SCI,1:BUNIT')."""
    names = []
    for line in keyword_diffs:
        m = _LABEL_RE.match(line)
        if not m:
            names.append(line)
            continue
        if m["ext"] == "PRIMARY":
            names.append(m["key"])
        else:
            names.append(f"{m['ext']},{m['ver']}:{m['key']}")
    return sorted(set(names))


def compare_product(path_a: Path | None, path_b: Path | None) -> dict:
    """One row of ``whatchanged.csv`` (see :data:`COLUMNS`)."""
    name = (path_a or path_b).name
    row = {c: None for c in COLUMNS}
    row.update(product=name, product_type=_suffix(name), structure_diff="", changed_keywords="",
               changed_steps="", changed_reffiles="", crds_context_changed="", cal_ver_changed="",
               plot="", error="")
    if path_a is None or path_b is None:
        row["present_in"] = "a" if path_b is None else "b"
        return row
    row["present_in"] = "both"
    try:
        diff = compare_files(path_a, path_b, ignore_keywords=VOLATILE_KEYWORDS)
        keywords = _keyword_names(diff.keyword_diffs)
        row.update(arrays_equal=diff.arrays_equal, n_changed_keywords=len(keywords),
                   changed_keywords=";".join(keywords))
        with fits.open(path_a) as ha, fits.open(path_b) as hb:
            h0a, h0b = ha[0].header, hb[0].header
            row["changed_steps"] = ";".join(_primary_diff(h0a, h0b, "S_"))
            row["changed_reffiles"] = ";".join(_primary_diff(h0a, h0b, "R_"))
            row["crds_context_changed"] = _value_change(h0a, h0b, "CRDS_CTX")
            row["cal_ver_changed"] = _value_change(h0a, h0b, "CAL_VER")
            pairs, notes = _data_pairs(ha, hb)
            structure = list(diff.shape_mismatch) + notes
            max_diff, nan_mismatch, peak = 0.0, 0, 0.0
            ratios = []
            for pair in pairs:
                if pair.a.shape != pair.b.shape:
                    structure.append(f"{pair.label}: shape {pair.a.shape} vs {pair.b.shape}")
                    max_diff = math.inf
                else:
                    d, n = _array_diff(pair.a, pair.b)
                    max_diff, nan_mismatch = max(max_diff, d), nan_mismatch + n
                finite_a = pair.a[np.isfinite(pair.a)]
                if finite_a.size:
                    peak = max(peak, float(np.max(np.abs(finite_a))))
                if pair.kind == "spec":
                    fa, fb, ok = _spectrum_on_a_grid(pair)
                    ok &= fa != 0
                    ratios.append(fb[ok] / fa[ok])
            if not pairs:
                structure.append("no SCI image or FLUX column")
            row["structure_diff"] = ";".join(dict.fromkeys(structure))
            if pairs:
                row["max_abs_diff"] = max_diff
                row["nan_mismatch"] = nan_mismatch
                row["rel_diff"] = (max_diff / peak if peak > 0 else (0.0 if max_diff == 0 else math.inf))
            if ratios:
                allr = np.concatenate(ratios)
                row["flux_ratio_median"] = float(np.median(allr)) if allr.size else math.nan
    except Exception as exc:  # one unreadable product must not stop the report
        log.warning("%s: %s", name, exc)
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _score(row) -> tuple[float, int]:
    """Ranking of data differences: (relative difference, NaN mismatches); (0, 0) if none."""
    if row.get("present_in") != "both" or row.get("error"):
        return (0.0, 0)
    rel = row.get("rel_diff")
    rel = 0.0 if rel is None or pd.isna(rel) else float(rel)
    nans = row.get("nan_mismatch")
    nans = 0 if nans is None or pd.isna(nans) else int(nans)
    return (rel, nans)


def _display_limits(*arrays):
    vals = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.array([])
    if vals.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(vals, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1, float(lo) + 1)


def _image_plane(a: np.ndarray, b: np.ndarray):
    """Reduce >2D arrays to the 2D plane with the largest difference."""
    if a.ndim <= 2:
        return np.atleast_2d(a), np.atleast_2d(b)
    lead = a.shape[:-2]
    with np.errstate(invalid="ignore"):
        d = np.abs(a.astype(float) - b.astype(float)).reshape(-1, *a.shape[-2:])
    per_plane = [np.nanmax(p) if np.isfinite(p).any() else -np.inf for p in d]
    idx = np.unravel_index(int(np.argmax(per_plane)), lead)
    return a[idx], b[idx]


def plot_difference(path_a: Path, path_b: Path, png: Path, title: str | None = None) -> Path:
    """PNG of one product's difference: spectra overlaid + ratio, or a, b and b - a images."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with fits.open(path_a) as ha, fits.open(path_b) as hb:
        pairs, _ = _data_pairs(ha, hb)
        if not pairs:
            raise ValueError(f"{path_a.name}: no SCI image or FLUX column to plot")
        title = title or path_a.name
        spec = [p for p in pairs if p.kind == "spec"]
        if spec:
            fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1]})
            for i, p in enumerate(spec[:6]):
                xa = p.wave_a if p.wave_a is not None else np.arange(p.a.size)
                xb = p.wave_b if p.wave_b is not None else np.arange(p.b.size)
                tag = f" ({p.label})" if len(spec) > 1 else ""
                ax1.plot(xa, np.where(_valid(p.a, p.dq_a), p.a, np.nan), lw=1, color=f"C{2 * i}",
                         label=f"a{tag}")
                ax1.plot(xb, np.where(_valid(p.b, p.dq_b), p.b, np.nan), lw=1, ls="--",
                         color=f"C{2 * i + 1}", label=f"b{tag}")
                fa, fb, ok = _spectrum_on_a_grid(p)
                ok &= fa != 0
                ratio = np.full(fa.shape, np.nan)
                ratio[ok] = fb[ok] / fa[ok]
                ax2.plot(xa, ratio, lw=1, color=f"C{2 * i}")
            ax1.set_ylabel("flux")
            ax1.legend(fontsize=8)
            ax2.axhline(1.0, color="k", lw=0.5)
            ax2.set_ylabel("b / a")
            ax2.set_xlabel("wavelength" if spec[0].wave_a is not None else "pixel")
            ax1.set_title(title, fontsize=9)
        else:
            # the SCI extension with the largest difference
            def size(p):
                if p.a.shape != p.b.shape:
                    return math.inf
                return _array_diff(p.a, p.b)[0]
            p = max(pairs, key=size)
            a, b = (np.asarray(x, dtype=float) for x in (p.a, p.b))
            same = a.shape == b.shape
            if same:
                a, b = _image_plane(a, b)
            else:
                a = a.reshape(-1, a.shape[-1]) if a.ndim > 2 else np.atleast_2d(a)
                b = b.reshape(-1, b.shape[-1]) if b.ndim > 2 else np.atleast_2d(b)
            lo, hi = _display_limits(a, b)
            ncols = 3 if same else 2
            fig, axes = plt.subplots(ncols, 1, figsize=(9, 2.2 * ncols + 0.6), squeeze=False)
            for ax, img, lab in zip(axes[:, 0], (a, b), ("a", "b")):
                im = ax.imshow(img, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="viridis")
                ax.set_ylabel(lab)
                fig.colorbar(im, ax=ax)
            if same:
                with np.errstate(invalid="ignore"):
                    d = b - a
                finite = np.abs(d[np.isfinite(d)])
                lim = float(np.percentile(finite, 99.5)) if finite.size else 1.0
                lim = lim if lim > 0 else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
                im = axes[2, 0].imshow(d, origin="lower", aspect="auto", vmin=-lim, vmax=lim, cmap="RdBu_r")
                axes[2, 0].set_ylabel("b - a")
                fig.colorbar(im, ax=axes[2, 0])
            axes[0, 0].set_title(f"{title} [{p.label}]", fontsize=9)
        fig.tight_layout()
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=png.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=90)
            os.replace(tmp, png)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
    return png


def what_changed(dir_a, dir_b, out_dir, n_plots: int = 6) -> pd.DataFrame:
    """Compare two processings; write ``whatchanged.csv`` and ``plots/`` under ``out_dir``."""
    prods_a, prods_b = find_products(dir_a), find_products(dir_b)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [compare_product(prods_a.get(n), prods_b.get(n)) for n in sorted(prods_a.keys() | prods_b.keys())]
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("nan_mismatch", "n_changed_keywords"):
        df[col] = df[col].astype("Int64")
    df["arrays_equal"] = df["arrays_equal"].astype("boolean")
    plots_dir = out_dir / "plots"
    ranked = sorted((r for r in rows if _score(r) > (0.0, 0)), key=_score, reverse=True)[: max(n_plots, 0)]
    if ranked:
        plots_dir.mkdir(exist_ok=True)
        for stale in plots_dir.glob("*.png"):
            stale.unlink()
    for rank, r in enumerate(ranked, 1):
        name = r["product"]
        png = plots_dir / f"{rank:02d}_{name[: -len('.fits')]}.png"
        try:
            plot_difference(prods_a[name], prods_b[name], png)
            df.loc[df["product"] == name, "plot"] = str(png.relative_to(out_dir))
        except Exception as exc:
            log.warning("%s: no plot: %s", name, exc)
    csv = out_dir / "whatchanged.csv"
    fd, tmp = tempfile.mkstemp(suffix=".csv", dir=out_dir)
    os.close(fd)
    df.to_csv(tmp, index=False)
    os.replace(tmp, csv)
    return df


def _fmt(v, spec="{:.3g}"):
    if v is None or pd.isna(v):
        return "-"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return spec.format(v) if isinstance(v, (float, np.floating)) else str(v)


def summary_text(df: pd.DataFrame, dir_a=None, dir_b=None, max_rows: int = 20) -> str:
    """A short plain-text summary of a ``what_changed`` table."""
    lines = []
    if dir_a is not None:
        lines += [f"a: {dir_a}", f"b: {dir_b}"]
    both = df[df["present_in"] == "both"]
    changed = both[(both["arrays_equal"].fillna(True) == False)  # noqa: E712
                   | (both["n_changed_keywords"].fillna(0) > 0) | (both["error"] != "")]
    lines.append(f"{len(df)} products: {len(both)} in both ({len(changed)} changed, "
                 f"{len(both) - len(changed)} identical), {int((df['present_in'] == 'a').sum())} only in a, "
                 f"{int((df['present_in'] == 'b').sum())} only in b")
    for col, label in (("crds_context_changed", "CRDS context"), ("cal_ver_changed", "jwst CAL_VER")):
        vals = sorted({v for v in both[col] if v})
        if vals:
            lines.append(f"{label}: {', '.join(vals)}")
    steps = sorted({s for v in both["changed_steps"] if v for s in v.split(";")})
    if steps:
        lines.append(f"step statuses: {', '.join(steps)}")
    refs = sorted({s.split(":")[0] for v in both["changed_reffiles"] if v for s in v.split(";")})
    if refs:
        lines.append(f"reference files changed: {', '.join(refs)}")
    if len(changed):
        order = changed.assign(_s=[_score(r) for r in changed.to_dict("records")]).sort_values(
            "_s", ascending=False)
        table = pd.DataFrame({
            "product": order["product"],
            "max|diff|": [_fmt(v) for v in order["max_abs_diff"]],
            "rel": [_fmt(v) for v in order["rel_diff"]],
            "nan_mismatch": [_fmt(v) for v in order["nan_mismatch"]],
            "b/a": [_fmt(v, "{:.4f}") for v in order["flux_ratio_median"]],
            "keywords": [_fmt(v) for v in order["n_changed_keywords"]],
            "error": order["error"],
        })
        if not table["error"].any():
            table = table.drop(columns="error")
        lines.append(table.head(max_rows).to_string(index=False))
        if len(table) > max_rows:
            lines.append(f"... {len(table) - max_rows} more in whatchanged.csv")
    only = df[df["present_in"] != "both"]
    for r in only.head(max_rows).itertuples():
        lines.append(f"only in {r.present_in}: {r.product}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec3flow.whatchanged",
        description="What changed between two processings of the same program "
                    "(results directories, or any two directories of FITS products)")
    parser.add_argument("results_a", type=Path)
    parser.add_argument("results_b", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="writes whatchanged.csv and plots/ here")
    parser.add_argument("--n-plots", type=int, default=6, help="plot the N largest differences (default 6)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        df = what_changed(args.results_a, args.results_b, args.out, n_plots=args.n_plots)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    print(summary_text(df, args.results_a, args.results_b))
    print(f"table: {args.out / 'whatchanged.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
