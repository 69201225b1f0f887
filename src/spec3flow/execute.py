"""Run one calwebb_spec3 step file to file, as Spec3Pipeline runs it in memory.

Each Snakemake job calls :func:`run_step`.  The step instances come from a real
``Spec3Pipeline`` built with the same configuration layers ``strun calwebb_spec3``
applies (CRDS ``pars-spec3pipeline``, then the user's step parameters), and set up
with the pipeline's own internal defaults, so a step run here is the step the
monolithic pipeline would have run.  Outputs are written to a temporary directory
beside their destination and moved into place only when every one of them exists:
a failed job leaves no half-written product.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("spec3flow.execute")

ASN_EXPTYPES = ["science", "background"]


class StepError(RuntimeError):
    """A step did not produce what the plan declared."""


# ----------------------------------------------------------------- pipeline setup
def crds_step_pars(asn_path: Path, use_step_pars: bool = True) -> dict:
    """The configuration ``strun calwebb_spec3 <asn>`` takes from CRDS (pars-spec3pipeline
    and the steps' pars-* references), resolved once per association: the lookup costs
    seconds per process, the same for every job of the association."""
    from jwst.pipeline import Spec3Pipeline

    if not use_step_pars:
        return {}
    try:
        crds_parameters, observatory = Spec3Pipeline._get_crds_parameters(os.fspath(asn_path))
        config = Spec3Pipeline.get_config_from_reference(crds_parameters, crds_observatory=observatory)
    except (OSError, TypeError, ValueError):  # as stpipe's build_config: no CRDS config
        log.warning("Input dataset is not an instance of AbstractDataModel.")
        return {}
    return config.dict()


def build_pipeline(asn_path: Path, step_params: dict, use_step_pars: bool = True,
                   crds_pars: dict | None = None):
    """A Spec3Pipeline configured like ``strun calwebb_spec3 <asn>``: CRDS step parameters
    (``crds_pars`` when already resolved), then the user's ``steps`` on top."""
    from jwst.pipeline import Spec3Pipeline
    from stpipe import config_parser

    if crds_pars is None:
        crds_pars = crds_step_pars(asn_path, use_step_pars)
    config = config_parser.ConfigObj(crds_pars)
    if step_params:
        config_parser.merge_config(config, config_parser.ConfigObj({"steps": step_params}))
    config.pop("class", None)
    pipe = Spec3Pipeline.from_config_section(config, name=config.get("name"), config_file=None)
    pipe.save_results = True
    apply_spec3_defaults(pipe)
    return pipe


def apply_spec3_defaults(pipe) -> None:
    """The sub-step set-up at the top of ``Spec3Pipeline.process`` (jwst 3.0.0)."""
    from jwst.stpipe.utilities import invariant_filename

    pipe.master_background.suffix = "mbsub"
    pipe.outlier_detection.suffix = "crf"
    pipe.outlier_detection.save_results = pipe.save_results
    pipe.resample_spec.suffix = "s2d"
    pipe.resample_spec.save_results = pipe.save_results
    pipe.cube_build.suffix = "s3d"
    pipe.cube_build.save_results = pipe.save_results
    pipe.extract_1d.suffix = "x1d"
    pipe.extract_1d.save_results = pipe.save_results
    pipe.combine_1d.suffix = "c1d"
    pipe.combine_1d.save_results = pipe.save_results
    pipe.spectral_leak.suffix = "x1d"
    pipe.spectral_leak.save_results = pipe.save_results
    pipe.pixel_replace.suffix = "pixel_replace"
    pipe.pixel_replace.output_use_model = True
    pipe.adaptive_trace_model.output_use_model = True
    pipe.outlier_detection.save_model = invariant_filename(pipe.outlier_detection.save_model)
    pipe.pixel_replace.save_model = invariant_filename(pipe.pixel_replace.save_model)
    pipe.adaptive_trace_model.save_model = invariant_filename(pipe.adaptive_trace_model.save_model)


# ------------------------------------------------------------------ model loading
def open_association(asn_path: Path):
    """The pipeline's input container, with ASNTABLE stamped as the pipeline does."""
    from jwst.datamodels import ModelContainer

    models = ModelContainer(os.fspath(asn_path), asn_exptypes=ASN_EXPTYPES)
    for model in models:
        model.meta.asn.table_name = asn_path.name
    return models


class InputFiles(list):
    """Data input paths of a job, with the in-memory names the pipeline gives them."""

    def __init__(self, paths, names):
        super().__init__(paths)
        self.names = list(names)


def open_source(paths: list[Path], asn_path: Path):
    """Models from files written by an earlier job, as the pipeline held them in memory."""
    from jwst.datamodels import ModelContainer, SourceModelContainer
    from stdatamodels.jwst import datamodels

    if len(paths) == 1:
        model = datamodels.open(os.fspath(paths[0]))
        if isinstance(model, datamodels.MultiExposureModel):
            return _stamp(SourceModelContainer(model), asn_path)
        if not isinstance(model, (datamodels.ImageModel, datamodels.CubeModel,
                                  datamodels.IFUImageModel)):
            return model  # s2d or x1d: the step takes the model itself
        models = [model]
    else:
        models = [datamodels.open(os.fspath(p)) for p in paths]
    for model, name in zip(models, getattr(paths, "names", [])):
        model.meta.filename = name
    container = ModelContainer(models)
    # A container that came from the association carries its table (and asn_id,
    # which names per-exposure products such as ..._o003_crf.fits).
    container.asn_table = json.loads(asn_path.read_text())
    container.asn_table_name = asn_path.name
    return _stamp(container, asn_path)


def _stamp(container, asn_path: Path):
    for model in container:
        model.meta.asn.table_name = asn_path.name
    return container


def has_background_members(asn_path: Path) -> bool:
    table = json.loads(asn_path.read_text())
    return any(m["exptype"].lower() == "background"
               for p in table["products"] for m in p["members"])


def load_inputs(pipe, asn: Path, inputs: list[Path], run_before: tuple[str, ...]):
    """The models this step receives in Spec3Pipeline, rebuilt from files.

    With no data inputs the association itself is the input; a skipped
    master_background still runs (as skipped) and the background members are split
    off, exactly as the pipeline does.  Steps in ``run_before`` run first.
    """
    from jwst.master_background.master_background_step import split_container

    run_before = list(run_before)
    if inputs:
        models = open_source(inputs, asn)
    else:
        models = open_association(asn)
        if has_background_members(asn):
            if "master_background" in run_before:
                run_before.remove("master_background")
                pipe.master_background.run(models)
            science, background = split_container(models)
            background.close()
            science.asn_table = models.asn_table
            science.asn_table_name = models.asn_table_name
            models = science
    for step in run_before:
        models = getattr(pipe, step).run(models)
    return models


# ------------------------------------------------------------------------ running
class StagedOutputs:
    """Write into a hidden temp dir beside the outputs; move into place on success."""

    def __init__(self, outputs: list[Path]):
        self.outputs = [Path(p) for p in outputs]
        self.out_dir = self.outputs[0].parent
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".spec3flow-", dir=self.out_dir))

    def commit(self) -> None:
        missing = [p.name for p in self.outputs if not (self.tmp / p.name).is_file()]
        if missing:
            made = sorted(f.name for f in self.tmp.iterdir())
            raise StepError(f"step did not write {', '.join(missing)} (it wrote: {', '.join(made) or 'nothing'})")
        for path in self.outputs:
            sidecar = self.tmp / f"{path.name}.prov.json"
            if sidecar.exists():
                os.replace(sidecar, f"{path}.prov.json")
            os.replace(self.tmp / path.name, path)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_step(step: str, asn: Path, inputs: list[Path], outputs: list[Path], *,
             output_stem: str | None = None, step_params: dict | None = None,
             use_step_pars: bool = True, run_before: tuple[str, ...] = (),
             input_names: list[str] | None = None, pars_file: Path | None = None,
             median_in_slabs: bool = True) -> None:
    """Run ``step`` of calwebb_spec3 on ``inputs``; write exactly ``outputs``.

    ``run_before`` names steps that the configuration skips between the previous
    active step and this one: they are run (as skipped) first so the products carry
    the same S_* status keywords as the monolithic pipeline's. ``median_in_slabs``:
    IFU outlier_detection's median filter runs in row slabs (spec3flow.median_slabs).
    """
    crds_pars = json.loads(Path(pars_file).read_text()) if pars_file else None
    pipe = build_pipeline(asn, step_params or {}, use_step_pars, crds_pars)
    staged = StagedOutputs(outputs)
    pipe.output_dir = os.fspath(staged.tmp)
    if output_stem:
        pipe.output_file = output_stem
    from spec3flow import median_slabs, provenance
    from spec3flow.cube_partials import is_partial

    started = provenance.now()
    in_slabs = median_in_slabs and step == "outlier_detection"
    try:
        inputs = [Path(p) for p in inputs]
        with median_slabs.ifu_outlier_median_in_slabs() if in_slabs else contextlib.nullcontext():
            RUNNERS[step](pipe, asn, InputFiles(inputs, input_names or []), staged, run_before)
        record = provenance.job_record(step, [*run_before, step], pipe, inputs, asn, started)
        provenance.write_sidecars(record, inputs, [staged.tmp / p.name for p in staged.outputs
                                                   if not is_partial(p)])  # temp sums: none
        staged.commit()
    finally:
        staged.cleanup()


