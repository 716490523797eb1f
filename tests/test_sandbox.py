"""The decoder sandbox (codec/sandbox.py) and the hardened ONNX Runtime sessions.

Crafted hostile decoders (tests/fixtures/hostile/decoders, see its README) are refused
with the check that must catch them, before ONNX Runtime is ever asked to load them;
every graph balerc's exporter writes (every model kind and activation, and the decoders
embedded in the golden fixtures) is accepted.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from balerc.codec import runtime
from balerc.codec.model import lean_onnx
from balerc.codec.sandbox import (
    ALLOWED_OPS,
    MAX_CONSTANT_BYTES,
    MAX_ELEMENTS_PER_ROW,
    MAX_FIELDS,
    MAX_FLOPS_PER_ROW,
    MAX_NODES,
    ModelSpec,
    TensorSpec,
    check_model,
    decoder_spec,
    encoder_spec,
)
from balerc.formats.errors import InputError, LimitError, UnsafeModelError

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixtures" / "hostile"
SPEC = ModelSpec((TensorSpec("a", "float32", 4),), TensorSpec("y", "float32", 2))


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("make_decoders", HOSTILE / "make_decoders.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MD = _load_builder()
HOSTILE_FILES = sorted(n for n, check in MD.EXPECTED.items() if check is not None)


@pytest.fixture
def no_ort_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything asks ONNX Runtime for a session."""
    import onnxruntime

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("onnxruntime.InferenceSession was called on a hostile graph")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def _refused(data: bytes, check: str, source: str, spec: ModelSpec = SPEC) -> str:
    with pytest.raises(UnsafeModelError) as info:
        check_model(data, spec, source)
    msg = str(info.value)
    assert f"[{check}]" in msg and source in msg, msg
    assert info.value.check == check
    return msg


def test_every_fixture_is_listed() -> None:
    on_disk = {p.name for p in (HOSTILE / "decoders").glob("*.onnx")}
    assert on_disk == set(MD.EXPECTED)


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_crafted_decoder_refused_before_onnxruntime(name: str, no_ort_sessions: None) -> None:
    data = (HOSTILE / "decoders" / name).read_bytes()
    check = MD.EXPECTED[name]
    _refused(data, check, name)
    with pytest.raises(UnsafeModelError, match=rf"\[{check}\]"):
        runtime.session(data, "cpu", 1, spec=SPEC, source=name)


def test_crafted_messages_say_what_was_found() -> None:
    def msg(name: str) -> str:
        return _refused((HOSTILE / "decoders" / name).read_bytes(), MD.EXPECTED[name], name)

    assert "op 'Loop' (control flow)" in msg("loop_2e40.onnx")
    assert "'../../secret.txt'" in msg("external_parent.onnx")
    assert "'/etc/passwd'" in msg("external_absolute.onnx")
    assert "Constant" in msg("external_constant.onnx")
    assert "['N', 'N', 1]" in msg("broadcast_quadratic.onnx")
    assert f"over the limit of {MAX_ELEMENTS_PER_ROW + 4 * 6}" in msg("concat_doubling.onnx")
    assert f"limits {MAX_FLOPS_PER_ROW + 256 * 6}" in msg("matmul_bomb.onnx")
    assert "'x' float" in msg("wrong_input_name.onnx")


@pytest.mark.parametrize("name", sorted(MD.GENERATED_EXPECTED))
def test_generated_decoder_refused(name: str, no_ort_sessions: None) -> None:
    pytest.importorskip("onnx")
    limit = {"huge_initializer": MAX_CONSTANT_BYTES, "too_many_nodes": MAX_NODES}.get(name)
    data = MD.GENERATED[name](limit) if limit else MD.GENERATED[name]()
    _refused(data, MD.GENERATED_EXPECTED[name], name)


def test_valid_fixture_accepted_and_runs() -> None:
    data = (HOSTILE / "decoders" / "valid.onnx").read_bytes()
    report = check_model(data, SPEC)
    assert report.nodes == 1 and report.ops == {"Gemm": 1} and report.flops_per_row == 8
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = runtime.session(data, "cpu", 1, spec=SPEC).run(a=a)
    w = np.arange(8).reshape(2, 4) / 8
    np.testing.assert_allclose(y, a @ w.T + [0.5, -0.5], rtol=1e-6)


