"""Synthetic Stage 2 products for NIRISS SOSS (``NIS_SOSS``, non-TSO) and the matching
synthetic SOSS reference files (PASTASOSS, SPECPROFILE, SPECKERNEL, PHOTOM).

:func:`generate_soss` writes what calwebb_spec2 leaves for calwebb_spec3 from one
non-TSO SOSS exposure: a ``CubeModel`` ``*_nis_cal.fits`` (one plane per integration,
``int_times`` table, DN/s, i.e. not flux calibrated: for SOSS, photom is applied to the
extracted spectra, not to the image) plus truth CSVs.

==========================================  ===  ===========================================
file                                        obs  content
==========================================  ===  ===========================================
jw01234020001_03101_00001_nis_cal.fits      020  SUBSTRIP96 (96 x 2048), ``nints`` (3) planes
soss_truth_spectrum.csv                          per order and column: x, wavelength, trace
                                                 row, counts (DN/s), flux (MJy)
soss_truth_badpix.csv                            DO_NOT_USE pixels (all / one integration)
soss_truth_exposures.csv                         one row per exposure
==========================================  ===  ===========================================

Set-up: GR700XD + CLEAR, ``SUBARRAY='SUBSTRIP96'`` (what ``extract_1d`` supports besides
SUBSTRIP256; SUBSTRIP96 is the smallest), ``PWCPOS`` = :data:`PWCPOS` (inside the
PASTASOSS ``pwcpos_bounds``), ``TSOVISIT=F`` -> jwst's Level 3 rule
``Asn_Lv3SlitlessSpectral``.  The data must be 2048 columns wide: PASTASOSS wavemaps are
``soss_xdim`` (2048) wide and jwst hard-codes the SUBSTRIP96 order-2 box weights as
``np.ones((96, 2048))``.

Geometry (shared by data and reference files; see :func:`reference_traces`):

- reference traces (PASTASOSS ``traces``, SUBSTRIP256 coordinates, at the commanded
  pupil wheel position :data:`PWCPOS_CMD`): order 1 ``y = 55 + 6u + 5u^2``
  (``u = (x - 1024)/1024``), order 2 ``y = 76 + 0.06 x``; jwst subtracts 10 rows for
  SUBSTRIP96 and rotates by ``PWCPOS - PWCPOS_CMD`` degrees about (``pivot_x``,
  ``pivot_y``); :func:`soss_traces` reproduces that (same formulas as
  ``jwst.extract_1d.soss_extract.pastasoss._get_soss_traces``).  In SUBSTRIP96 order 1
  runs at rows ~42-56; order 2 enters at row ~67 in column 0, 24 px from order 1 and
  just outside its +-20 px box, and leaves the subarray near column 475 (as on the
  real detector only the red end of order 2 is on SUBSTRIP96);
- wavelengths (PASTASOSS ``wavecal_models``, a degree-1 polynomial with no pupil-wheel
  term): order 1 ``2.85 - 2.0 x/2048`` um, order 2 ``1.40 - 0.8 x/2048`` um (wavelength
  decreases with x, as jwst's wave map code requires);
- spatial profile: pixel-integrated 80% Gaussian (sigma :data:`PROFILE_SIGMA` = 2 px)
  + 20% Lorentzian (gamma 5 px) about the (rotated) trace; SPECPROFILE holds the same
  profile at the commanded position.  The wings put order-2 light into the order-1 box:
  :func:`order2_contamination` (3.9% at column 0, 1% at column ~55, 0.1% mean over
  0.9-2.75 um) is what a box extraction without ATOCA decontamination over-estimates
  order 1 by; the truth CSV lists it per column;
- counts: column total of order k is ``C_k(x) = K T_k(lam) lam F(lam) |dlam_k/dx|`` --
  ATOCA's forward model (throughput x wavelength x spectrum, integrated over the pixel),
  so both orders are consistent with one spectrum ``F``; ``T_k`` are the PASTASOSS
  throughputs (:func:`throughput`);
- PHOTOM (``NisSossPhotomModel``): ``photmj_k * relresponse_k(lam) = F / (C_k *
  box_fraction_k)`` (the 40 px box holds 96.9% of order 1's light), so the calibrated
  box extraction of order 1 returns the truth ``F`` in MJy (:func:`truth_flux_mjy`) up
  to order-2 contamination.  Order 2 is not meaningful in SUBSTRIP96 (jwst's order-2 box
  is the whole column, order 1 included).

Noise: Poisson + read noise per integration (``common.make_noise``, truth variances);
no sky background (spec3 SOSS does no background subtraction by default).  DQ:
reference-pixel columns 0-3 and 2044-2047 (``REFERENCE_PIXEL|DO_NOT_USE``, NaN), a few pixels
DO_NOT_USE in every integration away from the order-1 box (hot pixels) and a few per
integration on the order-1 trace (DO_NOT_USE|SATURATED, NaN: jwst infills them from the
other integrations).

Level 3 association jwst makes from these headers (``spec3flow.associations``):
``jw01234-o020_spec3_00001_asn`` -> product ``jw01234-o020_t001_niriss_clear-gr700xd-substrip96``;
Spec3Pipeline writes ``<product>_x1d.fits`` (photom output, TSOMultiSpecModel, MJy)
and ``<product>_c1d.fits`` (combine_1d over integrations).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .common import (
    DEFAULT_PROGRAM,
    ExposureId,
    TargetInfo,
    fill_exposure_meta,
    make_noise,
    make_rng,
    save_model_fast,
    set_cal_steps,
    write_csv,
)

__all__ = [
    "NX",
    "NY",
    "OBSERVATION",
    "ORDERS",
    "PWCPOS",
    "PWCPOS_CMD",
    "PWCPOS_BOUNDS",
    "SossGeometry",
    "build_pastasoss_model",
    "build_photom_model",
    "build_speckernel_model",
    "build_specprofile_model",
    "box_fraction",
    "box_weights",
    "column_counts",
    "generate_soss",
    "order2_contamination",
    "order_wavelength",
    "profile_image",
    "reference_traces",
    "soss_traces",
    "throughput",
    "truth_flux_mjy",
    "write_reference_file",
]

# ----------------------------------------------------------------------------- set-up
NX = 2048  # columns (soss_xdim): must be 2048, see module docstring
NY = 96  # SUBSTRIP96 rows
SUBSTRT2 = 1803  # 1-based first full-frame row of SUBSTRIP96 (real value)
OBSERVATION = "020"
ORDERS = (1, 2)
PWCPOS_CMD = 245.76  # commanded pupil wheel position, deg (real value)
PWCPOS_BOUNDS = (245.51, 246.01)
PWCPOS = 245.79  # PWCPOS of the synthetic exposure (0.03 deg off the commanded one)
PIVOT = (1877.0, 211.0)  # rotation point of both traces (synthetic)
SUBSTRIP96_OFFSET = 10.0  # rows jwst subtracts from SUBSTRIP256 traces for SUBSTRIP96
PROFILE_SIGMA = 2.0  # px, Gaussian core
PROFILE_WING_GAMMA = 5.0  # px, Lorentzian wing half width
PROFILE_WING_FRACTION = 0.2  # of the column total in the wing
SOSS_WIDTH = 40.0  # extract_1d soss_width default (box full width, px)
REF_COLUMNS = (0, 1, 2, 3, 2044, 2045, 2046, 2047)
# wavelength solution lam = c0 + c1 * x / NX (um)
WAVECAL = {1: (2.85, -2.0), 2: (1.40, -0.8)}
TRACE_CUTOFF = {1: 2048, 2: 1783}  # PASTASOSS traces[].cutoff (columns modelled)
ORDER2_SEPARATION_CUTOFF = (0.77, 0.95)
COUNTS_SCALE = 2.7e14  # K: DN/s per (throughput * um * MJy * um)
GAIN = 1.61  # e-/DN
READ_NOISE_E = 12.0
FRAME_TIME = 2.2139  # SUBSTRIP96 frame time, s
NGROUPS = 20
NINTS = 3
START_MJD = 60600.25
TARGET = TargetInfo(proposer_name="SOSS-STAR", catalog_name="SOSS-STAR", ra=261.2125,
                    dec=-12.6833, source_type="POINT", target_id=1)
# photom / throughput / kernel grids
PHOTOM_NELEM = 461
PHOTOM_RANGE = {1: (0.80, 2.95), 2: (0.55, 1.50)}
PHOTOM_LAM_REF = {1: 1.6, 2: 0.9}
KERNEL_OS = 5
KERNEL_HALFWIDTH = 3
KERNEL_SIGMA = 0.7  # px
KERNEL_WAVES = np.round(np.linspace(0.5, 3.0, 26), 6)


@dataclass(frozen=True)
class SossGeometry:
    """Trace of one order in the subarray: columns, rows (0-based) and wavelengths."""

    order: int
    x: np.ndarray
    y: np.ndarray
    wavelength: np.ndarray


# ------------------------------------------------------------------------- geometry
def order_wavelength(order: int, x) -> np.ndarray:
    """Wavelength (um) of column ``x`` for ``order`` (independent of PWCPOS)."""
    c0, c1 = WAVECAL[int(order)]
    return c0 + c1 * np.asarray(x, dtype=float) / NX


def order_dispersion(order: int) -> float:
    """|d lambda / d x| in um per pixel."""
    return abs(WAVECAL[int(order)][1]) / NX


def reference_traces() -> dict[int, np.ndarray]:
    """PASTASOSS reference traces: order -> (N, 2) array of (x, y) in SUBSTRIP256 rows."""
    x = np.arange(NX, dtype=np.float64)
    u = (x - 1024.0) / 1024.0
    return {
        1: np.stack([x, 55.0 + 6.0 * u + 5.0 * u**2], axis=1),
        2: np.stack([x, 76.0 + 0.06 * x], axis=1),
    }


def soss_traces(pwcpos: float = PWCPOS, subarray: str = "SUBSTRIP96") -> dict[int, SossGeometry]:
    """Traces jwst computes for ``pwcpos``: the reference trace shifted for SUBSTRIP96,
    rotated by ``pwcpos - PWCPOS_CMD`` about :data:`PIVOT`, resampled on the original
    columns (what ``pastasoss._get_soss_traces`` does)."""
    from scipy.interpolate import interp1d

    out = {}
    angle = math.radians(pwcpos - PWCPOS_CMD)
    c, s = math.cos(angle), math.sin(angle)
    for order, tr in reference_traces().items():
        x, y = tr[:, 0].copy(), tr[:, 1].copy()
        if subarray == "SUBSTRIP96":
            y -= SUBSTRIP96_OFFSET
        dx, dy = x - PIVOT[0], y - PIVOT[1]
        x_new = c * dx - s * dy + PIVOT[0]
        y_new = s * dx + c * dy + PIVOT[1]
        y_new = interp1d(x_new, y_new, fill_value="extrapolate")(x)
        keep = y_new <= 255.0
        out[order] = SossGeometry(order, x[keep], y_new[keep], order_wavelength(order, x[keep]))
    return out


def _pixel_profile(rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Pixel-integrated (1-w) Gaussian(sigma) + w Lorentzian(gamma) about ``centre``."""
    from scipy.special import erf

    k = 1.0 / (math.sqrt(2.0) * PROFILE_SIGMA)
    hi = rows[:, None] + 0.5 - centre[None, :]
    lo = rows[:, None] - 0.5 - centre[None, :]
    gauss = 0.5 * (erf(hi * k) - erf(lo * k))
    lorentz = (np.arctan(hi / PROFILE_WING_GAMMA) - np.arctan(lo / PROFILE_WING_GAMMA)) / math.pi
    return (1.0 - PROFILE_WING_FRACTION) * gauss + PROFILE_WING_FRACTION * lorentz


