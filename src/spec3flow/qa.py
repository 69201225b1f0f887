"""Quick-look plots and the program summary table for calwebb_spec3 products.

Public API
----------
``plot_product(path, png)``
    Write a PNG quick-look for one final spec3 product.  The plot type is
    chosen from the file-name suffix (``_x1d``, ``_c1d``, ``_s2d``, ``_s3d``,
    ``_crf``, ``_cal``) and, for other suffixes, from the ``DATAMODL`` primary
    header keyword.  Raises ``ValueError`` (naming the file) for anything else.

``summarize_products(paths) -> pandas.DataFrame``
    One row per product (columns documented in :data:`SUMMARY_COLUMNS` and in
    ``_summarize_one``).

``write_summary(paths, csv_path) -> pandas.DataFrame``
    ``summarize_products`` written atomically to CSV.

Everything except the s2d wavelength solution is read with
``astropy.io.fits`` (memory-mapped, lazily loaded HDUs) instead of opening full
datamodels: that is what makes a 1000-product summary fast.  The s2d
wavelength solution lives in the gWCS stored in the ASDF extension, so for s2d
products the datamodel is opened (once per product) to evaluate the WCS along
the central cross-dispersion row.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never open a window; must precede pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.io import fits  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "SUMMARY_COLUMNS",
    "SPEC3_STEPS",
    "plot_product",
    "product_kind",
    "product_suffix",
    "summarize_products",
    "write_summary",
]

# jwst DQ bits (stdatamodels.jwst.datamodels.dqflags.pixel); constants so the
# module imports without stdatamodels.
DO_NOT_USE = 1
OUTLIER = 16

SPEC_EXTNAMES = ("EXTRACT1D", "COMBINE1D")

#: suffix -> plot/summary kind
SUFFIX_KIND = {
    "x1d": "spec",
    "x1dints": "spec",
    "c1d": "spec",
    "s2d": "s2d",
    "s3d": "cube",
    "crf": "exposure",
    "cal": "exposure",
}

#: DATAMODL header value -> kind (fallback when the suffix is not known)
DATAMODEL_KIND = {
    "MultiSpecModel": "spec",
    "SpecModel": "spec",
    "TSOMultiSpecModel": "spec",
    "TSOSpecModel": "spec",
    "MRSMultiSpecModel": "spec",
    "MRSSpecModel": "spec",
    "WFSSMultiSpecModel": "spec",
    "WFSSSpecModel": "spec",
    "CombinedSpecModel": "spec",
    "MultiCombinedSpecModel": "spec",
    "WFSSMultiCombinedSpecModel": "spec",
    "IFUCubeModel": "cube",
    "MultiExposureModel": "exposure",
    "SlitModel": "exposure",
    "MultiSlitModel": "exposure",
}
# ImageModel/IFUImageModel (e.g. MIRI LRS / IFU _crf) are plotted only when the
# suffix says they are spec3 exposures: an unknown-suffix ImageModel is probably
# an imaging product (_i2d ...) and is rejected.

#: cal_step attributes touched by calwebb_spec3 (jwst 3.0.0), in pipeline order.
SPEC3_STEPS = (
    "assign_mtwcs",
    "master_background",
    "outlier_detection",
    "adaptive_trace_model",
    "pixel_replace",
    "resample",
    "cube_build",
    "extract_1d",
    "photom",
    "combine_1d",
    "spectral_leak",
)

# Fallback keyword map (jwst 3.0.0 core.schema) used if the schema walk fails.
_FALLBACK_CAL_STEP_KEYWORDS = {
    "S_MTWCS": "assign_mtwcs",
    "S_MSBSUB": "master_background",
    "S_OUTLIR": "outlier_detection",
    "S_TRCMOD": "adaptive_trace_model",
    "S_PXREPL": "pixel_replace",
    "S_RESAMP": "resample",
    "S_IFUCUB": "cube_build",
    "S_EXTR1D": "extract_1d",
    "S_PHOTOM": "photom",
    "S_COMB1D": "combine_1d",
    "S_SPLEAK": "spectral_leak",
}

#: Fixed leading columns of the summary table; ``step_<cal_step>`` columns follow.
SUMMARY_COLUMNS = [
    "product",
    "product_type",
    "source_id",
    "source_name",
    "exp_type",
    "instrument",
    "mode",
    "n_input_files",
    "n_input_origin",
    "n_spectra",
    "median_snr",
    "wavelength_min",
    "wavelength_max",
    "jwst_version",
    "crds_context",
    "error",
]

_SOURCE_RE = re.compile(r"_([sbv])(\d{9})(?:[_-]|$)")
_MAX_LINES = 12  # spectra drawn in one spectrum plot
_MAX_SLITS = 6  # panels drawn for a multi-slit s2d
_SNR_MAX_POINTS = 4_000_000  # subsample larger 2D/3D arrays for the median S/N


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #
def product_suffix(path: str | os.PathLike) -> str:
    """Return the jwst product suffix ('x1d', 's2d', ...) of a file name."""
    name = Path(path).name
    for ext in (".fits.gz", ".fits", ".fit", ".asdf"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return name.rsplit("_", 1)[-1].lower() if "_" in name else ""


def product_kind(path: str | os.PathLike, primary_header: fits.Header | None = None) -> str:
    """Return 'spec', 's2d', 'cube' or 'exposure'; ValueError if unsupported."""
    suffix = product_suffix(path)
    if suffix in SUFFIX_KIND:
        return SUFFIX_KIND[suffix]
    if primary_header is None:
        try:
            primary_header = fits.getheader(path, 0)
        except Exception as exc:  # not FITS at all
            raise ValueError(f"{path}: unsupported product (not a readable FITS file: {exc})") from exc
    model = str(primary_header.get("DATAMODL", "")).strip()
    kind = DATAMODEL_KIND.get(model)
    if kind == "exposure" and str(primary_header.get("S_RESAMP", "")).upper() == "COMPLETE":
        kind = "s2d"
    if kind is None:
        raise ValueError(
            f"{path}: unsupported product (suffix '_{suffix}', DATAMODL '{model or '?'}'); "
            f"supported suffixes: {', '.join('_' + s for s in SUFFIX_KIND)}"
        )
    return kind


def _hstr(header, key, default=""):
    val = header.get(key, default) if header is not None else default
    if val is None:
        return default
    return str(val).strip()


def _hint(header, key):
    val = header.get(key) if header is not None else None
    try:
        return int(val) if val is not None and str(val).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _source_from_name(path) -> int | None:
    m = _SOURCE_RE.search(Path(path).name)
    return int(m.group(2)) if m else None


def _to_micron(values: np.ndarray, unit: str | None) -> np.ndarray:
    """Convert a wavelength array to micron; unknown/empty unit -> assume micron."""
    unit = (unit or "").strip()
    if unit.lower() in ("", "um", "micron", "microns", "µm"):
        return values
    try:
        return (np.asarray(values) * u.Unit(unit)).to_value(u.micron)
    except Exception:
        log.debug("unknown wavelength unit %r; assuming micron", unit)
        return values


def _mode_string(h: fits.Header) -> str:
    parts = [_hstr(h, k) for k in ("GRATING", "FILTER", "PUPIL")]
    parts = [p for p in parts if p and p.upper() not in ("N/A", "NONE", "CLEAR")]
    chan, band = _hstr(h, "CHANNEL"), _hstr(h, "BAND")
    if chan:
        parts.append(f"ch{chan}" + (f" {band}" if band else ""))
    return " ".join(parts)


def _good_2d(data, err, dq):
    good = np.isfinite(data)
    if err is not None:
        good &= np.isfinite(err) & (err > 0)
    if dq is not None and dq.shape == data.shape:
        good &= (dq & DO_NOT_USE) == 0
    return good


def _median_snr(flux, err, dq=None) -> float:
    flux = np.asarray(flux, dtype=float).ravel()
    err = np.asarray(err, dtype=float).ravel()
    dq = None if dq is None else np.asarray(dq).ravel()
    if flux.size > _SNR_MAX_POINTS:  # deterministic subsample of huge cubes
        step = int(np.ceil(flux.size / _SNR_MAX_POINTS))
        flux, err = flux[::step], err[::step]
        dq = None if dq is None else dq[::step]
    good = _good_2d(flux, err, dq)
    if not good.any():
        return float("nan")
    return float(np.median(flux[good] / err[good]))


def _robust_limits(values, lo=1.0, hi=99.0):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    if a == b:
        a, b = a - 0.5 * (abs(a) or 1), b + 0.5 * (abs(b) or 1)
    return float(a), float(b)


def _title(path, h0, ext_h=None, extra=""):
    srcid = _hint(ext_h, "SOURCEID") if ext_h is not None else None
    if srcid is None:
        srcid = _source_from_name(path)
    name = _hstr(ext_h, "SRCNAME") if ext_h is not None else ""
    name = name or _hstr(h0, "TARGPROP") or _hstr(h0, "TARGNAME")
    src = []
    if srcid is not None:
        src.append(f"source {srcid}")
    if name:
        src.append(name)
    line2 = " | ".join(
        p
        for p in (
            " ".join(src),
            _hstr(h0, "EXP_TYPE"),
            f"{_hstr(h0, 'INSTRUME')} {_mode_string(h0)}".strip(),
            extra,
        )
        if p
    )
    return f"{Path(path).name}\n{line2}"


def _save_atomic(fig, png: Path) -> None:
    """Save ``fig`` to ``png`` via a temp file in the same directory + os.replace."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{png.name}.", suffix=".tmp.png", dir=png.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, png)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        plt.close(fig)


