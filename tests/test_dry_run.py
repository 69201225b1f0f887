"""`snakemake -n`: every job of a program is known at parse time (no checkpoints).

Planning only: associations + header reads, no jwst step runs, no CRDS cache built
(the local context is configured but its directory does not exist yet).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from conftest import make_program, run_snakemake, snapshot, write_config

MOS = ["NRS_MSASPEC"]
ALL_MODES = ["NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-FIXEDSLIT"]
EXP_TO_SOURCE_MOS = "exp_to_source__jw01234_o001_spec3_00001_asn"


# ------------------------------------------------------------------------ helpers
def job_stats(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count} (without the total)."""
    lines = stdout.splitlines()
    start = lines.index("Job stats:")
    counts = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    total = counts.pop("total")
    assert total == sum(counts.values())
    return counts


def job_outputs(stdout: str) -> dict[str, list[str]]:
    """{rule: [output paths of all its jobs]} from the per-job blocks of a dry run."""
    out: dict[str, list[str]] = {}
    rule = None
    for line in stdout.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\S+):$", line)
        if m:
            rule = m.group(1)
            out.setdefault(rule, [])
            continue
        m = re.match(r"^\s+output: (.*)$", line)
        if m and rule is not None:
            out[rule].extend(p.strip() for p in m.group(1).split(","))
    return out


def plot_pngs(stdout: str) -> list[str]:
    """The PNGs of all quick-look jobs (rules plot_batch_<k>)."""
    return [p for rule, paths in job_outputs(stdout).items() if rule.startswith("plot_batch_")
            for p in paths]


def truth_source_ids(input_dir: Path) -> list[str]:
    with open(input_dir / "truth_nirspec_mos_sources.csv") as f:
        return [row["product_source_id"] for row in csv.DictReader(f)]


def truth_exposure_counts(input_dir: Path) -> dict[str, int]:
    with open(input_dir / "truth_nirspec_mos_sources.csv") as f:
        return {row["product_source_id"]: int(row["n_exposures"]) for row in csv.DictReader(f)}


def dry_run(workdir: Path, input_dir: Path, modes=MOS, **extra):
    config = write_config(workdir, input_dir=str(input_dir), results_dir=str(workdir / "results"),
                          modes=list(modes),
                          crds={"use_local_context": True, "local_path": str(workdir / "crds")},
                          **extra)
    proc = run_snakemake(workdir, config, "-n", "-p")
    # Nothing ran: no product, no CRDS cache.
    assert not (workdir / "results" / "products").exists()
    assert not (workdir / "crds").exists()
    return proc


# ----------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mos_programs(tmp_path_factory):
    """Synthetic MOS programs by number of sources, generated on first use."""
    programs = {}

    def get(n):
        if n not in programs:
            programs[n] = make_program(tmp_path_factory.mktemp(f"mos{n}") / "input", modes=("mos",),
                                       n_sources=n, seed=7)
        return n, programs[n]

    return get


@pytest.fixture(params=[2, 5], ids=["2src", "5src"])
def mos_program(request, mos_programs):
    return mos_programs(request.param)


@pytest.fixture
def mos_program_5(mos_programs):
    """The skip variants run on one program only (keeps the suite fast)."""
    return mos_programs(5)


@pytest.fixture(scope="module")
def mixed_program(tmp_path_factory):
    return make_program(tmp_path_factory.mktemp("mixed") / "input", modes=("mos", "fs", "lrs"),
                        n_sources=3, seed=7)


