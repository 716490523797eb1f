"""Write MODEL_DIR: encoder.onnx, decoder.onnx, model.json, loss_curve.csv/.png.

Each ONNX file is a single self-contained file (no external-data side file) with a pinned
opset and a dynamic batch axis: float32 normalized in and out, except the physics decoder
(decoder_io "float64": anchors and predictions in column units as float64). Export checks
itself: both graphs are run with ONNX Runtime on held-out rows and must match torch within
1e-5 (normalized units).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from balerc.codec.model.manifest import MODEL_FORMAT, MODEL_FORMAT_VERSION, OPSET, ModelManifest
from balerc.formats.errors import BalercError, InputError
from balerc.formats.fileio import check_writable_dir
from balerc.formats.optional import available, require

from .trainer import TrainedModel

# the model format version and opset are the codec's (codec/model/manifest.py), defined once
PARITY_TOL = 1e-5
FILES = ("encoder.onnx", "decoder.onnx", "model.json", "loss_curve.csv", "loss_curve.png")


class ExportError(BalercError, RuntimeError):
    """The exported graphs do not reproduce the torch model (message has the numbers)."""


def _balerc_version() -> str:
    try:
        from importlib.metadata import version

        return version("balerc")
    except Exception:  # not installed as a distribution (source checkout)
        return "0+unknown"


def producer() -> dict[str, str]:
    onnx = require("onnx", "exporting models")
    return {
        "balerc": _balerc_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
    }


def core_manifest(model: TrainedModel) -> dict[str, Any]:
    """The deterministic part of the manifest (also embedded in both ONNX files).

    It holds no file hashes (a file cannot contain its own hash) and no timings, so the
    same seed and data give byte-identical ONNX files.
    """
    io64 = model.net.decoder.IO == "float64"  # declared by the decoder class
    return {
        "format": MODEL_FORMAT,
        "model_format_version": MODEL_FORMAT_VERSION,
        "decoder_io": "float64" if io64 else "normalized-float32",
        "exact": list(model.net.decoder.exact_columns) if io64 else [],
        "columns": list(model.columns),
        "anchors": list(model.anchors),
        "predicted": list(model.predicted),
        "latent_dim": model.latent_dim,
        "latent_bits": model.latent_bits,
        "latent_step": model.latent_step,
        "normalization": [c.to_json() for c in model.norms],
        "model": model.net.describe(),
        "opset": OPSET,
        "train_bound": model.config.bound,
        "data_sha256": model.training["data_sha256"],
    }


def _io_spec(names: list[str], widths: list[int], dtypes: list[str] | None = None) -> list[dict[str, Any]]:
    dts = dtypes or ["float32"] * len(names)
    return [{"name": n, "dtype": d, "shape": ["N", w]} for n, w, d in zip(names, widths, dts, strict=True)]


def _to_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str],
             outputs: list[str], role: str, core: dict[str, Any]) -> bytes:
    """Export one graph to bytes with metadata_props; single file, opset OPSET."""
    onnx = require("onnx", "exporting models")
    buf = io.BytesIO()
    axes = {n: {0: "N"} for n in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        try:
            torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
        except Exception as exc:  # pragma: no cover - future torch without the legacy path
            raise ExportError(f"ONNX export of the {role} failed: {exc}") from exc
    return _finish(onnx.load_from_string(buf.getvalue()), role, core)


def _finish(proto, role: str, core: dict[str, Any]) -> bytes:
    """Check for external data, set metadata_props and the doc string, validate, serialize."""
    onnx = require("onnx", "exporting models")
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ExportError(f"the {role} graph references external data; expected one file")
    del proto.metadata_props[:]
    for k, v in (
        ("balerc.model_format_version", str(MODEL_FORMAT_VERSION)),
        ("balerc.role", role),
        ("balerc.manifest", json.dumps(core, sort_keys=True, separators=(",", ":"))),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = f"balerc {role}: see balerc.manifest metadata and model.json"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _verify(model: TrainedModel, enc: bytes | None, dec: bytes) -> dict[str, float]:
    """Run both graphs in ONNX Runtime (CPU) on held-out rows and compare with torch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    net = model.net.cpu().eval()
    x = model.holdout_x
    a = model.holdout_a
    diffs: dict[str, float] = {}
    dec_inputs: dict[str, np.ndarray] = {}
    with torch.no_grad():
        torch_in: list[torch.Tensor] = []
        if enc is not None:
            sess = ort.InferenceSession(enc, opts, providers=["CPUExecutionProvider"])
            (z_ort,) = sess.run(["z"], {"x": x})
            z_t = net.encoder(torch.from_numpy(x)).numpy()
            diffs["encoder"] = float(np.max(np.abs(z_ort - z_t))) if len(x) else 0.0
            zq = (np.round(z_t / model.latent_step) * model.latent_step).astype(np.float32)
            dec_inputs["z"] = zq
            torch_in.append(torch.from_numpy(zq))
        sess = ort.InferenceSession(dec, opts, providers=["CPUExecutionProvider"])
        if net.decoder.IO == "float64":  # column units in and out
            d = net.decoder
            raw = a.astype(np.float64) * d.a_sc.numpy() + d.a_off.numpy()
            dec_inputs["a"] = raw
            (y_ort,) = sess.run(["y"], dec_inputs)
            z = torch_in[0] if torch_in else None
            y_t = d.predict_raw(torch.from_numpy(raw), z).numpy()
            sc = np.asarray(d.out_sc, dtype=np.float64)
            diffs["decoder"] = float(np.max(np.abs(y_ort - y_t) / sc)) if len(x) else 0.0
        else:
            if model.anchors:
                dec_inputs["a"] = a
                torch_in.append(torch.from_numpy(a))
            (y_ort,) = sess.run(["y"], dec_inputs)
            y_t = net.decoder(*torch_in).numpy()
            diffs["decoder"] = float(np.max(np.abs(y_ort - y_t))) if len(x) else 0.0
    bad = {k: v for k, v in diffs.items() if not v <= PARITY_TOL}
    if bad:
        text = ", ".join(f"{k} max |onnxruntime - torch| = {v:.3g}" for k, v in bad.items())
        raise ExportError(f"export parity check failed on {len(x)} held-out rows: {text} "
                          f"(tolerance {PARITY_TOL:g}); nothing trustworthy was written")
    return diffs