def _atomic_write_text(text: str, dest: Path) -> None:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# --------------------------------------------------------------------------- #
# spectra (x1d / c1d)
# --------------------------------------------------------------------------- #
@dataclass
class _Spectrum:
    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    dq: np.ndarray | None
    label: str
    wave_unit: str
    flux_unit: str
    quantity: str  # 'FLUX' or 'SURF_BRIGHT'
    source_id: int | None = None
    source_name: str = ""
    layout: str = "plain"  # 'plain' | 'wfss' (row = source) | 'tso' (median of ints)


def _col(data, cols, *names):
    for n in names:
        if n in cols:
            return n, np.asarray(data[n])
    return None, None


def _read_spectra(hdul) -> list[_Spectrum]:
    """All spectra of an x1d/c1d file, as 1D arrays (see module doc for rules).

    * plain x1d/c1d: one spectrum per EXTRACT1D/COMBINE1D extension;
    * WFSS (vector columns + SOURCE_ID): one spectrum per table row;
    * TSO (vector columns + INT_NUM): median over integrations.
    """
    spectra: list[_Spectrum] = []
    for hdu in hdul:
        if hdu.name not in SPEC_EXTNAMES or hdu.data is None:
            continue
        h, data = hdu.header, hdu.data
        cols = [c.upper() for c in data.columns.names]
        units = {c.name.upper(): (c.unit or "") for c in data.columns}
        if "WAVELENGTH" not in cols or "FLUX" not in cols:
            continue
        errname = "FLUX_ERROR" if "FLUX_ERROR" in cols else "ERROR"
        flux_name, flux = "FLUX", np.asarray(data["FLUX"], dtype=float)
        err = np.asarray(data[errname], dtype=float) if errname in cols else np.full_like(flux, np.nan)
        if not np.isfinite(flux).any() and "SURF_BRIGHT" in cols:
            sb = np.asarray(data["SURF_BRIGHT"], dtype=float)
            if np.isfinite(sb).any():
                flux_name, flux = "SURF_BRIGHT", sb
                _, err = _col(data, cols, "SB_ERROR")
                err = np.full_like(flux, np.nan) if err is None else np.asarray(err, float)
        wave = np.asarray(data["WAVELENGTH"], dtype=float)
        dq = np.array(data["DQ"], dtype=np.uint32) if "DQ" in cols else None
        wunit, funit = units.get("WAVELENGTH", ""), units.get(flux_name, "")

        base = []
        if _hstr(h, "SLTNAME"):
            base.append(_hstr(h, "SLTNAME"))
        srcid = _hint(h, "SOURCEID")
        srcname = _hstr(h, "SRCNAME")
        order = _hint(h, "SPORDER")

        if wave.ndim == 2 and "SOURCE_ID" in cols:  # WFSS: rows are sources
            sids = np.asarray(data["SOURCE_ID"])
            grp = _hstr(h, "EXPGRPID") or f"ext {hdu.ver}"
            for i in range(wave.shape[0]):
                lab = f"src {int(sids[i])}" + (f" ord {order}" if order is not None else "")
                spectra.append(
                    _Spectrum(wave[i], flux[i], err[i], None if dq is None else dq[i],
                              f"{lab} ({grp})", wunit, funit, flux_name, int(sids[i]), "", "wfss")
                )
            continue
        if wave.ndim == 2:  # TSO: rows are integrations -> median spectrum
            nint = wave.shape[0]
            with np.errstate(all="ignore"), _quiet_nan_warnings():
                wave1 = np.nanmedian(wave, axis=0)
                flux1 = np.nanmedian(flux, axis=0)
                err1 = np.nanmedian(err, axis=0)
            dq1 = None if dq is None else np.bitwise_and.reduce(dq, axis=0)
            lab = " ".join(base + ([f"order {order}"] if order is not None else []))
            lab = (lab + " " if lab else "") + f"median of {nint} ints"
            spectra.append(_Spectrum(wave1, flux1, err1, dq1, lab, wunit, funit, flux_name, srcid, srcname, "tso"))
            continue
        if srcid is not None:
            base.append(f"src {srcid}")
        if order is not None:
            base.append(f"order {order}")
        lab = " ".join(base) or f"{hdu.name} {hdu.ver}"
        spectra.append(_Spectrum(wave, flux, err, dq, lab, wunit, funit, flux_name, srcid, srcname))
    return spectra


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def _spectrum_good(s: _Spectrum) -> np.ndarray:
    good = np.isfinite(s.wave) & np.isfinite(s.flux)
    if s.dq is not None:
        good &= (s.dq & DO_NOT_USE) == 0
    return good


