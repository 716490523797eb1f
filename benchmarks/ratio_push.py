"""Ratio push (issue 6): balerc with its chosen model vs peers, one run, a markdown table.

    python benchmarks/ratio_push.py [--dimuon-rows 1000000] [--train-rows 200000] [--quick]

Per dataset: train at rel:1e-3 for the rel bounds and at pwrel:5e-4 for the pwrel bounds
(the search keeps dense or physics by bytes at that bound; on four-vectors rel picks
pt,eta,phi anchors and pwrel px,py,pz), then compress the float columns at every bound. "balerc" is the codec's default (the model is
dropped where its embedded decoder costs more than it saves); "model kept" forces the
model; "excl. model" is the same file minus the embedded decoder bytes (a model shared by
many files, --no-embed-model); "plain-19" is balerc without a model at zstd level 19, the
peers' entropy-coder effort. Peers: quantization+zstd-19, quantization+pcodec, SZ3, ZFP,
mantissa truncation.
"MB/s" is balerc's default compress / decompress throughput on 2 threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from balerc.cli.analysis.peers import PEERS as PEER_CODECS
from balerc.cli.analysis.peers import compare
from balerc.codec.ae import compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.formats import toy
from balerc.formats.table import Table
from balerc.formats.tableio import read_table
from balerc.train import TrainConfig, export, fit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "skhep_testdata_subset"
BOUNDS = ["rel:1e-2", "rel:1e-3", "rel:1e-4", "pwrel:1e-3", "pwrel:5e-4"]
PEERS = ["quant-zstd", "quant-pcodec", "sz3", "zfp", "mantissa"]
PEAKS = {"Z": (70.0, 110.0), "J/psi": (2.95, 3.25)}


def float_table(t: Table) -> Table:
    return Table({n: np.asarray(t[n], dtype=np.float64) for n in t.names_of_kind("float")})


def datasets(dimuon_rows: int) -> list[tuple[str, Table]]:
    out = [("Zmumu", read_table(DATA / "uproot-Zmumu.root")),
           ("HZZ muons", read_table(DATA / "uproot-HZZ.root", columns=["Muon_*"])),
           ("HZZ jets", read_table(DATA / "uproot-HZZ.root", columns=["Jet_*"])),
           ("NanoAOD jets", read_table(DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root", columns=["Jet_*"])),
           ("toy gene 20k", toy.gene(20000)),
           (f"dimuon {dimuon_rows // 1000}k", toy.dimuon(dimuon_rows, seed=0))]
    return [(n, float_table(t)) for n, t in out]


def peak_shift(before: np.ndarray, after: np.ndarray) -> dict[str, float | None]:
    from balerc.cli.analysis.peakfit import default_bins, fit_peak

    out: dict[str, float | None] = {}
    for name, win in PEAKS.items():
        bins = default_bins(before, win)
        f0, _ = fit_peak(before, win, bins)
        f1, _ = fit_peak(after, win, bins)
        out[name] = None if f0 is None or f1 is None else (f1.mean - f0.mean) / f0.mean
        # per event, in the window: (M' - M) / M, mean and RMS (no binning noise)
        inw = (before >= win[0]) & (before <= win[1])
        d = (after[inw] - before[inw]) / before[inw]
        out[name + " event"] = (float(np.mean(d)), float(np.sqrt(np.mean(d * d)))) if d.size else None
    return out


def train(sub: Table, bound: str, mdir: Path, quick: bool) -> tuple[Path, int, str, float]:
    """(model dir, zstd'd decoder bytes, description, seconds) of a model trained for bound."""
    import zstandard

    t0 = time.perf_counter()
    cfg = TrainConfig(bound=bound, epochs=20 if quick else 100, progress=False,
                      threads=os.cpu_count())
    model = fit(sub, cfg)
    export(model, mdir, force=True)
    dec_bytes = len(zstandard.ZstdCompressor(level=19).compress((mdir / "decoder.onnx").read_bytes()))
    anchors = ",".join(model.anchors) if len(model.anchors) <= 6 else f"{len(model.anchors)} columns"
    chosen = f"{model.net.name} @{bound}: anchors {anchors}, L={model.latent_dim}"
    return mdir, dec_bytes, chosen, time.perf_counter() - t0


def run(name: str, t: Table, train_rows: int, work: Path, quick: bool) -> list[dict]:
    rows = []
    sub = t if t.n_rows <= train_rows else Table({n: t[n][:train_rows] for n in t.names})
    stem = name.replace(" ", "_").replace("/", "_")
    models = {"rel": train(sub, "rel:1e-3", work / f"{stem}_rel", quick),
              "pwrel": train(sub, "pwrel:5e-4", work / f"{stem}_pwrel", quick)}
    data2d = t.to_numpy(t.names, dtype=np.float64)
    peers = compare(data2d, BOUNDS, methods=PEERS)
    for b in BOUNDS:
        mdir, dec_bytes, chosen, train_s = models["pwrel" if b.startswith("pwrel") else "rel"]
        r: dict = {"data": name, "rows": t.n_rows, "bound": b, "model": chosen,
                   "decoder_bytes": dec_bytes, "train_s": round(train_s, 1)}
        f = work / "x.balerc"
        res_p = compress_with_model(t, f, model_dir=None, bound=b, force=True, zstd_level=19,
                                    threads=os.cpu_count())
        r["plain19"] = res_p.ratio
        res_k = compress_with_model(t, f, model_dir=mdir, bound=b, force=True, keep_model=True,
                                    threads=os.cpu_count())
        r["kept"] = res_k.ratio
        r["excl"] = res_k.raw_bytes / (res_k.file_bytes - dec_bytes)
        res = compress_with_model(t, f, model_dir=mdir, bound=b, force=True, threads=os.cpu_count())
        r["balerc"] = res.ratio
        t0 = time.perf_counter()
        out = decompress(f, threads=os.cpu_count())
        r["mbps"] = f"{res.mbps:.0f} / {res.raw_bytes / 1e6 / (time.perf_counter() - t0):.0f}"
        if "M" in t.names and b in ("rel:1e-3", "pwrel:5e-4"):
            m = np.asarray(t["M"])
            r["peak"] = peak_shift(m, np.asarray(out["M"]))
            for method in PEERS:  # each peer on the mass column alone, at the same bound
                peer = PEER_CODECS[method]
                if peer.supports(Bound.parse(b)) and peer.available():
                    blob = peer.compress(m[:, None], Bound.parse(b))
                    r[f"peak_{method}"] = peak_shift(m, peer.decompress(blob)[:, 0])
        for p in peers:
            if p.bound == str(Bound.parse(b)):
                r[p.method] = None if p.skipped else p.ratio
        rows.append(r)
    return rows


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dimuon-rows", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help="run only datasets whose name contains this")
    args = ap.parse_args()
    all_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, t in datasets(args.dimuon_rows):
            if args.only and args.only.lower() not in name.lower():
                continue
            all_rows += run(name, t, args.train_rows, Path(tmp), args.quick)
    print("| data | bound | balerc | model kept | excl. model | plain-19 | quant-zstd | quant-pcodec "
          "| SZ3 | ZFP | mantissa | MB/s | model |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in all_rows:
        print(f"| {r['data']} ({r['rows']}) | {r['bound']} | {fmt(r['balerc'])} | {fmt(r.get('kept'))} | "
              f"{fmt(r.get('excl'))} | {fmt(r.get('plain19'))} | {fmt(r.get('quant-zstd'))} | "
              f"{fmt(r.get('quant-pcodec'))} | "
              f"{fmt(r.get('sz3'))} | {fmt(r.get('zfp'))} | {fmt(r.get('mantissa'))} | {r['mbps']} | "
              f"{r['model']}, {r['decoder_bytes']} B |", flush=True)
    peaks = [r for r in all_rows if "peak" in r]
    if peaks:
        print("\n| data | bound | method | Z peak rel. mass shift | J/psi peak rel. mass shift | "
              "Z window (M'-M)/M mean, RMS | J/psi window (M'-M)/M mean, RMS |")
        print("|---|---|---|---|---|---|---|")

        def g(v):
            if isinstance(v, tuple):
                return f"{v[0]:.1e}, {v[1]:.1e}"
            return "-" if v is None else f"{v:.2e}"

        for r in peaks:
            methods = [("balerc", "peak")] + [(m, f"peak_{m}") for m in PEERS]
            for method, key in methods:
                if key in r:
                    pk = r[key]
                    print(f"| {r['data']} | {r['bound']} | {method} | {g(pk.get('Z'))} | "
                          f"{g(pk.get('J/psi'))} | {g(pk.get('Z event'))} | {g(pk.get('J/psi event'))} |")


if __name__ == "__main__":
    main()
