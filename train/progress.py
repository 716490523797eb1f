"""Training progress on stderr: tqdm, only on a terminal; one-line notes."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Epoch progress with train/val loss (tqdm on stderr, only on a terminal)."""

    def __init__(self, total: int, enabled: bool, desc: str = "train", stream: TextIO | None = None):
        from tqdm import tqdm

        from balerc.codec.progress import on_terminal

        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.n = 0
        self.desc = desc
        self._bar = tqdm(total=total, desc=desc, file=self.stream, unit="epoch",
                         dynamic_ncols=True, leave=True,
                         disable=not enabled or (stream is None and not on_terminal()))

    def update(self, **values: float) -> None:
        self.n += 1
        post = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in values.items()}
        self._bar.set_postfix(post, refresh=False)
        self._bar.update(1)

    def close(self, note: str = "") -> None:
        self._bar.close()
        if note and self.enabled:
            self.stream.write(note + "\n")
            self.stream.flush()


def log(enabled: bool, message: str) -> None:
    """One informational line on stderr when progress output is on."""
    if enabled:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
