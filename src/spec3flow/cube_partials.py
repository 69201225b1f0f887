"""cube_build split by exposure: one job per exposure, then a gather job, same cube.

cube_build (jwst 3.0.0, point cloud and drizzle weighting) maps each exposure of each
band onto the cube's spaxels in a C call that returns that exposure's own flux, weight,
variance, coverage and DQ arrays; ``IFUCubeData.build_ifucube`` adds them to running
totals one (band, exposure) after another, then turns the totals into the cube.  The
C calls are independent once the cube's geometry is known, and they are nearly all of
cube_build's time (a realistic NIRSpec IFU exposure: 17 s of the 18 s it adds).

So a *partial* job runs the real step up to that loop, with every cube's geometry set
up from all exposures as usual, computes only its own exposure's arrays, and saves
them (``<exposure>.cubepart``).  The *gather* job runs the real step again with
the loop replaced by ``totals = totals + arrays`` over the saved arrays in
cube_build's own (band, exposure) order, and lets cube_build finish the cube, its
metadata and its file.  Adding the same arrays in the same order from the same zeros
gives the same bits as the one-job step; the end-to-end tests compare the files.

Both modes patch ``ifu_cube.IFUCubeData`` (and, for partials,
``CubeData.number_cubes``) only inside a ``with`` block of one job process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Suffix of a partial-sums file: ``<in-memory exposure name without .fits>.cubepart``.
PARTIAL_SUFFIX = ".cubepart"
#: A partial-sums file: this magic, the JSON index's length (8 bytes, little-endian), the
#: index, then the arrays' raw bytes. Not .npz: reading a 250 MB .npz back took 1.1-1.4 s
#: (zipfile's chunked reads and CRC), np.fromfile of the same bytes ~0.06 s.
PARTIAL_MAGIC = b"S3FCPRT1"
#: The running totals build_ifucube keeps, in its order.
SUMS = ("spaxel_flux", "spaxel_weight", "spaxel_var", "spaxel_iflux", "spaxel_dq")
#: cube_build interpolations whose loop adds per-exposure arrays (not ``area``, which
#: adds per slice inside one exposure and serves coord_system=internal_cal).
SPLITTABLE_INTERPOLATIONS = ("pointcloud", "drizzle")


class PartialSumsError(RuntimeError):
    """Partial sums that do not fit the cube the gather job is building."""


def partial_name(exposure_name: str) -> str:
    """File name of an exposure's partial sums, from its in-memory name (``..._cal.fits``)."""
    return f"{exposure_name.removesuffix('.fits')}{PARTIAL_SUFFIX}"


def exposure_of(partial_path: Path | str) -> str:
    """The in-memory exposure name a partial-sums file belongs to."""
    return Path(partial_path).name.removesuffix(PARTIAL_SUFFIX) + ".fits"


def geometry_digest(cube) -> str:
    """What must match between the partial jobs and the gather: the spaxel grid."""
    digest = hashlib.sha1()
    for name in ("naxis1", "naxis2", "naxis3", "crval1", "crval2", "crval3",
                 "cdelt1", "cdelt2", "cdelt3", "linear_wave", "interpolation", "weighting"):
        digest.update(repr(getattr(cube, name, None)).encode())
    for name in ("xcoord", "ycoord", "zcoord", "cdelt3_normal"):
        value = getattr(cube, name, None)
        digest.update(b"-" if value is None else np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------- partials
@dataclass
class PartialSums:
    """One exposure's arrays for every (cube, band) it feeds, and where they belong."""

    exposure: str
    entries: list[dict] = field(default_factory=list)  # cube, band, geometry
    arrays: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, cube: str, band: int, geometry: str, arrays: dict[str, np.ndarray]) -> None:
        self.entries.append({"cube": cube, "band": band, "geometry": geometry})
        self.arrays.append(arrays)

    def save(self, path: Path) -> None:
        entries, chunks, offset = [], [], 0
        for entry, arrays in zip(self.entries, self.arrays, strict=True):
            layout = {}
            for name in SUMS:
                value = np.ascontiguousarray(arrays[name])
                layout[name] = {"dtype": value.dtype.str, "shape": list(value.shape), "offset": offset}
                chunks.append(value)
                offset += value.nbytes
            entries.append({**entry, "arrays": layout})
        index = json.dumps({"exposure": self.exposure, "entries": entries}).encode()
        with open(path, "wb") as stream:
            stream.write(PARTIAL_MAGIC + len(index).to_bytes(8, "little") + index)
            for value in chunks:
                value.tofile(stream)


