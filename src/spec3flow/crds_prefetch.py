"""Resolve and fetch every CRDS file a run needs, before any step job runs.

Cluster compute nodes often have no network. With ``crds.prefetch: true`` one local job
(rule ``crds_prefetch``, on the submit node) computes the best references of every
association member for the reference types of the steps that association runs, plus the
``pars-*`` step-parameter types, with CRDS's own ``getrecommendations`` over the headers
as jwst's steps see them (``model.get_crds_parameters()``; for ``pars-*`` the parameters
stpipe takes from the association, ``Spec3Pipeline._get_crds_parameters``), downloads
the context's mappings and the selected files into the cache (``CRDS_PATH``), checks
each is there, and writes a manifest. The step jobs then run with ``CRDS_MODE=local``,
``CRDS_READONLY_CACHE=1`` and the context pinned (see
:func:`spec3flow.workflow_support.configure_crds`), so they never touch the network and
never write to the cache.

This job runs with the CRDS environment the user had before the workflow switched the
jobs to offline mode (saved in ``SPEC3FLOW_CRDS_ONLINE_ENV``), except ``CRDS_CONTEXT``,
which is the context the jobs will use.

Manifest (``results/crds_references.json``)::

    {"context": "jwst_1413.pmap", "crds_path": "...", "mode": "remote",
     "files": {"<member or asn path>": {"<reftype>": "<reference basename> | N/A"}},
     "associations": {"<asn>": {"steps": [...], "reftypes": [...], "members": [...]}},
     "references": ["<every distinct reference file>", ...]}

CLI: ``python -m spec3flow.crds_prefetch --output M.json --steps '{"<asn>": [steps]}' ASN...``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("spec3flow.crds_prefetch")

#: Environment variable holding the user's CRDS settings (JSON) before the workflow set
#: the offline ones for the jobs; only the prefetch job restores them.
ONLINE_ENV = "SPEC3FLOW_CRDS_ONLINE_ENV"
CRDS_VARS = ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_MODE", "CRDS_CONTEXT", "CRDS_READONLY_CACHE")
NOT_APPLICABLE = "N/A"


def restore_online_env(env=os.environ) -> None:
    """Put back the user's CRDS settings (keeping the pinned ``CRDS_CONTEXT``)."""
    saved = env.get(ONLINE_ENV)
    if not saved:
        return
    context = env.get("CRDS_CONTEXT")
    for key, value in json.loads(saved).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if context:
        env["CRDS_CONTEXT"] = context


def step_reftypes(steps) -> list[str]:
    """Reference types the given calwebb_spec3 steps look up (their classes'
    ``reference_file_types``; exp_to_source and the WFSS gather are not Steps)."""
    from jwst.pipeline import Spec3Pipeline

    types: set[str] = set()
    for step in steps:
        cls = Spec3Pipeline.step_defs.get(step)
        if cls is not None:
            types.update(t.lower() for t in cls.reference_file_types)
    return sorted(types)


def pars_reftypes() -> list[str]:
    """``pars-<class>`` types stpipe looks up for Spec3Pipeline and each of its steps."""
    from jwst.pipeline import Spec3Pipeline

    classes = [Spec3Pipeline, *Spec3Pipeline.step_defs.values()]
    return sorted({f"pars-{cls.__name__.lower()}" for cls in classes})


def asn_members(asn_path: Path) -> list[Path]:
    table = json.loads(asn_path.read_text())
    members = []
    for product in table["products"]:
        for member in product["members"]:
            path = Path(os.path.normpath(asn_path.parent / member["expname"]))
            if path not in members:
                members.append(path)
    return members


def _simplify(value: str) -> str:
    # crds answers "NOT FOUND n/a" for types the rules mark N/A (stpipe's crds_client
    # turns it into "N/A"); other "NOT FOUND ..." texts are lookup errors, kept verbatim.
    if value.startswith("NOT FOUND") and "n/a" in value.lower():
        return NOT_APPLICABLE
    return value