def _save_each(models, paths: list[Path], staged: StagedOutputs) -> None:
    """Save intermediates under the planned names, keeping in-memory file names."""
    from jwst.datamodels import SourceModelContainer

    if isinstance(models, SourceModelContainer):
        (path,) = paths
        models.multiexposure.save(os.fspath(staged.tmp / path.name))
        return
    for model, path in zip(models, paths, strict=True):
        filename = model.meta.filename
        model.save(os.fspath(staged.tmp / path.name))
        model.meta.filename = filename


def run_assign_mtwcs(pipe, asn, inputs, staged, run_before):
    """Moving targets: assign_mtwcs on every member (in place, as Spec3Pipeline calls it),
    then the members and an association of the same name pointing at them."""
    models = open_association(asn)
    pipe.assign_mtwcs.run(models)
    *member_paths, derived_asn = staged.outputs
    by_name = {p.name: p for p in member_paths}
    for model in models:
        model.save(os.fspath(staged.tmp / by_name[model.meta.filename].name))
    table = json.loads(asn.read_text())
    for product in table["products"]:
        for member in product["members"]:
            member["expname"] = os.path.basename(member["expname"])
    (staged.tmp / derived_asn.name).write_text(json.dumps(table, indent=4))


def run_master_background(pipe, asn, inputs, staged, run_before):
    from jwst.master_background.master_background_step import split_container
    from jwst.stpipe import query_step_status

    input_models = open_association(asn)
    source_models = pipe.master_background.run(input_models)
    source_models.asn_table = input_models.asn_table
    if query_step_status(source_models, "master_background") == "SKIPPED":
        source_models, bkg_models = split_container(input_models)
        bkg_models.close()
    _save_each(source_models, staged.outputs, staged)