def box_fraction(order: int) -> float:
    """Fraction of a column's light inside jwst's SOSS box (``soss_width`` px centred on
    the trace) on an unbounded detector: 1 for order 2 (SUBSTRIP96: jwst's order-2 box
    is the whole column; the fraction of order 2 on the subarray is *not* corrected)."""
    if int(order) != 1:
        return 1.0
    from scipy.special import erf

    h = SOSS_WIDTH / 2.0
    g = erf(h / (math.sqrt(2.0) * PROFILE_SIGMA))
    lz = 2.0 / math.pi * math.atan(h / PROFILE_WING_GAMMA)
    return (1.0 - PROFILE_WING_FRACTION) * g + PROFILE_WING_FRACTION * lz


def profile_image(order: int, pwcpos: float = PWCPOS, ny: int = NY) -> np.ndarray:
    """(ny, NX) spatial profile of ``order``: each column sums to 1 over all rows
    (less where the trace leaves the subarray); 0 where jwst has no trace."""
    g = soss_traces(pwcpos)[order]
    prof = np.zeros((ny, NX))
    cols = g.x.astype(int)
    prof[:, cols] = _pixel_profile(np.arange(ny, dtype=float), g.y)
    return prof


def box_weights(ycentre: np.ndarray, ny: int = NY, width: float = SOSS_WIDTH) -> np.ndarray:
    """(ny, len(ycentre)) weights of jwst's SOSS box (``soss_boxextract.get_box_weights``):
    1 inside ``ycentre +- width/2``, fractional at the two edges."""
    rows = np.arange(ny, dtype=float)[:, None]
    c = np.asarray(ycentre, dtype=float)[None, :]
    lo, hi = c - width / 2.0, c + width / 2.0
    return np.clip(np.minimum(rows + 0.5, hi) - np.maximum(rows - 0.5, lo), 0.0, 1.0)


