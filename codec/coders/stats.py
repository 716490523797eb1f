"""Measured errors per column, accumulated by encoder threads, for the summary and footer."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np


def finite_or_none(v: float | None) -> float | None:
    """JSON has no inf/NaN: report them as null (the summary is stored in the footer)."""
    return v if v is not None and math.isfinite(v) else None


class ColumnStats:
    """Max and RMS error per column (and max relative error at pwrel), mode counts."""

    def __init__(self, n_columns: int):
        self.max = np.zeros(n_columns)
        self.sumsq = np.zeros(n_columns)
        self.count = np.zeros(n_columns, dtype=np.int64)  # finite values: the RMS's n
        self.maxrel = np.zeros(n_columns)  # pwrel: max |y - y'| / |y|
        self.n = 0
        self.lo = np.full(n_columns, np.inf)  # original values' range (no bound: the report)
        self.hi = np.full(n_columns, -np.inf)
        self.new_sign = np.zeros(n_columns, dtype=np.int64)  # decoded sign differs
        self.modes: dict[str, int] = {}
        self._lock = threading.Lock()

    def account(self, j: int, err: np.ndarray, rel: np.ndarray | None = None,
                top: float | None = None, finite: int | None = None) -> None:
        """Add a chunk's errors of column j (`top`: err's max when the caller has it;
        `finite`: how many of the values are finite, when not all: NaN and Inf come back
        exactly, so their zero entries in err stay out of the RMS, as in `evaluate`). The
        reductions run before the lock is taken: only the merge is serialized."""
        if not err.size:
            return
        top = float(np.max(err)) if top is None else top
        worst = np.fmax.reduce(rel) if rel is not None else None  # NaN (0/0) is no error
        sq = float(np.square(err).sum())  # not np.dot: BLAS threads spin
        with self._lock:
            self.max[j] = max(self.max[j], top)
            if worst is not None:
                self.maxrel[j] = np.fmax(self.maxrel[j], worst)
            self.sumsq[j] += sq
            self.count[j] += err.size if finite is None else finite

    def account_values(self, j: int, y: np.ndarray, decoded: np.ndarray) -> None:
        """Without a bound: the original range and the values whose sign changed, so the
        summary can say when a reconstruction is far from the data."""
        fin = np.isfinite(y)
        if not fin.any():
            return
        yf, df = y[fin], decoded[fin]
        flipped = int(np.count_nonzero(np.sign(yf) * np.sign(df) < 0))
        with self._lock:
            self.lo[j] = min(self.lo[j], float(yf.min()))
            self.hi[j] = max(self.hi[j], float(yf.max()))
            self.new_sign[j] += flipped

    def chunk_done(self, rows: int, modes: list[str]) -> None:
        with self._lock:
            self.n += rows
            for m in modes:
                self.modes[m] = self.modes.get(m, 0) + 1

    def row(self, j: int, name: str, bound: float | None, pointwise: float | None,
            mode: str) -> dict[str, Any]:
        """One column's line of the report (bound: its absolute limit; pointwise: E)."""
        out = {
            "name": name,
            "bound": finite_or_none(bound),
            "max": finite_or_none(float(self.max[j])),
            "rms": finite_or_none(math.sqrt(self.sumsq[j] / self.count[j])
                                  if self.count[j] else 0.0),
            "max_over_bound": finite_or_none(float(self.max[j]) / bound) if bound else None,
            "mode": mode,
        }
        if bound is None and pointwise is None and self.hi[j] >= self.lo[j]:
            rng = float(self.hi[j] - self.lo[j])
            out["range"] = finite_or_none(rng)
            out["max_over_range"] = finite_or_none(float(self.max[j]) / rng) if rng > 0 else None
            out["new_sign"] = int(self.new_sign[j])
        if pointwise is not None:
            out["bound_text"] = f"{float(pointwise)!r}*|y|"  # as given: 2^-9 is 0.001953125
            out["max_rel"] = finite_or_none(float(self.maxrel[j]))
            out["max_over_bound"] = finite_or_none(float(self.maxrel[j]) / pointwise)
        return out


FAR_MAX_OVER_RANGE = 0.10  # without a bound: warn when a column's max error exceeds this


def far_from_data(rows: list[dict[str, Any]]) -> list[str]:
    """Warnings for a reconstruction without a bound that is far from the data: a max
    error above 10% of a column's range, or values whose sign changed."""
    far = [r for r in rows if (r.get("max_over_range") or 0.0) > FAR_MAX_OVER_RANGE]
    flipped = [r for r in rows if r.get("new_sign")]
    out = []
    if far:
        worst = max(far, key=lambda r: r["max_over_range"])
        out.append(f"{len(far)} column(s) have a max error above {FAR_MAX_OVER_RANGE:.0%} of "
                   f"their range (worst {worst['name']}: {worst['max_over_range']:.1%}): the "
                   f"reconstruction is far from the data; give --error-bound to guarantee one")
    if flipped:
        n = sum(r["new_sign"] for r in flipped)
        names = ", ".join(r["name"] for r in flipped[:5])
        out.append(f"{n:,} value(s) changed sign in {len(flipped)} column(s) ({names}"
                   f"{', ...' if len(flipped) > 5 else ''})")
    return out
