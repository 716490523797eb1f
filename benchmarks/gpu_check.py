"""End-to-end check of the CUDA execution provider, and GPU throughput.

    python benchmarks/gpu_check.py MODEL_DIR [--rows 1000000]

1. decoder drift: the same inputs through the decoder on CPU (1 and 4 threads) and on
   CUDA (TF32 off); the largest difference in normalized units must stay below the
   codec's margin (codec.ae.MARGIN), which is what makes the bound provider-independent;
2. cross-provider round trips: compress on CPU -> decompress on CUDA, and the reverse, at
   rel:1e-3 and rel:1e-4; every value is checked against the bound;
3. throughput (MB/s of float input) of encoder/decoder runs and of compress/decompress
   on CPU and CUDA.
Prints a markdown report.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np

from balerc.codec.ae import EXACT_DRIFT, MARGIN, compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.codec.model import ModelBundle, lean_onnx
from balerc.codec.runtime import Session
from balerc.formats import toy


def timed(fn, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
    model = ModelBundle.load(args.model_dir)
    table = toy.dimuon(args.rows, seed=4)
    cols = model.columns
    off, sc = (np.asarray(v) for v in model.norm())
    x = ((table.to_numpy(cols) - off) / sc).astype(np.float32)
    raw_mb = x.size * 8 / 1e6

    # 1. drift
    enc_cpu = Session(model.encoder, "cpu", 1) if model.encoder else None
    z = enc_cpu.run(x=x) if enc_cpu else None
    step = 2.0 / 2**model.latent_bits
    inputs = {}
    if z is not None:
        inputs["z"] = (np.rint(z / step) * step).astype(np.float32)
    anchor_pos = [cols.index(a) for a in model.anchors]
    if anchor_pos:
        # float64 decoders (physics, model format 2) take the anchors in column units
        inputs["a"] = table.to_numpy(model.anchors) if model.io64 else x[:, anchor_pos]
    from balerc.codec.runtime import _cuda_usable

    gpu = "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_usable()
    if not gpu:
        print("no usable CUDA provider here: the CUDA rows are skipped (a CPU smoke run)")
    devs = ["cpu", "cuda"] if gpu else ["cpu"]
    outs = {}
    for label, dev, th in (("cpu1", "cpu", 1), ("cpu4", "cpu", 4), ("cuda", "cuda", 1))[: 3 if gpu else 2]:
        s = Session(lean_onnx(model.decoder), dev, th)
        outs[label] = s.run(**inputs)
        print(f"decoder on {label}: provider {s.provider}")
    for a, b in (("cpu1", "cpu4"), ("cpu1", "cuda"))[: 2 if gpu else 1]:
        ref = outs[a].astype(np.float64)
        if model.io64:  # exact columns: relative drift against EXACT_DRIFT
            d = float(np.max(np.abs(ref - outs[b]) / (np.abs(ref) + 1e-300)))
            print(f"| drift {a} vs {b} | max |dy|/|y| = {d:.3g} | allowance {EXACT_DRIFT:.3g} | "
                  f"{'OK' if d < EXACT_DRIFT else 'EXCEEDS'} |")
            continue
        d = float(np.max(np.abs(ref - outs[b])))
        print(f"| drift {a} vs {b} | max |dx| = {d:.3g} normalized units | margin {MARGIN:.3g} | "
              f"{'OK' if d < MARGIN else 'EXCEEDS'} |")

    # 2. cross-provider round trips
    for bound in ("rel:1e-3", "rel:1e-4", "pwrel:5e-4"):
        b = Bound.parse(bound)
        for cdev, ddev in (("cpu", "cuda"), ("cuda", "cpu"), ("cuda", "cuda")) if gpu else (("cpu", "cpu"),):
            buf = io.BytesIO()
            res = compress_with_model(table, buf, model_dir=args.model_dir, bound=b, device=cdev, threads=1)
            back = decompress(buf.getvalue(), device=ddev, threads=1)
            worst = 0.0
            for n in cols:
                y = table[n]
                lim = b.value * np.abs(y) if b.mode == "pwrel" else b.absolute(y)
                with np.errstate(divide="ignore", invalid="ignore"):
                    err = np.where(y == back[n], 0.0, np.abs(y - back[n]) / lim)
                worst = max(worst, float(err.max()))
            print(f"| {bound} compress {cdev} -> decompress {ddev} | ratio {res.ratio:.2f} | "
                  f"max err / bound {worst:.6f} | {'held' if worst <= 1 else 'VIOLATED'} |")

    # 3. throughput
    for dev in devs:
        for th in (1, 4, 16):
            if dev == "cuda" and th > 1:
                continue
            if enc_cpu is not None:
                enc = Session(model.encoder, dev, th)
                t = timed(lambda enc=enc: enc.run(x=x))
                print(f"| encoder {dev} {th}T | {raw_mb / t:.0f} MB/s |")
            dec = Session(lean_onnx(model.decoder), dev, th)
            t = timed(lambda dec=dec: dec.run(**inputs))
            print(f"| decoder {dev} {th}T | {raw_mb / t:.0f} MB/s |")
    for dev, threads in (("cpu", 1), ("cpu", 8), ("cuda", 1), ("cuda", 4))[: 4 if gpu else 2]:
        buf = io.BytesIO()
        tc = timed(lambda dev=dev, threads=threads, buf=buf: compress_with_model(
            table, io.BytesIO(), model_dir=args.model_dir, bound="rel:1e-3", device=dev, threads=threads), 2)
        compress_with_model(table, buf, model_dir=args.model_dir, bound="rel:1e-3", device=dev, threads=threads)
        td = timed(lambda dev=dev, threads=threads, buf=buf: decompress(buf.getvalue(), device=dev, threads=threads), 2)
        print(f"| codec {dev} {threads} workers | compress {table.nbytes / 1e6 / tc:.0f} MB/s | "
              f"decompress {table.nbytes / 1e6 / td:.0f} MB/s |")


if __name__ == "__main__":
    main()
