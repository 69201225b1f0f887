"""CLI: ``python -m spec3flow.synth --mode mos|fs|lrs|wfss|all --outdir D [--n-sources N] [--seed S]``.

Writes synthetic Stage 2 ``*_cal.fits`` files plus truth CSVs into ``--outdir``.
Modes use different observation numbers of one program so they can share a directory:
MOS obs 001, FS obs 002, MIRI LRS obs 003.  ``--mode wfss`` (not part of ``all``)
writes NIS_WFSS (obs 010), NRC_WFSS (obs 011) and MIR_WFSS (obs 012), each with
``--wfss-sources`` sources (default 4) over ``--wfss-dithers`` dithers (default 3).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import DEFAULT_PROGRAM

MODES = ("mos", "fs", "lrs")
EXTRA_MODES = ("wfss",)  # not included in --mode all


def _run_mode(mode: str, args) -> list[Path]:
    if mode == "mos":
        from .nirspec import generate_nirspec_mos

        return generate_nirspec_mos(
            args.outdir, n_sources=args.n_sources, seed=args.seed, program=args.program,
            n_nods=args.n_nods, background_slitlet=not args.no_background_slitlet,
            virtual_slit=args.virtual_slit, nx=args.nx,
        )
    if mode == "fs":
        from .nirspec import generate_nirspec_fs

        return generate_nirspec_fs(args.outdir, seed=args.seed, program=args.program,
                                   n_nods=args.n_nods, nx=args.nx)
    if mode == "lrs":
        from .miri_lrs import generate_miri_lrs  # written separately; imported lazily

        return generate_miri_lrs(args.outdir, seed=args.seed, program=args.program)
    if mode == "wfss":
        from .wfss import generate_all_wfss

        return generate_all_wfss(args.outdir, n_sources=args.wfss_sources,
                                 n_dithers=args.wfss_dithers, seed=args.seed,
                                 program=args.program)
    raise ValueError(mode)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spec3flow.synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES + ("all",) + EXTRA_MODES, default="all",
                   help="'all' = mos, fs, lrs; wfss = NIS/NRC/MIR_WFSS")
    p.add_argument("--outdir", required=True, type=Path)
    p.add_argument("--n-sources", type=int, default=5, help="MOS sources (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--program", default=DEFAULT_PROGRAM, help="5-digit program id")
    p.add_argument("--n-nods", type=int, default=3, help="nod positions (MOS, FS)")
    p.add_argument("--nx", type=int, default=300,
                   help="NIRSpec slit cutout length in wavelength pixels (default 300)")
    p.add_argument("--virtual-slit", action="store_true", help="MOS: add a virtual slit")
    p.add_argument("--no-background-slitlet", action="store_true",
                   help="MOS: leave out the BKG slitlet")
    p.add_argument("--wfss-sources", type=int, default=4, help="WFSS sources (default 4)")
    p.add_argument("--wfss-dithers", type=int, default=3, help="WFSS dithers (default 3)")
    args = p.parse_args(argv)

    modes = MODES if args.mode == "all" else (args.mode,)
    for mode in modes:
        t0 = time.perf_counter()
        files = _run_mode(mode, args)
        dt = time.perf_counter() - t0
        print(f"{mode}: wrote {len(files)} files to {args.outdir} in {dt:.1f} s")
        for f in files:
            print(f"  {Path(f).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
