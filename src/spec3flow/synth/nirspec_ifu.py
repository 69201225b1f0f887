"""Synthetic Stage 2 products for NIRSpec IFU (``NRS_IFU``).

:func:`generate_nirspec_ifu` writes a small program that calwebb_spec3 (jwst 3.0.0)
runs on end to end (outlier_detection ``ifu`` -> cube_build -> extract_1d):

================================  ===  =======  ====================================
file stem                         obs  dither   content
================================  ===  =======  ====================================
jw01234006001_02101_0000{1..4}    006  1..4     point source, 4-POINT-NOD pattern;
                                                exposure 00002 has the cosmic rays
jw01234007001_02101_0000{1..2}    007  1..2     ``background=True`` only: dedicated
                                                background (BKGDTARG=T, sky only,
                                                SRCTYPE=EXTENDED), cal + x1d
================================  ===  =======  ====================================

Every cal file is an ``IFUImageModel`` ``*_nrs1_cal.fits`` (MJy/sr, G235M/F170LP) with

- a ``regions`` slice map (0 = no slice, ``1..30`` = slice id + 1, what
  ``jwst.assign_wcs.nirspec.nrs_ifu_wcs`` attaches);
- the "coordinates" style IFU WCS that jwst >= 1.18 assign_wcs writes
  (:func:`build_ifu_wcs`)::

      coordinates --Identity(2)--> detector --RegionsSelector(LabelMapperArray(regions),
          {1..30: per-slice model with its bounding box})--> slicer
          --> v2v3 --> world

  ``jwst.assign_wcs.nirspec.nrs_wcs_set_input(model, i)`` returns the slice-``i`` WCS
  with the slice bounding box, which is how cube_build walks the slices;
- ERR / VAR_POISSON / VAR_RNOISE / VAR_FLAT consistent with the noise drawn;
- DQ ``DO_NOT_USE|NON_SCIENCE`` (and NaN data) between the slices.

Geometry (simplified; real NRS_IFU is a 2048 x 2048 full frame):

- the array is a ``NY x NX`` = 960 x ``nx`` (default 100) cut-out: 30 slices, each
  ``NALONG`` = 30 rows (3.0" along the slice at 0.1"/px) plus a 2-row gap, stacked in
  slice-id order; dispersion along x (``dispersion_direction = 1``), linear
  ``lambda = LAM0 + DLAM * x`` (2.000-2.105 um with 0.00106 um/px, G235M-like),
  the same in every slice; straight traces (no curvature, no slice tilt);
- slice id ``i`` sits at across-slice position ``SLICEMAP[i]`` (the interleaving
  cube_build assumes, so slices 0 and 2 are neighbours), 0.1" wide;
- headers: ``SUBARRAY='FULL'`` (real IFU data are full frame), SUBSTRT/SUBSIZE give the
  cut-out (SUBSTRT1 900, moved left when ``nx`` > 1149 so that it stays on the detector);
- slicer frame: ``x_slicer`` across / ``y_slicer`` along the slices in arcsec (real:
  dimensionless), wavelength in metres (as real); slicer -> v2v3 a rotation + shift,
  v2v3 -> world the standard JWST V2V3 -> sky rotation.

Scene: one point source at the target position (TARG_RA/DEC), Gaussian PSF
(sigma = ``PSF_SIGMA_ARCSEC_2UM`` * lambda/2um) integrated exactly over each pixel's
0.1" x 0.1" footprint, spectrum :func:`source_spectrum_jy`.  By default no sky (the
cal files are background-free); with ``background=True`` a uniform sky
:func:`sky_spectrum_mjysr` (~8 MJy/sr, ~20% of the source flux in the extraction
aperture) is added to every pixel of every exposure before the noise is drawn, and
``n_background`` dedicated background exposures (obs 007, 1' away, same optical path and
detector) see only that sky.  Their Stage 2 ``*_nrs1_x1d.fits`` (what calwebb_spec2's
extended-source extraction of the whole cube gives) is built directly as a
``MultiSpecModel`` from the cal data: the mean over the field at each wavelength in
SURF_BRIGHT and BACKGROUND (:func:`spec3flow.synth.common.ifu_background_x1d`).
Cosmic rays (DQ 0) are added to one exposure; ``n_hot_pixels`` "hot pixels" (DQ 0) sit on
the same detector pixels in every science exposure (background exposures are clean).
jwst's IFU outlier detection flags pixels whose *minimum* neighbour difference over
all exposures of a detector is in the top ``100 - threshold_percent`` percent: it
flags the persistent hot pixels in every crf, not single-exposure cosmic rays.

Truth tables (CSV): ``nrs_ifu_truth_spectrum.csv`` (wavelength_um, source_flux_jy,
sky_mjy_sr (0 without ``background``) on the detector wavelength grid),
``nrs_ifu_truth_outliers.csv`` (file, y, x, added_mjy_sr, kind = cosmic_ray | hot_pixel),
``nrs_ifu_truth_exposures.csv`` (dither, pointing, target position in slicer
coordinates, role = science | background, the background exposures' x1d).

Associations jwst generates from these headers (:mod:`spec3flow.associations`):
``jw01234-o006_spec3_00001_asn`` (``candidate_Asn_Lv3NRSIFU``), product
``jw01234-o006_t004_nirspec_g235m`` (NRS_IFU products carry the grating only), science
cal files only.  With ``background=True`` also ``jw01234-c1000_spec3_00001_asn``
(``candidate_Asn_Lv3NRSIFU``: the science cal files plus the background x1d files as
``exptype: background``, so calwebb_spec3 runs master_background; product
``jw01234-c1000_t004_nirspec_g235m``; the ``c`` number counts up per program, c1001 when
another observation's candidate comes first) and ``jw01234-o007_spec3_00001_asn`` (the
background observation reduced as a target of its own, product
``jw01234-o007_t006_nirspec_g235m``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec3flow.synth.common import (
    ExposureId,
    TargetInfo,
    fill_exposure_meta,
    ifu_background_x1d,
    inject_cosmic_rays,
    make_noise,
    make_rng,
    s_region_polygon,
    set_cal_steps,
    write_csv,
)

__all__ = [
    "generate_nirspec_ifu",
    "build_ifu_wcs",
    "sky_spectrum_mjysr",
    "wavelength_map",
    "make_regions",
    "source_spectrum_jy",
    "wavelength_of_column",
    "pixel_fraction",
    "slice_rows",
    "IfuExposure",
    "PRODUCT_NAME",
    "SLICEMAP",
    "NSLICE",
    "NALONG",
    "NY",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- geometry
NSLICE = 30
NALONG = 30  # pixels along a slice (3.0")
GAP = 2  # rows between slices
PITCH = NALONG + GAP
NY = NSLICE * PITCH  # 960
NX_DEFAULT = 100
PSCALE = 0.1  # arcsec/px along the slice; slice width is also 0.1"
SLICE_WIDTH = 0.1
LAM0 = 2.000  # um at column 0
DLAM = 0.00106  # um / px (G235M-like)
#: across-slice position index of slice id i (what jwst.cube_build assumes, ifu_cube.py)
SLICEMAP = (15, 14, 16, 13, 17, 12, 18, 11, 19, 10, 20, 9, 21, 8, 22, 7,
            23, 6, 24, 5, 25, 4, 26, 3, 27, 2, 28, 1, 29, 0)
SUB_XSTART, SUB_YSTART = 900, 1021 - NY // 2  # 1-based origin of the cut-out (headers only)

# NRS_FULL_IFU reference point (arcsec) and V3 Y angle (deg), roughly the real values
V2_REF, V3_REF, V3YANGLE = 300.35, -497.45, 138.49
IFU_PA_V = 48.5  # direction of +y_slicer (along slice) in the (V2, V3) plane, deg from +V2
ROLL_REF = 110.0

PIXAR_A2 = PSCALE * SLICE_WIDTH
PIXAR_SR = PIXAR_A2 * (np.pi / 180.0 / 3600.0) ** 2

# ----------------------------------------------------------------------------- program
PROGRAM_DEFAULT = "01234"
OBSERVATION = "006"
TARGET = dict(proposer_name="SYNTH-IFU-STAR", catalog_name="SYNTH-IFU-STAR",
              ra=150.1021, dec=2.2117, target_id=4)
BACKGROUND_OBSERVATION = "007"
BKG_TARGET = dict(proposer_name="SYNTH-IFU-BKG", catalog_name="SYNTH-IFU-BKG",
                  ra=150.1021, dec=2.2283, target_id=6)  # 1' north of the star
SKY_MJY_SR_2UM = 8.0
GRATING, FILTER, DETECTOR = "G235M", "F170LP", "NRS1"
PRODUCT_NAME = "jw{program}-o" + OBSERVATION + "_t004_nirspec_g235m"
#: 4-POINT-NOD offsets of the target in (x_slicer across, y_slicer along), arcsec
DITHER_OFFSETS = ((0.32, 0.45), (-0.33, -0.45), (0.27, -0.52), (-0.28, 0.52))

FRAME_TIME = 14.58889
NGROUPS, NINTS = 16, 1
EXPOSURE_TIME = FRAME_TIME * NGROUPS
START_MJD = 60420.5
GAP_S = 90.0

FLUX_PER_ELECTRON = 2.0  # MJy/sr per detected electron in a 0.1"x0.1" pixel
READ_NOISE_E = 8.0
PSF_SIGMA_ARCSEC_2UM = 0.04  # Gaussian sigma at 2 um, scales with lambda

NRS_STAGE1 = ("group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity",
              "dark_sub", "jump", "ramp_fit", "gain_scale")
NRS_IFU_STAGE2 = ("assign_wcs", "msa_flagging", "flat_field", "srctype", "pathloss",
                  "photom", "nsclean")
NRS_IFU_SKIPPED = ("bkg_subtract", "imprint", "wavecorr")


# ----------------------------------------------------------------------------- helpers
def sub_xstart(nx: int) -> int:
    """1-based SUBSTRT1 of an ``nx``-column cut-out: ``SUB_XSTART`` while the cut-out fits
    on the 2048-column detector from there, else shifted left (1 for a full-width 2048)."""
    return max(1, min(SUB_XSTART, 2049 - nx))


def wavelength_of_column(x):
    """Wavelength (um) at 0-based column ``x`` (same in every slice)."""
    return LAM0 + DLAM * np.asarray(x, dtype=float)


def source_spectrum_jy(lam_um):
    """Injected point-source spectrum, Jy: ~1 mJy continuum plus a Br-gamma-like line."""
    lam = np.asarray(lam_um, dtype=float)
    return 1.0e-3 * (lam / 2.0) ** -1.5 + 4.0e-4 * np.exp(-0.5 * ((lam - 2.05) / 0.003) ** 2)


def sky_spectrum_mjysr(lam_um):
    """Uniform sky of ``background=True`` programs, MJy/sr: smooth, rising to the red
    (zodiacal light + telescope); large enough that leaving it in shows in the x1d."""
    lam = np.asarray(lam_um, dtype=float)
    return SKY_MJY_SR_2UM * (lam / 2.0) ** 2


def wavelength_map(nx: int = NX_DEFAULT, regions: np.ndarray | None = None) -> np.ndarray:
    """Wavelength (um) of every pixel, NaN between the slices."""
    if regions is None:
        regions = make_regions(nx)
    lam = np.broadcast_to(wavelength_of_column(np.arange(nx)), (NY, nx)).copy()
    lam[regions == 0] = np.nan
    return lam


def pixel_fraction(lo, hi, mu, sigma):
    """Fraction of a 1-D Gaussian (``mu``, ``sigma``) between ``lo`` and ``hi``."""
    from scipy.special import erf

    s2 = np.sqrt(2.0) * sigma
    return 0.5 * (erf((hi - mu) / s2) - erf((lo - mu) / s2))


def slice_rows(slice_id: int) -> tuple[int, int]:
    """First and last (inclusive) 0-based rows of slice ``slice_id``."""
    y0 = slice_id * PITCH + GAP // 2
    return y0, y0 + NALONG - 1


def slice_across(slice_id: int) -> float:
    """Across-slice centre (arcsec, ``x_slicer``) of slice ``slice_id``."""
    return (SLICEMAP[slice_id] - (NSLICE - 1) / 2.0) * SLICE_WIDTH


def make_regions(nx: int = NX_DEFAULT) -> np.ndarray:
    """Slice map: 0 outside slices, ``slice_id + 1`` inside (int32, ``NY x nx``)."""
    reg = np.zeros((NY, nx), dtype=np.int32)
    for i in range(NSLICE):
        y0, y1 = slice_rows(i)
        reg[y0:y1 + 1, :] = i + 1
    return reg


def _along_of_row(y, slice_id):
    y0, y1 = slice_rows(slice_id)
    return (np.asarray(y, float) - 0.5 * (y0 + y1)) * PSCALE


def _slicer_to_v2v3_matrix():
    th = np.deg2rad(IFU_PA_V)
    # (across, along) -> (v2, v3): along-slice axis at IFU_PA_V, across at IFU_PA_V - 90
    ea = np.array([np.sin(th), -np.cos(th)])  # unit vector of +across
    eb = np.array([np.cos(th), np.sin(th)])  # unit vector of +along
    return np.column_stack([ea, eb])


def _v23tosky(ra_ref, dec_ref, roll_ref=ROLL_REF):
    from spec3flow.synth.miri_lrs import _v23tosky as v23

    return v23(V2_REF, V3_REF, roll_ref, ra_ref, dec_ref)


def build_ifu_wcs(ra_ref: float, dec_ref: float, nx: int = NX_DEFAULT,
                  roll_ref: float = ROLL_REF, regions: np.ndarray | None = None):
    """NRS_IFU gwcs in the "coordinates" style (``coordinates -> detector -> slicer ->
    v2v3 -> world``); ``(ra_ref, dec_ref)`` is the sky position of the IFU centre."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import bind_bounding_box, models
    from gwcs import coordinate_frames as cf
    from gwcs import selector
    from gwcs import wcs as gwcs_wcs

    if regions is None:
        regions = make_regions(nx)
    transforms = {}
    for i in range(NSLICE):
        y0, y1 = slice_rows(i)
        yc = 0.5 * (y0 + y1)
        # (x, y) -> (x_slicer, y_slicer, lambda [m])
        m = (models.Mapping((1, 1, 0))
             | models.Const1D(slice_across(i))
             & (models.Shift(-yc) | models.Scale(PSCALE))
             & (models.Scale(DLAM) | models.Shift(LAM0) | models.Scale(1.0e-6)))
        m.name = f"det2slicer_{i}"
        m.inputs = ("x", "y")
        m.outputs = ("x_slice", "y_slice", "lam")
        bind_bounding_box(m, ((-0.5, nx - 0.5), (y0 - 0.5, y1 + 0.5)), order="F")
        transforms[i + 1] = m
    label_mapper = selector.LabelMapperArray(regions)
    det2slicer = selector.RegionsSelector(("x", "y"), ("x_slice", "y_slice", "lam"),
                                          label_mapper=label_mapper, selector=transforms,
                                          name="det2slicer")
    coord2det = models.Identity(2, name="coord2det")
    coord2det.inputs = ("x", "y")
    coord2det.outputs = ("x", "y")

    mat = _slicer_to_v2v3_matrix()
    slicer2v2v3 = (models.AffineTransformation2D(matrix=mat, translation=[V2_REF, V3_REF])
                   & models.Scale(1.0e6))
    slicer2v2v3.name = "slicer2v2v3"
    tel2sky = _v23tosky(ra_ref, dec_ref, roll_ref) & models.Identity(1)
    tel2sky.name = "v2v3_to_sky"

    coords = cf.Frame2D(name="coordinates", axes_order=(0, 1))
    det = cf.Frame2D(name="detector", axes_order=(0, 1))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    slicer_spatial = cf.Frame2D(name="slicer_spatial", axes_order=(0, 1), unit=("", ""),
                                axes_names=("x_slicer", "y_slicer"))
    slicer = cf.CompositeFrame([slicer_spatial, spec], name="slicer")
    v2v3_spatial = cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1),
                              unit=(u.arcsec, u.arcsec), axes_names=("v2", "v3"))
    v2v3 = cf.CompositeFrame([v2v3_spatial, spec], name="v2v3")
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    world = cf.CompositeFrame([sky, spec], name="world")
    return gwcs_wcs.WCS([(coords, coord2det), (det, det2slicer), (slicer, slicer2v2v3),
                         (v2v3, tel2sky), (world, None)])


