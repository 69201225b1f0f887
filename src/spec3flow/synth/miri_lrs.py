"""Synthetic Stage 2 products for MIRI LRS fixed slit (``MIR_LRS-FIXEDSLIT``).

:func:`generate_miri_lrs` writes a small, self-consistent program that calwebb_spec3
(jwst 3.0.0) runs on end to end, master background included:

==============================  ===  ===  ==========  =====================================
file stem                       obs  nod  role        content
==============================  ===  ===  ==========  =====================================
jw01234003001_02101_00001/2     003   1   science     point source at +1.1" along the slit
jw01234003001_02101_00003/4     003   2   science     point source at -1.1"; 00003 has the
                                                      injected cosmic rays
jw01234004001_02101_00001       004   1   background  dedicated background target
jw01234004001_02101_00002       004   2   background  (BKGDTARG=T, SRCTYPE=EXTENDED)
==============================  ===  ===  ==========  =====================================

(defaults: ``sci_exp_per_nod=2``, ``bkg_exp_per_nod=1``.  Two exposures per nod are
needed for outlier_detection to flag anything: with one per nod the median of two
images is their mean, which keeps half of a cosmic ray, and the ``scale*|derivative|``
term of the threshold then hides it.)

For every exposure a ``*_mirimage_cal.fits`` (``ImageModel``, MJy/sr) and the Stage 2
``*_mirimage_x1d.fits`` that calwebb_spec2 also writes are produced.  jwst's DMS
association rules list x1d files as ``exptype: background`` members of the Level 3
associations: the dedicated background exposures' x1d (``c1000``) and, for nodded
LRS (``make_fixedslit_bkg``), every science exposure's own x1d (``o003`` and
``c1000``).  The x1d files come from jwst's own box extraction
(:func:`jwst.extract_1d.extract.run_extract1d`, what ``Extract1dStep`` runs; no
APCORR, no CRDS): whole slit for the background target (master_background reads its
SURF_BRIGHT), and :func:`stage2_extract1d_ref` for the science exposures - a box on
the source plus background strips either side, whose BACKGROUND column
master_background reads for BKGDTARG=F members.

Associations jwst generates from these headers (``spec3flow.associations``,
``MIR_LRS-FIXEDSLIT``): ``jw01234-o003_spec3_00001_asn`` (4 science cal + their 4
x1d as background -> ``jw01234-o003_t001_miri_p750l``), ``jw01234-c1000_spec3_00001_asn``
(the same plus the 2 background-target x1d -> ``jw01234-c1000_t001_miri_p750l``) and
``jw01234-o004_spec3_00001_asn`` (the background target itself, 2 science cal, no
background members -> ``jw01234-o004_t002_miri_p750l``).

Truth tables (CSV, same directory):

- ``miri_lrs_truth_spectrum.csv``: ``wavelength_um, source_flux_jy, background_mjy_sr``
  sampled at every detector row inside the slit bounding box;
- ``miri_lrs_truth_cosmic_rays.csv``: ``file, y, x, added_mjy_sr`` (0-based pixels of
  the cal array; DQ is 0 there so outlier_detection must find them);
- ``miri_lrs_truth_exposures.csv``: one row per exposure (role, nod, source pixel
  position, pointing).

Geometry (``NY x NX`` = 400 x 64 cut-out of the FULL frame):

- headers say ``SUBARRAY = 'FULL'`` like real LRS slit data (DMS pools: ``full``; the
  association rules then leave the subarray out of product names - with ``SUBSLIT``
  they end in ``-subslit``); SUBSTRT1/2 and SUBSIZE1/2 describe the cut-out actually
  stored (295, 1, 64, 400), not 1032 x 1024.  No calwebb_spec3 step reads the
  subarray for LRS except via CRDS selection (APCORR selects on SUBARRAY, FULL is the
  real LRS slit row);
- dispersion is vertical (``meta.wcsinfo.dispersion_direction = 2``); wavelength
  *decreases* with row number, 14 um at row ``Y_LO`` to 5 um at row ``Y_HI``, like the
  real P750L trace;
- the slit runs along x: ``alpha = (x - X_REF) * PSCALE`` arcsec, ``beta = 0``;
  pixels outside the slit bounding box are NaN with DQ ``DO_NOT_USE|NON_SCIENCE``;
- WCS frames ``detector -> alpha_beta -> v2v3 -> world`` structured like
  ``jwst.assign_wcs.miri.lrs`` builds them (Tabular wavelength solution with an
  explicit inverse, linear alpha/beta -> V2/V3, the standard V2V3 -> sky rotation),
  ``bounding_box`` on the slit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spec3flow.synth.common import (
    ExposureId,
    TargetInfo,
    fill_exposure_meta,
    inject_cosmic_rays,
    make_noise,
    make_rng,
    s_region_polygon,
    set_cal_steps,
    write_csv,
)

__all__ = [
    "generate_miri_lrs",
    "build_lrs_wcs",
    "source_spectrum_jy",
    "background_spectrum_mjysr",
    "wavelength_of_row",
    "write_level3_asn",
    "LrsExposure",
    "PRODUCT_NAME",
    "NY",
    "NX",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- geometry
NY, NX = 400, 64  # cut-out shape (rows = dispersion, columns = along slit)
SUB_XSTART, SUB_YSTART = 295, 1  # 1-based full-frame origin of the cut-out (FITS keywords)
# Real LRS fixed-slit exposures are FULL frame (DMS pools: SUBARRAY 'full'); the
# association rules leave 'full' out of product names.  The array is a cut-out of it.
SUBARRAY_NAME = "FULL"
X_REF = 31.5  # slit centre (0-based column); real LRS x_ref ~ 326.1 full frame
Y_REF = 199.5  # reference row (only stored in the no-op reftransform / pathloss-like use)
PSCALE = 0.11  # arcsec / pixel along the slit (MIRI imager scale)
SLIT_LENGTH = 4.7  # arcsec
SLIT_WIDTH = 0.51  # arcsec
Y_LO, Y_HI = 10, NY - 11  # rows spanned by the wavelength solution (inclusive)
LAM_MAX, LAM_MIN = 14.0, 5.0  # um at Y_LO and Y_HI
HALF_SLIT_PIX = SLIT_LENGTH / 2 / PSCALE  # 21.36 px
BBOX_X = (np.floor(X_REF - HALF_SLIT_PIX) - 0.5, np.ceil(X_REF + HALF_SLIT_PIX) + 0.5)
BBOX_Y = (float(Y_LO), float(Y_HI))

# MIRIM_SLIT reference point in the telescope frame (arcsec), V3 Y angle (deg)
V2_REF, V3_REF, V3YANGLE = -378.832, -344.944, 4.83
SLIT_PA_V = 90.0 + V3YANGLE  # direction of +alpha in the (V2, V3) plane, deg from +V2

PIXAR_SR = (PSCALE / 206264.80624709636) ** 2
PIXAR_A2 = PSCALE**2

# ----------------------------------------------------------------------------- program
PROGRAM_DEFAULT = "01234"
SCI_OBS, BKG_OBS = "003", "004"
NOD_OFFSETS = (+1.1, -1.1)  # arcsec along the slit, ALONG-SLIT-NOD positions 1 and 2
SCI_TARGET = dict(proposer_name="SYNTH-LRS-STAR", catalog_name="SYNTH-LRS-STAR",
                  ra=80.4876, dec=-69.4983, target_id=1)
BKG_TARGET = dict(proposer_name="SYNTH-LRS-BKG", catalog_name="SYNTH-LRS-BKG",
                  ra=80.5051, dec=-69.4983, target_id=2)  # ~22" east
ROLL_REF = 262.5  # deg, V3 position angle at the reference point
PRODUCT_NAME = "jw{program}-o" + SCI_OBS + "_t001_miri_p750l"

FRAME_TIME = 2.77504  # s, MIRI FULL frame
NGROUPS, NINTS = 40, 1
EXPOSURE_TIME = FRAME_TIME * NGROUPS * NINTS  # 111 s
START_MJD = 60400.25
GAP_S = 60.0  # between exposures

# photometric model: MJy/sr per detected electron (sets Poisson noise)
FLUX_PER_ELECTRON = 0.05
READ_NOISE_E = 14.0
PSF_SIGMA_PIX_AT_10UM = 1.3  # Gaussian sigma along the slit at 10 um, scales with lambda

MIRI_STAGE1 = ("group_scale", "dq_init", "emicorr", "saturation", "firstframe", "lastframe",
               "reset", "linearity", "rscd", "dark_sub", "refpix", "jump", "ramp_fit",
               "gain_scale")
MIRI_LRS_STAGE2 = ("assign_wcs", "flat_field", "srctype", "pathloss", "photom")
MIRI_LRS_SKIPPED = ("ipc", "bkg_subtract", "targ_centroid")


# ----------------------------------------------------------------------------- spectra
def wavelength_of_row(y):
    """Wavelength (um) at 0-based row ``y`` (float or array); NaN outside the solution.

    ``lambda = LAM_MIN + (LAM_MAX - LAM_MIN) * (0.25 u + 0.75 u**2)`` with
    ``u = (Y_HI - y)/(Y_HI - Y_LO)``: decreasing with row, ~0.006 um/px at 5 um and
    ~0.04 um/px at 14 um, roughly like the P750L prism.
    """
    y = np.asarray(y, dtype=float)
    u = (Y_HI - y) / (Y_HI - Y_LO)
    u = np.clip(u, 0, 1)
    lam = LAM_MIN + (LAM_MAX - LAM_MIN) * (0.25 * u + 0.75 * u**2)
    return np.where((y >= Y_LO) & (y <= Y_HI), lam, np.nan)


def source_spectrum_jy(lam_um):
    """Injected point-source spectrum, Jy: smooth continuum (~2 mJy at 7.5 um)."""
    lam = np.asarray(lam_um, dtype=float)
    return 2.0e-3 * (lam / 7.5) ** -1.2 * (1.0 + 0.15 * np.exp(-0.5 * ((lam - 9.7) / 0.9) ** 2))


def background_spectrum_mjysr(lam_um):
    """Sky + telescope background, MJy/sr: zodi-like, rising towards long wavelengths."""
    lam = np.asarray(lam_um, dtype=float)
    return 3.0 + 22.0 * ((lam - 4.0) / 10.0) ** 2


# ----------------------------------------------------------------------------- WCS
def _v23tosky(v2_ref, v3_ref, roll_ref, ra_ref, dec_ref):
    """V2,V3 (arcsec) -> RA,Dec (deg); same rotation as jwst.assign_wcs.pointing."""
    from astropy.modeling.models import RotationSequence3D, Scale
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    angles = np.array([v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref])
    rot = RotationSequence3D(angles, axes_order="zyxyz")
    m = ((Scale(1 / 3600) & Scale(1 / 3600)) | SphericalToCartesian(wrap_lon_at=180)
         | rot | CartesianToSpherical(wrap_lon_at=360))
    m.name = "v23tosky"
    return m


def _alpha_to_v2v3(alpha, beta=0.0):
    th = np.deg2rad(SLIT_PA_V)
    v2 = V2_REF + alpha * np.cos(th) - beta * np.sin(th)
    v3 = V3_REF + alpha * np.sin(th) + beta * np.cos(th)
    return v2, v3


def build_lrs_wcs(ra_ref: float, dec_ref: float, roll_ref: float = ROLL_REF):
    """gwcs for the cut-out: ``detector -> alpha_beta -> v2v3 -> world``.

    ``(ra_ref, dec_ref)`` is the sky position of the slit centre (``V2_REF, V3_REF``).
    Forward: ``(x, y) -> (ra, dec, lambda)``; the inverse returns ``(x, y)`` for any
    ``(ra, dec, lambda)`` (cross-slit offsets are dropped, as for the real LRS WCS).
    """
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    # --- detector -> (alpha, beta, lambda)
    ys = np.arange(Y_LO, Y_HI + 1, dtype=float)
    lams = wavelength_of_row(ys)
    wavemodel = models.Tabular1D(points=ys, lookup_table=lams, bounds_error=False,
                                 fill_value=np.nan, name="waveref")
    # explicit inverse: points must be ascending -> reverse both
    wavemodel.inverse = models.Tabular1D(points=lams[::-1], lookup_table=ys[::-1],
                                         bounds_error=False, fill_value=np.nan,
                                         name="waveref_inverse")
    # a no-op shift pair storing the reference point (as jwst does, first model has params)
    reftransform = (models.Shift(-X_REF) & models.Shift(-Y_REF)
                    | models.Shift(X_REF) & models.Shift(Y_REF))
    alphamodel = models.Shift(-X_REF) | models.Scale(PSCALE)
    # (x, y) -> (alpha, beta=0): beta is always zero for the slit, as in jwst
    xy_to_ab = (reftransform | models.Mapping((0,), n_inputs=2) | alphamodel
                | models.Mapping((0, 0)) | models.Identity(1) & models.Const1D(0.0))
    dettoabl = models.Mapping((0, 1, 1)) | xy_to_ab & wavemodel
    # inverse: x from alpha, y from lambda
    slitx = models.Scale(1.0 / PSCALE) | models.Shift(X_REF)
    dettoabl.inverse = models.Mapping((0, 2)) | slitx & wavemodel.inverse
    dettoabl.name = "dettoabl"

    # --- (alpha, beta, lambda) -> (v2, v3, lambda): rotation + shift
    th = np.deg2rad(SLIT_PA_V)
    mat = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    ab2v = models.AffineTransformation2D(matrix=mat, translation=[V2_REF, V3_REF])
    abl_to_v2v3l = ab2v & models.Identity(1)
    abl_to_v2v3l.name = "abl_to_v2v3l"
    # (AffineTransformation2D has an analytic inverse; Identity too)

    # --- v2v3 -> world
    teltosky = _v23tosky(V2_REF, V3_REF, roll_ref, ra_ref, dec_ref) & models.Identity(1)
    teltosky.name = "v2v3_to_sky"

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    alpha_beta = cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1),
                            unit=(u.arcsec, u.arcsec), axes_names=("alpha", "beta"))
    spec_local = cf.SpectralFrame(name="alpha_beta_spectral", axes_order=(2,),
                                  unit=(u.micron,), axes_names=("lambda",))
    miri_focal = cf.CompositeFrame([alpha_beta, spec_local], name="alpha_beta")
    spec = cf.SpectralFrame(name="spec", axes_order=(2,), unit=(u.micron,),
                            axes_names=("lambda",))
    v2v3_spatial = cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1),
                              unit=(u.arcsec, u.arcsec), axes_names=("v2", "v3"))
    v2v3 = cf.CompositeFrame([v2v3_spatial, spec], name="v2v3")
    icrs = cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                             unit=(u.deg, u.deg), axes_names=("RA", "DEC"))
    world = cf.CompositeFrame(name="world", frames=[icrs, spec])

    w = gwcs_wcs.WCS([(detector, dettoabl), (miri_focal, abl_to_v2v3l),
                      (v2v3, teltosky), (world, None)])
    w.bounding_box = (tuple(float(b) for b in BBOX_X), BBOX_Y)
    return w


def _slit_centre_for_nod(target_ra, target_dec, alpha_nod, roll_ref=ROLL_REF):
    """Sky position of the slit centre that puts the target at ``alpha_nod`` arcsec."""
    # with the slit centre on the target, the sky point at -alpha_nod is where the
    # slit centre must go (a rigid rotation; exact to ~(alpha/206265)^2).
    m = _v23tosky(V2_REF, V3_REF, roll_ref, target_ra, target_dec)
    v2, v3 = _alpha_to_v2v3(-alpha_nod)
    ra, dec = m(v2, v3)
    return float(ra), float(dec)


def _s_region(wcs_obj) -> str:
    """Slit corners (alpha = +-L/2, beta = +-W/2) through v2v3 -> world."""
    a, b = SLIT_LENGTH / 2, SLIT_WIDTH / 2
    corners = [(-a, -b), (a, -b), (a, b), (-a, b)]
    v2, v3 = zip(*(_alpha_to_v2v3(al, be) for al, be in corners))
    ra, dec, _ = wcs_obj.transform("v2v3", "world", np.array(v2), np.array(v3), 7.0)
    return s_region_polygon(ra, dec)


# ----------------------------------------------------------------------------- exposures
@dataclass
class LrsExposure:
    """What was generated for one exposure (also one row of the exposures truth table)."""

    role: str  # 'science' | 'background'
    exp: ExposureId
    nod: int
    ra_ref: float
    dec_ref: float
    source_x: float  # 0-based column of the target at the reference wavelength (NaN: bkg)
    repeat: int = 1  # exposure index within the nod position (1..n_exp_per_nod)
    n_in_visit: int = 2  # exposures in this observation's visit
    cal_path: Path | None = None
    x1d_path: Path | None = None


def _exposures(program: str, sci_exp_per_nod: int = 2, bkg_exp_per_nod: int = 1
               ) -> list[LrsExposure]:
    """Science: obs 003, nod 1 x n then nod 2 x n; background: obs 004, same pattern."""
    out = []
    for role, obs, tgt, nrep in (("science", SCI_OBS, SCI_TARGET, sci_exp_per_nod),
                                 ("background", BKG_OBS, BKG_TARGET, bkg_exp_per_nod)):
        expnum = 0
        for nod, alpha in enumerate(NOD_OFFSETS, start=1):
            ra, dec = _slit_centre_for_nod(tgt["ra"], tgt["dec"], alpha)
            for rep in range(1, nrep + 1):
                expnum += 1
                exp = ExposureId(program=program, observation=obs, visit="001",
                                 visit_group="02", sequence="1", activity="01",
                                 exposure=expnum, detector="MIRIMAGE")
                # target column from the inverse WCS (self-consistent with the header)
                xs = np.nan
                if role == "science":
                    xs = float(build_lrs_wcs(ra, dec).invert(tgt["ra"], tgt["dec"], 7.5)[0])
                out.append(LrsExposure(role, exp, nod, ra, dec, xs, repeat=rep,
                                       n_in_visit=nrep * len(NOD_OFFSETS)))
    return out


def _dq_flags():
    from stdatamodels.jwst.datamodels import dqflags

    return dqflags.pixel


def _make_cal_model(lx: LrsExposure, index: int, seed: int, rows_out: list,
                    other_source_x: Sequence[float] = (), n_cosmic_rays: int = 0):
    from stdatamodels.jwst import datamodels

    dq_def = _dq_flags()
    is_sci = lx.role == "science"
    tgt = SCI_TARGET if is_sci else BKG_TARGET
    wcs_obj = build_lrs_wcs(lx.ra_ref, lx.dec_ref)

    # ------------------------------------------------------------------ scene
    yy, xx = np.mgrid[0:NY, 0:NX].astype(float)
    lam = wavelength_of_row(yy)  # NaN outside the wavelength solution
    in_slit = (xx > BBOX_X[0]) & (xx < BBOX_X[1]) & np.isfinite(lam)
    truth = np.where(in_slit, background_spectrum_mjysr(lam), 0.0)
    if is_sci:
        xs = lx.source_x
        sigma = PSF_SIGMA_PIX_AT_10UM * lam / 10.0
        # pixel-integrated Gaussian along x (unit sum over the row)
        from scipy.special import erf

        s2 = np.sqrt(2.0) * np.where(np.isfinite(sigma), sigma, 1.0)
        prof = 0.5 * (erf((xx + 0.5 - xs) / s2) - erf((xx - 0.5 - xs) / s2))
        src = source_spectrum_jy(lam) * prof / (PIXAR_SR * 1.0e6)  # Jy -> MJy/sr per pixel
        truth = truth + np.where(in_slit, src, 0.0)

    rng = make_rng(seed, "miri_lrs", lx.exp.filename("cal"))
    noise = make_noise(truth, rng, flux_per_electron=FLUX_PER_ELECTRON,
                       read_noise_electrons=READ_NOISE_E)

    dq = np.zeros((NY, NX), dtype=np.uint32)
    off = ~in_slit
    dq[off] = dq_def["DO_NOT_USE"] | dq_def["NON_SCIENCE"]
    # two hot pixels per exposure inside the slit, flagged like Stage 1 would
    for _ in range(2):
        y = int(rng.integers(Y_LO + 5, Y_HI - 5))
        x = int(rng.integers(int(BBOX_X[0]) + 3, int(BBOX_X[1]) - 3))
        dq[y, x] = dq_def["DO_NOT_USE"] | dq_def["HOT"]

    # cosmic rays (DQ left at 0): in the slit, >= 4 px from the trace of every nod,
    # and only where every other nod also sees the sky (else the median has no
    # clean value to compare with)
    crs = []
    if n_cosmic_rays:
        rows = np.arange(Y_LO + 20, Y_HI - 20)
        cols = []
        for x in range(int(BBOX_X[0]) + 3, int(BBOX_X[1]) - 2):
            xs_other = [x + (xo - lx.source_x) for xo in other_source_x]
            if all(BBOX_X[0] + 3 < xo < BBOX_X[1] - 3 for xo in xs_other) and all(
                    abs(x - xs) >= 4 for xs in [lx.source_x, *xs_other]):
                cols.append(x)
        bad = {(int(a), int(b)) for a, b in zip(*np.nonzero(dq))}
        crs = inject_cosmic_rays(noise.data, noise.err, rng, n_cosmic_rays, rows=rows,
                                 cols=cols, snr_range=(80.0, 200.0), exclude=bad)
        for y, x, add in crs:
            rows_out.append({"file": lx.exp.filename("cal"), "y": y, "x": x,
                             "added_mjy_sr": add})

    bad = (dq & dq_def["DO_NOT_USE"]) > 0
    arrays = {}
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        a = getattr(noise, name).astype(np.float32)
        a[bad] = np.nan
        arrays[name] = a

    # ------------------------------------------------------------------ model
    model = datamodels.ImageModel(data=arrays["data"], dq=dq, err=arrays["err"])
    model.var_poisson = arrays["var_poisson"]
    model.var_rnoise = arrays["var_rnoise"]
    model.var_flat = arrays["var_flat"]

    start = START_MJD + index * (EXPOSURE_TIME * 1.02 + GAP_S) / 86400.0
    target = TargetInfo.for_role(tgt, science=is_sci)
    v1 = _v23tosky(V2_REF, V3_REF, ROLL_REF, lx.ra_ref, lx.dec_ref)(0.0, 0.0)
    # dithered_ra/dec: where the target is expected in this exposure (= target coords)
    fill_exposure_meta(
        model, lx.exp,
        instrument="MIRI", exp_type="MIR_LRS-FIXEDSLIT", target=target,
        start_mjd=start, exposure_time=EXPOSURE_TIME, nints=NINTS, ngroups=NGROUPS,
        nframes=1, frame_time=FRAME_TIME, readpatt="FASTR1",
        template="MIRI Low Resolution Spectroscopy",
        visit_type="PRIME_TARGETED_FIXED", total_exposures=lx.n_in_visit,
        exposure_count=int(lx.exp.exposure),
        optical={"detector": "MIRIMAGE", "filter": "P750L", "lamp_state": "NONE"},
        dither={"primary_type": "ALONG-SLIT-NOD", "position_number": lx.nod,
                "total_points": 2, "primary_dither_type": "ALONG-SLIT-NOD",
                "primary_points": 2, "pattern_start": 1,
                "dithered_ra": float(tgt["ra"]), "dithered_dec": float(tgt["dec"]),
                "x_offset": float(NOD_OFFSETS[lx.nod - 1]), "y_offset": 0.0},
        wcsinfo={"v2_ref": V2_REF, "v3_ref": V3_REF, "vparity": -1, "v3yangle": V3YANGLE,
                 "ra_ref": lx.ra_ref, "dec_ref": lx.dec_ref, "roll_ref": ROLL_REF,
                 "dispersion_direction": 2, "wcsaxes": 2, "velosys": 0.0,
                 "specsys": "BARYCENT", "spectral_order": 1},
        pointing={"ra_v1": float(v1[0]), "dec_v1": float(v1[1]), "pa_v3": ROLL_REF},
        subarray={"name": SUBARRAY_NAME, "xstart": SUB_XSTART, "ystart": SUB_YSTART,
                  "xsize": NX, "ysize": NY, "fastaxis": 1, "slowaxis": 2},
        aperture_name="MIRIM_SLIT",
        bkgdtarg=not is_sci,
        extra_pool_keywords={"pntgtype": "SCIENCE", "dithptin": lx.nod, "targordn": 1},
    )
    model.meta.target.source_type_apt = target.source_type
    model.meta.exposure.noutputs = 4
    model.meta.exposure.nresets_at_start = 0
    model.meta.exposure.nresets_between_ints = 1
    model.meta.exposure.sample_time = 10
    model.meta.exposure.frame_divisor = 1
    model.meta.exposure.groupgap = 0
    model.meta.instrument.lamp_state = "NONE"
    model.meta.wcs = wcs_obj
    model.meta.wcsinfo.s_region = _s_region(wcs_obj)
    model.meta.photometry.pixelarea_steradians = PIXAR_SR
    model.meta.photometry.pixelarea_arcsecsq = PIXAR_A2
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.velocity_aberration.scale_factor = 1.0
    model.meta.velocity_aberration.va_ra_ref = lx.ra_ref
    model.meta.velocity_aberration.va_dec_ref = lx.dec_ref
    set_cal_steps(model, complete=MIRI_STAGE1 + MIRI_LRS_STAGE2, skipped=MIRI_LRS_SKIPPED)
    model.meta.model_type = "ImageModel"
    return model, crs


# Stage 2 EXTRACT1D aperture for the science (point-source) exposures, in pixels of
# the cut-out, centred on the slit; extract_1d shifts source and background regions
# together to the target position (use_source_posn).  Background: median of two
# 11-px strips 7-18 px either side of the source (>= 3.8 sigma of the 14 um PSF;
# strips falling off the slit are NaN there and ignored).
SCI_SRC_HALF_WIDTH = 4.0
SCI_BKG_INNER, SCI_BKG_OUTER = 7.0, 18.0


def stage2_extract1d_ref() -> dict:
    """The EXTRACT1D reference (jwst JSON layout) used for the science exposures' x1d."""
    return {
        "reftype": "EXTRACT1D",
        "instrument": "MIRI",
        "exp_type": "MIR_LRS-FIXEDSLIT",
        "apertures": [{
            "id": "ANY",
            "region_type": "target",
            "dispaxis": 2,
            "xstart": X_REF - SCI_SRC_HALF_WIDTH,
            "xstop": X_REF + SCI_SRC_HALF_WIDTH,
            "bkg_coeff": [[X_REF - SCI_BKG_OUTER], [X_REF - SCI_BKG_INNER],
                          [X_REF + SCI_BKG_INNER], [X_REF + SCI_BKG_OUTER]],
            "bkg_fit": "median",
            "use_source_posn": True,
        }],
    }


