#!/usr/bin/env python
"""Benchmark spec3flow (Snakemake DAG) against Spec3Pipeline on a synthetic NIRSpec MOS program.

    python bench/run_bench.py --n-sources 50 --cores 2 --workdir bench/out

Steps (see bench/README.md for what each number means):

1. make (or reuse) a synthetic MOS program of N sources and a local CRDS cache in the workdir;
2. time ``snakemake -n`` (dry run: parse + plan + DAG) on a fresh results directory;
3. run the workflow through Snakemake with ``--cores``: wall, CPU (user+sys of the whole
   process tree), peak RSS of the largest job (Snakemake ``benchmark:`` files) and of the
   Snakemake main process, job count;
4. run Spec3Pipeline (``python -m spec3flow.baseline``) on the workflow's associations with
   the same CRDS environment: wall, CPU, peak RSS;
5. compare the two sets of products (``spec3flow.compare.compare_dirs``);
6. print a table and write it as CSV + Markdown into the workdir.

This is a script, not a test: it exits non-zero only when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SNAKEMAKE = Path(PYTHON).parent / "snakemake"
SNAKEFILE = REPO / "workflow" / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "default"

#: Columns of the result row, in order (fixed, so rows of --skip-pipeline runs line up in
#: bench_history.csv with full ones).
COLUMNS = [
    "case", "n_sources", "cores", "jobs_planned", "jobs_run", "dryrun_wall_s",
    "wf_wall_s", "wf_cpu_s", "wf_peak_job_rss_mb", "wf_peak_job",
    "wf_peak_source_job_rss_mb", "wf_peak_source_job_own_mb", "wf_peak_source_job",
    "wf_tree_maxrss_mb",
    "wf_snakemake_rss_mb", "wf_jobs_sum_s", "wf_jobs_sum_cpu_s",
    "pipe_wall_s", "pipe_cpu_s", "pipe_peak_rss_mb", "wall_ratio", "cpu_ratio", "rss_ratio",
    "source_job_rss_ratio", "source_job_own_ratio",
    "files_equal", "files_different", "only_workflow", "only_pipeline",
]


# --------------------------------------------------------------------------------------
# Measuring one subprocess
# --------------------------------------------------------------------------------------


@dataclass
class Measurement:
    returncode: int
    wall_s: float
    cpu_s: float  # user + sys of the process and all descendants it (transitively) reaped
    tree_maxrss_mb: float  # largest single process in that tree (ru_maxrss)
    main_peak_rss_mb: float  # the top process alone, polled (NaN if psutil is missing)


def _poll_rss(pid: int, stop: threading.Event, out: list[float], interval: float = 0.1) -> None:
    try:
        import psutil

        proc = psutil.Process(pid)
    except Exception:  # psutil missing or process already gone
        return
    peak = 0
    while not stop.is_set():
        try:
            peak = max(peak, proc.memory_info().rss)
        except Exception:
            break
        stop.wait(interval)
    out.append(peak / 2**20)


def measure(cmd: list[str], *, cwd: Path, env: dict, log: Path) -> Measurement:
    """Run ``cmd``; wall time, and rusage of exactly this child's tree via ``os.wait4``.

    ``wait4`` returns the child's own usage plus that of every descendant it waited for
    (Snakemake waits for each job's shell, the shell for the job's python), so CPU is the
    whole tree's and ``ru_maxrss`` is the peak RSS of the largest single process in it.
    Unlike ``getrusage(RUSAGE_CHILDREN)`` deltas, ``ru_maxrss`` is not polluted by
    earlier children of this script.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        stop, peak = threading.Event(), []
        poller = threading.Thread(target=_poll_rss, args=(proc.pid, stop, peak), daemon=True)
        poller.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    return Measurement(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=ru.ru_utime + ru.ru_stime,
        tree_maxrss_mb=ru.ru_maxrss / 1024,  # Linux: kilobytes
        main_peak_rss_mb=peak[0] if peak else float("nan"),
    )


def check(m: Measurement, what: str, log: Path) -> None:
    if m.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        sys.exit(f"{what} failed (exit {m.returncode}); log {log}:\n{tail}")


# --------------------------------------------------------------------------------------
# Setup: program, CRDS cache, deployed workflow directory
# --------------------------------------------------------------------------------------


