"""The seed corpus: small valid .balerc files of every mode, with their decoded tables.

``python -m tests.fuzz.seeds`` (from the repository root) rewrites ``tests/fuzz/corpus/``:
for each seed ``NAME.balerc`` and ``NAME.expected.npz`` (the decoded columns; strings as
unicode arrays, never pickled). Models are trained for a few epochs (torch needed to
regenerate, not to fuzz). Each seed stays well under 60 kB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from balerc.formats.table import Table

CORPUS = Path(__file__).resolve().parent / "corpus"
REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures"
MAX_SEED_BYTES = 60_000


@dataclass
class Seed:
    """One corpus file: its bytes and the table it must decode to."""

    name: str
    data: bytes
    expected: dict[str, np.ndarray]

    @property
    def kind(self) -> str:
        return self.name

    @property
    def rows(self) -> int:
        return len(next(iter(self.expected.values()))) if self.expected else 0


# ------------------------------------------------------------------------ expected npz
def save_expected(table: Table, path: Path) -> None:
    """Decoded columns as an .npz without pickles (strings as a unicode array)."""
    arrays: dict[str, np.ndarray] = {"__names__": np.array(table.names, dtype=str)}
    kinds = []
    for i, n in enumerate(table.names):
        a = table[n]
        kinds.append("str" if a.dtype.kind in "OUS" else a.dtype.str)
        arrays[f"c{i}"] = a.astype(str) if a.dtype.kind in "OUS" else a
    arrays["__dtypes__"] = np.array(kinds, dtype=str)
    np.savez_compressed(path, **arrays)


def load_expected(path: Path) -> dict[str, np.ndarray]:
    """The columns saved by `save_expected` (string columns back as object arrays)."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["__names__"]]
        dtypes = [str(d) for d in z["__dtypes__"]] if "__dtypes__" in z else [""] * len(names)
        out = {}
        for i, (n, d) in enumerate(zip(names, dtypes, strict=True)):
            a = z[f"c{i}"]
            out[n] = a.astype(object) if d == "str" or a.dtype.kind == "U" else a
        return out


def load_corpus(directory: Path = CORPUS) -> list[Seed]:
    """Every seed of the corpus, sorted by name."""
    seeds = []
    for f in sorted(directory.glob("*.balerc")):
        exp = f.with_name(f.name[: -len(".balerc")] + ".expected.npz")
        seeds.append(Seed(f.stem, f.read_bytes(), load_expected(exp)))
    if not seeds:
        raise FileNotFoundError(f"no seeds in {directory}: run python -m tests.fuzz.seeds")
    return seeds


# ------------------------------------------------------------------------------ tables
def _mixed(n: int = 600) -> Table:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    x[[3, 77]] = [np.nan, np.inf]
    return Table({
        "x": x,
        "y32": rng.normal(100, 5, size=n).astype(np.float32),
        "idx": np.arange(n, dtype=np.int64) * 3 + 7,
        "q": rng.integers(-3, 4, size=n).astype(np.int32),
        "u8": rng.integers(0, 255, size=n).astype(np.uint8),
        "ok": rng.random(n) > 0.3,
        "label": np.array([f"ev-{i % 37}-\u00e9" for i in range(n)], dtype=object),
    }, {"format": "generated"})


def _toy(kind: str, rows: int, seed: int, holes: bool = True) -> Table:
    from balerc.formats import toy

    t = toy.generate(kind, rows, seed)
    if holes:  # NaN, Inf and zero: exception streams and zero codes in every seed
        for name in t.names_of_kind("float")[:2]:
            col = t[name].copy()
            col[[5, 11]] = [np.nan, -np.inf]
            col[17] = 0.0
            t.columns[name] = col
    return t


def _exact_table(n: int = 1500) -> Table:
    rng = np.random.default_rng(3)
    a = rng.uniform(1, 100, n) * rng.choice([-1, 1], n)
    b = 2 * a
    b[::97] += 7.0
    b[17], b[18] = 0.0, np.nan
    return Table({"a": a, "b": b})


