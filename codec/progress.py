"""A progress bar on stderr for long runs: tqdm when installed, a plain line otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Plain:
    """Minimal bar: rewrites one stderr line at most twice a second."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._t0 = self._last = time.monotonic()

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self._last > 0.5 or self.n >= self.total:
            self._last = now
            el = now - self._t0
            left = el / self.n * (self.total - self.n) if self.n else 0.0
            sys.stderr.write(f"\r{self.desc}: {self.n}/{self.total} {self.unit}s, {el:.0f}s, ~{left:.0f}s left")
            sys.stderr.flush()

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        sys.stderr.write("\n")


class _Null:
    def update(self, k: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@contextmanager
def progress(total: int, desc: str, unit: str = "it", enabled: bool = True) -> Iterator[Any]:
    """Yield an object with update(k); silent when disabled or when there is one step."""
    if not enabled or total <= 1:
        bar: Any = _Null()
    else:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        except ImportError:
            bar = _Plain(total, desc, unit)
    try:
        yield bar
    finally:
        bar.close()
