"""The real workflow on a real one-node SLURM cluster (scripts/slurm/start_local_cluster.sh).

One tiny synthetic program (NIRSpec MOS with 2 sources + MIRI LRS), crds.prefetch on:
(d) dry-run cluster submissions with grouping on and off; (b) one source's input corrupted
between two runs: the other sources finish, the failure is reported with its log, and a
rerun after the fault is removed does only the missing work; (a) the SLURM products equal
a local-executor run of the same program; the prefetch manifest names exactly the
references the products record; (c) a job killed by SLURM for exceeding its memory
request is resubmitted with a larger one.

Marked ``slurm``; runs only with SPEC3FLOW_SLURM_TESTS=1 (set by .ci/run), as root on a
Debian/Ubuntu machine (apt), with snakemake-executor-plugin-slurm installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from astropy.io import fits

from spec3flow.compare import compare_dirs

from conftest import REPO, SNAKEMAKE, make_program, run_snakemake, write_config
from test_slurm_smoke import START, STOP, _cluster_up, pytestmark as _smoke_marks

pytestmark = [pytest.mark.slurm, *_smoke_marks,
              pytest.mark.skipif(shutil.which("apt-get") is None and shutil.which("sbatch") is None,
                                 reason="no apt-get to install SLURM and no SLURM installed")]

PROFILE = REPO / "workflow" / "profiles" / "slurm"
#: Rules that run on the submitting node (never an sbatch).
LOCAL_RULES = {"all", "associations", "association", "local_crds_context", "crds_prefetch",
               "crds_step_parameters", "summary", "provenance_manifest"}
BROKEN = "s000000001"  # the MOS source whose input is corrupted in test (b)


@pytest.fixture(scope="module")
def cluster():
    was_up = _cluster_up()
    t0 = time.time()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"the local SLURM cluster did not start:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    print(f"cluster start: {time.time() - t0:.1f} s")
    yield
    if not was_up:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def program(tmp_path_factory, crds_cache):
    root = tmp_path_factory.mktemp("slurmprog")
    input_dir = make_program(root / "input", ("mos",), 2, 7, "--nx", "64")
    make_program(input_dir, ("lrs",), 2, 7)
    configs = {}
    for name, per_group in (("local", 10), ("slurm", 1), ("grouped", 10), ("ungrouped", 0)):
        work = root / name
        configs[name] = write_config(
            work, input_dir=str(input_dir), results_dir=str(work / "results"),
            crds={"use_local_context": True, "local_path": str(crds_cache), "prefetch": True},
            cluster={"sources_per_group": per_group})
    return {"root": root, "configs": configs}


def slurm(workdir: Path, configfile: Path, *args: str, check: bool = True):
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile"),
           "--profile", str(PROFILE), "--configfile", str(configfile),
           "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5",
           "--cores", "2", *args]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1200)
    proc.seconds = time.time() - t0
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def cluster_submissions(dry_run_output: str) -> dict:
    """What a dry run with a cluster executor would submit: top-level jobs of non-local
    rules (one sbatch each) and group jobs (one sbatch per group)."""
    groups = len(re.findall(r"\] Group job \S+", dry_run_output))
    singles = [r for r in re.findall(r"^rule (\S+):$", dry_run_output, flags=re.M) if r not in LOCAL_RULES]
    return {"groups": groups, "single_jobs": len(singles), "sbatch": groups + len(singles),
            "rules": sorted(set(singles))}


def test_dry_run_submissions_grouped_and_not(program, cluster):
    counts = {}
    for name in ("grouped", "ungrouped"):
        work = program["configs"][name].parent
        proc = slurm(work, program["configs"][name], "-n")
        counts[name] = cluster_submissions(proc.stdout + proc.stderr)
    # 6 sources (2 MOS + the MOS background slitlet + 3 LRS products) in one group of 10;
    # outside groups: exp_to_source, 2 master_background jobs and the one plot job (12 PNGs)
    assert {k: counts["grouped"][k] for k in ("groups", "single_jobs", "sbatch")} == {
        "groups": 1, "single_jobs": 4, "sbatch": 5}, counts
    assert counts["ungrouped"]["groups"] == 0
    # ungrouped: those 4, and per source its 3 step jobs
    assert counts["ungrouped"]["sbatch"] == 4 + 6 * 3, counts


def test_failure_rerun_and_equivalence(program, cluster):
    cfg = program["configs"]["slurm"]
    work = cfg.parent
    results = work / "results"
    # 1. up to exp_to_source on SLURM
    first = slurm(work, cfg, "--until", "exp_to_source__jw01234_o001_spec3_00001_asn")
    cal = next((results / "products").glob(f"*_{BROKEN}_*_cal.fits"))
    backup = work / "cal.backup"
    shutil.copy2(cal, backup)
    cal.write_bytes(b"not a FITS file\n" * 10)
    # 2. the full program: that source's job fails, everything else finishes
    second = slurm(work, cfg, "--retries", "0", check=False)
    out = second.stdout + second.stderr
    assert second.returncode != 0, out[-3000:]
    assert "Error in group" in out or "Error in rule outlier_detection" in out, out[-3000:]
    failed_log = f"logs/outlier_detection/jw01234-o001_{BROKEN}"
    assert failed_log in out, out[-3000:]
    assert ".snakemake/slurm_logs/" in out
    x1d = sorted(p.name for p in (results / "products").glob("*_x1d.fits"))
    assert not [n for n in x1d if BROKEN in n]
    assert len(x1d) == 5, x1d  # the other MOS source, the background slitlet, 3 LRS
    # 3. the fault removed (original bytes and mtime): the rerun does only what is missing
    shutil.copy2(backup, cal)
    dry = slurm(work, cfg, "-n")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, flags=re.M))
    assert {k: int(v) for k, v in jobs.items()} == {
        "outlier_detection": 1, "resample_spec": 1, "extract_1d": 1, "plot_batch_0001": 1,
        "summary": 1, "provenance_manifest": 1, "all": 1, "total": 7}, dry.stdout[-2000:]
    third = slurm(work, cfg)
    print(f"SLURM runs: {first.seconds:.0f} s, {second.seconds:.0f} s, {third.seconds:.0f} s")

    # (a) equal to the same program through the local executor
    local = program["configs"]["local"]
    run_snakemake(local.parent, local, "--cores", "2")
    only_slurm, only_local, diffs = compare_dirs(results / "products", local.parent / "results" / "products")
    assert not only_slurm and not only_local, (only_slurm, only_local)
    assert diffs
    for diff in diffs:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff)
        assert diff.keyword_diffs == [], (diff.name, diff.keyword_diffs)

    # crds.prefetch: the manifest names exactly the references the products record
    manifest = json.loads((results / "crds_references.json").read_text())
    recorded, sidecars = set(), set()
    for path in (results / "products").glob("*.fits"):
        header = fits.getheader(path)
        recorded |= {str(header[k]) for k in header if k.startswith("R_")}
        prov = json.loads(Path(f"{path}.prov.json").read_text())
        sidecars |= set(map(str, prov["job"]["product_header"]["reference_files"].values()))
    used = {r.removeprefix("crds://") for r in recorded if r != "N/A"}
    # jwst records some references in R_* keywords (EXTRACT1D) and only logs others
    # ("Using APCORR file <path>"): the jobs' logs name every file read from the cache
    cache = str(Path(manifest["crds_path"]) / "references")
    for log in (results / "logs").rglob("*.log"):
        used |= {Path(m).name for m in re.findall(re.escape(cache) + r"/\S+", log.read_text())}
    assert used == set(manifest["references"]), (used, manifest["references"])
    assert sidecars == recorded
    assert manifest["context"] == "jwst_0001.pmap"


def test_memory_retry(program, cluster):
    """SLURM kills a step above its --mem (OverMemoryKill, slurm.conf); the retry asks for
    more (attempt 2) and succeeds. The first request is set below the ~200 MB that the
    job's own snakemake needs, so attempt 1 is killed whatever the data."""
    cfg = program["configs"]["slurm"]
    work = cfg.parent
    results = work / "results"
    target = next((results / "products").glob("jw01234-o001_s*_x1d.fits"))
    proc = slurm(work, cfg, str(target), "--forcerun", "extract_1d", "--retries", "1", "--verbose",
                 "--set-resources", "extract_1d:mem_mb=120 if attempt == 1 else 3000", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # attempt 1 submitted with --mem 120 and killed by SLURM, attempt 2 with --mem 3000
    assert re.search(r"sbatch call: .* --mem 120 ", out), out[-4000:]
    assert "Trying to restart job" in out, out[-4000:]
    assert re.search(r"sbatch call: .* --mem 3000 ", out), out[-4000:]


def test_ifu_cube_partials_on_slurm_equal_local(tmp_path, crds_cache, cluster):
    """A NIRSpec IFU cube split by exposure (cube_build_partial jobs, their temp() sums
    removed once the cube is built, as the slurm profile no longer sets notemp): the
    same products as one local run with one job per cube."""
    input_dir = make_program(tmp_path / "input", ("ifu",), 3, 7, "--n-dithers", "2")
    configs = {}
    for name, partials in (("slurm", True), ("local", False)):
        work = tmp_path / name
        configs[name] = write_config(
            work, input_dir=str(input_dir), results_dir=str(work / "results"), modes=["NRS_IFU"],
            crds={"use_local_context": True, "local_path": str(crds_cache)}, qa={"plots": False},
            execution={"cube_build_partials": partials, "cube_build_partial_min_pixels": 0})
    slurm(configs["slurm"].parent, configs["slurm"])
    slurm_logs = configs["slurm"].parent / ".snakemake" / "slurm_logs"
    assert len(list(slurm_logs.glob("rule_cube_build_partial__*"))) == 2  # each its own sbatch
    results = configs["slurm"].parent / "results"
    assert len(list((results / "logs" / "cube_build_partial").rglob("*.log"))) == 2
    assert list((results / "intermediate").rglob("*.cubepart")) == []
    local = configs["local"]
    run_snakemake(local.parent, local, "--cores", "2")
    only_slurm, only_local, diffs = compare_dirs(results / "products", local.parent / "results" / "products")
    assert not only_slurm and not only_local, (only_slurm, only_local)
    assert sorted(d.name.rsplit("_", 1)[-1] for d in diffs) == ["crf.fits"] * 2 + ["s3d.fits", "x1d.fits"]
    for diff in diffs:
        assert diff.arrays_equal, (diff.name, diff.max_abs_diff)
        assert diff.keyword_diffs == [], (diff.name, diff.keyword_diffs)