# ------------------------------------------------------------------------------ models
def _exact_model(root: Path) -> Path:
    """A hand-built decoder b = 2a (in column units): every prediction mode is used."""
    from tests.test_exact_predictor import exact_model

    return exact_model(root, [-100.0, -200.0], [200.0, 400.0])


def _latent_table(n: int = 1200) -> Table:
    rng = np.random.default_rng(8)
    c = rng.uniform(-10, 10, n)
    noise = rng.normal(0, 1e-3, (2, n))
    return Table({"c": c, "d": 2 * c + noise[0], "e": -c / 2 + noise[1]})


def _latent_model(root: Path) -> Path:
    """Encoder z = c/10, decoder (c, d, e) = (1, 1, -1) z in normalized units: one latent
    stream serves three columns, so the latents pay and every chunk has a `latents` stream."""
    from onnx import TensorProto, helper

    def onnx_bytes(name: str, inp: str, k: int, w: np.ndarray, out: int, oname: str) -> bytes:
        """oname = inp @ w as an ONNX model (names as balerc's exporter writes them)."""
        graph = helper.make_graph(
            [helper.make_node("MatMul", [inp, "w"], [oname])], name,
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["N", k])],
            [helper.make_tensor_value_info(oname, TensorProto.FLOAT, ["N", out])],
            [helper.make_tensor("w", TensorProto.FLOAT, list(w.shape), w.ravel())],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model.SerializeToString()

    enc = onnx_bytes("enc", "x", 3, np.array([[1.0], [0.0], [0.0]], dtype=np.float32), 1, "z")
    dec = onnx_bytes("dec", "z", 1, np.array([[1.0, 1.0, -1.0]], dtype=np.float32), 3, "y")
    d = root / "latent"
    d.mkdir()
    (d / "encoder.onnx").write_bytes(enc)
    (d / "decoder.onnx").write_bytes(dec)
    manifest = {
        "format": "balerc-model", "model_format_version": 1, "columns": ["c", "d", "e"],
        "anchors": [], "predicted": ["c", "d", "e"], "latent_dim": 1, "latent_bits": 12,
        "normalization": [{"name": n, "offset": 0.0, "scale": s}
                          for n, s in zip("cde", [10.0, 20.0, 5.0], strict=True)],
        "encoder": {"file": "encoder.onnx", "sha256": hashlib.sha256(enc).hexdigest()},
        "decoder": {"file": "decoder.onnx", "sha256": hashlib.sha256(dec).hexdigest()},
        "train_bound": "rel:1e-3",
    }
    (d / "model.json").write_text(json.dumps(manifest))
    return d


def _trained(root: Path, name: str, table: Table, **cfg: object) -> Path:
    """A tiny model trained for two epochs (torch), exported to root/name."""
    from balerc.train import TrainConfig, export, fit

    d = root / name
    conf = TrainConfig(epochs=2, search_steps=20, search_rows=2048, threads=1, progress=False,
                       device="cpu", **cfg)
    export(fit(table, conf), d, force=True)
    return d


