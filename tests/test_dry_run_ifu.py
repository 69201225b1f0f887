"""`snakemake -n` on an IFU program lists every cube and spectrum for each cube_build
output choice, with the names cube_build gives them (no jwst step runs).

Names checked against Spec3Pipeline runs on the same synthetic program (jwst 3.0.0):
band and channel -> ch1-medium, ch2-medium, ch3-short, ch4-short; multi ->
ch1-2-3-4-shortmedium; band=short -> ch3-short, ch4-short; NIRSpec -> g235m-f170lp.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_program, run_snakemake, write_config
from test_dry_run import job_outputs, job_stats, plot_pngs


MRS = "jw01234-o005_t003_miri"
NRS = "jw01234-o006_t004_nirspec"
MODES = ["NRS_IFU", "MIR_MRS"]


@pytest.fixture(scope="module")
def ifu_input(tmp_path_factory) -> Path:
    return make_program(tmp_path_factory.mktemp("ifu") / "input", ("ifu",), 3, 7, "--n-dithers", "2")


def dry_run(workdir: Path, input_dir: Path, check: bool = True, modes=MODES, **extra):
    config = write_config(workdir, input_dir=str(input_dir), results_dir=str(workdir / "results"),
                          modes=list(modes),
                          crds={"use_local_context": True, "local_path": str(workdir / "crds")},
                          **extra)
    proc = run_snakemake(workdir, config, "-n", check=check)
    assert not (workdir / "results" / "products").exists()
    assert not (workdir / "crds").exists()
    return proc


def products(stdout: str, suffix: str) -> list[str]:
    names = {Path(p).name for outs in job_outputs(stdout).values() for p in outs
             if "/products/" in p}
    return sorted(n[: -len(f"_{suffix}.fits")] for n in names if n.endswith(f"_{suffix}.fits"))


def pngs(stdout: str) -> list[str]:
    return sorted(Path(p).name for p in plot_pngs(stdout))


def expect(stdout: str, cubes: list[str]) -> None:
    assert products(stdout, "s3d") == sorted(cubes)
    assert products(stdout, "x1d") == sorted(cubes)
    assert pngs(stdout) == sorted(f"{c}_{s}.png" for c in cubes for s in ("s3d", "x1d"))


BAND_CUBES = [f"{MRS}_ch1-medium", f"{MRS}_ch2-medium", f"{MRS}_ch3-short", f"{MRS}_ch4-short",
              f"{NRS}_g235m-f170lp"]


def test_default_band_cubes(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input)
    expect(proc.stdout, BAND_CUBES)
    counts = job_stats(proc.stdout)
    for asn in ("jw01234_o005_t003_miri", "jw01234_o006_t004_nirspec_g235m"):
        assert counts[f"outlier_detection__{asn}"] == 1
    # NIRSpec, one band: one cube_build job, one extract_1d job
    assert counts["cube_build__jw01234_o006_t004_nirspec_g235m"] == 1
    assert counts["extract_1d__jw01234_o006_t004_nirspec_g235m"] == 1
    # MIR_MRS: one cube_build and one extract_1d job per band, each band's cube built
    # from the exposures that cover it; spectral_leak writes the x1d files
    outs = job_outputs(proc.stdout)
    for cube in BAND_CUBES[:4]:
        rule = f"{MRS}_{cube}".replace("-", "_")
        assert counts[f"cube_build__{rule}"] == 1
        assert counts[f"extract_1d__{rule}"] == 1
        assert [Path(p).name for p in outs[f"cube_build__{rule}"]] == [f"{cube}_s3d.fits"]
        assert all("/intermediate/" in p for p in outs[f"extract_1d__{rule}"])
    assert counts["spectral_leak__jw01234_o005_t003_miri"] == 1
    assert not any(k.startswith("spectral_leak__jw01234_o006") for k in counts)
    assert all("/products/" in p for p in outs["spectral_leak__jw01234_o005_t003_miri"])
    assert products(proc.stdout, "crf") == sorted(
        [f"jw01234005001_02101_{i:05d}_{d}_o005" for i, d in
         ((1, "mirifushort"), (2, "mirifushort"), (3, "mirifulong"), (4, "mirifulong"))]
        + [f"jw01234006001_02101_{i:05d}_nrs1_o006" for i in (1, 2)])


def test_channel_cubes(tmp_path, ifu_input):
    # every channel of this program holds one band, so channel cubes are named like band cubes
    # (NIRSpec has no channels: cube_build makes no cube, see the next test)
    proc = dry_run(tmp_path, ifu_input, modes=["MIR_MRS"],
                   steps={"cube_build": {"output_type": "channel"}})
    expect(proc.stdout, BAND_CUBES[:4])


def test_channel_output_type_fails_for_nirspec(tmp_path, ifu_input):
    """cube_build makes no cube for NIRSpec with output_type channel (Spec3Pipeline then
    fails on the empty result): planning says so, naming the association."""
    proc = dry_run(tmp_path, ifu_input, check=False, modes=["NRS_IFU"],
                   steps={"cube_build": {"output_type": "channel"}})
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "jw01234-o006_spec3_00001_asn" in out and "no NIRSpec cube" in out


def test_multi_cubes(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, steps={"cube_build": {"output_type": "multi"}})
    expect(proc.stdout, [f"{MRS}_ch1-2-3-4-shortmedium", f"{NRS}_g235m-f170lp"])


def test_band_selection(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, modes=["MIR_MRS"], steps={"cube_build": {"band": "short"}})
    expect(proc.stdout, [f"{MRS}_ch3-short", f"{MRS}_ch4-short"])


def test_channel_selection_multi(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, modes=["MIR_MRS"],
                   steps={"cube_build": {"channel": "3", "output_type": "multi"}})
    expect(proc.stdout, [f"{MRS}_ch3-short"])


def test_spectral_leak_skipped_extract_writes_x1d(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, modes=["MIR_MRS"], steps={"spectral_leak": {"skip": True}})
    counts = job_stats(proc.stdout)
    assert not any(k.startswith("spectral_leak") for k in counts)
    outs = [p for rule, files in job_outputs(proc.stdout).items()
            if rule.startswith("extract_1d__jw01234_o005_t003_miri") for p in files]
    assert all("/products/" in p for p in outs) and len(outs) == 4


def test_cube_build_skipped_leaves_crf_only(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, steps={"cube_build": {"skip": True}})
    counts = job_stats(proc.stdout)
    assert not any(k.startswith(("cube_build", "extract_1d", "spectral_leak")) for k in counts)
    assert products(proc.stdout, "s3d") == [] and len(products(proc.stdout, "crf")) == 6


def test_outlier_detection_skipped_runs_before_cube_build(tmp_path, ifu_input):
    proc = dry_run(tmp_path, ifu_input, modes=["NRS_IFU"], steps={"outlier_detection": {"skip": True}})
    counts = job_stats(proc.stdout)
    assert not any(k.startswith("outlier_detection") for k in counts)
    assert "--run-before outlier_detection adaptive_trace_model pixel_replace" in \
        run_snakemake(tmp_path, tmp_path / "test-config.yaml", "-n", "-p").stdout