def _extract_x1d(cal_model, x1d_path: Path):
    """Stage 2 extract_1d of one cal model, as calwebb_spec2 writes ``*_x1d.fits``.

    jwst's own box extraction (:func:`jwst.extract_1d.extract.run_extract1d`, what
    ``Extract1dStep`` runs; no APCORR, no CRDS):

    * background target (BKGDTARG=T, EXTENDED): no EXTRACT1D reference ('N/A'), i.e.
      the whole slit; SURF_BRIGHT is the background (what master_background reads for
      these members);
    * science (POINT): :func:`stage2_extract1d_ref` - a 9 px box on the source with
      background strips either side; the BACKGROUND column (MJy/sr) is what
      master_background reads for nodded science members (BKGDTARG=F: it copies
      BACKGROUND to SURF_BRIGHT).
    """
    import tempfile

    from jwst.extract_1d import extract as ex1d

    with tempfile.TemporaryDirectory(prefix="spec3flow_lrs_x1d_") as tmp:
        ref = "N/A"
        if cal_model.meta.observation.bkgdtarg is not True:
            ref = str(Path(tmp) / "miri_lrs_stage2_extract1d.json")
            Path(ref).write_text(json.dumps(stage2_extract1d_ref(), indent=1))
        result = ex1d.run_extract1d(cal_model, extract_ref_name=ref, apcorr_ref_name=None,
                                    psf_ref_name="N/A", extraction_type="box")
    x1d = result[0] if isinstance(result, tuple) else result
    x1d.meta.cal_step.extract_1d = "COMPLETE"
    x1d.meta.filename = x1d_path.name
    x1d.save(x1d_path)
    x1d.close()
    return x1d_path