class _Captured(Exception):
    """Stops build_ifucube where the totals are complete, carrying them."""

    def __init__(self, sums: dict[str, np.ndarray]):
        super().__init__("partial sums captured")
        self.sums = sums


class AllCubesDone(Exception):
    """Stops the step once the last cube's partial sums are taken."""


@contextlib.contextmanager
def partial_mode(exposure: str, sink: PartialSums):
    """Within the block, CubeBuildStep computes ``exposure``'s arrays of every cube into
    ``sink`` and then stops with :class:`AllCubesDone` (the caller's to catch)."""
    from jwst.cube_build import cube_build, ifu_cube
    from stdatamodels.jwst import datamodels

    base = ifu_cube.IFUCubeData
    cubes = {"total": None, "seen": 0}
    number_cubes = cube_build.CubeData.number_cubes

    def counted_number_cubes(self):
        num_cubes, cube_pars = number_cubes(self)
        cubes["total"] = num_cubes
        return num_cubes, cube_pars

    class PartialCube(base):
        def build_ifucube(self):
            _check_splittable(self)
            name = _cube_name(self)
            geometry = geometry_digest(self)
            file_map = self.master_table.FileMap[self.instrument]
            for band, (par1, par2) in enumerate(zip(self.list_par1, self.list_par2)):
                for model in file_map[par1][par2]:
                    if model.meta.filename == exposure:
                        sink.add(name, band, geometry, self._one_band_one_exposure(par1, par2, model))
            cubes["seen"] += 1
            if cubes["seen"] == cubes["total"]:
                raise AllCubesDone()
            return datamodels.IFUCubeModel(), 0  # a placeholder the caller never sees

        def _one_band_one_exposure(self, par1, par2, model):
            """jwst's own loop, run on one band and one exposure: its arrays, exactly."""
            file_map = self.master_table.FileMap[self.instrument]
            saved = (self.list_par1, self.list_par2, file_map[par1][par2], self.output_name)
            self.list_par1, self.list_par2, file_map[par1][par2] = [par1], [par2], [model]
            try:
                base.build_ifucube(self)
            except _Captured as captured:
                return captured.sums
            finally:
                self.list_par1, self.list_par2, file_map[par1][par2], self.output_name = saved
            raise PartialSumsError("cube_build's loop ended without reaching find_spaxel_flux")

        def find_spaxel_flux(self):
            raise _Captured({name: getattr(self, name) for name in SUMS})

    with _patched(ifu_cube, "IFUCubeData", PartialCube), \
            _patched(cube_build.CubeData, "number_cubes", counted_number_cubes):
        yield


# ------------------------------------------------------------------------- gather
class PartialSumsReader:
    """The partial-sums files of one cube_build job, read one array set at a time."""

    def __init__(self, paths: list[Path]):
        self.files: dict[str, Path] = {}
        self.index: dict[tuple[str, int, str], tuple[Path, dict, int]] = {}
        for path in paths:
            meta, data_start = _read_index(Path(path))
            exposure = meta["exposure"]
            if exposure in self.files:
                raise PartialSumsError(f"{path.name}: a second partial-sums file for {exposure} "
                                       f"(the first: {self.files[exposure].name})")
            self.files[exposure] = path
            for entry in meta["entries"]:
                self.index[(entry["cube"], entry["band"], exposure)] = (path, entry, data_start)
        self.used: set[tuple[str, int, str]] = set()

    def take(self, cube: str, band: int, exposure: str, geometry: str) -> dict[str, np.ndarray]:
        key = (cube, band, exposure)
        if key not in self.index:
            where = self.files.get(exposure)
            raise PartialSumsError(
                f"cube {cube}: no partial sums of {exposure} for band {band} "
                + (f"in {where.name}" if where else "(no partial-sums file for this exposure)"))
        path, entry, data_start = self.index[key]
        if entry["geometry"] != geometry:
            raise PartialSumsError(f"{path.name}: its partial sums were computed for another "
                                   f"spaxel grid of cube {cube} (stale file? rerun its job)")
        self.used.add(key)
        arrays = {}
        for name in SUMS:
            layout = entry["arrays"][name]
            count = int(np.prod(layout["shape"], dtype=np.int64))
            value = np.fromfile(path, dtype=np.dtype(layout["dtype"]), count=count,
                                offset=data_start + layout["offset"])
            if value.size != count:
                raise PartialSumsError(f"{path.name}: truncated ({name} of cube {cube} band {band} "
                                       f"has {value.size} of {count} values; rerun its job)")
            arrays[name] = value.reshape(layout["shape"])
        return arrays

    def check_all_used(self) -> None:
        unused = sorted(set(self.index) - self.used)
        if unused:
            cube, band, exposure = unused[0]
            raise PartialSumsError(f"{self.files[exposure].name}: partial sums for cube {cube} "
                                   f"band {band} that cube_build did not ask for "
                                   f"({len(unused)} unused in all)")


