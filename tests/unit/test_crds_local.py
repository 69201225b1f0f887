"""Tests of spec3flow.crds_local: a real offline CRDS cache with a synthetic context.

CRDS keeps process-global cached state (context, cache config, subdir mode), so every
check that *uses* the cache through crds/jwst runs in one subprocess with the
environment from :func:`apply_crds_env`; the pytest process only builds caches and
parses mapping files.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spec3flow import crds_local as cl

ALL_TYPES = sorted(cl.SPEC3_REFTYPES) + sorted(cl.PARS_REFTYPES)

# Expected real files: {exp_type: {reftype: basename}}; everything else is N/A.
EXPECTED_FILES = {
    "NRS_MSASPEC": {
        "extract1d": "jwst_nirspec_extract1d_0001.json",
        "apcorr": "jwst_nirspec_apcorr_0001.fits",
    },
    "NRS_FIXEDSLIT": {
        "extract1d": "jwst_nirspec_extract1d_0001.json",
        "apcorr": "jwst_nirspec_apcorr_0002.fits",
    },
    "MIR_LRS-FIXEDSLIT": {
        "extract1d": "jwst_miri_extract1d_0001.json",
        "apcorr": "jwst_miri_apcorr_0001.fits",
    },
    # IFU
    "NRS_IFU": {
        "cubepar": "jwst_nirspec_cubepar_0001.fits",
        "extract1d": "jwst_nirspec_extract1d_0002.asdf",
    },
    "MIR_MRS": {
        "cubepar": "jwst_miri_cubepar_0001.fits",
        "extract1d": "jwst_miri_extract1d_0002.asdf",
        "mrsptcorr": "jwst_miri_mrsptcorr_0001.fits",
    },
    # slitless (SOSS)
    "NIS_SOSS": {
        "pastasoss": "jwst_niriss_pastasoss_0001.asdf",
        "specprofile": "jwst_niriss_specprofile_0001.fits",
        "speckernel": "jwst_niriss_speckernel_0001.fits",
        "photom": "jwst_niriss_photom_0001.fits",
    },
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crds") / "cache"
    assert cl.build_local_crds(path) == cl.CONTEXT_NAME
    return path


# ------------------------------------------------------------------------------------
# Layout and content (no crds state needed)
# ------------------------------------------------------------------------------------


def test_layout(cache: Path):
    cfg = cache / "config" / "jwst"
    info = ast.literal_eval((cfg / "server_config").read_text())
    assert info["observatory"] == "jwst"
    assert info["latest_context"] == info["operational_context"] == cl.CONTEXT_NAME
    assert info["force_remote_mode"] is False
    assert info["bad_files_list"] == []
    assert "last_synced" in info
    assert (cfg / "ref_cache_subdir_mode").read_text().strip() == "instrument"
    maps = cache / "mappings" / "jwst"
    assert (maps / cl.CONTEXT_NAME).exists()
    for instr in cl.DEFAULT_INSTRUMENTS:
        assert (maps / f"jwst_{instr}_0001.imap").exists()
    for instr in ("fgs", "miri", "nircam", "niriss", "nirspec", "system"):
        assert (cache / "references" / "jwst" / instr).is_dir()
    marker = json.loads((cache / cl.MARKER_NAME).read_text())
    assert marker["context"] == cl.CONTEXT_NAME
    assert marker["references"]["nirspec"]["apcorr"] == {
        "NRS_FIXEDSLIT": "jwst_nirspec_apcorr_0002.fits",
        "NRS_MSASPEC": "jwst_nirspec_apcorr_0001.fits",
    }
    # Nothing but the cache is left in the parent (no temp directories).
    assert [p.name for p in cache.parent.iterdir()] == ["cache"]


def _selector(path: Path) -> dict:
    """Parse a mapping file's selector literal (rmaps: the Match dict)."""
    text = path.read_text()
    body = text.split("selector = ", 1)[1]
    if body.startswith("Match("):
        body = body[len("Match(") : body.rindex(")")]
        body = body.replace("UseAfter(", "(")
    return ast.literal_eval(body)


