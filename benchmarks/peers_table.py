"""Print a markdown table of the peer compressors on real tables at balerc's error bounds.

    python benchmarks/peers_table.py [--data PATH ...] [--bounds rel:1e-3,pwrel:5e-4]
                                     [--rows N] [--dtype float64|float32|auto] [--repeats R]

Only float columns are compressed (a column is float when some value is not an integer);
the ratio's raw basis is the in-memory dtype (float64 unless --dtype says otherwise).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from balerc.cli.analysis.peers import PeerResult, compare
from balerc.codec.bounds import Bound

DATA = Path("/work/shared/data/skhep_testdata_subset")
DEFAULT_DATA = [DATA / "zmumu_2304.csv", DATA / "nano_ttbar_jets.csv"]
DEFAULT_BOUNDS = "rel:1e-2,rel:1e-3,rel:1e-4,pwrel:1e-3,pwrel:5e-4"


def float_columns(path: Path, rows: int | None = None) -> tuple[list[str], np.ndarray]:
    """The columns of a CSV that parse as numbers and are not all integers."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        names = next(reader)
        body = [r for _, r in zip(range(rows) if rows else iter(int, 1), reader, strict=False)]
    keep, cols = [], []
    for j, name in enumerate(names):
        try:
            col = np.array([float(r[j]) for r in body])
        except ValueError:
            continue
        finite = col[np.isfinite(col)]
        if finite.size and np.any(finite != np.round(finite)):
            keep.append(name)
            cols.append(col)
    return keep, np.stack(cols, axis=1)


def pick_dtype(x: np.ndarray, choice: str) -> np.ndarray:
    """auto: float32 when every value survives float32 exactly (NanoAOD stores float32)."""
    if choice == "auto":
        exact = np.array_equal(x.astype(np.float32).astype(np.float64), x, equal_nan=True)
        choice = "float32" if exact else "float64"
    return x.astype(choice)


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def row(dataset: str, r: PeerResult) -> str:
    held = "lossless" if r.bound_held is None else ("yes" if r.bound_held else "**NO**")
    cells = [
        dataset, r.bound, r.method, _num(r.ratio, ".2f"), _num(r.max_err_over_bound, ".3f"),
        held, _num(r.compress_mbps, ".1f"), _num(r.decompress_mbps, ".1f"), r.params,
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--bounds", default=DEFAULT_BOUNDS)
    ap.add_argument("--rows", type=int, default=None, help="read only the first N rows")
    ap.add_argument("--dtype", choices=["float64", "float32", "auto"], default="float64")
    ap.add_argument("--repeats", type=int, default=3, help="timings are the best of R runs")
    ap.add_argument("--methods", default=None, help="comma-separated peer names (default all)")
    args = ap.parse_args(argv)
    bounds = [Bound.parse(b) for b in args.bounds.split(",")]
    methods = args.methods.split(",") if args.methods else None

    print(
        "| dataset | bound | method | ratio | max err/bound | held | comp MB/s | decomp MB/s | params |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    skipped: list[str] = []
    for path in args.data:
        if not path.exists():
            skipped.append(f"{path}: not found, skipped")
            continue
        names, x = float_columns(path, args.rows)
        x = pick_dtype(x, args.dtype)
        label = f"{path.stem} ({x.shape[0]}x{x.shape[1]} {x.dtype})"
        for r in compare(x, bounds, methods, repeats=args.repeats):
            if r.skipped:
                skipped.append(f"{path.stem} {r.method} at {r.bound}: {r.skipped}")
            else:
                print(row(label, r))
    for line in skipped:
        print(f"\n- skipped: {line}", end="")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