#: Bench cases: the synthetic generator's mode and the EXP_TYPEs the workflow runs.
#: ``mrs`` and ``nrs_ifu`` are the two halves of ``ifu`` on their own (one association each).
CASES = {"mos": ["NRS_MSASPEC"], "ifu": ["NRS_IFU", "MIR_MRS"], "mrs": ["MIR_MRS"],
         "nrs_ifu": ["NRS_IFU"]}


#: ``--ifu-scale`` presets: (MIR_MRS rows, NRS_IFU columns); None = the synth default
#: (80 rows, 100 columns).  ``realistic``: full MRS cal files (1024 x 1032) and the
#: NRS_IFU slice block across a full 2048-column detector (960 x 2048).
IFU_SCALES = {"small": (None, None), "realistic": (1024, 2048)}


def ensure_program(input_dir: Path, n_sources: int, seed: int, mode: str = "mos",
                   nx: int | None = None, mrs_ny: int | None = None,
                   nrs_ifu_nx: int | None = None) -> None:
    """Make the synthetic program unless ``input_dir`` already holds the one asked for
    (``.bench.json`` records the generator arguments: mode, N, seed and the sizes)."""
    stamp = input_dir / ".bench.json"
    want = {"mode": mode, "n_sources": n_sources, "seed": seed, **({"nx": nx} if nx else {}),
            **({"mrs_ny": mrs_ny} if mrs_ny else {}),
            **({"nrs_ifu_nx": nrs_ifu_nx} if nrs_ifu_nx else {})}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"reusing synthetic program in {input_dir}")
        return
    shutil.rmtree(input_dir, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-m", "spec3flow.synth", "--mode", mode, "--outdir", str(input_dir),
                    "--n-sources", str(n_sources), "--seed", str(seed),
                    *(["--nx", str(nx)] if nx else []),
                    *(["--mrs-ny", str(mrs_ny)] if mrs_ny else []),
                    *(["--nrs-ifu-nx", str(nrs_ifu_nx)] if nrs_ifu_nx else [])],
                   check=True, capture_output=True, text=True)
    stamp.write_text(json.dumps(want))
    print(f"made synthetic {mode} program ({n_sources} sources) in {input_dir} "
          f"({time.perf_counter() - t0:.1f} s)")


def ensure_crds(crds_path: Path) -> None:
    from spec3flow.crds_local import build_local_crds

    build_local_crds(crds_path)  # idempotent: returns at once when complete and current


def ifu_cubepar_ranges(mrs_ny: int | None, nrs_ifu_nx: int | None) -> dict:
    """CUBEPAR ``(wavemin, wavemax)`` per band that cover the synthetic IFU detectors at
    these sizes: ``lam0`` to ``lam0 + dlam * n`` (the rule the local cache's reduced ranges
    follow at the default sizes), for the sizes given only.  Keys: ``("miri", channel,
    band)`` and ``("nirspec", grating, filter)``."""
    from spec3flow.synth import miri_mrs, nirspec_ifu

    ranges = {}
    if mrs_ny:
        for ch in miri_mrs.CHANNELS.values():
            ranges[("miri", ch.channel, ch.band)] = (ch.lam0, round(ch.lam0 + ch.dlam * mrs_ny, 6))
    if nrs_ifu_nx:
        lam0, dlam = nirspec_ifu.LAM0, nirspec_ifu.DLAM
        ranges[("nirspec", nirspec_ifu.GRATING, nirspec_ifu.FILTER)] = (
            lam0, round(lam0 + dlam * nrs_ifu_nx, 6))
    return ranges


def _cubepar_rows(crds_path: Path, ranges: dict):
    """(file, row index, key, wanted range, current range) of every CUBEPAR row to widen."""
    from astropy.io import fits

    for key, (wmin, wmax) in ranges.items():
        instrument = key[0]
        for ref in sorted((crds_path / "references" / "jwst" / instrument).glob("*_cubepar_*.fits")):
            with fits.open(ref) as hdul:
                t = hdul["CUBEPAR"].data
                names = t.columns.names[:2]  # (channel, band) or (disperser, filter)
                for i, row in enumerate(t):
                    if (str(row[names[0]]).strip(), str(row[names[1]]).strip()) == key[1:]:
                        yield ref, i, key, (wmin, wmax), (float(row["wavemin"]), float(row["wavemax"]))