def _target_slicer_position(ra_ref, dec_ref, ra, dec, roll_ref=ROLL_REF):
    """(across, along) arcsec of sky position (ra, dec) for a pointing (exact inverse)."""
    v2, v3 = _v23tosky(ra_ref, dec_ref, roll_ref).inverse(ra, dec)
    mat = _slicer_to_v2v3_matrix()
    a, b = np.linalg.solve(mat, np.array([v2 - V2_REF, v3 - V3_REF]))
    return float(a), float(b)


def _pointing_for_offset(ra, dec, across, along, roll_ref=ROLL_REF):
    """IFU-centre sky position that puts (ra, dec) at slicer position (across, along)."""
    m = _v23tosky(ra, dec, roll_ref)
    v = _slicer_to_v2v3_matrix() @ np.array([-across, -along])
    r, d = m(V2_REF + v[0], V3_REF + v[1])
    return float(r), float(d)


def _s_region(ra_ref, dec_ref, roll_ref=ROLL_REF):
    half = NSLICE * SLICE_WIDTH / 2.0, NALONG * PSCALE / 2.0
    corners = [(-half[0], -half[1]), (half[0], -half[1]), (half[0], half[1]),
               (-half[0], half[1])]
    mat = _slicer_to_v2v3_matrix()
    m = _v23tosky(ra_ref, dec_ref, roll_ref)
    ra, dec = [], []
    for a, b in corners:
        v = mat @ np.array([a, b])
        r, d = m(V2_REF + v[0], V3_REF + v[1])
        ra.append(float(r))
        dec.append(float(d))
    return s_region_polygon(ra, dec)


