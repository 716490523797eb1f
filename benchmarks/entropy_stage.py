"""Entropy stage figures (issue 15): in-process MB/s and ratios, balerc vs quantization peers.

    python benchmarks/entropy_stage.py [--rows 1000000] [--rounds 3] [--profile]

Tables: generated dimuons (float columns as float32, as in the issue), Zmumu, NanoAOD jets
(CSV). balerc model-free with the default entropy stage (pcodec, cheap choice), with
`--entropy zstd` (the stage before this change, minus its trial compressions) and with
`--effort exhaustive`; peers: quantization + zstd-3 (codes from peers.quantize, min width,
shuffle, zstd-3), quantization + pcodec, SZ3. MB/s = float bytes / seconds, median of
interleaved rounds (range in brackets), every decoded value checked against the bound.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zstandard

from balerc.cli.analysis.peers import PEERS, _allowed, dequantize, quantize
from balerc.codec.bounds import Bound
from balerc.codec.model import ModelBundle
from balerc.codec.options import SMALL_TABLE_BYTES, CompressOptions
from balerc.codec.pipeline import compress_table, read_container
from balerc.formats import toy
from balerc.formats.table import Table
from balerc.formats.tableio import read_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "skhep_testdata_subset"
BOUNDS = ["rel:1e-3", "pwrel:5e-4"]
BALERC = {"balerc": {}, "balerc zstd": {"entropy": "zstd"},
          "balerc exhaustive": {"effort": "exhaustive"},
          "balerc --zstd-level 3": {"zstd_level": 3}}  # small tables: the fast choice


def tables(rows: int) -> dict[str, Table]:
    d = toy.dimuon(rows, seed=0)
    return {f"dimuon {rows // 1000}k f32": Table({n: np.asarray(d[n], np.float32)
                                                 for n in d.names_of_kind("float")}),
            "Zmumu": _floats(read_table(DATA / "uproot-Zmumu.root")),
            "NanoAOD jets": _floats(read_table(DATA / "nano_ttbar_jets.csv"))}


def _floats(t: Table) -> Table:
    return Table({n: np.asarray(t[n]) for n in t.names_of_kind("float")})


MODELS: dict[str, ModelBundle] = {}  # bound kind -> model for the dimuon table (--models)


def balerc_run(t: Table, bound: str, threads: int, model: ModelBundle | None = None,
               **kw) -> tuple[int, float, float, Table]:
    opts = CompressOptions(bound=Bound.parse(bound), threads=threads, **kw)
    buf = io.BytesIO()
    t0 = time.perf_counter()
    compress_table(t, buf, opts, model)
    t1 = time.perf_counter()
    back = read_container(buf.getvalue(), threads=threads)
    return len(buf.getvalue()), t1 - t0, time.perf_counter() - t1, back


def quant_zstd3(x: np.ndarray, bound: Bound) -> tuple[int, float, float, np.ndarray]:
    """Per column: peers.quantize codes, offset, narrowest width, byte shuffle, zstd-3."""
    t0 = time.perf_counter()
    parts, metas = [], []
    for c in x.T:
        codes, m = quantize(c, bound, None if bound.mode == "pwrel" else bound.absolute(c))
        off = int(codes.min())
        u = (codes - off).astype(np.uint64)
        w = next(t for t in ("u1", "u2", "u4", "u8") if u.max() <= np.iinfo(t).max)
        nb = np.ascontiguousarray(u.astype(w).view(np.uint8).reshape(-1, np.dtype(w).itemsize).T)
        parts.append(zstandard.ZstdCompressor(level=3).compress(nb.tobytes()))
        metas.append((m, off, w))
    t1 = time.perf_counter()
    cols = []
    for p, (m, off, w) in zip(parts, metas, strict=True):
        raw = np.frombuffer(zstandard.ZstdDecompressor().decompress(p), np.uint8)
        u = raw.reshape(np.dtype(w).itemsize, -1).T.copy().view(w).ravel()
        cols.append(dequantize(u.astype(np.int64) + off, m))
    y = np.stack(cols, axis=1).astype(x.dtype)
    return sum(map(len, parts)), t1 - t0, time.perf_counter() - t1, y


def peer_run(name: str, x: np.ndarray, bound: Bound) -> tuple[int, float, float, np.ndarray]:
    peer = PEERS[name]
    t0 = time.perf_counter()
    blob = peer.compress(x, bound)
    t1 = time.perf_counter()
    y = peer.decompress(blob)
    return len(blob), t1 - t0, time.perf_counter() - t1, y


def check_table(t: Table, back: Table, bound: Bound) -> None:
    x = t.to_numpy(t.names, dtype=np.float64)
    check_array(x, back.to_numpy(t.names, dtype=np.float64), bound)


def check_array(x: np.ndarray, y: np.ndarray, bound: Bound) -> None:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if not np.all(np.abs(x64 - y64) <= _allowed(x64, bound)):
        raise AssertionError("a decoded value misses the bound")


def methods(t: Table, bound: Bound, model: ModelBundle | None
            ) -> dict[str, Callable[[int], tuple[int, float, float]]]:
    x = t.to_numpy(t.names)
    out: dict[str, Callable[[int], tuple[int, float, float]]] = {}
    runs = dict(BALERC)
    if model is not None:
        runs = {"balerc model": {"model": model}, "balerc model, zstd": {"model": model,
                                                                          "entropy": "zstd"},
                **runs}
    for label, kw in runs.items():
        if label == "balerc exhaustive" and x.nbytes > 10e6:
            continue  # minutes on large tables: its bytes are in entropy_measure.py
        if label == "balerc --zstd-level 3" and x.nbytes > SMALL_TABLE_BYTES:
            continue  # the default level there already
        def run(threads: int, kw: dict = kw) -> tuple[int, float, float]:
            size, tc, td, back = balerc_run(t, str(bound), threads, **kw)
            check_table(t, back, bound)
            return size, tc, td
        out[label] = run

    def qz(threads: int) -> tuple[int, float, float]:
        size, tc, td, y = quant_zstd3(x, bound)
        check_array(x, y, bound)
        return size, tc, td
    out["quant+zstd-3"] = qz
    for name in ("quant-pcodec", "sz3", "zfp"):
        if PEERS[name].supports(bound) and PEERS[name].available():
            def pr(threads: int, name: str = name) -> tuple[int, float, float]:
                size, tc, td, y = peer_run(name, x, bound)
                check_array(x, y, bound)
                return size, tc, td
            out[name] = pr
    return out


def measure(t: Table, bound: Bound, rounds: int, model: ModelBundle | None = None
            ) -> list[str]:
    """Interleaved rounds of every method; rows of the markdown table."""
    mb = sum(t[n].nbytes for n in t.names) / 1e6
    ms = methods(t, bound, model)
    runs: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for _ in range(rounds):
        for label, fn in ms.items():
            for threads in ((1, 2) if label.startswith("balerc") else (1,)):
                runs.setdefault((label, threads), []).append(fn(threads))
    rows = []
    for (label, threads), rs in runs.items():
        size = rs[0][0]
        c = [mb / r[1] for r in rs]
        d = [mb / r[2] for r in rs]
        rows.append(f"| {label} | {threads} | {mb * 1e6 / size:.2f} | {statistics.median(c):.0f} "
                    f"[{min(c):.0f}-{max(c):.0f}] | {statistics.median(d):.0f} "
                    f"[{min(d):.0f}-{max(d):.0f}] |")
    return rows


def kind_of(name: str, anchors: set[int], predicted: set[int]) -> str:
    role, _, col = name.partition("/")
    if role == "res":
        i = int(col)
        return "anchors" if i in anchors else ("residuals" if i in predicted else "quantized")
    return {"col": "lossless", "sign": "residuals", "exc": "exceptions", "dict": "dictionary",
            "qgroup": "qgroup (mixed)", "latents": "latents"}.get(role, role)


def stream_kinds(t: Table, bound: str, model: ModelBundle | None, entropy: str
                 ) -> dict[str, int]:
    """Bytes per stream kind of one file (stream payloads, summed over chunks), written
    without `qgroup` frames so that every kind keeps its own streams."""
    from balerc.codec.coders import grouping
    from balerc.formats.container import ContainerReader

    buf = io.BytesIO()
    saved, grouping.CHEAP_GROUP_BYTES = grouping.CHEAP_GROUP_BYTES, -1
    try:
        compress_table(t, buf, CompressOptions(bound=Bound.parse(bound), entropy=entropy), model)
    finally:
        grouping.CHEAP_GROUP_BYTES = saved
    out: dict[str, int] = {}
    with ContainerReader(buf.getvalue()) as r:
        names = [c["name"] for c in r.header["schema"]["columns"]]
        m = (r.header["coders"][0].get("model") or {})
        anchors = {names.index(c) for c in m.get("anchors", [])}
        predicted = {names.index(c) for c in m.get("predicted", [])}
        for i in range(len(r.chunks)):
            for name, payload in r.read_chunk(i).items():
                k = kind_of(name, anchors, predicted)
                out[k] = out.get(k, 0) + len(payload)
    out["file"] = len(buf.getvalue())
    return out


def kinds_table(tabs: dict[str, Table]) -> None:
    print("\n### Bytes per stream kind (zstd = --entropy zstd, pcodec = default; no qgroup)\n")
    print("| data | bound | model | entropy | file | anchors | residuals | quantized | latents "
          "| exceptions | dictionary | qgroup (mixed) | lossless |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, t in tabs.items():
        for b in BOUNDS:
            model = MODELS.get(b.split(":")[0]) if name.startswith("dimuon") else None
            for entropy in ("zstd", "auto"):
                k = stream_kinds(t, b, model, entropy)
                cells = " | ".join(f"{k.get(c, 0):,}" for c in (
                    "file", "anchors", "residuals", "quantized", "latents", "exceptions",
                    "dictionary", "qgroup (mixed)", "lossless"))
                print(f"| {name} | {b} | {'yes' if model else 'no'} | "
                      f"{'pcodec' if entropy == 'auto' else 'zstd'} | {cells} |", flush=True)


def lossless_table(rows: int) -> None:
    """--lossless files: zstd streams (before) vs pcodec (default) vs exhaustive."""
    ll = {f"dimuon {rows // 1000}k": toy.dimuon(rows, seed=0), f"jets {rows // 1000}k":
          toy.jets(rows, seed=0), "Zmumu": read_table(DATA / "uproot-Zmumu.root"),
          "NanoAOD jets": read_table(DATA / "nano_ttbar_jets.csv"),
          "HZZ": read_table(DATA / "uproot-HZZ.root"), "gene 20k": toy.gene(20000)}
    print("\n### --lossless, every column (ratio, compress MB/s, one thread)\n")
    print("| table | raw MB | zstd (before) | pcodec (default) | exhaustive |")
    print("|---|---|---|---|---|")
    for name, t in ll.items():
        cells = []
        for kw in ({"entropy": "zstd"}, {}, {"effort": "exhaustive"}):
            if kw.get("effort") and t.nbytes > 50e6:
                cells.append("-")
                continue
            buf = io.BytesIO()
            t0 = time.perf_counter()
            r = compress_table(t, buf, CompressOptions(lossless=True, **kw))
            cells.append(f"{r.ratio:.2f}x, {t.nbytes / 1e6 / (time.perf_counter() - t0):.0f}")
        print(f"| {name} | {t.nbytes / 1e6:.1f} | " + " | ".join(cells) + " |", flush=True)


def profile(t: Table, bound: str) -> None:
    prof = cProfile.Profile()
    prof.enable()
    balerc_run(t, bound, 1)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
    print("```\n" + "\n".join(s.getvalue().splitlines()[:40]) + "\n```")


def whole_process(t: Table, bound: str, model_dir: str | None, rounds: int) -> list[str]:
    """`balerc compress` / `decompress` as a user runs them (Python start, imports, .npz
    read and write included): MB/s of float bytes and the child's peak RSS, 1 and 2 threads."""
    import subprocess
    import sys
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="balerc-wp-"))
    src, out, back = tmp / "t.npz", tmp / "t.balerc", tmp / "back.npz"
    np.savez(src, **{n: t[n] for n in t.names})
    mb = t.nbytes / 1e6
    exe = [sys.executable, "-m", "balerc"]

    def child(args: list[str]) -> tuple[float, float]:
        """Seconds and the child's peak RSS in MB, by GNU time: a child's ru_maxrss would
        start from this (large) process's, which fork hands down."""
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + exe + args,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - t0
        err = proc.stderr.decode()
        if proc.returncode:
            raise RuntimeError(f"balerc {' '.join(args)} failed: {err}")
        return seconds, float(err.rsplit("MAXRSS ", 1)[1].split()[0]) / 1024

    rows = []
    for threads in (1, 2):
        comp = ["compress", str(src), "-o", str(out), "--error-bound", bound, "-T", str(threads),
                "--force"] + (["-m", model_dir] if model_dir else [])
        dec = ["decompress", str(out), "-o", str(back), "-T", str(threads), "--force"]
        runs = [(child(comp), child(dec)) for _ in range(rounds)]
        check_table(t, Table(dict(np.load(back))), Bound.parse(bound))
        c = [mb / r[0][0] for r in runs]
        d = [mb / r[1][0] for r in runs]
        rows.append(f"| balerc{' model' if model_dir else ''} (CLI, .npz) | {threads} | "
                    f"{t.nbytes / out.stat().st_size:.2f} | {statistics.median(c):.0f} "
                    f"[{min(c):.0f}-{max(c):.0f}] | {statistics.median(d):.0f} [{min(d):.0f}-"
                    f"{max(d):.0f}] | {max(r[0][1] for r in runs):.0f} / "
                    f"{max(r[1][1] for r in runs):.0f} |")
    return rows