def _plot_spec(path: Path, png: Path) -> None:
    with fits.open(path, memmap=False) as hdul:
        h0 = hdul[0].header
        spectra = _read_spectra(hdul)
        first_ext = next((h.header for h in hdul if h.name in SPEC_EXTNAMES), None)
        if first_ext is None:
            raise ValueError(f"{path}: unsupported product (no EXTRACT1D/COMBINE1D table)")
        n_total = len(spectra)
        shown = spectra[:_MAX_LINES]
        extra = f"showing {len(shown)} of {n_total} spectra" if n_total > len(shown) else ""
        title = _title(path, h0, first_ext if n_total == 1 or len({s.source_id for s in spectra}) == 1 else None, extra)

    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    all_good_flux = []
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(shown):
        good = _spectrum_good(s)
        if not good.any():
            ax.plot([], [], color=cmap(i % 10), label=f"{s.label} (no valid points)")
            continue
        w = _to_micron(s.wave, s.wave_unit)
        f = np.where(good, s.flux, np.nan)
        e = np.where(good & np.isfinite(s.err), s.err, np.nan)
        order = np.argsort(np.where(np.isfinite(w), w, np.inf), kind="stable")
        w, f, e = w[order], f[order], e[order]
        color = cmap(i % 10)
        ax.fill_between(w, f - e, f + e, color=color, alpha=0.25 if len(shown) <= 3 else 0.1,
                        linewidth=0, step="mid")
        ax.plot(w, f, color=color, lw=0.8, drawstyle="steps-mid", label=s.label)
        all_good_flux.append(f[np.isfinite(f)])
    if all_good_flux and sum(a.size for a in all_good_flux):
        flux_all = np.concatenate(all_good_flux)
        lo, hi = _robust_limits(flux_all, 0.5, 99.5)
        # Keep lines (two or more pixels wide) in view; clip only lone one-pixel spikes.
        if flux_all.size > 1:
            pair_max = np.minimum(flux_all[:-1], flux_all[1:])
            pair_min = np.maximum(flux_all[:-1], flux_all[1:])
            lo, hi = min(lo, float(pair_min.min())), max(hi, float(pair_max.max()))
        pad = 0.15 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.text(0.5, 0.5, "no valid spectral points", transform=ax.transAxes, ha="center", va="center")
    quantity = shown[0].quantity if shown else "FLUX"
    funit = shown[0].flux_unit if shown else ""
    ax.set_xlabel("Wavelength (µm)")
    ax.set_ylabel(f"{quantity.replace('_', ' ').title()}" + (f" ({funit})" if funit else ""))
    ax.axhline(0, color="0.5", lw=0.5, ls=":")
    if shown:
        ax.legend(fontsize="small", loc="best", ncol=2 if len(shown) > 6 else 1,
                  title="shaded: ±1σ", title_fontsize="x-small")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    _save_atomic(fig, png)


