"""Shared fixtures: a local CRDS cache, synthetic programs and real workflow runs.

End-to-end tests run jwst for real (no mocked steps) through Snakemake in a
subprocess, against the project's local CRDS context (CRDS_MODE=local).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
PROFILE = REPO / "workflow" / "profiles" / "default"


@pytest.fixture(scope="session")
def crds_cache(tmp_path_factory) -> Path:
    """The project's offline CRDS context, built once per session."""
    from spec3flow.crds_local import build_local_crds

    path = tmp_path_factory.mktemp("crds") / "cache"
    build_local_crds(path)
    return path


def crds_environment(crds_path: Path) -> dict:
    from spec3flow.crds_local import apply_crds_env

    return apply_crds_env(crds_path, dict(os.environ))


def make_program(outdir: Path, modes=("mos",), n_sources: int = 3, seed: int = 7, *extra: str) -> Path:
    """Write a synthetic Stage 2 program (through the generator's CLI) into ``outdir``."""
    for mode in modes:
        subprocess.run([sys.executable, "-m", "spec3flow.synth", "--mode", mode, "--outdir", str(outdir),
                        "--n-sources", str(n_sources), "--seed", str(seed), *extra],
                       check=True, capture_output=True, text=True)
    return outdir


def write_config(workdir: Path, **config) -> Path:
    """A deployed-workflow working directory: config/config.yaml plus a test config."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    path = workdir / "test-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile"),
           "--profile", str(PROFILE), "--configfile", str(configfile), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          env=env or dict(os.environ))
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime) of a directory's files: equal before and after means untouched."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def error_line(output: str) -> str:
    """The line holding spec3flow's message (right after Snakemake's 'WorkflowError in ...')."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("WorkflowError"):
            return lines[i + 1]
    raise AssertionError(f"no WorkflowError in output:\n{output[-3000:]}")


def planning_error(proc, output: str, *phrases: str) -> str:
    """A failed dry run's one spec3flow line, checked to contain every phrase."""
    assert proc.returncode != 0, output[-3000:]
    line = error_line(output)
    assert line.startswith("spec3flow: "), line
    for phrase in phrases:
        assert phrase in line, (phrase, line)
    return line


def run_baseline(asn_paths: list[Path], output_dir: Path, crds_path: Path, steps: dict | None = None,
                 chdir: bool = False) -> None:
    """Spec3Pipeline itself, in its own process, against the same CRDS context.

    ``chdir``: run inside ``output_dir`` (WFSS products are written to the current directory).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "spec3flow.baseline", *[str(p.resolve()) for p in asn_paths],
                           "--output-dir", str(output_dir.resolve()), "--steps", json.dumps(steps or {})],
                          capture_output=True, text=True, env=crds_environment(crds_path),
                          cwd=output_dir if chdir else None)
    if proc.returncode != 0:
        raise AssertionError(f"Spec3Pipeline failed:\n{proc.stderr[-6000:]}")


@pytest.fixture(scope="session")
def slit_program(tmp_path_factory, crds_cache):
    """One synthetic program with NIRSpec MOS, NIRSpec FS and MIRI LRS, run both ways."""
    root = tmp_path_factory.mktemp("slit")
    input_dir = make_program(root / "input", modes=("mos", "fs", "lrs"), n_sources=3)
    before = {p.name: p.stat().st_mtime_ns for p in input_dir.iterdir()}
    config = write_config(root, input_dir=str(input_dir), results_dir=str(root / "results"),
                          modes=["NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-FIXEDSLIT"],
                          crds={"use_local_context": True, "local_path": str(crds_cache)})
    run_snakemake(root, config)
    asns = sorted((root / "results" / "asn").glob("*_asn.json"))
    run_baseline(asns, root / "baseline", crds_cache)
    return {"root": root, "input": input_dir, "results": root / "results",
            "baseline": root / "baseline", "input_mtimes": before, "config": config}
