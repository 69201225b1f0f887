"""Synthetic Stage 2 products for MIRI MRS (``MIR_MRS``).

:func:`generate_miri_mrs` writes a small program that calwebb_spec3 (jwst 3.0.0) runs
end to end, spectral_leak included (outlier_detection ``ifu`` -> cube_build -> extract_1d
-> spectral_leak):

=================================  ===  ======  ===========  ===============================
file stem                          obs  dither  detector     CHANNEL / BAND
=================================  ===  ======  ===========  ===============================
jw01234005001_02101_0000{1..4}     005  1..4    MIRIFUSHORT  12 / MEDIUM  (ch1B + ch2B)
jw01234005001_02101_0000{5..8}     005  1..4    MIRIFULONG   34 / SHORT   (ch3A + ch4A)
jw01234008001_02101_0000{1..2}     008  1..2    MIRIFUSHORT  ``background=True`` only:
jw01234008001_02101_0000{3..4}     008  1..2    MIRIFULONG   dedicated background, as above
=================================  ===  ======  ===========  ===============================

(shown for ``n_dithers=4``, ``n_background=2``; exposure numbers run on over both detectors.)

CH1B (MEDIUM) together with CH3A (SHORT) is what ``SpectralLeakStep`` needs: it subtracts
``MRSPTCORR frac_leak(lambda) * F_1B(lambda / 2)`` from the CH3A spectrum.  The
generator injects that second-order leak into the CH3A pixels (using the same
:func:`spec3flow.crds_local.mrs_leak_fraction` as the synthetic MRSPTCORR), so the
corrected CH3A x1d should equal the injected spectrum.  (A real band-MEDIUM exposure
also has a MIRIFULONG file, ch3B/ch4B, and a band-SHORT one a MIRIFUSHORT file: those
partner files are not generated.)

Every file is an ``IFUImageModel`` ``*_mirifushort_cal.fits`` / ``*_mirifulong_cal.fits``
(MJy/sr) with a ``regions`` slice map (``100*channel + slice``, 0 between slices) and a
WCS ``detector -> alpha_beta -> v2v3 -> world`` built like jwst.assign_wcs.miri.ifu:
``Shift(0) & Shift(0) | RegionsSelector(LabelMapperArray(regions), {slice: alpha & beta &
lambda})`` (the leading no-op shift keeps gwcs from adding pixel units, which makes
cube_build fail), a linear alpha/beta -> V2/V3 map, the standard V2V3 -> sky rotation.

Geometry (simplified):

- arrays are ``NY x 1032`` (default ``NY`` = 80 rows; real MRS: 1024 x 1032): full
  detector width, so the channel column ranges cube_build hard-codes
  (``instrument_defaults``: ch1/ch4 x 0-512, ch2/ch3 x 513-1031) hold; the rows are a
  reduced wavelength range, linear ``lambda = LAM0 + DLAM * y``, the same for every slice
  of a channel (:data:`CHANNELS`);
- each slice is a vertical strip ``NALPHA`` px wide (along slice, alpha), slices are
  evenly spaced, slice k of channel c has ``beta = (k - (n+1)/2) * slice width``;
- one alpha/beta system for all channels (real: one per channel, slightly rotated);
- headers ``SUBARRAY='FULL'``; SUBSIZE2 = NY.

The synthetic CUBEPAR (``spec3flow.crds_local``) uses these reduced wavelength ranges for
1B/2B/3A/4A: cube_build takes a cube's wavelength range from CUBEPAR, not from the data.

Scene: one point source at the target, Gaussian PSF sigma = 0.014 * lambda arcsec
(FWHM = 0.033 lambda), integrated over each pixel's alpha x beta footprint, spectrum
:func:`source_spectrum_jy`; by default no background.  With ``background=True`` a
uniform sky :func:`sky_spectrum_mjysr` (10-60 MJy/sr, rising to the red: ~10% of the
source flux in the ch1 extraction aperture, more than the source in ch4) is added to every
slice pixel of every exposure before the noise is drawn (no second-order leak of the sky
is modelled), and ``n_background`` dedicated background exposures per detector (obs 008,
1' away, BKGDTARG=T, SRCTYPE=EXTENDED) see only that sky.  Their Stage 2
``*_x1d.fits`` (an ``MRSMultiSpecModel``: calwebb_spec2 extracts the exposure's
multi-channel cube, one spectrum over both channels of the detector) is built directly
from the cal data, the mean over the field at each wavelength in SURF_BRIGHT and
BACKGROUND (:func:`spec3flow.synth.common.ifu_background_x1d`).  Cosmic rays (DQ 0) in
exposure 00002 (the first MIRIFUSHORT file of dither 2); ``n_hot_pixels`` persistent hot
pixels per detector in all its science exposures (IFU outlier detection flags those, see
nirspec_ifu; background exposures are clean).

Truth CSVs: ``mrs_truth_spectrum.csv`` (per band: wavelength_um, source_flux_jy,
leak_flux_jy injected into 3A, sky_mjy_sr (0 without ``background``)),
``mrs_truth_outliers.csv``, ``mrs_truth_exposures.csv`` (one row per exposure, with role).

Associations (jwst rules via :mod:`spec3flow.associations`): ``jw01234-o005_spec3_00001_asn``
(``candidate_Asn_Lv3MIRMRS``), product ``jw01234-o005_t003_miri`` (MRS products carry no
optical element), science cal files only; cube_build names the cubes
``..._miri_ch1-medium_s3d.fits`` etc.  With ``background=True`` also
``jw01234-c1000_spec3_00001_asn`` (``candidate_Asn_Lv3MIRMRS``: science cal files plus the
background x1d files as ``exptype: background``, so calwebb_spec3 runs master_background;
product ``jw01234-c1000_t003_miri``; the ``c`` number counts up per program) and
``jw01234-o008_spec3_00001_asn`` (the background observation as a target of its own,
product ``jw01234-o008_t005_miri``).
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
from spec3flow.synth.nirspec_ifu import pixel_fraction

__all__ = [
    "generate_miri_mrs",
    "build_mrs_wcs",
    "sky_spectrum_mjysr",
    "wavelength_map",
    "make_regions",
    "source_spectrum_jy",
    "leak_flux_jy",
    "wavelength_of_row",
    "MrsChannel",
    "CHANNELS",
    "DETECTORS",
    "PRODUCT_NAME",
    "NX",
    "NY_DEFAULT",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MrsChannel:
    """One channel/band as generated (the reduced wavelength range is in the rows)."""

    channel: str
    band: str  # SHORT | MEDIUM | LONG
    nslice: int
    xstart: int  # first usable column (cube_build instrument_defaults)
    xend: int  # exclusive end column
    alpha_pix: float  # arcsec per pixel along the slice
    slice_width: float  # arcsec (beta)
    nalpha: int  # pixels across a slice strip
    lam0: float  # um at row 0
    dlam: float  # um per row

    @property
    def name(self) -> str:
        return f"ch{self.channel}-{self.band.lower()}"

    def strip_x0(self, k: int) -> int:
        """First column of slice k (1-based)."""
        pitch = (self.xend - self.xstart) // self.nslice
        return self.xstart + (k - 1) * pitch + (pitch - self.nalpha) // 2

    def beta(self, k: int) -> float:
        return (k - (self.nslice + 1) / 2.0) * self.slice_width


NX = 1032
NY_DEFAULT = 80
CHANNELS = {
    "1": MrsChannel("1", "MEDIUM", 21, 0, 512, 0.196, 0.177, 17, 6.000, 0.0010),
    "2": MrsChannel("2", "MEDIUM", 17, 513, 1031, 0.196, 0.280, 20, 9.000, 0.0014),
    "3": MrsChannel("3", "SHORT", 16, 513, 1031, 0.245, 0.390, 21, 12.000, 0.0020),
    "4": MrsChannel("4", "SHORT", 12, 0, 512, 0.273, 0.640, 24, 19.000, 0.0030),
}
#: detector -> (CHANNEL keyword, BAND keyword, channels on it)
DETECTORS = {"MIRIFUSHORT": ("12", "MEDIUM", ("1", "2")),
             "MIRIFULONG": ("34", "SHORT", ("3", "4"))}

# MIRIFU_CHANNEL1A-ish reference point (arcsec), V3 Y angle (deg)
V2_REF, V3_REF, V3YANGLE = -503.65, -318.74, -4.45
AB_PA_V = 90.0 + 8.2  # direction of +alpha in the (V2, V3) plane
ROLL_REF = 250.0

PROGRAM_DEFAULT = "01234"
OBSERVATION = "005"
TARGET = dict(proposer_name="SYNTH-MRS-STAR", catalog_name="SYNTH-MRS-STAR",
              ra=269.8857, dec=66.5608, target_id=3)
PRODUCT_NAME = "jw{program}-o" + OBSERVATION + "_t003_miri"
BACKGROUND_OBSERVATION = "008"
BKG_TARGET = dict(proposer_name="SYNTH-MRS-BKG", catalog_name="SYNTH-MRS-BKG",
                  ra=269.8857, dec=66.5775, target_id=5)  # 1' north of the star
SKY_MJY_SR_6UM = 10.0
#: 4-POINT dither: target offsets in (alpha, beta), arcsec
DITHER_OFFSETS = ((0.45, 0.52), (-0.45, -0.52), (0.43, -0.55), (-0.43, 0.55))

FRAME_TIME = 2.77504
NGROUPS, NINTS = 30, 1
EXPOSURE_TIME = FRAME_TIME * NGROUPS
START_MJD = 60430.25
GAP_S = 60.0
FLUX_PER_ELECTRON = 1.0  # MJy/sr per electron
READ_NOISE_E = 10.0
PSF_SIGMA_PER_UM = 0.014  # arcsec per micron

MIRI_STAGE1 = ("group_scale", "dq_init", "emicorr", "saturation", "firstframe", "lastframe",
               "reset", "linearity", "rscd", "dark_sub", "refpix", "jump", "ramp_fit",
               "gain_scale")
MRS_STAGE2 = ("assign_wcs", "flat_field", "srctype", "straylight", "fringe", "photom")
MRS_SKIPPED = ("bkg_subtract", "residual_fringe", "pixel_replace")


# ----------------------------------------------------------------------------- spectra
def wavelength_of_row(y, channel: str):
    """Wavelength (um) of 0-based row ``y`` in ``channel``."""
    ch = CHANNELS[str(channel)]
    return ch.lam0 + ch.dlam * np.asarray(y, dtype=float)


def source_spectrum_jy(lam_um):
    """Injected point-source spectrum, Jy: rising continuum + a line at 9.05 um."""
    lam = np.asarray(lam_um, dtype=float)
    return 5.0e-3 * (lam / 10.0) + 2.0e-3 * np.exp(-0.5 * ((lam - 9.05) / 0.006) ** 2)


def sky_spectrum_mjysr(lam_um):
    """Uniform sky of ``background=True`` programs, MJy/sr: smooth, rising to the red
    (zodiacal light, then telescope thermal emission)."""
    lam = np.asarray(lam_um, dtype=float)
    return SKY_MJY_SR_6UM * (lam / 6.0) ** 1.5


def leak_flux_jy(lam_um):
    """Second-order leak added to CH3A pixels: ``frac_leak(lam) * F(lam/2)``."""
    from spec3flow.crds_local import mrs_leak_fraction

    lam = np.asarray(lam_um, dtype=float)
    return mrs_leak_fraction(lam) * source_spectrum_jy(lam / 2.0)


# ----------------------------------------------------------------------------- WCS
def make_regions(detector: str, ny: int = NY_DEFAULT) -> np.ndarray:
    """Slice map (``100*channel + k`` in slice strips, 0 elsewhere), int32 ``ny x 1032``."""
    reg = np.zeros((ny, NX), dtype=np.int32)
    for c in DETECTORS[detector.upper()][2]:
        ch = CHANNELS[c]
        for k in range(1, ch.nslice + 1):
            x0 = ch.strip_x0(k)
            reg[:, x0:x0 + ch.nalpha] = 100 * int(c) + k
    return reg


def wavelength_map(detector: str, ny: int = NY_DEFAULT,
                   regions: np.ndarray | None = None) -> np.ndarray:
    """Wavelength (um) of every pixel of ``detector``, NaN between the slices."""
    if regions is None:
        regions = make_regions(detector, ny)
    lam = np.full(regions.shape, np.nan)
    for c in DETECTORS[detector.upper()][2]:
        in_channel = regions // 100 == int(c)
        lam[in_channel] = np.broadcast_to(
            wavelength_of_row(np.arange(ny), c)[:, None], regions.shape)[in_channel]
    return lam


def _ab_matrix():
    th = np.deg2rad(AB_PA_V)
    ea = np.array([np.cos(th), np.sin(th)])  # +alpha
    eb = np.array([-np.sin(th), np.cos(th)])  # +beta
    return np.column_stack([ea, eb])


def _v23tosky(ra_ref, dec_ref, roll_ref=ROLL_REF):
    from spec3flow.synth.miri_lrs import _v23tosky as v23

    return v23(V2_REF, V3_REF, roll_ref, ra_ref, dec_ref)


def build_mrs_wcs(detector: str, ra_ref: float, dec_ref: float, ny: int = NY_DEFAULT,
                  roll_ref: float = ROLL_REF, regions: np.ndarray | None = None):
    """MRS gwcs ``detector -> alpha_beta -> v2v3 -> world`` for one detector."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import selector
    from gwcs import wcs as gwcs_wcs

    detector = detector.upper()
    if regions is None:
        regions = make_regions(detector, ny)
    transforms = {}
    for c in DETECTORS[detector][2]:
        ch = CHANNELS[c]
        for k in range(1, ch.nslice + 1):
            xc = ch.strip_x0(k) + (ch.nalpha - 1) / 2.0
            m = (models.Mapping((0, 1, 1))
                 | (models.Shift(-xc) | models.Scale(ch.alpha_pix))
                 & models.Const1D(ch.beta(k))
                 & (models.Scale(ch.dlam) | models.Shift(ch.lam0)))
            m.inputs = ("x", "y")
            m.outputs = ("alpha", "beta", "lam")
            transforms[100 * int(c) + k] = m
    label_mapper = selector.LabelMapperArray(regions)
    rs = selector.RegionsSelector(("x", "y"), ("alpha", "beta", "lam"),
                                  label_mapper=label_mapper, selector=transforms)
    det2abl = (models.Shift(0.0) & models.Shift(0.0)) | rs
    det2abl.name = "detector_to_abl"
    ab2v = models.AffineTransformation2D(matrix=_ab_matrix(), translation=[V2_REF, V3_REF])
    abl2v2v3l = ab2v & models.Identity(1)
    abl2v2v3l.name = "abl_to_v2v3l"
    tel2sky = _v23tosky(ra_ref, dec_ref, roll_ref) & models.Identity(1)
    tel2sky.name = "v2v3_to_sky"

    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    ab_sp = cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                       axes_names=("alpha", "beta"))
    ab_spec = cf.SpectralFrame(name="alpha_beta_spectral", axes_order=(2,), unit=(u.micron,),
                               axes_names=("lambda",))
    ab = cf.CompositeFrame([ab_sp, ab_spec], name="alpha_beta")
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("lambda",))
    v23 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1),
                                        unit=(u.arcsec, u.arcsec), axes_names=("v2", "v3")),
                             spec], name="v2v3")
    icrs = cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                             unit=(u.deg, u.deg), axes_names=("RA", "DEC"))
    world = cf.CompositeFrame([icrs, spec], name="world")
    w = gwcs_wcs.WCS([(det, det2abl), (ab, abl2v2v3l), (v23, tel2sky), (world, None)])
    w.bounding_box = ((-0.5, NX - 0.5), (-0.5, ny - 0.5))
    return w