# --------------------------------------------------------------------------- #
# 2D images (s2d / crf / cal)
# --------------------------------------------------------------------------- #
def _sci_hdus(hdul) -> list:
    return [h for h in hdul if h.name == "SCI" and h.data is not None and np.ndim(h.data) >= 2]


def _companion(hdul, name, ver):
    try:
        h = hdul[(name, ver)]
        return None if h.data is None else np.array(h.data)  # copy: outlives the file
    except (KeyError, IndexError):
        return None


def _imshow(ax, img, title=None, bunit=""):
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.6")  # NaN shown as gray
    vmin, vmax = _robust_limits(img, 1.0, 99.5)
    im = ax.imshow(np.ma.masked_invalid(img), origin="lower", aspect="auto", cmap=cmap,
                   vmin=vmin, vmax=vmax, interpolation="nearest")
    cb = ax.figure.colorbar(im, ax=ax, pad=0.01, fraction=0.04)
    if bunit:
        cb.set_label(bunit, fontsize="small")
    if title:
        ax.set_title(title, fontsize="small", loc="left")
    return im


def _s2d_wavelengths(path: Path, dispaxes: Sequence[int]) -> list[np.ndarray | None]:
    """Wavelength (µm) along the dispersion axis at the central cross-dispersion
    row of each slit (one per SCI extension, dispersion direction from the
    DISPAXIS header), from the gWCS.  None where unavailable."""
    out: list[np.ndarray | None] = [None] * len(dispaxes)
    try:
        from stdatamodels.jwst import datamodels

        with datamodels.open(str(path)) as model:
            slits = list(model.slits) if hasattr(model, "slits") and len(model.slits) else [model]
            for i, (slit, disp) in enumerate(zip(slits, dispaxes, strict=False)):
                try:
                    wcs = slit.meta.wcs
                    if wcs is None:
                        continue
                    ny, nx = slit.data.shape[-2:]
                    if disp == 2:
                        y = np.arange(ny, dtype=float)
                        x = np.full(ny, (nx - 1) / 2.0)
                    else:
                        x = np.arange(nx, dtype=float)
                        y = np.full(nx, (ny - 1) / 2.0)
                    lam = np.asarray(wcs(x, y)[-1], dtype=float)
                    if np.isfinite(lam).any():
                        out[i] = lam
                except Exception as exc:  # WCS evaluation problems are not fatal
                    log.debug("%s: no WCS wavelengths for slit %d: %s", path, i, exc)
    except Exception as exc:
        log.info("%s: could not evaluate the WCS (%s); plotting pixel axis", path, exc)
    return out


def _dispaxis(h, h0) -> int:
    return _hint(h, "DISPAXIS") or _hint(h0, "DISPAXIS") or 1


def _interp_extrap(x, xp, fp):
    """np.interp with linear extrapolation (secondary axes need finite values)."""
    x = np.asarray(x, dtype=float)
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y)


def _add_wave_axis(ax, lam: np.ndarray) -> bool:
    """Put a wavelength axis (µm) at the bottom; pixel axis moves to the top."""
    pix = np.arange(lam.size, dtype=float)
    ok = np.isfinite(lam)
    if ok.sum() < 2:
        return False
    p, l = pix[ok], lam[ok]
    if l[-1] < l[0]:
        p_w, l_w = p[::-1], l[::-1]
    else:
        p_w, l_w = p, l
    if np.any(np.diff(l_w) <= 0):  # not monotonic -> skip
        return False

    def pix2wave(x):
        return _interp_extrap(x, p, l)

    def wave2pix(w):
        return _interp_extrap(w, l_w, p_w)

    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("column (pixel)", fontsize="small")
    sec = ax.secondary_xaxis("bottom", functions=(pix2wave, wave2pix))
    sec.set_xlabel("Wavelength (µm) at central row")
    return True


def _plot_s2d(path: Path, png: Path) -> None:
    with fits.open(path, memmap=False) as hdul:
        h0 = hdul[0].header
        scis = _sci_hdus(hdul)
        if not scis:
            raise ValueError(f"{path}: unsupported product (no 2D SCI extension)")
        n_total = len(scis)
        panels = []
        for hdu in scis[:_MAX_SLITS]:
            img = np.array(hdu.data, dtype=float)
            if img.ndim > 2:  # multi-integration: median
                with _quiet_nan_warnings():
                    img = np.nanmedian(img.reshape(-1, *img.shape[-2:]), axis=0)
            panels.append((hdu.header.copy(), img))
    lams = _s2d_wavelengths(path, [_dispaxis(h, h0) for h, _ in panels])
    extra = f"showing {len(panels)} of {n_total} slits" if n_total > len(panels) else ""
    first_h = panels[0][0]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.2 + 2.0 * len(panels)),
                             layout="constrained", squeeze=False)
    for ax, (h, img), lam in zip(axes[:, 0], panels, lams, strict=True):
        disp = _dispaxis(h, h0)
        shown = img.T if disp == 2 else img  # dispersion always horizontal
        lab = " ".join(p for p in (_hstr(h, "SLTNAME"), f"src {_hint(h, 'SOURCEID')}"
                                   if _hint(h, "SOURCEID") is not None else "") if p)
        if disp == 2:
            lab += " (transposed: dispersion horizontal)"
        _imshow(ax, shown, lab, _hstr(h, "BUNIT"))
        ax.set_ylabel("cross-disp. (pixel)", fontsize="small")
        if lam is None or not _add_wave_axis(ax, lam):
            ax.set_xlabel("dispersion (pixel)  [no WCS wavelengths]", fontsize="small")
    fig.suptitle(_title(path, h0, first_h if n_total == 1 else None, extra), fontsize="medium")
    _save_atomic(fig, png)