@contextlib.contextmanager
def gather_mode(reader: PartialSumsReader):
    """Within the block, CubeBuildStep builds each cube from the saved partial sums."""
    from jwst.cube_build import ifu_cube

    class GatheredCube(ifu_cube.IFUCubeData):
        def build_ifucube(self):
            """build_ifucube (jwst 3.0.0) with each C call's arrays read from its file."""
            _check_splittable(self)
            self.output_name = _cube_name(self)
            total_num = self.naxis1 * self.naxis2 * self.naxis3
            for name in SUMS[:-1]:
                setattr(self, name, np.zeros(total_num, dtype=np.float64))
            self.spaxel_dq = np.zeros(total_num, dtype=np.uint32)
            geometry = geometry_digest(self)
            file_map = self.master_table.FileMap[self.instrument]
            k = 0
            for band, (par1, par2) in enumerate(zip(self.list_par1, self.list_par2)):
                for input_model in file_map[par1][par2]:
                    self.input_models_this_cube.append(input_model)
                    if band == 0 and k == 0:
                        input_model_ref = input_model
                    sums = reader.take(self.output_name, band, input_model.meta.filename, geometry)
                    for name in SUMS[:-1]:  # jwst: total = total + sums; in place, same values
                        np.add(getattr(self, name), sums[name], out=getattr(self, name))
                    self.spaxel_dq = np.bitwise_or(self.spaxel_dq, sums["spaxel_dq"])  # dtype as jwst's
                    del sums
                    k += 1
            self.find_spaxel_flux()
            self.set_final_dq_flags()
            return self.setup_final_ifucube_model(input_model_ref)

    with _patched(ifu_cube, "IFUCubeData", GatheredCube):
        yield
    reader.check_all_used()


def _read_index(path: Path) -> tuple[dict, int]:
    """A partial-sums file's index, and where its arrays start."""
    with open(path, "rb") as stream:
        head = stream.read(len(PARTIAL_MAGIC) + 8)
        if not head.startswith(PARTIAL_MAGIC) or len(head) < len(PARTIAL_MAGIC) + 8:
            raise PartialSumsError(f"{path.name}: not a spec3flow partial-sums file")
        size = int.from_bytes(head[len(PARTIAL_MAGIC):], "little")
        raw = stream.read(size)
    try:
        return json.loads(raw), len(head) + size
    except ValueError:
        raise PartialSumsError(f"{path.name}: its index is unreadable (truncated?)") from None


def _check_splittable(cube) -> None:
    if cube.interpolation not in SPLITTABLE_INTERPOLATIONS:
        raise PartialSumsError(f"cube_build interpolation {cube.interpolation!r} cannot be split "
                               "by exposure (coord_system=internal_cal)")


def _cube_name(cube) -> str:
    """build_ifucube's output name; the suffix comes first (it may trim the base name)."""
    suffix = cube.define_cubename_suffix()
    return cube.output_name_base + suffix


@contextlib.contextmanager
def _patched(owner, name: str, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def is_partial(path: Path | str) -> bool:
    return os.fspath(path).endswith(PARTIAL_SUFFIX)
