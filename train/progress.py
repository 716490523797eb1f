"""A progress bar on stderr: tqdm when installed, else one self-overwriting line."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    m, s = divmod(seconds, 60)
    return f"{m}:{s:02d}"


class Progress:
    """Epoch progress with train/val loss and time left (up to the epoch limit)."""

    def __init__(self, total: int, enabled: bool, desc: str = "train", stream: TextIO | None = None):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.n = 0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                self._bar = None
            else:
                self._bar = tqdm(total=total, desc=desc, file=self.stream, unit="epoch",
                                 dynamic_ncols=True, leave=True)
        self.desc = desc

    def update(self, **values: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        post = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
            return
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.n * (self.total - self.n)
        text = " ".join(f"{k}={v}" for k, v in post.items())
        self.stream.write(f"\r{self.desc}: epoch {self.n}/{self.total} {text} "
                          f"elapsed {_fmt_time(elapsed)} left <= {_fmt_time(left)}   ")
        self.stream.flush()

    def close(self, note: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self.stream.write("\n")
        if note:
            self.stream.write(note + "\n")
            self.stream.flush()


def log(enabled: bool, message: str) -> None:
    """One informational line on stderr when progress output is on."""
    if enabled:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