def _block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return mask
    ny, nx = mask.shape
    py, px = (-ny) % factor, (-nx) % factor
    m = np.pad(mask, ((0, py), (0, px)))
    return m.reshape(m.shape[0] // factor, factor, m.shape[1] // factor, factor).any(axis=(1, 3))


def _plot_exposure(path: Path, png: Path) -> None:
    with fits.open(path, memmap=False) as hdul:
        h0 = hdul[0].header
        scis = _sci_hdus(hdul)
        if not scis:
            raise ValueError(f"{path}: unsupported product (no SCI image extension)")
        hdu = scis[0]
        h = hdu.header.copy()
        img = np.array(hdu.data, dtype=float)
        dq = _companion(hdul, "DQ", hdu.ver)
        n_exp = len(scis)
    if img.ndim > 2:
        with _quiet_nan_warnings():
            img = np.nanmedian(img.reshape(-1, *img.shape[-2:]), axis=0)
        if dq is not None and dq.ndim > 2:
            dq = np.bitwise_or.reduce(dq.reshape(-1, *dq.shape[-2:]), axis=0)
    if dq is None or dq.shape != img.shape:
        dq = np.zeros(img.shape, dtype=np.uint32)
    outlier = (dq & OUTLIER) != 0
    dnu = ((dq & DO_NOT_USE) != 0) & ~outlier

    aspect = img.shape[1] / max(img.shape[0], 1)
    height = 4.0 if aspect > 3 else 8.0
    fig, ax = plt.subplots(figsize=(11, height), layout="constrained")
    _imshow(ax, img, None, _hstr(h, "BUNIT"))
    # overlay masks, max-pooled so single pixels survive display downsampling
    factor = int(np.ceil(max(img.shape) / 1000))
    extent = (-0.5, img.shape[1] - 0.5 + (-img.shape[1]) % factor,
              -0.5, img.shape[0] - 0.5 + (-img.shape[0]) % factor)
    for mask, rgba in ((dnu, (0.2, 0.6, 1.0, 0.55)), (outlier, (1.0, 0.0, 0.0, 0.95))):
        m = _block_any(mask, factor)
        if m.any():
            over = np.zeros((*m.shape, 4))
            over[m] = rgba
            ax.imshow(over, origin="lower", aspect="auto", interpolation="nearest", extent=extent)
    n_out = int(outlier.sum())
    if 0 < n_out <= 5000:  # circle outliers so single pixels stay visible
        oy, ox = np.nonzero(outlier)
        ax.scatter(ox, oy, s=40, facecolors="none", edgecolors="red", linewidths=1.0)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(-0.5, img.shape[0] - 0.5)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    handles = [
        Patch(color=(1.0, 0.0, 0.0), label=f"OUTLIER (circled): {n_out} px"),
        Patch(color=(0.2, 0.6, 1.0, 0.55), label=f"DO_NOT_USE (other): {int(dnu.sum())} px"),
        Patch(color="0.6", label="NaN"),
    ]
    ax.legend(handles=handles, fontsize="small", loc="upper right", framealpha=0.8)
    extra = "exposure 1" + (f" of {n_exp} (SCI extensions)" if n_exp > 1 else "")
    if _hstr(h, "SLTNAME"):
        extra += f", slit {_hstr(h, 'SLTNAME')}"
    ax.set_title(_title(path, h0, h, extra), fontsize="medium")
    _save_atomic(fig, png)


# --------------------------------------------------------------------------- #
# IFU cubes (s3d)
# --------------------------------------------------------------------------- #
def _cube_wavelengths(hdul, nwave: int) -> np.ndarray:
    sci_h = hdul["SCI"].header
    ctype = _hstr(sci_h, "CTYPE3").upper()
    unit = _hstr(sci_h, "CUNIT3") or "um"
    if ctype.startswith("WAVE-TAB") or "WCS-TABLE" in hdul:
        try:
            tab = hdul["WCS-TABLE"].data
            name = [n for n in tab.columns.names if n.lower() == "wavelength"][0]
            lam = np.asarray(tab[name], dtype=float).ravel()
            if lam.size == nwave:
                tunit = tab.columns[name].unit or unit
                return _to_micron(lam, tunit)
        except (KeyError, IndexError):
            pass
    crval, cdelt, crpix = (sci_h.get(k) for k in ("CRVAL3", "CDELT3", "CRPIX3"))
    if cdelt is None:
        cdelt = sci_h.get("CD3_3") or sci_h.get("PC3_3")
    if crval is None or cdelt is None:
        return np.arange(nwave, dtype=float) * np.nan
    crpix = 1.0 if crpix is None else crpix
    return _to_micron(crval + (np.arange(nwave) + 1 - crpix) * cdelt, unit)


def _plot_cube(path: Path, png: Path) -> None:
    with fits.open(path, memmap=False) as hdul:
        h0 = hdul[0].header
        if "SCI" not in hdul or hdul["SCI"].data is None or hdul["SCI"].data.ndim != 3:
            raise ValueError(f"{path}: unsupported product (no 3D SCI cube)")
        sci_h = hdul["SCI"].header.copy()
        cube = np.array(hdul["SCI"].data, dtype=np.float32)
        err = _companion(hdul, "ERR", hdul["SCI"].ver)
        dq = _companion(hdul, "DQ", hdul["SCI"].ver)
        lam = _cube_wavelengths(hdul, cube.shape[0])
    if dq is not None and dq.shape == cube.shape:
        cube = np.where((dq & DO_NOT_USE) != 0, np.nan, cube)
    with _quiet_nan_warnings():
        white = np.nanmedian(cube, axis=0)
        coverage = np.isfinite(cube).mean(axis=0)
    cand = np.where(coverage >= 0.5 * coverage.max(), white, np.nan) if coverage.max() > 0 else white * np.nan
    fig, (ax_img, ax_sp) = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained",
                                        gridspec_kw={"width_ratios": [1, 1.6]})
    bunit = _hstr(sci_h, "BUNIT")
    _imshow(ax_img, white, "white light (nanmedian over wavelength)", bunit)
    ax_img.set_aspect("equal")
    ax_img.set_xlabel("x (spaxel)")
    ax_img.set_ylabel("y (spaxel)")
    if np.isfinite(cand).any():
        iy, ix = np.unravel_index(np.nanargmax(cand), cand.shape)
        ax_img.plot(ix, iy, marker="+", color="red", ms=14, mew=2)
        spec = cube[:, iy, ix].astype(float)
        e = err[:, iy, ix].astype(float) if err is not None and err.shape == cube.shape else None
        good = np.isfinite(spec) & np.isfinite(lam)
        if e is not None:
            ax_sp.fill_between(lam, np.where(good, spec - e, np.nan), np.where(good, spec + e, np.nan),
                               color="C0", alpha=0.25, linewidth=0, step="mid", label="±1σ")
        ax_sp.plot(lam, np.where(good, spec, np.nan), color="C0", lw=0.8, drawstyle="steps-mid",
                   label=f"spaxel (x={ix}, y={iy})")
        if good.any():
            lo, hi = _robust_limits(spec[good], 0.5, 99.5)
            pad = 0.15 * (hi - lo)
            ax_sp.set_ylim(lo - pad, hi + pad)
        ax_sp.legend(fontsize="small")
        ax_sp.set_title("brightest spaxel (red +)", fontsize="small", loc="left")
    else:
        ax_sp.text(0.5, 0.5, "no valid spaxels", transform=ax_sp.transAxes, ha="center")
    ax_sp.set_xlabel("Wavelength (µm)")
    ax_sp.set_ylabel("Surface brightness" + (f" ({bunit})" if bunit else ""))
    ax_sp.grid(alpha=0.3)
    fig.suptitle(_title(path, h0, sci_h), fontsize="medium")
    _save_atomic(fig, png)


