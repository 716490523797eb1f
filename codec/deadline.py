"""A time limit on decoding: the one bound on work that the file cannot set.

The sandbox (codec/sandbox.py) bounds a decoder's work per row, not per file: a few kB
holding a million constant rows and a decoder near its limits (~4 million multiply-adds
per row) decode for about a minute per million rows on one core, within the memory cap.
A service that opens files from elsewhere sets a limit (`timeout=` seconds, `balerc
decompress --timeout`, or BALERC_DECODE_TIMEOUT); a decode past it stops with a
TimeLimitError (a LimitError) naming the file. It is checked before every chunk and
before every block of rows ONNX Runtime runs (runtime.ROW_BLOCK rows on the CPU: at most
~1 s of work within the sandbox's limits), so it stops within about a second of the limit.

The limit lives in a context variable: nested decodes (the sections of one file) share
the outermost, earliest deadline, and parallel_ordered carries it into worker threads.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from balerc.formats.errors import InputError, TimeLimitError

TIMEOUT_ENV = "BALERC_DECODE_TIMEOUT"


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() past which decoding stops
    seconds: float
    source: str

    def check(self, doing: str) -> None:
        if time.monotonic() > self.at:
            raise TimeLimitError(
                f"{self.source}: decoding stopped at the {self.seconds:g} s time limit "
                f"(timeout= / --timeout / {TIMEOUT_ENV}) while {doing}; raise the limit if "
                f"you trust this file")


_current: ContextVar[Deadline | None] = ContextVar("balerc_decode_deadline", default=None)


def check_seconds(seconds: float | None, what: str = "timeout") -> float | None:
    """A positive, finite number of seconds (or None: no limit)."""
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what}={seconds!r} is not a positive number of seconds "
                         f"(e.g. 60); leave it unset for no limit")
    return value


def from_env() -> float | None:
    """BALERC_DECODE_TIMEOUT in seconds, or None when unset or empty."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    return check_seconds(text, TIMEOUT_ENV) if text else None


@contextmanager
def limit(seconds: float | None, source: str) -> Iterator[None]:
    """Decode within `seconds`. None: the enclosing limit if there is one, else
    BALERC_DECODE_TIMEOUT if set; an enclosing limit that ends earlier stays in force."""
    outer = _current.get()
    if seconds is None and outer is None:
        seconds = from_env()
    elif seconds is not None:
        seconds = check_seconds(seconds)
    if seconds is None or (outer is not None and outer.at <= time.monotonic() + seconds):
        yield
        return
    token = _current.set(Deadline(time.monotonic() + seconds, seconds, source))
    try:
        yield
    finally:
        _current.reset(token)


def check(doing: str) -> None:
    """Raise TimeLimitError (a LimitError) if the current decode's time limit has passed."""
    current = _current.get()
    if current is not None:
        current.check(doing)
