"""How far two cores scale on this machine, and how close balerc's two threads come (issue 15).

    python benchmarks/thread_ceiling.py [--rows 1000000] [--rounds 5]

The target "2 threads >= 1.7x one thread" assumes the machine gives 2x to independent
work. This measures what it gives, in one interleaved run, per round:
- balerc `compress_table` / `read_container` on the whole table, 1 thread and 2 threads;
- two processes, each running the same 1-thread call on half the table at once: the same
  work with no GIL shared at all, so the machine's own ceiling for this work;
- C work that holds no interpreter (pcodec and zstd-3 on 65,536 int32 codes, 64 streams per
  worker) on 1 and 2 processes, and pcodec decodes on 1 and 2 threads of one process;
- a numpy copy of 200 MB per thread on 1 and 2 threads: what DRAM gives a second core.
Scaling = (work per second on two) / (work per second on one). Medians [min-max] of rounds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from balerc.codec.bounds import Bound
from balerc.codec.options import CompressOptions
from balerc.codec.pipeline import compress_table, read_container
from balerc.formats import toy
from balerc.formats.table import Table

BOUNDS = ["rel:1e-3", "pwrel:5e-4"]
_TABLE: dict[tuple[int, int], Table] = {}  # (rows, part) -> table, per process


def _table(rows: int, part: int) -> Table:
    """The generated dimuons' float columns as float32; part 0 the whole, 1/2 its halves."""
    if (rows, part) not in _TABLE:
        d = toy.dimuon(rows, seed=0)
        cols = {n: np.asarray(d[n], np.float32) for n in d.names_of_kind("float")}
        half = slice(None) if part == 0 else slice((part - 1) * rows // 2, part * rows // 2)
        _TABLE[rows, part] = Table({n: c[half] for n, c in cols.items()})
    return _TABLE[rows, part]


def balerc_times(rows: int, part: int, bound: str, threads: int) -> tuple[float, float]:
    """(compress s, decompress s) of one table part in this process."""
    t = _table(rows, part)
    buf = io.BytesIO()
    t0 = time.perf_counter()
    compress_table(t, buf, CompressOptions(bound=Bound.parse(bound), threads=threads), None)
    t1 = time.perf_counter()
    read_container(buf.getvalue(), threads=threads)
    return t1 - t0, time.perf_counter() - t1


def c_work(kind: str) -> float:
    """Seconds for 64 streams of 65,536 int32 codes through pcodec-8 or zstd-3."""
    import pcodec
    import zstandard

    rng = np.random.default_rng(0)
    arrs = [(rng.standard_normal(65536) * 3000).astype(np.int32) for _ in range(64)]
    cfg = pcodec.ChunkConfig(compression_level=8, delta_spec=pcodec.DeltaSpec.no_op(),
                             mode_spec=pcodec.ModeSpec.classic())
    z = zstandard.ZstdCompressor(level=3)
    t = time.perf_counter()
    for a in arrs:
        if kind == "pcodec":
            pcodec.standalone.simple_compress(a, cfg)
        else:
            z.compress(a.data)
    return time.perf_counter() - t


def _streams() -> list[bytes]:
    import pcodec

    rng = np.random.default_rng(1)
    cfg = pcodec.ChunkConfig(compression_level=8)
    return [pcodec.standalone.simple_compress(
        (rng.standard_normal(65536) * 3000).astype(np.int32), cfg) for _ in range(64)]


def in_threads(kind: str, threads: int) -> float:
    """Seconds for `threads` threads of this process, each doing the same C work at once:
    64 pcodec decodes of 65,536 int32 codes (the GIL released), or a numpy copy of 200 MB
    (DRAM bandwidth: the copy streams past every cache)."""
    import threading

    from pcodec import standalone

    if kind == "pcodec":
        streams, outs = _streams(), [np.empty(65536, np.int32) for _ in range(threads)]

        def work(i: int) -> None:
            for s in streams:
                standalone.simple_decompress_into(s, outs[i])
    else:
        src = [np.ones(25_000_000) for _ in range(threads)]
        dst = [np.ones(25_000_000) for _ in range(threads)]

        def work(i: int) -> None:
            np.copyto(dst[i], src[i])
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return time.perf_counter() - t


def _pair(pool: ProcessPoolExecutor, fn: Callable, *args_per_worker: tuple) -> float:
    """The longer of the seconds each worker's call measured itself (started together,
    their setup alike, so the timed parts overlap)."""
    return max(pool.map(fn, *zip(*args_per_worker, strict=True)))


def _cell(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}x [{min(xs):.2f}-{max(xs):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = args.rows
    scale: dict[str, list[float]] = {}
    with ProcessPoolExecutor(2) as pool:
        for part in (1, 2):  # warm both workers: tables built, imports done
            list(pool.map(balerc_times, [rows] * 2, [part] * 2, ["rel:1e-3"] * 2, [1] * 2))
        for _ in range(args.rounds):
            for b in BOUNDS:
                c1, d1 = balerc_times(rows, 0, b, 1)
                c2, d2 = balerc_times(rows, 0, b, 2)
                tc, td = zip(*pool.map(balerc_times, [rows] * 2, [1, 2], [b] * 2, [1] * 2),
                             strict=True)
                scale.setdefault(f"{b} compress, 2 threads", []).append(c1 / c2)
                scale.setdefault(f"{b} decompress, 2 threads", []).append(d1 / d2)
                scale.setdefault(f"{b} compress, 2 processes (a half each, at once)",
                                 []).append(c1 / max(tc))
                scale.setdefault(f"{b} decompress, 2 processes (a half each, at once)",
                                 []).append(d1 / max(td))
            for kind in ("pcodec", "zstd"):
                one = pool.submit(c_work, kind).result()  # a worker alone, as the pair
                two = _pair(pool, c_work, (kind,), (kind,))
                scale.setdefault(f"C only: {kind} on 2 processes", []).append(2 * one / two)
            for kind in ("pcodec", "copy"):
                one = in_threads(kind, 1)
                scale.setdefault(f"C only, one process: {kind} on 2 threads" if kind == "pcodec"
                                 else "memory: numpy copy of 200 MB on 2 threads",
                                 []).append(2 * one / in_threads(kind, 2))
    print(f"\n### Two cores against one, {rows:,} generated dimuons (float32), "
          f"{args.rounds} interleaved rounds\n")
    print("| work | scaling |\n|---|---|")
    for k, v in scale.items():
        print(f"| {k} | {_cell(v)} |")


if __name__ == "__main__":
    main()
