"""Checks of the Python API's arguments at its edge, so a wrong type is an InputError that
names the argument, never a TypeError from deep inside (numpy integers, as pipelines
pass them, are accepted as the integers they are)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from balerc.formats.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
ZSTD_LEVELS = (-(1 << 17), 22)  # zstd's negative (fast) levels to its strongest


def count_or_default(value: Any, name: str, default: Callable[[], int]) -> int:
    """A worker or thread count: None or 0 means `default()` (the cores this process may
    use), anything else an integer >= 1."""
    if value is None or (not isinstance(value, (bool, np.bool_)) and value == 0):
        return default()
    return integer(value, name, 1)


def integer(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    """`value` as an int within [lo, hi]; bools, floats and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        span = f"between {lo:,} and {hi:,}" if hi is not None else f"at least {lo:,}"
        raise InputError(f"{name} must be {span}, got {v:,}")
    return v


def flag(value: Any, name: str) -> bool:
    """`value` as a bool; 'no', 0 or None are refused (bool('no') is True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def device(value: Any, name: str = "device") -> str:
    if value not in DEVICES:
        raise InputError(f"{name} must be one of {', '.join(DEVICES)}, got {value!r}")
    return str(value)


def patterns(value: Any, name: str) -> list[str] | None:
    """Column or section selectors: a lone string is one pattern (not its characters)."""
    return names([value] if isinstance(value, str) else value, name)


def names(value: Any, name: str) -> list[str] | None:
    """A list of column names or patterns (None: all); a lone string is refused: it is
    not split into characters."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InputError(f"{name} must be a list of names, got {value!r}; for one name "
                         f"write [{value!r}]")
    out = list(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise InputError(f"{name} must hold strings, got {bad[:3]!r}")
    return out


def unique_names(keys: list[str], what: str) -> None:
    """Column names must be unique after str(): {1: x, '1': y} had kept only y."""
    seen: set[str] = set()
    dup = sorted({k for k in keys if k in seen or seen.add(k)})
    if dup:
        raise InputError(f"{what} has duplicate column names {dup[:5]} (after conversion to "
                         f"text); column names must be unique")


def ranges(value: Any, bound: Any, name: str = "ranges") -> Any:
    """{column: (min, max)}, only under a rel bound (the pairs are checked where they are
    used: plan._declared_range)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{name} must be a dict {{column: (min, max)}}, got "
                         f"{type(value).__name__}")
    if bound is not None and not getattr(bound, "needs_range", True):
        raise InputError(f"{name} sets the range a rel bound is a fraction of; the bound here "
                         f"is {bound}: leave {name} out")
    return value