def _target_ab(ra_ref, dec_ref, ra, dec, roll_ref=ROLL_REF):
    v2, v3 = _v23tosky(ra_ref, dec_ref, roll_ref).inverse(ra, dec)
    a, b = np.linalg.solve(_ab_matrix(), np.array([v2 - V2_REF, v3 - V3_REF]))
    return float(a), float(b)


def _pointing_for_offset(ra, dec, alpha, beta, roll_ref=ROLL_REF):
    v = _ab_matrix() @ np.array([-alpha, -beta])
    r, d = _v23tosky(ra, dec, roll_ref)(V2_REF + v[0], V3_REF + v[1])
    return float(r), float(d)


def _s_region(detector, ra_ref, dec_ref):
    big = max((CHANNELS[c] for c in DETECTORS[detector][2]), key=lambda c: c.slice_width)
    ha = big.nalpha * big.alpha_pix / 2
    hb = big.nslice * big.slice_width / 2
    m = _v23tosky(ra_ref, dec_ref)
    ra, dec = [], []
    for a, b in ((-ha, -hb), (ha, -hb), (ha, hb), (-ha, hb)):
        v = _ab_matrix() @ np.array([a, b])
        r, d = m(V2_REF + v[0], V3_REF + v[1])
        ra.append(float(r))
        dec.append(float(d))
    return s_region_polygon(ra, dec)