def _loss_curve(model: TrainedModel, out: Path) -> str | None:
    """Write loss_curve.csv, and loss_curve.png when matplotlib is installed; neither
    when nothing was trained (an exact-formula decoder), with a note saying so."""
    for name in ("loss_curve.csv", "loss_curve.png"):
        (out / name).unlink(missing_ok=True)  # never leave a stale curve behind
    if not model.history:
        return (f"no loss curve: nothing was trained ({model.training.get('stopped', 'no epochs')})")
    with open(out / "loss_curve.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["epoch", "train_loss", "val_loss", "lr", "seconds"])
        for h in model.history:
            wr.writerow([h["epoch"], repr(h["train_loss"]), repr(h["val_loss"]), repr(h["lr"]),
                         f"{h['seconds']:.3f}"])
    if not available("matplotlib"):
        return "matplotlib is not installed: loss_curve.png skipped (pip install 'balerc[plot]')"
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in model.history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100, layout="constrained")
    ax.plot(ep, [h["train_loss"] for h in model.history], label="train (noisy latents/anchors)")
    ax.plot(ep, [h["val_loss"] for h in model.history], label="validation (codec quantization)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{model.config.loss} (normalized)")
    ax.set_title(f"balerc {model.net.name}: L={model.latent_dim}, anchors={len(model.anchors)}")
    ax.legend()
    fig.savefig(out / "loss_curve.png", metadata={"Software": None})
    plt.close(fig)
    return None


