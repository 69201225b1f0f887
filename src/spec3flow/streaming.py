"""exp_to_source with one exposure in memory at a time.

jwst's ``multislit_to_container`` takes every exposure of the association at once and
returns every source at once: its peak memory grows with the program (GBs for a large
NIRSpec MOS program).  Here jwst's own ``exp_to_source`` runs on one exposure at a time;
each source's share of that exposure goes to a scratch file, and the sources are then
assembled and handed out one by one, in jwst's order, with the same content.
"""

from __future__ import annotations

import copy
import itertools
import os
import pickle
from pathlib import Path


def exposures(pipe, asn: Path, inputs, run_before):
    """Each science exposure of the job alone, in a one-model container, as ``load_inputs``
    gives it in the full container: from the association (background members split off,
    a skipped master_background run as skipped), or from an earlier job's files."""
    from jwst.datamodels import ModelContainer
    from stdatamodels.jwst import datamodels

    from spec3flow.execute import ASN_EXPTYPES, _stamp, has_background_members

    run_before = list(run_before)
    if inputs:
        names = list(getattr(inputs, "names", []))
        table = ModelContainer.read_asn(asn)
        for i, path in enumerate(inputs):
            model = datamodels.open(os.fspath(path))
            if i < len(names):
                model.meta.filename = names[i]
            models = ModelContainer([model])
            models.asn_table = table  # as open_source: the association's table
            models.asn_table_name = asn.name
            yield _run_steps(pipe, _stamp(models, asn), run_before)
            del model, models  # let the exposure go before the next one is opened
        return
    background = has_background_members(asn)
    skipped_mb = background and "master_background" in run_before
    if skipped_mb:
        run_before.remove("master_background")
    table = ModelContainer.read_asn(asn)
    for member in table["products"][0]["members"]:
        if background and member["exptype"].lower() == "background":
            continue  # load_inputs splits these off before any step sees them
        one = copy.deepcopy(table)
        one["products"][0]["members"] = [member]
        models = ModelContainer(asn_exptypes=ASN_EXPTYPES)
        models.asn_file_path = os.fspath(asn)  # member paths resolve beside the asn
        models.from_asn(one)  # jwst's own loading: exptype, pool and member fields
        if not len(models):
            continue  # an exptype the pipeline does not load
        _stamp(models, asn)
        if skipped_mb:
            pipe.master_background.run(models)
        yield _run_steps(pipe, models, run_before)
        del models  # let the exposure go before the next one is opened


def _run_steps(pipe, models, steps):
    for step in steps:
        models = getattr(pipe, step).run(models)
    return models


def _source_key(slit) -> str:
    """The key jwst's exp_to_source groups a slit under (source_name, else source_id)."""
    if slit.source_name is None or str(slit.source_name).strip() == "":
        return str(slit.source_id)
    return str(slit.source_name)


def _slit_exp_types(exposure) -> dict[str, str]:
    """Per source key, the last slit-level EXP_TYPE in this exposure: jwst copies each
    slit's own type onto its source's top-level meta, so the last one seen wins."""
    types = {}
    for slit in exposure.slits:
        exp_type = getattr(getattr(slit.meta, "exposure", None), "type", None)
        if exp_type is not None:
            types[_source_key(slit)] = exp_type
    return types


def stream_sources(exposure_containers, scratch: Path, on_first=None):
    """Yield ``(source key, SourceModelContainer)`` as ``multislit_to_container`` returns
    them, holding one exposure, then one source, in memory at a time.

    Each exposure goes through jwst's ``exp_to_source`` alone.  A source's first part keeps
    its top-level meta (jwst sets it from the source's first exposure); later parts add
    only their exposure entries, plus the slit EXP_TYPE jwst would copy to the top.
    Parts are pickled model trees in ``scratch``: exact, and without the schema validation
    that makes a datamodel save/open cost ~0.5 s per part.  ``on_first`` is called with
    the first exposure before it is reorganised.
    """
    from jwst.datamodels import SourceModelContainer
    from stdatamodels.jwst.datamodels import MultiExposureModel

    scratch.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[Path]] = {}  # insertion order = jwst's order of first sight
    top_exp_type: dict[str, str] = {}
    numbers = itertools.count()
    for models in exposure_containers:
        for exposure in models:
            if on_first is not None:
                on_first(exposure)
                on_first = None
            _split_exposure(exposure, scratch / f"part{{:07d}}.pkl", numbers, parts, top_exp_type)
        models.close()
        models = exposure = None  # hold no exposure while the next one loads
    for key, paths in parts.items():
        result = MultiExposureModel()
        result.instance.update(_load(paths[0]))
        for path in paths[1:]:
            result.instance["exposures"].extend(_load(path)["exposures"])
        if key in top_exp_type:
            result.meta.exposure.type = top_exp_type[key]
        yield key, SourceModelContainer(result)
        result.close()


def _split_exposure(exposure, pattern: Path, numbers, parts: dict, top_exp_type: dict) -> None:
    """jwst's exp_to_source on one exposure; each source's part is pickled to ``scratch``."""
    from jwst.exp_to_source import exp_to_source

    slit_types = _slit_exp_types(exposure)
    for key, part in exp_to_source([exposure]).items():  # closes the exposure
        if key in parts and key in slit_types:
            top_exp_type[key] = slit_types[key]
        path = Path(os.fspath(pattern).format(next(numbers)))
        with open(path, "wb") as f:
            pickle.dump(part.instance, f, protocol=pickle.HIGHEST_PROTOCOL)
        part.close()
        parts.setdefault(key, []).append(path)


def _load(path: Path) -> dict:
    with open(path, "rb") as f:
        tree = pickle.load(f)
    path.unlink()
    return tree