def run_exp_to_source(pipe, asn, inputs, staged, run_before):
    """jwst's multislit_to_container, one exposure then one source in memory at a time
    (see spec3flow.streaming): the products are those of the all-in-memory function."""
    from jwst.associations.lib.rules_level3_base import format_product

    from spec3flow import streaming

    exp_types = []  # the first exposure's, as the pipeline reads it off models[0]
    template = json.loads(asn.read_text())["products"][0]["name"]
    sources = streaming.stream_sources(streaming.exposures(pipe, asn, inputs, run_before),
                                       staged.tmp / ".exp_to_source",
                                       on_first=lambda model: exp_types.append(model.meta.exposure.type))
    for source_id, result in sources:
        exp_type = exp_types[0]
        if exp_type == "NRS_FIXEDSLIT":
            stem = format_product(template, source_id=f"s{source_id:>09s}",
                                  slit_name=pipe._create_nrsfs_slit_name(result))
        elif exp_type == "NRS_MSASPEC":
            stem = format_product(template, source_id=pipe._create_nrsmos_source_id(result))
        else:
            stem = format_product(template, source_id=f"s{source_id:>09s}")
        if exp_type in WFSS_TYPES:
            # The pipeline saves no per-source cal for WFSS: keep it as an intermediate.
            srcid = f"s{source_id:>09s}"
            (path,) = [p for p in staged.outputs if p.name.endswith(f"_{srcid}_cal.fits")]
            result.multiexposure.save(os.fspath(staged.tmp / path.name))
            continue
        pipe.output_file = stem
        pipe.save_model(result, "cal")