def written_files(model_dir: str | os.PathLike) -> list[str]:
    """The model files that exist in model_dir, in the documented order (for messages)."""
    return [n for n in FILES if (Path(model_dir) / n).exists()]


def check_target(model_dir: str | os.PathLike, force: bool = False) -> Path:
    """Refuse a model directory that is a file, or holds a model, unless force; run before
    training too, so a long run never ends in a refusal to write."""
    out = Path(model_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory; choose another -o path")
    clash = [n for n in FILES if (out / n).exists()]
    if clash and not force:
        raise InputError(f"{out} already holds a model ({', '.join(clash)}); use --force to overwrite")
    check_writable_dir(out, "the model to")
    return out


def export(model: TrainedModel, model_dir: str | os.PathLike, force: bool = False) -> Path:
    """Export to model_dir (created). Existing model files need force=True."""
    out = check_target(model_dir, force)
    out.mkdir(parents=True, exist_ok=True)
    net = model.net.cpu().eval()
    core = core_manifest(model)
    f, k, lat = len(model.columns), len(model.anchors), model.latent_dim
    n_ex = 2
    enc_bytes = None
    if lat > 0:
        enc_bytes = _to_onnx(net.encoder, (torch.zeros(n_ex, f),), ["x"], ["z"], "encoder", core)
    dec_args = tuple(([torch.zeros(n_ex, lat)] if lat else []) + ([torch.zeros(n_ex, k)] if k else []))
    if net.decoder.IO == "float64":  # physics decoder: graph built node by node
        dec_bytes = _finish(net.decoder.onnx_model(), "decoder", core)
    else:
        dec_bytes = _to_onnx(net.decoder, dec_args, net.decoder.input_names(), ["y"], "decoder", core)
    diffs = _verify(model, enc_bytes, dec_bytes)

    for name in ("encoder.onnx", "decoder.onnx"):
        (out / name).unlink(missing_ok=True)
    manifest = dict(core)
    data_sha = manifest.pop("data_sha256")
    if enc_bytes is not None:
        _write(out / "encoder.onnx", enc_bytes)
        manifest["encoder"] = {
            "file": "encoder.onnx", "sha256": hashlib.sha256(enc_bytes).hexdigest(),
            "inputs": _io_spec(["x"], [f]), "outputs": _io_spec(["z"], [lat]),
        }
    else:
        manifest["encoder"] = None
    _write(out / "decoder.onnx", dec_bytes)
    io = "float64" if core["decoder_io"] == "float64" else "float32"
    dec_names = net.decoder.input_names()
    manifest["decoder"] = {
        "file": "decoder.onnx", "sha256": hashlib.sha256(dec_bytes).hexdigest(),
        "inputs": _io_spec(dec_names, ([lat] if lat else []) + ([k] if k else []),
                           [io if n == "a" else "float32" for n in dec_names]),
        "outputs": _io_spec(["y"], [f - k], [io]),
    }
    training = dict(model.training)
    training["data_sha256"] = data_sha
    training["parity_max_abs_diff"] = diffs
    manifest["training"] = training
    manifest["producer"] = producer()
    # the typed record checks it and keeps the documented key order (docs/MODEL.md)
    manifest = ModelManifest.from_dict(manifest, str(out / "model.json")).to_dict()
    note = _loss_curve(model, out)
    if note:
        manifest["training"]["notes"] = [note]
        model.training["notes"] = [note]  # what `balerc train` prints
    _write(out / "model.json", (json.dumps(manifest, indent=2) + "\n").encode())
    side = sorted(p.name for p in out.iterdir()
                  if p.name.startswith(("encoder.onnx", "decoder.onnx")) and p.name not in FILES)
    if side:
        raise ExportError(f"unexpected side files next to the ONNX models in {out}: {side}")
    return out