# ----------------------------------------------------------------------------- exposures
@dataclass
class IfuExposure:
    """One generated exposure (also a row of the exposures truth table)."""

    exp: ExposureId
    dither: int
    ra_ref: float
    dec_ref: float
    across: float  # target position in the slicer frame, arcsec
    along: float
    n_dithers: int
    cal_path: Path | None = None
    role: str = "science"  # or 'background' (dedicated background observation)
    x1d_path: Path | None = None

    @property
    def target(self) -> dict:
        return TARGET if self.role == "science" else BKG_TARGET


def _exposures(program: str, n_dithers: int, role: str = "science") -> list[IfuExposure]:
    """The dithered exposures of the science (obs 006) or background (obs 007) target."""
    obs, target = ((OBSERVATION, TARGET) if role == "science"
                   else (BACKGROUND_OBSERVATION, BKG_TARGET))
    out = []
    for k in range(n_dithers):
        da, db = DITHER_OFFSETS[k % len(DITHER_OFFSETS)]
        ra, dec = _pointing_for_offset(target["ra"], target["dec"], da, db)
        a, b = _target_slicer_position(ra, dec, target["ra"], target["dec"])
        exp = ExposureId(program=program, observation=obs, visit="001",
                         visit_group="02", sequence="1", activity="01", exposure=k + 1,
                         detector=DETECTOR)
        out.append(IfuExposure(exp, k + 1, ra, dec, a, b, n_dithers, role=role))
    return out


