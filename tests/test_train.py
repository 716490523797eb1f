"""Training side: fit, export, ONNX files usable by onnxruntime alone, bad input.

Runs are a few epochs on a few thousand rows so the whole file stays well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from balerc.formats import toy  # noqa: E402
from balerc.formats.errors import InputError  # noqa: E402
from balerc.formats.table import Table  # noqa: E402
from balerc.train import TrainConfig, export, fit  # noqa: E402
from balerc.train.estimate import estimate_bytes, plain_codes, stream_bytes  # noqa: E402
from balerc.train.normalization import fit_column  # noqa: E402

ZMUMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "skhep_testdata_subset" / "zmumu_2304.csv"
QUICK = dict(epochs=3, search_steps=20, search_rows=2048, threads=1)

MANIFEST_KEYS = {
    "format", "model_format_version", "decoder_io", "exact", "columns", "anchors", "predicted", "latent_dim",
    "latent_bits", "latent_step", "normalization", "model", "encoder", "decoder", "opset",
    "train_bound", "training", "producer",
}
TRAINING_KEYS = {
    "rows", "train_rows", "val_rows", "data_sha256", "epochs_run", "best_val_loss", "seed",
    "seconds", "per_column", "estimated_ratio", "candidates",
}


def kinematics(n: int = 3000, seed: int = 0) -> Table:
    """Columns with derived quantities (pt, phi, E) the decoder can learn from anchors."""
    rng = np.random.default_rng(seed)
    px, py, pz = rng.normal(0, 20, n), rng.normal(0, 20, n), rng.normal(0, 50, n)
    pt = np.hypot(px, py)
    return Table({
        "event": np.arange(n, dtype=np.int64),
        "px": px, "py": py, "pz": pz, "pt": pt, "phi": np.arctan2(py, px),
        "E": np.sqrt(pt**2 + pz**2 + 0.01), "noise": rng.normal(size=n),
    })


def zmumu() -> Table:
    if not ZMUMU.exists():
        pytest.skip(f"{ZMUMU} is absent (../shared/data not available)")
    data = np.genfromtxt(ZMUMU, delimiter=",", names=True, dtype=None, encoding="utf-8")
    floats = [n for n in data.dtype.names if data.dtype[n].kind == "f"]
    return Table({n: np.asarray(data[n], dtype=np.float64) for n in floats})


def run_onnx(model_dir: Path, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Encode and decode normalized rows with onnxruntime only, as the codec will."""
    man = json.loads((model_dir / "model.json").read_text())
    cols = man["columns"]
    feeds: dict[str, np.ndarray] = {}
    z = None
    if man["encoder"] is not None:
        enc = ort.InferenceSession(str(model_dir / "encoder.onnx"), providers=["CPUExecutionProvider"])
        (z,) = enc.run(None, {"x": x})
        feeds["z"] = (np.round(z / man["latent_step"]) * man["latent_step"]).astype(np.float32)
    io64 = man["decoder_io"] == "float64"
    if man["anchors"]:
        idx = [cols.index(a) for a in man["anchors"]]
        feeds["a"] = x[:, idx]
        if io64:  # the physics decoder: column units, float64
            norm = {n["name"]: n for n in man["normalization"]}
            off = np.array([norm[a]["offset"] for a in man["anchors"]])
            sc = np.array([norm[a]["scale"] for a in man["anchors"]])
            feeds["a"] = x[:, idx].astype(np.float64) * sc + off
    dec = ort.InferenceSession(str(model_dir / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in dec.get_inputs()) == sorted(feeds)
    (y,) = dec.run(None, feeds)
    if io64:  # back to normalized units for the shared checks
        norm = {n["name"]: n for n in man["normalization"]}
        off = np.array([norm[c]["offset"] for c in man["predicted"]])
        sc = np.array([norm[c]["scale"] for c in man["predicted"]])
        assert y.dtype == np.float64 and set(man["exact"]) <= set(man["predicted"])
        y = ((y - off) / sc).astype(np.float32)
    return z, y


def check_model_dir(d: Path, n_rows: int = 100) -> dict:
    man = json.loads((d / "model.json").read_text())
    assert MANIFEST_KEYS <= set(man)
    assert TRAINING_KEYS <= set(man["training"])
    assert man["format"] == "balerc-model" and man["model_format_version"] == 2 and man["opset"] == 17
    f, k, lat = len(man["columns"]), len(man["anchors"]), man["latent_dim"]
    assert man["predicted"] == [c for c in man["columns"] if c not in man["anchors"]]
    assert man["latent_step"] == 2.0 / 2 ** man["latent_bits"]
    assert [n["name"] for n in man["normalization"]] == man["columns"]
    for n in man["normalization"]:
        assert n["scale"] > 0 and n["transform"] in ("none", "log")
    assert set(man["training"]["per_column"]) == set(man["predicted"])
    files = {p.name for p in d.iterdir()}
    assert files <= {"encoder.onnx", "decoder.onnx", "model.json", "loss_curve.csv", "loss_curve.png"}
    assert ("encoder.onnx" in files) == (lat > 0) and (man["encoder"] is None) == (lat == 0)
    for role in ("encoder", "decoder"):
        if man[role] is None:
            continue
        data = (d / f"{role}.onnx").read_bytes()
        assert hashlib.sha256(data).hexdigest() == man[role]["sha256"]
        proto = onnx.load_from_string(data)
        assert proto.opset_import[0].version == 17
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["balerc.role"] == role and meta["balerc.model_format_version"] == "2"
        core = json.loads(meta["balerc.manifest"])
        assert core["columns"] == man["columns"] and core["anchors"] == man["anchors"]
        assert core["normalization"] == man["normalization"]
    x = np.random.default_rng(1).normal(size=(n_rows, f)).astype(np.float32)
    z, y = run_onnx(d, x)
    assert y.shape == (n_rows, f - k) and y.dtype == np.float32 and np.isfinite(y).all()
    if lat:
        assert z.shape == (n_rows, lat) and np.abs(z).max() <= 1.0
    assert max(man["training"]["parity_max_abs_diff"].values()) <= 1e-5
    return man


def test_fit_export_generated_with_search(tmp_path: Path) -> None:
    table = kinematics()
    model = fit(table, TrainConfig(**QUICK))
    assert model.columns == ["px", "py", "pz", "pt", "phi", "E", "noise"]
    assert model.training["candidates"] and any(c["chosen"] for c in model.training["candidates"])
    out = export(model, tmp_path / "m")
    man = check_model_dir(out)
    if model.history:  # trained: a curve; exact formulas only: none, and a note
        assert (out / "loss_curve.csv").read_text().startswith("epoch,train_loss,val_loss")
    else:
        assert not (out / "loss_curve.csv").exists()
        assert "nothing was trained" in man["training"]["notes"][0]
    assert man["training"]["estimated_ratio"] > 1
    assert "rows 3000" in model.summary()


def test_fixed_latent_and_anchors_both_inputs(tmp_path: Path) -> None:
    model = fit(kinematics(), TrainConfig(latent=2, anchors=["px", "py"], **QUICK))
    assert model.anchors == ["px", "py"] and model.latent_dim == 2
    man = check_model_dir(export(model, tmp_path / "m"))
    dec = ort.InferenceSession(str(tmp_path / "m" / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in dec.get_inputs()] == ["z", "a"]
    assert man["decoder"]["inputs"][1]["shape"] == ["N", 2]


def test_pure_autoencoder_and_other_models(tmp_path: Path) -> None:
    for name, widths in (("baler", None), ("dense-wide", [16, 8])):
        model = fit(kinematics(800), TrainConfig(model=name, widths=widths, ratio=2, anchors=[], **QUICK))
        man = check_model_dir(export(model, tmp_path / name))
        assert man["anchors"] == [] and man["latent_dim"] == 4
        assert man["model"]["name"] == name
    assert man["model"]["widths"] == [16, 8]


def test_real_zmumu(tmp_path: Path) -> None:
    table = zmumu()
    model = fit(table, TrainConfig(norm="auto", **QUICK))
    assert len(model.columns) == 15 and "M" in model.columns
    man = check_model_dir(export(model, tmp_path / "z"))
    assert man["training"]["rows"] == 2304
    # heavy-tailed positive energies get the in-graph log transform under `auto`
    assert any(n["transform"] == "log" for n in man["normalization"])


def test_same_seed_same_onnx_bytes(tmp_path: Path) -> None:
    table = kinematics(1500)
    cfg = dict(latent=1, anchors=["px"], **QUICK)
    a = export(fit(table, TrainConfig(seed=3, **cfg)), tmp_path / "a")
    b = export(fit(table, TrainConfig(seed=3, **cfg)), tmp_path / "b")
    c = export(fit(table, TrainConfig(seed=4, **cfg)), tmp_path / "c")
    for name in ("encoder.onnx", "decoder.onnx"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "decoder.onnx").read_bytes() != (c / "decoder.onnx").read_bytes()


def test_log_norm_folded_into_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    e = rng.exponential(10.0, 2000) ** 2
    table = Table({"E": e, "half": e / 2 + rng.exponential(1.0, 2000), "u": rng.random(2000)})
    model = fit(table, TrainConfig(norm="auto", latent=1, **QUICK))
    assert [c.transform for c in model.norms] == ["log", "log", "none"]
    assert [c.norm for c in model.norms] == ["log", "log", "standard"]
    man = check_model_dir(export(model, tmp_path / "m"))
    assert all(n["log_k"] > 0 for n in man["normalization"] if n["transform"] == "log")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m" / "encoder.onnx")).graph.node}
    assert "Log" in ops


def test_export_refuses_existing_dir_without_force(tmp_path: Path) -> None:
    model = fit(kinematics(600), TrainConfig(latent=1, anchors=["pt"], **QUICK))
    export(model, tmp_path / "m")
    with pytest.raises(InputError, match="--force"):
        export(model, tmp_path / "m")
    export(model, tmp_path / "m", force=True)


def test_constant_column_trains(tmp_path: Path) -> None:
    table = kinematics(800)
    table.columns["flat"] = np.full(800, 3.5)
    model = fit(table, TrainConfig(latent=1, **QUICK))
    assert np.isfinite(model.training["best_val_loss"])
    assert all(np.isfinite(v["rms"]) for v in model.per_column.values())
    flat = next(c for c in model.norms if c.name == "flat")
    assert flat.scale == 1.0
    check_model_dir(export(model, tmp_path / "m"))


def test_nan_and_inf_name_the_column() -> None:
    table = kinematics(500)
    table.columns["pz"][[3, 7]] = np.nan
    table.columns["E"][9] = np.inf
    with pytest.raises(InputError) as err:
        fit(table, TrainConfig(**QUICK))
    msg = str(err.value)
    assert "'pz' (2 NaN)" in msg and "'E' (1 Inf)" in msg


def test_latent_not_smaller_than_columns_refused() -> None:
    table = kinematics(500)
    with pytest.raises(InputError, match="not smaller than the 7 columns"):
        fit(table, TrainConfig(latent=7, **QUICK))
    with pytest.raises(InputError, match="not smaller"):
        fit(table, TrainConfig(ratio=1.05, **QUICK))


def test_cuda_without_gpu_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA was requested but torch sees no GPU"):
        fit(kinematics(500), TrainConfig(device="cuda", **QUICK))


def test_columns_matching_nothing_lists_available() -> None:
    with pytest.raises(InputError, match="available float columns: px, py"):
        fit(kinematics(500), TrainConfig(columns=["nope*"], **QUICK))
    with pytest.raises(InputError, match="not float columns"):
        fit(kinematics(500), TrainConfig(columns=["event"], **QUICK))


def test_bad_options_refused() -> None:
    with pytest.raises(InputError, match="unknown --model .nope.; use one of dense"):
        fit(kinematics(500), TrainConfig(model="nope", latent=1, anchors=[], **QUICK))
    with pytest.raises(InputError, match="either --latent or --ratio"):
        fit(kinematics(500), TrainConfig(latent=1, ratio=2))
    with pytest.raises(InputError, match="unknown bound mode 'xyz'"):
        fit(kinematics(500), TrainConfig(bound="xyz:1e-3", **QUICK))
    with pytest.raises(InputError, match="not training columns"):
        fit(kinematics(500), TrainConfig(anchors=["event"], **QUICK))


def test_estimate_counts_fallback_and_model_bytes() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(4000, 2)) * [1.0, 5.0]
    e = np.array([1e-3, 5e-3])
    plain = estimate_bytes(y, ["a", "b"], e, [], None)
    assert plain.total_bytes == stream_bytes(plain_codes(y[:, 0], 1e-3)) + stream_bytes(
        plain_codes(y[:, 1], 5e-3))
    good = estimate_bytes(y, ["a", "b"], e, [0], y[:, [1]] + 1e-4, model_bytes=1000)
    assert not good.fallback["b"] and good.residual_bytes["b"] < 0.2 * plain.residual_bytes["b"]
    bad = estimate_bytes(y, ["a", "b"], e, [0], y[:, [1]] + rng.normal(0, 50, (4000, 1)))
    assert bad.fallback["b"] and bad.residual_bytes["b"] == plain.residual_bytes["b"]
    assert good.total_bytes == sum(good.anchor_bytes.values()) + good.residual_bytes["b"] + 1000
    scaled = estimate_bytes(y, ["a", "b"], e, [], None, total_rows=8000)
    assert scaled.total_bytes == pytest.approx(2 * plain.total_bytes)
    assert scaled.ratio == pytest.approx(8000 * 2 * 8 / scaled.total_bytes)


def test_normalization_choices() -> None:
    rng = np.random.default_rng(0)
    heavy = rng.exponential(1.0, 5000) ** 3
    assert fit_column("pt", heavy, "auto").transform == "log"
    sym = fit_column("px", rng.normal(size=5000), "auto")
    assert sym.transform == "none" and sym.norm == "standard"
    mm = fit_column("u", np.array([2.0, 4.0, 6.0]), "minmax")
    assert (mm.offset, mm.scale) == (2.0, 4.0)
    const = fit_column("c", np.full(10, 7.0), "robust")
    assert const.scale == 1.0 and const.offset == 7.0


def test_cli_train_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from balerc.cli.train_cmd import train_command

    t = kinematics(600)
    csv = tmp_path / "k.csv"
    cols = t.names
    rows = np.column_stack([t[c] for c in cols])
    csv.write_text(",".join(cols) + "\n" + "\n".join(
        ",".join(str(int(v)) if j == 0 else repr(float(v)) for j, v in enumerate(r)) for r in rows) + "\n")
    out = tmp_path / "m"
    args = [str(csv), "-o", str(out), "--epochs", "2", "--latent", "1", "--anchors", "px,py",
            "--columns", "p*", "--columns", "E", "--threads", "1", "--quiet"]
    res = CliRunner().invoke(train_command, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    man = check_model_dir(out)
    assert man["columns"] == ["px", "py", "pz", "pt", "phi", "E"]
    assert "estimated ratio" in res.output
    again = CliRunner().invoke(train_command, args)
    assert isinstance(again.exception, InputError) and "--force" in str(again.exception)
    gpu = CliRunner().invoke(train_command, [*args, "--force", "--device", "cuda"])
    if not torch.cuda.is_available():
        assert "CUDA was requested but torch sees no GPU" in str(gpu.exception)


def test_importing_train_and_command_does_not_import_torch() -> None:
    code = ("import sys, balerc.train, balerc.cli.main; "
            "from balerc.cli.train_cmd import train_command; "
            "import balerc.codec; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_wide_table_search_has_bounded_cost_and_progress(
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 300-column table: each greedy step tries a sample of anchor_trials columns and
    says so; the budget stops the steps once spent (here: after the first)."""
    from balerc.train import search as S

    rng = np.random.default_rng(3)
    base = rng.normal(size=(80, 4))
    cols = {f"c{j}": base @ rng.normal(size=4) + 0.01 * rng.normal(size=80) for j in range(300)}
    calls: list[int] = []
    real = S._Proxy.cost

    def counted(self: S._Proxy, *a: object) -> float:
        calls.append(1)
        return real(self, *a)

    monkeypatch.setattr(S._Proxy, "cost", counted)
    model = fit(Table(cols), TrainConfig(ratio=100, anchor_trials=8, search_seconds=1e-9,
                                         progress=True, **QUICK))
    err = capsys.readouterr().err
    assert "anchor step 1/6 (a sample of 8 of 300 columns)" in err
    assert "search budget is spent" in err and "anchor step 2/6" not in err
    assert len(calls) <= 8 + 2 and model.latent_dim == 3


def test_baler_model_and_per_column_normalization(tmp_path: Path) -> None:
    """--model baler: Baler's widths, no anchors, L = ceil(F/ratio); a norm config chooses
    the normalization per column (globs), the rest follow --norm."""
    from click.testing import CliRunner

    from balerc.cli.train_cmd import train_command

    t = kinematics(600)
    csv = tmp_path / "k.csv"
    names = t.names_of_kind("float")
    rows = np.column_stack([t[c] for c in names])
    csv.write_text(",".join(names) + "\n" + "\n".join(",".join(repr(float(v)) for v in r)
                                                      for r in rows) + "\n")
    cfg = tmp_path / "norm.json"
    cfg.write_text(json.dumps({"p*": "minmax", "E": "robust"}))
    out = tmp_path / "m"
    res = CliRunner().invoke(train_command, [str(csv), "-o", str(out), "--model", "baler",
                                             "--ratio", "2", "--norm", "standard",
                                             "--norm-config", str(cfg), "--epochs", "2", "-q"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    man = check_model_dir(out)
    assert man["model"]["name"] == "baler" and man["model"]["widths"] == [200, 100, 50]
    assert man["anchors"] == [] and man["latent_dim"] == 4
    norms = {n["name"]: n["norm"] for n in man["normalization"]}
    assert norms == {"px": "minmax", "py": "minmax", "pz": "minmax", "pt": "minmax",
                     "phi": "minmax", "E": "robust", "noise": "standard"}
    cfg.write_text(json.dumps({"nope*": "minmax"}))
    bad = CliRunner().invoke(train_command, [str(csv), "-o", str(out), "--force",
                                             "--norm-config", str(cfg), "-q"])
    assert isinstance(bad.exception, InputError) and "nope*" in str(bad.exception)


def test_train_help_names_what_is_searched_and_every_option() -> None:
    import click
    from click.testing import CliRunner

    from balerc.cli.train_cmd import train_command

    out = CliRunner().invoke(train_command, ["--help"]).output
    assert "What you fix is kept" in out and "searched" in out and "ceil(F/4)" in out
    bare = [p.name for p in train_command.params
            if isinstance(p, click.Option) and not p.help]
    assert bare == [], f"options without help text: {bare}"


@pytest.mark.parametrize("bound", ["rel:1e300", "abs:1e40", "rel:2"])
def test_a_bound_covering_every_column_is_refused(bound):
    """rel:1e300 overflowed the loss and blamed --lr; any bound wider than every column's
    range leaves nothing for a model to save."""
    from balerc.train.problem import build_problem

    t = toy.dimuon(300, seed=1)
    with pytest.raises(InputError, match="covers the whole range of every column"):
        build_problem(t, ["px1", "py1"], "standard", bound, 0.2, 0)


def test_model_names_match_the_registry_and_an_unknown_one_is_refused_first():
    """`train --model foo` was refused only after reading the data and starting the anchor
    search; the names are now checked with the other options (and by click's Choice)."""
    from balerc.train.config import MODEL_NAMES
    from balerc.train.models import MODELS

    assert tuple(MODELS) == MODEL_NAMES
    with pytest.raises(InputError, match="unknown --model 'foo'; use one of dense, baler"):
        TrainConfig(model="foo").validate()


@pytest.mark.parametrize("bound, tiny, anchors", [("abs:1e-3", 1e-30, ["t", "a"]),
                                                  ("pwrel:1e-4", 1e-312, ["a"])])
def test_columns_far_below_the_bound_or_subnormal_train(bound, tiny, anchors):
    """A 1e-30 anchor under abs:1e-3 (its bound 1e28 in normalized units: anchor noise and
    loss floor overflowed float32) and a subnormal column under pwrel (its loss weight
    divided by an underflowed bound) made training diverge whatever --lr or --norm, with
    numpy warnings; a 1e30 column's codes had overflowed the int64 cast of the estimate."""
    import warnings

    rng = np.random.default_rng(0)
    a = rng.normal(10, 2, 2000)
    t = Table({"a": a, "b": a * 2 + rng.normal(0, 0.1, 2000), "t": tiny * (1 + rng.random(2000)),
               "h": 1e30 * (1 + rng.random(2000))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's RuntimeWarnings included
        model = fit(t, TrainConfig(bound=bound, anchors=anchors, latent=0, **QUICK))
    assert model.history and all(np.isfinite(h["val_loss"]) for h in model.history)
    assert sorted(model.anchors) == sorted(anchors)