# ------------------------------------------------------------------------------ build
def _jobs(root: Path) -> dict[str, Callable[[Path], object]]:
    from balerc.codec.ae import compress_with_model
    from balerc.codec.pipeline import compress_lossless

    def lossy(table: Table, bound: str | None, rows: int,
              model: Path | None = None) -> Callable[[Path], object]:
        return lambda p: compress_with_model(table, p, model_dir=model, bound=bound,
                                             chunk_rows=rows, keep_model=True, force=True)

    jets = _toy("jets", 600, 2)
    dimuon = _toy("dimuon", 600, 3)
    train_jets = _toy("jets", 2000, 4, holes=False)
    train_dimuon = _toy("dimuon", 2000, 5, holes=False)
    dense = _trained(root, "dense", train_jets, model="dense", physics="off")
    physics = _trained(root, "physics", train_dimuon, model="physics", bound="pwrel:5e-4")
    exact = _exact_model(root)
    latent = _latent_model(root)
    return {
        "lossless": lambda p: compress_lossless(_mixed(), p, chunk_rows=200, force=True),
        "abs": lossy(dimuon, "abs:1e-3", 300),
        "rel": lossy(jets, "rel:1e-3", 200),
        "pwrel": lossy(dimuon, "pwrel:1e-3", 300),
        "multichunk_rel": lossy(_toy("dimuon", 512, 6), "rel:1e-4", 64),
        "dense_rel": lossy(jets, "rel:1e-3", 300, dense),
        "dense_pwrel": lossy(jets, "pwrel:1e-3", 300, dense),
        "physics_pwrel": lossy(dimuon, "pwrel:5e-4", 300, physics),
        "physics_rel": lossy(dimuon, "rel:1e-3", 300, physics),
        "exact_rel": lossy(_exact_table(), "rel:1e-3", 500, exact),
        "exact_pwrel": lossy(_exact_table(), "pwrel:1e-3", 500, exact),
        "latent_rel": lossy(_latent_table(), "rel:1e-3", 400, latent),
        "latent_ae": lossy(_latent_table(), None, 400, latent),
    }


# older formats, copied from the golden fixtures as they are: 1.0 with raw JSON, 1.0 with
# zstd JSON (no dictionary), 2.0 (header checksum without the preamble, no first_row)
GOLDEN_SEEDS = {"v1_rel": "v1_rel1e-3", "v1z_model_pwrel": "v1z_model_pwrel1e-3",
                "v20_rel": "v2_rel1e-3", "v20_physics_pwrel": "v2_phys64_pwrel5e-4"}


def build(out: Path = CORPUS) -> list[tuple[str, int]]:
    """Rewrite the corpus; returns (name, bytes) per seed."""
    from balerc.codec.pipeline import read_container

    out.mkdir(parents=True, exist_ok=True)
    for f in list(out.glob("*.balerc")) + list(out.glob("*.expected.npz")):
        f.unlink()
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in _jobs(Path(tmp)).items():
            path = out / f"{name}.balerc"
            job(path)
            save_expected(read_container(path), out / f"{name}.expected.npz")
            sizes.append((name, path.stat().st_size))
    for name, golden in GOLDEN_SEEDS.items():
        shutil.copyfile(GOLDEN / f"{golden}.balerc", out / f"{name}.balerc")
        save_expected(read_container(out / f"{name}.balerc"), out / f"{name}.expected.npz")
        sizes.append((name, (out / f"{name}.balerc").stat().st_size))
    big = [(n, s) for n, s in sizes if s > MAX_SEED_BYTES]
    if big:
        raise SystemExit(f"seeds over {MAX_SEED_BYTES} bytes: {big}")
    return sizes


def rewrite_expected(out: Path = CORPUS) -> list[str]:
    """Rewrite every NAME.expected.npz from this reader's decoding (seeds kept as they are:
    after a deliberate change of the decoding arithmetic)."""
    from balerc.codec.pipeline import read_container

    names = []
    for f in sorted(out.glob("*.balerc")):
        save_expected(read_container(f), f.with_name(f.stem + ".expected.npz"))
        names.append(f.stem)
    return names


def main() -> None:
    """Rebuild the corpus (or only its expected tables)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=CORPUS)
    ap.add_argument("--expected-only", action="store_true",
                    help="keep the seed files, rewrite their expected tables")
    args = ap.parse_args()
    if args.expected_only:
        print("rewrote", ", ".join(rewrite_expected(args.out)))
        return
    for name, size in build(args.out):
        print(f"{name:20s} {size:7,d} bytes")


if __name__ == "__main__":
    main()