# -------------------------------------------------------------------------- MOS
def test_mos_default_jobs(mos_program, tmp_path):
    n, input_dir = mos_program
    before = snapshot(input_dir)
    proc = dry_run(tmp_path, input_dir)
    assert job_stats(proc.stdout) == {
        "association": 1,
        "local_crds_context": 1,
        EXP_TO_SOURCE_MOS: 1,
        "outlier_detection": n + 1,  # sources + the background slitlet
        "resample_spec": n + 1,
        "extract_1d": n + 1,
        "plot_batch_0001": 1,  # the 2(n + 1) s2d and x1d PNGs: qa.plots_per_job = 50
        "summary": 1,
        "provenance_manifest": 1,
        "crds_step_parameters": 1,  # one per association
        "all": 1,
    }
    assert snapshot(input_dir) == before  # planning writes nothing into input_dir

    # Every source's x1d is named before anything ran (no checkpoints).
    ids = truth_source_ids(input_dir)
    assert len(ids) == n + 1 and sum(i.startswith("b") for i in ids) == 1
    x1d = job_outputs(proc.stdout)["extract_1d"]
    assert len(x1d) == n + 1
    products = tmp_path / "results" / "products"
    for srcid in ids:
        pattern = re.compile(rf"^{re.escape(str(products))}/jw01234-o001_{srcid}_nirspec_[a-z0-9-]+_x1d\.fits$")
        assert [p for p in x1d if pattern.match(p)], (srcid, x1d)
    assert "checkpoint" not in proc.stdout.lower()
    # the fan-out job names every source's cal file up front
    cal = job_outputs(proc.stdout)[EXP_TO_SOURCE_MOS]
    assert sorted(re.search(r"_([sbv]\d{9})_", p).group(1) for p in cal) == sorted(ids)


def test_mos_resample_skipped_extracts_and_combines(mos_program_5, tmp_path):
    n, input_dir = mos_program_5
    proc = dry_run(tmp_path, input_dir, steps={"resample_spec": {"skip": True}})
    stats = job_stats(proc.stdout)
    assert "resample_spec" not in stats
    # extract_1d writes one x1d per exposure: its rules are grouped by exposure count
    extract_rules = [r for r in stats if r.startswith("extract_1d")]
    assert set(extract_rules) <= {f"extract_1d_{k}_exposures" for k in (1, 2, 3)}
    assert sum(stats[r] for r in extract_rules) == n + 1
    assert stats["combine_1d"] == n + 1
    assert stats["outlier_detection"] == n + 1
    outputs = job_outputs(proc.stdout)
    exposures = truth_exposure_counts(input_dir)
    x1d = [p for r in extract_rules for p in outputs[r]]
    assert len(x1d) == sum(exposures.values())
    for srcid, count in exposures.items():
        mine = sorted(Path(p).name for p in x1d if f"_{srcid}_" in p)
        assert [re.sub(r".*_(\d+)_x1d\.fits$", r"\1", m) for m in mine] == [str(i) for i in range(count)]
    # quick-look plots of every x1d and c1d, none of an s2d
    plots = plot_pngs(proc.stdout)
    assert len(plots) == sum(exposures.values()) + n + 1
    assert {Path(p).stem.rsplit("_", 1)[-1] for p in plots} == {"x1d", "c1d"}
    assert "_s2d" not in proc.stdout


def test_mos_outlier_detection_skipped(mos_program_5, tmp_path):
    n, input_dir = mos_program_5
    proc = dry_run(tmp_path, input_dir, steps={"outlier_detection": {"skip": True}})
    stats = job_stats(proc.stdout)
    assert not [rule for rule in stats if rule.startswith("outlier_detection")]
    assert stats["resample_spec"] == n + 1
    assert stats["extract_1d"] == n + 1
    assert "_crf.fits" not in proc.stdout
    # the first per-source job runs the skipped step itself (status keywords match)
    assert proc.stdout.count("--run-before outlier_detection adaptive_trace_model pixel_replace") == n + 1