def widen_ifu_cubepar(crds_path: Path, ranges: dict) -> None:
    """Set the CUBEPAR wavelength range of the synthetic IFU bands to ``ranges``.

    The local cache's CUBEPAR ranges are cut to the default synthetic detectors (MRS 80
    rows, NRS_IFU 100 columns) because cube_build takes a cube's wavelength range from
    CUBEPAR, not from the data: with larger arrays the extra rows/columns would fall
    outside the cube and the cubes would stay ~100 planes.  Widened to the data's range,
    the cubes get as many planes as real ones (MRS 1024 rows: 512-1,280 planes per band;
    NRS_IFU G235M 2048 columns: 2,048).  Runs after ``build_local_crds`` on a cache of
    its own (``crds_cache_ifu_<sizes>``), every time: a rebuild of that cache (changed
    crds_local code) would otherwise silently undo it.  Idempotent."""
    import numpy as np
    from astropy.io import fits

    rows = list(_cubepar_rows(crds_path, ranges))
    if len(rows) != len(ranges):
        sys.exit(f"CUBEPAR rows for {sorted(ranges)} not found in {crds_path}")
    for ref, i, key, (wmin, wmax), current in rows:
        if np.allclose(current, (wmin, wmax), rtol=0, atol=1e-6):
            continue
        tmp = ref.with_name(ref.name + ".tmp")
        with fits.open(ref, memmap=False) as hdul:
            t = hdul["CUBEPAR"].data
            t["wavemin"][i], t["wavemax"][i] = wmin, wmax
            hdul[0].header["HISTORY"] = (f"spec3flow bench: {key[1]} {key[2]} wavemin/wavemax "
                                         f"{current[0]:g}/{current[1]:g} -> {wmin:g}/{wmax:g}")
            hdul.writeto(tmp, overwrite=True, checksum="CHECKSUM" in hdul[0].header)
        os.replace(tmp, ref)
        print(f"CUBEPAR {ref.name} {key[1]} {key[2]}: wavelength range "
              f"{current[0]:g}-{current[1]:g} -> {wmin:g}-{wmax:g} um")


def check_ifu_cubepar(crds_path: Path, ranges: dict) -> bool:
    import numpy as np

    return all(np.allclose(cur, want, rtol=0, atol=1e-6)
               for _, _, _, want, cur in _cubepar_rows(crds_path, ranges))


def write_configs(run_dir: Path, input_dir: Path, crds_path: Path, plots: bool,
                  modes: list[str] = CASES["mos"], cube_partials: bool = True) -> Path:
    """A deployed-workflow working directory, as tests/conftest.py makes one."""
    (run_dir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "config.yaml", run_dir / "config" / "config.yaml")
    cfg = {
        "input_dir": str(input_dir.resolve()),
        "results_dir": str((run_dir / "results").resolve()),
        "modes": modes,
        "crds": {"use_local_context": True, "local_path": str(crds_path.resolve())},
        "qa": {"plots": plots},
        "execution": {"cube_build_partials": cube_partials},
    }
    path = run_dir / "bench-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_cmd(configfile: Path, cores: int, *extra: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(SNAKEFILE), "--profile", str(PROFILE),
            "--configfile", str(configfile), "--cores", str(cores), *extra]


# --------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------