def test_imaps_list_every_type(cache: Path):
    maps = cache / "mappings" / "jwst"
    for instr in cl.DEFAULT_INSTRUMENTS:
        sel = _selector(maps / f"jwst_{instr}_0001.imap")
        assert sorted(k.lower() for k in sel) == sorted(ALL_TYPES)
        for reftype, value in sel.items():
            if value != "N/A":
                assert value == f"jwst_{instr}_{reftype.lower()}_0001.rmap"
                assert (maps / value).exists()


def test_rmaps_list_all_exp_types_explicitly(cache: Path):
    maps = cache / "mappings" / "jwst"
    rmaps = sorted(maps.glob("*.rmap"))
    assert [p.name for p in rmaps] == [
        "jwst_miri_apcorr_0001.rmap",
        "jwst_miri_cubepar_0001.rmap",
        "jwst_miri_extract1d_0001.rmap",
        "jwst_miri_mrsptcorr_0001.rmap",
        "jwst_niriss_pastasoss_0001.rmap",
        "jwst_niriss_photom_0001.rmap",
        "jwst_niriss_speckernel_0001.rmap",
        "jwst_niriss_specprofile_0001.rmap",
        "jwst_nirspec_apcorr_0001.rmap",
        "jwst_nirspec_cubepar_0001.rmap",
        "jwst_nirspec_extract1d_0001.rmap",
    ]
    for path in rmaps:
        instr, reftype = path.stem.split("_")[1:3]
        sel = _selector(path)
        assert "*" not in sel
        assert sorted(sel) == sorted(cl.exp_types_for(instr))
        for exp_type, choices in sel.items():
            (value,) = choices.values()
            assert value == EXPECTED_FILES.get(exp_type, {}).get(reftype, "N/A")
            if value != "N/A":
                assert (cache / "references" / "jwst" / instr / value).exists()


def test_exp_types_from_stdatamodels():
    nrs = cl.exp_types_for("nirspec")
    assert {"NRS_MSASPEC", "NRS_FIXEDSLIT", "NRS_IFU"} <= set(nrs)
    assert all(e.startswith("NRS_") for e in nrs)
    assert "MIR_LRS-FIXEDSLIT" in cl.exp_types_for("miri")
    assert "N/A" not in cl._all_exp_types() and "ANY" not in cl._all_exp_types()


def test_mapping_checksums_accepted_by_crds(cache: Path):
    from crds.core import rmap

    for path in sorted((cache / "mappings" / "jwst").iterdir()):
        rmap.Mapping.from_file(str(path))  # raises ChecksumError on a bad sha1sum


def test_extract1d_json(cache: Path):
    for instr, width in (("nirspec", 5), ("miri", 9)):
        ref = json.loads(
            (cache / "references" / "jwst" / instr / f"jwst_{instr}_extract1d_0001.json").read_text()
        )
        assert ref["reftype"] == "EXTRACT1D"
        (aper,) = ref["apertures"]
        assert aper["id"] == "ANY" and aper["region_type"] == "target"
        assert aper["extract_width"] == width
        assert "bkg_coeff" not in aper


