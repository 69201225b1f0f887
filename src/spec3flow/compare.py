"""Compare two processings product by product: the workflow's equivalence check.

Arrays and table columns are compared exactly (NaN must sit in the same places);
header keywords are compared too, minus those that record when or how a file was
written rather than what it holds.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

#: Keywords that differ between any two runs (dates, file names, checksums).
VOLATILE_KEYWORDS = frozenset({
    "DATE", "FILENAME", "CHECKSUM", "DATASUM", "IRAF-TLM", "ASNTABLE",
})
#: Table columns that record when inputs were written (resample's HDRTAB).
VOLATILE_COLUMNS = frozenset({("HDRTAB", "DATE")})
#: ASDF extension holds the serialized tree (with dates); its arrays are compared elsewhere.
SKIP_EXTENSIONS = frozenset({"ASDF"})


@dataclass
class FileDiff:
    name: str
    max_abs_diff: float = 0.0
    nan_mismatch: int = 0
    shape_mismatch: list[str] = field(default_factory=list)
    keyword_diffs: list[str] = field(default_factory=list)

    @property
    def arrays_equal(self) -> bool:
        return self.max_abs_diff == 0.0 and self.nan_mismatch == 0 and not self.shape_mismatch


def _array_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a64, b64 = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        nan_a, nan_b = np.isnan(a64), np.isnan(b64)
        both = ~nan_a & ~nan_b
        diff = float(np.max(np.abs(a64[both] - b64[both]), initial=0.0))
        return diff, int(np.count_nonzero(nan_a != nan_b))
    if a.dtype.kind in "iub":
        return float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)), initial=0)), 0
    return (0.0 if np.array_equal(a, b) else np.inf), 0


def _keyword_equal(va, vb, rtol: float) -> bool:
    if va == vb:
        return True
    if isinstance(va, float) and isinstance(vb, float):
        if np.isnan(va) and np.isnan(vb):
            return True
        return abs(va - vb) <= rtol * max(abs(va), abs(vb))
    return False


def compare_files(path_a: Path, path_b: Path, ignore_keywords=VOLATILE_KEYWORDS,
                  keyword_rtol: float = 0.0) -> FileDiff:
    """Arrays exactly; header keywords exactly, or floats within ``keyword_rtol``."""
    result = FileDiff(name=Path(path_a).name)
    with fits.open(path_a) as ha, fits.open(path_b) as hb:
        names_a = [(h.name, h.ver) for h in ha]
        names_b = [(h.name, h.ver) for h in hb]
        if names_a != names_b:
            result.shape_mismatch.append(f"extensions differ: {names_a} vs {names_b}")
            return result
        for hdu_a, hdu_b in zip(ha, hb):
            label = f"{hdu_a.name},{hdu_a.ver}"
            for key in set(hdu_a.header) | set(hdu_b.header):
                if key in ignore_keywords or key.startswith(("NAXIS", "TFORM", "TDIM")):
                    continue
                va, vb = hdu_a.header.get(key), hdu_b.header.get(key)
                if not _keyword_equal(va, vb, keyword_rtol):
                    result.keyword_diffs.append(f"{label} {key}: {va!r} != {vb!r}")
            if hdu_a.name in SKIP_EXTENSIONS or hdu_a.data is None and hdu_b.data is None:
                continue
            da, db = hdu_a.data, hdu_b.data
            if isinstance(da, fits.FITS_rec):
                if da.columns.names != db.columns.names or len(da) != len(db):
                    result.shape_mismatch.append(f"{label}: table layout differs")
                    continue
                columns = [(f"{label}:{c}", np.asarray(da[c]), np.asarray(db[c])) for c in da.columns.names
                           if (hdu_a.name, c) not in VOLATILE_COLUMNS]
            else:
                columns = [(label, np.asarray(da), np.asarray(db))]
            for col_label, a, b in columns:
                if a.shape != b.shape:
                    result.shape_mismatch.append(f"{col_label}: shape {a.shape} vs {b.shape}")
                    continue
                diff, nans = _array_diff(a, b)
                result.max_abs_diff = max(result.max_abs_diff, diff)
                result.nan_mismatch += nans
    return result


def compare_dirs(dir_a: Path, dir_b: Path, pattern: str = "*.fits",
                 keyword_rtol: float = 0.0) -> tuple[list[str], list[str], list[FileDiff]]:
    """(only in a, only in b, per-file diffs for the common names)."""
    names_a = {p.name for p in Path(dir_a).glob(pattern)}
    names_b = {p.name for p in Path(dir_b).glob(pattern)}
    diffs = [compare_files(Path(dir_a) / n, Path(dir_b) / n, keyword_rtol=keyword_rtol)
             for n in sorted(names_a & names_b)]
    return sorted(names_a - names_b), sorted(names_b - names_a), diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Compare the FITS products of two directories")
    parser.add_argument("dir_a", type=Path)
    parser.add_argument("dir_b", type=Path)
    parser.add_argument("--keywords", action="store_true", help="list differing header keywords")
    args = parser.parse_args(argv)
    only_a, only_b, diffs = compare_dirs(args.dir_a, args.dir_b)
    for name in only_a:
        print(f"only in {args.dir_a}: {name}")
    for name in only_b:
        print(f"only in {args.dir_b}: {name}")
    for d in diffs:
        status = "equal" if d.arrays_equal else "DIFFERENT"
        print(f"{d.name}: arrays {status}; max|diff|={d.max_abs_diff:g}; nan mismatches={d.nan_mismatch}; "
              f"{len(d.keyword_diffs)} keyword differences")
        for line in d.shape_mismatch + (d.keyword_diffs if args.keywords else []):
            print(f"    {line}")
    return 0 if not only_a and not only_b and all(d.arrays_equal for d in diffs) else 1


if __name__ == "__main__":
    sys.exit(main())