def _run_source_step(name, pipe, asn, inputs, staged, run_before, **settings):
    models = load_inputs(pipe, asn, inputs, run_before)
    step = getattr(pipe, name)
    for key, value in settings.items():
        setattr(step, key, value)
    result = step.run(models)
    if name in ("adaptive_trace_model", "pixel_replace") or (
        name == "outlier_detection" and not step.save_results
    ):
        _save_each(result, staged.outputs, staged)
    return result


def run_outlier_detection(pipe, asn, inputs, staged, run_before):
    mode = "ifu" if _product_exp_type(asn, inputs) in IFU_TYPES else "spec"
    _run_source_step("outlier_detection", pipe, asn, inputs, staged, run_before, mode=mode)


def run_adaptive_trace_model(pipe, asn, inputs, staged, run_before):
    _run_source_step("adaptive_trace_model", pipe, asn, inputs, staged, run_before,
                     save_results=False)


def run_pixel_replace(pipe, asn, inputs, staged, run_before):
    _run_source_step("pixel_replace", pipe, asn, inputs, staged, run_before, save_results=False)


def run_resample_spec(pipe, asn, inputs, staged, run_before):
    _run_source_step("resample_spec", pipe, asn, inputs, staged, run_before)


def run_extract_1d(pipe, asn, inputs, staged, run_before):
    if _exp_type(inputs, asn) == "NIS_SOSS":
        # Spec3Pipeline keeps SOSS spectra in memory and saves photom's result instead.
        try:
            result = _run_source_step("extract_1d", pipe, asn, inputs, staged, run_before,
                                      save_results=False)
        except ValueError as exc:
            if "PWC position" not in str(exc):
                raise
            raise StepError(f"{_first_science_name(asn, inputs)}: its pupil wheel position (PWCPOS) "
                            f"is outside the PASTASOSS trace model ({exc})") from None
        if result is None or result.meta.cal_step.extract_1d != "COMPLETE":
            raise StepError("extract_1d did not complete for this SOSS exposure (as for F277W or "
                            "full-frame data): Spec3Pipeline makes no x1d or c1d either")
        result.save(os.fspath(staged.tmp / staged.outputs[0].name))
        return
    if _exp_type(inputs) in IFU_TYPES:
        return run_extract_1d_ifu(pipe, asn, inputs, staged, run_before)
    if _exp_type(inputs) in WFSS_TYPES:
        # Spec3Pipeline keeps WFSS spectra in memory for the gather step.
        result = _run_source_step("extract_1d", pipe, asn, inputs, staged, run_before,
                                  save_results=False)
        result.save(os.fspath(staged.tmp / staged.outputs[0].name))
        return
    _run_source_step("extract_1d", pipe, asn, inputs, staged, run_before)


def run_photom(pipe, asn, inputs, staged, run_before):
    """SOSS: photom on the extracted spectra, saved with suffix x1d as Spec3Pipeline does."""
    from stdatamodels.jwst import datamodels

    pipe.photom.save_results = pipe.save_results
    pipe.photom.suffix = "x1d"
    with datamodels.open(os.fspath(inputs[0])) as spectra:
        pipe.photom.run(spectra)


def run_combine_1d(pipe, asn, inputs, staged, run_before):
    if _exp_type(inputs) == "NIS_SOSS":
        from stdatamodels.jwst import datamodels

        with datamodels.open(os.fspath(inputs[0])) as x1d:  # photom's result, as in memory
            pipe.combine_1d.run(x1d)
        return
    if _exp_type(inputs) not in WFSS_TYPES:
        _run_source_step("combine_1d", pipe, asn, inputs, staged, run_before)
        return
    from stdatamodels.jwst import datamodels

    output = staged.tmp / staged.outputs[0].name
    with datamodels.open(os.fspath(inputs[0])) as x1d:
        if x1d.meta.cal_step.extract_1d != "COMPLETE":
            return _write_placeholder(output, "extract_1d did not complete")
        pipe.combine_1d.save_results = False
        comb = pipe.combine_1d.run(x1d)
        if comb is None or comb.meta.cal_step.combine_1d != "COMPLETE":
            return _write_placeholder(output, "combine_1d did not complete")
        # What Spec3Pipeline adds to WFSS combined spectra.
        comb.spec[0].source_ra = x1d.spec[0].spec_table["SOURCE_RA"][0]
        comb.spec[0].source_dec = x1d.spec[0].spec_table["SOURCE_DEC"][0]
        comb.save(os.fspath(output))


