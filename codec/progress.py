"""Progress bars on stderr (tqdm), shown only when stderr is a terminal.

A log file or a pipe gets no carriage-return noise; `-q` turns them off everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextmanager
def progress(total: int, desc: str, unit: str = "it", enabled: bool = True) -> Iterator[Any]:
    """Yield a bar with update(k); silent when disabled, off a terminal, or for one step."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
               disable=not enabled or total <= 1 or not on_terminal())
    try:
        yield bar
    finally:
        bar.close()
