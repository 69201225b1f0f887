"""Build a real, self-contained local CRDS cache for offline runs of calwebb_spec3.

JWST steps look up reference files (and ``pars-*`` step parameters) through CRDS.
With no CRDS server reachable, CRDS can still compute best references locally
(``CRDS_MODE=local``) from a cache that holds a *context*: a ``.pmap`` naming one
``.imap`` per instrument, each naming one ``.rmap`` per reference type (or
``'N/A'``).  This module writes such a cache from code, with small synthetic
reference files, so tests, the demo and the Snakemake jobs need no
``override_<reftype>`` arguments and no network.

Public API
----------
- :func:`build_local_crds` -- build (idempotently) the cache, return the context name.
- :func:`crds_env` -- environment variables a subprocess needs to use the cache.
- :func:`apply_crds_env` -- a copy of an environment with every ``CRDS_*`` variable
  replaced by :func:`crds_env`'s.
- CLI: ``python -m spec3flow.crds_local --crds-path DIR [--instrument ...] [--print-env]``.

Cache layout (``CRDS_PATH`` = ``crds_path``)::

    config/jwst/server_config           Python-literal dict (what a server sync writes)
    config/jwst/ref_cache_subdir_mode   "instrument"
    config/jwst/bad_files.txt           empty (debug copy of bad_files_list)
    mappings/jwst/jwst_0001.pmap
    mappings/jwst/jwst_<instr>_0001.imap
    mappings/jwst/jwst_<instr>_<reftype>_0001.rmap   (only for types with files)
    references/jwst/<instr>/jwst_<instr>_<reftype>_<NNNN>.<ext>
    spec3flow_crds.json                 completion marker + fingerprint (written last)

Every reference type any spec3 step asks for, and every ``pars-<stepclass>`` type
stpipe may look up, is listed in every ``.imap``: as an ``.rmap`` when this module
provides at least one file for that instrument, else as ``'N/A'`` (CRDS answers
``NOT FOUND n/a``, which stpipe turns into ``'N/A'``).  An ``.rmap`` selects on
``META.EXPOSURE.TYPE`` then USEAFTER (``META.OBSERVATION.DATE``/``TIME``); it lists
every EXP_TYPE of its instrument explicitly (the files' EXP_TYPEs map to the file,
all others to ``'N/A'``) because mixing a ``'*'`` key with specific keys makes CRDS
raise on ambiguous matches.

Adding a reference file later (CUBEPAR, IFU EXTRACT1D, MRSPTCORR, PASTASOSS,
SPECPROFILE, SPECKERNEL, PHOTOM, ...) is one :class:`RefEntry` in
:data:`REFERENCE_TABLE` plus, if needed, a writer function.

The synthetic files provided now (slit milestone)
-------------------------------------------------

========  ==========  ==========================================  ====================
instr.    reftype     EXP_TYPE(s)                                 file
========  ==========  ==========================================  ====================
nirspec   extract1d   NRS_MSASPEC, NRS_FIXEDSLIT                  JSON, ``extract_width`` 5 px
nirspec   apcorr      NRS_MSASPEC                                 FITS, NrsMosApcorrModel
nirspec   apcorr      NRS_FIXEDSLIT                               FITS, NrsFsApcorrModel
miri      extract1d   MIR_LRS-FIXEDSLIT                           JSON, ``extract_width`` 9 px
miri      apcorr      MIR_LRS-FIXEDSLIT                           FITS, MirLrsApcorrModel
========  ==========  ==========================================  ====================

EXTRACT1D: one aperture ``id: "ANY"`` (matches every slit name), box extraction of
``extract_width`` pixels centred on the middle of the cross-dispersion axis; jwst
turns on ``use_source_posn`` for these EXP_TYPEs, so the box follows the source
position.  No background regions (``bkg_coeff`` absent: no background fit).
NIRSpec: 5 px = +-2.5 px, about +-3 sigma of the ~2 px FWHM trace, and short of the
negative nod traces one shutter (~5 px) away in a 3-shutter slitlet.  MIRI LRS:
9 px = +-4.5 px, about +-2.5 sigma of the PSF at 14 um (sigma ~1.8 px), inside the
~44 px long slit.  Point-source flux outside the box is *not* corrected (APCORR 1.0).

APCORR: every correction value is exactly :data:`APCORR_VALUE` (1.0), so applying it
leaves fluxes unchanged -- the file exists to exercise jwst's aperture-correction
code path (table-row matching, interpolation) offline, not to calibrate.  Sizes are
in pixels (``SIZEUNIT='pixels'``, so no WCS-based arcsec conversion), wavelengths
span 0.5-30 um (NIRSpec and MIRI), NIRSpec rows cover every filter x grating pair
(and, for FS, every fixed slit), MIRI LRS rows every MIRI subarray name, because
jwst raises ``ValueError: Could not resolve APCORR reference`` if no row matches.  Layouts
(numpy, per table row) are what ``jwst.extract_1d.apply_apcorr`` indexes:
NIRSpec ``size`` (nsize, nwave), ``apcorr`` (nsize, nwave, npixphase); MIRI LRS
``size`` (nsize,), ``apcorr`` (nwave, nsize).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import pprint
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "APCORR_VALUE",
    "CONTEXT_NAME",
    "DEFAULT_INSTRUMENTS",
    "MARKER_NAME",
    "PARS_REFTYPES",
    "REFERENCE_TABLE",
    "RefEntry",
    "SPEC3_REFTYPES",
    "SPEC3_STEP_CLASSES",
    "SERVERLESS_URL",
    "apply_crds_env",
    "build_local_crds",
    "crds_env",
    "exp_types_for",
    "is_complete",
    "main",
]

OBSERVATORY = "jwst"
CONTEXT_NAME = "jwst_0001.pmap"
MARKER_NAME = "spec3flow_crds.json"
DEFAULT_INSTRUMENTS = ("nirspec", "miri", "niriss", "nircam")
# Any URL containing "serverless" makes crds skip every JSON-RPC call at once
# (crds.client.proxy), so nothing is ever sent to the network; https:// avoids a warning.
SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"
USEAFTER = "1900-01-01 00:00:00"
# Bump to force a rebuild when the cache content changes in a way the fingerprint
# (which already hashes this file's source) would not see.
BUILDER_VERSION = 1

APCORR_VALUE = 1.0

# Reference types used by the steps of jwst 3.0.0 Spec3Pipeline (union of each step
# class's ``reference_file_types``), plus ``pastasoss`` looked up directly by
# ``jwst.extract_1d.soss_extract.pastasoss``.  tests/unit/test_crds_local.py checks
# this list against the installed jwst.
SPEC3_REFTYPES = (
    "apcorr",
    "area",
    "cubepar",
    "extract1d",
    "mrsptcorr",
    "pastasoss",
    "photom",
    "psf",
    "speckernel",
    "specprofile",
)

# Class names of Spec3Pipeline and its steps; stpipe looks up "pars-<classname.lower()>".
SPEC3_STEP_CLASSES = (
    "Spec3Pipeline",
    "AssignMTWcsStep",
    "MasterBackgroundStep",
    "OutlierDetectionStep",
    "AdaptiveTraceModelStep",
    "PixelReplaceStep",
    "ResampleSpecStep",
    "CubeBuildStep",
    "Extract1dStep",
    "PhotomStep",
    "Combine1dStep",
    "SpectralLeakStep",
)
PARS_REFTYPES = tuple(f"pars-{name.lower()}" for name in SPEC3_STEP_CLASSES)

# EXP_TYPE prefix of each instrument's exposure types.
_EXP_PREFIX = {"nirspec": "NRS_", "miri": "MIR_", "niriss": "NIS_", "nircam": "NRC_", "fgs": "FGS_"}

# crds.jwst.INSTRUMENTS minus "all".
_CRDS_INSTRUMENT_DIRS = ("fgs", "miri", "nircam", "niriss", "nirspec", "system")

_TEXT_DESCR = {
    "apcorr": "Aperture Correction",
    "area": "Pixel Area Map",
    "cubepar": "IFU Cube Parameters",
    "extract1d": "1-D Spectral Extraction",
    "mrsptcorr": "MIRI MRS Point Source Correction",
    "pastasoss": "NIRISS SOSS Trace Positions",
    "photom": "Photometric Calibration",
    "psf": "Point Spread Function",
    "speckernel": "NIRISS SOSS Spectral Kernel",
    "specprofile": "NIRISS SOSS Spectral Profile",
}

# --------------------------------------------------------------------------------------
# The table of provided reference files
# --------------------------------------------------------------------------------------

Writer = Callable[[Path, "RefEntry"], None]


@dataclass(frozen=True)
class RefEntry:
    """One synthetic reference file and the EXP_TYPEs that select it.

    ``writer(path, entry)`` must create the file at ``path``; ``params`` is free-form
    data for the writer (it also enters the cache fingerprint).
    """

    instrument: str  # lower case, e.g. "nirspec"
    reftype: str  # lower case CRDS filekind, e.g. "extract1d"
    exp_types: tuple[str, ...]
    ext: str  # ".json", ".fits", ".asdf"
    writer: Writer
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


def _json_dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _ref_meta(entry: RefEntry) -> dict[str, str]:
    return {
        "reftype": entry.reftype.upper(),
        "instrument": entry.instrument.upper(),
        "telescope": "JWST",
        "exp_type": "|".join(entry.exp_types) + "|",
        "pedigree": "DUMMY",
        "author": "spec3flow.crds_local",
        "useafter": "1900-01-01T00:00:00",
        "description": entry.description or f"spec3flow synthetic {entry.reftype}",
    }


def write_extract1d_json(path: Path, entry: RefEntry) -> None:
    """EXTRACT1D (slit modes) in the JSON layout ``jwst.extract_1d.extract`` reads."""
    aperture = {"id": "ANY", "region_type": "target", "bkg_order": 0}
    aperture.update(entry.params.get("aperture", {}))
    doc = _ref_meta(entry)
    doc["apertures"] = [aperture]
    _json_dump(path, doc)


# Axis values of the synthetic APCORR tables (kept distinct in length so a layout
# mistake would raise instead of passing silently).
_APC_WAVELENGTH = (0.5, 5.0, 30.0)  # micron, covers NIRSpec and MIRI
_APC_SIZE = (1.0, 60.0)  # pixels (SIZEUNIT='pixels')
_APC_PIXPHASE = (0.0, 0.25, 0.5, 1.0)

NRS_FILTERS = ("CLEAR", "F070LP", "F100LP", "F170LP", "F290LP", "F110W", "F140X")
NRS_GRATINGS = ("PRISM", "G140M", "G235M", "G395M", "G140H", "G235H", "G395H", "MIRROR")
NRS_FIXED_SLITS = ("S200A1", "S200A2", "S400A1", "S1600A1", "S200B1")
# Every MIRI subarray name of stdatamodels' core schema: LRS rows match on subarray.
MIRI_LRS_SUBARRAYS = (
    "FULL", "BRIGHTSKY", "MASK1065", "MASK1140", "MASK1550", "MASKLYOT",
    "SLITLESSPRISM", "SUB128", "SUB256", "SUB64", "SUBPRISM", "SUB128_IP", "SUB64_IP",
    "SLITLESSPRISM_IP", "SLITLESSPRISM_IPS", "SUBSLIT", "SUBPRISM_IP", "SUBPRISM_IPS",
)


def _nrs_apcorr_table(with_slit: bool):
    import numpy as np

    nwl, nsize, nphase = len(_APC_WAVELENGTH), len(_APC_SIZE), len(_APC_PIXPHASE)
    fields = [("filter", "S12"), ("grating", "S15")]
    if with_slit:
        fields.append(("slit", "S15"))
    fields += [
        ("wavelength", "f4", (nwl,)),
        ("nelem_wl", "i2"),
        ("size", "f4", (nsize, nwl)),
        ("nelem_size", "i2"),
        ("pixphase", "f4", (nphase,)),
        ("apcorr", "f4", (nsize, nwl, nphase)),
        ("apcorr_err", "f4", (nsize, nwl, nphase)),
    ]
    slits = NRS_FIXED_SLITS if with_slit else (None,)
    keys = [(f, g, s) for f in NRS_FILTERS for g in NRS_GRATINGS for s in slits]
    table = np.zeros(len(keys), dtype=fields)
    for i, (f, g, s) in enumerate(keys):
        table["filter"][i] = f
        table["grating"][i] = g
        if with_slit:
            table["slit"][i] = s
    table["wavelength"][:] = _APC_WAVELENGTH
    table["nelem_wl"][:] = nwl
    table["size"][:] = np.repeat(np.array(_APC_SIZE, "f4")[:, None], nwl, axis=1)
    table["nelem_size"][:] = nsize
    table["pixphase"][:] = _APC_PIXPHASE
    table["apcorr"][:] = APCORR_VALUE
    table["apcorr_err"][:] = 0.0
    return table


def _mirlrs_apcorr_table():
    import numpy as np

    nwl, nsize = len(_APC_WAVELENGTH), len(_APC_SIZE)
    fields = [
        ("subarray", "S17"),
        ("wavelength", "f4", (nwl,)),
        ("nelem_wl", "i2"),
        ("size", "u1", (nsize,)),
        ("nelem_size", "i2"),
        ("apcorr", "f4", (nwl, nsize)),
        ("apcorr_err", "f4", (nwl, nsize)),
    ]
    table = np.zeros(len(MIRI_LRS_SUBARRAYS), dtype=fields)
    table["subarray"][:] = MIRI_LRS_SUBARRAYS
    table["wavelength"][:] = _APC_WAVELENGTH
    table["nelem_wl"][:] = nwl
    table["size"][:] = [int(s) for s in _APC_SIZE]
    table["nelem_size"][:] = nsize
    table["apcorr"][:] = APCORR_VALUE
    table["apcorr_err"][:] = 0.0
    return table


def write_apcorr_fits(path: Path, entry: RefEntry) -> None:
    """APCORR for NIRSpec MOS/FS or MIRI LRS, written through the stdatamodels model."""
    from stdatamodels.jwst import datamodels as dm

    kind = entry.params["model"]
    if kind == "NrsMosApcorrModel":
        model = dm.NrsMosApcorrModel()
        model.apcorr_table = _nrs_apcorr_table(with_slit=False)
    elif kind == "NrsFsApcorrModel":
        model = dm.NrsFsApcorrModel()
        model.apcorr_table = _nrs_apcorr_table(with_slit=True)
    elif kind == "MirLrsApcorrModel":
        model = dm.MirLrsApcorrModel()
        model.apcorr_table = _mirlrs_apcorr_table()
    else:  # pragma: no cover - table misconfiguration
        raise ValueError(f"unknown APCORR model {kind!r}")
    model.sizeunit = "pixels"
    _ref_model_meta(model, entry, _ref_meta(entry))
    if entry.instrument == "miri":
        model.meta.instrument.detector = "MIRIMAGE"
    model.save(str(path))
    model.close()


# ----------------------------------------------------------------------------- IFU
# CUBEPAR rows (values close to the real CRDS files; cube_build reads the row of each
# band/grating in the data): MIRI (channel, band, spaxel ", step um, wavemin, wavemax).
# The wavelength ranges of MRS 1B/2B/3A/4A and NIRSpec G235M/F170LP are reduced to the
# synthetic detectors' ranges (spec3flow.synth.miri_mrs / nirspec_ifu): cube_build
# takes a cube's wavelength range from CUBEPAR, not from the data.
_MIRI_CUBEPAR = (
    ("1", "SHORT", 0.13, 0.0008, 4.90, 5.74), ("1", "MEDIUM", 0.13, 0.0008, 6.000, 6.080),
    ("1", "LONG", 0.13, 0.0008, 6.53, 7.65), ("2", "SHORT", 0.17, 0.0013, 7.51, 8.77),
    ("2", "MEDIUM", 0.17, 0.0013, 9.000, 9.112), ("2", "LONG", 0.17, 0.0013, 10.02, 11.70),
    ("3", "SHORT", 0.20, 0.0025, 12.000, 12.160), ("3", "MEDIUM", 0.20, 0.0025, 13.34, 15.57),
    ("3", "LONG", 0.20, 0.0025, 15.41, 17.98), ("4", "SHORT", 0.35, 0.006, 19.000, 19.240),
    ("4", "MEDIUM", 0.35, 0.006, 20.69, 24.48), ("4", "LONG", 0.35, 0.006, 24.19, 27.90),
)
# NIRSpec (grating, filter, spaxel ", step um, wavemin, wavemax)
_NRS_CUBEPAR = (
    ("PRISM", "CLEAR", 0.10, 0.005, 0.60, 5.30), ("G140M", "F070LP", 0.10, 0.000636, 0.70, 1.27),
    ("G140M", "F100LP", 0.10, 0.000636, 0.97, 1.89),
    # reduced to the synthetic NRS_IFU detector range (spec3flow.synth.nirspec_ifu):
    # cube_build takes the cube's wavelength range from CUBEPAR, not from the data
    # (the real 1.66-3.17 um gives a 1425-plane, 69 MB s3d for 4 small dithers)
    ("G235M", "F170LP", 0.10, 0.00106, 2.000, 2.105),
    ("G395M", "F290LP", 0.10, 0.00179, 2.87, 5.27),
    ("G140H", "F070LP", 0.10, 0.000235, 0.70, 1.27),
    ("G140H", "F100LP", 0.10, 0.000235, 0.97, 1.89),
    ("G235H", "F170LP", 0.10, 0.000396, 1.66, 3.17),
    ("G395H", "F290LP", 0.10, 0.000665, 2.87, 5.27),
)


def _wavetable(model, attr: str, waves, sroi, wroi, *extra) -> None:
    """Fill a (wavelength, roispatial, roispectral[, power, softrad | scalerad]) table."""
    import numpy as np

    dtype = [(n, "f4") for n in ("wavelength", "roispatial", "roispectral")]
    dtype += [(n, "f4") for n in extra]
    t = np.zeros(len(waves), dtype=dtype)
    t["wavelength"] = waves
    t["roispatial"] = sroi
    t["roispectral"] = wroi
    for n in extra:
        t[n] = {"power": 2.0, "softrad": 0.01, "scalerad": 0.1}[n]
    setattr(model, attr, t)


def write_cubepar_fits(path: Path, entry: RefEntry) -> None:
    """CUBEPAR (MIRI or NIRSpec) through MiriIFUCubeParsModel / NirspecIFUCubeParsModel.

    Every table of the schema is filled (drizzle, the spec3 default, reads only the
    per-band CUBEPAR table; msm/emsm read the others).  ROI sizes: spatial = spaxel,
    spectral = 2 spectral steps.
    """
    import numpy as np
    from stdatamodels.jwst import datamodels as dm

    meta = _ref_meta(entry)
    if entry.instrument == "miri":
        model = dm.MiriIFUCubeParsModel()
        rows = _MIRI_CUBEPAR
        key = [("channel", "S3"), ("band", "S12")]
        wave = np.linspace(4.9, 27.9, 24)
        model.ifucubepars_multichannel_driz_wavetable = np.array(
            [(w,) for w in wave], dtype=[("wavelength", "f4")])
        _wavetable(model, "ifucubepars_multichannel_msm_wavetable", wave, 0.1 + 0.01 * wave,
                   0.0004 * wave, "power", "softrad")
        _wavetable(model, "ifucubepars_multichannel_emsm_wavetable", wave, 0.1 + 0.01 * wave,
                   0.0004 * wave, "scalerad")
    else:
        model = dm.NirspecIFUCubeParsModel()
        rows = _NRS_CUBEPAR
        key = [("disperser", "S15"), ("filter", "S15")]
        for res, lo, hi, r in (("prism", 0.6, 5.3, 100.0), ("med", 0.7, 5.3, 1000.0),
                               ("high", 0.7, 5.3, 2700.0)):
            wave = np.linspace(lo, hi, 12)
            setattr(model, f"ifucubepars_{res}_driz_wavetable", np.array(
                [(w,) for w in wave], dtype=[("wavelength", "f4")]))
            _wavetable(model, f"ifucubepars_{res}_msm_wavetable", wave, 0.1, wave / r,
                       "power", "softrad")
            _wavetable(model, f"ifucubepars_{res}_emsm_wavetable", wave, 0.1, wave / r,
                       "scalerad")
    main = np.zeros(len(rows), dtype=key + [(n, "f4") for n in (
        "wavemin", "wavemax", "spaxelsize", "spectralstep")])
    msm = np.zeros(len(rows), dtype=key + [(n, "f4") for n in (
        "roispatial", "roispectral", "power", "softrad")])
    emsm = np.zeros(len(rows), dtype=key + [(n, "f4") for n in (
        "roispatial", "roispectral", "scalerad")])
    for i, (a, b, spax, step, wmin, wmax) in enumerate(rows):
        for t in (main, msm, emsm):
            t[key[0][0]][i] = a
            t[key[1][0]][i] = b
        main["spaxelsize"][i], main["spectralstep"][i] = spax, step
        main["wavemin"][i], main["wavemax"][i] = wmin, wmax
        msm["roispatial"][i], msm["roispectral"][i] = spax, 2 * step
        msm["power"][i], msm["softrad"][i] = 2.0, 0.01
        emsm["roispatial"][i], emsm["roispectral"][i] = spax, 2 * step
        emsm["scalerad"][i] = spax
    model.ifucubepars_table = main
    model.ifucubepars_msm_table = msm
    model.ifucubepars_emsm_table = emsm
    _ref_model_meta(model, entry, meta)
    model.save(str(path))
    model.close()


def _ref_model_meta(model, entry: RefEntry, meta: Mapping[str, str]) -> None:
    model.meta.reftype = meta["reftype"]
    model.meta.instrument.name = meta["instrument"]
    model.meta.telescope = "JWST"
    model.meta.exposure.type = entry.exp_types[0]
    model.meta.exposure.p_exptype = meta["exp_type"]
    model.meta.pedigree = meta["pedigree"]
    model.meta.author = meta["author"]
    model.meta.useafter = meta["useafter"]
    model.meta.description = meta["description"]
    if entry.instrument == "miri" and entry.exp_types[0] == "MIR_MRS":
        model.meta.instrument.detector = "N/A"


def write_extract1d_ifu_asdf(path: Path, entry: RefEntry) -> None:
    """IFU EXTRACT1D (``Extract1dIFUModel``, ASDF, arrays stored inline).

    Circular aperture of radius ``params['radius']`` = (r0 arcsec, slope arcsec/um)
    -> ``r0 + slope * lambda``; background annulus 1.5-2.5 x radius; no background
    subtraction; ``method='exact'``.
    """
    import numpy as np
    from stdatamodels.jwst import datamodels as dm

    lo, hi = entry.params["wave_range"]
    r0, slope = entry.params["radius"]
    wave = np.linspace(lo, hi, 32).astype("f4")
    radius = (r0 + slope * wave).astype("f4")
    model = dm.Extract1dIFUModel()
    model.meta.region_type = "target"
    model.meta.subtract_background = False
    model.meta.method = "exact"
    model.meta.subpixels = 10
    model.data = {
        "wavelength": wave, "wavelength_units": "micron",
        "radius": radius, "radius_units": "arcsec",
        "inner_bkg": (1.5 * radius).astype("f4"), "inner_bkg_units": "arcsec",
        "outer_bkg": (2.5 * radius).astype("f4"), "outer_bkg_units": "arcsec",
        "axis_ratio": np.ones_like(wave), "axis_pa": np.zeros_like(wave),
        "axis_pa_units": "deg",
    }
    _ref_model_meta(model, entry, _ref_meta(entry))
    model.save(str(path), all_array_storage="inline")
    model.close()


def mrs_leak_fraction(wavelength_um):
    """Synthetic MRSPTCORR ``frac_leak``: 3% peak at 12.2 um, sigma 0.25 um."""
    import numpy as np

    w = np.asarray(wavelength_um, dtype=float)
    return 0.03 * np.exp(-0.5 * ((w - 12.2) / 0.25) ** 2)


def write_mrsptcorr_fits(path: Path, entry: RefEntry) -> None:
    """MRSPTCORR (``MirMrsPtCorrModel``): the LEAKCOR table spectral_leak uses
    (:func:`mrs_leak_fraction` on 11.5-13.5 um), plus small plausible TRACOR and
    WAVCORR tables (used by Stage 2 steps only)."""
    import numpy as np
    from stdatamodels.jwst import datamodels as dm

    model = dm.MirMrsPtCorrModel()
    w = np.linspace(11.5, 13.5, 201)
    leak = np.zeros(w.size, dtype=[("wavelength", "f4"), ("frac_leak", "f4"),
                                   ("err_leak", "f4")])
    leak["wavelength"] = w
    leak["frac_leak"] = mrs_leak_fraction(w)
    leak["err_leak"] = 0.001
    model.leakcor_table = leak
    tra = np.zeros(4, dtype=[("channel", "i4")] + [(n, "f4") for n in (
        "wave_min", "wave_max", "t_wmin_centre", "t_wmin_edge", "t_wmax_centre",
        "t_wmax_edge")])
    tra["channel"] = [1, 2, 3, 4]
    tra["wave_min"] = [4.9, 7.5, 11.5, 17.7]
    tra["wave_max"] = [7.65, 11.7, 17.98, 27.9]
    for n in ("t_wmin_centre", "t_wmax_centre"):
        tra[n] = 1.0
    for n in ("t_wmin_edge", "t_wmax_edge"):
        tra[n] = 0.9
    model.tracor_table = tra
    opt = np.zeros(12, dtype=[("sub_band", "S16")] + [(n, "f4") for n in (
        "beta_slice", "wave_min", "wave_max", "srp_min", "srp_max")])
    for i, (ch, band, spax, _step, wmin, wmax) in enumerate(_MIRI_CUBEPAR):
        opt[i] = (f"{ch}{'ABC'[('SHORT', 'MEDIUM', 'LONG').index(band)]}",
                  {"1": 0.177, "2": 0.28, "3": 0.39, "4": 0.64}[ch], wmin, wmax, 3000.0, 3500.0)
    model.wavcorr_optical_table = opt
    model.wavcorr_xslice_table = np.array([(0.0, 1.0)], dtype=[("xslice_min", "f4"),
                                                               ("xslice_max", "f4")])
    model.wavcorr_shift_table = np.array([(0.0, 0.0, 0.0)], dtype=[
        ("beta_off", "f4"), ("ds_min", "f4"), ("ds_max", "f4")])
    _ref_model_meta(model, entry, _ref_meta(entry))
    model.save(str(path))
    model.close()


# slitless (SOSS): the files are built by spec3flow.synth.soss from the same geometry as
# its synthetic NIS_SOSS data; its source hash enters the fingerprint via the params.
def write_soss_reference(path: Path, entry: RefEntry) -> None:
    """NIRISS SOSS PASTASOSS (asdf) / SPECPROFILE / SPECKERNEL / PHOTOM (fits)."""
    from spec3flow.synth import soss

    soss.write_reference_file(entry.reftype, path, _ref_meta(entry))


_SOSS_SRC_SHA1 = hashlib.sha1(
    (Path(__file__).parent / "synth" / "soss.py").read_bytes()).hexdigest()
_SOSS = ("NIS_SOSS",)
# end slitless (SOSS)


_LRS = ("MIR_LRS-FIXEDSLIT",)
_APC_DESCR = f"spec3flow synthetic APCORR: every value {APCORR_VALUE} (no-op correction)"

#: Every synthetic reference file of the cache.  Add a row to provide a new type.
REFERENCE_TABLE: tuple[RefEntry, ...] = (
    RefEntry(
        "nirspec", "extract1d", ("NRS_MSASPEC", "NRS_FIXEDSLIT"), ".json",
        write_extract1d_json, {"aperture": {"extract_width": 5}},
        "spec3flow synthetic EXTRACT1D: 5-pixel box on the source, no background",
    ),
    RefEntry(
        "nirspec", "apcorr", ("NRS_MSASPEC",), ".fits", write_apcorr_fits,
        {"model": "NrsMosApcorrModel"}, _APC_DESCR,
    ),
    RefEntry(
        "nirspec", "apcorr", ("NRS_FIXEDSLIT",), ".fits", write_apcorr_fits,
        {"model": "NrsFsApcorrModel"}, _APC_DESCR,
    ),
    RefEntry(
        "miri", "extract1d", _LRS, ".json", write_extract1d_json,
        {"aperture": {"extract_width": 9}},
        "spec3flow synthetic EXTRACT1D: 9-pixel box on the source, no background",
    ),
    RefEntry(
        "miri", "apcorr", _LRS, ".fits", write_apcorr_fits,
        {"model": "MirLrsApcorrModel"}, _APC_DESCR,
    ),
    # IFU
    RefEntry(
        "nirspec", "cubepar", ("NRS_IFU",), ".fits", write_cubepar_fits, {},
        "spec3flow synthetic CUBEPAR: NIRSpec IFU cube parameters (real-like values)",
    ),
    RefEntry(
        "miri", "cubepar", ("MIR_MRS",), ".fits", write_cubepar_fits, {},
        "spec3flow synthetic CUBEPAR: MIRI MRS cube parameters (real-like values)",
    ),
    RefEntry(
        "nirspec", "extract1d", ("NRS_IFU",), ".asdf", write_extract1d_ifu_asdf,
        {"wave_range": (0.6, 5.3), "radius": (0.6, 0.0)},
        "spec3flow synthetic IFU EXTRACT1D: 0.6 arcsec radius, no background",
    ),
    RefEntry(
        "miri", "extract1d", ("MIR_MRS",), ".asdf", write_extract1d_ifu_asdf,
        {"wave_range": (4.9, 27.9), "radius": (0.0, 0.1)},
        "spec3flow synthetic IFU EXTRACT1D: radius 0.1*lambda arcsec, no background",
    ),
    RefEntry(
        "miri", "mrsptcorr", ("MIR_MRS",), ".fits", write_mrsptcorr_fits, {},
        "spec3flow synthetic MRSPTCORR: 3% leak peaking at 12.2 um",
    ),
    # slitless (SOSS): spec3flow.synth.soss geometry (SUBSTRIP96, orders 1-2)
    RefEntry(
        "niriss", "pastasoss", _SOSS, ".asdf", write_soss_reference, {"src": _SOSS_SRC_SHA1},
        "spec3flow synthetic PASTASOSS: traces/wavecal/throughput of spec3flow.synth.soss",
    ),
    RefEntry(
        "niriss", "specprofile", _SOSS, ".fits", write_soss_reference,
        {"src": _SOSS_SRC_SHA1},
        "spec3flow synthetic SPECPROFILE: SUBSTRIP96 Gaussian profiles, orders 1-2",
    ),
    RefEntry(
        "niriss", "speckernel", _SOSS, ".fits", write_soss_reference, {"src": _SOSS_SRC_SHA1},
        "spec3flow synthetic SPECKERNEL: Gaussian kernels, sigma 0.7 px",
    ),
    RefEntry(
        "niriss", "photom", _SOSS, ".fits", write_soss_reference, {"src": _SOSS_SRC_SHA1},
        "spec3flow synthetic PHOTOM: CLEAR/GR700XD orders 1-3, DN/s -> MJy",
    ),
    # end slitless (SOSS)
)

# --------------------------------------------------------------------------------------
# EXP_TYPE enumeration
# --------------------------------------------------------------------------------------


@functools.cache
def _all_exp_types() -> tuple[str, ...]:
    """EXP_TYPE enum of stdatamodels' keyword_exptype schema, minus N/A and ANY."""
    from importlib import resources

    import yaml

    text = (
        resources.files("stdatamodels")
        .joinpath("jwst/datamodels/schemas/keyword_exptype.schema.yaml")
        .read_text()
    )
    schema = yaml.safe_load(text)
    enum = schema["properties"]["meta"]["properties"]["exposure"]["properties"]["type"]["enum"]
    return tuple(e for e in enum if e not in ("N/A", "ANY"))


