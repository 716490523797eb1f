"""The streaming writer in a data-taking loop vs `balerc compress` of the same rows.

    python benchmarks/stream_writer.py [--rows 10000000] [--threads 2] [--repeat 3]

Generates 1M dimuon events once per process and cycles through them (generation is not
what is measured; chunks are coded independently, so repetition does not help the
ratio), trains one shared model for pwrel:5e-4 on 200k rows, then per batch size appends
the rows through `open_writer` (model not embedded: shared by many files) in a fresh
process and reports MB/s of raw bytes and peak RSS (the 1M-row pool is ~150 MB of it);
the same rows through `compress`'s code path from an in-memory TableStream; the file path compresses the same rows from a flat ROOT
tree written beforehand (`balerc compress` reads it chunk by chunk). One run each.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
from balerc.codec import api, open_writer
from balerc.formats import toy
from balerc.formats.stream import TableStream, open_stream

def peak_mb():  # VmHWM starts afresh at exec (ru_maxrss would inherit the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

mode, model, out, rows, batch, threads = sys.argv[1:7]
rows, batch, threads = int(rows), int(batch), int(threads)
POOL = 1_000_000  # generated once, cycled: generation is not what is measured
if mode in ("stream", "table"):
    pool = toy.dimuon(min(POOL, rows), seed=7)

def rows_at(a, b):  # rows a..b of the cycled pool, as one Table
    parts, n = [], pool.n_rows
    while a < b:
        k = a % n; m = min(b - a, n - k)
        parts.append(pool.slice(k, k + m)); a += m
    return parts[0] if len(parts) == 1 else type(pool)(
        {c: np.concatenate([p[c] for p in parts]) for c in pool.names}, pool.source)

opts = dict(bound="pwrel:5e-4", threads=threads, embed_model=False, keep_model=True,
            zstd_level=3, force=True)
t0 = time.perf_counter()
if mode == "stream":
    with open_writer(out, model=model, **opts) as w:
        for start in range(0, rows, batch):
            w.append(rows_at(start, min(rows, start + batch)))
    res = w.result
elif mode == "table":
    stream = TableStream(pool.slice(0, 1), rows, pool.source, rows_at)
    res = api.compress_file(stream, out, model_dir=model, **opts)
else:
    model_dir, src = model.split("|")
    res = api.compress_file(open_stream(src), out, model_dir=model_dir, **opts)
secs = time.perf_counter() - t0
print(json.dumps({"raw": res.raw_bytes, "bytes": res.file_bytes, "seconds": secs,
                  "rss_mb": peak_mb()}))
"""


def _model(d: Path) -> Path:
    from balerc.formats import toy
    from balerc.train import TrainConfig, export, fit

    m = d / "model"
    export(fit(toy.dimuon(200_000, seed=99), TrainConfig(bound="pwrel:5e-4", threads=2,
                                                         progress=False)), m, force=True)
    return m


def _root(d: Path, rows: int) -> Path:
    """The same rows as a flat ROOT tree (what `balerc compress` reads chunk by chunk)."""
    import uproot

    from balerc.formats import toy

    p = d / "rows.root"
    with uproot.recreate(p) as f:
        tree = None
        for start in range(0, rows, 500_000):
            t = toy.dimuon(min(500_000, rows - start), seed=start)
            cols = {n: t[n] for n in t.names}
            if tree is None:
                tree = f.mktree("events", {n: a.dtype for n, a in cols.items()})
            tree.extend(cols)
    return p


def run(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args[0]} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    model = _model(d)
    src = _root(d, args.rows)
    print(f"model and {args.rows:,}-row source ready in {time.perf_counter() - t0:.0f} s",
          flush=True)
    cases = [(f"open_writer, batches of {b:,}",
              ["stream", str(model), str(d / f"s{b}.balerc"), str(args.rows), str(b)])
             for b in (1_000, 10_000, 100_000)]
    cases.append(("compress of the same rows (TableStream in memory: compress's code path)",
                  ["table", str(model), str(d / "t.balerc"), str(args.rows), "0"]))
    cases.append(("balerc compress rows.root (flat tree, read chunk by chunk)",
                  ["file", f"{model}|{src}", str(d / "f.balerc"), str(args.rows), "0"]))
    results: dict[str, list[dict]] = {name: [] for name, _ in cases}
    for _ in range(args.repeat):  # interleaved, so drifts of the machine hit every path
        for name, argv in cases:
            results[name].append(run([*argv, str(args.threads)]))
    print(f"\n{args.rows:,} dimuon rows, pwrel:5e-4, shared physics model, "
          f"{args.threads} threads, zstd 3; {args.repeat} interleaved runs (median, range)\n")
    print("| path | MB/s (raw) | range | ratio | peak RSS MB |")
    print("|---|---|---|---|---|")
    for name, rs in results.items():
        mbps = sorted(r["raw"] / 1e6 / r["seconds"] for r in rs)
        r = rs[0]
        print(f"| {name} | {statistics.median(mbps):.0f} | {mbps[0]:.0f}-{mbps[-1]:.0f} | "
              f"{r['raw'] / r['bytes']:.2f} | {max(x['rss_mb'] for x in rs):.0f} |")
    print(f"\n(parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