def test_spec_mismatch_is_refused() -> None:
    data = (HOSTILE / "decoders" / "valid.onnx").read_bytes()
    _refused(data, "inputs", "v", ModelSpec((TensorSpec("a", "float32", 5),), SPEC.output))
    _refused(data, "outputs", "v", ModelSpec(SPEC.inputs, TensorSpec("y", "float64", 2)))


def test_protobuf_tricks_refused() -> None:
    valid = (HOSTILE / "decoders" / "valid.onnx").read_bytes()
    _refused(b"\x72\x00" * (MAX_FIELDS + 1), "protobuf", "many fields")  # empty metadata
    _refused(valid + b"\xd2\x01\x00", "protobuf", "unknown field")  # field 26, configuration
    _refused(valid + b"\x08\x08", "protobuf", "ir_version twice")
    _refused(b"\x08" + b"\xff" * 10 + b"\x01", "protobuf", "long varint")
    _refused(valid + b"\x0b", "protobuf", "group wire type")


def test_damaged_bytes_only_raise_unsafe_model_error() -> None:
    """Truncations and bit flips of a real physics decoder: never IndexError & co."""
    data, spec = _golden_decoders()[-1][1:]
    rng = np.random.default_rng(1)
    for cut in rng.integers(0, len(data), 150):
        with pytest.raises(UnsafeModelError):
            check_model(data[:cut], spec)
    for _ in range(300):
        bad = bytearray(data)
        for k in rng.integers(0, len(bad), 3):
            bad[k] = int(rng.integers(0, 256))
        try:
            check_model(bytes(bad), spec)
        except UnsafeModelError:
            pass


# ----------------------------------------------------------------------------- real models
def _golden_decoders() -> list[tuple[str, bytes, ModelSpec]]:
    """(file, decoder bytes, spec) of every model coder in the golden fixtures."""
    import zstandard

    from balerc.formats.container import ContainerReader

    out = []
    for path in sorted((REPO / "tests" / "fixtures").glob("*.balerc")):
        reader = ContainerReader(path)
        for coder in reader.header["coders"]:
            m = coder.get("model")
            if not m:
                continue
            name = coder.get("decoder_attachment")
            if name:
                data = reader.read_attachment(name)
                if name.endswith(".zst"):
                    data = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 26)
            else:
                data = base64.b64decode(coder["decoder_onnx"])
            spec = decoder_spec(int(m.get("latent_dim", 0)), len(m.get("anchors", [])),
                                len(m["predicted"]), m.get("decoder_io") == "float64")
            out.append((path.name, data, spec))
    assert out, "no golden fixture embeds a decoder"
    return out


def test_golden_decoders_accepted() -> None:
    for name, data, spec in _golden_decoders():
        check_model(data, spec, name)
        check_model(lean_onnx(data), spec, name)