# ------------------------------------------------------------------------ mixed
def test_mixed_program_jobs(mixed_program, tmp_path):
    proc = dry_run(tmp_path, mixed_program, modes=ALL_MODES)
    stats = job_stats(proc.stdout)
    outputs = job_outputs(proc.stdout)
    assert stats[EXP_TO_SOURCE_MOS] == 1
    assert stats["exp_to_source__jw01234_o002_spec3_00001_asn"] == 1  # FS
    # LRS: master background where the association has background members (o003, c1000)
    assert sorted(r for r in stats if r.startswith("master_background")) == [
        "master_background__jw01234_c1000_spec3_00001_asn",
        "master_background__jw01234_o003_spec3_00001_asn",
    ]
    # LRS: one per-exposure outlier_detection rule per product, crf named <exposure>_<asn_id>_crf
    lrs_outlier = sorted(r for r in stats if r.startswith("outlier_detection__"))
    assert len(lrs_outlier) == 3
    for asn_id in ("c1000", "o003", "o004"):
        (rule,) = [r for r in lrs_outlier if f"jw01234_{asn_id}_" in r]
        assert stats[rule] == 1
        assert outputs[rule] and all(re.search(rf"/jw01234\d{{6}}_\d{{5}}_\d{{5}}_mirimage_{asn_id}_crf\.fits$", p)
                                     for p in outputs[rule]), outputs[rule]
    # per-source rules: MOS 3 + 1 background, FS 2, LRS 3 products
    assert stats["outlier_detection"] == 4 + 2
    assert stats["resample_spec"] == 4 + 2 + 3
    assert stats["extract_1d"] == 4 + 2 + 3
    for rule, suffix in (("resample_spec", "s2d"), ("extract_1d", "x1d")):
        lrs = [p for p in outputs[rule] if re.search(rf"/jw01234-(o003|o004|c1000)_t\d{{3}}_miri_[^/]*_{suffix}\.fits$", p)]
        assert len(lrs) == 3, outputs[rule]


def test_versioned_results_dir(mos_program, tmp_path):
    """results_versioned: the run's files go under results_dir/jwst-<version>_<context>."""
    n, input_dir = mos_program
    config = write_config(tmp_path, input_dir=str(input_dir), results_dir=str(tmp_path / "results"),
                          modes=["NRS_MSASPEC"], results_versioned=True,
                          crds={"use_local_context": True, "local_path": str(tmp_path / "crds")})
    proc = run_snakemake(tmp_path, config, "-n")
    assert f"{tmp_path}/results/jwst-3.0.0_jwst_0001/products/" in proc.stdout


def listing(stdout: str) -> list[str]:
    """A dry run's printout, comparable across processes: without times, dates, run ids,
    job and group ids, and with the files of each reason sorted (Snakemake prints them
    from sets)."""
    lines = []
    for line in stdout.splitlines():
        line = re.sub(r"^\s*\[\w{3} \w{3} [^]]*\d{4}\] ?", "", line)
        line = re.sub(r"Group job spec3flow_sources_\d+", "Group job G", line)
        line = re.sub(r"jobid: \d+", "jobid: N", line)
        if "reason: " in line:
            head, _, reason = line.partition("reason: ")
            parts = [(k + ": " + ", ".join(sorted(v.split(", ")))) if v else k
                     for k, _, v in (p.partition(": ") for p in reason.split("; "))]
            line = head + "reason: " + "; ".join(parts)
        if line.strip() and not re.match(r"\s*(Date|Workflow ID): ", line):
            lines.append(line)
    return sorted(lines)


def test_planning_shortcuts_print_the_plan_snakemake_prints(mixed_program, tmp_path):
    """workflow_support's Snakemake short-cuts (SPEC3FLOW_PLAIN_SNAKEMAKE=1 turns them off)
    change nothing in `snakemake -n -p`: same jobs, files, reasons, resources, commands."""
    import os

    config = write_config(tmp_path, input_dir=str(mixed_program), results_dir=str(tmp_path / "results"),
                          modes=ALL_MODES,
                          crds={"use_local_context": True, "local_path": str(tmp_path / "crds")})
    plain = run_snakemake(tmp_path, config, "-n", "-p",
                          env={**os.environ, "SPEC3FLOW_PLAIN_SNAKEMAKE": "1"})
    fast = run_snakemake(tmp_path, config, "-n", "-p",
                         env={k: v for k, v in os.environ.items() if k != "SPEC3FLOW_PLAIN_SNAKEMAKE"})
    assert job_stats(fast.stdout) == job_stats(plain.stdout)
    assert listing(fast.stdout) == listing(plain.stdout)
    assert "-m spec3flow.execute" in fast.stdout  # the commands were compared too
