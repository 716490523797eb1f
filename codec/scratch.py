"""Chunk-sized work arrays reused from one chunk to the next, per thread.

A fresh 8 MB numpy array is not free: glibc hands it out as new pages (mmap, or a heap
it trims again on free), and the kernel faults and zeroes every page on first touch,
about 1 ms per array here. An encoder that allocates eight such (columns x rows)
arrays per chunk spent a fifth of a model-free compress on that (measured: 91 -> 116
MB/s with glibc told to keep freed memory). A `Scratch` belongs to one coder and hands
each thread its own arrays, so nothing is shared between threads and everything is
freed with the coder. Only arrays that never leave the call may come from here.
"""

from __future__ import annotations

import threading

import numpy as np


class Scratch(threading.local):
    """Per-thread arrays by name; a name asked with a new shape or dtype is replaced."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type = np.float64
              ) -> np.ndarray:
        """An uninitialized array of this shape and dtype (the caller overwrites it)."""
        a = self.arrays.get(name)
        if a is None or a.shape != shape or a.dtype != np.dtype(dtype):
            self.arrays.pop(name, None)  # free the old one before allocating its successor
            a = self.arrays[name] = np.empty(shape, dtype)
        return a