def _dq_flags():
    from stdatamodels.jwst.datamodels import dqflags

    return dqflags.pixel


def truth_image(ex: IfuExposure, nx: int, regions: np.ndarray) -> np.ndarray:
    """Noise-free MJy/sr image of the point source for exposure ``ex`` (0 off-slice)."""
    lam = wavelength_of_column(np.arange(nx))
    sigma = PSF_SIGMA_ARCSEC_2UM * lam / 2.0
    flux_mjy = source_spectrum_jy(lam) * 1.0e-6
    img = np.zeros((NY, nx))
    for i in range(NSLICE):
        y0, y1 = slice_rows(i)
        xa = slice_across(i)
        fa = pixel_fraction(xa - SLICE_WIDTH / 2, xa + SLICE_WIDTH / 2, ex.across, sigma)
        rows = np.arange(y0, y1 + 1)
        b = _along_of_row(rows, i)[:, None]
        fb = pixel_fraction(b - PSCALE / 2, b + PSCALE / 2, ex.along, sigma[None, :])
        img[y0:y1 + 1, :] = flux_mjy[None, :] * fa[None, :] * fb / PIXAR_SR
    img[regions == 0] = 0.0
    return img


def _make_cal_model(ex: IfuExposure, index: int, seed: int, nx: int, outlier_rows: list,
                    n_cosmic_rays: int, hot_pixels: list[tuple[int, int, float]],
                    sky: bool = False):
    from stdatamodels.jwst import datamodels

    dqf = _dq_flags()
    regions = make_regions(nx)
    is_sci = ex.role == "science"
    truth = truth_image(ex, nx, regions) if is_sci else np.zeros((NY, nx))
    if sky:
        on = regions > 0
        truth[on] += sky_spectrum_mjysr(wavelength_map(nx, regions)[on])
    fname = ex.exp.filename("cal")
    rng = make_rng(seed, "nrs_ifu", fname)
    noise = make_noise(truth, rng, flux_per_electron=FLUX_PER_ELECTRON,
                       read_noise_electrons=READ_NOISE_E)
    off = regions == 0
    dq = np.zeros((NY, nx), dtype=np.uint32)
    dq[off] = dqf["DO_NOT_USE"] | dqf["NON_SCIENCE"]

    for y, x, snr in hot_pixels:  # same detector pixels in every exposure, DQ 0
        add = float(snr * noise.err[y, x])
        noise.data[y, x] += np.float32(add)
        outlier_rows.append({"file": fname, "y": y, "x": x, "added_mjy_sr": add,
                             "kind": "hot_pixel"})
    if n_cosmic_rays:
        rows = np.nonzero(~off[:, 0])[0]
        excl = {(y, x) for y, x, _ in hot_pixels}
        for y, x, add in inject_cosmic_rays(noise.data, noise.err, rng, n_cosmic_rays,
                                            rows=rows, cols=np.arange(3, nx - 3),
                                            exclude=excl):
            outlier_rows.append({"file": fname, "y": y, "x": x, "added_mjy_sr": add,
                                 "kind": "cosmic_ray"})

    arrays = {}
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        a = getattr(noise, name).astype(np.float32)
        a[off] = np.nan
        arrays[name] = a
    model = datamodels.IFUImageModel(data=arrays["data"], dq=dq, err=arrays["err"])
    model.var_poisson = arrays["var_poisson"]
    model.var_rnoise = arrays["var_rnoise"]
    model.var_flat = arrays["var_flat"]
    model.regions = regions

    start = START_MJD + index * (EXPOSURE_TIME * 1.02 + GAP_S) / 86400.0
    tgt = ex.target
    target = TargetInfo.for_role(tgt, science=is_sci)
    v1 = _v23tosky(ex.ra_ref, ex.dec_ref)(0.0, 0.0)
    fill_exposure_meta(
        model, ex.exp, instrument="NIRSPEC", exp_type="NRS_IFU", target=target,
        start_mjd=start, exposure_time=EXPOSURE_TIME, nints=NINTS, ngroups=NGROUPS,
        frame_time=FRAME_TIME, readpatt="NRSIRS2RAPID",
        template="NIRSpec IFU Spectroscopy", total_exposures=ex.n_dithers,
        exposure_count=ex.dither,
        optical={"filter": FILTER, "grating": GRATING, "fixed_slit": "NONE",
                 "lamp_mode": "IFU", "lamp_state": "NONE", "gwa_xtilt": 0.3197991,
                 "gwa_ytilt": 0.1394715, "gwa_tilt": 37.0},
        dither={"primary_type": "4-POINT-NOD", "position_number": ex.dither,
                "total_points": ex.n_dithers, "primary_points": ex.n_dithers,
                "pattern_start": 1, "subpixel_total_points": 1,
                "x_offset": float(DITHER_OFFSETS[(ex.dither - 1) % 4][0]),
                "y_offset": float(DITHER_OFFSETS[(ex.dither - 1) % 4][1]),
                "dithered_ra": float(tgt["ra"]), "dithered_dec": float(tgt["dec"])},
        wcsinfo={"ra_ref": ex.ra_ref, "dec_ref": ex.dec_ref, "v2_ref": V2_REF,
                 "v3_ref": V3_REF, "roll_ref": ROLL_REF, "v3yangle": V3YANGLE,
                 "vparity": -1, "dispersion_direction": 1, "spectral_order": 1,
                 "velosys": 0.0, "specsys": "BARYCENT"},
        pointing={"ra_v1": float(v1[0]), "dec_v1": float(v1[1]),
                  "pa_v3": (ROLL_REF - V3YANGLE) % 360},
        subarray={"name": "FULL", "xstart": sub_xstart(nx), "ystart": SUB_YSTART, "xsize": nx,
                  "ysize": NY, "fastaxis": 2, "slowaxis": 1},
        aperture_name="NRS_FULL_IFU",
        bkgdtarg=not is_sci,
        extra_pool_keywords={"expspcin": 1, "dithptin": ex.dither, "pntg_seq": ex.dither},
    )
    model.meta.dither.patttype = "4-POINT-NOD"  # not in all schemas: ignored if absent
    model.meta.target.source_type_apt = target.source_type
    model.meta.wcs = build_ifu_wcs(ex.ra_ref, ex.dec_ref, nx, regions=regions)
    model.meta.wcsinfo.s_region = _s_region(ex.ra_ref, ex.dec_ref)
    lam = wavelength_of_column(np.arange(nx))
    model.meta.wcsinfo.spectral_region = [float(lam[0]), float(lam[-1])]
    model.meta.photometry.pixelarea_steradians = PIXAR_SR
    model.meta.photometry.pixelarea_arcsecsq = PIXAR_A2
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.velocity_aberration.scale_factor = 1.0
    model.meta.velocity_aberration.va_ra_ref = ex.ra_ref
    model.meta.velocity_aberration.va_dec_ref = ex.dec_ref
    model.meta.asn.pool_name = f"jw{ex.exp.program}_20240101t000000_pool.csv"
    set_cal_steps(model, complete=NRS_STAGE1 + NRS_IFU_STAGE2, skipped=NRS_IFU_SKIPPED)
    model.meta.model_type = "IFUImageModel"
    return model