def whole_process_tables(tabs: dict[str, Table], models: list[str] | None, rounds: int) -> None:
    name, t = next(iter(tabs.items()))
    for b in BOUNDS:
        mdir = models[0 if b.startswith("rel") else 1] if models else None
        print(f"\n### whole process, {name}, {b}\n")
        print("| method | threads | ratio | compress MB/s | decompress MB/s | peak RSS MB "
              "(compress / decompress) |")
        print("|---|---|---|---|---|---|")
        for model_dir in ([None, mdir] if mdir else [None]):
            for row in whole_process(t, b, model_dir, rounds):
                print(row, flush=True)


CHUNK_ROWS = (65536, 131072, 262144)


def scaling_table(rows: int, rounds: int) -> None:
    """Two threads against one per chunk size (generated dimuons, float32): how much of a
    chunk's work the GIL serializes shows as the scaling, which rises with the chunk."""
    d = toy.dimuon(rows, seed=0)
    t = Table({n: np.asarray(d[n], np.float32) for n in d.names_of_kind("float")})
    mb = sum(t[n].nbytes for n in t.names) / 1e6
    print(f"\n### Thread scaling by chunk size, dimuon {rows:,} rows float32 ({mb:.0f} MB), "
          f"medians of {rounds} interleaved rounds\n")
    print("| bound | method | chunk rows | ratio | compress MB/s 1 / 2 thr | scaling | "
          "decompress MB/s 1 / 2 thr | scaling |")
    print("|---|---|---|---|---|---|---|---|")
    for b in BOUNDS:
        model = MODELS.get(b.split(":")[0])
        for label, m in [("model-free", None)] + ([("model", model)] if model else []):
            for cr in CHUNK_ROWS:
                runs = {1: [], 2: []}
                for _ in range(rounds):
                    for threads in (1, 2):
                        size, tc, td, back = balerc_run(t, b, threads, m, chunk_rows=cr)
                        runs[threads].append((mb / tc, mb / td))
                check_table(t, back, Bound.parse(b))
                c1, c2, d1, d2 = (statistics.median(r[k] for r in runs[th])
                                  for k, th in ((0, 1), (0, 2), (1, 1), (1, 2)))
                print(f"| {b} | {label} | {cr:,} | {mb * 1e6 / size:.3f} | {c1:.0f} / {c2:.0f} | "
                      f"{c2 / c1:.2f}x | {d1:.0f} / {d2:.0f} | {d2 / d1:.2f}x |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--models", nargs=2, metavar=("REL_DIR", "PWREL_DIR"), default=None,
                    help="balerc train models for the dimuon table (rel, pwrel)")
    ap.add_argument("--only", default=None, help="tables whose name contains this")
    ap.add_argument("--kinds", action="store_true", help="bytes per stream kind only")
    ap.add_argument("--lossless", action="store_true", help="--lossless files only")
    ap.add_argument("--whole-process", action="store_true",
                    help="the CLI as a user runs it (dimuon table): MB/s and peak RSS")
    ap.add_argument("--scaling", action="store_true",
                    help="2 threads vs 1 per chunk size (65,536 / 131,072 / 262,144 rows)")
    args = ap.parse_args()
    if args.models:
        MODELS.update(rel=ModelBundle.load(args.models[0]), pwrel=ModelBundle.load(args.models[1]))
    if args.scaling:
        scaling_table(args.rows, args.rounds)
        return
    tabs = {n: t for n, t in tables(args.rows).items()
            if not args.only or args.only.lower() in n.lower()}
    if args.lossless:
        lossless_table(args.rows)
        return
    if args.kinds:
        if not args.only:  # the other ratio_push.py tables (model-free: small tables)
            import sys

            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from ratio_push import datasets

            tabs.update((n, t) for n, t in datasets(1000) if n.startswith(("HZZ", "toy")))
        kinds_table(tabs)
        return
    if args.whole_process:
        whole_process_tables(tabs, args.models, args.rounds)
        return
    for name, t in tabs.items():
        for b in BOUNDS:
            model = MODELS.get(b.split(":")[0]) if name.startswith("dimuon") else None
            print(f"\n### {name} ({t.n_rows:,} rows, {len(t.names)} float columns), {b}\n")
            print("| method | threads | ratio | compress MB/s | decompress MB/s |")
            print("|---|---|---|---|---|")
            for row in measure(t, Bound.parse(b), args.rounds, model):
                print(row, flush=True)
    if args.profile:
        first = next(iter(tabs))
        print(f"\ncProfile, balerc compress, {first}, rel:1e-3, 1 thread (top 15 by tottime):\n")
        profile(tabs[first], "rel:1e-3")


if __name__ == "__main__":
    main()
