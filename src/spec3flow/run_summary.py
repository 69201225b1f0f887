"""What a person wants to see when a run ends: where things are and how they look."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["product", "exp_type", "n_input_files", "median_snr", "wavelength_min", "wavelength_max"]


def describe(results: Path) -> str:
    products = sorted((results / "products").glob("*.fits"))
    plots = sorted((results / "qa").glob("*.png"))
    summary = results / "summary.csv"
    lines = [
        f"spec3flow results in {results}",
        f"  products:      {results / 'products'}  ({len(products)} files)",
        f"  quick-looks:   {results / 'qa'}  ({len(plots)} PNGs)",
        f"  summary table: {summary}",
        f"  associations:  {results / 'asn'}",
        f"  logs:          {results / 'logs'}   benchmarks: {results / 'benchmarks'}",
    ]
    report = results / "report.html"
    if report.exists():
        lines.append(f"  HTML report:   {report}")
    if summary.exists():
        table = pd.read_csv(summary)
        spectra = table[table["product_type"].isin(["x1d", "c1d"])]
        if len(spectra):
            with pd.option_context("display.width", 160, "display.max_colwidth", 60):
                lines += ["", "1D spectra:", spectra[[c for c in COLUMNS if c in spectra]].to_string(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spec3flow.run_summary", description=__doc__)
    parser.add_argument("results_dir", type=Path)
    args = parser.parse_args(argv)
    print(describe(args.results_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