def exp_types_for(instrument: str) -> tuple[str, ...]:
    """All EXP_TYPE values of ``instrument`` (by prefix), sorted."""
    prefix = _EXP_PREFIX[instrument.lower()]
    return tuple(sorted(e for e in _all_exp_types() if e.startswith(prefix)))


# --------------------------------------------------------------------------------------
# Mapping text
# --------------------------------------------------------------------------------------


def _fmt_header(header: Mapping[str, Any]) -> str:
    lines = ["header = {"]
    for key in sorted(header):
        lines.append(f"    {key!r} : {header[key]!r},")
    lines.append("}")
    return "\n".join(lines)


def _pmap_text(instruments: Iterable[str]) -> str:
    header = {
        "derived_from": "generated by spec3flow.crds_local",
        "mapping": "PIPELINE",
        "name": CONTEXT_NAME,
        "observatory": "JWST",
        "parkey": ("META.INSTRUMENT.NAME",),
        "sha1sum": "0",
    }
    sel = "\n".join(f"    {i.upper()!r} : {_imap_name(i)!r}," for i in sorted(instruments))
    return f"{_fmt_header(header)}\n\nselector = {{\n{sel}\n}}\n"


def _imap_name(instrument: str) -> str:
    return f"jwst_{instrument}_0001.imap"