# --------------------------------------------------------------------------- #
# public plotting entry point
# --------------------------------------------------------------------------- #
_PLOTTERS = {"spec": _plot_spec, "s2d": _plot_s2d, "cube": _plot_cube, "exposure": _plot_exposure}


def plot_product(path: str | os.PathLike, png: str | os.PathLike) -> Path:
    """Write a quick-look PNG of one spec3 product; returns the PNG path.

    The PNG is written atomically (temp file in the same directory, then
    ``os.replace``), so a failure never leaves a half-written file.
    Raises ``ValueError`` naming the file for unsupported/unreadable products.
    """
    path, png = Path(path), Path(png)
    if not path.exists():
        raise FileNotFoundError(path)
    kind = product_kind(path)
    try:
        _PLOTTERS[kind](path, png)
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: cannot plot {kind} product: {exc}") from exc
    except OSError as exc:  # astropy raises OSError for non-FITS input
        raise ValueError(f"{path}: cannot plot {kind} product: {exc}") from exc
    return png


# --------------------------------------------------------------------------- #
# summary table
# --------------------------------------------------------------------------- #
@lru_cache(maxsize=1)
def _cal_step_keywords() -> dict[str, str]:
    """FITS keyword -> cal_step attribute, from the installed core schema."""
    try:
        from stdatamodels.jwst.datamodels import JwstDataModel
        from stdatamodels.schema import walk_schema

        found: dict[str, str] = {}

        def cb(sub, path, combiner, ctx, recurse):
            if (isinstance(sub, dict) and "fits_keyword" in sub and len(path) == 3
                    and path[0] == "meta" and path[1] == "cal_step"):
                found[sub["fits_keyword"]] = path[2]

        with JwstDataModel() as m:
            walk_schema(m.schema, cb)
        if found:
            return found
    except Exception as exc:  # pragma: no cover - fallback only
        log.debug("cal_step schema walk failed: %s", exc)
    return dict(_FALLBACK_CAL_STEP_KEYWORDS)


def _step_columns(h0: fits.Header) -> dict[str, str]:
    out = {}
    for kw, name in _cal_step_keywords().items():
        if kw in h0:
            out[f"step_{name}"] = _hstr(h0, kw)
    return out


def _n_inputs(hdul, kind, suffix, spectra, n_sci) -> tuple[int | None, str]:
    """Number of exposures that went into the product and where it came from."""
    h0 = hdul[0].header
    if "HDRTAB" in hdul and hdul["HDRTAB"].data is not None:
        # model_blender metadata table: one row per input exposure (resample_spec
        # s2d, cube_build s3d with blendheaders=True)
        return len(hdul["HDRTAB"].data), "HDRTAB rows"
    if kind == "spec" and any(s.layout == "wfss" for s in spectra):
        # WFSS x1d: one EXTRACT1D extension per exposure
        n = sum(1 for h in hdul if h.name == "EXTRACT1D")
        if n:
            return n, "EXTRACT1D extensions (WFSS: one per exposure)"
    ndriz = _hint(h0, "NDRIZ")
    if ndriz:
        # meta.resample.pointings: number of exposure groups resampled; copied
        # into x1d/c1d primary headers from the s2d
        return ndriz, "NDRIZ (meta.resample.pointings)"
    if suffix == "c1d" or any(h.name == "COMBINE1D" for h in hdul):
        vals = [np.nanmax(h.data["N_INPUT"]) for h in hdul
                if h.name == "COMBINE1D" and h.data is not None and "N_INPUT" in h.data.columns.names
                and np.isfinite(h.data["N_INPUT"]).any()]
        if vals:
            return int(max(vals)), "max N_INPUT (combine_1d)"
    if kind == "exposure":
        if str(h0.get("DATAMODL", "")).strip() == "MultiExposureModel":
            return n_sci, "SCI extensions (MultiExposureModel)"
        return 1, "single exposure"
    return None, "unknown"