def run_wfss_gather(pipe, asn, inputs, staged, run_before):
    """The end of Spec3Pipeline for WFSS: every source's spectra in one x1d and one c1d."""
    from jwst.datamodels.utils.wfss_multispec import make_wfss_multicombined, make_wfss_multiexposure
    from stdatamodels.jwst import datamodels

    half = len(inputs) // 2
    x1ds = [datamodels.open(os.fspath(p)) for p in inputs[:half]]
    combs = [datamodels.open(os.fspath(p)) for p in inputs[half:] if not _is_placeholder(p)]
    x1d_path, c1d_path = staged.outputs
    x1d_output = make_wfss_multiexposure(x1ds)
    pipe._populate_wfss_sregion(x1d_output, open_association(asn))
    x1d_output.save(os.fspath(staged.tmp / x1d_path.name))
    make_wfss_multicombined(combs).save(os.fspath(staged.tmp / c1d_path.name))


WFSS_TYPES = ("NIS_WFSS", "NRC_WFSS", "MIR_WFSS")
IFU_TYPES = ("NRS_IFU", "MIR_MRS")
_PLACEHOLDER_KEY = "S3FSKIP"


# ------------------------------------------------------------------------------ IFU
def _product_exp_type(asn: Path, inputs) -> str | None:
    """EXP_TYPE of a job's data: its first input, else the association's first member."""
    if inputs:
        return _exp_type(inputs)
    table = json.loads(Path(asn).read_text())
    member = table["products"][0]["members"][0]["expname"]
    return _exp_type([Path(asn).parent / member])


def _check_cubepar(pipe, models) -> None:
    """cube_build cannot run without CUBEPAR: say so naming the exposure and the context."""
    model = models[0]
    name = model.meta.filename
    try:
        ref = pipe.cube_build.get_reference_file(model, "cubepar")
    except Exception as exc:  # CRDS lookup errors have no common base class
        raise StepError(f"{name}: no CUBEPAR reference file for {model.meta.exposure.type} "
                        f"({_crds_context()}): {exc}") from None
    if not ref or ref == "N/A":
        raise StepError(f"{name}: no CUBEPAR reference file for {model.meta.exposure.type} "
                        f"({_crds_context()} selects N/A); cube_build needs one")


def _crds_context() -> str:
    context = os.environ.get("CRDS_CONTEXT")
    if context:
        return f"CRDS context {context}"
    try:
        from jwst.stpipe import crds_client

        return f"CRDS context {crds_client.get_context_used('jwst')}"
    except Exception:
        return f"CRDS_PATH {os.environ.get('CRDS_PATH', '?')}"


def run_cube_build(pipe, asn, inputs, staged, run_before):
    """cube_build on the association's exposures; the step saves every cube it builds
    (``<product>_<band>_s3d.fits``), named by cube_build itself. Given the exposures'
    partial sums (cube_build_partial jobs), it adds those instead of computing them."""
    from spec3flow import cube_partials

    partials = [p for p in inputs if cube_partials.is_partial(p)]
    data = InputFiles([p for p in inputs if not cube_partials.is_partial(p)], inputs.names)
    models = load_inputs(pipe, asn, data, run_before)
    _check_cubepar(pipe, models)
    if not partials:
        pipe.cube_build.run(models)
        return
    try:
        with cube_partials.gather_mode(cube_partials.PartialSumsReader(partials)):
            pipe.cube_build.run(models)
    except cube_partials.PartialSumsError as exc:
        raise StepError(str(exc)) from None


def run_cube_build_partial(pipe, asn, inputs, staged, run_before):
    """One exposure's share of cube_build (its arrays for every cube it feeds), saved for
    the cube_build job of the same cubes: see spec3flow.cube_partials."""
    from spec3flow import cube_partials

    models = load_inputs(pipe, asn, inputs, run_before)
    _check_cubepar(pipe, models)
    (output,) = staged.outputs
    exposure = cube_partials.exposure_of(output)
    names = [model.meta.filename for model in models]
    if exposure not in names:
        raise StepError(f"{output.name}: {exposure} is not among this job's exposures "
                        f"({', '.join(names)})")
    sums = cube_partials.PartialSums(exposure)
    pipe.cube_build.save_results = False
    try:
        with cube_partials.partial_mode(exposure, sums):
            pipe.cube_build.run(models)
    except cube_partials.AllCubesDone:
        pass
    except cube_partials.PartialSumsError as exc:
        raise StepError(str(exc)) from None
    else:
        raise StepError(f"{exposure}: cube_build built no cube")
    if not sums.entries:
        raise StepError(f"{exposure}: cube_build maps it into none of the cubes")
    sums.save(staged.tmp / output.name)


