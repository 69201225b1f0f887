"""Synthetic Stage 2 WFSS products: ``NIS_WFSS``, ``NRC_WFSS`` and ``MIR_WFSS``.

:func:`generate_wfss` writes, for one instrument, what calwebb_spec2 leaves for
calwebb_spec3: one ``MultiSlitModel`` ``*_cal.fits`` per grism exposure, holding one
2-D cut-out (``SlitModel``) per source and spectral order 1, exactly as
``jwst.extract_2d`` lays them out, plus one small direct-image ``*_cal.fits``
(``NIS_IMAGE``/``NRC_IMAGE``/``MIR_IMAGE``) in the same observation, as real WFSS
observations carry.  Defaults: 4 sources, 3 dithers, source 4 outside the field of
view in the last dither (no slit there), so it has 2 exposures instead of 3.

===========  ===  ==========  ======  ============  ================  ===========
EXP_TYPE     obs  detector    filter  pupil         dispersion        trace
===========  ===  ==========  ======  ============  ================  ===========
NIS_WFSS     010  NIS         GR150C  F200W         rows (dispaxis 1) 1.75-2.23 um over 100 px
NRC_WFSS     011  NRCALONG    F356W   GRISMR        rows (dispaxis 1) 3.10-4.00 um over 200 px
MIR_WFSS     012  MIRIMAGE    P750L   (none)        columns (disp. 2) 5.0-12.0 um over 200 px
===========  ===  ==========  ======  ============  ================  ===========

(the trace lengths are shorter than the real ones to keep files small; see
:data:`WFSS_CONFIGS`).

Per-slit WCS (what ``extract_2d.grisms.extract_grism_objects`` builds)::

    grism_slit (x, y cut-out pixels; bounding box = cut-out)
      -> grism_detector  Mapping((0,1,0,0,0)) | Shift(xmin) & Shift(ymin) & Const1D(x0)
                         & Const1D(y0) & Const1D(order)
      -> detector (x0, y0, wavelength, order)   the instrument's own jwst dispersion
                         model (NIRISSForwardRowGrismDispersion / NIRCAMForwardRow... /
                         MIRIWFSSForwardDispersion) with the matching backward model as
                         inverse, linear traces
      -> v2v3            (Shift | AffineTransformation2D) & Identity(2)
      -> world           (V2V3 -> ICRS rotation, as jwst.assign_wcs.pointing) & Identity(2)

``(x0, y0)`` is the source's direct-image (full-frame, 0-based) pixel in that exposure,
computed from the source RA/Dec with the inverse of the exposure's imaging WCS.  Every
slit carries the ``wavelength`` array (extract_2d's ``compute_wavelength``), so
extract_1d never evaluates the WCS pixel by pixel.  ``slits[0].meta.wcsinfo.s_region``
is the exposure's full-detector footprint (Spec3Pipeline unions them for the x1d).

Data are MJy/sr (photom done, background subtracted): each dispersion-axis pixel of a
trace holds ``F_nu(lambda) / (pixel area * 1e6)`` spread over the cross-dispersion axis
with a pixel-integrated Gaussian, so the default WFSS extraction in spec3 (no
EXTRACT1D reference: box = whole cut-out) returns FLUX = the truth spectrum in Jy.

Truth tables (prefix ``truth_{mode}`` with mode ``nis_wfss``/``nrc_wfss``/``mir_wfss``):
``_sources.csv`` (source_id, ra, dec, spectrum parameters, n_exposures, missing_from),
``_spectra.csv`` (source_id, wavelength_um, flux_jy), ``_exposures.csv`` (file, dither,
pointing, source ids present), ``_slits.csv`` (file, source_id, x0, y0, xstart, ystart,
xsize, ysize), ``_cosmic_rays.csv`` (file, source_id, y, x, added_mjy_sr; these are
flagged ``JUMP_DET|DO_NOT_USE`` as Stage 1 would, and kept > 3 sigma off the trace).

Level 3 association jwst makes from these headers (``spec3flow.associations``):
``jw01234-o010_spec3_00001_asn`` -> product ``jw01234-o010_t001_niriss_gr150c-f200w``
(and ``-o011`` ``..._nircam_f356w-grismr``, ``-o012`` ``..._miri_p750l``); the
pipeline writes ``<product>_x1d.fits`` and ``<product>_c1d.fits`` in the *current
directory*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .common import (
    DEFAULT_PROGRAM,
    ExposureId,
    TargetInfo,
    fill_exposure_meta,
    make_noise,
    make_rng,
    s_region_polygon,
    save_model_fast,
    set_cal_steps,
    write_csv,
)

__all__ = [
    "WFSS_CONFIGS",
    "WFSS_MODES",
    "WfssConfig",
    "WfssSource",
    "build_exposure_wcs",
    "build_slit_wcs",
    "default_sources",
    "generate_wfss",
    "generate_all_wfss",
    "source_flux_jy",
]

ARCSEC = 1.0 / 3600.0


@dataclass(frozen=True)
class WfssConfig:
    """Instrument set-up of one WFSS mode (synthetic, loosely after the real one)."""

    mode: str  # 'nis_wfss' | 'nrc_wfss' | 'mir_wfss'
    exp_type: str
    instrument: str
    detector: str
    observation: str
    optical: dict
    image_exp_type: str
    image_optical: dict
    dispaxis: int  # 1 rows, 2 columns
    lam_min: float  # um at t = 0
    lam_max: float  # um at t = 1
    trace_len: float  # pixels along dispersion for t = 0..1
    trace_start: float  # offset (px) of t = 0 from the direct-image position
    trace_tilt: float  # cross-dispersion drift (px) over t = 0..1
    pixscale: float  # arcsec / px
    frame_time: float
    readpatt: str
    ngroups: int
    shape: tuple[int, int]  # full-frame (ny, nx)
    v2_ref: float
    v3_ref: float
    v3yangle: float
    vparity: int
    aperture: str
    psf_sigma: float  # cross-dispersion Gaussian sigma, px
    half_height: int  # cut-out half height (cross-dispersion), px
    flux_per_electron: float  # MJy/sr per electron (sets S/N)
    read_noise_e: float = 12.0
    template: str = ""

    @property
    def pixarea_sr(self) -> float:
        return (self.pixscale / 206264.80624709636) ** 2

    @property
    def stage1_steps(self) -> tuple[str, ...]:
        if self.instrument == "MIRI":
            return ("group_scale", "dq_init", "emicorr", "saturation", "firstframe", "lastframe",
                    "reset", "linearity", "rscd", "dark_sub", "refpix", "jump", "ramp_fit",
                    "gain_scale")
        return ("group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity",
                "dark_sub", "jump", "ramp_fit", "gain_scale")


WFSS_CONFIGS: dict[str, WfssConfig] = {
    "nis_wfss": WfssConfig(
        mode="nis_wfss", exp_type="NIS_WFSS", instrument="NIRISS", detector="NIS",
        observation="010", optical={"filter": "GR150C", "pupil": "F200W"},
        image_exp_type="NIS_IMAGE", image_optical={"filter": "CLEAR", "pupil": "F200W"},
        dispaxis=1, lam_min=1.75, lam_max=2.23, trace_len=100.0, trace_start=-60.0,
        trace_tilt=1.5, pixscale=0.0656, frame_time=10.7368, readpatt="NIS", ngroups=16,
        shape=(2048, 2048), v2_ref=-290.1, v3_ref=-697.5, v3yangle=-0.57, vparity=-1,
        aperture="NIS_CEN", psf_sigma=1.1, half_height=8, flux_per_electron=0.02,
        template="NIRISS Wide Field Slitless Spectroscopy",
    ),
    "nrc_wfss": WfssConfig(
        mode="nrc_wfss", exp_type="NRC_WFSS", instrument="NIRCAM", detector="NRCALONG",
        observation="011", optical={"filter": "F356W", "pupil": "GRISMR", "module": "A",
                                    "channel": "LONG"},
        image_exp_type="NRC_IMAGE",
        image_optical={"filter": "F356W", "pupil": "CLEAR", "module": "A", "channel": "LONG"},
        dispaxis=1, lam_min=3.10, lam_max=4.00, trace_len=200.0, trace_start=30.0,
        trace_tilt=-2.0, pixscale=0.063, frame_time=10.73677, readpatt="SHALLOW4",
        ngroups=9, shape=(2048, 2048), v2_ref=86.1, v3_ref=-493.2, v3yangle=-0.55,
        vparity=-1, aperture="NRCA5_GRISM256_F356W", psf_sigma=1.4, half_height=9,
        flux_per_electron=0.02, template="NIRCam Wide Field Slitless Spectroscopy",
    ),
    "mir_wfss": WfssConfig(
        mode="mir_wfss", exp_type="MIR_WFSS", instrument="MIRI", detector="MIRIMAGE",
        observation="012", optical={"filter": "P750L"},
        image_exp_type="MIR_IMAGE", image_optical={"filter": "F560W"},
        dispaxis=2, lam_min=5.0, lam_max=12.0, trace_len=200.0, trace_start=-180.0,
        trace_tilt=1.0, pixscale=0.11, frame_time=2.77504, readpatt="FASTR1", ngroups=40,
        shape=(1024, 1032), v2_ref=-453.4, v3_ref=-373.8, v3yangle=4.45, vparity=-1,
        aperture="MIRIM_FULL", psf_sigma=1.3, half_height=8, flux_per_electron=0.05,
        read_noise_e=14.0, template="MIRI Wide Field Slitless Spectroscopy",
    ),
}
WFSS_MODES = tuple(WFSS_CONFIGS)

START_MJD = {"nis_wfss": 60500.10, "nrc_wfss": 60500.30, "mir_wfss": 60500.50}
FIELD_RA, FIELD_DEC = 150.1163, 2.2056  # COSMOS-like field centre
ROLL_REF = 45.0
DITHER_STEP_ARCSEC = (0.0, 3.0)  # per dither step, (dx, dy) detector-aligned, arcsec


# ----------------------------------------------------------------------------- sources
@dataclass
class WfssSource:
    """One source: sky position and spectrum ``F = f0 (lam/lam_c)^alpha + line``."""

    source_id: int
    ra: float
    dec: float
    f0_jy: float
    alpha: float
    line_um: float
    line_jy: float
    line_sigma_um: float
    missing_dithers: tuple[int, ...] = ()  # 1-based dither numbers with no slit


def source_flux_jy(src: WfssSource, lam_um, lam_c: float):
    """Truth spectrum of ``src`` in Jy at ``lam_um``; ``lam_c`` = band centre."""
    lam = np.asarray(lam_um, dtype=float)
    cont = src.f0_jy * (lam / lam_c) ** src.alpha
    line = src.line_jy * np.exp(-0.5 * ((lam - src.line_um) / src.line_sigma_um) ** 2)
    return cont + line


def default_sources(cfg: WfssConfig, n_sources: int, n_dithers: int, seed: int
                    ) -> list[WfssSource]:
    """``n_sources`` sources spread over the field; the last one is placed so that the
    last dither moves it off the detector (its slit is missing there)."""
    rng = make_rng(seed, "wfss_sources", cfg.mode)
    ny, nx = cfg.shape
    out = []
    lam_c = 0.5 * (cfg.lam_min + cfg.lam_max)
    for i in range(n_sources):
        sid = i + 1
        # detector offsets (pixels) from the reference pixel of dither 1
        frac = (i + 0.5) / max(n_sources, 1)
        if cfg.dispaxis == 1:
            dx = (rng.uniform(-0.25, 0.25)) * nx
            dy = (frac - 0.5) * 0.7 * ny
        else:
            dx = (frac - 0.5) * 0.7 * nx
            dy = (rng.uniform(-0.15, 0.15)) * ny
        missing: tuple[int, ...] = ()
        if i == n_sources - 1 and n_dithers >= 2 and n_sources >= 2:
            # Each dither moves the pointing by one step across the dispersion, so a
            # source moves by -step px there.  Put the last source where its whole
            # cut-out is just off the detector edge in the last dither (and so on it
            # in all the others: step > cut-out height).
            step = DITHER_STEP_ARCSEC[1] / cfg.pixscale
            off = -(cfg.half_height + abs(cfg.trace_tilt) + 3.0)
            first = off + step * (n_dithers - 1)
            if cfg.dispaxis == 1:
                dy = first - _crpix(cfg)[1]
            else:
                dx = first - _crpix(cfg)[0]
            missing = (n_dithers,)
        out.append(WfssSource(
            source_id=sid, ra=float(dx), dec=float(dy),  # placeholders, set below
            f0_jy=float(rng.uniform(2e-5, 2e-4)), alpha=float(rng.uniform(-2.0, 1.0)),
            line_um=float(rng.uniform(cfg.lam_min + 0.2 * (cfg.lam_max - cfg.lam_min),
                                      cfg.lam_max - 0.2 * (cfg.lam_max - cfg.lam_min))),
            line_jy=float(rng.uniform(1e-4, 4e-4)),
            line_sigma_um=float(0.004 * lam_c), missing_dithers=missing,
        ))
    # detector offsets of dither 1 -> sky
    w0 = build_exposure_wcs(cfg, *_pointing(cfg, 1))
    det2world = w0.get_transform("detector", "world")
    crpix = _crpix(cfg)
    for s in out:
        ra, dec, _, _ = det2world(crpix[0] + s.ra, crpix[1] + s.dec, 2.0, 1)
        s.ra, s.dec = float(ra), float(dec)
    return out


# ----------------------------------------------------------------------------- WCS
def _crpix(cfg: WfssConfig) -> tuple[float, float]:
    ny, nx = cfg.shape
    return (nx - 1) / 2.0, (ny - 1) / 2.0


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


def _pointing(cfg: WfssConfig, dither: int, ra0: float = FIELD_RA, dec0: float = FIELD_DEC
              ) -> tuple[float, float]:
    """(ra_ref, dec_ref) of the reference pixel for 1-based ``dither``.

    Dither ``k`` moves the pointing by (k-1) * DITHER_STEP_ARCSEC in the detector frame
    (x along +x pixels, y along +y pixels)."""
    k = dither - 1
    dxa, dya = DITHER_STEP_ARCSEC[0] * k, DITHER_STEP_ARCSEC[1] * k
    if cfg.dispaxis == 2:  # move across the dispersion (x) for column dispersion
        dxa, dya = dya, dxa
    w = build_exposure_wcs(cfg, ra0, dec0)
    cx, cy = _crpix(cfg)
    ra, dec, _, _ = w.get_transform("detector", "world")(
        cx + dxa / cfg.pixscale, cy + dya / cfg.pixscale, 2.0, 1)
    return float(ra), float(dec)


def _det2v23(cfg: WfssConfig):
    """Full-frame detector pixel (0-based) -> V2, V3 (arcsec): linear, invertible."""
    from astropy.modeling import models

    cx, cy = _crpix(cfg)
    th = np.deg2rad(cfg.v3yangle)
    s = cfg.pixscale
    # ideal frame: x_idl = vparity * s * dx, y_idl = s * dy; then V2/V3 rotation
    mat = np.array([[cfg.vparity * s * np.cos(th), s * np.sin(th)],
                    [-cfg.vparity * s * np.sin(th), s * np.cos(th)]])
    m = (models.Shift(-cx) & models.Shift(-cy)) | models.AffineTransformation2D(
        matrix=mat, translation=[cfg.v2_ref, cfg.v3_ref])
    m.name = "det2v2v3"
    return m


def _dispersion_models(cfg: WfssConfig):
    """(forward, backward) jwst dispersion models: linear trace, order 1 only."""
    from astropy.modeling.models import Polynomial1D, Polynomial2D
    from stdatamodels.jwst.transforms import models as tm

    dl = cfg.lam_max - cfg.lam_min
    L, D0, tilt = cfg.trace_len, cfg.trace_start, cfg.trace_tilt
    orders = [1]
    if cfg.mode == "nrc_wfss":
        # NIRCam: legacy 1-D polynomials in t, explicit inverses (inv_xmodels: dx -> t)
        lmodels = [Polynomial1D(1, c0=cfg.lam_min, c1=dl)]
        inv_lmodels = [Polynomial1D(1, c0=-cfg.lam_min / dl, c1=1.0 / dl)]
        xmodels = [Polynomial1D(1, c0=D0, c1=L)]
        ymodels = [Polynomial1D(1, c0=0.0, c1=tilt)]
        inv_xmodels = [Polynomial1D(1, c0=-D0 / L, c1=1.0 / L)]
        fwd = tm.NIRCAMForwardRowGrismDispersion(
            orders, lmodels=lmodels, xmodels=xmodels, ymodels=ymodels,
            inv_lmodels=inv_lmodels, inv_xmodels=inv_xmodels)
        bwd = tm.NIRCAMBackwardGrismDispersion(
            orders, lmodels=lmodels, xmodels=xmodels, ymodels=ymodels,
            inv_lmodels=inv_lmodels, inv_xmodels=inv_xmodels)
        fwd.inverse = bwd
        return fwd
    # NIRISS / MIRI: coefficients as field-dependent 2-D polynomials (degree 0 here)
    displ = [Polynomial1D(1, c0=cfg.lam_min, c1=dl)]
    invdispl = [Polynomial1D(1, c0=-cfg.lam_min / dl, c1=1.0 / dl)]
    along = [Polynomial2D(0, c0_0=D0), Polynomial2D(0, c0_0=L)]
    across = [Polynomial2D(0, c0_0=0.0), Polynomial2D(0, c0_0=tilt)]
    if cfg.dispaxis == 1:
        dispx, dispy = [along], [across]
    else:
        dispx, dispy = [across], [along]
    if cfg.mode == "nis_wfss":
        fwd = tm.NIRISSForwardRowGrismDispersion(
            orders, lmodels=displ, xmodels=dispx, ymodels=dispy, theta=0.0)
        fwd.inverse = tm.NIRISSBackwardGrismDispersion(
            orders, lmodels=invdispl, xmodels=dispx, ymodels=dispy, theta=0.0)
    else:
        fwd = tm.MIRIWFSSForwardDispersion(orders, lmodels=displ, xmodels=dispx, ymodels=dispy)
        fwd.inverse = tm.MIRIWFSSBackwardDispersion(
            orders, lmodels=invdispl, xmodels=dispx, ymodels=dispy)
    return fwd


def _frames():
    from astropy import coordinates as coord
    from astropy import units as u
    from gwcs import coordinate_frames as cf

    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    gdet = cf.Frame2D(name="grism_detector", axes_order=(0, 1),
                      axes_names=("x_grism", "y_grism"), unit=(u.pix, u.pix))
    gslit = cf.Frame2D(name="grism_slit", axes_order=(0, 1),
                       axes_names=("x_grism", "y_grism"), unit=(u.pix, u.pix))
    det = cf.CompositeFrame([cf.Frame2D(name="detectorspatial", axes_order=(0, 1),
                                        axes_names=("x", "y"), unit=(u.pix, u.pix)), spec],
                            name="detector")
    v2v3 = cf.CompositeFrame([cf.Frame2D(name="v2v3spatial", axes_order=(0, 1),
                                         axes_names=("v2", "v3"),
                                         unit=(u.arcsec, u.arcsec)), spec], name="v2v3")
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="sky", axes_order=(0, 1),
                            unit=(u.deg, u.deg), axes_names=("lon", "lat"))
    world = cf.CompositeFrame([sky, spec], name="world")
    return gslit, gdet, det, v2v3, world


def build_exposure_wcs(cfg: WfssConfig, ra_ref: float, dec_ref: float,
                       roll_ref: float = ROLL_REF):
    """Whole-exposure WCS ``grism_detector -> detector -> v2v3 -> world`` (what
    assign_wcs attaches to a WFSS rate file; ``detector`` is (x0, y0, wavelength, order))."""
    from astropy.modeling import models
    from gwcs import wcs as gwcs_wcs

    _, gdet, det, v2v3, world = _frames()
    det2det = _dispersion_models(cfg)
    d2v = _det2v23(cfg) & models.Identity(2)
    v2s = _v23tosky(cfg.v2_ref, cfg.v3_ref, roll_ref, ra_ref, dec_ref) & models.Identity(2)
    return gwcs_wcs.WCS([(gdet, det2det), (det, d2v), (v2v3, v2s), (world, None)])


def build_slit_wcs(cfg: WfssConfig, exposure_wcs, xmin: int, ymin: int,
                   shape: tuple[int, int], x0: float, y0: float, order: int = 1):
    """Per-slit WCS: ``exposure_wcs`` with ``grism_slit`` inserted first, as
    ``extract_2d.grisms.extract_grism_objects`` does (cut-out origin ``xmin, ymin``,
    direct-image position ``x0, y0`` and ``order`` bound as constants)."""
    import copy

    from astropy.modeling import bind_bounding_box
    from astropy.modeling.models import Const1D, Mapping, Shift

    w = copy.deepcopy(exposure_wcs)
    xc, yc, om = Const1D(x0), Const1D(y0), Const1D(order)
    xc.inverse, yc.inverse, om.inverse = Const1D(x0), Const1D(y0), Const1D(order)
    tr = Mapping((0, 1, 0, 0, 0)) | (Shift(xmin) & Shift(ymin) & xc & yc & om)
    ny, nx = shape
    bind_bounding_box(tr, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
    gslit = _frames()[0]
    w.insert_frame(input_frame=gslit, output_frame="grism_detector", transform=tr)
    return w


def _detector_s_region(cfg: WfssConfig, w) -> str:
    ny, nx = cfg.shape
    xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec, _, _ = w.get_transform("detector", "world")(xs, ys, 2.0, 1)
    return s_region_polygon(ra, dec)


# ----------------------------------------------------------------------------- data
def _profile(y, yc, sigma):
    from scipy.special import erf

    s2 = math.sqrt(2.0) * sigma
    return 0.5 * (erf((y + 0.5 - yc) / s2) - erf((y - 0.5 - yc) / s2))


@dataclass
class _SlitGeom:
    source_id: int
    x0: float
    y0: float
    xmin: int
    ymin: int
    shape: tuple[int, int]


def _slit_geometry(cfg: WfssConfig, x0: float, y0: float, sid: int) -> _SlitGeom:
    """Cut-out covering t = 0..1 along dispersion, +-half_height across the trace."""
    a0, a1 = cfg.trace_start, cfg.trace_start + cfg.trace_len
    c0, c1 = sorted((0.0, cfg.trace_tilt))
    h = cfg.half_height
    if cfg.dispaxis == 1:
        xmin, xmax = int(math.floor(x0 + a0)), int(math.ceil(x0 + a1))
        ymin, ymax = int(math.floor(y0 + c0 - h)), int(math.ceil(y0 + c1 + h))
    else:
        xmin, xmax = int(math.floor(x0 + c0 - h)), int(math.ceil(x0 + c1 + h))
        ymin, ymax = int(math.floor(y0 + a0)), int(math.ceil(y0 + a1))
    return _SlitGeom(sid, x0, y0, xmin, ymin, (ymax - ymin + 1, xmax - xmin + 1))


def _on_detector(cfg: WfssConfig, g: _SlitGeom) -> bool:
    ny, nx = cfg.shape
    return (g.xmin >= 0 and g.ymin >= 0 and g.xmin + g.shape[1] <= nx
            and g.ymin + g.shape[0] <= ny)


def _slit_truth(cfg: WfssConfig, g: _SlitGeom, src: WfssSource):
    """Noise-free slit image (MJy/sr) and wavelength array of one cut-out."""
    ny, nx = g.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    X, Y = xx + g.xmin, yy + g.ymin
    if cfg.dispaxis == 1:
        t = (X - g.x0 - cfg.trace_start) / cfg.trace_len
        centre = g.y0 + cfg.trace_tilt * t - g.ymin
        across = yy
    else:
        t = (Y - g.y0 - cfg.trace_start) / cfg.trace_len
        centre = g.x0 + cfg.trace_tilt * t - g.xmin
        across = xx
    lam = cfg.lam_min + (cfg.lam_max - cfg.lam_min) * t
    lam_c = 0.5 * (cfg.lam_min + cfg.lam_max)
    fnu = source_flux_jy(src, lam, lam_c)
    inside = (t >= 0) & (t <= 1)
    img = np.where(inside, fnu / (cfg.pixarea_sr * 1e6) * _profile(across, centre, cfg.psf_sigma),
                   0.0)
    return img, lam, centre


def _dq():
    from stdatamodels.jwst.datamodels import dqflags

    return dqflags.pixel


def _fill_meta(model, cfg: WfssConfig, exp: ExposureId, exp_type: str, optical: dict,
               start: float, n_in_visit: int, dither: int, n_dithers: int,
               ra_ref: float, dec_ref: float, exposure_time: float):
    target = TargetInfo(proposer_name="SYNTH-WFSS-FIELD", catalog_name="SYNTH-WFSS-FIELD",
                        ra=FIELD_RA, dec=FIELD_DEC, source_type=None, target_id=1)
    ny, nx = cfg.shape
    opt = {"detector": cfg.detector, **optical}
    if cfg.instrument == "NIRISS":
        opt["filter_position"] = 0.0  # FWCPOS, used by assign_wcs for the grism rotation
    fill_exposure_meta(
        model, exp, instrument=cfg.instrument, exp_type=exp_type, target=target,
        start_mjd=start, exposure_time=exposure_time, nints=1, ngroups=cfg.ngroups,
        nframes=1, frame_time=cfg.frame_time, readpatt=cfg.readpatt,
        template=cfg.template, visit_type="PRIME_TARGETED_FIXED",
        total_exposures=n_in_visit, optical=opt,
        dither={"primary_type": "NONE" if exp_type.endswith("IMAGE") else "FULL",
                "position_number": dither, "total_points": n_dithers,
                "x_offset": 0.0, "y_offset": float(DITHER_STEP_ARCSEC[1] * (dither - 1))},
        wcsinfo={"v2_ref": cfg.v2_ref, "v3_ref": cfg.v3_ref, "vparity": cfg.vparity,
                 "v3yangle": cfg.v3yangle, "ra_ref": ra_ref, "dec_ref": dec_ref,
                 "roll_ref": ROLL_REF, "crpix1": _crpix(cfg)[0] + 1,
                 "crpix2": _crpix(cfg)[1] + 1, "wcsaxes": 2},
        pointing={"pa_v3": ROLL_REF},
        subarray={"name": "FULL", "xstart": 1, "ystart": 1, "xsize": nx, "ysize": ny,
                  "fastaxis": 1, "slowaxis": 2},
        aperture_name=cfg.aperture,
        extra_pool_keywords={"pntgtype": "SCIENCE", "dithptin": dither, "targordn": 1},
    )
    _set_photometry(model, cfg)
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    try:  # ImageModel only (MultiSlitModel lacks the block at top level)
        model.meta.velocity_aberration.scale_factor = 1.0
    except AttributeError:
        pass


def _set_photometry(model, cfg: WfssConfig) -> None:
    """Pixel area keywords (ImageModel top level, or each SlitModel of a MultiSlitModel)."""
    try:
        model.meta.photometry.pixelarea_steradians = cfg.pixarea_sr
        model.meta.photometry.pixelarea_arcsecsq = cfg.pixscale**2
    except AttributeError:
        pass


@dataclass
class _Exposure:
    dither: int
    exp: ExposureId
    ra_ref: float
    dec_ref: float
    start: float
    path: Path | None = None
    slits: list = field(default_factory=list)


def _exposure_time(cfg: WfssConfig) -> float:
    return cfg.frame_time * cfg.ngroups


def _make_grism_model(cfg: WfssConfig, ex: _Exposure, sources: Sequence[WfssSource],
                      seed: int, n_dithers: int, n_in_visit: int, n_cosmic_rays: int,
                      cr_rows: list, slit_rows: list):
    from stdatamodels.jwst import datamodels as dm

    dqf = _dq()
    w = build_exposure_wcs(cfg, ex.ra_ref, ex.dec_ref)
    world2det = w.get_transform("world", "detector")
    model = dm.MultiSlitModel()
    _fill_meta(model, cfg, ex.exp, cfg.exp_type, cfg.optical, ex.start, n_in_visit,
               ex.dither, n_dithers, ex.ra_ref, ex.dec_ref, _exposure_time(cfg))
    set_cal_steps(model, complete=cfg.stage1_steps + (
        "assign_wcs", "bkg_subtract", "extract_2d", "srctype", "flat_field", "photom"),
        skipped=("wfss_contam",))
    present = []
    for src in sources:
        x0, y0, _, _ = world2det(src.ra, src.dec, 0.5 * (cfg.lam_min + cfg.lam_max), 1)
        x0, y0 = float(x0), float(y0)
        g = _slit_geometry(cfg, x0, y0, src.source_id)
        if ex.dither in src.missing_dithers:
            if _on_detector(cfg, g):  # pragma: no cover - geometry guard
                raise RuntimeError(f"source {src.source_id} meant to be off the detector")
            continue
        if not _on_detector(cfg, g):
            raise RuntimeError(f"source {src.source_id} trace off the detector in dither "
                               f"{ex.dither}; use fewer dithers/sources")
        truth, lam, centre = _slit_truth(cfg, g, src)
        rng = make_rng(seed, cfg.mode, ex.exp.filename("cal"), src.source_id)
        noise = make_noise(truth, rng, flux_per_electron=cfg.flux_per_electron,
                           read_noise_electrons=cfg.read_noise_e)
        dq = np.zeros(g.shape, dtype=np.uint32)
        # one hot pixel per slit, far from the trace
        across = np.arange(g.shape[0] if cfg.dispaxis == 1 else g.shape[1])
        along_n = g.shape[1] if cfg.dispaxis == 1 else g.shape[0]
        cmid = float(np.median(centre))
        far = [int(a) for a in across if abs(a - cmid) > 3 * cfg.psf_sigma + 2]
        a = int(rng.choice(far))
        b = int(rng.integers(2, along_n - 2))
        yx = (a, b) if cfg.dispaxis == 1 else (b, a)
        dq[yx] = dqf["DO_NOT_USE"] | dqf["HOT"]
        # cosmic rays: flagged like Stage 1 jump detection, off the trace core
        for _ in range(n_cosmic_rays):
            a = int(rng.choice(far))
            b = int(rng.integers(1, along_n - 1))
            yx = (a, b) if cfg.dispaxis == 1 else (b, a)
            if dq[yx]:
                continue
            add = float(rng.uniform(80, 300) * noise.err[yx])
            noise.data[yx] += np.float32(add)
            dq[yx] = dqf["DO_NOT_USE"] | dqf["JUMP_DET"]
            cr_rows.append({"file": ex.exp.filename("cal"), "source_id": src.source_id,
                            "y": yx[0], "x": yx[1], "added_mjy_sr": add})
        slit = dm.SlitModel(data=noise.data, dq=dq, err=noise.err)
        slit.var_poisson = noise.var_poisson
        slit.var_rnoise = noise.var_rnoise
        slit.var_flat = noise.var_flat
        slit.wavelength = lam.astype(np.float32)
        slit.name = str(src.source_id)
        slit.source_id = src.source_id
        slit.source_ra = src.ra
        slit.source_dec = src.dec
        slit.source_xpos = x0
        slit.source_ypos = y0
        slit.source_type = "POINT"
        slit.is_extended = False
        slit.xstart = g.xmin + 1
        slit.ystart = g.ymin + 1
        slit.xsize = g.shape[1]
        slit.ysize = g.shape[0]
        slit.meta.wcsinfo.spectral_order = 1
        slit.meta.wcsinfo.dispersion_direction = cfg.dispaxis
        slit.meta.wcsinfo.specsys = "BARYCENT"
        slit.meta.bunit_data = "MJy/sr"
        slit.meta.bunit_err = "MJy/sr"
        _set_photometry(slit, cfg)
        slit.meta.wcs = build_slit_wcs(cfg, w, g.xmin, g.ymin, g.shape, x0, y0, 1)
        model.slits.append(slit)
        present.append(src.source_id)
        slit_rows.append({"file": ex.exp.filename("cal"), "dither": ex.dither,
                          "source_id": src.source_id, "x0": x0, "y0": y0,
                          "xstart": g.xmin + 1, "ystart": g.ymin + 1,
                          "xsize": g.shape[1], "ysize": g.shape[0]})
    if not model.slits:
        raise RuntimeError("exposure without slits")
    model.slits[0].meta.wcsinfo.s_region = _detector_s_region(cfg, w)
    return model, present


def _make_direct_image(cfg: WfssConfig, exp: ExposureId, ra_ref: float, dec_ref: float,
                       start: float, n_in_visit: int, n_dithers: int):
    """Small direct-image ``*_cal.fits`` of the observation (header carrier: the data
    are a 32x32 zero cut-out; it makes the program look like a real WFSS observation and
    gives jwst's rules the image exposure Level 2 WFSS associations point at)."""
    from stdatamodels.jwst import datamodels as dm

    data = np.zeros((32, 32), dtype=np.float32)
    model = dm.ImageModel(data=data, err=np.ones_like(data) * 0.01,
                          dq=np.zeros(data.shape, np.uint32))
    _fill_meta(model, cfg, exp, cfg.image_exp_type, cfg.image_optical, start, n_in_visit,
               1, 1, ra_ref, dec_ref, _exposure_time(cfg) / 2)
    model.meta.subarray.xsize = 32
    model.meta.subarray.ysize = 32
    set_cal_steps(model, complete=cfg.stage1_steps + ("assign_wcs", "flat_field", "photom"))
    w = build_exposure_wcs(cfg, ra_ref, dec_ref)
    model.meta.wcsinfo.s_region = _detector_s_region(cfg, w)
    return model


# ----------------------------------------------------------------------------- API
def generate_wfss(
    outdir: str | Path,
    mode: str = "nis_wfss",
    n_sources: int = 4,
    n_dithers: int = 3,
    seed: int = 1,
    *,
    program: str = DEFAULT_PROGRAM,
    observation: str | None = None,
    n_cosmic_rays: int = 2,
    direct_image: bool = True,
    truth_prefix: str | None = None,
) -> list[Path]:
    """Write one synthetic WFSS program (``mode``: nis_wfss, nrc_wfss, mir_wfss).

    Returns the files written: the direct image cal (if ``direct_image``), the grism
    cal files in exposure order, then the truth CSVs.  The last source is missing from
    the last dither (off the detector) when ``n_sources >= 2`` and ``n_dithers >= 2``.
    Deterministic for given arguments (apart from FITS/ASDF creation dates).
    """
    mode = mode.lower()
    if mode not in WFSS_CONFIGS:
        raise ValueError(f"mode must be one of {WFSS_MODES}, got {mode!r}")
    if n_sources < 1 or n_dithers < 1:
        raise ValueError("n_sources and n_dithers must be >= 1")
    cfg = WFSS_CONFIGS[mode]
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    program = f"{int(program):05d}"
    obs = observation or cfg.observation
    prefix = truth_prefix or f"truth_{mode}"
    sources = default_sources(cfg, n_sources, n_dithers, seed)
    n_in_visit = n_dithers + (1 if direct_image else 0)
    gap = (_exposure_time(cfg) * 1.02 + 60.0) / 86400.0
    t0 = START_MJD[mode]

    written: list[Path] = []
    if direct_image:
        exp = ExposureId(program=program, observation=obs, visit="001", visit_group="02",
                         sequence="1", activity="01", exposure="00001", detector=cfg.detector)
        ra, dec = _pointing(cfg, 1)
        m = _make_direct_image(cfg, exp, ra, dec, t0, n_in_visit, n_dithers)
        p = outdir / exp.filename("cal")
        m.save(p)
        m.close()
        written.append(p)

    cr_rows: list[dict] = []
    slit_rows: list[dict] = []
    exp_rows: list[dict] = []
    for d in range(1, n_dithers + 1):
        exp = ExposureId(program=program, observation=obs, visit="001", visit_group="02",
                         sequence="1", activity="02", exposure=f"{d:05d}",
                         detector=cfg.detector)
        ra, dec = _pointing(cfg, d)
        ex = _Exposure(d, exp, ra, dec, t0 + d * gap)
        model, present = _make_grism_model(cfg, ex, sources, seed, n_dithers, n_in_visit,
                                           n_cosmic_rays, cr_rows, slit_rows)
        p = outdir / exp.filename("cal")
        save_model_fast(model, p)
        model.close()
        written.append(p)
        exp_rows.append({"file": p.name, "dither": d, "ra_ref": ra, "dec_ref": dec,
                         "source_ids": " ".join(map(str, present))})

    lam_c = 0.5 * (cfg.lam_min + cfg.lam_max)
    src_rows = [{
        "source_id": s.source_id, "ra": s.ra, "dec": s.dec, "f0_jy": s.f0_jy,
        "alpha": s.alpha, "lam_c_um": lam_c, "line_um": s.line_um, "line_jy": s.line_jy,
        "line_sigma_um": s.line_sigma_um,
        "n_exposures": n_dithers - len(s.missing_dithers),
        "missing_from": " ".join(r["file"] for r in exp_rows
                                 if r["dither"] in s.missing_dithers),
    } for s in sources]
    lam = np.linspace(cfg.lam_min, cfg.lam_max, 200)
    spec_rows = [{"source_id": s.source_id, "wavelength_um": float(l),
                  "flux_jy": float(source_flux_jy(s, l, lam_c))} for s in sources for l in lam]
    written.append(write_csv(outdir / f"{prefix}_sources.csv", src_rows))
    written.append(write_csv(outdir / f"{prefix}_spectra.csv", spec_rows))
    written.append(write_csv(outdir / f"{prefix}_exposures.csv", exp_rows))
    written.append(write_csv(outdir / f"{prefix}_slits.csv", slit_rows))
    written.append(write_csv(outdir / f"{prefix}_cosmic_rays.csv", cr_rows,
                             fieldnames=["file", "source_id", "y", "x", "added_mjy_sr"]))
    return written


def generate_all_wfss(outdir: str | Path, n_sources: int = 4, n_dithers: int = 3,
                      seed: int = 1, *, program: str = DEFAULT_PROGRAM,
                      modes: Sequence[str] = WFSS_MODES, **kw) -> list[Path]:
    """:func:`generate_wfss` for each of ``modes`` (default all three) into ``outdir``."""
    out: list[Path] = []
    for m in modes:
        out.extend(generate_wfss(outdir, m, n_sources, n_dithers, seed, program=program, **kw))
    return out