# ----------------------------------------------------------------------------- exposures
@dataclass
class MrsExposure:
    exp: ExposureId
    detector: str
    dither: int
    ra_ref: float
    dec_ref: float
    alpha: float  # target position, arcsec
    beta: float
    cal_path: Path | None = None
    role: str = "science"  # or 'background' (dedicated background observation)
    x1d_path: Path | None = None

    @property
    def target(self) -> dict:
        return TARGET if self.role == "science" else BKG_TARGET


def _exposures(program: str, n_dithers: int, role: str = "science") -> list[MrsExposure]:
    """Per detector, the dithered exposures of the science (obs 005) or background
    (obs 008) target."""
    obs, target = ((OBSERVATION, TARGET) if role == "science"
                   else (BACKGROUND_OBSERVATION, BKG_TARGET))
    out = []
    n = 0
    for det in DETECTORS:
        for k in range(n_dithers):
            n += 1
            da, db = DITHER_OFFSETS[k % len(DITHER_OFFSETS)]
            ra, dec = _pointing_for_offset(target["ra"], target["dec"], da, db)
            a, b = _target_ab(ra, dec, target["ra"], target["dec"])
            exp = ExposureId(program=program, observation=obs, visit="001",
                             visit_group="02", sequence="1", activity="01", exposure=n,
                             detector=det)
            out.append(MrsExposure(exp, det, k + 1, ra, dec, a, b, role=role))
    return out