# ----------------------------------------------------------------------------- API
def generate_miri_lrs(outdir, seed: int = 1, program: str = PROGRAM_DEFAULT, *,
                      sci_exp_per_nod: int = 2, bkg_exp_per_nod: int = 1,
                      n_cosmic_rays: int = 3, write_x1d: bool = True,
                      write_asn: bool = False) -> list[Path]:
    """Write the synthetic MIRI LRS fixed-slit program into ``outdir``.

    Science (obs 003): ALONG-SLIT-NOD, 2 positions x ``sci_exp_per_nod`` exposures;
    background (obs 004, BKGDTARG=T): 2 positions x ``bkg_exp_per_nod`` exposures.
    ``n_cosmic_rays`` hits go into the first science exposure of nod 2 (needs
    ``sci_exp_per_nod >= 2`` to be flaggable: with one exposure per nod the
    outlier_detection median of two images is their mean and keeps half the hit).

    Returns every file written, in order: the ``*_cal.fits`` (science then
    background, in exposure order), the Stage 2 ``*_x1d.fits`` of every exposure (same
    order; if ``write_x1d``),
    the truth CSVs (spectrum, cosmic rays, exposures), and the Level 3 association
    (if ``write_asn``).  Deterministic: the same arguments give identical files
    (apart from FITS/ASDF creation dates).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    program = f"{int(program):05d}"
    exposures = _exposures(program, sci_exp_per_nod, bkg_exp_per_nod)
    written: list[Path] = []
    cr_rows: list[dict] = []
    x1d_written: list[Path] = []
    sci = [lx for lx in exposures if lx.role == "science"]
    cr_target = next((lx for lx in sci if lx.nod == 2), None)
    for i, lx in enumerate(exposures):
        others = sorted({o.source_x for o in sci if o.nod != lx.nod})
        ncr = n_cosmic_rays if lx is cr_target else 0
        model, _ = _make_cal_model(lx, i, seed, cr_rows, other_source_x=others,
                                   n_cosmic_rays=ncr)
        path = outdir / lx.exp.filename("cal")
        model.save(path)
        lx.cal_path = path
        written.append(path)
        if write_x1d:
            lx.x1d_path = _extract_x1d(model, outdir / lx.exp.filename("x1d"))
            x1d_written.append(lx.x1d_path)
        model.close()
    written.extend(x1d_written)

    ys = np.arange(Y_LO, Y_HI + 1)
    lam = wavelength_of_row(ys)
    order = np.argsort(lam)
    spec_rows = [{"wavelength_um": float(lam[k]), "source_flux_jy": float(source_spectrum_jy(lam[k])),
                  "background_mjy_sr": float(background_spectrum_mjysr(lam[k]))} for k in order]
    written.append(write_csv(outdir / "miri_lrs_truth_spectrum.csv", spec_rows))
    written.append(write_csv(outdir / "miri_lrs_truth_cosmic_rays.csv", cr_rows,
                             fieldnames=["file", "y", "x", "added_mjy_sr"]))
    exp_rows = [{"file": lx.exp.filename("cal"), "role": lx.role, "nod": lx.nod,
                 "repeat": lx.repeat,
                 "x1d": lx.x1d_path.name if lx.x1d_path else "",
                 "source_x": lx.source_x, "ra_ref": lx.ra_ref, "dec_ref": lx.dec_ref,
                 "target": (SCI_TARGET if lx.role == "science" else BKG_TARGET)["proposer_name"]}
                for lx in exposures]
    written.append(write_csv(outdir / "miri_lrs_truth_exposures.csv", exp_rows))
    if write_asn:
        sci = [lx.cal_path.name for lx in exposures if lx.role == "science"]
        bkg = [lx.x1d_path.name for lx in exposures if lx.role == "background" and lx.x1d_path]
        written.append(write_level3_asn(outdir, sci, bkg, program=program))
    return written


def write_level3_asn(outdir, science: Sequence[str], background: Sequence[str],
                     program: str = PROGRAM_DEFAULT, asn_id: str = "o003",
                     name: str | None = None) -> Path:
    """Hand-written spec3 association (jwst asn JSON format) for the LRS program.

    Science members: cal files (``exptype: science``); background members: the
    background exposures' Stage 2 x1d files (``exptype: background``).  A simplified
    stand-in: the associations jwst's DMS rules make from these headers
    (:func:`spec3flow.associations.generate_associations`) also list each science
    exposure's own x1d as a background member (nodded LRS), and name this set
    ``c1000`` (``o003`` holds only the nodded science x1d).
    """
    program = f"{int(program):05d}"
    product = PRODUCT_NAME.format(program=program)
    asn = {
        "asn_type": "spec3",
        "asn_rule": "candidate_Asn_Lv3SpecAux",
        "version_id": None,
        "code_version": "3.0.0",
        "degraded_status": "No known degraded exposures in association.",
        "program": program,
        "constraints": "synthetic (spec3flow.synth.miri_lrs)",
        "asn_id": asn_id,
        "target": "t001",
        "asn_pool": "synthetic_miri_lrs_pool",
        "products": [{
            "name": product,
            "members": [{"expname": s, "exptype": "science"} for s in science]
            + [{"expname": b, "exptype": "background"} for b in background],
        }],
    }
    path = Path(outdir) / (name or f"jw{program}-{asn_id}_spec3_00001_asn.json")
    path.write_text(json.dumps(asn, indent=4) + "\n")
    return path