def order2_contamination(pwcpos: float = PWCPOS) -> np.ndarray:
    """Per column: order-2 light inside the order-1 box / order-1 light inside it
    (what a box extraction without ATOCA decontamination over-estimates order 1 by)."""
    t1 = soss_traces(pwcpos)[1]
    y1 = np.interp(np.arange(NX), t1.x, t1.y)
    w = box_weights(y1)
    x = np.arange(NX)
    o1 = (w * profile_image(1, pwcpos)).sum(axis=0) * column_counts(1, x)
    o2 = (w * profile_image(2, pwcpos)).sum(axis=0) * column_counts(2, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(o1 > 0, o2 / o1, 0.0)


# ------------------------------------------------------------------------- spectra
def truth_flux_mjy(lam_um) -> np.ndarray:
    """Source spectrum F (MJy): 10 mJy power law with an absorption line at 1.40 um
    and an emission line at 2.20 um (both ~20 px wide in order 1)."""
    lam = np.asarray(lam_um, dtype=float)
    cont = 1.0e-8 * (lam / 1.5) ** -1.5
    line = 1.0 - 0.30 * np.exp(-0.5 * ((lam - 1.40) / 0.020) ** 2)
    line += 0.40 * np.exp(-0.5 * ((lam - 2.20) / 0.015) ** 2)
    return cont * line


def throughput(order: int, lam_um) -> np.ndarray:
    """GR700XD throughput of ``order`` (PASTASOSS ``throughputs``; smooth, synthetic)."""
    lam = np.asarray(lam_um, dtype=float)
    if int(order) == 1:
        return 0.05 + 0.45 * np.exp(-0.5 * ((lam - 1.6) / 0.7) ** 2)
    if int(order) == 2:
        return 0.02 + 0.25 * np.exp(-0.5 * ((lam - 0.85) / 0.3) ** 2)
    return 0.01 + 0.05 * np.exp(-0.5 * ((lam - 0.75) / 0.2) ** 2)


def column_counts(order: int, x) -> np.ndarray:
    """Column-total count rate (DN/s) of ``order`` at columns ``x`` (C_k)."""
    lam = order_wavelength(order, x)
    return COUNTS_SCALE * throughput(order, lam) * lam * truth_flux_mjy(lam) * order_dispersion(order)


def _photmj(order: int) -> float:
    lam = PHOTOM_LAM_REF[order]
    return 1.0 / (COUNTS_SCALE * float(throughput(order, lam)) * lam * order_dispersion(order)
                  * box_fraction(order))


def relresponse(order: int, lam_um) -> np.ndarray:
    """Relative response so that ``photmj * relresponse * C_k * box_fraction = F``
    (1 at the reference wavelength)."""
    lam = np.asarray(lam_um, dtype=float)
    ref = PHOTOM_LAM_REF[order]
    return (throughput(order, ref) * ref) / (throughput(order, lam) * lam)


# ------------------------------------------------------------------ reference files
def _set_ref_meta(model, meta: Mapping[str, Any]) -> None:
    m = model.meta
    m.reftype = meta.get("reftype", "")
    m.telescope = "JWST"
    m.instrument.name = "NIRISS"
    m.instrument.detector = "NIS"
    m.exposure.type = "NIS_SOSS"
    for k in ("pedigree", "author", "useafter", "description"):
        if meta.get(k):
            setattr(m, k, meta[k])
    try:
        m.exposure.p_exptype = meta.get("exp_type", "NIS_SOSS|")
    except AttributeError:
        pass


def build_pastasoss_model(meta: Mapping[str, Any] | None = None):
    """PASTASOSS (``PastasossModel``): orders 1 and 2, see the module docstring."""
    from stdatamodels.jwst.datamodels import PastasossModel

    model = PastasossModel()
    _set_ref_meta(model, meta or {"reftype": "PASTASOSS"})
    model.meta.instrument.filter = "CLEAR"
    model.meta.instrument.pupil = "GR700XD"
    mm = model.meta
    mm.order2_separation_cutoff = list(ORDER2_SEPARATION_CUTOFF)
    mm.pwcpos_bounds = list(PWCPOS_BOUNDS)
    mm.pwcpos_cmd = PWCPOS_CMD
    mm.soss_xdim = NX
    mm.soss_ydim = 300
    mm.subarray_ymin = 1792
    mm.wavemap_nwl = 5001
    mm.wavemap_wlmin = 0.5
    mm.wavemap_wlmax = 5.5
    traces, wavecals, thrus = [], [], []
    lam_t = np.linspace(0.5, 5.5, 501)
    for order, tr in reference_traces().items():
        traces.append({"spectral_order": order, "pivot_x": PIVOT[0], "pivot_y": PIVOT[1],
                       "trace": np.ascontiguousarray(tr, dtype=np.float64),
                       "oversampling": 1, "cutoff": int(TRACE_CUTOFF[order])})
        c0, c1 = WAVECAL[order]
        wavecals.append({
            "spectral_order": order, "polynomial_degree": 1,
            # reference-file order C00, C10 (x), C01 (pwcpos offset): no PWCPOS term
            "coefficients": np.array([c0, c1, 0.0], dtype=np.float64),
            "coefficient_labels": "C00 C10 C01",
            "scale_extents": np.array([[0.0, -0.25], [float(NX), 0.25]], dtype=np.float64),
        })
        thrus.append({"spectral_order": order, "wavelength": lam_t.copy(),
                      "throughput": throughput(order, lam_t).astype(np.float64)})
    model.traces = traces
    model.wavecal_models = wavecals
    model.throughputs = thrus
    return model


def build_specprofile_model(meta: Mapping[str, Any] | None = None):
    """SPECPROFILE (``SpecProfileModel``): (96, 2048) profiles of orders 1, 2 (and 3 =
    zeros, for readers that index three orders) at the commanded PWCPOS, SUBSTRIP96."""
    from stdatamodels.jwst.datamodels import SpecProfileModel, SpecProfileSingleModel

    model = SpecProfileModel()
    _set_ref_meta(model, meta or {"reftype": "SPECPROFILE"})
    model.meta.instrument.filter = "CLEAR"
    model.meta.subarray.name = "SUBSTRIP96"
    for order in ORDERS:
        single = SpecProfileSingleModel()
        single.data = profile_image(order, PWCPOS_CMD).astype(np.float32)
        single.order = order
        single.oversampling = 1
        single.padding = 0
        model.profile.append(single)
    return model


def build_speckernel_model(meta: Mapping[str, Any] | None = None):
    """SPECKERNEL (``SpecKernelModel``): Gaussian kernels (sigma 0.7 px), 5x oversampled,
    half width 3 px, at 26 wavelengths 0.5-3.0 um."""
    from stdatamodels.jwst.datamodels import SpecKernelModel

    n = KERNEL_OS * (2 * KERNEL_HALFWIDTH + 1) - (KERNEL_OS - 1)
    pix = np.linspace(-KERNEL_HALFWIDTH, KERNEL_HALFWIDTH, n)
    ker = np.exp(-0.5 * (pix / KERNEL_SIGMA) ** 2)
    ker /= ker.sum()
    model = SpecKernelModel()
    _set_ref_meta(model, meta or {"reftype": "SPECKERNEL"})
    model.wavelengths = np.repeat(KERNEL_WAVES[None, :], n, axis=0).astype(np.float32)
    model.kernels = np.repeat(ker[:, None], KERNEL_WAVES.size, axis=1).astype(np.float32)
    mm = model.meta
    mm.nwave = int(KERNEL_WAVES.size)
    mm.wavemin = float(KERNEL_WAVES[0])
    mm.wavemax = float(KERNEL_WAVES[-1])
    mm.spectral_oversampling = KERNEL_OS
    mm.halfwidth = KERNEL_HALFWIDTH
    mm.centroid_index = n // 2
    return model


def build_photom_model(meta: Mapping[str, Any] | None = None):
    """PHOTOM (``NisSossPhotomModel``): rows CLEAR/GR700XD orders 1-3; order k converts
    the box-extracted DN/s of this generator to the truth F in MJy."""
    from stdatamodels.jwst.datamodels import NisSossPhotomModel

    n = PHOTOM_NELEM
    dtype = [("filter", "S12"), ("pupil", "S15"), ("order", "i2"), ("photmj", "f4"),
             ("uncertainty", "f4"), ("nelem", "i2"), ("wavelength", "f4", (n,)),
             ("relresponse", "f4", (n,)), ("reluncertainty", "f4", (n,))]
    table = np.zeros(3, dtype=dtype)
    for i, order in enumerate((1, 2, 3)):
        lo, hi = PHOTOM_RANGE.get(order, (0.55, 1.0))
        lam = np.linspace(lo, hi, n)
        table["filter"][i] = "CLEAR"
        table["pupil"][i] = "GR700XD"
        table["order"][i] = order
        table["nelem"][i] = n
        table["wavelength"][i] = lam
        if order in ORDERS:
            table["photmj"][i] = _photmj(order)
            table["relresponse"][i] = relresponse(order, lam)
        else:  # no order-3 trace here; a plausible flat row keeps the table complete
            table["photmj"][i] = _photmj(2)
            table["relresponse"][i] = 1.0
        table["uncertainty"][i] = 0.0
        table["reluncertainty"][i] = 0.0
    model = NisSossPhotomModel()
    _set_ref_meta(model, meta or {"reftype": "PHOTOM"})
    model.phot_table = table
    return model


_BUILDERS = {
    "pastasoss": build_pastasoss_model,
    "specprofile": build_specprofile_model,
    "speckernel": build_speckernel_model,
    "photom": build_photom_model,
}


def write_reference_file(reftype: str, path: str | Path, meta: Mapping[str, Any] | None = None
                         ) -> Path:
    """Write the synthetic SOSS ``reftype`` reference file (pastasoss -> ASDF, the others
    FITS, chosen by ``path``'s extension) and return its path."""
    model = _BUILDERS[reftype.lower()](meta)
    path = Path(path)
    model.save(str(path))
    model.close()
    return path


def source_sha1() -> str:
    """SHA-1 of this module's source (reference-file content fingerprint)."""
    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()


# ------------------------------------------------------------------------- data
def _dq():
    from stdatamodels.jwst.datamodels import dqflags

    return dqflags.pixel


def _int_times(nints: int, start_mjd: float, int_time_s: float) -> np.ndarray:
    from stdatamodels.jwst.datamodels import CubeModel

    dtype = CubeModel((1, 1, 1)).get_dtype("int_times")
    t = np.zeros(nints, dtype=dtype)
    d = int_time_s / 86400.0
    for i in range(nints):
        s = start_mjd + i * d
        t[i] = (i + 1, s, s + d / 2, s + d, s + 0.0008, s + d / 2 + 0.0008, s + d + 0.0008)
    return t


def make_truth_image(pwcpos: float = PWCPOS) -> np.ndarray:
    """Noise-free (NY, NX) count-rate image (DN/s): sum over orders of C_k x profile."""
    img = np.zeros((NY, NX))
    for order in ORDERS:
        img += profile_image(order, pwcpos) * column_counts(order, np.arange(NX))[None, :]
    img[:, list(REF_COLUMNS)] = 0.0
    return img


def generate_soss(
    outdir: str | Path,
    *,
    seed: int = 1,
    program: str = DEFAULT_PROGRAM,
    nints: int = NINTS,
    n_exposures: int = 1,
    n_hot: int = 20,
    n_sat_per_int: int = 4,
    pwcpos: float = PWCPOS,
) -> list[Path]:
    """Write ``n_exposures`` NIS_SOSS ``_cal.fits`` files (obs 020) + truth CSVs.

    Returns the written paths (cal files first).  Only the first exposure of a Level 3
    association is extracted by calwebb_spec3 for SOSS (``Extract1dStep`` takes the
    first model), so one exposure (the default) is what a real non-TSO SOSS
    observation gives.
    """
    from stdatamodels.jwst import datamodels as dm

    if nints < 2:
        raise ValueError("nints must be >= 2 (jwst's SOSS rules drop single-integration data)")
    if not PWCPOS_BOUNDS[0] <= pwcpos <= PWCPOS_BOUNDS[1]:
        raise ValueError(f"pwcpos {pwcpos} outside PASTASOSS bounds {PWCPOS_BOUNDS}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    flags = _dq()
    truth = make_truth_image(pwcpos)
    traces = soss_traces(pwcpos)
    int_time = FRAME_TIME * NGROUPS
    fpe = 1.0 / (GAIN * int_time)  # DN/s per electron
    rows_y = np.arange(NY)[:, None]
    y1 = np.interp(np.arange(NX), traces[1].x, traces[1].y)
    in_box1 = np.abs(rows_y - y1[None, :]) <= SOSS_WIDTH / 2 + 2
    y2 = np.interp(np.arange(NX), traces[2].x, traces[2].y)
    near2 = np.abs(rows_y - y2[None, :]) <= 8
    science_cols = np.setdiff1d(np.arange(NX), REF_COLUMNS)

    written: list[Path] = []
    bad_rows: list[dict] = []
    exp_rows: list[dict] = []
    for e in range(n_exposures):
        exp = ExposureId(program=program, observation=OBSERVATION, visit="001",
                         visit_group="03", sequence="1", activity="01",
                         exposure=f"{e + 1:05d}", detector="NIS")
        start = START_MJD + e * (nints * int_time * 1.05 + 60.0) / 86400.0
        model = dm.CubeModel((nints, NY, NX))
        fill_exposure_meta(
            model, exp, instrument="NIRISS", exp_type="NIS_SOSS", target=TARGET,
            start_mjd=start, exposure_time=nints * int_time, nints=nints, ngroups=NGROUPS,
            frame_time=FRAME_TIME, readpatt="NISRAPID",
            template="NIRISS Single Object Slitless Spectroscopy",
            total_exposures=n_exposures,
            optical={"filter": "CLEAR", "pupil": "GR700XD", "pupil_position": float(pwcpos)},
            dither={"primary_type": "NONE", "total_points": 1, "position_number": 1},
            wcsinfo={"ra_ref": TARGET.ra, "dec_ref": TARGET.dec, "roll_ref": 120.0,
                     "v2_ref": -305.0, "v3_ref": -686.0, "v3yangle": -0.57, "vparity": -1,
                     "dispersion_direction": 1},
            pointing={"ra_v1": TARGET.ra, "dec_v1": TARGET.dec, "pa_v3": 120.57},
            subarray={"name": "SUBSTRIP96", "xstart": 1, "ystart": SUBSTRT2, "xsize": NX,
                      "ysize": NY, "fastaxis": -2, "slowaxis": -1},
            aperture_name="NIS_SUBSTRIP96",
        )
        model.meta.exposure.integration_start = 1
        model.meta.exposure.integration_end = nints
        model.meta.exposure.segment_number = 1
        model.meta.bunit_data = "DN/s"
        model.meta.bunit_err = "DN/s"
        model.meta.target.source_type = "POINT"
        model.meta.dither.position_number = 1
        set_cal_steps(model, ("group_scale", "dq_init", "saturation", "superbias", "refpix",
                              "linearity", "dark_sub", "jump", "ramp_fit", "gain_scale",
                              "assign_wcs", "srctype", "flat_field"),
                      skipped=("photom", "extract_1d", "bkg_subtract"))
        model.int_times = _int_times(nints, start, int_time)

        data = np.zeros((nints, NY, NX), np.float32)
        err = np.zeros_like(data)
        vp = np.zeros_like(data)
        vr = np.zeros_like(data)
        vf = np.zeros_like(data)
        dq = np.zeros((nints, NY, NX), np.uint32)
        for i in range(nints):
            rng = make_rng(seed, "soss", exp.filename(), i)
            nz = make_noise(truth, rng, flux_per_electron=fpe, read_noise_electrons=READ_NOISE_E,
                            flat_error_fraction=0.0)
            data[i], err[i], vp[i], vr[i], vf[i] = (nz.data, nz.err, nz.var_poisson,
                                                     nz.var_rnoise, nz.var_flat)
        # reference-pixel columns: flagged and NaN, as in real cal files
        ref = list(REF_COLUMNS)
        dq[:, :, ref] |= flags["REFERENCE_PIXEL"] | flags["DO_NOT_USE"]
        data[:, :, ref] = np.nan
        err[:, :, ref] = np.nan
        # hot pixels: bad in every integration, away from the order-1 box and order 2
        rng = make_rng(seed, "soss_badpix", exp.filename())
        cand = np.argwhere(~in_box1 & ~near2)
        cand = cand[np.isin(cand[:, 1], science_cols)]
        for y, x in cand[rng.choice(len(cand), n_hot, replace=False)]:
            dq[:, y, x] |= flags["DO_NOT_USE"] | flags["HOT"]
            data[:, y, x] = np.nan
            err[:, y, x] = np.nan
            bad_rows.append({"file": exp.filename(), "integration": "all", "y": int(y),
                             "x": int(x), "kind": "hot"})
        # saturated in one integration, on the order-1 trace core
        for i in range(nints):
            xs = rng.choice(science_cols[(science_cols > 20) & (science_cols < NX - 20)],
                            n_sat_per_int, replace=False)
            for x in xs:
                y = int(round(y1[x] + rng.integers(-1, 2)))
                dq[i, y, x] |= flags["DO_NOT_USE"] | flags["SATURATED"]
                data[i, y, x] = np.nan
                err[i, y, x] = np.nan
                bad_rows.append({"file": exp.filename(), "integration": i + 1, "y": y,
                                 "x": int(x), "kind": "saturated"})
        for arr in (vp, vr, vf):
            arr[np.isnan(data)] = np.nan
        model.data, model.err, model.dq = data, err, dq
        model.var_poisson, model.var_rnoise, model.var_flat = vp, vr, vf
        path = outdir / exp.filename("cal")
        save_model_fast(model, path)
        model.close()
        written.append(path)
        exp_rows.append({"file": path.name, "exposure": e + 1, "nints": nints,
                         "pwcpos": pwcpos, "subarray": "SUBSTRIP96", "start_mjd": start,
                         "integration_time_s": int_time})

    spec_rows = []
    contam = order2_contamination(pwcpos)
    for order in ORDERS:
        g = traces[order]
        prof = profile_image(order, pwcpos)
        for x in range(NX):
            lam = float(order_wavelength(order, x))
            onsub = float(prof[:, x].sum())
            row = {"order": order, "x": x, "wavelength_um": lam,
                   "y_trace": float(np.interp(x, g.x, g.y)) if x <= g.x[-1] else float("nan"),
                   "counts_dn_s": float(column_counts(order, x)),
                   "fraction_on_subarray": onsub, "box_fraction": box_fraction(order),
                   "order2_contamination": float(contam[x]) if order == 1 else 0.0,
                   "flux_mjy": float(truth_flux_mjy(lam)),
                   "reference_pixel": x in REF_COLUMNS}
            spec_rows.append(row)
    written.append(write_csv(outdir / "soss_truth_spectrum.csv", spec_rows))
    written.append(write_csv(outdir / "soss_truth_badpix.csv", bad_rows,
                             ["file", "integration", "y", "x", "kind"]))
    written.append(write_csv(outdir / "soss_truth_exposures.csv", exp_rows))
    return written
