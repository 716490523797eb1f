"""balerc in zarr v3 vs zarr's default (zstd), numcodecs Quantize(+zstd) and ZFPY: bytes,
write/read MB/s and whether the bound held, on a generated dimuon (N x 15) float64 array.

    python benchmarks/zarr_codec.py [rows] [chunk_rows]     # defaults: 1_000_000 65536
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import zarr
from zarr.codecs.numcodecs import Quantize

from balerc.codec.zarr_codec import BalercZarrCodec
from balerc.formats import toy

E = 1e-3  # absolute bound for every codec (Quantize: digits=3 keeps |d| <= 0.5e-3 x 2)


def data(n: int) -> np.ndarray:
    t = toy.dimuon(n, seed=0)
    return np.stack([t[c] for c in t.names_of_kind("float")], 1)


def candidates() -> dict[str, dict[str, Any]]:
    """zarr.create_array keyword sets, one per codec."""
    out: dict[str, dict[str, Any]] = {
        "zarr default (zstd, lossless)": {},
        "balerc abs:1e-3": {"serializer": BalercZarrCodec(bound=f"abs:{E}"), "compressors": None},
        "balerc rel:1e-3": {"serializer": BalercZarrCodec(bound="rel:1e-3"), "compressors": None},
        "Quantize(digits=3)+zstd": {"filters": [Quantize(digits=3, dtype="<f8")]},
    }
    try:
        import numcodecs.zfpy  # noqa: F401  (zarr's wrapper needs numcodecs' ZFPY)
        from zarr.codecs.numcodecs import ZFPY

        out["ZFPY(tolerance=1e-3)"] = {"serializer": ZFPY(mode=4, tolerance=E),
                                       "compressors": None}
    except ImportError:
        print("ZFPY does not import: skipped")
    return out


def _chunk_range(part: np.ndarray, chunk: int) -> np.ndarray:
    """Column ranges of a chunk as zarr hands it over (an edge chunk is padded with 0)."""
    lo, hi = part.min(0), part.max(0)
    if len(part) < chunk:
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    return hi - lo


def run(x: np.ndarray, chunk: int) -> None:
    mb = x.nbytes / 1e6
    print(f"{len(x):,} x {x.shape[1]} float64 ({mb:.0f} MB), chunks of {chunk} rows, bound 1e-3")
    print(f"{'codec':32s} {'bytes':>12s} {'ratio':>7s} {'write MB/s':>11s} {'read MB/s':>10s} held")
    for name, kw in candidates().items():
        store = zarr.storage.MemoryStore()
        z = zarr.create_array(store, shape=x.shape, chunks=(chunk, x.shape[1]), dtype="f8", **kw)
        t0 = time.perf_counter()
        z[:] = x
        t1 = time.perf_counter()
        back = zarr.open_array(store, mode="r")[:]
        t2 = time.perf_counter()
        size = sum(len(v) for k, v in store._store_dict.items() if "zarr.json" not in k)
        err = np.abs(back - x)
        if name.startswith("balerc rel"):  # rel: E x each (zero-padded) chunk's column range
            held = all((err[s:s + chunk] <= E * _chunk_range(x[s:s + chunk], chunk)).all()
                       for s in range(0, len(x), chunk))
        else:
            held = bool((err <= E).all())
        print(f"{name:32s} {size:12,d} {x.nbytes / size:7.2f} {mb / (t1 - t0):11.1f} "
              f"{mb / (t2 - t1):10.1f} {held}")


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    chunk_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
    run(data(rows), chunk_rows)
