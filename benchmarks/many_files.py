"""Many files: a local Dask cluster of 2 worker processes vs one process, same files.

    python benchmarks/many_files.py [--files 16] [--rows 250000]

Generates the files once (NPZ, not timed), then compresses them all at rel:1e-3
model-free: (a) one process, one file after another (in-process), (b) `compress_files`
on a local Dask cluster of 2 processes, (c) the same without Dask (a process pool).
One run each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    from balerc.codec import api
    from balerc.codec.many import compress_files
    from balerc.formats import toy
    from balerc.formats.stream import open_stream
    from balerc.formats.tableio import write_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--scheduler", default=None,
                    help="also run on this Dask scheduler (e.g. one started with `dask "
                         "scheduler` and `dask worker ADDRESS --nworkers 2 --nthreads 1`)")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    for i in range(args.files):
        write_table(toy.dimuon(args.rows, seed=i), d / f"f{i:02d}.npz")
    files = sorted(str(p) for p in d.glob("*.npz"))
    one = d / "one"
    one.mkdir()
    t0 = time.perf_counter()
    raw = 0
    for f in files:
        res = api.compress_file(open_stream(f), one / (Path(f).stem + ".balerc"),
                                bound="rel:1e-3", threads=1)
        raw += res.raw_bytes
    t_one = time.perf_counter() - t0
    two = d / "two"
    two.mkdir()
    t0 = time.perf_counter()
    res = compress_files(files, two, bound="rel:1e-3", workers=2, scheduler="local")
    t_two = time.perf_counter() - t0
    assert all(r.ok for r in res)
    pool = d / "pool"
    pool.mkdir()
    t0 = time.perf_counter()
    res = compress_files(files, pool, bound="rel:1e-3", workers=2)  # the default: a pool
    t_pool = time.perf_counter() - t0
    assert all(r.ok for r in res)
    print(f"{args.files} files x {args.rows:,} dimuon rows ({raw / 1e6:.0f} MB raw), rel:1e-3")
    print("| run | wall s | MB/s | speed-up |\n|---|---|---|---|")
    print(f"| one process, files in turn | {t_one:.1f} | {raw / 1e6 / t_one:.0f} | 1.00 |")
    print(f"| local Dask cluster, 2 processes (incl. start-up) | {t_two:.1f} | "
          f"{raw / 1e6 / t_two:.0f} | {t_one / t_two:.2f} |")
    if args.scheduler:
        ext = d / "ext"
        ext.mkdir()
        t0 = time.perf_counter()
        res = compress_files(files, ext, bound="rel:1e-3", scheduler=args.scheduler)
        t_ext = time.perf_counter() - t0
        assert all(r.ok for r in res)
        print(f"| Dask scheduler {args.scheduler} (started beforehand) | {t_ext:.1f} | "
              f"{raw / 1e6 / t_ext:.0f} | {t_one / t_ext:.2f} |")
    print(f"| process pool, 2 processes (the default) | {t_pool:.1f} | {raw / 1e6 / t_pool:.0f} | "
          f"{t_one / t_pool:.2f} |")


if __name__ == "__main__":
    main()
