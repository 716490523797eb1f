"""Ratio and throughput of balerc against its peers at the same error bounds, one run.

    python benchmarks/compare_table.py [--rows 1000000] [--bounds rel:1e-2,rel:1e-3,rel:1e-4]
                                       [--epochs 40] [--datasets zmumu,nano_jets,dimuon]

Datasets: Zmumu and NanoAOD jets from ../shared/data (skipped when absent) and generated
dimuon events. balerc trains its default model on the dataset (at most 200k rows), then
compresses the float columns; its ratio counts the embedded decoder ("model counted").
Raw bytes are the float columns in their stored dtype (float64 Zmumu/dimuon, float32
NanoAOD). Prints markdown tables; all figures in the closing notes come from this script.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from balerc.cli.analysis.peers import compare
from balerc.codec.ae import compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.formats import toy
from balerc.formats.table import Table
from balerc.formats.tableio import read_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "skhep_testdata_subset"
PEERS = ["zstd", "quant-zstd", "quant-pcodec", "sz3", "zfp", "mantissa"]


def datasets(names: list[str], rows: int) -> dict[str, Table]:
    out: dict[str, Table] = {}
    for name in names:
        if name == "zmumu" and (DATA / "uproot-Zmumu.root").exists():
            out[name] = read_table(DATA / "uproot-Zmumu.root")
        elif name == "nano_jets" and (DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root").exists():
            out[name] = read_table(DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root", columns=["Jet_*"])
        elif name == "hzz_muons" and (DATA / "uproot-HZZ.root").exists():
            out[name] = read_table(DATA / "uproot-HZZ.root", columns=["Muon_*"])
        elif name == "dimuon":
            out[f"dimuon_{rows // 1000}k"] = toy.dimuon(rows, seed=1)
        elif name == "gene":
            out["gene"] = toy.gene(20000, seed=1)
        else:
            print(f"skip {name}: data absent", file=sys.stderr)
    return {k: t.select(t.names_of_kind("float")) for k, t in out.items()}


def train(table: Table, epochs: int, workdir: Path, bound: str) -> Path | None:
    try:
        from balerc.train import TrainConfig, export, fit
    except ImportError:
        return None
    sample = table.slice(0, min(table.n_rows, 200_000))
    t0 = time.perf_counter()
    model = fit(sample, TrainConfig(epochs=epochs, bound=bound, threads=2))
    path = export(model, workdir, force=True)
    print(f"  trained on {sample.n_rows} rows in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return Path(path)


def balerc_row(table: Table, bound: Bound, model_dir: Path | None, threads: int) -> dict:
    buf = io.BytesIO()
    t0 = time.perf_counter()
    res = compress_with_model(table, buf, model_dir=model_dir, bound=bound, threads=threads)
    ct = time.perf_counter() - t0
    blob = buf.getvalue()
    t0 = time.perf_counter()
    back = decompress(blob, threads=threads)
    dt = time.perf_counter() - t0
    held, worst = True, 0.0
    for n in table.names:
        y = table[n].astype(np.float64)
        err = np.abs(y - back[n].astype(np.float64))
        lim = bound.value * np.abs(y) if bound.mode == "pwrel" else bound.absolute(y)
        held &= bool(np.all(err <= lim))
        rng = np.ptp(y[np.isfinite(y)]) or 1.0
        worst = max(worst, float(np.max(err)) / rng)
    from balerc.formats.container import ContainerReader

    with ContainerReader(blob) as reader:  # the embedded decoder, as stored
        model_bytes = sum(a.size for a in reader.attachments.values())
    return {
        "ratio": res.raw_bytes / len(blob),
        "ratio_no_model": res.raw_bytes / max(len(blob) - model_bytes, 1),
        "max_err_rel": worst, "held": held,
        "c_mbps": res.raw_bytes / 1e6 / ct, "d_mbps": res.raw_bytes / 1e6 / dt,
        "modes": res.extra.get("errors", []),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bounds", default="rel:1e-2,rel:1e-3,rel:1e-4")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--datasets", default="zmumu,nano_jets,dimuon")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    bounds = [Bound.parse(b) for b in args.bounds.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    tables = datasets(args.datasets.split(","), args.rows)
    print(f"balerc comparison, {os.cpu_count()} cores; ratio = raw float bytes / compressed bytes\n")
    print("| dataset | rows x cols | bound | method | ratio | max err / range | held | comp MB/s | decomp MB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            print(f"dataset {name}: {table.n_rows} x {table.n_columns}", file=sys.stderr)
            model_dir = train(table, args.epochs, Path(tmp) / name, str(bounds[min(1, len(bounds) - 1)]))
            shape = f"{table.n_rows} x {table.n_columns}"
            data = table.to_numpy(dtype=table[table.names[0]].dtype)
            for b in bounds:
                for label, md in (("balerc (model)", model_dir), ("balerc (no model)", None)):
                    if label.endswith("(model)") and md is None:
                        continue
                    for th in threads:
                        r = balerc_row(table, b, md, th)
                        extra = f" [{r['ratio_no_model']:.2f}x w/o model]" if md else ""
                        print(f"| {name} | {shape} | {b} | {label} {th}T | {r['ratio']:.2f}{extra} | "
                              f"{r['max_err_rel']:.2e} | {r['held']} | {r['c_mbps']:.0f} | {r['d_mbps']:.0f} |",
                              flush=True)
                for r in compare(data, [b], methods=PEERS):
                    if r.skipped:
                        print(f"| {name} | {shape} | {b} | {r.method} | skipped: {r.skipped} | | | | |")
                        continue
                    held = "lossless" if r.bound_held is None else r.bound_held
                    print(f"| {name} | {shape} | {b} | {r.method} | {r.ratio:.2f} | {r.max_err_rel:.2e} | "
                          f"{held} | {r.compress_mbps:.0f} | {r.decompress_mbps:.0f} |", flush=True)


if __name__ == "__main__":
    main()
