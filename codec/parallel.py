"""Ordered, bounded-window parallel map: memory stays at chunk size x threads."""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def parallel_ordered(func: Callable[[Any], Any], items: Iterable[Any], threads: int
                     ) -> Iterator[Any]:
    """Map func over items on a thread pool (numpy, zstd and ONNX Runtime release the
    GIL), yielding results in order with at most 2 x threads items in flight. Each item
    runs in a copy of the caller's context (the decode time limit, codec/deadline.py)."""
    if threads <= 1:
        for item in items:
            yield func(item)
        return
    window: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for item in items:
            window.append(pool.submit(contextvars.copy_context().run, func, item))
            if len(window) >= 2 * threads:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