def recommendations(parameters: dict, reftypes: list[str], context: str) -> dict[str, str]:
    import crds

    if not reftypes:
        return {}
    best = crds.getrecommendations(parameters, reftypes=reftypes, context=context,
                                   observatory="jwst")
    return {rt: _simplify(str(best.get(rt, "NOT FOUND (not returned)"))) for rt in reftypes}


def is_reference(value: str) -> bool:
    return value != NOT_APPLICABLE and not value.startswith("NOT FOUND")


def prefetch(asn_steps: dict[str, list[str]], context: str | None = None) -> dict:
    """Best references of every member (and pars of every association), fetched."""
    from crds.client import api
    from crds.core import config as crds_config
    from crds.core import heavy_client
    from jwst.pipeline import Spec3Pipeline
    from stdatamodels.jwst import datamodels

    mode, final_context = heavy_client.get_processing_mode("jwst", context)
    log.info("CRDS mode %s, context %s, CRDS_PATH %s", mode, final_context,
             os.environ.get("CRDS_PATH", "(default)"))
    if mode != "local":
        api.dump_mappings(final_context)  # the rules the offline jobs select with
    pars_types = pars_reftypes()
    files: dict[str, dict[str, str]] = {}
    associations: dict[str, dict] = {}
    for asn, steps in sorted(asn_steps.items()):
        asn_path = Path(asn)
        reftypes = step_reftypes(steps)
        members = asn_members(asn_path)
        associations[asn_path.name] = {"steps": sorted(steps), "reftypes": reftypes,
                                       "members": [str(m) for m in members]}
        # pars-*: the parameters stpipe derives from the association (its first member)
        parameters, _observatory = Spec3Pipeline._get_crds_parameters(os.fspath(asn_path))
        files[str(asn_path)] = recommendations(parameters, pars_types, final_context)
        for member in members:
            if str(member) in files:
                continue
            with datamodels.open(os.fspath(member)) as model:
                parameters = model.get_crds_parameters()
            files[str(member)] = recommendations(parameters, reftypes, final_context)
    references = sorted({v for refs in files.values() for v in refs.values() if is_reference(v)})
    missing = [r for r in references if not os.path.exists(crds_config.locate_file(r, "jwst"))]
    if missing:
        if mode == "local":
            raise SystemExit(f"CRDS_MODE=local and not in the cache ({os.environ.get('CRDS_PATH')}): "
                             + ", ".join(missing))
        log.info("downloading %d reference file(s): %s", len(missing), ", ".join(missing))
        api.dump_references(final_context, baserefs=missing)
    still = [r for r in references if not os.path.exists(crds_config.locate_file(r, "jwst"))]
    if still:
        raise SystemExit("CRDS files still missing after download: " + ", ".join(still))
    errors = sorted({v for refs in files.values() for v in refs.values()
                     if v.startswith("NOT FOUND")})
    for error in errors:
        log.warning("CRDS lookup error (a step asking for it will fail): %s", error)
    return {"context": final_context, "mode": mode,
            "crds_path": os.environ.get("CRDS_PATH"), "files": files,
            "associations": associations, "references": references}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spec3flow.crds_prefetch", description=__doc__.split("\n")[0])
    p.add_argument("asn", nargs="+", type=Path, help="Level 3 associations of the run")
    p.add_argument("--steps", required=True,
                   help="JSON: association path -> the steps the run runs for it")
    p.add_argument("--output", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    restore_online_env()
    steps = json.loads(args.steps)
    unknown = [str(a) for a in args.asn if str(a) not in steps]
    if unknown:
        raise SystemExit(f"no steps given for {unknown}")
    start = time.time()
    manifest = prefetch({str(a): steps[str(a)] for a in args.asn}, os.environ.get("CRDS_CONTEXT"))
    manifest["seconds"] = round(time.time() - start, 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, args.output)
    log.info("%d reference file(s) for %d file(s) in %.1f s -> %s", len(manifest["references"]),
             len(manifest["files"]), manifest["seconds"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
