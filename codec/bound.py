"""Error-bound specifications: ``abs:E``, ``rel:E`` and ``pwrel:E``.

A bound is parsed once from the user's string and turned into per-column absolute bounds
for the data at hand, so every coder downstream works with one number per column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from balerc.formats.errors import InputError

MODES = ("abs", "rel", "pwrel")


@dataclass(frozen=True)
class Bound:
    """A per-value error bound.

    abs:   |y - y'| <= value
    rel:   |y - y'| <= value * (max(y) - min(y)) of the column (SZ's relative mode)
    pwrel: |y - y'| <= value * |y| pointwise (what mantissa truncation gives)
    """

    mode: str
    value: float

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown bound mode '{self.mode}'; use one of {', '.join(MODES)}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise InputError(
                f"the error bound must be a positive finite number, got {self.value!r} "
                f"(example: --error-bound rel:1e-3)"
            )
        if self.mode == "pwrel" and self.value >= 1:
            raise InputError(f"a pointwise relative bound must be < 1, got {self.value}")

    @classmethod
    def parse(cls, text: str | Bound) -> Bound:
        """Parse 'abs:1e-3', 'rel:1e-3' or 'pwrel:5e-4' (a bare number means rel)."""
        if isinstance(text, Bound):
            return text
        s = str(text).strip()
        mode, sep, num = s.partition(":")
        if not sep:
            mode, num = "rel", s
        try:
            value = float(num)
        except ValueError:
            raise InputError(
                f"cannot read the error bound '{text}'; write MODE:VALUE with MODE one of "
                f"{', '.join(MODES)}, e.g. rel:1e-3"
            ) from None
        return cls(mode.strip().lower(), value)

    def __str__(self) -> str:
        return f"{self.mode}:{self.value:g}"

    def absolute(self, column: np.ndarray) -> float:
        """The absolute bound for a column in abs/rel modes (rel uses the finite range).

        A constant column in rel mode gets a bound of value * max(|y|, 1): a zero range
        would otherwise ask for lossless storage of every value.
        """
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            return self.absolute_from_range(math.nan, math.nan)
        return self.absolute_from_range(float(finite.min()), float(finite.max()))

    def absolute_from_range(self, lo: float, hi: float) -> float:
        """Same as `absolute` from a column's finite (min, max); NaN when none is finite."""
        if self.mode == "abs":
            return self.value
        if self.mode == "rel":
            if math.isnan(lo):
                return self.value
            rng = hi - lo
            if rng == 0.0 or not math.isfinite(rng):
                return self.value * max(abs(lo), 1.0)
            return self.value * rng
        raise InputError("pointwise relative bounds have no single absolute value")