def _summarize_one(path: Path, use_wcs: bool = True) -> dict:
    """One summary row (see SUMMARY_COLUMNS):

    product        file name
    product_type   suffix (x1d, c1d, s2d, s3d, crf, cal)
    source_id      SOURCEID of the first spectrum/SCI extension (None when a
                   file holds several sources, e.g. WFSS); fallback: the
                   ``_s000000123`` field of the file name
    source_name    SRCNAME (extension) -> TARGPROP -> TARGNAME (primary)
    exp_type, instrument   EXP_TYPE, INSTRUME; mode = GRATING FILTER PUPIL chN BAND
    n_input_files  see ``_n_inputs``; ``n_input_origin`` says which source
    n_spectra      spectra (x1d/c1d), SCI extensions (2D), 1 for cubes
    median_snr     median(FLUX/FLUX_ERROR) [c1d: ERROR] over finite points with
                   err>0 and DQ without DO_NOT_USE; 2D/3D: median(SCI/ERR) same mask
    wavelength_min/max  µm; spectra: WAVELENGTH column over valid flux points;
                   s3d: spectral WCS of planes with data; s2d: gWCS at the central
                   row (``use_wcs``); cal/crf: WAVELENGTH extension if present
    jwst_version   CAL_VER; crds_context CRDS_CTX
    step_*         every S_* cal_step keyword present in the primary header
    """
    row: dict = {c: None for c in SUMMARY_COLUMNS}
    row["product"] = path.name
    row["product_type"] = product_suffix(path)
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        h0 = hdul[0].header
        kind = product_kind(path, h0)
        row.update(
            exp_type=_hstr(h0, "EXP_TYPE") or None,
            instrument=_hstr(h0, "INSTRUME") or None,
            mode=_mode_string(h0) or None,
            jwst_version=_hstr(h0, "CAL_VER") or None,
            crds_context=_hstr(h0, "CRDS_CTX") or None,
        )
        srcid, srcname = None, ""
        spectra: list[_Spectrum] = []
        n_sci = 0
        wmin = wmax = np.nan
        snr = np.nan
        if kind == "spec":
            spectra = _read_spectra(hdul)
            row["n_spectra"] = len(spectra)
            ids = {s.source_id for s in spectra if s.source_id is not None}
            srcid = ids.pop() if len(ids) == 1 else None
            names = {s.source_name for s in spectra if s.source_name}
            srcname = names.pop() if len(names) == 1 else ""
            if spectra:
                flux = np.concatenate([s.flux.ravel() for s in spectra])
                err = np.concatenate([s.err.ravel() for s in spectra])
                dq = None
                if all(s.dq is not None for s in spectra):
                    dq = np.concatenate([s.dq.ravel() for s in spectra])
                snr = _median_snr(flux, err, dq)
                waves = []
                for s in spectra:
                    good = _spectrum_good(s)
                    if not good.any():
                        good = np.isfinite(s.wave)
                    waves.append(_to_micron(s.wave[good], s.wave_unit))
                w = np.concatenate(waves) if waves else np.array([])
                if w.size:
                    wmin, wmax = float(np.min(w)), float(np.max(w))
        else:
            scis = _sci_hdus(hdul)
            n_sci = len(scis)
            row["n_spectra"] = n_sci
            if scis:
                h1 = scis[0].header
                srcid = _hint(h1, "SOURCEID")
                srcname = _hstr(h1, "SRCNAME")
                if n_sci > 1:
                    ids = {_hint(s.header, "SOURCEID") for s in scis}
                    srcid = ids.pop() if len(ids) == 1 else None
            f_all, e_all, d_all = [], [], []
            for s in scis:
                data = np.asarray(s.data)
                e = _companion(hdul, "ERR", s.ver)
                d = _companion(hdul, "DQ", s.ver)
                if e is None or e.shape != data.shape:
                    continue
                f_all.append(data.ravel())
                e_all.append(e.ravel())
                d_all.append(d.ravel() if d is not None and d.shape == data.shape
                             else np.zeros(data.size, np.uint32))
            if f_all:
                snr = _median_snr(np.concatenate(f_all), np.concatenate(e_all), np.concatenate(d_all))
            if kind == "cube" and scis:
                data = scis[0].data
                lam = _cube_wavelengths(hdul, data.shape[0])
                with _quiet_nan_warnings():
                    has = np.isfinite(data).any(axis=(1, 2)) & np.isfinite(lam)
                if has.any():
                    wmin, wmax = float(lam[has].min()), float(lam[has].max())
            elif kind == "s2d" and scis and use_wcs:
                lams = [x for x in _s2d_wavelengths(path, [_dispaxis(sh.header, h0) for sh in scis])
                        if x is not None]
                if lams:
                    w = np.concatenate(lams)
                    w = w[np.isfinite(w)]
                    if w.size:
                        wmin, wmax = float(w.min()), float(w.max())
            elif kind == "exposure":
                ws = []
                for s in scis:
                    wl = _companion(hdul, "WAVELENGTH", s.ver)
                    if wl is not None:
                        wl = wl[np.isfinite(wl) & (wl > 0)]
                        if wl.size:
                            ws.append(wl)
                if ws:
                    w = np.concatenate(ws)
                    wmin, wmax = float(w.min()), float(w.max())
        if srcid is None and kind != "spec":
            srcid = _source_from_name(path)
        elif srcid is None and len({s.source_id for s in spectra}) <= 1:
            srcid = _source_from_name(path)
        row["source_id"] = srcid
        row["source_name"] = srcname or _hstr(h0, "TARGPROP") or _hstr(h0, "TARGNAME") or None
        n, origin = _n_inputs(hdul, kind, row["product_type"], spectra, n_sci)
        row["n_input_files"], row["n_input_origin"] = n, origin
        row["median_snr"] = snr
        row["wavelength_min"], row["wavelength_max"] = wmin, wmax
        row.update(_step_columns(h0))
    return row