def read_benchmarks(bench_dir: Path, since: float = 0.0) -> pd.DataFrame:
    """One row per job benchmark file written after ``since`` (epoch seconds; with
    ``--keep`` older files belong to earlier runs): rule, job, s, max_rss (MB), cpu_time, ..."""
    rows = []
    for tsv in sorted(bench_dir.glob("*/*.tsv")):
        if tsv.stat().st_mtime < since:
            continue
        df = pd.read_csv(tsv, sep="\t", na_values=["-", "NA"])
        if df.empty:
            continue
        row = df.iloc[-1].to_dict()  # one line per repeat; snakemake writes one by default
        row.update(rule=tsv.parent.name, job=tsv.stem)
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("s", "max_rss", "cpu_time"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def read_warm_ledger(path: Path) -> pd.DataFrame:
    """Jobs run in the warm interpreter: one JSON line each from the server (step, wall_s,
    cpu_s, max_rss_mb, pid) joined by pid with the job's own ``kind: memory`` line
    (own_peak_mb, shared_mb, pss_mb; see spec3flow.warm._memory_record).

    Snakemake's benchmark files then measure only the thin client process, so the
    job's own CPU and memory come from here."""
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_json(path, lines=True)
    if "kind" in df:
        memory = df[df["kind"] == "memory"][["pid", "own_peak_mb", "shared_mb", "pss_mb"]]
        df = df[df["kind"] != "memory"].drop(columns=["kind", "own_peak_mb", "shared_mb", "pss_mb",
                                                       "peak_rss_mb"], errors="ignore")
        df = df.merge(memory.drop_duplicates("pid"), on="pid", how="left")
    return df.rename(columns={"step": "rule", "wall_s": "s", "cpu_s": "cpu_time", "max_rss_mb": "max_rss"})


#: Steps whose one job per association holds every exposure (not per source).
ASSOCIATION_STEPS = {"exp_to_source", "master_background", "assign_mtwcs", "crds_step_pars"}


def peak_source_job(jobs: pd.DataFrame) -> tuple[float, float, str]:
    """Largest per-source step job: (peak RSS MB, largest own peak MB, name). Own peak
    (warm ledger only): peak RSS minus the pages shared with the warm server."""
    steps = jobs[~jobs["rule"].isin(ASSOCIATION_STEPS)] if len(jobs) else jobs
    if "module" in steps:
        steps = steps[steps["module"] == "spec3flow.execute"]
    if not len(steps) or not steps["max_rss"].notna().any():
        return float("nan"), float("nan"), ""
    top = steps.loc[steps["max_rss"].idxmax()]
    own = float(steps["own_peak_mb"].max()) if "own_peak_mb" in steps else float("nan")
    return float(top["max_rss"]), own, f"{top['rule']}/{top['job']}"


def dryrun_job_count(text: str) -> int | None:
    """``total  N`` from the Job stats table of ``snakemake -n``."""
    m = re.findall(r"^total\s+(\d+)\s*$", text, flags=re.M)
    if m:
        return int(m[-1])
    return 0 if "Nothing to be done" in text else None


def run_job_count(text: str) -> int | None:
    """``N of M steps (100%) done`` from a real run's log."""
    m = re.findall(r"(\d+) of (\d+) steps? \(\d+%\) done", text)
    if m:
        return int(m[-1][0])
    return 0 if "Nothing to be done" in text else None


_SM_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def workflow_timeline(text: str, launched: float) -> pd.DataFrame:
    """Every job of a real run's log: rule, start_s and end_s in seconds after ``launched``
    (epoch), at the 1 s resolution of Snakemake's ``[Wed Dec  2 22:17:02 2026]`` stamps."""
    jobs: dict[int, dict] = {}
    stamp = pending = None
    for line in map(str.strip, text.splitlines()):
        if m := _SM_STAMP.match(line):
            stamp = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")) - launched
        elif m := re.match(r"^(?:local)?rule (\S+):$", line):
            pending = m.group(1)
        elif (m := re.match(r"^jobid: (\d+)$", line)) and pending:
            jobs[int(m.group(1))] = {"rule": pending, "start_s": stamp, "end_s": float("nan")}
            pending = None
        elif (m := re.match(r"^Finished jobid: (\d+) ", line)) and int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["end_s"] = stamp
    df = pd.DataFrame(list(jobs.values()), columns=["rule", "start_s", "end_s"])
    return df.assign(wall_s=df["end_s"] - df["start_s"]).sort_values(["start_s", "end_s"])


_STPIPE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - stpipe\.step - INFO - "
                     r"Step (\w+) (running|done)")


def pipeline_steps(text: str, launched: float) -> pd.DataFrame:
    """Spec3Pipeline's steps from its log, in order: step, start_s (after ``launched``),
    wall_s (``Step X running`` to ``Step X done``; ``Spec3Pipeline`` rows span one
    association each)."""
    rows, open_ = [], {}
    for line in text.splitlines():
        if not (m := _STPIPE.match(line)):
            continue
        t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        if m.group(4) == "running":
            open_[m.group(3)] = len(rows)
            rows.append({"step": m.group(3), "start_s": t - launched, "wall_s": float("nan")})
        elif m.group(3) in open_:
            row = rows[open_.pop(m.group(3))]
            row["wall_s"] = t - launched - row["start_s"]
    return pd.DataFrame(rows, columns=["step", "start_s", "wall_s"])