def truth_image(ex: MrsExposure, ny: int, regions: np.ndarray) -> np.ndarray:
    """Noise-free MJy/sr image (point source, plus the 2nd-order leak in CH3A)."""
    img = np.zeros((ny, NX))
    rows = np.arange(ny)
    for c in DETECTORS[ex.detector][2]:
        ch = CHANNELS[c]
        lam = wavelength_of_row(rows, c)
        sigma = PSF_SIGMA_PER_UM * lam
        flux = source_spectrum_jy(lam)
        if c == "3" and ch.band == "SHORT":
            flux = flux + leak_flux_jy(lam)
        area_sr = ch.alpha_pix * ch.slice_width * (np.pi / 180 / 3600) ** 2
        for k in range(1, ch.nslice + 1):
            x0 = ch.strip_x0(k)
            xs = np.arange(x0, x0 + ch.nalpha)
            xc = x0 + (ch.nalpha - 1) / 2.0
            al = (xs - xc) * ch.alpha_pix
            be = ch.beta(k)
            fb = pixel_fraction(be - ch.slice_width / 2, be + ch.slice_width / 2, ex.beta, sigma)
            fa = pixel_fraction(al[None, :] - ch.alpha_pix / 2, al[None, :] + ch.alpha_pix / 2,
                                ex.alpha, sigma[:, None])
            img[:, x0:x0 + ch.nalpha] = (flux * 1e-6 * fb)[:, None] * fa / area_sr
    img[regions == 0] = 0.0
    return img


