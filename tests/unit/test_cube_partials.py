"""cube_build split by exposure: the plan's partial jobs and the partial-sums files.

That the gathered cubes equal Spec3Pipeline's, bit for bit, is tested end to end
(tests/e2e/test_ifu.py runs with partials on, test_plain_processes.py with them off).
"""

from __future__ import annotations

import numpy as np
import pytest

from spec3flow.cube_partials import (PartialSums, PartialSumsError, PartialSumsReader, exposure_of,
                                     partial_name)
from spec3flow.dag import Dag
from spec3flow.plan import Plan, Product, Source

R = "res"
NRS_NAME = "jw01234-o006_t004_nirspec_g235m"
MRS_NAME = "jw01234-o005_t003_miri"


def nrs_product(n: int = 3, npix: int = 2_000_000) -> Product:
    science = [f"/data/jw01234006001_02101_{i:05d}_nrs1_cal.fits" for i in range(1, n + 1)]
    infos = [{"name": p.rsplit("/", 1)[1], "bands": [["g235m", "f170lp"]], "npix": npix} for p in science]
    return Product(asn_name="jw01234-o006_spec3_00001_asn", name=NRS_NAME, exp_type="NRS_IFU",
                   science=science, background=[], sources=[Source(NRS_NAME, None, [])],
                   ifu_exposures=infos)


def mrs_product(npix: int = 500_000) -> Product:
    """Two dithers per detector: ch1/ch2 medium on SHORT, ch3/ch4 short on LONG."""
    detectors = [("mirifushort", "12", "medium"), ("mirifulong", "34", "short")] * 2
    science = [f"/data/jw01234005001_02101_{i:05d}_{det}_cal.fits" for i, (det, _, _) in enumerate(detectors, 1)]
    infos = [{"name": p.rsplit("/", 1)[1], "bands": [[c, band] for c in ch], "npix": npix}
             for p, (_, ch, band) in zip(science, detectors)]
    return Product(asn_name="jw01234-o005_spec3_00001_asn", name=MRS_NAME, exp_type="MIR_MRS",
                   science=science, background=[], sources=[Source(MRS_NAME, None, [])],
                   ifu_exposures=infos)


def dag(product, min_pixels=1_000_000, **steps) -> Dag:
    return Dag(Plan(products=[product], skipped=[]), R, steps, cube_partial_min_pixels=min_pixels)


# ------------------------------------------------------------------------ planning
def test_one_partial_job_per_exposure_then_the_cube_job_adds_them():
    d = dag(nrs_product(3))
    partials = d.jobs_of("cube_build_partial")
    assert [j.key for j in partials] == [f"{NRS_NAME}/jw01234006001_02101_{i:05d}_nrs1" for i in (1, 2, 3)]
    (cube,) = d.jobs_of("cube_build")
    crfs = d.job("outlier_detection", NRS_NAME).outputs
    for job, exposure in zip(partials, nrs_product().science):
        name = exposure.rsplit("/", 1)[1]
        assert job.inputs == crfs and job.input_names == cube.input_names
        assert job.outputs == [f"{R}/intermediate/jw01234-o006_spec3_00001_asn/cube_build/{NRS_NAME}/"
                               f"{partial_name(name)}"]
        assert job.jwst_step == "cube_build" and job.output_stem == cube.output_stem
    assert cube.inputs == crfs + [j.outputs[0] for j in partials]
    assert cube.outputs == [f"{R}/products/jw01234-o006_t004_nirspec_g235m-f170lp_s3d.fits"]
    assert partials[0].outputs[0] not in d.final


def test_partials_follow_the_band_jobs_and_only_the_exposures_feeding_them():
    d = dag(mrs_product(), min_pixels=100_000)
    by_cube = {}
    for job in d.jobs_of("cube_build_partial"):
        cube, exposure = job.key.rsplit("/", 1)
        by_cube.setdefault(cube.rsplit("_", 1)[1], []).append(exposure.rsplit("_", 1)[1])
        assert job.params == d.job("cube_build", cube).params  # the band it builds
    assert by_cube == {"ch1-medium": ["mirifushort"] * 2, "ch2-medium": ["mirifushort"] * 2,
                       "ch3-short": ["mirifulong"] * 2, "ch4-short": ["mirifulong"] * 2}


