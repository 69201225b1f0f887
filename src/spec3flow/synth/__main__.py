"""CLI: ``python -m spec3flow.synth --mode mos|fs|lrs|wfss|all --outdir D [--n-sources N] [--seed S]``.

Writes synthetic Stage 2 ``*_cal.fits`` files plus truth CSVs into ``--outdir``.
Modes use different observation numbers of one program so they can share a directory:
MOS obs 001, FS obs 002, MIRI LRS obs 003.  ``--mode wfss`` (not part of ``all``)
writes NIS_WFSS (obs 010), NRC_WFSS (obs 011) and MIR_WFSS (obs 012), each with
``--wfss-sources`` sources (default 4) over ``--wfss-dithers`` dithers (default 3).
``--mode ifu`` (not part of ``all``) = ``nrs_ifu`` (NRS_IFU, obs 006) + ``mrs`` (MIR_MRS,
obs 005), ``--n-dithers`` dither positions each (default 4), ``--nrs-ifu-nx`` NRS_IFU
wavelength columns (default 100; a real NRS1 frame is 2048 wide) and ``--mrs-ny`` MIR_MRS
rows (default 80; real MRS cal files are 1024 x 1032); ``--ifu-background`` adds a
uniform sky and dedicated background observations (NRS_IFU obs 007, MIR_MRS obs 008,
``--ifu-background-exposures`` exposures per detector, default 2) with their Stage 2 x1d.
``--mode soss`` (not part of ``all``) writes one non-TSO NIS_SOSS exposure (obs 020,
SUBSTRIP96, ``--soss-nints`` integrations, default 3).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import DEFAULT_PROGRAM

MODES = ("mos", "fs", "lrs")
IFU_MODES = ("nrs_ifu", "mrs")
EXTRA_MODES = ("wfss", "soss")  # not included in --mode all


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
    if mode == "nrs_ifu":
        from .nirspec_ifu import generate_nirspec_ifu

        return generate_nirspec_ifu(args.outdir, seed=args.seed, program=args.program,
                                    n_dithers=args.n_dithers, background=args.ifu_background,
                                    n_background=args.ifu_background_exposures,
                                    **({"nx": args.nrs_ifu_nx} if args.nrs_ifu_nx else {}))
    if mode == "mrs":
        from .miri_mrs import generate_miri_mrs

        return generate_miri_mrs(args.outdir, seed=args.seed, program=args.program,
                                 n_dithers=args.n_dithers, background=args.ifu_background,
                                 n_background=args.ifu_background_exposures,
                                 **({"ny": args.mrs_ny} if args.mrs_ny else {}))
    if mode == "soss":  # slitless (SOSS)
        from .soss import generate_soss

        return generate_soss(args.outdir, seed=args.seed, program=args.program,
                             nints=args.soss_nints)
    raise ValueError(mode)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spec3flow.synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES + ("all",) + EXTRA_MODES + IFU_MODES + ("ifu",),
                   default="all",
                   help="'all' = mos, fs, lrs; wfss = NIS/NRC/MIR_WFSS; ifu = nrs_ifu, mrs")
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
    p.add_argument("--soss-nints", type=int, default=3,
                   help="NIS_SOSS integrations (obs 020, SUBSTRIP96; >= 2, default 3)")
    p.add_argument("--n-dithers", type=int, default=4,
                   help="IFU dither positions (nrs_ifu, mrs; 1-4, default 4)")
    p.add_argument("--nrs-ifu-nx", type=int, default=None,
                   help="NRS_IFU wavelength columns of the 960-row cut-out (default 100; "
                        "a real NRS1 frame is 2048 wide)")
    p.add_argument("--mrs-ny", type=int, default=None,
                   help="MIR_MRS rows (wavelength samples) of the x 1032 arrays (default 80; "
                        "real MRS cal files are 1024 x 1032)")
    p.add_argument("--ifu-background", action="store_true",
                   help="IFU: uniform sky in every exposure plus dedicated background "
                        "exposures (NRS_IFU obs 007, MIR_MRS obs 008) and their x1d")
    p.add_argument("--ifu-background-exposures", type=int, default=2,
                   help="IFU background exposures per detector (1-4, default 2)")
    p.add_argument("--moving-target", action="store_true",
                   help="make the written science exposures a moving-target program (TARGTYPE MOVING)")
    args = p.parse_args(argv)

    modes = {"all": MODES, "ifu": IFU_MODES}.get(args.mode, (args.mode,))
    for mode in modes:
        t0 = time.perf_counter()
        files = _run_mode(mode, args)
        if args.moving_target:
            from spec3flow.synth.moving import mark_moving_target

            mark_moving_target([f for f in map(Path, files) if f.name.endswith("_cal.fits")])
        dt = time.perf_counter() - t0
        print(f"{mode}: wrote {len(files)} files to {args.outdir} in {dt:.1f} s")
        for f in files:
            print(f"  {Path(f).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