def _exported() -> list[tuple[str, bytes, ModelSpec]]:
    """Every graph kind balerc's exporter writes, built without training."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from balerc.train.exporter import _finish, _to_onnx
    from balerc.train.models import ACTIVATIONS, MODELS, build_model

    out: list[tuple[str, bytes, ModelSpec]] = []
    tr = ["log", "none", "log", "none", "none", "none"]
    lk = [10.0, None, 100.0, None, None, None]
    for act in sorted(ACTIVATIONS):
        for latent, anchors in ((2, [0, 3]), (2, []), (0, [0, 3])):
            net = build_model("dense", 6, latent, anchors, tr, lk, [8, 4], act).eval()
            ins = net.decoder.input_names()
            args = tuple(torch.zeros(2, latent if n == "z" else len(anchors)) for n in ins)
            dec = _to_onnx(net.decoder, args, ins, ["y"], "decoder", {})
            out.append((f"dense {act} L{latent} K{len(anchors)} decoder", dec,
                        decoder_spec(latent, len(anchors), 6 - len(anchors), False)))
            if latent and not anchors:  # the encoder does not depend on the anchors
                enc = _to_onnx(net.encoder, (torch.zeros(2, 6),), ["x"], ["z"], "encoder", {})
                out.append((f"dense {act} encoder", enc, encoder_spec(6, latent)))
    for kind in ("baler", "dense-wide"):
        net = MODELS[kind](6, 2, [1], tr, lk).eval()
        dec = _to_onnx(net.decoder, (torch.zeros(2, 2), torch.zeros(2, 1)), ["z", "a"], ["y"],
                       "decoder", {})
        out.append((f"{kind} decoder", dec, decoder_spec(2, 1, 5, False)))
    for name, model in _physics_models():
        d = model.decoder
        out.append((name, _finish(d.onnx_model(), "decoder", {}),
                    decoder_spec(d.latent, d.anchors, len(d.pred_names), True)))
    return out


def _physics_models() -> list[tuple[str, Any]]:
    """Physics decoders: both bases, with and without the MLP, latent, float16 weights."""
    from balerc.formats import toy
    from balerc.train.physics import PhysicsDecoder, PhysicsModel
    from balerc.train.relations import candidate_plans, detect

    t = toy.dimuon(1000, seed=2)
    names = [n for n in t.names if t[n].dtype.kind == "f"]
    y = np.stack([t[n] for n in names], axis=1).astype(np.float64)
    off, sc = y.mean(axis=0), y.std(axis=0) + 1
    trs = ["log" if j % 3 == 0 else "none" for j in range(len(names))]
    lks = [10.0 if j % 3 == 0 else None for j in range(len(names))]
    out = []
    for plan in candidate_plans(detect(names, y), names):
        derived = set(plan.derived)
        ai = [j for j, n in enumerate(names) if n not in derived]
        pi = [j for j, n in enumerate(names) if n in derived]
        variants = [("exact", {}), ("leakyrelu+mlp", {"correction": True, "latent": 2})]
        variants += [(f"{act} half", {"correction": True, "activation": act, "half_weights": True})
                     for act in ("relu", "tanh", "silu")]
        for label, kw in variants:
            dec = PhysicsDecoder(plan, names, ai, pi, off, sc, trs, lks, widths=(8, 4), **kw)
            basis = ",".join(sorted(set(plan.basis.values())))
            out.append((f"physics[{basis}] {label}", PhysicsModel(dec, ai, pi, len(names))))
    return out


def test_every_exported_graph_is_accepted_and_runs() -> None:
    """The allowlist can never fall behind the exporter: each graph kind passes the
    sandbox and loads and runs under the hardened session options."""
    seen: set[str] = set()
    for name, data, spec in _exported():
        report = check_model(data, spec, name)
        assert report.elements_per_row < report.elements_limit // 64, (name, report)
        assert report.flops_per_row < report.flops_limit // 64, (name, report)
        seen.update(report.ops)
        feed = {t.name: np.ones((3, t.width)) for t in spec.inputs}
        out = runtime.Session(data, spec=spec, source=name).run(**feed)
        assert out.shape == (3, spec.output.width), name
    assert seen == set(ALLOWED_OPS), "ops allowed but never exported: " + str(
        set(ALLOWED_OPS) - seen)


# ----------------------------------------------------------------------------- runtime
def test_onnxruntime_load_failure_is_unsafe_model_error() -> None:
    with pytest.raises(UnsafeModelError, match="ONNX Runtime failed to load"):
        runtime.Session(b"\x08\x08garbage", source="junk.onnx")


def test_bad_memory_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.MAX_MEMORY_ENV, "lots")
    with pytest.raises(InputError, match=runtime.MAX_MEMORY_ENV):
        runtime.max_memory()
    monkeypatch.setenv(runtime.MAX_MEMORY_ENV, str(1 << 30))
    assert runtime.max_memory() == 1 << 30


_CAP_SCRIPT = """
import sys, numpy as np
from balerc.codec import runtime
from balerc.codec.sandbox import ModelSpec, TensorSpec
from balerc.formats.errors import LimitError
spec = ModelSpec((TensorSpec("a", "float32", 4),), TensorSpec("y", "float32", 2))
s = runtime.session(open(sys.argv[1], "rb").read(), spec=spec, source="valid.onnx")
assert s.run(a=np.ones((10, 4))).shape == (10, 2)
try:
    s.run(a=np.ones((1_000_000, 4)))
except LimitError as exc:
    print("LIMIT", exc)
"""


def test_arena_cap_turns_allocation_into_limit_error() -> None:
    """A 1 MiB cap (own process: the arena is per process): an 8 MB output is refused."""
    env = dict(os.environ, **{runtime.MAX_MEMORY_ENV: str(1 << 20)})
    proc = subprocess.run([sys.executable, "-c", _CAP_SCRIPT,
                           str(HOSTILE / "decoders" / "valid.onnx")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("LIMIT valid.onnx:"), proc.stdout + proc.stderr[-2000:]
    assert runtime.MAX_MEMORY_ENV in proc.stdout and str(1 << 20) in proc.stdout
    assert "Traceback" not in proc.stderr


def test_limit_error_is_a_container_error() -> None:
    assert issubclass(LimitError, ValueError) and issubclass(UnsafeModelError, ValueError)