def _open_x1d_or_cubes(inputs, container: bool):
    """Files of cubes or spectra as Spec3Pipeline hands them on: cube_build returns a
    ModelContainer; extract_1d returns a container only for more than one spectrum."""
    from jwst.datamodels import ModelContainer
    from stdatamodels.jwst import datamodels

    models = [datamodels.open(os.fspath(p)) for p in inputs]
    for model, path in zip(models, inputs):
        if isinstance(model, datamodels.IFUCubeModel):
            _restore_hdrtab(model, path)
    if len(models) == 1 and not container:
        return models[0]
    result = ModelContainer()
    for model in models:
        result.append(model)
    return result


def _restore_hdrtab(model, path) -> None:
    """The blended-metadata table (HDRTAB) as cube_build's in-memory cubes hold it: a
    schema entry model_blender adds, which a cube read back from its file lacks."""
    import numpy as np
    from astropy.io import fits
    from jwst.model_blender._tablebuilder import table_to_schema
    from stdatamodels import fits_support

    with fits.open(os.fspath(path)) as hdul:
        if "HDRTAB" not in hdul:
            return
        data = hdul["HDRTAB"].data
        columns = {}
        for name in data.dtype.names:
            column = np.asarray(data[name])  # FITS logical columns come back as bool here
            if column.dtype.kind == "S":
                column = column.astype(f"U{column.dtype.itemsize}")
            columns[name] = column.astype(column.dtype.newbyteorder("="))
        table = np.empty(len(data), dtype=[(n, c.dtype) for n, c in columns.items()])
        for name, column in columns.items():
            table[name] = column
    schema = table_to_schema(table)
    model.add_schema_entry("hdrtab", schema)
    model.hdrtab = fits_support.from_fits_hdu(fits.BinTableHDU.from_columns(table), schema)


def _ifu_extract_settings(pipe, exp_type: str) -> None:
    """Spec3Pipeline's settings once cube_build completed (jwst 3.0.0)."""
    pipe.extract_1d.search_output_file = False
    if exp_type == "MIR_MRS" and not pipe.spectral_leak.skip:
        pipe.extract_1d.save_results = False
        pipe.spectral_leak.suffix = "x1d"
        pipe.spectral_leak.search_output_file = False
        pipe.spectral_leak.save_results = pipe.save_results


def run_extract_1d_ifu(pipe, asn, inputs, staged, run_before):
    """extract_1d on the container of cubes; for MIR_MRS with spectral_leak on, the
    spectra are kept (as intermediates here) for spectral_leak, which saves them."""
    exp_type = _exp_type(inputs)
    _ifu_extract_settings(pipe, exp_type)
    models = _open_x1d_or_cubes(inputs, container=True)
    for step in run_before:
        models = getattr(pipe, step).run(models)
    result = pipe.extract_1d.run(models)
    if not pipe.extract_1d.save_results:
        from jwst.datamodels import ModelContainer

        spectra = list(result) if isinstance(result, ModelContainer) else [result]
        _save_each(spectra, staged.outputs, staged)


def run_spectral_leak(pipe, asn, inputs, staged, run_before):
    """MIR_MRS: spectral_leak on extract_1d's spectra (or, with extract_1d skipped, on the
    cubes); it writes the final x1d files, as in Spec3Pipeline."""
    _ifu_extract_settings(pipe, "MIR_MRS")
    cubes = "extract_1d" in run_before  # extract_1d skipped: the cube container goes on
    models = _open_x1d_or_cubes(inputs, container=cubes)
    for step in run_before:
        models = getattr(pipe, step).run(models)
    pipe.spectral_leak.run(models)


