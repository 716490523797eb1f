"""Training-side figures for the closing note (a script, not a test): prints markdown.

    .venv/bin/python benchmarks/bench_train.py [--rows 100000] [--threads 2] [--quick]

1. time to early stop with the default model and search, on 100k generated dimuon rows
   and on Zmumu (../shared/data), torch limited to --threads CPU threads;
2. ONNX Runtime CPU throughput of encoder and decoder (dense, baler), 1 and 2 threads,
   batches of 16k rows, in MB/s of float32 input (and of the table's float32 row);
3. reconstruction error per column (RMS and max, relative to the column range, validation
   split, latents quantized) at ratio 2 (L = ceil(F/2), no anchors: a plain autoencoder as
   in Baler) on Zmumu and NanoAOD jets, dense vs baler.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "skhep_testdata_subset"
BATCH = 16384


def _table(name: str):
    from balerc.formats.tableio import read_table

    path = DATA / name
    if not path.exists():
        return None
    return read_table(str(path))


def _dimuon(rows: int):
    try:
        from balerc.formats.toy import dimuon
    except ImportError:  # generator not available: skip that row of the table
        return None
    return dimuon(rows, 0)


def bench_training(threads: int, rows: int, epochs: int) -> list[str]:
    from balerc.train import TrainConfig, fit

    out = ["| data | rows x cols | anchors | latent | epochs (stop) | seconds | est. ratio | plain ratio |",
           "|---|---|---|---|---|---|---|---|"]
    for label, table in ((f"dimuon (toy, {rows} rows)", _dimuon(rows)),
                         ("Zmumu (uproot-Zmumu, CSV)", _table("zmumu_2304.csv"))):
        if table is None:
            out.append(f"| {label} | skipped (absent) | | | | | | |")
            continue
        t0 = time.perf_counter()
        m = fit(table, TrainConfig(threads=threads, epochs=epochs))
        dt = time.perf_counter() - t0
        tr = m.training
        out.append(
            f"| {label} | {tr['rows']} x {len(m.columns)} | {', '.join(m.anchors) or '-'} | "
            f"{m.latent_dim} | {tr['epochs_run']} ({tr['stopped'].split(' (')[0]}) | {dt:.1f} | "
            f"{tr['estimated_ratio']:.2f} | {tr['plain_ratio']:.2f} |"
        )
        sys.stderr.write(m.summary() + "\n\n")
    return out


def _throughput(path: Path, threads: int) -> tuple[float, float]:
    """Seconds per BATCH rows and input bytes per row for one ONNX file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal((BATCH, i.shape[1])).astype(np.float32)
             for i in sess.get_inputs()}
    sess.run(None, feeds)
    best = float("inf")
    for _ in range(5):  # best of 5 rounds of 10 batches: the machine is shared
        t0 = time.perf_counter()
        for _ in range(10):
            sess.run(None, feeds)
        best = min(best, (time.perf_counter() - t0) / 10)
    return best, sum(v.shape[1] * 4 for v in feeds.values())


def bench_onnx(tmp: Path) -> list[str]:
    from balerc.train import TrainConfig, export, fit

    table = _dimuon(20000) or _table("zmumu_2304.csv")
    out = ["| model | graph | shape | threads | MB/s float32 input | Mrows/s | MB/s of table rows (F x 4 B) |",
           "|---|---|---|---|---|---|---|"]
    for name in ("dense", "baler"):
        m = fit(table, TrainConfig(model=name, ratio=2, anchors=[], epochs=2, threads=1))
        d = export(m, tmp / f"tp_{name}", force=True)
        f = len(m.columns)
        for role in ("encoder", "decoder"):
            shape = f"{f} -> {m.latent_dim}" if role == "encoder" else f"{m.latent_dim} -> {f}"
            for th in (1, 2):
                sec, in_bytes = _throughput(d / f"{role}.onnx", th)
                out.append(
                    f"| {name} {list(m.net.widths)} | {role} | {shape} | {th} | "
                    f"{BATCH * in_bytes / sec / 1e6:.0f} | {BATCH / sec / 1e6:.2f} | "
                    f"{BATCH * f * 4 / sec / 1e6:.0f} |"
                )
    return out


def bench_quality(threads: int, epochs: int) -> list[str]:
    from balerc.train import TrainConfig, fit

    out: list[str] = []
    for label, fname in (("Zmumu", "zmumu_2304.csv"), ("NanoAOD jets", "nano_ttbar_jets.csv")):
        table = _table(fname)
        if table is None:
            out.append(f"{label}: skipped ({fname} absent)\n")
            continue
        res = {}
        for name in ("dense", "baler"):
            m = fit(table, TrainConfig(model=name, ratio=2, anchors=[], threads=threads,
                                       epochs=epochs))
            res[name] = m
        f = len(res["dense"].columns)
        out.append(f"**{label}** ({table.n_rows} rows, {f} float columns, latent {res['dense'].latent_dim}, "
                   f"validation split; error / column range)\n")
        out.append("| column | dense RMS | dense max | baler RMS | baler max |")
        out.append("|---|---|---|---|---|")
        for c in res["dense"].columns:
            d, b = res["dense"].per_column[c], res["baler"].per_column[c]
            out.append(f"| {c} | {d['rms_rel']:.2e} | {d['max_rel']:.2e} | "
                       f"{b['rms_rel']:.2e} | {b['max_rel']:.2e} |")
        med = {k: float(np.median([v["rms_rel"] for v in m.per_column.values()])) for k, m in res.items()}
        out.append(f"| *median RMS* | {med['dense']:.2e} | | {med['baler']:.2e} | |")
        out.append(f"| *epochs, seconds* | {res['dense'].training['epochs_run']}, "
                   f"{res['dense'].training['seconds']:.1f} | | {res['baler'].training['epochs_run']}, "
                   f"{res['baler'].training['seconds']:.1f} | |\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="few epochs, for a smoke run")
    ap.add_argument("--json", action="store_true", help="also print the environment as JSON")
    args = ap.parse_args()
    epochs = 5 if args.quick else args.epochs
    import onnxruntime
    import torch

    print(f"balerc train benchmarks: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"torch threads {args.threads}\n")
    print("### Training time to early stop (default model `dense`, anchor/latent search on)\n")
    print("\n".join(bench_training(args.threads, args.rows, epochs)) + "\n")
    print(f"### ONNX Runtime CPU throughput (batch {BATCH} rows, best of 5x10 runs)\n")
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(bench_onnx(Path(tmp))) + "\n")
    print("### Reconstruction error at ratio 2 (plain autoencoder, no anchors)\n")
    print("\n".join(bench_quality(args.threads, epochs)))
    if args.json:
        print(json.dumps({"threads": args.threads, "rows": args.rows}))


if __name__ == "__main__":
    main()