def test_apcorr_fits_layout(cache: Path):
    from stdatamodels.jwst import datamodels as dm

    refs = cache / "references" / "jwst"
    nwl, nsize, nph = len(cl._APC_WAVELENGTH), len(cl._APC_SIZE), len(cl._APC_PIXPHASE)
    with dm.NrsMosApcorrModel(str(refs / "nirspec" / "jwst_nirspec_apcorr_0001.fits")) as m:
        t = m.apcorr_table
        assert m.sizeunit == "pixels"
        assert len(t) == len(cl.NRS_FILTERS) * len(cl.NRS_GRATINGS)
        assert t["size"][0].shape == (nsize, nwl)
        assert t["apcorr"][0].shape == (nsize, nwl, nph)
        assert (t["apcorr"] == cl.APCORR_VALUE).all()
    with dm.NrsFsApcorrModel(str(refs / "nirspec" / "jwst_nirspec_apcorr_0002.fits")) as m:
        assert len(m.apcorr_table) == (
            len(cl.NRS_FILTERS) * len(cl.NRS_GRATINGS) * len(cl.NRS_FIXED_SLITS)
        )
    with dm.MirLrsApcorrModel(str(refs / "miri" / "jwst_miri_apcorr_0001.fits")) as m:
        t = m.apcorr_table
        assert m.meta.exposure.type == "MIR_LRS-FIXEDSLIT"
        assert t["apcorr"][0].shape == (nwl, nsize)
        assert (t["apcorr"] == cl.APCORR_VALUE).all()


# ------------------------------------------------------------------------------------
# Idempotency, atomic replacement, safety
# ------------------------------------------------------------------------------------


def test_rebuild_is_noop(cache: Path):
    marker = cache / cl.MARKER_NAME
    before = marker.stat().st_mtime_ns
    assert cl.is_complete(cache)
    assert cl.build_local_crds(cache) == cl.CONTEXT_NAME
    assert marker.stat().st_mtime_ns == before


