"""The codec's prediction modes with a hand-built decoder that knows b = 2a exactly.

An exact predictor makes every mode's arithmetic visible: residual codes collapse to
nothing, yet the bound must still hold on rows that break the relation.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from test_bound_codec import assert_within

from balerc.codec.ae import compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.formats.table import Table

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def exact_model(tmp: Path, off: list[float], sc: list[float]) -> Path:
    """Decoder y_b = a_norm * (2 s_a / s_b) + (2 o_a - o_b) / s_b, i.e. b = 2a in units."""
    w = np.array([[2 * sc[0] / sc[1]]], dtype=np.float32)
    c = np.array([(2 * off[0] - off[1]) / sc[1]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["t"]), helper.make_node("Add", ["t", "c"], ["y"])],
        "exact",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 1], w.ravel()),
         helper.make_tensor("c", TensorProto.FLOAT, [1], c)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    d = tmp / "exact"
    d.mkdir()
    data = model.SerializeToString()
    (d / "decoder.onnx").write_bytes(data)
    manifest = {
        "format": "balerc-model", "model_format_version": 1, "columns": ["a", "b"],
        "anchors": ["a"], "predicted": ["b"], "latent_dim": 0, "latent_bits": 6,
        "normalization": [{"name": n, "offset": o, "scale": s} for n, o, s in zip("ab", off, sc, strict=True)],
        "encoder": None,
        "decoder": {"file": "decoder.onnx", "sha256": hashlib.sha256(data).hexdigest()},
        "train_bound": "rel:1e-3",
    }
    (d / "model.json").write_text(json.dumps(manifest))
    return d


@pytest.fixture
def table() -> Table:
    rng = np.random.default_rng(3)
    a = rng.uniform(1, 100, 50_000) * rng.choice([-1, 1], 50_000)
    b = 2 * a
    b[::501] += 7.0  # rows that break the relation
    b[17] = 0.0
    b[18] = np.nan
    return Table({"a": a, "b": b})


@pytest.mark.parametrize(
    "bound, predicted",
    [("rel:1e-3", True), ("abs:1e-2", True), ("pwrel:1e-3", True),
     # 1e-4 / scale 400 is below float32 resolution of the decoder: no prediction, bound kept
     ("abs:1e-4", False),
     # below float32 resolution for most rows: those are coded alone, never worse than plain
     ("pwrel:1e-5", None)],
)
def test_exact_prediction_modes(tmp_path, table, bound, predicted):
    model = exact_model(tmp_path, [-100.0, -200.0], [200.0, 400.0])
    buf = io.BytesIO()
    res = compress_with_model(table, buf, model_dir=model, bound=bound, keep_model=True,
                              chunk_rows=20_000, threads=2)
    back = decompress(buf.getvalue(), threads=2)
    assert_within(table, back, Bound.parse(bound))
    plain = io.BytesIO()
    compress_with_model(table, plain, model_dir=None, bound=bound)
    if predicted:  # b costs almost nothing once predicted
        assert res.file_bytes < 0.75 * len(plain.getvalue())
        assert res.extra["notes"][-1].startswith("ONNX Runtime provider")
    elif predicted is False:
        assert "did not pay" in res.extra["notes"][-1]
    else:
        assert res.file_bytes <= len(plain.getvalue()) + 2048  # + the model header and decoder


def test_a_large_table_keeps_the_model_unprobed_and_its_chunks_fall_back(tmp_path, monkeypatch):
    """Above AMORTIZED x the model's cost the trial encodings are skipped: a model that
    does not fit the data then costs only its embedded decoder (each chunk falls back to
    plain quantization), and every value holds the bound."""
    from balerc.codec import plan

    rng = np.random.default_rng(8)
    a = rng.uniform(1, 100, 60_000)
    t = Table({"a": a, "b": rng.uniform(-200, 200, 60_000)})  # no b = 2a relation at all
    model = exact_model(tmp_path, [-100.0, -200.0], [200.0, 400.0])

    def refuse(*_a, **_k):
        raise AssertionError("probed")

    monkeypatch.setattr(plan, "AMORTIZED", 1)
    monkeypatch.setattr(plan, "model_gain", refuse)
    buf, plain = io.BytesIO(), io.BytesIO()
    res = compress_with_model(t, buf, model_dir=model, bound="rel:1e-3", chunk_rows=20_000)
    compress_with_model(t, plain, model_dir=None, bound="rel:1e-3", chunk_rows=20_000)
    assert_within(t, decompress(buf.getvalue()), Bound.parse("rel:1e-3"))
    assert "did not pay" in res.extra["notes"][-1]
    decoder = (model / "decoder.onnx").stat().st_size
    assert len(buf.getvalue()) <= len(plain.getvalue()) + decoder + 1024


@pytest.mark.parametrize("rows", [0, 1, 8192, 8193, 20_000])
def test_cpu_runs_go_in_row_blocks_that_cover_every_row(tmp_path, rows):
    """Session.run_blocks: consecutive blocks of at most ROW_BLOCK rows, in order, their
    outputs the rows of one whole run (this row-wise graph: bit for bit)."""
    from balerc.codec import runtime

    model = exact_model(tmp_path, [-100.0, -200.0], [200.0, 400.0])
    s = runtime.Session((model / "decoder.onnx").read_bytes())
    a = np.random.default_rng(rows).normal(size=(rows, 1)).astype(np.float32)
    blocks = s.run_blocks(a=a)
    assert [b[0] for b in blocks] == list(range(0, max(rows, 1), runtime.ROW_BLOCK))
    assert all(len(out) <= runtime.ROW_BLOCK for _, out in blocks)
    whole = s.session.run([s.output_name], {"a": a})[0]
    joined = s.run(a=a)
    assert joined.shape == (rows, 1) and joined.tobytes() == whole.tobytes()
