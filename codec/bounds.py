"""Error-bound modes as registered objects: ``abs:E``, ``rel:E``, ``pwrel:E``.

A mode knows how to check its value, how it turns into per-value limits, which wire
modes the coder may use under it, and whether it needs each column's range first. The
codec, the peers, the metrics and the tests ask the mode instead of comparing strings,
and `Bound.allowed` is the one definition of "within the bound". Adding a mode is one
subclass of `BoundMode` and one `register_bound` line.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from balerc.formats.errors import InputError

_REGISTRY: dict[str, BoundMode] = {}
EXACT_FRACTION = 2.0**-24  # rel on a zero-range column: a limit whose step divides y exactly
_TINY = 2.0**-1000  # below this |y| x 2^-24 nears subnormals: keep E instead


class BoundMode(ABC):
    """One kind of per-value error bound (stateless; `Bound` pairs it with a value)."""

    name: ClassVar[str]
    pointwise: ClassVar[bool] = False  # limits scale with |y| (no single absolute value)
    needs_range: ClassVar[bool] = False  # limits come from each column's finite range
    wire_modes: ClassVar[frozenset[str]]  # column modes a coder may use (docs/FORMAT.md 5)
    model_mode: ClassVar[str]  # the wire mode letter(s) of a predicted column under this bound
    doc: ClassVar[str]

    def check(self, value: float) -> None:
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"the error bound must be a positive finite number, got {value!r} "
                             f"(example: --error-bound rel:1e-3)")

    @abstractmethod
    def absolute_from_range(self, value: float, lo: float, hi: float) -> float:
        """The absolute limit of a column whose finite values span [lo, hi]."""

    def limit(self, value: float, y: np.ndarray, absolute: float | None,
              out: np.ndarray | None = None) -> np.ndarray | float:
        """Per-value limits for original values y (absolute: the column's abs limit); a
        per-value limit goes into `out` when given (no allocation in the encoder's loop)."""
        assert absolute is not None
        return absolute


class AbsBound(BoundMode):
    name = "abs"
    wire_modes = frozenset("qp")
    model_mode = "p"
    doc = "|y - y'| <= E"

    def absolute_from_range(self, value: float, lo: float, hi: float) -> float:
        return value


class RelBound(BoundMode):
    name = "rel"
    needs_range = True
    wire_modes = frozenset("qp")
    model_mode = "p"
    doc = "|y - y'| <= E x (max - min) of the column (SZ's relative mode)"

    def absolute_from_range(self, value: float, lo: float, hi: float) -> float:
        """A constant column (range 0) is stored exactly: E x 0 asks for no error. The limit
        is |y| x 2^-24, a power-of-two fraction, so the quantizer's step divides y exactly
        (code 2^23, reconstruction y bit for bit) and the coder needs no special case; 0
        reproduces under any limit, so it keeps E."""
        if math.isnan(lo):
            return value
        rng = hi - lo
        if rng == 0.0:
            exact = abs(lo) * EXACT_FRACTION
            return exact if exact >= _TINY else value
        if not math.isfinite(rng):
            return value * max(abs(lo), 1.0)
        return value * rng


# mode g codes log2|y| / delta (|log2 y| <= 1075 for finite y != 0) must stay within
# 2^52 (exact in float64, and an offset the reader accepts): delta ~ 2.9 E >= 2.4e-13
_PWREL_FLOOR = 2.0 ** -43  # 1.1e-13: ~43 mantissa bits; finer is --lossless's job


class PwrelBound(BoundMode):
    name = "pwrel"
    pointwise = True
    wire_modes = frozenset("glrs")
    model_mode = "rs"  # s (feature scaled-pwrel) since 2026-12; r still read
    doc = "|y - y'| <= E x |y| pointwise (what mantissa truncation gives)"

    def check(self, value: float) -> None:
        super().check(value)
        if value >= 1:
            raise InputError(f"a pointwise relative bound must be < 1, got {value}")
        if value < _PWREL_FLOOR:  # below: log codes beyond 2^52 (and 1 + E == 1 under 2^-53)
            raise InputError(f"a pointwise relative bound must be at least {_PWREL_FLOOR:.3g} "
                             f"(43 mantissa bits), got {value}; to keep values exact use "
                             f"--lossless (or a 'GLOBS=lossless' bound)")

    def absolute_from_range(self, value: float, lo: float, hi: float) -> float:
        raise InputError("pointwise relative bounds have no single absolute value")

    def limit(self, value: float, y: np.ndarray, absolute: float | None,
              out: np.ndarray | None = None) -> np.ndarray | float:
        return np.multiply(np.abs(y, out=out), value, out=out)  # value x |y|


def register_bound(mode: BoundMode) -> BoundMode:
    """Make a bound mode known by its name (parse, header records, validation)."""
    _REGISTRY[mode.name] = mode
    return mode


def get_bound_mode(name: str) -> BoundMode:
    mode = _REGISTRY.get(name)
    if mode is None:
        raise InputError(f"unknown bound mode '{name}'; use one of {', '.join(_REGISTRY)}")
    return mode


def bound_modes() -> list[str]:
    return list(_REGISTRY)


for _m in (AbsBound(), RelBound(), PwrelBound()):
    register_bound(_m)
MODES = tuple(_REGISTRY)


@dataclass(frozen=True)
class Bound:
    """A per-value error bound: a registered mode and its value E."""

    mode: str
    value: float

    def __post_init__(self) -> None:
        get_bound_mode(self.mode).check(self.value)

    @property
    def kind(self) -> BoundMode:
        return _REGISTRY[self.mode]

    @property
    def pointwise(self) -> bool:
        return self.kind.pointwise

    @property
    def needs_range(self) -> bool:
        return self.kind.needs_range

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
                f"{', '.join(_REGISTRY)}, e.g. rel:1e-3"
            ) from None
        return cls(mode.strip().lower(), value)

    def __str__(self) -> str:
        return f"{self.mode}:{self.value:g}"

    def absolute(self, column: np.ndarray) -> float:
        """The absolute limit for a column in abs/rel modes (rel: its finite range)."""
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            return self.absolute_from_range(math.nan, math.nan)
        return self.absolute_from_range(float(finite.min()), float(finite.max()))

    def absolute_from_range(self, lo: float, hi: float) -> float:
        """Same as `absolute` from a column's finite (min, max); NaN when none is finite."""
        return self.kind.absolute_from_range(self.value, lo, hi)

    def limit(self, y: np.ndarray, absolute: float | None = None,
              out: np.ndarray | None = None) -> np.ndarray | float:
        """Per-value limits for the original values y (absolute: the column's limit,
        needed by abs and rel; computed from y when not given), into `out` if given."""
        if absolute is None and not self.pointwise:
            absolute = self.absolute(np.asarray(y, dtype=np.float64))
        return self.kind.limit(self.value, y, absolute, out)

    def allowed(self, y: np.ndarray, decoded: np.ndarray, absolute: float | None = None
                ) -> np.ndarray:
        """Which values are within the bound: the one definition everybody uses.

        Compared in float64; non-finite originals must come back bit-identical
        (the codec stores them verbatim).
        """
        y64 = np.asarray(y, dtype=np.float64)
        d64 = np.asarray(decoded, dtype=np.float64)
        finite = np.isfinite(y64)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.abs(y64 - d64) <= self.limit(y64, absolute)
        same_bits = _bits(y, len(y64)) == _bits(decoded, len(y64))
        return np.where(finite, ok, same_bits.all(axis=1))


def _bits(a: np.ndarray, n: int) -> np.ndarray:
    """Each value's bytes as a row (any stride or dtype)."""
    return np.ascontiguousarray(a).view(np.uint8).reshape(n, -1)