def test_stale_cache_is_replaced(tmp_path: Path):
    path = tmp_path / "c"
    cl.build_local_crds(path, instruments=("niriss",))
    assert cl.is_complete(path, ("niriss",)) and not cl.is_complete(path)
    (path / "mappings" / "jwst" / "stray.txt").write_text("old")
    # Different content (more instruments) -> rebuilt and swapped in atomically.
    cl.build_local_crds(path, instruments=("niriss", "nircam"))
    assert cl.is_complete(path, ("nircam", "niriss"))
    assert (path / "mappings" / "jwst" / "jwst_nircam_0001.imap").exists()
    assert not (path / "mappings" / "jwst" / "stray.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_incomplete_cache_never_looks_complete(tmp_path: Path, monkeypatch):
    path = tmp_path / "c"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cl, "_pmap_text", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        cl.build_local_crds(path, instruments=("niriss",))
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # temp dir cleaned up


def test_empty_dir_ok_foreign_dir_refused(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cl.build_local_crds(empty, instruments=("niriss",)) == cl.CONTEXT_NAME
    assert cl.is_complete(empty, ("niriss",))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.fits").write_text("x")
    with pytest.raises(ValueError, match="not a spec3flow-built"):
        cl.build_local_crds(foreign, instruments=("niriss",))
    assert (foreign / "precious.fits").read_text() == "x"
    with pytest.raises(ValueError):
        cl.build_local_crds(tmp_path / "x", instruments=("nirspec", "hubble"))


def test_lost_race_discards_own_copy(tmp_path: Path, monkeypatch):
    """Two jobs build at once: the loser's rename fails, it sees the winner's complete
    cache (same fingerprint), drops its own copy and returns the context."""
    path = tmp_path / "c"
    cl.build_local_crds(path, instruments=("niriss",))
    winner = (path / cl.MARKER_NAME).read_text()
    real = cl._read_marker
    calls = []

    def first_call_sees_nothing(p):  # the loser checked before the winner renamed
        calls.append(p)
        return None if len(calls) == 1 else real(p)

    monkeypatch.setattr(cl, "_read_marker", first_call_sees_nothing)
    assert cl.build_local_crds(path, instruments=("niriss",)) == cl.CONTEXT_NAME
    assert len(calls) == 2
    assert (path / cl.MARKER_NAME).read_text() == winner  # winner's cache untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


# ------------------------------------------------------------------------------------
# Environment and CLI
# ------------------------------------------------------------------------------------


def test_crds_env(tmp_path: Path):
    env = cl.crds_env(tmp_path)
    assert env == {
        "CRDS_PATH": str(tmp_path.absolute()),
        "CRDS_MODE": "local",
        "CRDS_CONTEXT": cl.CONTEXT_NAME,
        "CRDS_READONLY_CACHE": "1",
        "CRDS_SERVER_URL": cl.SERVERLESS_URL,
    }
    assert "serverless" in env["CRDS_SERVER_URL"]
    full = cl.apply_crds_env(tmp_path, {"PATH": "/bin", "CRDS_MAPPATH": "/elsewhere",
                                        "CRDS_SERVER_URL": "https://jwst-crds.stsci.edu"})
    assert full == {"PATH": "/bin", **env}


def test_cli(cache: Path, capsys):
    assert cl.main(["--crds-path", str(cache)]) == 0
    assert capsys.readouterr().out.strip() == cl.CONTEXT_NAME
    assert cl.main(["--crds-path", str(cache), "--print-env"]) == 0
    out = capsys.readouterr().out
    assert "export CRDS_MODE=local" in out and "export CRDS_READONLY_CACHE=1" in out


# ------------------------------------------------------------------------------------
# The real thing: crds and jwst, offline, in a subprocess
# ------------------------------------------------------------------------------------

PROBE = textwrap.dedent(
    r'''
    import json, logging, os, sys, time
    t0 = time.time()
    import crds
    from crds.core import heavy_client
    from stpipe import crds_client
    from spec3flow import crds_local as cl

    out = {"env": {k: v for k, v in os.environ.items() if k.startswith("CRDS_")}}

    # 1. bestrefs for every EXP_TYPE of every instrument, all spec3 + pars types.
    types = list(cl.SPEC3_REFTYPES) + list(cl.PARS_REFTYPES)
    found, errors = {}, {}
    for instr in cl.DEFAULT_INSTRUMENTS:
        for et in cl.exp_types_for(instr):
            hdr = {"META.INSTRUMENT.NAME": instr.upper(), "META.EXPOSURE.TYPE": et,
                   "META.OBSERVATION.DATE": "2024-03-01", "META.OBSERVATION.TIME": "01:02:03"}
            refs = crds.getreferences(hdr, reftypes=types)
            assert sorted(refs) == sorted(types), et
            for rt, val in refs.items():
                if val.startswith("NOT FOUND"):
                    if val != "NOT FOUND n/a":
                        errors[f"{et}/{rt}"] = val
                else:
                    assert os.path.isfile(val), val
                    assert val.startswith(os.environ["CRDS_PATH"]), val
                    found.setdefault(et, {})[rt] = os.path.basename(val)
    out["found"], out["errors"] = found, errors
    out["context_used"] = crds_client.get_context_used("jwst")
    out["processing_mode"] = list(heavy_client.get_processing_mode("jwst"))
    out["t_bestrefs"] = time.time() - t0

    # 2. a real jwst step, no overrides, reading the synthetic EXTRACT1D + APCORR.
    import numpy as np
    from astropy import coordinates as coord, units as u
    from astropy.modeling.models import Const1D, Mapping, Scale, Shift
    from gwcs import coordinate_frames as cf, wcs as gwcs_wcs
    from stdatamodels.jwst import datamodels as dm
    from jwst.extract_1d import Extract1dStep
    from jwst.extract_1d.apply_apcorr import ApCorr, ApCorrPhase
    from jwst.pipeline import Spec3Pipeline

    logs = []
    class Grab(logging.Handler):
        def emit(self, rec):
            logs.append(rec.getMessage())
    for name in ("jwst", "stpipe"):
        logging.getLogger(name).addHandler(Grab())

    ny, nx, xc, ra0, dec0 = 40, 15, 7.0, 10.0, 20.0
    ra_m = Shift(-xc) | Scale(0.11 / 3600) | Shift(ra0)
    lam_m = Scale(0.2) | Shift(5.0)
    fwd = Mapping((0, 0, 1)) | ra_m & Const1D(dec0) & lam_m
    fwd.inverse = Mapping((0, 2)) | ra_m.inverse & lam_m.inverse
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS(),
                            unit=(u.deg, u.deg))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    w = gwcs_wcs.WCS([(det, fwd), (cf.CompositeFrame([sky, spec], name="world"), None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    yy, xx = np.mgrid[:ny, :nx]
    data = np.exp(-0.5 * (xx - xc) ** 2).astype("f4")
    m = dm.ImageModel(data=data, err=np.full_like(data, 0.01), dq=np.zeros(data.shape, "u4"),
                      var_poisson=np.full_like(data, 1e-4), var_rnoise=np.full_like(data, 1e-4),
                      var_flat=np.zeros_like(data))
    m.meta.wcs = w
    m.meta.instrument.name, m.meta.instrument.detector = "MIRI", "MIRIMAGE"
    m.meta.instrument.filter = "P750L"
    m.meta.exposure.type, m.meta.subarray.name = "MIR_LRS-FIXEDSLIT", "FULL"
    m.meta.observation.date, m.meta.observation.time = "2024-03-01", "01:02:03"
    m.meta.wcsinfo.dispersion_direction = 2
    m.meta.target.source_type = "POINT"
    m.meta.dither.dithered_ra, m.meta.dither.dithered_dec = ra0, dec0
    m.meta.photometry.pixelarea_steradians = (0.11 / 206265) ** 2
    m.meta.photometry.pixelarea_arcsecsq = 0.11 ** 2
    m.meta.bunit_data = m.meta.bunit_err = "MJy/sr"
    m.meta.filename = "probe_cal.fits"

    t1 = time.time()
    res = Extract1dStep.call(m.copy())          # .call(): also looks up pars-extract1dstep
    out["t_step"] = time.time() - t1
    ref = Extract1dStep.call(m.copy(), override_apcorr="N/A")
    tab, tab0 = res.spec[0].spec_table, ref.spec[0].spec_table
    out["step"] = {
        "status": res.meta.cal_step.extract_1d,
        "extract1d": res.meta.ref_file.extract1d.name,
        "context_used": res.meta.ref_file.crds.context_used,
        "npixels": float(np.nanmedian(tab["NPIXELS"])),
        "flux_sum": float(np.nansum(tab["FLUX"])),
        # APCORR of 1.0 vs no APCORR: equal up to spline round-off (~1 ulp)
        "apcorr_max_rel_diff": float(np.nanmax(np.abs(tab["FLUX"] / tab0["FLUX"] - 1))),
        "used_apcorr_file": [s for s in logs if s.startswith("Using APCORR file")],
        "created_apcorr": any("Creating aperture correction" in s for s in logs),
        "pars_lookups": [s for s in logs if "PARS-" in s.upper() and "crds" in s.lower()],
    }

    # 3. the aperture correction functions jwst builds from the synthetic tables.
    def nrs_model(exp_type):
        n = dm.ImageModel((2, 2))
        n.meta.instrument.name, n.meta.exposure.type = "NIRSPEC", exp_type
        n.meta.instrument.filter, n.meta.instrument.grating = "F170LP", "G235M"
        return n
    rp = os.path.join(os.environ["CRDS_PATH"], "references", "jwst")
    vals = {}
    with dm.NrsMosApcorrModel(os.path.join(rp, "nirspec", "jwst_nirspec_apcorr_0001.fits")) as a:
        ap = ApCorrPhase(nrs_model("NRS_MSASPEC"), a.apcorr_table, a.sizeunit, slit_name="1")
        vals["mos"] = float(ap.apcorr_func(2.0, 5.0, 0.5).ravel()[0])
    with dm.NrsFsApcorrModel(os.path.join(rp, "nirspec", "jwst_nirspec_apcorr_0002.fits")) as a:
        ap = ApCorrPhase(nrs_model("NRS_FIXEDSLIT"), a.apcorr_table, a.sizeunit,
                         slit_name="S200A1", slit="S200A1")
        vals["fs"] = float(ap.apcorr_func(3.0, 7.0, 0.5).ravel()[0])
    with dm.MirLrsApcorrModel(os.path.join(rp, "miri", "jwst_miri_apcorr_0001.fits")) as a:
        ap = ApCorr(m, a.apcorr_table, a.sizeunit)
        vals["lrs"] = float(ap.apcorr_func(7.0, 8.0).ravel()[0])
    out["apcorr_values"] = vals

    # 4. what the installed jwst asks for, against the module's lists.
    out["pipeline_reftypes"] = sorted({rt for cls in Spec3Pipeline.step_defs.values()
                                       for rt in cls.reference_file_types})
    out["pipeline_pars"] = sorted([Spec3Pipeline.get_config_reftype()] +
                                  [c.get_config_reftype() for c in Spec3Pipeline.step_defs.values()])
    cfg = Spec3Pipeline.get_config_from_reference(m)   # every pars-* lookup, all N/A
    out["pipeline_cfg_steps"] = sorted(cfg["steps"].keys())
    out["context_used_end"] = crds_client.get_context_used("jwst")
    print("RESULT " + json.dumps(out))
    '''
)


@pytest.fixture(scope="module")
def probe(cache: Path, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("probe")
    script = work / "probe.py"
    script.write_text(PROBE)
    env = cl.apply_crds_env(cache)
    cache_files_before = sorted(str(p) for p in cache.rglob("*"))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    result["cache_unchanged"] = cache_files_before == sorted(str(p) for p in cache.rglob("*"))
    return result


def test_bestrefs_every_exp_type(probe: dict):
    assert probe["errors"] == {}
    assert probe["found"] == EXPECTED_FILES
    assert probe["processing_mode"] == ["local", cl.CONTEXT_NAME]
    assert probe["context_used"] == cl.CONTEXT_NAME
    assert probe["env"]["CRDS_MODE"] == "local"


def test_real_step_uses_cache_without_overrides(probe: dict):
    step = probe["step"]
    assert step["status"] == "COMPLETE"
    assert step["extract1d"] == "crds://jwst_miri_extract1d_0001.json"
    assert step["context_used"] == cl.CONTEXT_NAME
    assert step["npixels"] == 9.0  # the EXTRACT1D extract_width
    assert step["flux_sum"] > 0
    assert step["created_apcorr"]
    assert step["used_apcorr_file"][0].endswith("jwst_miri_apcorr_0001.fits")
    assert step["apcorr_max_rel_diff"] < 1e-12  # APCORR of 1.0 ~ no APCORR
    assert probe["context_used_end"] == cl.CONTEXT_NAME
    assert probe["cache_unchanged"]  # CRDS_READONLY_CACHE: nothing written to the cache


def test_apcorr_tables_interpolate_to_one(probe: dict):
    assert probe["apcorr_values"] == pytest.approx(
        {"mos": cl.APCORR_VALUE, "fs": cl.APCORR_VALUE, "lrs": cl.APCORR_VALUE}
    )


def test_module_lists_match_installed_jwst(probe: dict):
    assert set(probe["pipeline_reftypes"]) <= set(cl.SPEC3_REFTYPES)
    # pastasoss is also fetched directly by jwst.extract_1d.soss_extract.pastasoss.
    assert set(cl.SPEC3_REFTYPES) - set(probe["pipeline_reftypes"]) <= {"pastasoss"}
    assert sorted(probe["pipeline_pars"]) == sorted(cl.PARS_REFTYPES)
    assert len(probe["pipeline_cfg_steps"]) == len(cl.SPEC3_STEP_CLASSES) - 1
