"""Header skeletons plan exactly like the real generator's programs of the same size
(the dry-run benchmark, bench/dryrun_scale.py, relies on it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spec3flow.plan import _scan_slit_keywords, build_plan
from spec3flow.synth.nirspec import generate_nirspec_mos
from spec3flow.synth.skeleton import card, write_mos_skeleton

N = 5


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """(real program, skeleton) of N sources; the skeleton's template is made on the fly."""
    real = tmp_path_factory.mktemp("real")
    generate_nirspec_mos(real, n_sources=N, write_spectra=False)
    skeleton = tmp_path_factory.mktemp("skeleton")
    write_mos_skeleton(skeleton, N)
    return real, skeleton


def _plan(input_dir: Path, tmp: Path):
    plan = build_plan(input_dir, tmp / "asn", ["NRS_MSASPEC"])
    return [(p.asn_name, p.name, [Path(s).name for s in p.science],
             [(s.stem, s.source_id, s.exposures) for s in p.sources]) for p in plan.products]


def test_plan_matches_real_program(programs, tmp_path):
    real, skeleton = programs
    got = _plan(skeleton, tmp_path / "skeleton")
    assert got == _plan(real, tmp_path / "real")
    (_, _, science, sources), = got
    assert len(science) == 3
    stems = [s[0] for s in sources]
    assert stems == [f"jw01234-o001_s{i:09d}_nirspec_f170lp-g235m" for i in range(1, N + 1)] + [
        f"jw01234-o001_b{N + 1000:09d}_nirspec_f170lp-g235m"]
    assert sources[1][2] == science[:2]  # source 2 is missing from the last exposure


def test_headers_match_real_program(programs):
    """Same files, same HDU layout and cards; slit identity cards equal, data tiny."""
    real, skeleton = programs
    names = sorted(p.name for p in real.glob("*_cal.fits"))
    assert names == sorted(p.name for p in skeleton.glob("*_cal.fits"))
    for name in names:
        with fits.open(real / name) as r, fits.open(skeleton / name) as s:
            assert [h.name for h in r if h.name != "ASDF"] == [h.name for h in s]
            skip = {"DATE", "COMMENT"}
            assert ({k: v for k, v in r[0].header.items() if k not in skip}
                    == {k: v for k, v in s[0].header.items() if k not in skip})
            for hr, hs in zip(r[1:], s[1:]):
                keys = [k for k in hr.header if hr.name == "SCI" or k not in ("NAXIS1", "NAXIS2")]
                assert keys == list(hs.header), (name, hr.name)  # data-less: no NAXISn
                for key in ("EXTNAME", "EXTVER", "SLTNAME", "SLITID", "SOURCEID", "SRCNAME",
                            "SRCALIAS", "SRCTYPE", "SHUTSTA", "BUNIT"):
                    assert hr.header.get(key) == hs.header.get(key), (name, hr.name, key)
                assert hs.data is None or hs.data.shape == (1, 1)


def test_scanner_reads_skeleton_directly(programs):
    """plan's fast header scan (not its astropy fallback) understands the files."""
    _, skeleton = programs
    for path in sorted(skeleton.glob("*_cal.fits")):
        with fits.open(path) as hdul:
            expected = [{k: h.header.get(k) for k in ("SLTNAME", "SOURCEID", "SRCNAME")}
                        for h in hdul if h.name == "SCI"]
        assert _scan_slit_keywords(path) == expected


@pytest.mark.parametrize("value", ["01234_1", "", "it's", "01234_BKG10002", 7, -3, True, False,
                                   0.14194435176091072, -27.793157464223388, 2.33867046545118e-06,
                                   1e300, np.float64(53.1), np.int64(12)])
def test_card_formats_like_astropy(value):
    assert card("SRCNAME", value, "Source name") == fits.Card("SRCNAME", value, "Source name").image


def test_rejects_too_few_sources(tmp_path):
    with pytest.raises(ValueError, match="n_sources"):
        write_mos_skeleton(tmp_path, 1)