def _exp_type(inputs, asn: Path | None = None) -> str | None:
    """EXP_TYPE of a job's first data input, or of its association's first science member."""
    from astropy.io import fits

    try:
        if not inputs and asn is not None:
            table = json.loads(Path(asn).read_text())
            member = next(m for m in table["products"][0]["members"] if m["exptype"] == "science")
            return str(fits.getval(os.fspath(Path(asn).parent / member["expname"]), "EXP_TYPE")).upper()
        return str(fits.getval(os.fspath(inputs[0]), "EXP_TYPE")).upper()
    except (IndexError, KeyError, OSError, StopIteration, ValueError):
        return None


def _first_science_name(asn: Path, inputs) -> str:
    if inputs:
        return Path(inputs[0]).name
    table = json.loads(Path(asn).read_text())
    member = next(m for m in table["products"][0]["members"] if m["exptype"] == "science")
    return Path(member["expname"]).name


def _write_placeholder(path: Path, reason: str) -> None:
    """A declared output for a source Spec3Pipeline leaves out (it says why)."""
    from astropy.io import fits

    header = fits.Header()
    header[_PLACEHOLDER_KEY] = (True, "spec3flow: no product for this source")
    header["S3FWHY"] = reason[:60]
    fits.PrimaryHDU(header=header).writeto(path)
    log.warning("%s: %s; the source is left out as Spec3Pipeline leaves it out", path.name, reason)


def _is_placeholder(path: Path) -> bool:
    from astropy.io import fits

    return bool(fits.getheader(os.fspath(path)).get(_PLACEHOLDER_KEY, False))


RUNNERS = {
    "photom": run_photom,
    "assign_mtwcs": run_assign_mtwcs,
    "master_background": run_master_background,
    "exp_to_source": run_exp_to_source,
    "outlier_detection": run_outlier_detection,
    "adaptive_trace_model": run_adaptive_trace_model,
    "pixel_replace": run_pixel_replace,
    "resample_spec": run_resample_spec,
    "extract_1d": run_extract_1d,
    "combine_1d": run_combine_1d,
    "wfss_gather": run_wfss_gather,
    "cube_build": run_cube_build,
    "cube_build_partial": run_cube_build_partial,
    "spectral_leak": run_spectral_leak,
}


# ---------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None, allow_remote: bool = True) -> int:
    """Run one step job; through the warm server when one is running (see spec3flow.warm)."""
    if allow_remote:
        from spec3flow import warm

        code = warm.run_remote(list(sys.argv[1:] if argv is None else argv))
        if code is not None:
            return code
    parser = argparse.ArgumentParser(prog="python -m spec3flow.execute", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(RUNNERS) + ["crds_step_pars"])
    parser.add_argument("--asn", type=Path, required=True, help="Level 3 association of the product")
    parser.add_argument("--inputs", type=Path, nargs="*", default=[])
    parser.add_argument("--outputs", type=Path, nargs="+", required=True)
    parser.add_argument("--output-stem", default=None, help="product name stem for saved outputs")
    parser.add_argument("--params", default="{}", help="JSON of strun-style step parameters")
    parser.add_argument("--no-step-pars", action="store_true", help="ignore CRDS pars-* references")
    parser.add_argument("--run-before", nargs="*", default=[])
    parser.add_argument("--pars-file", type=Path, default=None,
                        help="CRDS step parameters resolved for the association (crds_step_pars)")
    parser.add_argument("--input-names", nargs="*", default=[],
                        help="in-memory file names of the per-exposure inputs")
    parser.add_argument("--whole-frame-median", action="store_true",
                        help="IFU outlier_detection: stcal's median filter on the whole frame at once "
                             "(default: in row slabs, the same values faster)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    if args.step == "crds_step_pars":
        pars = crds_step_pars(args.asn, not args.no_step_pars)
        tmp = args.outputs[0].with_suffix(".tmp")
        tmp.write_text(json.dumps(pars, indent=1))
        os.replace(tmp, args.outputs[0])
        return 0
    try:
        run_step(args.step, args.asn, args.inputs, args.outputs, output_stem=args.output_stem,
                 step_params=json.loads(args.params), use_step_pars=not args.no_step_pars,
                 run_before=tuple(args.run_before), input_names=args.input_names,
                 pars_file=args.pars_file, median_in_slabs=not args.whole_frame_median)
    except StepError as exc:
        log.error("%s: %s", args.step, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