def _hot_pixels(seed: int, nx: int, n: int) -> list[tuple[int, int, float]]:
    """``n`` detector pixels (in slices, away from the array edges) with an S/N."""
    rng = make_rng(seed, "nrs_ifu", "hot_pixels")
    regions = make_regions(nx)
    out = []
    used = set()
    while len(out) < n:
        y = int(rng.integers(8, NY - 8))
        x = int(rng.integers(min(8, (nx - 1) // 3), nx - min(8, (nx - 1) // 3)))
        if regions[y, x] == 0 or regions[y - 1, x] == 0 or regions[y + 1, x] == 0:
            continue
        if (y, x) in used:
            continue
        used.add((y, x))
        out.append((y, x, float(rng.uniform(60.0, 150.0))))
    return out


# ----------------------------------------------------------------------------- API
def generate_nirspec_ifu(outdir, seed: int = 1, program: str = PROGRAM_DEFAULT, *,
                         n_dithers: int = 4, nx: int = NX_DEFAULT, n_cosmic_rays: int = 5,
                         n_hot_pixels: int = 4, background: bool = False,
                         n_background: int = 2) -> list[Path]:
    """Write the synthetic NRS_IFU program (obs 006) into ``outdir``.

    ``n_dithers`` (1-4) exposures of a point source, ``nx`` wavelength columns;
    ``n_cosmic_rays`` hits (DQ 0) in exposure 00002; ``n_hot_pixels`` persistent
    hot pixels (DQ 0) in every science exposure.  ``background``: add the uniform sky
    to every exposure and write ``n_background`` (1-4) dedicated background exposures
    (obs 007, BKGDTARG=T) with their Stage 2 x1d.  Returns the cal files (science then
    background, exposure order), the background x1d files, then the truth CSVs
    (spectrum, outliers, exposures).  Deterministic for given arguments.
    """
    if not 1 <= n_dithers <= 4:
        raise ValueError("n_dithers must be 1..4")
    if background and not 1 <= n_background <= 4:
        raise ValueError("n_background must be 1..4")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    program = f"{int(program):05d}"
    exps = _exposures(program, n_dithers)
    bkg_exps = _exposures(program, n_background, "background") if background else []
    hot = _hot_pixels(seed, nx, n_hot_pixels)
    written: list[Path] = []
    outlier_rows: list[dict] = []
    for i, ex in enumerate(exps + bkg_exps):
        if ex.role == "science":
            ncr = n_cosmic_rays if (ex.dither == 2 or n_dithers == 1) else 0
            model = _make_cal_model(ex, i, seed, nx, outlier_rows, ncr, hot, sky=background)
        else:
            model = _make_cal_model(ex, i, seed, nx, outlier_rows, 0, [], sky=True)
        path = outdir / ex.exp.filename("cal")
        model.save(path)
        ex.cal_path = path
        written.append(path)
        if ex.role == "background":
            x1d = ifu_background_x1d(model, wavelength_map(nx, model.regions),
                                     ex.ra_ref, ex.dec_ref)
            ex.x1d_path = outdir / ex.exp.filename("x1d")
            x1d.save(ex.x1d_path)
            x1d.close()
        model.close()
    written.extend(ex.x1d_path for ex in bkg_exps)
    lam = wavelength_of_column(np.arange(nx))
    sky = sky_spectrum_mjysr(lam) if background else np.zeros_like(lam)
    written.append(write_csv(outdir / "nrs_ifu_truth_spectrum.csv",
                             [{"wavelength_um": float(w), "source_flux_jy": float(f),
                               "sky_mjy_sr": float(b)}
                              for w, f, b in zip(lam, source_spectrum_jy(lam), sky)]))
    written.append(write_csv(outdir / "nrs_ifu_truth_outliers.csv", outlier_rows,
                             fieldnames=["file", "y", "x", "added_mjy_sr", "kind"]))
    written.append(write_csv(outdir / "nrs_ifu_truth_exposures.csv", [
        {"file": ex.exp.filename("cal"), "dither": ex.dither, "ra_ref": ex.ra_ref,
         "dec_ref": ex.dec_ref, "target_across_arcsec": ex.across,
         "target_along_arcsec": ex.along, "target_ra": ex.target["ra"],
         "target_dec": ex.target["dec"], "role": ex.role,
         "x1d": ex.x1d_path.name if ex.x1d_path else ""} for ex in exps + bkg_exps]))
    return written
