"""Chunk streams written for the test tables, hashed: a refactor of the codec must not
change them (or must say where and why).

    python benchmarks/byte_identity.py --save benchmarks/byte_identity.json   # before
    python benchmarks/byte_identity.py --check benchmarks/byte_identity.json  # after

Covers lossless, model-free abs/rel/pwrel, a dense-style exact model (rel, pwrel, no
bound) and the physics decoder (rel, pwrel), on generated dimuon/jets/gene tables and on
Zmumu when ../shared/data is present. Only stream payloads and chunk metadata are hashed:
the header holds timestamps and the file id.

The generated tables' derived columns (E, eta, phi, M of the dimuons) come from numpy's
sin/cosh/arcsinh/arctan2, whose last bits differ between CPUs (AVX-512 builds use other
SIMD kernels) and numpy versions: the reference records a digest of every input table,
and a case whose input differs is reported as not comparable (save a reference on this
machine before the change), not as a codec difference.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _tables() -> dict:
    import numpy as np

    from balerc.formats import toy
    from balerc.formats.table import Table

    t = {"dimuon": toy.dimuon(3000, seed=11), "jets": toy.generate("jets", 3000, 2),
         "gene": toy.generate("gene", 800, 3)}
    d = toy.dimuon(600, seed=11)
    d.columns["label"] = np.array([f"ev{i}" for i in range(d.n_rows)], dtype=object)
    t["dimuon_label"] = d
    rng = np.random.default_rng(5)
    a = rng.uniform(1, 100, 3000) * rng.choice([-1, 1], 3000)
    b = 2 * a
    b[::101] += 3.0
    t["exact"] = Table({"a": a, "b": b})
    try:
        from balerc.formats.tableio import read_table
        from conftest import shared_file

        z = read_table(shared_file("uproot-Zmumu.root"))
        # its numeric branches, as the reference was taken (the char* Type branch, read by
        # default since 2026-12, is a lossless string stream, not what this guards)
        t["zmumu"] = Table({n: z[n] for n in z.names if z.kind(n) != "string"}, z.source)
    except Exception:  # data absent: the generated tables still cover every mode
        pass
    return t


def _models(tables: dict) -> dict:
    from test_exact_predictor import exact_model

    from balerc.train import TrainConfig, export, fit

    d = Path(tempfile.mkdtemp())
    exact = exact_model(d, [-100.0, -200.0], [200.0, 400.0])
    phys = d / "phys"
    export(fit(tables["dimuon"], TrainConfig(bound="pwrel:1e-3", epochs=3, search_steps=20,
                                             search_rows=2048, threads=1, seed=0,
                                             progress=False)), phys, force=True)
    return {"exact": exact, "phys": phys}


def _cases(tables: dict, models: dict) -> list[tuple[str, dict]]:
    cases = []
    for name in tables:
        if name == "exact":
            continue
        cases.append((f"{name}/lossless", {"table": name, "lossless": True}))
        for b in ("abs:0.01", "rel:1e-3", "rel:1e-4", "pwrel:1e-3", "pwrel:5e-4"):
            cases.append((f"{name}/{b}", {"table": name, "bound": b}))
    for b in ("rel:1e-3", "pwrel:1e-3", None):
        cases.append((f"exact/model/{b}", {"table": "exact", "bound": b, "model": "exact"}))
    for b in ("rel:1e-3", "pwrel:5e-4", "rel:1e-4"):
        cases.append((f"dimuon/phys/{b}", {"table": "dimuon", "bound": b, "model": "phys"}))
    return cases


def _write(case: dict, tables: dict, models: dict) -> bytes:
    from balerc.codec.ae import compress_with_model
    from balerc.codec.pipeline import compress_lossless

    buf = io.BytesIO()
    t = tables[case["table"]]
    if case.get("lossless"):
        compress_lossless(t, buf, chunk_rows=1000, zstd_level=19)
    else:
        model = models.get(case.get("model"))
        compress_with_model(t, buf, model_dir=model, bound=case.get("bound"), chunk_rows=1000,
                            keep_model=model is not None, zstd_level=19)
    return buf.getvalue()


def digest(data: bytes) -> list[str]:
    """Per chunk: sha256 of its metadata and of every stream, in order."""
    from balerc.formats.container import ContainerReader

    out = []
    with ContainerReader(data) as r:
        for i, c in enumerate(r.chunks):
            h = hashlib.sha256(json.dumps(c.meta, sort_keys=True).encode())
            for name, payload in r.read_chunk(i).items():
                h.update(name.encode() + b"\0" + hashlib.sha256(payload).digest())
            out.append(h.hexdigest()[:16])
    return out


INPUTS = "_inputs"  # the reference's key for the input tables' digests


def input_digest(table) -> str:
    """sha256 of a table's names, dtypes and values (strings as UTF-8)."""
    h = hashlib.sha256()
    for name in table.names:
        col = table[name]
        h.update(f"{name}:{col.dtype.str}\0".encode())
        h.update("\0".join(map(str, col)).encode() if col.dtype.kind == "O" else col.tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path)
    g.add_argument("--check", type=Path)
    args = ap.parse_args()
    tables = _tables()
    models = _models(tables)
    cases = _cases(tables, models)
    got = {name: digest(_write(case, tables, models)) for name, case in cases}
    inputs = {name: input_digest(t) for name, t in tables.items()}
    if args.save:
        args.save.write_text(json.dumps({**got, INPUTS: inputs}, indent=1) + "\n")
        print(f"saved {len(got)} cases, {sum(map(len, got.values()))} chunks to {args.save}")
        return
    want = json.loads(args.check.read_text())
    want_inputs = want.pop(INPUTS, {})
    moved = {n for n, d in want_inputs.items() if inputs.get(n) not in (None, d)}
    table_of = {name: case["table"] for name, case in cases}
    same = [n for n in want if got.get(n) == want[n]]
    differ = [n for n in want if n in got and got[n] != want[n]]
    apart = [n for n in differ if table_of.get(n) in moved]  # the input moved, not the codec
    differ = [n for n in differ if n not in apart]
    print(f"{len(same)} of {len(want)} cases byte-identical")
    for n in apart:
        print(f"  NOT COMPARABLE {n}: differs, but so does its input table on this machine "
              f"(numpy's math kernels differ by CPU); --save a reference here first")
    for n in differ:
        bad = sum(a != b for a, b in zip(got[n], want[n], strict=False))
        print(f"  DIFFERS {n}: {bad} of {len(want[n])} chunks")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
