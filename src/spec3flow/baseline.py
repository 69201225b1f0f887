"""The reference run: Spec3Pipeline itself on the same associations.

Used by the equivalence tests and the benchmark, and by users who want to check a
workflow run against the monolithic pipeline on their own data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def run_spec3pipeline(asn_paths: list[Path], output_dir: Path, steps: dict | None = None) -> None:
    """``strun calwebb_spec3 <asn> --save_results --output_dir [--steps.x.y=v]``, one after another."""
    from jwst.pipeline import Spec3Pipeline

    output_dir.mkdir(parents=True, exist_ok=True)
    for asn in asn_paths:
        Spec3Pipeline.call(os.fspath(asn), save_results=True, output_dir=os.fspath(output_dir),
                           steps=steps or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spec3flow.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("asn", type=Path, nargs="+", help="Level 3 association files")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", default="{}", help="JSON of step parameters, as the workflow's `steps`")
    args = parser.parse_args(argv)
    run_spec3pipeline(args.asn, args.output_dir, json.loads(args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