def _rmap_name(instrument: str, reftype: str) -> str:
    return f"jwst_{instrument}_{reftype}_0001.rmap"


def _imap_text(instrument: str, selections: Mapping[str, str]) -> str:
    header = {
        "derived_from": "generated by spec3flow.crds_local",
        "instrument": instrument.upper(),
        "mapping": "INSTRUMENT",
        "name": _imap_name(instrument),
        "observatory": "JWST",
        "parkey": ("REFTYPE",),
        "sha1sum": "0",
    }
    sel = "\n".join(f"    {k.upper()!r} : {v!r}," for k, v in sorted(selections.items()))
    return f"{_fmt_header(header)}\n\nselector = {{\n{sel}\n}}\n"


def _rmap_text(instrument: str, reftype: str, ext: str, choices: Mapping[str, str]) -> str:
    header = {
        "classes": ("Match", "UseAfter"),
        "derived_from": "generated by spec3flow.crds_local",
        "file_ext": ext,
        "filekind": reftype.upper(),
        "filetype": reftype.upper(),
        "instrument": instrument.upper(),
        "mapping": "REFERENCE",
        "name": _rmap_name(instrument, reftype),
        "observatory": "JWST",
        "parkey": (("META.EXPOSURE.TYPE",), ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME")),
        "sha1sum": "0",
        "suffix": reftype,
        "text_descr": _TEXT_DESCR.get(reftype, reftype),
    }
    body = []
    for exp_type in sorted(choices):
        body.append(f"    {exp_type!r} : UseAfter({{")
        body.append(f"        {USEAFTER!r} : {choices[exp_type]!r},")
        body.append("    }),")
    return f"{_fmt_header(header)}\n\nselector = Match({{\n" + "\n".join(body) + "\n})\n"


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


def _entries_for(instruments: Iterable[str]) -> list[RefEntry]:
    wanted = {i.lower() for i in instruments}
    return [e for e in REFERENCE_TABLE if e.instrument in wanted]


def _fingerprint(instruments: tuple[str, ...]) -> str:
    """Hash of everything that determines the cache content."""
    from importlib.metadata import version

    h = hashlib.sha1()
    h.update(f"builder={BUILDER_VERSION};stdatamodels={version('stdatamodels')};".encode())
    h.update(Path(__file__).read_bytes())
    h.update(repr(instruments).encode())
    for e in _entries_for(instruments):
        h.update(
            repr(
                (e.instrument, e.reftype, e.exp_types, e.ext, e.writer.__qualname__,
                 json.dumps(e.params, sort_keys=True, default=str), e.description)
            ).encode()
        )
    h.update(repr(_all_exp_types()).encode())
    return h.hexdigest()


def _read_marker(crds_path: Path) -> dict | None:
    try:
        return json.loads((crds_path / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def _normalize_instruments(instruments: Iterable[str]) -> tuple[str, ...]:
    out = tuple(sorted({i.lower() for i in instruments}))
    unknown = [i for i in out if i not in _EXP_PREFIX]
    if not out or unknown:
        raise ValueError(f"instruments must be among {sorted(_EXP_PREFIX)}, got {instruments!r}")
    return out


def is_complete(crds_path: Path | str, instruments: Iterable[str] = DEFAULT_INSTRUMENTS) -> bool:
    """True if ``crds_path`` holds a finished cache built for exactly this content."""
    marker = _read_marker(Path(crds_path))
    if not marker:
        return False
    return marker.get("fingerprint") == _fingerprint(_normalize_instruments(instruments))


def _update_checksum(path: Path, check_duplicates: bool = False) -> None:
    """Write the mapping's sha1sum with CRDS's own code.

    This is what ``crds.refactoring.checksum.update_checksum`` (``python -m
    crds.refactoring.checksum``) does -- load the mapping ignoring its checksum and
    ``Mapping.write()`` it back, which reformats it and sets ``sha1sum`` -- minus the
    certify duplicate-key scan, which costs ~0.4 s per mapping (parsley grammar) and
    cannot fire on the dicts generated here; ``check_duplicates=True`` runs it.
    """
    from crds.core import log, rmap

    if check_duplicates:
        from crds.refactoring import checksum

        errors_before = log.errors()
        checksum.update_checksum(str(path))
        if log.errors() > errors_before:
            raise RuntimeError(f"crds checksum reported errors for {path}")
        return
    rmap.Mapping.from_file(str(path), ignore_checksum=True).write()


def _write_cache(root: Path, instruments: tuple[str, ...], fingerprint: str) -> dict:
    """Write a complete cache under ``root`` (which must be empty). Returns the marker."""
    cfg = root / "config" / OBSERVATORY
    maps = root / "mappings" / OBSERVATORY
    refs = root / "references" / OBSERVATORY
    for d in (cfg, maps, refs):
        d.mkdir(parents=True, exist_ok=True)
    # crds creates references/jwst/<instr> for every instrument it knows when it
    # locates a file (unless CRDS_READONLY_CACHE): pre-create them so that a run
    # never writes into the cache.
    for instr in _CRDS_INSTRUMENT_DIRS:
        (refs / instr).mkdir(exist_ok=True)

    all_types = sorted(SPEC3_REFTYPES) + sorted(PARS_REFTYPES)
    provided: dict[str, dict[str, dict[str, str]]] = {}  # instr -> reftype -> exp_type -> file
    entries = _entries_for(instruments)
    serial: dict[tuple[str, str], int] = {}
    mapping_names = [CONTEXT_NAME]

    for entry in entries:
        if entry.reftype not in all_types:
            raise ValueError(f"{entry.reftype!r} is not a spec3 reference type")
        valid = set(exp_types_for(entry.instrument))
        bad = [e for e in entry.exp_types if e not in valid]
        if bad:
            raise ValueError(f"{bad} are not {entry.instrument} EXP_TYPEs")
        key = (entry.instrument, entry.reftype)
        n = serial[key] = serial.get(key, 0) + 1
        name = f"jwst_{entry.instrument}_{entry.reftype}_{n:04d}{entry.ext}"
        (refs / entry.instrument).mkdir(exist_ok=True)
        entry.writer(refs / entry.instrument / name, entry)
        choices = provided.setdefault(entry.instrument, {}).setdefault(entry.reftype, {})
        for exp_type in entry.exp_types:
            if exp_type in choices:
                raise ValueError(f"two {entry.instrument} {entry.reftype} files for {exp_type}")
            choices[exp_type] = name

    for instrument in instruments:
        (refs / instrument).mkdir(exist_ok=True)
        selections: dict[str, str] = {}
        # 'file_ext' in an rmap header is informational (crds certify); one rmap may
        # select files of several formats (e.g. slit .json and IFU .asdf EXTRACT1D).
        exts: dict[tuple[str, str], str] = {}
        for e in entries:
            exts.setdefault((e.instrument, e.reftype), e.ext)
        for reftype in all_types:
            files = provided.get(instrument, {}).get(reftype)
            if not files:
                selections[reftype] = "N/A"
                continue
            choices = {e: files.get(e, "N/A") for e in exp_types_for(instrument)}
            rname = _rmap_name(instrument, reftype)
            rpath = maps / rname
            rpath.write_text(_rmap_text(instrument, reftype, exts[(instrument, reftype)], choices))
            _update_checksum(rpath)
            selections[reftype] = rname
            mapping_names.append(rname)
        ipath = maps / _imap_name(instrument)
        ipath.write_text(_imap_text(instrument, selections))
        _update_checksum(ipath)
        mapping_names.append(ipath.name)

    ppath = maps / CONTEXT_NAME
    ppath.write_text(_pmap_text(instruments))
    _update_checksum(ppath)

    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    server_config = {
        "observatory": OBSERVATORY,
        "latest_context": CONTEXT_NAME,
        "operational_context": CONTEXT_NAME,
        "edit_context": CONTEXT_NAME,
        "versions_context": CONTEXT_NAME,
        "last_synced": now,
        "force_remote_mode": False,
        "bad_files_list": [],
        "bad_files": "",
        "mappings": sorted(mapping_names),
        "server": SERVERLESS_URL,
        "connected": False,
        "status": "cache",
    }
    (cfg / "server_config").write_text(pprint.pformat(server_config) + "\n")
    (cfg / "bad_files.txt").write_text("")
    (cfg / "ref_cache_subdir_mode").write_text("instrument")

    marker = {
        "context": CONTEXT_NAME,
        "fingerprint": fingerprint,
        "instruments": list(instruments),
        "built": now,
        "references": {
            i: {rt: dict(sorted(f.items())) for rt, f in sorted(provided.get(i, {}).items())}
            for i in instruments
        },
    }
    # Written last: its presence (after the directory rename) means "complete".
    _json_dump(root / MARKER_NAME, marker)
    return marker


def _owned_or_empty(path: Path) -> bool:
    """May ``path`` be replaced? Only if it is empty or a cache this module built."""
    if not path.exists():
        return True
    if not path.is_dir():
        return False
    return (path / MARKER_NAME).exists() or not any(path.iterdir())


def build_local_crds(
    crds_path: Path | str, instruments: Iterable[str] = DEFAULT_INSTRUMENTS
) -> str:
    """Build a complete local CRDS cache at ``crds_path``; return the context name.

    Idempotent: when ``crds_path`` already holds a complete cache of the same content
    (same fingerprint) nothing is written.  Otherwise the cache is built in a sibling
    temporary directory and renamed into place, so ``crds_path`` is either absent,
    an older complete cache, or the new complete cache -- never half written.
    Concurrent builders are safe: the first rename wins, the others discard their
    copy.  A non-empty ``crds_path`` without this module's marker file is never
    touched (ValueError).
    """
    crds_path = Path(crds_path).absolute()
    instrs = _normalize_instruments(instruments)
    fingerprint = _fingerprint(instrs)
    marker = _read_marker(crds_path)
    if marker and marker.get("fingerprint") == fingerprint:
        return marker["context"]
    if not _owned_or_empty(crds_path):
        raise ValueError(
            f"{crds_path} exists and is not a spec3flow-built CRDS cache; refusing to replace it"
        )

    crds_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{crds_path.name}.tmp-", dir=crds_path.parent))
    try:
        _write_cache(tmp, instrs, fingerprint)
        for _attempt in range(5):
            try:
                os.rename(tmp, crds_path)  # fails if crds_path is a non-empty dir
                return CONTEXT_NAME
            except OSError:
                if not crds_path.exists():
                    continue
            other = _read_marker(crds_path)
            if other and other.get("fingerprint") == fingerprint:
                return other["context"]  # a concurrent builder won; same content
            if not _owned_or_empty(crds_path):
                raise ValueError(f"{crds_path} was replaced by something that is not ours")
            # An older (or empty) cache of ours: move it aside, then retry the rename.
            aside = Path(tempfile.mkdtemp(prefix=f".{crds_path.name}.old-", dir=crds_path.parent))
            with contextlib.suppress(OSError):
                os.rename(crds_path, aside / "cache")
            shutil.rmtree(aside, ignore_errors=True)
        raise RuntimeError(f"could not move the new CRDS cache into {crds_path}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------


def crds_env(crds_path: Path | str, context: str = CONTEXT_NAME) -> dict[str, str]:
    """Environment variables for a (sub)process that must use this cache offline.

    - ``CRDS_PATH``: the cache root (absolute).
    - ``CRDS_MODE=local``: compute best references from the local rules.
    - ``CRDS_CONTEXT``: pin the context (else jwst asks the server for the "build"
      context of the installed jwst, fails, and falls back to ``latest_context``).
    - ``CRDS_READONLY_CACHE=1``: never write to the cache (parallel jobs).
    - ``CRDS_SERVER_URL``: a "serverless" URL.  Unset, crds also defaults to a
      serverless URL; it is set explicitly so that a ``CRDS_SERVER_URL`` inherited
      from the parent (e.g. the real server) cannot make a job wait on the network.

    ``env.update(crds_env(p))`` leaves other inherited ``CRDS_*`` variables (e.g.
    ``CRDS_MAPPATH``, ``CRDS_CONFIG_URI``) in force; :func:`apply_crds_env` drops them.
    """
    return {
        "CRDS_PATH": str(Path(crds_path).absolute()),
        "CRDS_MODE": "local",
        "CRDS_CONTEXT": context,
        "CRDS_READONLY_CACHE": "1",
        "CRDS_SERVER_URL": SERVERLESS_URL,
    }


def apply_crds_env(
    crds_path: Path | str, env: Mapping[str, str] | None = None, context: str = CONTEXT_NAME
) -> dict[str, str]:
    """Copy of ``env`` (default ``os.environ``) with all ``CRDS_*`` replaced by :func:`crds_env`."""
    base = dict(os.environ if env is None else env)
    out = {k: v for k, v in base.items() if not k.startswith("CRDS_")}
    out.update(crds_env(crds_path, context))
    return out


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spec3flow.crds_local",
        description="Build a local offline CRDS cache with a synthetic jwst context.",
    )
    p.add_argument("--crds-path", required=True, type=Path, help="cache root (CRDS_PATH)")
    p.add_argument(
        "--instrument", action="append", dest="instruments", metavar="NAME",
        help=f"instrument to include (repeatable; default: {' '.join(DEFAULT_INSTRUMENTS)})",
    )
    p.add_argument(
        "--print-env", action="store_true",
        help="print 'export VAR=value' lines for a shell instead of the context name",
    )
    args = p.parse_args(argv)
    context = build_local_crds(args.crds_path, args.instruments or DEFAULT_INSTRUMENTS)
    if args.print_env:
        import shlex

        for k, v in crds_env(args.crds_path, context).items():
            print(f"export {k}={shlex.quote(v)}")
    else:
        print(context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
