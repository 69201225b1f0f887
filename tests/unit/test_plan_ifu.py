"""IFU cube names known at planning (spec3flow.plan.ifu_cubes) against jwst's own code.

For each set of exposures and cube_build parameters, jwst 3.0.0's CubeBuildStep
(read_user_input), CubeData (determine_band_coverage, number_cubes) and IFUCubeData
(define_cubename_suffix) are run on a FileTable filled from the same bands: the planned
names must be theirs, and where jwst raises (or makes no cube) planning must fail.
"""

from __future__ import annotations

import itertools

import pytest

from spec3flow.plan import PlanError, Product, Source, cube_jobs, ifu_cubes

MRS_NAME = "jw01234-o005_t003_miri"
NRS_NAME = "jw01234-o006_t004_nirspec_g235m"

MRS_SETS = {
    "2det-1band": [("12", "MEDIUM"), ("34", "SHORT")] * 2,
    "2det-3bands": [(ch, b) for b in ("SHORT", "MEDIUM", "LONG") for ch in ("12", "34")],
    "ch12-only": [("12", "LONG")],
}
NRS_SETS = {
    "g235m": [("G235M", "F170LP")] * 2,
    "two-gratings": [("G140M", "F100LP"), ("G235M", "F170LP"), ("G140H", "F070LP")],
}
MRS_PARAMS = [dict(output_type=o, **sel) for o in ("band", "channel", "multi", "grating")
              for sel in ({}, {"channel": "1"}, {"channel": "3"}, {"band": "short"},
                          {"band": "long"}, {"channel": "2", "band": "medium"})]
NRS_PARAMS = [dict(output_type=o, **sel) for o in ("band", "grating", "multi", "channel")
              for sel in ({}, {"grating": "g235m"}, {"grating": "g140m", "filter": "f100lp"},
                          {"grating": "g235m", "filter": "f170lp"}, {"filter": "f100lp"},
                          {"grating": "g395h", "filter": "f290lp"})]
NRS_PARAMS.append({"coord_system": "internal_cal"})


def product(exp_type: str, exposures) -> Product:
    if exp_type == "MIR_MRS":
        infos = [{"name": f"e{i}", "bands": [[c, band.lower()] for c in ch], "npix": 1000}
                 for i, (ch, band) in enumerate(exposures)]
        name = MRS_NAME
    else:
        infos = [{"name": f"e{i}", "bands": [[g.lower(), f.lower()]], "npix": 1000}
                 for i, (g, f) in enumerate(exposures)]
        name = NRS_NAME
    return Product(asn_name="jw01234-o00x_spec3_00001_asn", name=name, exp_type=exp_type,
                   science=[], background=[], sources=[Source(name, None, [])],
                   ifu_exposures=infos)


def jwst_cube_names(prod: Product, params: dict) -> list[str] | None:
    """Names jwst 3.0.0's cube_build gives (None where it raises or makes no cube)."""
    from jwst.cube_build import cube_build, file_table, ifu_cube
    from jwst.cube_build.cube_build_step import CubeBuildStep

    step = CubeBuildStep(**params)
    step.subchannel = step.band.lower()
    step.filter, step.grating = step.filter.lower(), step.grating.lower()
    coord = step.coord_system.lower()
    output_type = "band" if coord == "internal_cal" else step.output_type
    step.pars_input = {"channel": [], "subchannel": [], "filter": [], "grating": []}
    step.read_user_input()
    instrument = "MIRI" if prod.exp_type == "MIR_MRS" else "NIRSPEC"
    table = file_table.FileTable()
    for exposure in prod.ifu_exposures:
        for a, b in exposure["bands"]:
            table.FileMap[instrument][a][b].append(exposure["name"])
    data = cube_build.CubeData([], "unused", channel=step.pars_input["channel"],
                               subchannel=step.pars_input["subchannel"],
                               grating=step.pars_input["grating"], filter=step.pars_input["filter"],
                               weighting="drizzle", output_type=output_type)
    data.instrument = instrument
    try:
        data.determine_band_coverage(table)
    except (cube_build.NoChannelsError, cube_build.NoSubchannelsError, cube_build.NoFiltersError,
            cube_build.NoGratingsError, cube_build.MissingParameterError):
        return None
    if instrument == "MIRI" and coord == "internal_cal":
        return None
    n_cubes, cube_pars = data.number_cubes()
    if n_cubes == 0:
        return None
    names = []
    for i in range(n_cubes):
        cube = ifu_cube.IFUCubeData.__new__(ifu_cube.IFUCubeData)
        cube.instrument, cube.coord_system = instrument, coord
        cube.list_par1, cube.list_par2 = cube_pars[str(i + 1)]["par1"], cube_pars[str(i + 1)]["par2"]
        cube.num_bands = len(cube.list_par1)
        cube.master_table = table
        cube.output_name_base = prod.name
        try:
            cube.check_ifucube()
        except ifu_cube.IncorrectInputError:
            return None
        suffix = cube.define_cubename_suffix()
        names.append(cube.output_name_base + suffix)
    return sorted(names)