def compare_products(wf_dir: Path, pipe_dir: Path) -> dict:
    from spec3flow.compare import compare_dirs

    only_wf, only_pipe, diffs = compare_dirs(wf_dir, pipe_dir)
    equal = [d for d in diffs if d.arrays_equal and not d.keyword_diffs]
    different = [d for d in diffs if not (d.arrays_equal and not d.keyword_diffs)]
    for d in different[:10]:
        print(f"  DIFFERENT {d.name}: max|diff|={d.max_abs_diff:g} nan mismatches={d.nan_mismatch} "
              f"shape={d.shape_mismatch[:2]} keywords={d.keyword_diffs[:3]}")
    for name in only_wf[:10]:
        print(f"  only in workflow: {name}")
    for name in only_pipe[:10]:
        print(f"  only in Spec3Pipeline: {name}")
    return {"files_equal": len(equal), "files_different": len(different),
            "only_workflow": len(only_wf), "only_pipeline": len(only_pipe)}


def timing_notes(startup_s: float, wf_wall_s: float, timeline: pd.DataFrame,
                 steps: pd.DataFrame) -> list[str]:
    """One-line facts about the serial parts of both runs."""
    notes = [f"Snakemake start-up (`snakemake --version`): {startup_s:.1f} s"]
    if len(timeline):
        work = timeline[~timeline["rule"].isin(["all"])]
        notes.append(f"workflow: first job started {work['start_s'].min():.0f} s after launch "
                     "(start-up, parse, plan, DAG), last job ended "
                     f"{work['end_s'].max():.0f} s after launch, Snakemake exited at "
                     f"{wf_wall_s:.0f} s")
    if len(steps):
        first = steps["start_s"].min()
        runs = steps[steps["step"] == "Spec3Pipeline"]
        notes.append(f"Spec3Pipeline: first step log line {first:.1f} s after launch (imports); "
                     f"associations {', '.join(f'{w:.1f}' for w in runs['wall_s'])} s")
        per_step = (steps[steps["step"] != "Spec3Pipeline"].dropna(subset=["wall_s"])
                    .groupby("step", sort=False)["wall_s"].sum())
        notes.append("Spec3Pipeline steps summed over associations: "
                     + ", ".join(f"{k} {v:.1f} s" for k, v in per_step.items()))
    return notes


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-sources", type=int, default=50, help="MOS sources (default 50)")
    p.add_argument("--mode", choices=sorted(CASES), default="mos",
                   help="mos: NIRSpec MOS of --n-sources sources; ifu: NRS_IFU + MIR_MRS (4 dithers "
                        "each); mrs, nrs_ifu: one of the two")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    p.add_argument("--workdir", type=Path, default=REPO / "bench" / "out",
                   help="where program, CRDS cache, runs and tables go (default bench/out)")
    p.add_argument("--seed", type=int, default=1, help="synthetic program seed (default 1)")
    p.add_argument("--nx", type=int, default=None,
                   help="mos: NIRSpec slit length in wavelength pixels (synth default 300; "
                        "real MOS slits are ~1,000-2,000)")
    p.add_argument("--ifu-scale", choices=sorted(IFU_SCALES), default="small",
                   help="ifu: array sizes; small = synth defaults (MRS 80 x 1032, NRS_IFU "
                        "960 x 100), realistic = MRS 1024 x 1032, NRS_IFU 960 x 2048")
    p.add_argument("--mrs-ny", type=int, default=None,
                   help="ifu: MIR_MRS rows (overrides --ifu-scale; real: 1024)")
    p.add_argument("--nrs-ifu-nx", type=int, default=None,
                   help="ifu: NRS_IFU wavelength columns (overrides --ifu-scale; real: 2048)")
    p.add_argument("--no-cube-partials", action="store_true",
                   help="execution.cube_build_partials: false (one cube_build job per cube)")
    p.add_argument("--skip-pipeline", action="store_true", help="do not run Spec3Pipeline")
    p.add_argument("--keep", action="store_true",
                   help="keep previous workflow results (default: fresh results dir each run)")
    p.add_argument("--plots", action="store_true",
                   help="include the workflow's quick-look PNG jobs (default off: Spec3Pipeline "
                        "makes no plots)")
    args = p.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    mrs_ny = nrs_ifu_nx = None
    if args.mode in ("ifu", "mrs", "nrs_ifu"):
        preset_ny, preset_nx = IFU_SCALES[args.ifu_scale]
        if args.mode != "nrs_ifu":
            mrs_ny = args.mrs_ny or preset_ny
        if args.mode != "mrs":
            nrs_ifu_nx = args.nrs_ifu_nx or preset_nx
    elif args.mrs_ny or args.nrs_ifu_nx or args.ifu_scale != "small":
        p.error("--ifu-scale, --mrs-ny and --nrs-ifu-nx apply to --mode ifu, mrs, nrs_ifu only")
    ifu_size = (f"_mrsny{mrs_ny}" if mrs_ny else "") + (f"_nrsnx{nrs_ifu_nx}" if nrs_ifu_nx else "")
    size = (f"_nx{args.nx}" if args.nx else "") + ifu_size
    case = f"{args.mode}_n{args.n_sources}{size}_c{args.cores}" + ("_nopartials" if args.no_cube_partials else "")
    input_dir = workdir / f"program_{args.mode}_n{args.n_sources}{size}_s{args.seed}"
    # Larger IFU arrays need CUBEPAR wavelength ranges that cover them: a cache per size.
    cubepar = ifu_cubepar_ranges(mrs_ny, nrs_ifu_nx)
    crds_path = workdir / (f"crds_cache_ifu{ifu_size}" if cubepar else "crds_cache")
    run_dir = workdir / "runs" / case
    results = run_dir / "results"
    baseline = run_dir / "spec3pipeline"
    logs = run_dir / "bench_logs"

    ensure_program(input_dir, args.n_sources, args.seed, args.mode, args.nx, mrs_ny, nrs_ifu_nx)
    ensure_crds(crds_path)
    if cubepar:
        widen_ifu_cubepar(crds_path, cubepar)
    if not args.keep:
        for d in (results, baseline, run_dir / ".snakemake"):
            shutil.rmtree(d, ignore_errors=True)
    configfile = write_configs(run_dir, input_dir, crds_path, args.plots, CASES[args.mode],
                               cube_partials=not args.no_cube_partials)
    env = dict(os.environ)

    # Snakemake's fixed start-up (imports, executor plugins: see the dry-run caveat below),
    # which is inside dryrun_wall_s and wf_wall_s.
    startup = measure([str(SNAKEMAKE), "--version"], cwd=run_dir, env=env, log=logs / "startup.log")

    # Dry run first, on the (fresh) results dir: the full DAG is planned and listed.
    print("snakemake -n ...", flush=True)
    dry = measure(snakemake_cmd(configfile, args.cores, "-n"), cwd=run_dir, env=env,
                  log=logs / "dryrun.log")
    check(dry, "snakemake -n", logs / "dryrun.log")
    n_jobs_planned = dryrun_job_count((logs / "dryrun.log").read_text())

    print(f"snakemake --cores {args.cores} ...", flush=True)
    run_started = time.time() - 1  # benchmark files are only those of this run (--keep)
    wf_launched = time.time()
    wf = measure(snakemake_cmd(configfile, args.cores), cwd=run_dir, env=env,
                 log=logs / "workflow.log")
    check(wf, "snakemake", logs / "workflow.log")
    n_jobs_run = run_job_count((logs / "workflow.log").read_text())
    timeline = workflow_timeline((logs / "workflow.log").read_text(), wf_launched)

    bench = read_benchmarks(results / "benchmarks", since=run_started)
    warm_jobs = read_warm_ledger(results / "benchmarks" / "warm_interpreter_jobs.jsonl")
    if len(warm_jobs):
        bench = warm_jobs.assign(job=warm_jobs.get("outputs", ""))
    if len(bench) and bench["max_rss"].notna().any():
        top = bench.loc[bench["max_rss"].idxmax()]
        peak_job_rss, peak_job = float(top["max_rss"]), f"{top['rule']}/{top['job']}"
    else:
        peak_job_rss, peak_job = float("nan"), ""
    source_rss, source_own, source_job = peak_source_job(bench)

    row = {
        "case": case,
        "n_sources": args.n_sources,
        "cores": args.cores,
        "jobs_planned": n_jobs_planned,
        "jobs_run": n_jobs_run,
        "dryrun_wall_s": dry.wall_s,
        "wf_wall_s": wf.wall_s,
        "wf_cpu_s": wf.cpu_s,
        "wf_peak_job_rss_mb": peak_job_rss,
        "wf_peak_job": peak_job,
        "wf_peak_source_job_rss_mb": source_rss,
        "wf_peak_source_job_own_mb": source_own,
        "wf_peak_source_job": source_job,
        "wf_tree_maxrss_mb": wf.tree_maxrss_mb,
        "wf_snakemake_rss_mb": wf.main_peak_rss_mb,
        "wf_jobs_sum_s": float(bench["s"].sum()) if "s" in bench else float("nan"),
        "wf_jobs_sum_cpu_s": float(bench["cpu_time"].sum()) if "cpu_time" in bench else float("nan"),
    }

    steps = pd.DataFrame()
    if not args.skip_pipeline:
        from spec3flow.crds_local import apply_crds_env

        asns = sorted((results / "asn").glob("*_asn.json"))
        print(f"Spec3Pipeline on {len(asns)} association(s) ...", flush=True)
        pipe_launched = time.time()
        pipe = measure([PYTHON, "-m", "spec3flow.baseline", *map(str, asns), "--output-dir", str(baseline)],
                       cwd=run_dir, env=apply_crds_env(crds_path, env), log=logs / "spec3pipeline.log")
        check(pipe, "Spec3Pipeline", logs / "spec3pipeline.log")
        steps = pipeline_steps((logs / "spec3pipeline.log").read_text(), pipe_launched)
        row.update(pipe_wall_s=pipe.wall_s, pipe_cpu_s=pipe.cpu_s, pipe_peak_rss_mb=pipe.tree_maxrss_mb)
        row.update(wall_ratio=wf.wall_s / pipe.wall_s, cpu_ratio=wf.cpu_s / pipe.cpu_s,
                   rss_ratio=peak_job_rss / pipe.tree_maxrss_mb,
                   source_job_rss_ratio=source_rss / pipe.tree_maxrss_mb,
                   source_job_own_ratio=source_own / pipe.tree_maxrss_mb)
        if cubepar and not check_ifu_cubepar(crds_path, cubepar):
            print(f"WARNING: the CUBEPAR of {crds_path} lost its widened wavelength ranges "
                  "during the runs (cache rebuilt?): cubes are smaller than intended")
        print("comparing products ...", flush=True)
        row.update(compare_products(results / "products", baseline))

    table = pd.DataFrame([row]).reindex(columns=COLUMNS)
    csv_path, md_path = workdir / f"bench_{case}.csv", workdir / f"bench_{case}.md"
    table.to_csv(csv_path, index=False, float_format="%.4g")

    per_rule = pd.DataFrame()
    if len(bench):
        per_rule = bench.groupby("rule").agg(
            jobs=("s", "size"), sum_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("max_rss", "max"),
            **({"sum_cpu_s": ("cpu_time", "sum")} if "cpu_time" in bench else {}),
        ).sort_values("sum_s", ascending=False)

    transposed = table.T.rename(columns={0: "value"})
    shown = transposed.map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
    md = [f"# spec3flow benchmark: {case}", "",
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}, 1-min load average at start: {load_at_start:.2f} ({os.cpu_count()} CPUs)", "",
          shown.to_markdown(), ""]
    if len(per_rule):
        md += ["## Workflow jobs per rule (Snakemake benchmark files)", "",
               per_rule.to_markdown(floatfmt=".4g"), ""]
    timing = timing_notes(startup.wall_s, wf.wall_s, timeline, steps)
    md += ["## Where the time went", "", *[f"- {t}" for t in timing], ""]
    if len(timeline):
        md += ["### Workflow jobs in start order (seconds after Snakemake was launched; "
               "Snakemake's log stamps, 1 s resolution)", "",
               timeline.to_markdown(index=False, floatfmt=".0f"), ""]
    if len(steps):
        md += ["### Spec3Pipeline steps (seconds after its process was launched)", "",
               steps.to_markdown(index=False, floatfmt=".1f"), ""]
    md_path.write_text("\n".join(md))

    # A running history of every case, for comparing sizes/cores.
    history = workdir / "bench_history.csv"
    table.assign(when=time.strftime("%Y-%m-%dT%H:%M:%S")).to_csv(
        history, mode="a", header=not history.exists(), index=False, float_format="%.4g")

    print()
    print(shown.to_string())
    if len(per_rule):
        print()
        print(per_rule.to_string(float_format=lambda v: f"{v:.4g}"))
    print()
    print("\n".join(timing))
    print(f"\nwrote {csv_path}\n      {md_path}\n      (appended) {history}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
