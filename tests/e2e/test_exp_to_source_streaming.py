"""The streaming exp_to_source job writes what jwst's multislit_to_container gives.

The job holds one exposure at a time (spec3flow.streaming); the reference here is jwst's
own all-at-once function on the same association, saved the way the job saves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import crds_environment, make_program

pytestmark = pytest.mark.e2e


def test_streamed_sources_equal_multislit_to_container(tmp_path, crds_cache, monkeypatch):
    for key, value in crds_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    from jwst.associations.lib.rules_level3_base import format_product
    from jwst.exp_to_source import multislit_to_container

    from spec3flow import execute
    from spec3flow.compare import compare_files
    from spec3flow.dag import Dag
    from spec3flow.plan import build_plan

    input_dir = make_program(tmp_path / "input", ("mos",), 4, 11)  # with the BKG slitlet
    plan = build_plan(input_dir, tmp_path / "results" / "asn", ["NRS_MSASPEC"])
    (job,) = Dag(plan, str(tmp_path / "results"), {}).jobs_of("exp_to_source")
    asn = Path(job.asn)
    execute.run_step("exp_to_source", asn, [], [Path(p) for p in job.outputs],
                     run_before=tuple(job.run_before))

    reference = tmp_path / "reference"
    reference.mkdir()
    pipe = execute.build_pipeline(asn, {})
    template = json.loads(asn.read_text())["products"][0]["name"]
    names = []
    for result in multislit_to_container(execute.open_association(asn)).values():
        name = f"{format_product(template, source_id=pipe._create_nrsmos_source_id(result))}_cal.fits"
        result.multiexposure.save(str(reference / name))
        names.append(name)

    assert any("_b0" in n for n in names), names  # the background slitlet is a source
    assert sorted(names) == sorted(Path(p).name for p in job.outputs)
    for name in names:
        diff = compare_files(Path(job.outputs[0]).parent / name, reference / name)
        assert diff.arrays_equal and not diff.keyword_diffs, (name, diff)
    assert not list(Path(job.outputs[0]).parent.glob(".spec3flow-*"))  # scratch removed