def _ordered_step_columns(cols: Iterable[str]) -> list[str]:
    cols = [c for c in cols if c.startswith("step_")]
    first = [f"step_{s}" for s in SPEC3_STEPS if f"step_{s}" in cols]
    rest = sorted(c for c in cols if c not in first)
    return first + rest


def _summary_row(path: str | os.PathLike, use_wcs: bool = True) -> dict:
    """A product's row; one that cannot be read says why in ``error``."""
    p = Path(path)
    try:
        return _summarize_one(p, use_wcs=use_wcs)
    except Exception as exc:
        log.warning("summary: %s: %s", p, exc)
        return {"product": p.name, "product_type": product_suffix(p), "error": f"{type(exc).__name__}: {exc}"}


def summarize_products(paths: Sequence[str | os.PathLike], use_wcs: bool = True,
                       jobs: int = 1) -> pd.DataFrame:
    """Summary table, one row per product (see ``_summarize_one`` for columns).

    A product that cannot be read still gets a row, with the reason in the
    ``error`` column, so one broken file never hides the rest of the program.
    ``use_wcs=False`` skips the gWCS evaluation of s2d products (the only
    place a full datamodel is opened); their wavelength range is then NaN.
    ``jobs`` > 1 reads products in that many forked processes: the summary is the
    run's last job, and opening every s2d's gWCS one after another (~0.25 s each) made
    it the longest job of a 50-source run.
    """
    row = functools.partial(_summary_row, use_wcs=use_wcs)
    jobs = min(jobs, os.cpu_count() or 1)  # a cluster run's core count is not this machine's
    if jobs > 1 and len(paths) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(paths)), mp_context=multiprocessing.get_context("fork")) as pool:
            rows = list(pool.map(row, paths, chunksize=max(1, len(paths) // (4 * jobs))))
    else:
        rows = [row(p) for p in paths]
    df = pd.DataFrame(rows)
    for c in SUMMARY_COLUMNS:
        if c not in df.columns:
            df[c] = None
    # always present, even if no product recorded them
    for s in SPEC3_STEPS:
        if f"step_{s}" not in df.columns:
            df[f"step_{s}"] = None
    df = df[SUMMARY_COLUMNS + _ordered_step_columns(df.columns)]
    steps = [c for c in df.columns if c.startswith("step_")]
    df[steps] = df[steps].astype(object).where(df[steps].notna(), None)
    df["source_id"] = pd.array(df["source_id"], dtype="Int64")
    df["n_input_files"] = pd.array(df["n_input_files"], dtype="Int64")
    df["n_spectra"] = pd.array(df["n_spectra"], dtype="Int64")
    for c in ("median_snr", "wavelength_min", "wavelength_max"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df.sort_values(["product_type", "product"], kind="stable").reset_index(drop=True)


def write_summary(paths: Sequence[str | os.PathLike], csv_path: str | os.PathLike,
                  use_wcs: bool = True, jobs: int = 1) -> pd.DataFrame:
    """Write the summary table to ``csv_path`` atomically; returns the DataFrame."""
    df = summarize_products(paths, use_wcs=use_wcs, jobs=jobs)
    _atomic_write_text(df.to_csv(index=False, float_format="%.6g"), Path(csv_path))
    return df


def main(argv: Sequence[str] | None = None, allow_remote: bool = True) -> int:
    """``python -m spec3flow.qa plot IN PNG [IN PNG ...]`` | ``python -m spec3flow.qa summary CSV IN...``"""
    import argparse
    import sys

    if allow_remote:  # a quick-look job forks from the warm server when one is running
        from spec3flow import warm

        code = warm.run_remote(list(sys.argv[1:] if argv is None else argv), module="spec3flow.qa")
        if code is not None:
            return code

    ap = argparse.ArgumentParser(prog="python -m spec3flow.qa", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p1 = sub.add_parser("plot", help="one PNG per product: pairs of product and PNG path")
    p1.add_argument("pairs", type=Path, nargs="+", metavar="PRODUCT PNG")
    p2 = sub.add_parser("summary")
    p2.add_argument("csv", type=Path)
    p2.add_argument("products", type=Path, nargs="+")
    p2.add_argument("--no-wcs", action="store_true", help="skip s2d gWCS wavelength evaluation")
    p2.add_argument("--jobs", type=int, default=1, help="read products in this many processes")
    args = ap.parse_args(argv)
    if args.cmd == "plot":
        if len(args.pairs) % 2:
            ap.error("plot: give PRODUCT PNG pairs")
        for product, png in zip(args.pairs[::2], args.pairs[1::2]):
            plot_product(product, png)
    else:
        write_summary(args.products, args.csv, use_wcs=not args.no_wcs, jobs=args.jobs)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
