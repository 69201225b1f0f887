"""Synthetic NIRSpec MOS (NRS_MSASPEC) and fixed-slit (NRS_FIXEDSLIT) Stage 2 products.

Each exposure is a ``MultiSlitModel`` ``*_cal.fits`` as calwebb_spec2 writes it: one
``SCI/DQ/ERR/VAR_*/WAVELENGTH`` set per slit (2-D cutouts, dispersion along x) with a
gwcs per slit::

    detector (x, y; cutout pixels, bounding box = cutout)
      -> slit_frame (x_slit, y_slit [slit units], wavelength [um])
      -> world (ICRS ra, dec + wavelength)

Slit units follow NIRSpec: one MOS shutter spans y_slit -0.5..0.5 around its centre,
shutter pitch 1.15; for fixed slits the whole slit spans -0.5..0.5.  ``y_slit = 0`` is
the centre of the shutter that holds the source in that exposure (MOS) or the centre
of the slit (FS).  All transforms are analytic and invertible (Linear1D, Shift, Scale,
Rotation2D, Pix2Sky_TAN, RotateNative2Celestial).

Point sources have a known spectrum (power-law continuum + one Gaussian emission
line, see :func:`source_flux_jy`) spread over rows with a Gaussian profile at the nod
position; data are in MJy per pixel (NIRSpec point-source calibration), so the sum over
rows times 1e6 is the source flux density in Jy - which is what extract_1d reports for
a full-slit box extraction of the s2d.

Output directory layout (``generate_*`` return the list of cal files)::

    outdir/jw01234001001_02101_0000{1,2,3}_nrs1_cal.fits     MOS  (obs 001)
    outdir/jw01234002001_02101_0000{1,2,3}_nrs1_cal.fits     FS   (obs 002)
    outdir/truth_nirspec_mos_sources.csv   per source/slitlet: ids, names, spectrum params
    outdir/truth_nirspec_mos_spectra.csv   source_id, wavelength_um, flux_jy (truth on grid)
    outdir/truth_nirspec_mos_cosmic_rays.csv  file, slit_name, source_id, y, x, added_mjy
    outdir/truth_nirspec_mos_exposures.csv   file, exposure, nod position, slits present
    (same four with ``fs`` for fixed slit)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import erf

from .common import (
    DEFAULT_PROGRAM,
    ExposureId,
    TargetInfo,
    fill_exposure_meta,
    inject_cosmic_rays,
    make_noise,
    make_rng,
    save_model_fast,
    s_region_polygon,
    set_cal_steps,
    set_wcsinfo,
    STAGE2_SPEC_STEPS,
    write_csv,
)

__all__ = [
    "generate_nirspec_mos",
    "generate_nirspec_fs",
    "source_flux_jy",
    "make_slit_wcs",
    "SourceSpec",
    "mos_product_source_id",
]

ARCSEC = 1.0 / 3600.0
PIXSCALE = 0.1  # arcsec / pixel (spatial)
PIXAREA_ARCSEC2 = PIXSCALE * PIXSCALE
PIXAREA_SR = PIXAREA_ARCSEC2 * (math.pi / 180.0 / 3600.0) ** 2
FLUX_PER_ELECTRON = 1.0e-14  # MJy per detected electron (sets the S/N)
READ_NOISE_E = 8.0
LAMBDA_REF = 2.2  # um, continuum reference wavelength

# MOS geometry (slit units: 1 unit = open shutter height; pitch 1.15 units)
MOS_SHUTTER_Y_ARCSEC = 0.46
MOS_SHUTTER_X_ARCSEC = 0.20
MOS_PITCH = 1.15
# Fixed slits: whole slit = 1 unit
FS_SLITS = {  # name: (width arcsec, length arcsec, slit id number)
    "S200A1": (0.2, 3.3, 1),
    "S200A2": (0.2, 3.3, 2),
    "S400A1": (0.4, 3.8, 3),
    "S1600A1": (1.6, 1.6, 4),
    "S200B1": (0.2, 3.3, 5),
}
GRATING_RANGES = {  # grating: (filter, lam_min, lam_max, dlam per pixel um)
    "G140M": ("F100LP", 0.97, 1.89, 0.000636),
    "G235M": ("F170LP", 1.66, 3.07, 0.00106),
    "G395M": ("F290LP", 2.87, 5.10, 0.00179),
}

STAGE2_NRS_MOS_STEPS = STAGE2_SPEC_STEPS + (
    "imprint", "bkg_subtract", "msa_flagging", "extract_2d", "wavecorr",
    "barshadow", "pathloss",
)
STAGE2_NRS_FS_STEPS = STAGE2_SPEC_STEPS + (
    "bkg_subtract", "extract_2d", "wavecorr", "pathloss",
)


# --------------------------------------------------------------------------- spectra


@dataclass
class SourceSpec:
    """Truth for one source (or background/virtual slitlet)."""

    source_id: int
    source_name: str | None
    kind: str  # 'source' | 'background' | 'virtual'
    ra: float
    dec: float
    xpos: float  # source position in its shutter/slit, slit units
    ypos: float
    cont_jy: float  # continuum flux density at LAMBDA_REF
    alpha: float  # F ~ (lam/LAMBDA_REF)**alpha
    line_um: float
    line_sigma_um: float
    line_peak_jy: float
    lam0: float  # wavelength of pixel x=0 of the slit cutout (um)
    dlam: float  # um / pixel
    nx: int
    ny: int
    profile_sigma_pix: float
    slit_name: str = ""
    slitlet_id: int = 0
    quadrant: int = 1
    xcen: int = 0
    ycen: int = 0
    xstart: int = 1
    ystart: int = 1
    exposures: list = field(default_factory=list)  # exposure numbers it appears in

    @property
    def source_type(self) -> str:
        return "EXTENDED" if self.kind == "background" else "POINT"


def source_flux_jy(wavelength_um, cont_jy, alpha, line_um, line_sigma_um, line_peak_jy):
    """Truth flux density (Jy) of a synthetic source at ``wavelength_um``.

    ``F = cont_jy * (lam / 2.2)**alpha + line_peak_jy * exp(-0.5 ((lam - line_um) / line_sigma_um)**2)``.
    The truth CSV holds these parameters per source, so
    ``source_flux_jy(x1d['WAVELENGTH'], **params)`` is the expected x1d ``FLUX``.
    """
    lam = np.asarray(wavelength_um, dtype=float)
    f = cont_jy * (lam / LAMBDA_REF) ** alpha
    if line_peak_jy:
        f = f + line_peak_jy * np.exp(-0.5 * ((lam - line_um) / line_sigma_um) ** 2)
    return f


def _spec_params(s: SourceSpec) -> dict:
    return dict(cont_jy=s.cont_jy, alpha=s.alpha, line_um=s.line_um,
                line_sigma_um=s.line_sigma_um, line_peak_jy=s.line_peak_jy)


def _profile(ny: int, yc: float, sigma: float) -> np.ndarray:
    """Gaussian integrated over each pixel row (rows are pixel centres 0..ny-1)."""
    edges = np.arange(ny + 1) - 0.5
    cdf = 0.5 * (1 + erf((edges - yc) / (sigma * math.sqrt(2))))
    return np.diff(cdf)


# --------------------------------------------------------------------------- WCS


def make_slit_wcs(
    nx: int,
    ny: int,
    *,
    lam0: float,
    dlam: float,
    y0_pix: float,
    pix_per_unit_y: float,
    src_ra: float,
    src_dec: float,
    src_xpos: float,
    src_ypos: float,
    xscale_arcsec: float,
    yscale_arcsec: float,
    pa_deg: float,
):
    """gwcs for one slit cutout.

    detector -> slit_frame:  ``x_slit = 0``, ``y_slit = (y - y0_pix) / pix_per_unit_y``,
    ``lam = lam0 + dlam * x``; inverse ``x = (lam - lam0)/dlam``, ``y = y0 + P*y_slit``.

    slit_frame -> world: slit units offset from the source position
    ``(x_slit - src_xpos, y_slit - src_ypos)`` scaled to degrees (``xscale_arcsec``,
    ``yscale_arcsec`` per slit unit), rotated by ``pa_deg`` and projected with
    ``Pix2Sky_TAN | RotateNative2Celestial(src_ra, src_dec, 180)``; so
    ``world(src_xpos, src_ypos, lam) == (src_ra, src_dec, lam)``.
    Bounding box: the cutout, ``((-0.5, nx-0.5), (-0.5, ny-0.5))``.
    """
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling.models import (
        Const1D, Identity, Linear1D, Mapping, Pix2Sky_TAN, RotateNative2Celestial,
        Rotation2D, Scale, Shift,
    )
    from gwcs import coordinate_frames as cf
    from gwcs.wcs import WCS

    wave = Linear1D(slope=dlam, intercept=lam0)
    spatial = Shift(-y0_pix) | Scale(1.0 / pix_per_unit_y)
    zero = Const1D(0.0)
    det2slit = Mapping((0, 1, 0)) | zero & spatial & wave
    det2slit.inverse = Mapping((2, 1)) | wave.inverse & spatial.inverse

    sky = (
        (Shift(-src_xpos) & Shift(-src_ypos))
        | (Scale(xscale_arcsec * ARCSEC) & Scale(yscale_arcsec * ARCSEC))
        | Rotation2D(angle=pa_deg)
        | Pix2Sky_TAN()
        | RotateNative2Celestial(src_ra, src_dec, 180.0)
    )
    slit2world = sky & Identity(1)

    det = cf.Frame2D(name="detector", axes_order=(0, 1))
    slit_spatial = cf.Frame2D(name="slit_spatial", axes_order=(0, 1), unit=("", ""),
                              axes_names=("x_slit", "y_slit"))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    slit_frame = cf.CompositeFrame([slit_spatial, spec], name="slit_frame")
    celestial = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    world = cf.CompositeFrame([celestial, spec], name="world")
    w = WCS([(det, det2slit), (slit_frame, slit2world), (world, None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    w.array_shape = (ny, nx)
    return w


def _footprint(w, nx, ny):
    """RA/Dec corners of the slit on the sky (for S_REGION): slit x -0.5..0.5 and the
    y_slit range the cutout covers, at the central wavelength."""
    d2s = w.get_transform("detector", "slit_frame")
    s2w = w.get_transform("slit_frame", "world")
    _, ylo, lam = d2s(nx / 2.0, -0.5)
    _, yhi, _ = d2s(nx / 2.0, ny - 0.5)
    xs = np.array([-0.5, 0.5, 0.5, -0.5])
    ys = np.array([ylo, ylo, yhi, yhi])
    ra, dec, _ = s2w(xs, ys, np.full(4, lam))
    return ra, dec


# --------------------------------------------------------------------------- helpers


def mos_product_source_id(source_id: int, source_name: str | None) -> str:
    """Source field of a spec3 MOS product name (``s``/``b``/``v`` + 9 digits),
    as ``Spec3Pipeline._create_nrsmos_source_id`` builds it."""
    if source_name and "BKG" in source_name:
        return f"b{str(source_id):>09s}"
    if source_id < 0:
        return f"v{str(source_id)[1:]:>09s}"
    return f"s{str(source_id):>09s}"


def _offset_radec(ra0, dec0, dx_arcsec, dy_arcsec):
    """Small-offset approximation: (east, north) arcsec -> ra, dec."""
    dec = dec0 + dy_arcsec * ARCSEC
    ra = ra0 + dx_arcsec * ARCSEC / math.cos(math.radians(dec0))
    return ra, dec


def _v1_pointing(ra_ref, dec_ref, roll):
    return {"ra_v1": float(ra_ref), "dec_v1": float(dec_ref), "pa_v3": float(roll)}


def _make_slit(model_cls_slit, *, name, src: SourceSpec, ny, nx, wcs, truth_img, rng,
               bunit, noise_scale, wcsinfo, pointing, bad_pixels=0, cr_rows=None, n_cr=0,
               cr_rng=None):
    """Build a SlitModel (noise, DQ, CRs). Returns (slit, cr_hits, bad_hits)."""
    nz = make_noise(truth_img, rng, flux_per_electron=FLUX_PER_ELECTRON * noise_scale,
                    read_noise_electrons=READ_NOISE_E)
    dq = np.zeros((ny, nx), dtype=np.uint32)
    hits = []
    if n_cr and cr_rng is not None:
        hits = inject_cosmic_rays(nz.data, nz.err, cr_rng, n_cr, rows=cr_rows,
                                  cols=np.arange(5, nx - 5))
    bad = []
    if bad_pixels:
        used = {(y, x) for y, x, _ in hits}
        while len(bad) < bad_pixels:
            y, x = int(rng.integers(0, ny)), int(rng.integers(0, nx))
            if (y, x) in used:
                continue
            used.add((y, x))
            bad.append((y, x))
            nz.data[y, x] = np.nan
            nz.err[y, x] = np.nan
            nz.var_poisson[y, x] = np.nan
            nz.var_rnoise[y, x] = np.nan
            nz.var_flat[y, x] = np.nan
            dq[y, x] = 1 | 2048  # DO_NOT_USE | HOT
    lam = (src.lam0 + src.dlam * np.arange(nx, dtype=np.float64))
    wavelength = np.broadcast_to(lam, (ny, nx)).astype(np.float32)
    slit = model_cls_slit(
        data=nz.data, dq=dq, err=nz.err, var_poisson=nz.var_poisson,
        var_rnoise=nz.var_rnoise, var_flat=nz.var_flat, wavelength=wavelength,
        validate_on_assignment=False,  # per-assignment schema validation costs ~0.15 s/slit
    )
    slit.name = name
    slit.meta.wcs = wcs
    slit.meta.bunit_data = bunit
    slit.meta.bunit_err = bunit
    set_wcsinfo(slit, wcsinfo, pointing)
    slit.meta.wcsinfo.dispersion_direction = 1
    slit.meta.wcsinfo.spectral_order = 1
    slit.meta.wcsinfo.waverange_start = float(lam[0] * 1e-6)
    slit.meta.wcsinfo.waverange_end = float(lam[-1] * 1e-6)
    ra, dec = _footprint(wcs, nx, ny)
    slit.meta.wcsinfo.s_region = s_region_polygon(ra, dec)
    slit.meta.photometry.pixelarea_steradians = PIXAREA_SR
    slit.meta.photometry.pixelarea_arcsecsq = PIXAREA_ARCSEC2
    slit.xstart = int(src.xstart)
    slit.ystart = int(src.ystart)
    slit.xsize = int(nx)
    slit.ysize = int(ny)
    slit.slitlet_id = int(src.slitlet_id)
    slit.source_id = int(src.source_id)
    if src.source_name is not None:
        slit.source_name = src.source_name
        slit.source_alias = src.source_name.split("_")[-1]
    slit.source_type = src.source_type
    slit.stellarity = 1.0 if src.kind == "source" else 0.0
    slit.source_xpos = float(src.xpos)
    slit.source_ypos = float(src.ypos)
    slit.source_ra = float(src.ra)
    slit.source_dec = float(src.dec)
    slit.quadrant = int(src.quadrant)
    slit.xcen = int(src.xcen)
    slit.ycen = int(src.ycen)
    slit.wavelength_corrected = True
    return slit, hits, bad


def _common_optical(grating: str, filt: str | None):
    f = filt or GRATING_RANGES[grating][0]
    return f


# --------------------------------------------------------------------------- MOS


def generate_nirspec_mos(
    outdir: str | Path,
    n_sources: int = 5,
    seed: int = 1,
    *,
    program: str = DEFAULT_PROGRAM,
    observation: str = "001",
    n_nods: int = 3,
    grating: str = "G235M",
    filter: str | None = None,
    nx: int = 300,
    ny: int = 16,
    exposure_time: float = 277.2,
    background_slitlet: bool = True,
    virtual_slit: bool = False,
    missing: Sequence[tuple[int, int]] | None = None,
    cr_exposures: Sequence[int] | None = None,
    n_cr_slits: int | None = None,
    crs_per_slit: int = 2,
    bad_pixel_fraction: float = 0.2,
    truth_prefix: str = "truth_nirspec_mos",
    write_spectra: bool = True,
    validate: bool = True,
) -> list[Path]:
    """Write a synthetic NIRSpec MOS program: ``n_nods`` (3) exposures on NRS1.

    Parameters
    ----------
    n_sources : number of real point sources (source_id 1..n, names
        ``{program}_{source_id}``); one slitlet each, 3 shutters tall (``1x1`` etc).
    background_slitlet : add one slitlet with source_name ``{program}_BKG{slitlet_id}``
        (spec3 product id prefix ``b``), blank sky, EXTENDED, MJy/sr.
    virtual_slit : add one slitlet with a negative source_id (prefix ``v``), blank.
    missing : ``[(source_index, exposure_index), ...]`` (0-based) slits left out of an
        exposure; default: the 2nd source is missing from the last exposure.
    cr_exposures : 0-based exposures that get cosmic rays (default: first and last).
        CRs go into ``n_cr_slits`` slits (default ``max(1, n_sources // 2)``) of sources
        present in every exposure, ``crs_per_slit`` each, on rows whose sky position
        every nod covers (so outlier detection can flag them); DQ stays 0.
    nx, ny : slit cutout size (wavelength pixels, spatial rows).
    validate : validate each exposure against the datamodel schema once before saving
        (schema problems raise); assignment-time validation is always off for speed.

    Returns the list of ``_cal.fits`` paths (exposure order).  Truth CSVs go to
    ``outdir/{truth_prefix}_{sources,spectra,cosmic_rays,exposures}.csv``.
    """
    from stdatamodels.jwst.datamodels import MultiSlitModel, SlitModel

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    filt = _common_optical(grating, filter)
    _, gmin, gmax, dlam = GRATING_RANGES[grating]
    rng = make_rng(seed, "mos", program, observation)

    field_ra, field_dec = 53.1625, -27.7914
    roll = float(rng.uniform(0, 360))
    pa_slit = roll  # position angle of the slit y axis on the sky (deg)
    q_pix = MOS_SHUTTER_Y_ARCSEC / PIXSCALE  # pixels per slit y unit
    pitch_pix = MOS_PITCH * q_pix
    yc_cut = (ny - 1) / 2.0
    # nod k: source shutter index along the slitlet (0 bottom .. 2 top): centre, up, down
    nod_shutter = [1, 2, 0, 1, 2][:n_nods] if n_nods <= 5 else [1] * n_nods
    y0_nod = [yc_cut + (s - 1) * pitch_pix for s in nod_shutter]
    nod_offset_arcsec = [(s - 1) * MOS_PITCH * MOS_SHUTTER_Y_ARCSEC for s in nod_shutter]

    if missing is None:
        missing = [(1, n_nods - 1)] if n_sources >= 2 and n_nods >= 2 else []
    missing_set = {(int(a), int(b)) for a, b in missing}
    if cr_exposures is None:
        cr_exposures = sorted({0, n_nods - 1})
    if n_cr_slits is None:
        n_cr_slits = max(1, n_sources // 2)

    # ---- sources / slitlets
    sources: list[SourceSpec] = []
    n_slits = n_sources + int(background_slitlet) + int(virtual_slit)
    for i in range(n_slits):
        if i < n_sources:
            kind, sid = "source", i + 1
            name = f"{program}_{sid}"
        elif background_slitlet and i == n_sources:
            kind, sid = "background", n_sources + 1000
            name = None  # filled below with the slitlet id
        else:
            kind, sid = "virtual", -(n_sources + 2000)
            name = None
        slitlet_id = i + 2  # real slitlet ids start at 1 or higher
        if name is None:
            name = f"{program}_BKG{slitlet_id}" if kind == "background" else f"{program}_VRT{slitlet_id}"
        dra, ddec = rng.uniform(-90, 90, 2)  # arcsec from field centre
        ra, dec = _offset_radec(field_ra, field_dec, dra, ddec)
        lam0 = float(rng.uniform(gmin + 0.02, gmax - 0.02 - nx * dlam))
        lam_hi = lam0 + (nx - 1) * dlam
        real = kind == "source"
        cont = float(10 ** rng.uniform(np.log10(5e-6), np.log10(5e-5))) if real else 0.0
        alpha = float(rng.uniform(-2.0, 1.0)) if real else 0.0
        line_um = float(rng.uniform(lam0 + 0.25 * (lam_hi - lam0), lam0 + 0.75 * (lam_hi - lam0)))
        line_sig = float(rng.uniform(0.0015, 0.003))
        line_peak = float(cont * rng.uniform(0.5, 3.0)) if real else 0.0
        xpos = float(rng.uniform(-0.15, 0.15)) if real else 0.0
        ypos = float(rng.uniform(-0.1, 0.1)) if real else 0.0
        quadrant = int(rng.integers(1, 5))
        sources.append(SourceSpec(
            source_id=sid, source_name=name, kind=kind, ra=ra, dec=dec, xpos=xpos, ypos=ypos,
            cont_jy=cont, alpha=alpha, line_um=line_um, line_sigma_um=line_sig,
            line_peak_jy=line_peak, lam0=lam0, dlam=dlam, nx=nx, ny=ny,
            profile_sigma_pix=0.8, slit_name=str(slitlet_id), slitlet_id=slitlet_id,
            quadrant=quadrant, xcen=int(rng.integers(1, 366)), ycen=int(rng.integers(1, 172)),
            xstart=int(round((lam0 - gmin) / dlam)) + 1,
            ystart=1 + (i * (ny + 2)) % (2048 - ny - 2),
        ))

    # rows (relative to the source-shutter centre) that every nod covers
    rel_lo = max(-(y0 + 0.5) for y0 in y0_nod) + 1.0
    rel_hi = min(ny - 0.5 - y0 for y0 in y0_nod) - 1.0

    cr_candidates = [k for k, s in enumerate(sources) if s.kind == "source"
                     and not any((k, e) in missing_set for e in range(n_nods))]
    cr_slit_idx = set(cr_candidates[:n_cr_slits])

    files: list[Path] = []
    cr_rows_out: list[dict] = []
    exp_rows: list[dict] = []
    bad_rows: list[dict] = []
    start_mjd = 60400.25
    msa_file = f"jw{program}{observation}001_01_msa.fits"
    for k in range(n_nods):
        exp = ExposureId(program=program, observation=observation, visit="001",
                         visit_group="02", sequence="1", activity="01",
                         exposure=k + 1, detector="NRS1")
        fname = exp.filename("cal")
        model = MultiSlitModel(validate_on_assignment=False)
        # pointing of this nod: telescope offset along the slit direction
        off = nod_offset_arcsec[k]
        pa = math.radians(pa_slit)
        ra_ref, dec_ref = _offset_radec(field_ra, field_dec, -off * math.sin(pa), -off * math.cos(pa))
        fill_exposure_meta(
            model, exp, instrument="NIRSPEC", exp_type="NRS_MSASPEC",
            target=TargetInfo(proposer_name="SYNTH-MOS-FIELD", catalog_name="SYNTH-MOS-FIELD",
                              ra=field_ra, dec=field_dec, target_id=1),
            start_mjd=start_mjd + k * (exposure_time * 1.1 + 120) / 86400.0,
            exposure_time=exposure_time, nints=1, ngroups=20, frame_time=14.58889,
            readpatt="NRSIRS2RAPID", template="NIRSpec MultiObject Spectroscopy",
            total_exposures=n_nods, exposure_count=k + 1,
            optical={"filter": filt, "grating": grating, "fixed_slit": "NONE",
                     "msa_metadata_file": msa_file, "msa_metadata_id": 1,
                     "msa_configuration_id": 1, "lamp_mode": "MSASPEC", "lamp_state": "NONE",
                     "gwa_xtilt": 0.3197991, "gwa_ytilt": 0.1394715, "gwa_tilt": 37.0},
            dither={"primary_type": "NONE", "position_number": k + 1, "total_points": n_nods,
                    "primary_points": n_nods, "nod_type": f"{n_nods}-SHUTTER-SLITLET"
                    if n_nods in (2, 3, 5) else "NONE",
                    "pattern_start": 1, "subpixel_total_points": 1, "x_offset": 0.0,
                    "y_offset": float(off)},
            wcsinfo=(wcsinfo := {"ra_ref": ra_ref, "dec_ref": dec_ref, "v2_ref": 378.563,
                                 "v3_ref": -428.402, "roll_ref": roll, "v3yangle": 138.5,
                                 "vparity": -1, "dispersion_direction": 1,
                                 "spectral_order": 1}),
            pointing=(pointing := _v1_pointing(ra_ref, dec_ref, (roll - 138.5) % 360)),
            subarray={"name": "FULL", "xstart": 1, "ystart": 1, "xsize": 2048, "ysize": 2048,
                      "fastaxis": 2, "slowaxis": 1},
            aperture_name="NRS_FULL_MSA",
            extra_pool_keywords={"expspcin": 1, "dithptin": k + 1, "pntg_seq": k + 1},
        )
        model.meta.asn.pool_name = f"jw{program}_20240101t000000_pool.csv"
        model.meta.asn.table_name = f"jw{program}-o{observation}_20240101t000000_spec2_00001_asn.json"
        set_cal_steps(model, STAGE2_NRS_MOS_STEPS)

        present = []
        for i, src in enumerate(sources):
            if (i, k) in missing_set:
                continue
            s_k = nod_shutter[k]
            y0 = y0_nod[k]
            w = make_slit_wcs(
                nx, ny, lam0=src.lam0, dlam=dlam, y0_pix=y0, pix_per_unit_y=q_pix,
                src_ra=src.ra, src_dec=src.dec, src_xpos=src.xpos, src_ypos=src.ypos,
                xscale_arcsec=MOS_SHUTTER_X_ARCSEC, yscale_arcsec=MOS_SHUTTER_Y_ARCSEC,
                pa_deg=pa_slit,
            )
            lam = src.lam0 + dlam * np.arange(nx)
            if src.kind == "source":
                prof = _profile(ny, y0 + q_pix * src.ypos, src.profile_sigma_pix)
                truth = np.outer(prof, source_flux_jy(lam, **_spec_params(src)) * 1e-6)
                bunit, scale = "MJy", 1.0
            else:
                truth = np.zeros((ny, nx))
                bunit, scale = "MJy/sr", 1.0 / PIXAREA_SR
            srng = make_rng(seed, "mos-noise", program, observation, k, src.source_id)
            n_cr = crs_per_slit if (i in cr_slit_idx and k in cr_exposures) else 0
            if n_cr:
                yc = y0 + q_pix * src.ypos
                lo = max(0, int(math.ceil(y0 + rel_lo)))
                hi = min(ny - 1, int(math.floor(y0 + rel_hi)))
                cr_rows = [r for r in range(lo, hi + 1) if abs(r - yc) <= 3] or list(range(lo, hi + 1))
            else:
                cr_rows = None
            nbad = 1 if (src.kind == "source" and i not in cr_slit_idx
                         and srng.random() < bad_pixel_fraction) else 0
            slit, hits, bad = _make_slit(
                SlitModel, name=src.slit_name, src=src, ny=ny, nx=nx, wcs=w,
                truth_img=truth * scale, rng=srng, bunit=bunit, noise_scale=scale,
                wcsinfo=wcsinfo, pointing=pointing,
                bad_pixels=nbad, cr_rows=cr_rows, n_cr=n_cr,
                cr_rng=make_rng(seed, "mos-cr", program, observation, k, src.source_id),
            )
            slit.shutter_id = int(src.ycen)
            slit.shutter_state = "".join("x" if j == s_k else "1" for j in range(3))
            slit.slit_ymin = float((-0.5 - y0) / q_pix)
            slit.slit_ymax = float((ny - 0.5 - y0) / q_pix)
            slit.slit_xscale = 1.0
            slit.slit_yscale = 1.0
            slit.barshadow_corrected = True
            model.slits.append(slit)
            present.append(src.source_id)
            if k + 1 not in src.exposures:
                src.exposures.append(k + 1)
            for y, x, add in hits:
                cr_rows_out.append({"file": fname, "exposure": k + 1, "slit_name": src.slit_name,
                                    "source_id": src.source_id, "source_name": src.source_name,
                                    "y": y, "x": x, "added_mjy": add})
            for y, x in bad:
                bad_rows.append({"file": fname, "slit_name": src.slit_name, "y": y, "x": x})
        path = outdir / fname
        _validate_and_save(model, path, validate)
        model.close()
        files.append(path)
        exp_rows.append({"file": fname, "exposure": k + 1, "nod_position": k + 1,
                         "source_shutter": nod_shutter[k], "nod_offset_arcsec": off,
                         "exp_type": "NRS_MSASPEC", "n_slits": len(present),
                         "source_ids": " ".join(str(p) for p in present)})

    _write_truth(outdir, truth_prefix, sources, cr_rows_out, exp_rows, bad_rows,
                 mos=True, write_spectra=write_spectra)
    return files


def _validate_and_save(model, path: Path, validate: bool) -> None:
    """Save; with ``validate`` first check the whole tree against the schema once,
    turning ValidationWarnings into errors (assignment-time validation is off)."""
    if validate:
        import warnings

        from stdatamodels.validate import ValidationWarning

        with warnings.catch_warnings():
            warnings.simplefilter("error", ValidationWarning)
            model.validate()
    save_model_fast(model, path)


def _write_truth(outdir, prefix, sources, cr_rows, exp_rows, bad_rows, *, mos, write_spectra):
    rows = []
    for s in sources:
        rows.append({
            "source_id": s.source_id,
            "source_name": s.source_name or "",
            "product_source_id": (mos_product_source_id(s.source_id, s.source_name) if mos
                                  else f"s{str(s.source_id):>09s}"),
            "kind": s.kind, "source_type": s.source_type, "slit_name": s.slit_name,
            "slitlet_id": s.slitlet_id, "ra": s.ra, "dec": s.dec,
            "source_xpos": s.xpos, "source_ypos": s.ypos,
            "cont_jy": s.cont_jy, "alpha": s.alpha, "lambda_ref_um": LAMBDA_REF,
            "line_um": s.line_um, "line_sigma_um": s.line_sigma_um, "line_peak_jy": s.line_peak_jy,
            "lam_min_um": s.lam0, "lam_max_um": s.lam0 + (s.nx - 1) * s.dlam, "dlam_um": s.dlam,
            "profile_sigma_pix": s.profile_sigma_pix,
            "exposures": " ".join(str(e) for e in sorted(s.exposures)),
            "n_exposures": len(s.exposures),
        })
    write_csv(outdir / f"{prefix}_sources.csv", rows)
    write_csv(outdir / f"{prefix}_cosmic_rays.csv", cr_rows,
              ["file", "exposure", "slit_name", "source_id", "source_name", "y", "x", "added_mjy"])
    write_csv(outdir / f"{prefix}_exposures.csv", exp_rows)
    write_csv(outdir / f"{prefix}_bad_pixels.csv", bad_rows, ["file", "slit_name", "y", "x"])
    if write_spectra:
        spec_rows = []
        for s in sources:
            lam = s.lam0 + s.dlam * np.arange(s.nx)
            f = source_flux_jy(lam, **_spec_params(s))
            spec_rows.extend({"source_id": s.source_id, "wavelength_um": float(a), "flux_jy": float(b)}
                             for a, b in zip(lam, f))
        write_csv(outdir / f"{prefix}_spectra.csv", spec_rows,
                  ["source_id", "wavelength_um", "flux_jy"])


# --------------------------------------------------------------------------- FS


def generate_nirspec_fs(
    outdir: str | Path,
    seed: int = 1,
    *,
    program: str = DEFAULT_PROGRAM,
    observation: str = "002",
    slits: Sequence[str] = ("S200A1", "S200A2"),
    n_nods: int = 3,
    grating: str = "G235M",
    filter: str | None = None,
    nx: int = 300,
    ny: int = 35,
    exposure_time: float = 277.2,
    cr_exposures: Sequence[int] | None = None,
    crs_per_slit: int = 2,
    truth_prefix: str = "truth_nirspec_fs",
    write_spectra: bool = True,
    validate: bool = True,
) -> list[Path]:
    """Write a synthetic NIRSpec fixed-slit program: ``n_nods`` (3, or 2) exposures,
    each a MultiSlitModel holding ``slits`` (default S200A1 + S200A2) with one point
    source per slit (source_id 1, 2, ...; empty source_name, as FS data have, so
    exp_to_source groups by source_id).  Primary slit (FXD_SLIT) = ``slits[0]``.
    Nod pattern ``3-POINT-NOD`` (source at y_slit 0, +0.3, -0.3) or ``2-POINT-NOD``
    (+0.25, -0.25).  Cosmic rays in ``cr_exposures`` (default: the first) in every slit.
    Truth CSVs: ``outdir/{truth_prefix}_*.csv`` as for MOS.
    """
    from stdatamodels.jwst.datamodels import MultiSlitModel, SlitModel

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    filt = _common_optical(grating, filter)
    _, gmin, gmax, dlam = GRATING_RANGES[grating]
    rng = make_rng(seed, "fs", program, observation)
    field_ra, field_dec = 150.1192, 2.2058
    roll = float(rng.uniform(0, 360))
    pa_slit = roll
    nod_y = {3: [0.0, 0.3, -0.3], 2: [0.25, -0.25]}.get(n_nods, list(np.linspace(-0.3, 0.3, n_nods)))
    nod_type = {3: "3-POINT-NOD", 2: "2-POINT-NOD"}.get(n_nods, "NONE")
    if cr_exposures is None:
        cr_exposures = [0]
    yc_cut = (ny - 1) / 2.0

    sources: list[SourceSpec] = []
    for i, sname in enumerate(slits):
        width, length, sid_num = FS_SLITS[sname]
        sid = i + 1
        if i == 0:
            ra, dec = field_ra, field_dec
        else:  # other slits see other sky positions (tens of arcsec away)
            ra, dec = _offset_radec(field_ra, field_dec, *rng.uniform(-20, 20, 2))
        lam0 = float(rng.uniform(gmin + 0.02, gmax - 0.02 - nx * dlam))
        lam_hi = lam0 + (nx - 1) * dlam
        cont = float(10 ** rng.uniform(np.log10(1e-5), np.log10(1e-4)))
        sources.append(SourceSpec(
            source_id=sid, source_name=None, kind="source", ra=ra, dec=dec,
            xpos=float(rng.uniform(-0.1, 0.1)), ypos=0.0,
            cont_jy=cont, alpha=float(rng.uniform(-2, 1)),
            line_um=float(rng.uniform(lam0 + 0.25 * (lam_hi - lam0), lam0 + 0.75 * (lam_hi - lam0))),
            line_sigma_um=float(rng.uniform(0.0015, 0.003)),
            line_peak_jy=float(cont * rng.uniform(0.5, 3.0)), lam0=lam0, dlam=dlam, nx=nx, ny=ny,
            profile_sigma_pix=0.8, slit_name=sname, slitlet_id=sid_num, quadrant=5,
            xstart=int(round((lam0 - gmin) / dlam)) + 1, ystart=900 + 60 * i,
        ))

    files: list[Path] = []
    cr_rows_out: list[dict] = []
    exp_rows: list[dict] = []
    bad_rows: list[dict] = []
    start_mjd = 60410.5
    for k in range(n_nods):
        exp = ExposureId(program=program, observation=observation, visit="001",
                         visit_group="02", sequence="1", activity="01",
                         exposure=k + 1, detector="NRS1")
        fname = exp.filename("cal")
        model = MultiSlitModel(validate_on_assignment=False)
        width0, length0, _ = FS_SLITS[slits[0]]
        off = nod_y[k] * length0  # arcsec along the slit
        pa = math.radians(pa_slit)
        ra_ref, dec_ref = _offset_radec(field_ra, field_dec, -off * math.sin(pa), -off * math.cos(pa))
        fill_exposure_meta(
            model, exp, instrument="NIRSPEC", exp_type="NRS_FIXEDSLIT",
            target=TargetInfo(proposer_name="SYNTH-FS-STAR", catalog_name="SYNTH-FS-STAR",
                              ra=field_ra, dec=field_dec, source_type="POINT", target_id=2),
            start_mjd=start_mjd + k * (exposure_time * 1.1 + 120) / 86400.0,
            exposure_time=exposure_time, nints=1, ngroups=20, frame_time=14.58889,
            readpatt="NRSIRS2RAPID", template="NIRSpec Fixed-slit Spectroscopy",
            total_exposures=n_nods, exposure_count=k + 1,
            optical={"filter": filt, "grating": grating, "fixed_slit": slits[0],
                     "lamp_mode": "FIXEDSLIT", "lamp_state": "NONE",
                     "gwa_xtilt": 0.3197991, "gwa_ytilt": 0.1394715, "gwa_tilt": 37.0},
            dither={"primary_type": nod_type, "position_number": k + 1, "total_points": n_nods,
                    "primary_points": n_nods, "pattern_start": 1,
                    **({"nod_type": nod_type} if nod_type == "3-POINT-NOD" else {}),
                    "subpixel_total_points": 1, "x_offset": 0.0, "y_offset": float(off)},
            wcsinfo=(wcsinfo := {"ra_ref": ra_ref, "dec_ref": dec_ref, "v2_ref": 321.87,
                                 "v3_ref": -477.94, "roll_ref": roll, "v3yangle": 138.5,
                                 "vparity": -1, "dispersion_direction": 1,
                                 "spectral_order": 1}),
            pointing=(pointing := _v1_pointing(ra_ref, dec_ref, (roll - 138.5) % 360)),
            subarray={"name": "ALLSLITS", "xstart": 1, "ystart": 897, "xsize": 2048, "ysize": 256,
                      "fastaxis": 2, "slowaxis": 1},
            aperture_name=f"NRS_{slits[0]}_SLIT",
            extra_pool_keywords={"expspcin": 1, "dithptin": k + 1, "pntg_seq": k + 1},
        )
        model.meta.dither.spectral_position_number = 1
        model.meta.dither.spatial_position_number = k + 1
        model.meta.asn.pool_name = f"jw{program}_20240101t000000_pool.csv"
        model.meta.asn.table_name = f"jw{program}-o{observation}_20240101t000000_spec2_00001_asn.json"
        set_cal_steps(model, STAGE2_NRS_FS_STEPS)

        for i, src in enumerate(sources):
            width, length, _ = FS_SLITS[src.slit_name]
            q_pix = length / PIXSCALE
            ypos = nod_y[k]
            w = make_slit_wcs(
                nx, ny, lam0=src.lam0, dlam=dlam, y0_pix=yc_cut, pix_per_unit_y=q_pix,
                src_ra=src.ra, src_dec=src.dec, src_xpos=src.xpos, src_ypos=ypos,
                xscale_arcsec=width, yscale_arcsec=length, pa_deg=pa_slit,
            )
            lam = src.lam0 + dlam * np.arange(nx)
            ysrc = yc_cut + q_pix * ypos
            prof = _profile(ny, ysrc, src.profile_sigma_pix)
            truth = np.outer(prof, source_flux_jy(lam, **_spec_params(src)) * 1e-6)
            srng = make_rng(seed, "fs-noise", program, observation, k, src.source_id)
            n_cr = crs_per_slit if k in cr_exposures else 0
            # rows within 3 px of the source: the sky there is covered by every nod
            cr_rows = [r for r in range(ny) if abs(r - ysrc) <= 3]
            slit, hits, bad = _make_slit(
                SlitModel, name=src.slit_name, src=src, ny=ny, nx=nx, wcs=w,
                truth_img=truth, rng=srng, bunit="MJy", noise_scale=1.0, bad_pixels=0,
                wcsinfo=wcsinfo, pointing=pointing,
                cr_rows=cr_rows, n_cr=n_cr,
                cr_rng=make_rng(seed, "fs-cr", program, observation, k, src.source_id),
            )
            slit.source_ypos = float(ypos)
            slit.shutter_state = ""
            slit.slit_ymin = -0.5
            slit.slit_ymax = 0.5
            slit.quadrant = 5
            slit.shutter_id = int(src.slitlet_id) - 1
            model.slits.append(slit)
            if k + 1 not in src.exposures:
                src.exposures.append(k + 1)
            for y, x, add in hits:
                cr_rows_out.append({"file": fname, "exposure": k + 1, "slit_name": src.slit_name,
                                    "source_id": src.source_id, "source_name": "",
                                    "y": y, "x": x, "added_mjy": add})
        path = outdir / fname
        _validate_and_save(model, path, validate)
        model.close()
        files.append(path)
        exp_rows.append({"file": fname, "exposure": k + 1, "nod_position": k + 1,
                         "source_ypos": nod_y[k], "nod_offset_arcsec": off,
                         "exp_type": "NRS_FIXEDSLIT", "n_slits": len(sources),
                         "source_ids": " ".join(str(s.source_id) for s in sources)})
    _write_truth(outdir, truth_prefix, sources, cr_rows_out, exp_rows, bad_rows,
                 mos=False, write_spectra=write_spectra)
    return files
