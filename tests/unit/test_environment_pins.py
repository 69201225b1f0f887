"""The three places that pin the environment agree (text parsing only, no imports of the pins).

- ``requirements.lock``: exact, hashed lock used by ``make demo`` / ``make test``;
- ``pyproject.toml``: the package's own dependencies;
- ``workflow/envs/spec3flow.yaml``: conda environment for ``snakemake --sdm conda``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
CONDA_ENV = ROOT / "workflow" / "envs" / "spec3flow.yaml"

#: Packages whose versions must be identical in all three files.
KEY_PACKAGES = ("jwst", "stpipe", "stdatamodels", "stcal", "crds", "gwcs", "snakemake",
                "astropy", "numpy", "asdf", "pandas")

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;\\,]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = _PIN.match(line)
        if m:
            name = _norm(m[1])
            assert name not in pins, f"{name} pinned twice"
            pins[name] = m[2]
    return pins


@pytest.fixture(scope="module")
def lock_pins() -> dict[str, str]:
    return _pins(line for line in LOCK.read_text().splitlines() if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        deps += extra
    return _pins(deps)


@pytest.fixture(scope="module")
def conda_env() -> dict:
    return yaml.safe_load(CONDA_ENV.read_text())


@pytest.fixture(scope="module")
def conda_pip_pins(conda_env) -> dict[str, str]:
    pip_sections = [d["pip"] for d in conda_env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "the conda environment needs exactly one pip section"
    return _pins(pip_sections[0])


def test_lock_is_exact_and_hashed():
    """Every requirement is '==' pinned and carries at least one sha256 hash (--require-hashes)."""
    text = LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")).strip())
    assert len(entries) > 50
    for entry in entries:
        head = entry.splitlines()[0]
        assert _PIN.match(head), f"not an exact pin: {head!r}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"no hash: {head!r}"


@pytest.mark.parametrize("package", KEY_PACKAGES)
def test_key_pins_agree(package, lock_pins, pyproject_pins, conda_pip_pins):
    versions = {
        "requirements.lock": lock_pins.get(package),
        "pyproject.toml": pyproject_pins.get(package),
        "workflow/envs/spec3flow.yaml": conda_pip_pins.get(package),
    }
    assert all(versions.values()), f"{package} is not pinned with == everywhere: {versions}"
    assert len(set(versions.values())) == 1, f"{package} pins disagree: {versions}"


def test_every_pyproject_pin_is_in_the_lock(lock_pins, pyproject_pins):
    mismatched = {n: (v, lock_pins.get(n)) for n, v in pyproject_pins.items() if lock_pins.get(n) != v}
    assert not mismatched, f"pyproject.toml vs requirements.lock: {mismatched}"


def test_conda_pip_section_is_the_lock(conda_pip_pins, lock_pins):
    """The conda environment's pip list is the lock's, pin for pin."""
    assert conda_pip_pins == lock_pins


def test_conda_env_python_and_channels(conda_env):
    assert conda_env["channels"][0] == "conda-forge"
    assert "defaults" not in conda_env["channels"]
    plain = [d for d in conda_env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in plain
    assert "pip" in plain


def test_slurm_executor_plugin_locked(lock_pins):
    assert lock_pins.get("snakemake-executor-plugin-slurm") == "2.8.0"
    assert "snakemake-executor-plugin-slurm-jobstep" in lock_pins