def _hot_pixels(seed, detector, ny, n):
    rng = make_rng(seed, "mrs", "hot_pixels", detector)
    reg = make_regions(detector, ny)
    out, used = [], set()
    while len(out) < n:
        margin = min(6, (ny - 1) // 3)
        y = int(rng.integers(margin, ny - margin))
        x = int(rng.integers(6, NX - 6))
        if reg[y, x] == 0 or reg[y, x - 1] == 0 or reg[y, x + 1] == 0 or (y, x) in used:
            continue
        used.add((y, x))
        out.append((y, x, float(rng.uniform(60.0, 150.0))))
    return out


def _make_cal_model(ex: MrsExposure, index: int, seed: int, ny: int, outlier_rows: list,
                    n_cosmic_rays: int, hot_pixels, n_total: int, sky: bool = False):
    from stdatamodels.jwst import datamodels
    from stdatamodels.jwst.datamodels import dqflags

    dqf = dqflags.pixel
    regions = make_regions(ex.detector, ny)
    is_sci = ex.role == "science"
    truth = truth_image(ex, ny, regions) if is_sci else np.zeros((ny, NX))
    if sky:
        on = regions > 0
        truth[on] += sky_spectrum_mjysr(wavelength_map(ex.detector, ny, regions)[on])
    fname = ex.exp.filename("cal")
    rng = make_rng(seed, "mrs", fname)
    noise = make_noise(truth, rng, flux_per_electron=FLUX_PER_ELECTRON,
                       read_noise_electrons=READ_NOISE_E)
    off = regions == 0
    dq = np.zeros((ny, NX), dtype=np.uint32)
    dq[off] = dqf["DO_NOT_USE"] | dqf["NON_SCIENCE"]
    for y, x, snr in hot_pixels:
        add = float(snr * noise.err[y, x])
        noise.data[y, x] += np.float32(add)
        outlier_rows.append({"file": fname, "y": y, "x": x, "added_mjy_sr": add,
                             "kind": "hot_pixel"})
    if n_cosmic_rays:
        cols = np.nonzero(~off[0])[0]
        cols = cols[(cols > 3) & (cols < NX - 4)]
        for y, x, add in inject_cosmic_rays(noise.data, noise.err, rng, n_cosmic_rays,
                                            rows=np.arange(2, ny - 2), cols=cols,
                                            exclude={(y, x) for y, x, _ in hot_pixels}):
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

    chan_kw, band_kw, chans = DETECTORS[ex.detector]
    start = START_MJD + index * (EXPOSURE_TIME * 1.02 + GAP_S) / 86400.0
    tgt = ex.target
    target = TargetInfo.for_role(tgt, science=is_sci)
    v1 = _v23tosky(ex.ra_ref, ex.dec_ref)(0.0, 0.0)
    fill_exposure_meta(
        model, ex.exp, instrument="MIRI", exp_type="MIR_MRS", target=target,
        start_mjd=start, exposure_time=EXPOSURE_TIME, nints=NINTS, ngroups=NGROUPS,
        frame_time=FRAME_TIME, readpatt="FASTR1",
        template="MIRI Medium Resolution Spectroscopy", total_exposures=n_total,
        exposure_count=int(ex.exp.exposure),
        optical={"channel": chan_kw, "band": band_kw, "filter": "N/A",
                 "lamp_state": "NONE"},
        dither={"primary_type": "4-POINT", "position_number": ex.dither,
                "total_points": 4, "primary_points": 4, "pattern_start": 1,
                "dither_direction": "NEGATIVE",
                "x_offset": float(DITHER_OFFSETS[ex.dither - 1][0]),
                "y_offset": float(DITHER_OFFSETS[ex.dither - 1][1]),
                "dithered_ra": float(tgt["ra"]), "dithered_dec": float(tgt["dec"])},
        wcsinfo={"ra_ref": ex.ra_ref, "dec_ref": ex.dec_ref, "v2_ref": V2_REF,
                 "v3_ref": V3_REF, "roll_ref": ROLL_REF, "v3yangle": V3YANGLE,
                 "vparity": -1, "dispersion_direction": 2, "velosys": 0.0,
                 "specsys": "BARYCENT"},
        pointing={"ra_v1": float(v1[0]), "dec_v1": float(v1[1]), "pa_v3": ROLL_REF},
        subarray={"name": "FULL", "xstart": 1, "ystart": 1, "xsize": NX, "ysize": ny,
                  "fastaxis": 1, "slowaxis": 2},
        aperture_name="MIRIFU_CHANNEL1A",
        bkgdtarg=not is_sci,
        extra_pool_keywords={"pntgtype": "SCIENCE", "dithptin": ex.dither,
                             "patttype": "4-POINT", "pattsize": "DEFAULT"},
    )
    model.meta.target.source_type_apt = target.source_type
    model.meta.exposure.noutputs = 4
    model.meta.exposure.nresets_at_start = 0
    model.meta.exposure.nresets_between_ints = 1
    model.meta.exposure.sample_time = 10
    model.meta.exposure.frame_divisor = 1
    model.meta.wcs = build_mrs_wcs(ex.detector, ex.ra_ref, ex.dec_ref, ny, regions=regions)
    model.meta.wcsinfo.s_region = _s_region(ex.detector, ex.ra_ref, ex.dec_ref)
    lams = [wavelength_of_row(r, c) for c in chans for r in (0, ny - 1)]
    model.meta.wcsinfo.spectral_region = [float(min(lams)), float(max(lams))]
    ch0 = CHANNELS[chans[0]]
    model.meta.photometry.pixelarea_arcsecsq = ch0.alpha_pix * ch0.slice_width
    model.meta.photometry.pixelarea_steradians = (ch0.alpha_pix * ch0.slice_width
                                                  * (np.pi / 180 / 3600) ** 2)
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.velocity_aberration.scale_factor = 1.0
    model.meta.velocity_aberration.va_ra_ref = ex.ra_ref
    model.meta.velocity_aberration.va_dec_ref = ex.dec_ref
    model.meta.asn.pool_name = f"jw{ex.exp.program}_20240101t000000_pool.csv"
    set_cal_steps(model, complete=MIRI_STAGE1 + MRS_STAGE2, skipped=MRS_SKIPPED)
    model.meta.model_type = "IFUImageModel"
    return model


# ----------------------------------------------------------------------------- API
def generate_miri_mrs(outdir, seed: int = 1, program: str = PROGRAM_DEFAULT, *,
                      n_dithers: int = 4, ny: int = NY_DEFAULT, n_cosmic_rays: int = 5,
                      n_hot_pixels: int = 4, background: bool = False,
                      n_background: int = 2) -> list[Path]:
    """Write the synthetic MIRI MRS program (obs 005) into ``outdir``.

    ``n_dithers`` (1-4) exposures per detector (MIRIFUSHORT band MEDIUM, MIRIFULONG band
    SHORT), ``ny`` rows (wavelength samples); ``n_cosmic_rays`` hits in exposure 00002;
    ``n_hot_pixels`` persistent hot pixels per detector.  ``background``: add the
    uniform sky to every exposure and write ``n_background`` (1-4) dedicated background
    exposures per detector (obs 008, BKGDTARG=T) with their Stage 2 x1d.  Returns the
    cal files (science then background, exposure order), the background x1d files, then
    the truth CSVs.  Deterministic for given arguments.
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
    hot = {det: _hot_pixels(seed, det, ny, n_hot_pixels) for det in DETECTORS}
    written: list[Path] = []
    outlier_rows: list[dict] = []
    cr_exp = 2 if n_dithers >= 2 else 1
    for i, ex in enumerate(exps + bkg_exps):
        if ex.role == "science":
            ncr = n_cosmic_rays if int(ex.exp.exposure) == cr_exp else 0
            model = _make_cal_model(ex, i, seed, ny, outlier_rows, ncr, hot[ex.detector],
                                    len(exps), sky=background)
        else:
            model = _make_cal_model(ex, i, seed, ny, outlier_rows, 0, [], len(bkg_exps),
                                    sky=True)
        path = outdir / ex.exp.filename("cal")
        model.save(path)
        ex.cal_path = path
        written.append(path)
        if ex.role == "background":
            x1d = ifu_background_x1d(model, wavelength_map(ex.detector, ny, model.regions),
                                     ex.ra_ref, ex.dec_ref)
            ex.x1d_path = outdir / ex.exp.filename("x1d")
            x1d.save(ex.x1d_path)
            x1d.close()
        model.close()
    written.extend(ex.x1d_path for ex in bkg_exps)
    spec_rows = []
    for c, ch in CHANNELS.items():
        lam = wavelength_of_row(np.arange(ny), c)
        leak = leak_flux_jy(lam) if ch.band == "SHORT" and c == "3" else np.zeros(ny)
        sky = sky_spectrum_mjysr(lam) if background else np.zeros(ny)
        for w, f, lk, b in zip(lam, source_spectrum_jy(lam), leak, sky):
            spec_rows.append({"band": ch.name, "wavelength_um": float(w),
                              "source_flux_jy": float(f), "leak_flux_jy": float(lk),
                              "sky_mjy_sr": float(b)})
    written.append(write_csv(outdir / "mrs_truth_spectrum.csv", spec_rows))
    written.append(write_csv(outdir / "mrs_truth_outliers.csv", outlier_rows,
                             fieldnames=["file", "y", "x", "added_mjy_sr", "kind"]))
    written.append(write_csv(outdir / "mrs_truth_exposures.csv", [
        {"file": ex.exp.filename("cal"), "detector": ex.detector, "dither": ex.dither,
         "ra_ref": ex.ra_ref, "dec_ref": ex.dec_ref, "target_alpha_arcsec": ex.alpha,
         "target_beta_arcsec": ex.beta, "target_ra": ex.target["ra"],
         "target_dec": ex.target["dec"], "role": ex.role,
         "x1d": ex.x1d_path.name if ex.x1d_path else ""} for ex in exps + bkg_exps]))
    return written
