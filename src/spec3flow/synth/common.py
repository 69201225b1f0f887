"""Generic pieces shared by the synthetic Stage 2 (``*_cal.fits``) generators.

Everything here is instrument-agnostic; the NIRSpec (``nirspec.py``) and MIRI LRS
(``miri_lrs.py``) generators build on it.

Contents
--------
- :func:`make_rng`              deterministic ``numpy.random.Generator`` from a seed + labels
- :class:`ExposureId`           the JWST exposure identifiers, filename and OBS_ID/VISIT_ID
- :func:`jwst_filename`         ``jw{prog}{obs}{visit}_{vgrp}{seq}{act}_{exp}_{det}_{suffix}.fits``
- :class:`TargetInfo`           target block (TARGPROP, TARGNAME, TARG_RA/DEC)
- :func:`fill_exposure_meta`    fills meta.* of a JWST datamodel like a real cal file
- :func:`set_wcsinfo`           meta.wcsinfo / meta.pointing (skips models lacking them)
- :func:`set_cal_steps`         marks the Stage 1/2 cal_step.* keywords COMPLETE
- :func:`pool_keywords`         extra primary-header cards (TARGETID, PNTGTYPE...) that DMS
                                pools carry but the datamodel schemas do not define
- :func:`make_noise`            noisy data + ERR/VAR_POISSON/VAR_RNOISE/VAR_FLAT from a truth image
- :func:`inject_cosmic_rays`    add cosmic-ray hits (DQ untouched) and return their positions
- :func:`save_model_fast`       ``model.save`` without stdatamodels' O(n_hdu^2) HDU look-ups
- :func:`ifu_background_x1d`    Stage 2 x1d of a dedicated IFU background exposure (NRS_IFU,
                                MIR_MRS), the input master_background combines
- :func:`write_csv`             truth-table writer (plain csv module, deterministic order)
- :func:`s_region_polygon`      STC-S ``POLYGON ICRS`` string from corner coordinates
- :func:`mjd_to_date_time`      MJD -> (DATE-OBS, TIME-OBS) strings

Conventions
-----------
Program numbers are 5-digit strings (``'01234'``); observation numbers 3-digit strings
(``'001'``), visit ``'001'``, visit group ``'02'``, sequence ``'1'``, activity ``'01'``,
exposure ``'00001'`` - i.e. what the FITS headers of real files carry.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "make_rng",
    "ExposureId",
    "jwst_filename",
    "TargetInfo",
    "fill_exposure_meta",
    "set_cal_steps",
    "set_wcsinfo",
    "STAGE2_SPEC_STEPS",
    "pool_keywords",
    "make_noise",
    "NoiseArrays",
    "inject_cosmic_rays",
    "write_csv",
    "save_model_fast",
    "ifu_background_x1d",
    "s_region_polygon",
    "mjd_to_date_time",
    "DEFAULT_PROGRAM",
]

DEFAULT_PROGRAM = "01234"

# --------------------------------------------------------------------------- RNG


def make_rng(seed: int, *labels: Any) -> np.random.Generator:
    """Deterministic generator from ``seed`` and any number of labels.

    The same (seed, labels) always give the same stream, independent of the order in
    which other streams are created - so e.g. ``make_rng(seed, 'noise', filename, slit)``
    makes per-slit noise reproducible regardless of how many slits precede it.
    Labels are hashed with SHA-256 (not Python's salted ``hash``).
    """
    words = [int(seed) & 0xFFFFFFFF]
    for lab in labels:
        h = hashlib.sha256(repr(lab).encode()).digest()
        words.extend(int.from_bytes(h[i : i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(words))


# --------------------------------------------------------------------------- IDs / names


def jwst_filename(
    program: str | int,
    observation: str | int,
    visit: str | int,
    visit_group: str | int,
    sequence: str | int,
    activity: str | int,
    exposure: str | int,
    detector: str,
    suffix: str = "cal",
) -> str:
    """JWST Stage 1/2 file name.

    ``jw{program:05d}{obs:03d}{visit:03d}_{visitgrp:02d}{seq:1d}{act:02d}_{exp:05d}_{det}_{suffix}.fits``
    with the detector lower-cased (``nrs1``, ``mirimage``).  Activity is formatted as two
    base-10 digits here (real DMS uses base 36 beyond 99).
    """
    return (
        f"jw{int(program):05d}{int(observation):03d}{int(visit):03d}"
        f"_{int(visit_group):02d}{int(sequence):1d}{int(activity):02d}"
        f"_{int(exposure):05d}_{detector.lower()}_{suffix}.fits"
    )


@dataclass(frozen=True)
class ExposureId:
    """Identifiers of one exposure, as strings formatted like real headers."""

    program: str = DEFAULT_PROGRAM
    observation: str = "001"
    visit: str = "001"
    visit_group: str = "02"
    sequence: str = "1"
    activity: str = "01"
    exposure: str = "00001"
    detector: str = "NRS1"

    def __post_init__(self) -> None:  # normalise formatting of ints / short strings
        object.__setattr__(self, "program", f"{int(self.program):05d}")
        object.__setattr__(self, "observation", f"{int(self.observation):03d}")
        object.__setattr__(self, "visit", f"{int(self.visit):03d}")
        object.__setattr__(self, "visit_group", f"{int(self.visit_group):02d}")
        object.__setattr__(self, "sequence", f"{int(self.sequence):1d}")
        object.__setattr__(self, "activity", f"{int(self.activity):02d}")
        object.__setattr__(self, "exposure", f"{int(self.exposure):05d}")

    def filename(self, suffix: str = "cal") -> str:
        """File name, see :func:`jwst_filename`."""
        return jwst_filename(
            self.program, self.observation, self.visit, self.visit_group,
            self.sequence, self.activity, self.exposure, self.detector, suffix,
        )

    @property
    def visit_id(self) -> str:
        """VISIT_ID: program + observation + visit (11 digits)."""
        return f"{self.program}{self.observation}{self.visit}"

    @property
    def obs_id(self) -> str:
        """OBS_ID as DMS writes it: ``V{visit_id}P{0000000}{visitgrp}{seq}{act}``.

        Real example: ``V93125002001P0000000002106`` (visit group 02, seq 1, act 06).
        """
        return f"V{self.visit_id}P00000000{self.visit_group}{self.sequence}{self.activity}"

    @property
    def stem(self) -> str:
        """File name without ``_{suffix}.fits``."""
        return self.filename("x")[: -len("_x.fits")]


@dataclass
class TargetInfo:
    """Target block of the primary header."""

    proposer_name: str = "SYNTH-FIELD"  # TARGPROP (association product names use it)
    catalog_name: str = "SYNTH-FIELD"  # TARGNAME
    ra: float = 53.16  # TARG_RA, deg
    dec: float = -27.78  # TARG_DEC, deg
    type: str = "FIXED"  # TARGTYPE
    source_type: str | None = None  # SRCTYPE (top level; slits carry their own)
    target_id: int = 1  # TARGETID: pool column only, not a datamodel keyword

    @classmethod
    def for_role(cls, target: Mapping[str, Any], science: bool) -> "TargetInfo":
        """A program's science target (a point source) or its dedicated background target,
        which Stage 2's srctype marks EXTENDED (BKGDTARG -> EXTENDED)."""
        return cls(proposer_name=target["proposer_name"], catalog_name=target["catalog_name"],
                   ra=target["ra"], dec=target["dec"],
                   source_type="POINT" if science else "EXTENDED",
                   target_id=target["target_id"])


# --------------------------------------------------------------------------- metadata


#: Stage 1 + Stage 2 spectroscopic steps a real NIRSpec/MIRI spec2 cal file has run.
STAGE2_SPEC_STEPS: tuple[str, ...] = (
    "dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub",
    "jump", "ramp_fit", "gain_scale", "assign_wcs", "flat_field", "photom",
    "srctype",
)


def set_cal_steps(model, complete: Iterable[str] = STAGE2_SPEC_STEPS,
                  skipped: Iterable[str] = ()) -> None:
    """Set ``meta.cal_step.<step>`` = COMPLETE / SKIPPED."""
    for s in complete:
        setattr(model.meta.cal_step, s, "COMPLETE")
    for s in skipped:
        setattr(model.meta.cal_step, s, "SKIPPED")


def mjd_to_date_time(mjd: float) -> tuple[str, str]:
    """MJD (UTC) -> (``YYYY-MM-DD``, ``hh:mm:ss.sss``)."""
    from astropy.time import Time

    iso = Time(mjd, format="mjd", scale="utc").isot  # 2024-01-01T12:00:00.000
    d, t = iso.split("T")
    return d, t


def s_region_polygon(ra: Sequence[float], dec: Sequence[float]) -> str:
    """``POLYGON ICRS  ra1 dec1 ra2 dec2 ...`` (what meta.wcsinfo.s_region holds)."""
    pts = " ".join(f"{float(a):.9f} {float(d):.9f}" for a, d in zip(ra, dec))
    return f"POLYGON ICRS  {pts}"


def fill_exposure_meta(
    model,
    exp: ExposureId,
    *,
    instrument: str,
    exp_type: str,
    target: TargetInfo,
    start_mjd: float,
    exposure_time: float,
    nints: int = 1,
    ngroups: int = 20,
    nframes: int = 1,
    group_time: float | None = None,
    frame_time: float = 10.737,
    readpatt: str = "NRSIRS2RAPID",
    template: str = "",
    visit_type: str = "PRIME_TARGETED_FIXED",
    total_exposures: int = 1,
    exposure_count: int | None = None,
    optical: Mapping[str, Any] | None = None,
    dither: Mapping[str, Any] | None = None,
    wcsinfo: Mapping[str, Any] | None = None,
    pointing: Mapping[str, Any] | None = None,
    subarray: Mapping[str, Any] | None = None,
    aperture_name: str | None = None,
    bkgdtarg: bool = False,
    is_imprt: bool = False,
    is_psf: bool = False,
    tsovisit: bool = False,
    program_title: str = "spec3flow synthetic program",
    pi_name: str = "Synthetic, Data",
    extra_pool_keywords: Mapping[str, Any] | None = None,
) -> None:
    """Fill the exposure-level metadata of ``model`` the way a real Stage 2 file has it.

    ``optical`` is set onto ``meta.instrument`` (e.g. ``{'detector': 'NRS1',
    'filter': 'F170LP', 'grating': 'G235M', 'fixed_slit': 'NONE',
    'msa_metadata_file': ..., 'msa_metadata_id': 1, 'lamp_mode': 'MSASPEC'}``);
    ``dither`` onto ``meta.dither`` (``primary_type``, ``position_number``,
    ``total_points``, ``nod_type``...), ``wcsinfo`` onto ``meta.wcsinfo``, ``pointing``
    onto ``meta.pointing`` (``ra_v1``, ``dec_v1``, ``pa_v3``), ``subarray`` onto
    ``meta.subarray``.  Times: EXPSTART/EXPMID/EXPEND in MJD from ``start_mjd`` and the
    elapsed time (``exposure_time`` * 1.02 for overheads).  Also stores the non-schema
    pool columns (TARGETID, PNTGTYPE, ...; see :func:`pool_keywords`) in
    ``model.extra_fits.PRIMARY.header``.
    """
    m = model.meta
    m.telescope = "JWST"
    m.origin = "STSCI"
    m.filename = exp.filename("cal")
    m.data_processing_software_version = "2024_3"
    m.calibration_software_version = "1.99.0"
    m.time_sys = "UTC"
    m.time_unit = "s"

    m.program.title = program_title
    m.program.pi_name = pi_name
    m.program.category = "GO"

    date, time = mjd_to_date_time(start_mjd)
    o = m.observation
    o.date = date
    o.time = time
    o.date_beg = f"{date}T{time}"
    o.obs_id = exp.obs_id
    o.visit_id = exp.visit_id
    o.program_number = exp.program
    o.observation_number = exp.observation
    o.visit_number = exp.visit
    o.visit_group = exp.visit_group
    o.sequence_id = exp.sequence
    o.activity_id = exp.activity
    o.exposure_number = exp.exposure
    o.bkgdtarg = bool(bkgdtarg)
    o.template = template
    o.observation_label = f"synthetic {exp_type} obs {exp.observation}"

    m.visit.type = visit_type
    m.visit.total_exposures = int(total_exposures)
    m.visit.tsovisit = bool(tsovisit)
    m.visit.internal_target = False
    m.visit.too_visit = False
    m.visit.engineering_quality = "OK"

    t = m.target
    t.proposer_name = target.proposer_name
    t.catalog_name = target.catalog_name
    t.type = target.type
    t.ra = float(target.ra)
    t.dec = float(target.dec)
    t.proposer_ra = float(target.ra)
    t.proposer_dec = float(target.dec)
    t.ra_uncertainty = 0.0
    t.dec_uncertainty = 0.0
    if target.source_type:
        t.source_type = target.source_type

    ins = m.instrument
    ins.name = instrument
    ins.detector = exp.detector
    for k, v in (optical or {}).items():
        setattr(ins, k, v)

    e = m.exposure
    e.type = exp_type
    e.count = int(exposure_count if exposure_count is not None else int(exp.exposure))
    e.prime_parallel = "PRIME"
    e.readpatt = readpatt
    e.nints = int(nints)
    e.ngroups = int(ngroups)
    e.nframes = int(nframes)
    e.groupgap = 0
    e.nsamples = 1
    e.frame_time = float(frame_time)
    e.group_time = float(group_time if group_time is not None else frame_time * nframes)
    e.integration_time = float(exposure_time) / max(int(nints), 1)
    e.exposure_time = float(exposure_time)
    e.effective_exposure_time = float(exposure_time)
    e.measurement_time = float(exposure_time)
    elapsed = float(exposure_time) * 1.02
    e.duration = elapsed
    e.elapsed_exposure_time = elapsed
    e.start_time = float(start_mjd)
    e.mid_time = float(start_mjd) + elapsed / 2 / 86400.0
    e.end_time = float(start_mjd) + elapsed / 86400.0
    e.start_time_mjd = e.start_time
    e.mid_time_mjd = e.mid_time
    e.end_time_mjd = e.end_time
    e.start_time_tdb = e.start_time + 0.0008
    e.mid_time_tdb = e.mid_time + 0.0008
    e.end_time_tdb = e.end_time + 0.0008
    e.imprint = bool(is_imprt)
    e.psf_reference = bool(is_psf)
    e.zero_frame = False
    e.data_problem = False
    o.date_end = mjd_to_date_time(e.end_time)[0] + "T" + mjd_to_date_time(e.end_time)[1]

    if aperture_name:
        m.aperture.name = aperture_name
        m.aperture.pps_name = aperture_name
    for k, v in (subarray or {}).items():
        setattr(m.subarray, k, v)
    for k, v in (dither or {}).items():
        setattr(m.dither, k, v)
    # MultiSlitModel has no top-level wcsinfo/pointing (they live on each slit):
    # those blocks are skipped silently here; use set_wcsinfo(slit, ...) per slit.
    set_wcsinfo(model, wcsinfo, pointing)

    cards = pool_keywords(target_id=target.target_id, **(extra_pool_keywords or {}))
    model.extra_fits = {"PRIMARY": {"header": cards}}


def set_wcsinfo(model, wcsinfo: Mapping[str, Any] | None = None,
                pointing: Mapping[str, Any] | None = None) -> bool:
    """Set ``meta.wcsinfo`` / ``meta.pointing`` items if the model's schema has them.

    Works for ImageModel-like models and for the slits of a MultiSlitModel
    (``set_wcsinfo(slit, {...})``).  Returns False (and sets nothing) when the schema
    lacks ``meta.wcsinfo`` (e.g. the top level of a MultiSlitModel).
    """
    m = model.meta
    try:
        wnode = m.wcsinfo
    except AttributeError:
        return False
    for k, v in (wcsinfo or {}).items():
        setattr(wnode, k, v)
    try:
        pnode = m.pointing
    except AttributeError:
        return True
    for k, v in (pointing or {}).items():
        setattr(pnode, k, v)
    return True


def pool_keywords(
    target_id: int = 1,
    pntgtype: str = "SCIENCE",
    targordn: int = 1,
    expspcin: int | str = 1,
    dithptin: int = 1,
    mostilno: int = 1,
    pntg_seq: int | None = None,
    **others: Any,
) -> list[list[Any]]:
    """Primary-header cards for DMS pool columns that are not datamodel keywords.

    Real DMS pools (e.g. ``jwst/associations/tests/data/pool_023_nirspec_msa_3nod.csv``)
    carry TARGETID, PNTGTYPE, PNTG_SEQ, TARGORDN, EXPSPCIN, DITHPTIN, MOSTILNO; the
    Level 3 rules constrain on ``targetid`` and ``pntgtype``.  We write them as extra
    primary-header cards so a pool builder can read everything from the cal headers.
    ``others`` adds more cards (upper-cased key -> value).
    """
    cards = [
        ["TARGETID", int(target_id), "DMS target id (pool column)"],
        ["PNTGTYPE", pntgtype, "pointing type (pool column)"],
        ["TARGORDN", int(targordn), "target order number (pool column)"],
        ["EXPSPCIN", str(expspcin), "exposure spec index (pool column)"],
        ["DITHPTIN", int(dithptin), "dither point index (pool column)"],
        ["MOSTILNO", int(mostilno), "mosaic tile number (pool column)"],
    ]
    if pntg_seq is not None:
        cards.append(["PNTG_SEQ", int(pntg_seq), "pointing sequence (pool column)"])
    for k, v in others.items():
        cards.append([k.upper()[:8], v, "pool column"])
    return cards


# --------------------------------------------------------------------------- noise


@dataclass
class NoiseArrays:
    """Noisy science array and its error/variance arrays (all float32)."""

    data: np.ndarray
    err: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    extras: dict = field(default_factory=dict)


def make_noise(
    truth: np.ndarray,
    rng: np.random.Generator,
    *,
    flux_per_electron: float,
    read_noise_electrons: float = 8.0,
    flat_error_fraction: float = 0.005,
) -> NoiseArrays:
    """Draw a noisy realisation of ``truth`` with self-consistent variance arrays.

    Units: ``truth`` in the calibrated unit (MJy, MJy/sr, ...); ``flux_per_electron``
    converts one detected electron to that unit.  Then
    ``VAR_POISSON = max(truth, 0) * flux_per_electron``,
    ``VAR_RNOISE = (read_noise_electrons * flux_per_electron)**2``,
    ``VAR_FLAT = (flat_error_fraction * truth)**2``,
    ``ERR = sqrt(sum)``, and ``data = truth + N(0, ERR)``.
    (Real pipelines estimate VAR_POISSON from the noisy slope; using the truth keeps the
    inverse-variance weights unbiased, which is what tests comparing to truth want.)
    """
    truth = np.asarray(truth, dtype=np.float64)
    fpe = float(flux_per_electron)
    var_p = np.clip(truth, 0, None) * fpe
    var_r = np.full(truth.shape, (read_noise_electrons * fpe) ** 2)
    var_f = (flat_error_fraction * truth) ** 2
    err = np.sqrt(var_p + var_r + var_f)
    data = truth + rng.standard_normal(truth.shape) * err
    f32 = np.float32
    return NoiseArrays(data.astype(f32), err.astype(f32), var_p.astype(f32),
                       var_r.astype(f32), var_f.astype(f32))


def inject_cosmic_rays(
    data: np.ndarray,
    err: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    snr_range: tuple[float, float] = (60.0, 300.0),
    rows: Sequence[int] | None = None,
    cols: Sequence[int] | None = None,
    exclude: set[tuple[int, int]] | None = None,
) -> list[tuple[int, int, float]]:
    """Add ``n`` single-pixel cosmic-ray hits to ``data`` in place; DQ is NOT touched.

    Each hit adds ``k * err[y, x]`` with ``k`` uniform in ``snr_range`` (so outlier
    detection's S/N thresholds flag it).  ``rows``/``cols`` restrict the candidate
    positions (e.g. the rows the source profile covers); ``exclude`` is a set of
    ``(y, x)`` to avoid.  Hits never repeat a pixel.  Returns ``[(y, x, added), ...]``.
    """
    ny, nx = data.shape
    rows = np.arange(ny) if rows is None else np.asarray(rows)
    cols = np.arange(nx) if cols is None else np.asarray(cols)
    used = set(exclude or ())
    hits: list[tuple[int, int, float]] = []
    tries = 0
    while len(hits) < n and tries < 100 * max(n, 1):
        tries += 1
        y = int(rng.choice(rows))
        x = int(rng.choice(cols))
        if (y, x) in used:
            continue
        used.add((y, x))
        k = rng.uniform(*snr_range)
        add = float(k * err[y, x])
        data[y, x] += np.float32(add)
        hits.append((y, x, add))
    return hits


# --------------------------------------------------------------------------- fast save


def save_model_fast(model, path: str | Path) -> None:
    """``model.save(path)`` with O(1) HDU look-ups.

    stdatamodels finds each HDU by scanning the HDUList (``hdulist[(name, ver)]``), which
    makes writing a MultiSlitModel quadratic in the number of slits (50 slits: ~4 s,
    1000 slits: many minutes).  During this call ``stdatamodels.fits_support.get_hdu``
    and ``_make_hdu`` are wrapped with a (name, ver) -> HDU index per HDUList that is
    rebuilt whenever the list length changes behind our back; the output file is
    identical to ``model.save``.
    """
    from stdatamodels import fits_support as fs

    orig_get, orig_make = fs.get_hdu, fs._make_hdu
    registry: dict[int, tuple[int, dict]] = {}

    def _key(hdu):
        return (hdu.name.upper(), int(hdu.header.get("EXTVER", 1)))

    def _index(hdulist):
        n, mp = registry.get(id(hdulist), (-1, None))
        if n != len(hdulist):
            mp = {}
            for h in hdulist:
                mp.setdefault(_key(h), h)
                mp.setdefault((h.name.upper(), None), h)
            registry[id(hdulist)] = (len(hdulist), mp)
        return mp

    def get_hdu(hdulist, hdu_name, index=None, _cache=None):
        if not isinstance(hdu_name, str):
            return orig_get(hdulist, hdu_name, index=index, _cache=_cache)
        mp = _index(hdulist)
        name = hdu_name.upper()
        hdu = mp.get((name, None) if index is None else (name, index + 1))
        if hdu is None:
            raise AttributeError(f"Property missing because FITS file has no {hdu_name!r} HDU")
        return hdu

    def make_hdu(hdulist, hdu_name, index=None, hdu_type=None, value=None):
        hdu = orig_make(hdulist, hdu_name, index=index, hdu_type=hdu_type, value=value)
        n, mp = registry.get(id(hdulist), (-1, None))
        if mp is not None and n == len(hdulist) - 1:  # index was current: extend it
            mp.setdefault(_key(hdu), hdu)
            mp.setdefault((hdu.name.upper(), None), hdu)
            registry[id(hdulist)] = (len(hdulist), mp)
        return hdu

    fs.get_hdu, fs._make_hdu = get_hdu, make_hdu
    try:
        model.save(str(path))
    finally:
        fs.get_hdu, fs._make_hdu = orig_get, orig_make


# --------------------------------------------------------------------------- IFU background


def ifu_background_x1d(cal_model, wavelength_map: np.ndarray, ra: float, dec: float):
    """Stage 2 ``*_x1d`` of a dedicated IFU background exposure, built from its cal data.

    calwebb_spec2 extracts a BKGDTARG IFU exposure as an EXTENDED source: the whole
    field of its cube, SURF_BRIGHT = mean over the field, BACKGROUND = the sigma-clipped
    mean (jwst.extract_1d.ifu).  master_background copies BACKGROUND to SURF_BRIGHT for
    MIR_MRS and extended NRS_IFU members, combines them (combine_1d, exposure-time
    weights; needs a spectral WCS and finite FLUX) and interpolates SURF_BRIGHT onto
    the science pixels' wavelengths.  For a uniform sky without outliers both means are
    the mean over the on-field detector pixels at each wavelength, computed here instead
    of building a cube (no CRDS needed).

    ``wavelength_map``: um per pixel of ``cal_model.data``, NaN off the field; pixels of
    one wavelength sample must carry the identical value.  ``(ra, dec)``: the field
    centre, stored in the spectral WCS like extract_1d does.  Returns a
    ``MultiSpecModel`` (NIRSpec) or ``MRSMultiSpecModel`` (MIRI) with one spectrum.
    """
    from jwst.extract_1d.spec_wcs import create_spectral_wcs
    from stdatamodels.jwst import datamodels

    miri = str(cal_model.meta.instrument.name).upper() == "MIRI"
    spec_class = datamodels.MRSSpecModel if miri else datamodels.SpecModel
    out = datamodels.MRSMultiSpecModel() if miri else datamodels.MultiSpecModel()
    out.update(cal_model, only="PRIMARY")

    good = np.isfinite(wavelength_map) & np.isfinite(cal_model.data)
    wave, sample = np.unique(wavelength_map[good], return_inverse=True)
    npix = np.bincount(sample).astype(float)

    def field_sum(array):
        return np.bincount(sample, weights=np.asarray(array, dtype=float)[good])

    surf_bright = field_sum(cal_model.data) / npix
    sb_var = {k: field_sum(getattr(cal_model, f"var_{k}")) / npix**2
              for k in ("poisson", "rnoise", "flat")}
    sb_error = np.sqrt(sum(sb_var.values()))
    to_jy = float(cal_model.meta.photometry.pixelarea_steradians) * 1.0e6 * npix

    table = np.zeros(len(wave), dtype=spec_class().get_dtype("spec_table"))
    columns = {
        "WAVELENGTH": wave, "FLUX": surf_bright * to_jy, "FLUX_ERROR": sb_error * to_jy,
        "SURF_BRIGHT": surf_bright, "SB_ERROR": sb_error,
        "BACKGROUND": surf_bright, "BKGD_ERROR": sb_error, "NPIXELS": npix,
    }
    for k, v in sb_var.items():
        up = k.upper()
        columns.update({f"FLUX_VAR_{up}": v * to_jy**2, f"SB_VAR_{up}": v,
                        f"BKGD_VAR_{up}": v})
    for name, values in columns.items():
        table[name] = values
    for name in ("RF_FLUX", "RF_SURF_BRIGHT", "RF_BACKGROUND"):
        if name in table.dtype.names:
            table[name] = np.nan  # extract_1d without ifu_rfcorr

    spec = spec_class(spec_table=table)
    units = {"wavelength": "um", "flux": "Jy", "flux_error": "Jy", "surf_bright": "MJy/sr",
             "sb_error": "MJy/sr", "background": "MJy/sr", "bkgd_error": "MJy/sr"}
    for name, unit in units.items():
        spec.spec_table.columns[name].unit = unit
    for k in ("poisson", "rnoise", "flat"):
        spec.spec_table.columns[f"flux_var_{k}"].unit = "Jy^2"
        for prefix in ("sb", "bkgd"):
            spec.spec_table.columns[f"{prefix}_var_{k}"].unit = "(MJy/sr)^2"
    spec.meta.wcs = create_spectral_wcs(float(ra), float(dec), wave)
    spec.name = cal_model.meta.exposure.type
    spec.detector = cal_model.meta.instrument.detector
    spec.source_type = "EXTENDED"
    spec.slit_ra, spec.slit_dec = float(ra), float(dec)
    out.spec.append(spec)
    out.meta.wcs = None
    out.meta.cal_step.extract_1d = "COMPLETE"
    out.meta.filename = str(cal_model.meta.filename).replace("_cal.fits", "_x1d.fits")
    return out


# --------------------------------------------------------------------------- truth tables


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]],
              fieldnames: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (list of dicts) to CSV; columns in ``fieldnames`` order or the
    first-seen key order.  Floats are written with ``repr`` precision.  Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fieldnames is None:
        fieldnames = []
        for r in rows:
            for k in r:
                if k not in fieldnames:
                    fieldnames.append(k)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fieldnames), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fieldnames})
    return path