@pytest.mark.parametrize("product,kwargs", [
    (nrs_product(1), {}),  # one exposure: nothing to split
    (nrs_product(3), {"min_pixels": None}),  # execution.cube_build_partials: false
    (nrs_product(3, npix=999_999), {}),  # small exposures: a partial job costs more than it saves
    (mrs_product(), {}),  # realistic MRS: its band cubes already run side by side
])
def test_no_partials(product, kwargs):
    d = dag(product, **kwargs)
    assert d.jobs_of("cube_build_partial") == []
    assert all(not p.endswith(".cubepart") for job in d.jobs_of("cube_build") for p in job.inputs)


def test_partial_names_round_trip():
    name = "jw01234006001_02101_00001_nrs1_cal.fits"
    assert partial_name(name) == "jw01234006001_02101_00001_nrs1_cal.cubepart"
    assert exposure_of(f"/x/y/{partial_name(name)}") == name


# ------------------------------------------------------------------ partial sums
def _sums(seed: int, n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sums = {k: rng.normal(size=n) for k in ("spaxel_flux", "spaxel_weight", "spaxel_var", "spaxel_iflux")}
    sums["spaxel_dq"] = rng.integers(0, 4, size=n).astype(np.uint32)
    return sums


def _write(tmp_path, exposure, entries):
    sums = PartialSums(exposure)
    for cube, band, geometry, seed in entries:
        sums.add(cube, band, geometry, _sums(seed))
    path = tmp_path / partial_name(exposure)
    sums.save(path)
    return path


def test_saved_sums_come_back_exactly(tmp_path):
    path = _write(tmp_path, "a_cal.fits", [("cube_ch1-short", 0, "g1", 1), ("cube_ch2-short", 0, "g2", 2)])
    reader = PartialSumsReader([path])
    for cube, geometry, seed in (("cube_ch2-short", "g2", 2), ("cube_ch1-short", "g1", 1)):
        got = reader.take(cube, 0, "a_cal.fits", geometry)
        for name, value in _sums(seed).items():
            assert got[name].dtype == value.dtype and np.array_equal(got[name], value)
    reader.check_all_used()


def test_missing_stale_duplicate_and_unused_sums_are_named(tmp_path):
    path = _write(tmp_path, "a_cal.fits", [("cube", 0, "g1", 1), ("cube", 1, "g1", 3)])
    reader = PartialSumsReader([path])
    with pytest.raises(PartialSumsError, match="no partial sums of b_cal.fits.*no partial-sums file"):
        reader.take("cube", 0, "b_cal.fits", "g1")
    with pytest.raises(PartialSumsError, match="a_cal.cubepart: .*another spaxel grid"):
        reader.take("cube", 0, "a_cal.fits", "g2")
    reader.take("cube", 0, "a_cal.fits", "g1")
    with pytest.raises(PartialSumsError, match="band 1 that cube_build did not ask for"):
        reader.check_all_used()
    copy = tmp_path / "other" / path.name
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    with pytest.raises(PartialSumsError, match="a second partial-sums file for a_cal.fits"):
        PartialSumsReader([path, copy])


def test_truncated_or_foreign_files_are_named(tmp_path):
    path = _write(tmp_path, "a_cal.fits", [("cube", 0, "g1", 1)])
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(PartialSumsError, match="a_cal.cubepart: truncated .*spaxel_dq of cube cube band 0"):
        PartialSumsReader([path]).take("cube", 0, "a_cal.fits", "g1")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(PartialSumsError, match="a_cal.cubepart: its index is unreadable"):
        PartialSumsReader([path])
    path.write_bytes(b"PK\x03\x04 an npz from an older version")
    with pytest.raises(PartialSumsError, match="a_cal.cubepart: not a spec3flow partial-sums file"):
        PartialSumsReader([path])
