"""Physics-informed decoder: relation detection, exact formulas in ONNX, bound through the codec."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from balerc.codec.ae import compress_with_model  # noqa: E402
from balerc.codec.api import decompress  # noqa: E402
from balerc.formats import toy  # noqa: E402
from balerc.formats.errors import InputError  # noqa: E402
from balerc.formats.table import Table  # noqa: E402
from balerc.train import TrainConfig, export, fit  # noqa: E402
from balerc.train import relations as R  # noqa: E402
from balerc.train.normalization import fit_normalization  # noqa: E402
from balerc.train.physics import build_physics  # noqa: E402

QUICK = dict(epochs=3, search_steps=20, search_rows=2048, threads=1)


def floats(t: Table) -> tuple[list[str], np.ndarray]:
    names = t.names_of_kind("float")
    return names, t.to_numpy(names, dtype=np.float64)


def check_bound(orig: Table, out: Table, names: list[str], rel: float) -> None:
    for n in names:
        y, r = np.asarray(orig[n], dtype=np.float64), np.asarray(out[n], dtype=np.float64)
        fin = np.isfinite(y)
        e = rel * (y[fin].max() - y[fin].min())
        assert np.array_equal(np.isnan(y), np.isnan(r)), n
        assert np.all(np.abs(y[fin] - r[fin]) <= e * (1 + 1e-12)), (n, np.abs(y[fin] - r[fin]).max(), e)


def trained(tmp_path_factory, seed: int, **cfg):
    """(table, trained model, exported model dir) on 6,000 toy dimuon rows."""
    t = toy.dimuon(6000, seed=seed)
    m = fit(t, TrainConfig(**cfg, **QUICK))
    d = tmp_path_factory.mktemp("phys")
    export(m, d, force=True)
    return t, m, d


@pytest.fixture(scope="module")
def dimuon_model(tmp_path_factory):
    return trained(tmp_path_factory, 3, model="physics")


def test_dimuon_relations_detected() -> None:
    names, y = floats(toy.dimuon(5000, seed=1))
    rel = R.detect(names, y)
    assert len(rel.groups) == 2 and all(abs(g.mass - toy.MUON_MASS) < 1e-6 for g in rel.groups)
    assert [p.name for p in rel.pairs] == ["M"]
    plans = {tuple(sorted(set(p.basis.values()))): p for p in R.candidate_plans(rel, names)}
    cart = plans[("cartesian",)]
    assert cart.anchors_needed == ["px1", "py1", "pz1", "px2", "py2", "pz2"]
    assert set(cart.derived) == {"E1", "pt1", "eta1", "phi1", "E2", "pt2", "eta2", "phi2", "M"}


@pytest.mark.parametrize("bound", ["rel:1e-3", "rel:1e-4"])
def test_physics_model_bound_through_codec(dimuon_model, tmp_path, bound) -> None:
    t, m, d = dimuon_model
    import json

    man = json.loads((d / "model.json").read_text())
    assert m.net.name == "physics" and man["training"]["parity_max_abs_diff"]["decoder"] <= 1e-5
    res = compress_with_model(t, tmp_path / "a.balerc", model_dir=d, bound=bound, keep_model=True)
    out = decompress(tmp_path / "a.balerc")
    check_bound(t, out, m.columns, float(bound.split(":")[1]))
    assert {e["mode"] for e in res.extra["errors"]} >= {"predicted", "anchor"}


def test_bound_holds_when_rows_violate_relations(dimuon_model, tmp_path) -> None:
    t, m, d = dimuon_model
    cols = {n: np.array(t[n], copy=True) for n in t.names}
    rng = np.random.default_rng(0)
    bad = rng.choice(t.n_rows, 50, replace=False)
    cols["E1"][bad] *= 1.7  # corrupted energies: far off the formula
    cols["M"][bad[:10]] += 5.0
    cols["pt2"][bad[10:20]] = np.round(cols["pt2"][bad[10:20]], 1)  # rounded in the source
    cols["px1"][7] = np.nan  # an anchor NaN: every formula of that row is NaN
    cols["eta2"][9] = np.inf
    bad_t = Table(cols)
    compress_with_model(bad_t, tmp_path / "b.balerc", model_dir=d, bound="rel:1e-3", keep_model=True)
    out = decompress(tmp_path / "b.balerc")
    check_bound(bad_t, out, m.columns, 1e-3)
    assert np.isinf(out["eta2"][9])


def test_no_relations_invented_on_random_columns() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    # Kinematic names on independent random numbers: names alone must not make a relation.
    names = ["E", "px", "py", "pz", "pt", "eta", "phi", "M", "a", "b", "c", "d"]
    y = np.column_stack([rng.normal(size=n) if i % 2 else rng.uniform(1, 5, n) for i in range(len(names))])
    rel = R.detect(names, y)
    assert not rel and not R.candidate_plans(rel, names)
    # Also with few rows (a least-squares fit on as many rows as columns fits anything).
    assert not R.detect(names, y[:30])
    with pytest.raises(InputError, match="no exact relation"):
        fit(Table({k: y[:, j] for j, k in enumerate(names)}), TrainConfig(model="physics", **QUICK))


def test_linear_relations_detected_and_coded(tmp_path) -> None:
    rng = np.random.default_rng(2)
    n = 5000
    a, b, c = rng.uniform(0, 0.5, n), rng.uniform(0, 0.4, n), rng.normal(10, 3, n)
    cols = {"a": a, "b": b, "c": c, "frac": 1.0 - a - b, "total": a + 2 * c, "copy": c.copy(),
            "diff": c - b, "noise": rng.normal(size=n)}
    t = Table(cols)
    names, y = floats(t)
    rel = R.detect(names, y)
    got = {lr.target: dict(zip(lr.sources, lr.coefs, strict=True)) for lr in rel.linear}
    assert set(got) == {"frac", "total", "copy", "diff"}
    assert got["frac"] == {"a": -1.0, "b": -1.0}
    assert "noise" not in got and all("noise" not in v for v in got.values())
    m = fit(t, TrainConfig(model="physics", **QUICK))
    assert set(m.net.decoder.plan.derived) == {"frac", "total", "copy", "diff"}
    assert {"a", "b", "c"} <= set(m.anchors)
    export(m, tmp_path / "m")
    compress_with_model(t, tmp_path / "l.balerc", model_dir=tmp_path / "m", bound="rel:1e-4",
                        keep_model=True)
    check_bound(t, decompress(tmp_path / "l.balerc"), names, 1e-4)


def test_declared_group_missing_columns_refused() -> None:
    t = toy.dimuon(500)
    with pytest.raises(InputError, match=r"\['Px9', 'Py9'\]"):
        fit(t, TrainConfig(four_vectors=["mu=E1,Px9,Py9,pz1"], **QUICK))
    with pytest.raises(InputError, match="LABEL="):
        fit(t, TrainConfig(four_vectors=["mu=E1,px1"], **QUICK))


def test_declared_group_on_unrecognizable_names() -> None:
    names, y = floats(toy.dimuon(3000, seed=4))
    rename = {"E1": "energyA", "px1": "xa", "py1": "ya", "pz1": "za"}
    names2 = [rename.get(n, n) for n in names]
    rel = R.detect(names2, y, declared=["A=energyA,xa,ya,za"])
    g = next(g for g in rel.groups if g.label == "A")
    assert g.declared and "E" in g.confirmed and g.mass == pytest.approx(toy.MUON_MASS, abs=1e-6)


def _reference(px, py, pz, m):
    pt = np.hypot(px, py)
    return {"pt": pt, "eta": np.arcsinh(pz / pt), "phi": np.arctan2(py, px),
            "E": np.sqrt(px**2 + py**2 + pz**2 + m**2)}


def test_onnx_matches_torch_and_numpy_reference_including_edge_quadrants() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    px, py, pz = rng.normal(0, 30, n), rng.normal(0, 30, n), rng.normal(0, 80, n)
    px[:8] = [0.0, 0.0, -5.0, -5.0, 5.0, -1e-9, 3.0, -3.0]
    py[:8] = [4.0, -4.0, 0.0, -1e-12, 0.0, 2.0, -3.0, 3.0]
    ref = _reference(px, py, pz, 0.5)
    t = Table({"px": px, "py": py, "pz": pz, **ref})
    names, y = floats(t)
    rel = R.detect(names, y)
    norms = fit_normalization(y, names, "auto")
    for plan in R.candidate_plans(rel, names):
        net = build_physics(plan, names, norms)
        dec = net.decoder
        ai, pi = net.anchor_index, net.predicted_index
        a = np.ascontiguousarray(y[:, ai])  # float64, column units: what the codec feeds
        y_t = dec.predict_raw(torch.from_numpy(a)).numpy()
        proto = dec.onnx_model()
        assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (yp,) = sess.run(None, {"a": a})
        assert yp.dtype == np.float64
        # exact columns: torch and ONNX Runtime agree to float64 rounding, relative to |y|
        assert set(dec.exact_columns) == {names[j] for j in pi}
        rel_diff = np.abs(yp - y_t) / np.maximum(np.abs(y_t), 1e-300)
        assert np.nanmax(rel_diff[8:]) <= 1e-12
        anc = {names[j]: a[:, i] for i, j in enumerate(ai)}
        if plan.basis["obj"] == "cartesian":
            exp = _reference(anc["px"], anc["py"], anc["pz"], 0.5)
            for i, j in enumerate(pi):
                assert np.abs(yp[:, i] - exp[names[j]]).max() <= 1e-12 * np.ptp(y[:, j]), names[j]
        else:
            for i, j in enumerate(pi):
                assert np.abs(yp[:, i] - y[:, j]).max() <= 1e-9 * np.ptp(y[:, j]), names[j]


def test_mlp_half_weights_parity(tmp_path) -> None:
    rng = np.random.default_rng(3)
    t0 = toy.dimuon(3000, seed=2)
    cols = {n: t0[n] for n in t0.names_of_kind("float")}
    cols["iso"] = 0.1 * cols["pt1"] + rng.normal(0, 0.5, t0.n_rows)  # learnable, not exact
    t = Table(cols)
    names, y = floats(t)
    rel = R.detect(names, y)
    assert all(lr.target != "iso" for lr in rel.linear)
    cfg = TrainConfig(model="physics", half_weights=True, **QUICK)
    from balerc.train.physics_search import train_mlp
    from balerc.train.problem import build_problem

    problem = build_problem(t, names, "auto", "rel:1e-3", 0.2, 0)
    plan = R.candidate_plans(rel, names)[0]
    net = build_physics(plan, names, problem.norms, ["iso"], [8], half_weights=True)
    train_mlp(problem, cfg, net, problem.y_train, problem.y_val, torch.device("cpu"), 50, 10**9, 3)
    proto = net.decoder.onnx_model()
    halves = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) == 4  # two layers: weight and bias each
    a = problem.y_val[:500, net.anchor_index]  # column units, float64
    (y_o,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a})
    y_t = net.decoder.predict_raw(torch.from_numpy(a)).numpy()
    sc = np.asarray(net.decoder.out_sc)
    assert np.abs(y_o - y_t).max(axis=0).max() <= 1e-5 * sc.max()
    assert "iso" not in net.decoder.exact_columns and "E1" in net.decoder.exact_columns
    k = net.decoder.pred_names.index("iso")
    base = net.decoder.formulas_raw(torch.from_numpy(a)).numpy()[:, k]
    assert np.abs(y_o[:, k] - base).max() > 0  # the MLP is live


@pytest.fixture(scope="module")
def pwrel_model(tmp_path_factory):
    return trained(tmp_path_factory, 4, bound="pwrel:5e-4")


def check_pwrel(orig: Table, out: Table, names: list[str], eps: float) -> None:
    for n in names:
        y, r = np.asarray(orig[n], dtype=np.float64), np.asarray(out[n], dtype=np.float64)
        fin = np.isfinite(y)
        assert np.array_equal(y[~fin], r[~fin], equal_nan=True), n
        err = np.abs(y[fin] - r[fin])
        assert np.all(err <= eps * np.abs(y[fin])), (n, np.max(err / np.maximum(np.abs(y[fin]), 1e-300)))


def test_pwrel_training_picks_cartesian_with_exact_float64_outputs(pwrel_model, tmp_path) -> None:
    import json

    from balerc.formats.container import ContainerReader

    t, m, d = pwrel_model
    man = json.loads((d / "model.json").read_text())
    # at a pointwise bound px,py,pz anchors make pt and E free and eta, phi cheap
    assert man["anchors"] == ["px1", "py1", "pz1", "px2", "py2", "pz2"]
    assert man["decoder_io"] == "float64" and man["exact"] == man["predicted"]
    assert man["decoder"]["inputs"][0]["dtype"] == "float64"
    assert man["training"]["estimated_ratio"] > 1.5 * man["training"]["plain_ratio"]
    res = compress_with_model(t, tmp_path / "m.balerc", model_dir=d, bound="pwrel:5e-4", keep_model=True)
    plain = compress_with_model(t, tmp_path / "q.balerc", model_dir=None, bound="pwrel:5e-4")
    assert {e["mode"] for e in res.extra["errors"]} == {"predicted", "anchor", "lossless"}
    assert {e["mode"] for e in plain.extra["errors"]} == {"log-quantized", "lossless"}
    with ContainerReader(tmp_path / "m.balerc") as r:
        assert {"decoder-float64", "grouped-residuals", "scaled-pwrel"} <= set(
            r.header["required_features"])
        meta = r.chunks[0].meta["0"]  # a small chunk: every code stream in one frame
        assert meta["grouped"] == 2 and "s" in meta["modes"] and "r" not in meta["modes"]
        assert not any(k.startswith(("res/", "sign/")) for k in r.read_chunk(0))
    # files for readers before mode s (--entropy zstd) keep mode r, within the same bound
    from balerc.codec.bounds import Bound
    from balerc.codec.model import ModelBundle
    from balerc.codec.options import CompressOptions
    from balerc.codec.pipeline import compress_table

    compress_table(t, tmp_path / "r.balerc", CompressOptions(
        bound=Bound.parse("pwrel:5e-4"), keep_model=True, entropy="zstd"), ModelBundle.load(d))
    with ContainerReader(tmp_path / "r.balerc") as r:
        assert "scaled-pwrel" not in r.header["required_features"]
        assert "r" in r.chunks[0].meta["0"]["modes"]
    check_pwrel(t, decompress(tmp_path / "r.balerc"), m.columns, 5e-4)
    out1 = decompress(tmp_path / "m.balerc", threads=1)
    out2 = decompress(tmp_path / "m.balerc", threads=2)
    check_pwrel(t, out1, m.columns, 5e-4)
    for n in m.columns:
        assert out1[n].tobytes() == out2[n].tobytes(), n
    assert res.file_bytes < 0.6 * plain.file_bytes, (res.file_bytes, plain.file_bytes)


def test_pwrel_bound_holds_when_rows_violate_relations(pwrel_model, tmp_path) -> None:
    t, m, d = pwrel_model
    cols = {n: np.array(t[n], copy=True) for n in t.names}
    rng = np.random.default_rng(1)
    bad = rng.choice(t.n_rows, 60, replace=False)
    cols["E1"][bad[:20]] *= 1.7
    cols["phi2"][bad[20:30]] *= -1.0  # the other sign than the formula gives
    cols["pt1"][bad[30:40]] = 0.0  # exact zeros
    cols["eta1"][bad[40:50]] = np.round(cols["eta1"][bad[40:50]], 2)
    cols["px1"][3] = 0.0  # a zero anchor (log codes have no zero)
    cols["py2"][5] = np.nan
    cols["M"][8] = -np.inf
    bad_t = Table(cols)
    compress_with_model(bad_t, tmp_path / "b.balerc", model_dir=d, bound="pwrel:5e-4", keep_model=True)
    check_pwrel(bad_t, decompress(tmp_path / "b.balerc"), m.columns, 5e-4)


def test_exact_columns_margin_in_rel_mode(pwrel_model, tmp_path) -> None:
    """An abs/rel bound with a float64 decoder: residual step e - 2^-30 x |range|, bound held."""
    t, m, d = pwrel_model
    res = compress_with_model(t, tmp_path / "r.balerc", model_dir=d, bound="rel:1e-4", keep_model=True)
    check_bound(t, decompress(tmp_path / "r.balerc", threads=2), m.columns, 1e-4)
    assert "predicted" in {e["mode"] for e in res.extra["errors"]}


def test_float64_decoder_drift_far_below_its_allowance(pwrel_model) -> None:
    """The exact columns' allowance (2^-30 relative) against what changes between runtimes
    here: graph optimizations on/off, 1 vs 2 threads (CUDA: benchmarks/gpu_check.py)."""
    from balerc.codec.ae import EXACT_DRIFT
    from balerc.codec.model import ModelBundle, lean_onnx

    t, m, d = pwrel_model
    bundle = ModelBundle.load(d)
    a = np.ascontiguousarray(np.stack([np.asarray(t[n], dtype=np.float64) for n in bundle.anchors], 1))
    outs = []
    for level, threads in ((ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
                           (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, 1),
                           (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 2)):
        so = ort.SessionOptions()
        so.graph_optimization_level, so.intra_op_num_threads = level, threads
        sess = ort.InferenceSession(lean_onnx(bundle.decoder), so, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"a": a})[0])
    ref = np.abs(outs[0]) + 1e-300
    for o in outs[1:]:
        assert np.max(np.abs(o - outs[0]) / ref) <= EXACT_DRIFT / 2**10


def _write_csv(t: Table, path) -> None:
    names = t.names_of_kind("float")
    rows = np.column_stack([np.asarray(t[n], dtype=np.float64) for n in names])
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(repr(float(v)) for v in r)
                                                        for r in rows) + "\n")


@pytest.mark.parametrize("fixed", [["--ratio", "2"], ["--latent", "3"]])
def test_explicit_latent_beats_physics_and_latents_only_roundtrip(tmp_path, fixed) -> None:
    """On dimuons the physics decoder (latent 0, no encoder) writes fewest bytes, yet an
    explicit --ratio/--latent is the user's decision: exactly that autoencoder is written,
    and compress without a bound stores only latents and reports the measured errors."""
    import json
    import math

    from click.testing import CliRunner

    from balerc.cli.main import cli

    t = toy.dimuon(1500, seed=5)
    names = t.names_of_kind("float")
    csv = tmp_path / "mu.csv"
    _write_csv(t, csv)
    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["train", str(csv), "-o", str(out), "--epochs", "3",
                                   "--threads", "1", "-q", *fixed])
    assert res.exit_code == 0, res.output + repr(res.exception)
    man = json.loads((out / "model.json").read_text())
    want = math.ceil(len(names) / 2) if fixed[0] == "--ratio" else 3
    assert man["latent_dim"] == want and man["model"]["name"] == "dense", res.output
    assert (out / "encoder.onnx").exists() and (out / "decoder.onnx").exists()
    assert "encoder.onnx, decoder.onnx" in res.output
    assert not any(c.get("model", "").startswith("physics") for c in
                   man["training"]["candidates"])
    res = CliRunner().invoke(cli, ["compress", str(csv), "-m", str(out), "-o",
                                   str(tmp_path / "z.balerc"), "--json"])
    assert res.exit_code == 0, res.output
    errors = json.loads(res.output)["errors"]
    assert [r["name"] for r in errors] == names
    assert all(r["mode"] == "autoencoder" and r["max"] > 0 and "max_over_range" in r
               for r in errors if r["name"] not in man["anchors"])
    res = CliRunner().invoke(cli, ["compress", str(csv), "-m", str(out), "-o",
                                   str(tmp_path / "z.balerc"), "--force"])
    assert "no error bound: measured errors" in res.output
    assert "warning:" in res.output  # three epochs: far from the data, and said so


def test_physics_model_states_no_encoder_and_no_loss_curve(tmp_path) -> None:
    from click.testing import CliRunner

    from balerc.cli.main import cli

    csv = tmp_path / "mu.csv"
    _write_csv(toy.dimuon(1500, seed=5), csv)
    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["train", str(csv), "-o", str(out), "--model", "physics",
                                   "--threads", "1", "-q"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert not (out / "encoder.onnx").exists() and not (out / "loss_curve.png").exists()
    written = next(line for line in res.output.splitlines() if "model written" in line)
    assert "encoder.onnx" not in written and "decoder.onnx" in written
    assert "no encoder.onnx" in res.output and "no loss curve" in res.output
    bad = CliRunner().invoke(cli, ["train", str(csv), "-o", str(out), "--model", "physics",
                                   "--ratio", "2", "--force"])
    assert bad.exit_code != 0 and "no latents" in bad.output
