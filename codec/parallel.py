"""Ordered, bounded-window parallel map: memory stays at chunk size x threads."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def parallel_ordered(func: Callable[[Any], Any], items: Iterable[Any], threads: int
                     ) -> Iterator[Any]:
    """Map func over items on a thread pool (numpy, zstd and ONNX Runtime release the
    GIL), yielding results in order with at most 2 x threads items in flight."""
    if threads <= 1:
        for item in items:
            yield func(item)
        return
    window: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for item in items:
            window.append(pool.submit(func, item))
            if len(window) >= 2 * threads:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
