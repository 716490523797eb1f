"""Where balerc's bytes go per integer code stream, and what other entropy coders would make
of the very same codes (issue 15, "measure first").

    python benchmarks/entropy_measure.py [--dimuon-rows 200000] [--bounds rel:1e-3,pwrel:5e-4]

Model-free balerc on the float columns of the ratio_push.py tables: every integer code
stream the coder makes is captured (`encode_codes`) and coded again with zstd at levels
3 and 19 on the stored payload, pcodec (standalone, default level) on the codes, and the
order-0 entropy (a lower bound for an adaptive arithmetic/ANS coder per column, e.g.
constriction). Sizes are totals over the table, in bytes; the file size is balerc's own.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ratio_push import datasets  # noqa: E402

from balerc.cli.analysis.peers import compare  # noqa: E402
from balerc.codec import packing  # noqa: E402
from balerc.codec.bounds import Bound  # noqa: E402
from balerc.codec.coders import autoencoder  # noqa: E402
from balerc.codec.options import CompressOptions  # noqa: E402
from balerc.codec.pipeline import compress_table  # noqa: E402


def entropy_bytes(codes: np.ndarray) -> float:
    """Order-0 entropy of the codes, in bytes (no model cost)."""
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum() / 8)


def capture(t, bound: str, level: int | None, **kw) -> tuple[int, list[np.ndarray]]:
    """balerc's file bytes and every code array its coder packed."""
    seen: list[np.ndarray] = []
    orig = packing.encode_codes

    def spy(codes: np.ndarray, *a):
        seen.append(np.asarray(codes, dtype=np.int64).copy())
        return orig(codes, *a)

    autoencoder.encode_codes = spy
    try:
        opts = CompressOptions(bound=Bound.parse(bound), zstd_level=level, threads=1, **kw)
        res = compress_table(t, io.BytesIO(), opts)
    finally:
        autoencoder.encode_codes = orig
    return res.file_bytes, seen


def coders(codes: np.ndarray) -> dict[str, float]:
    import pcodec

    head, data = packing.encode_codes(codes)
    out = {"zstd-3": 1 + len(zstandard.ZstdCompressor(level=3).compress(data)),
           "zstd-19": 1 + len(zstandard.ZstdCompressor(level=19).compress(data))}
    out["pcodec"] = len(pcodec.standalone.simple_compress(codes, pcodec.ChunkConfig()))
    out["entropy0"] = entropy_bytes(codes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dimuon-rows", type=int, default=200_000)
    ap.add_argument("--bounds", default="rel:1e-3,rel:1e-4,pwrel:5e-4")
    args = ap.parse_args()
    print("| data | bound | balerc zstd, cheap | zstd, exhaustive | pcodec, cheap (default) | "
          "pcodec, exhaustive | every stream: zstd-19 / pcodec / order-0 entropy | "
          "quant+pcodec | SZ3 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in datasets(args.dimuon_rows):
        data2d = t.to_numpy(t.names, dtype=np.float64)
        bounds = args.bounds.split(",")
        peers = {(p.method, p.bound): p for p in compare(data2d, bounds,
                                                         methods=["quant-pcodec", "sz3"])}
        raw = t.n_rows * len(t.names) * 8

        def r(v: float | None, raw: int = raw) -> str:
            return "-" if v is None or not math.isfinite(v) else f"{raw / v:.2f}"

        for b in bounds:
            sizes = {}
            for ent in ("zstd", "auto"):
                for effort in ("cheap", "exhaustive"):
                    sizes[ent, effort], seen = capture(t, b, None, entropy=ent, effort=effort)
            tot: dict[str, float] = {}
            for c in seen:
                for k, v in coders(c).items():
                    tot[k] = tot.get(k, 0) + v
            key = str(Bound.parse(b))
            qp, sz = peers.get(("quant-pcodec", key)), peers.get(("sz3", key))
            print(f"| {name} | {b} | {r(sizes['zstd', 'cheap'])} | {r(sizes['zstd', 'exhaustive'])} "
                  f"| {r(sizes['auto', 'cheap'])} | {r(sizes['auto', 'exhaustive'])} | "
                  f"{r(tot['zstd-19'])} / {r(tot['pcodec'])} / {r(tot['entropy0'])} | "
                  f"{r(qp.compressed_bytes if qp and not qp.skipped else None)} | "
                  f"{r(sz.compressed_bytes if sz and not sz.skipped else None)} |", flush=True)


if __name__ == "__main__":
    main()
