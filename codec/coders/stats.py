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
        self.maxrel = np.zeros(n_columns)  # pwrel: max |y - y'| / |y|
        self.n = 0
        self.modes: dict[str, int] = {}
        self._lock = threading.Lock()

    def account(self, j: int, err: np.ndarray, rel: np.ndarray | None = None) -> None:
        with self._lock:
            if err.size:
                self.max[j] = max(self.max[j], float(np.max(err)))
                if rel is not None:
                    self.maxrel[j] = max(self.maxrel[j], float(np.max(rel)))
                self.sumsq[j] += float(np.square(err).sum())  # not np.dot: BLAS threads spin

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
            "rms": finite_or_none(math.sqrt(self.sumsq[j] / self.n) if self.n else 0.0),
            "max_over_bound": finite_or_none(float(self.max[j]) / bound) if bound else None,
            "mode": mode,
        }
        if pointwise is not None:
            out["bound_text"] = f"{pointwise:.3g}*|y|"
            out["max_rel"] = finite_or_none(float(self.maxrel[j]))
            out["max_over_bound"] = finite_or_none(float(self.maxrel[j]) / pointwise)
        return out
