"""Whole ROOT trees (issue 12): balerc against the source file and uproot rewrites.

For each tree: the source file's bytes; balerc --lossless, --precision nanoaod,
--precision <the file itself> and pwrel:5e-4; and the fair peer, the same tree written by
uproot with ZSTD and LZMA after rounding every float to NanoAOD's mantissa bits (what
`--precision nanoaod` allows). Ratios are against the source file and against raw bytes
(the in-memory size of every branch); MB/s are raw bytes over the wall time of the whole
`balerc` process (reading or writing ROOT included, python start-up too: meaningless on the
200-event sample) at 2 threads, decompress writing the tree with zstd:1 (uproot's zlib:1,
the sources' setting, takes ~3x longer); peak RSS from the process. Every round trip is
checked: branches in and out, jagged counts, worst error / bound.

    python benchmarks/whole_files.py [--events 100000] [--out results_whole_files.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

REPO = Path(__file__).resolve().parents[1]
NANO = REPO.parent / "shared" / "data" / "skhep_testdata_subset" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
BALERC = [sys.executable, "-m", "balerc"]


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one balerc process."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *BALERC, *args, "-q"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return wall, int(proc.stderr.strip().splitlines()[-1]) // 1024


def tree_arrays(path: Path) -> tuple[str, dict[str, np.ndarray | ak.Array], dict[str, str]]:
    f = uproot.open(path)
    name = next(k.rsplit(";", 1)[0] for k, c in f.classnames().items() if c == "TTree")
    t = f[name]
    return name, t.arrays(library="ak"), {k: t[k].typename for k in t.keys()}


def raw_bytes(arrays: ak.Array) -> int:
    total = 0
    for k in arrays.fields:
        a = arrays[k]
        flat = ak.flatten(a, axis=None) if a.ndim > 1 else a
        total += np.asarray(ak.to_numpy(flat)).nbytes
    return total


def check(src: Path, back: Path, bound_of) -> tuple[int, int, bool, float]:
    """Branches in/out, structure equal, worst error / bound over the float branches."""
    _, a, ta = tree_arrays(src)
    _, b, tb = tree_arrays(back)
    same = list(ta) == list(tb)
    worst = 0.0
    for k in ta:
        x, y = a[k], b[k]
        if ta[k].endswith("[]"):
            same &= bool(ak.all(ak.num(x) == ak.num(y)))
            x, y = ak.flatten(x), ak.flatten(y)
        x = np.asarray(ak.to_numpy(x)).astype(np.float64)
        y = np.asarray(ak.to_numpy(y)).astype(np.float64)
        bound = bound_of(k) if x.dtype.kind == "f" else None
        diff = np.abs(x - y)[np.isfinite(x)]
        if bound is None:
            same &= bool(np.array_equal(x, y, equal_nan=True))
        elif diff.size:
            lim = (bound * np.abs(x))[np.isfinite(x)]
            over = np.where(lim > 0, diff / np.where(lim > 0, lim, 1), np.where(diff > 0, np.inf, 0))
            worst = max(worst, float(over.max()))
    return len(ta), len(tb), same, worst


def nano_bits(name: str) -> float | None:
    from balerc.codec.precision import nanoaod_bits

    bits = nanoaod_bits(name)
    return None if bits is None else 2.0 ** -(bits + 1)


def peers(src: Path, work: Path) -> dict[str, int]:
    """uproot rewrites of the tree rounded to NanoAOD precision (ZSTD 9, LZMA 9)."""
    from balerc.formats.root_sections import open_root_sections, write_root_sections
    from balerc.formats.sections import Sections
    from balerc.formats.table import Table, concat
    from balerc.formats.toy_nano import _bits_for, round_mantissa

    stream = open_root_sections(src)
    steps = list(stream.steps(1 << 17))
    tree = Sections({n: concat([s[n] for s in steps]) for n in steps[0].names},
                    steps[0].layouts, stream.source)
    rounded = Sections({n: Table({c: round_mantissa(a, _bits_for(c)) if a.dtype == np.float32
                                  else a for c, a in t.columns.items()})
                        for n, t in tree.tables.items()}, tree.layouts, tree.source)
    out = {}
    for label, data in (("lossless", tree), ("nanoaod", rounded)):
        for comp in ("ZSTD", "LZMA"):
            path = work / f"peer_{label}_{comp}.root"
            codec = getattr(uproot, comp)(9)
            write_root_sections(data, path, compression=codec)
            out[f"uproot {comp}-9, {label}"] = path.stat().st_size
    return out


def bench(src: Path, work: Path, label: str) -> list[str]:
    _, arrays, types = tree_arrays(src)
    raw = raw_bytes(arrays)
    size = src.stat().st_size
    rows = [f"### {label}: {len(arrays):,} events, {len(types)} branches, source "
            f"{size:,} bytes, raw {raw:,} bytes", "",
            "| method | bytes | vs source | vs raw | compress MB/s | decompress MB/s | "
            "peak RSS MB (c/d) | branches in/out | same structure | worst err/bound |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    cases = {"balerc --lossless": (["--lossless"], lambda k: None),
             "balerc --precision nanoaod": (["--precision", "nanoaod"], nano_bits),
             "balerc --precision FILE": (["--precision", str(src)], None),
             "balerc pwrel:5e-4": (["--error-bound", "pwrel:5e-4"], lambda k: 5e-4)}
    for name, (opts, bound_of) in cases.items():
        out, back = work / "x.balerc", work / "back.root"
        tc, mc = run_cli(["compress", str(src), "-o", str(out), "--force", "-T", "2", *opts])
        td, md = run_cli(["decompress", str(out), "-o", str(back), "--force", "-T", "2",
                          "--root-compression", "zstd:1"])
        nbytes = out.stat().st_size
        if bound_of is None:  # inferred bits: read each column's bound from the file
            info = json.loads(subprocess.run([*BALERC, "info", str(out), "--json"],
                                             capture_output=True, text=True).stdout)
            known = {c["name"]: c.get("bound") for s in info["sections"] for c in s["columns"]}
            bound_of = lambda k, known=known: (None if known.get(k) in (None, "lossless")  # noqa: E731
                                               else float(known[k].split(":")[1]))
        n_in, n_out, same, worst = check(src, back, bound_of)
        rows.append(f"| {name} | {nbytes:,} | {size / nbytes:.2f}x | {raw / nbytes:.2f}x | "
                    f"{raw / 1e6 / tc:.1f} | {raw / 1e6 / td:.1f} | {mc}/{md} | {n_in}/{n_out} "
                    f"| {same} | {worst:.3f} |")
        if name == "balerc --precision nanoaod":
            sections = json.loads(subprocess.run([*BALERC, "info", str(out), "--json"],
                                                 capture_output=True, text=True).stdout)["sections"]
    for name, nbytes in peers(src, work).items():
        rows.append(f"| {name} | {nbytes:,} | {size / nbytes:.2f}x | {raw / nbytes:.2f}x | - | - "
                    f"| - | - | - | - |")
    rows += ["", f"Per section at --precision nanoaod ({label}):", "",
             "| section | rows | raw bytes | stored | ratio |", "|---|---|---|---|---|"]
    for s in sections:
        ratio = s["raw_bytes"] / s["stored_bytes"] if s["stored_bytes"] else float("nan")
        rows.append(f"| {s['name']} | {s['rows']:,} | {s['raw_bytes']:,} | "
                    f"{s['stored_bytes']:,} | {ratio:.2f} |")
    return rows + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines = ["# Whole ROOT trees: balerc vs the source file and uproot rewrites", ""]
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        if NANO.exists():
            lines += bench(NANO, work, "CMS Open Data NanoAOD ttbar (../shared/data)")
        gen = work / "nano_gen.root"
        subprocess.run([*BALERC, "generate", "--kind", "nanoaod", "--rows", str(args.events),
                        "-o", str(gen)], check=True, capture_output=True)
        lines += bench(gen, work, f"generated NanoAOD-like tree ({args.events:,} events)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