CASES = ([("MIR_MRS", k, p) for k, p in itertools.product(MRS_SETS, MRS_PARAMS)]
         + [("NRS_IFU", k, p) for k, p in itertools.product(NRS_SETS, NRS_PARAMS)])


@pytest.mark.parametrize("exp_type,exposures,params", CASES,
                         ids=[f"{e}-{k}-{'-'.join(f'{a}={b}' for a, b in p.items())}" for e, k, p in CASES])
def test_cube_names_match_jwst(exp_type, exposures, params):
    prod = product(exp_type, (MRS_SETS | NRS_SETS)[exposures])
    expected = jwst_cube_names(prod, params)
    if expected is None:
        with pytest.raises(PlanError) as err:
            ifu_cubes(prod, params)
        assert prod.asn_name in str(err.value) and "\n" not in str(err.value)
    else:
        assert sorted(c.stem for c in ifu_cubes(prod, params)) == expected


def test_real_world_names():
    mrs = product("MIR_MRS", MRS_SETS["2det-3bands"])
    assert [c.stem for c in ifu_cubes(mrs, {"output_type": "channel"})] == [
        f"{MRS_NAME}_ch{c}-shortmediumlong" for c in "1234"]
    assert [c.stem for c in ifu_cubes(mrs, {"output_type": "multi"})] == [
        f"{MRS_NAME}_ch1-2-3-4-shortmediumlong"]
    nrs = product("NRS_IFU", NRS_SETS["two-gratings"])
    assert [c.stem for c in ifu_cubes(nrs, {"output_type": "multi"})] == [
        "jw01234-o006_t004_nirspec_g140h-f070lp-g140m-f100lp-g235m-f170lp"]


def test_band_cubes_are_split_one_job_per_band():
    """Default band cubes: one cube_build job per band, reading the exposures that cover it
    (MIRI selects the band by channel/band too; a band one exposure of several covers
    reads them all, as cube_build blends metadata only across more than one input)."""
    mrs = product("MIR_MRS", MRS_SETS["2det-3bands"])
    jobs = cube_jobs(mrs, ifu_cubes(mrs))
    assert [(j.cube.stem.rsplit("_", 1)[1], j.members, j.params) for j in jobs][:3] == [
        ("ch1-short", tuple(range(6)), {"channel": "1", "band": "short"}),
        ("ch1-medium", tuple(range(6)), {"channel": "1", "band": "medium"}),
        ("ch1-long", tuple(range(6)), {"channel": "1", "band": "long"})]
    dithered = product("MIR_MRS", MRS_SETS["2det-1band"])
    assert [(j.members, j.params) for j in cube_jobs(dithered, ifu_cubes(dithered))] == [
        ((0, 2), {"channel": "1", "band": "medium"}), ((0, 2), {"channel": "2", "band": "medium"}),
        ((1, 3), {"channel": "3", "band": "short"}), ((1, 3), {"channel": "4", "band": "short"})]
    nrs = product("NRS_IFU", NRS_SETS["two-gratings"] * 2)
    assert [(j.members, j.params) for j in cube_jobs(nrs, ifu_cubes(nrs))] == [
        ((2, 5), {}), ((0, 3), {}), ((1, 4), {})]


@pytest.mark.parametrize("exposures,params", [
    (MRS_SETS["2det-1band"], {"output_type": "channel"}),
    (MRS_SETS["2det-1band"], {"output_type": "multi"}),
    (MRS_SETS["ch12-only"], {"channel": "1"}),  # one cube
    (NRS_SETS["g235m"], {}),  # one band
    (NRS_SETS["two-gratings"], {}),  # one exposure per band: cannot pick a band by exposures
])
def test_other_cubes_are_built_by_one_job(exposures, params):
    exp_type = "MIR_MRS" if exposures in MRS_SETS.values() else "NRS_IFU"
    prod = product(exp_type, exposures)
    assert cube_jobs(prod, ifu_cubes(prod, params), params) is None
