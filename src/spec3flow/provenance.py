"""What made each product: a JSON sidecar per output and a program manifest.

Each job writes ``<output>.prov.json`` beside every file it makes.  A sidecar holds
the job's own record (step, parameters in effect after config and ``pars-*``
files, software versions, CRDS context and reference files as the product's own
header records them, inputs with checksums, host, start and end) and, under
``upstream``, the records of the jobs that made its inputs, so a final product's
sidecar tells its whole history.  The FITS products themselves are not touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

SUFFIX = ".prov.json"
PACKAGES = ("jwst", "stpipe", "stcal", "stdatamodels", "crds", "gwcs", "asdf", "astropy", "numpy",
            "snakemake", "spec3flow")
CRDS_ENV = ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_MODE", "CRDS_CONTEXT", "CRDS_READONLY_CACHE")


def sidecar_path(path: Path | str) -> Path:
    return Path(f"{path}{SUFFIX}")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def software_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def header_record(path: Path | str) -> dict:
    """CRDS context, reference files (R_*) and step statuses (S_*) as the product records them."""
    from astropy.io import fits

    header = fits.getheader(path)
    return {
        "crds_context": header.get("CRDS_CTX"),
        "crds_software": header.get("CRDS_VER"),
        "cal_ver": header.get("CAL_VER"),
        "reference_files": {k: header[k] for k in header if k.startswith("R_")},
        "step_status": {k: header[k] for k in header if k.startswith("S_")},
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def job_record(step: str, steps_run: list[str], pipe, inputs: list[Path], asn: Path,
               started: str) -> dict:
    """The record of one job, before its outputs are known."""
    parameters = {}
    for name in steps_run:
        sub = getattr(pipe, name, None)
        if sub is not None:
            parameters[name] = _jsonable(sub.get_pars())
    return {
        "step": step,
        "steps_run": steps_run,
        "parameters": parameters,
        "association": {"file": asn.name, "sha256": sha256(asn)},
        "inputs": [{"file": Path(p).name, "sha256": sha256(p)} for p in inputs],
        "software": software_versions(),
        "crds_environment": {k: os.environ.get(k) for k in CRDS_ENV},
        "host": platform.node(),
        "python": sys.version.split()[0],
        "started": started,
    }


def write_sidecars(record: dict, inputs: list[Path], outputs: list[Path]) -> None:
    """A sidecar beside each output: this job's record plus its inputs' histories."""
    upstream = []
    for path in inputs:
        side = sidecar_path(path)
        if side.is_file():
            upstream.append(json.loads(side.read_text()))
    record = dict(record, ended=now())
    for path in outputs:
        entry = dict(record, output={"file": path.name, "sha256": sha256(path)})
        if path.suffix == ".fits":
            entry["product_header"] = header_record(path)
        tmp = Path(f"{sidecar_path(path)}.tmp")
        tmp.write_text(json.dumps({"job": entry, "upstream": upstream}, indent=1, default=str))
        os.replace(tmp, sidecar_path(path))


def history(sidecar: dict) -> list[dict]:
    """Every job behind a product, oldest first, each once."""
    seen, ordered = set(), []

    def visit(node):
        for parent in node.get("upstream", []):
            visit(parent)
        job = node["job"]
        key = (job["step"], job["output"]["file"])
        if key not in seen:
            seen.add(key)
            ordered.append(job)

    visit(sidecar)
    return ordered


def write_manifest(products: list[Path], manifest: Path) -> None:
    """Program-level manifest: per final product, its checksum and the jobs that made it."""
    entries = []
    for path in products:
        side = sidecar_path(path)
        data = json.loads(side.read_text()) if side.is_file() else None
        entries.append({
            "product": path.name,
            "sha256": data["job"]["output"]["sha256"] if data else sha256(path),
            "crds_context": data["job"].get("product_header", {}).get("crds_context") if data else None,
            "software": data["job"]["software"] if data else None,
            "jobs": [{k: job[k] for k in ("step", "steps_run", "parameters", "started", "ended", "host")}
                     | {"output": job["output"]["file"],
                        "reference_files": job.get("product_header", {}).get("reference_files", {})}
                     for job in history(data)] if data else [],
        })
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"created": now(), "products": entries}, indent=1, default=str))
    os.replace(tmp, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spec3flow.provenance",
                                     description="Write the program provenance manifest")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("products", type=Path, nargs="+")
    args = parser.parse_args(argv)
    write_manifest(args.products, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
