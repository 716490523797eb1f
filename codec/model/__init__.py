"""Loading an exported model directory (docs/MODEL.md) without torch, hash-checked."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from balerc.formats.errors import InputError

from .manifest import MODEL_FORMAT_VERSION, OPSET, READABLE_VERSIONS, ModelManifest

__all__ = ["MODEL_FORMAT_VERSION", "OPSET", "READABLE_VERSIONS", "SECTION_MODELS", "ModelBundle",
           "ModelManifest", "is_model_dir", "section_models",
           "lean_onnx", "sha256"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ModelProto fields that do not take part in computation: doc_string (6), metadata_props (14)
_LEAN_DROP = frozenset({6, 14})


def lean_onnx(model: bytes) -> bytes:
    """The ONNX model without its doc string and metadata (what a file embeds).

    The exported decoder carries the whole manifest as metadata (~3.6 kB, more than a
    physics graph); a container already holds the manifest fields it needs. A walk over
    the top-level protobuf fields (no onnx import in the codec); deterministic, idempotent.
    """
    out = bytearray()
    i, n = 0, len(model)

    def varint(k: int) -> tuple[int, int]:
        v = shift = 0
        while True:
            if k >= n:
                raise ValueError("truncated ONNX model")
            b = model[k]
            v |= (b & 0x7F) << shift
            k += 1
            if not b & 0x80:
                return v, k
            shift += 7

    while i < n:
        start = i
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            size, i = varint(i)
            i += size
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in an ONNX model")
        if i > n:
            raise ValueError("truncated ONNX model")
        if field not in _LEAN_DROP:
            out += model[start:i]
    return bytes(out)


@dataclass
class ModelBundle:
    """The manifest plus the ONNX bytes of the encoder (may be absent) and the decoder."""

    manifest: ModelManifest
    encoder: bytes | None
    decoder: bytes
    path: str = "<embedded>"

    def __post_init__(self) -> None:
        if isinstance(self.manifest, dict):  # a manifest read as JSON (or a coder record)
            self.manifest = ModelManifest.from_dict(self.manifest, self.path)

    @property
    def columns(self) -> list[str]:
        return list(self.manifest.columns)

    @property
    def anchors(self) -> list[str]:
        return list(self.manifest.anchors)

    @property
    def predicted(self) -> list[str]:
        return list(self.manifest.predicted)

    @property
    def latent_dim(self) -> int:
        return int(self.manifest.latent_dim)

    @property
    def latent_bits(self) -> int:
        return int(self.manifest.latent_bits)

    @property
    def io64(self) -> bool:
        """The decoder takes anchors and returns predictions in column units as float64."""
        return self.manifest.io64

    @property
    def exact(self) -> list[str]:
        """Predicted columns the decoder computes by float64 formulas only (ulp-level drift)."""
        return list(self.manifest.exact)

    def norm(self) -> tuple[list[float], list[float]]:
        """(offsets, scales) in manifest column order."""
        return self.manifest.norm()

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> ModelBundle:
        """Read MODEL_DIR/model.json and the ONNX files, refusing tampered or foreign files."""
        d = Path(model_dir)
        mpath = d / "model.json"
        if not d.is_dir():
            raise InputError(f"{d} is a file, not a model directory (the directory `balerc "
                             f"train -o` wrote)" if d.exists() else
                             f"model directory {d} does not exist (make one with `balerc train`)")
        if not mpath.is_file():
            subs = section_models(d)  # `balerc train` on a whole ROOT tree
            if subs is not None:
                raise InputError(f"{d} holds one model per section of a whole tree "
                                 f"({', '.join(sorted(subs)[:8])}), for a whole-tree input; "
                                 f"for a single table give one of them, e.g. "
                                 f"{subs[sorted(subs)[0]]}"
                                 if subs else f"{d} has no model.json and no section models")
            raise InputError(f"{d} has no model.json: not a balerc model directory")
        try:
            raw = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{mpath} is not valid JSON ({exc})") from None
        manifest = ModelManifest.from_dict(raw, str(mpath))
        blobs: dict[str, bytes | None] = {}
        for role in ("encoder", "decoder"):
            entry = getattr(manifest, role)
            if entry is None:
                blobs[role] = None
                continue
            name = str(entry.get("file", ""))
            if not name or Path(name).name != name:
                raise InputError(f"{mpath}: the {role} file must be a plain name in the model "
                                 f"directory, not '{name}'")
            f = d / name
            if not f.is_file():
                raise InputError(f"{d}: {name} is missing")
            data = f.read_bytes()
            if sha256(data) != entry.get("sha256"):
                raise InputError(
                    f"{f}: sha256 does not match model.json (the file was modified or replaced); "
                    f"re-export the model"
                )
            blobs[role] = data
        if blobs["decoder"] is None:
            raise InputError(f"{mpath}: the manifest names no decoder")
        return cls(manifest, blobs["encoder"], blobs["decoder"], str(d))


SECTION_MODELS = "sections.json"  # written by `balerc train` on a whole tree (train/sections.py)


def section_models(model_dir: str | os.PathLike) -> dict[str, Path] | None:
    """A directory of section models: section name -> its model directory (inside
    model_dir, checked); None when model_dir is a single model."""
    path = Path(model_dir)
    index = path / SECTION_MODELS
    if not index.exists():
        return None
    try:
        record = json.loads(index.read_text(encoding="utf-8"))
        names = {str(k): str(v) for k, v in dict(record["sections"]).items()}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{index}: not a section model index ({exc}); retrain with "
                         f"`balerc train`") from None
    out = {}
    for section, sub in names.items():
        sub_path = (path / sub).resolve()
        if path.resolve() not in sub_path.parents:
            raise InputError(f"{index}: model directory '{sub}' lies outside {path}")
        out[section] = sub_path
    return out


def is_model_dir(model_dir: str | os.PathLike) -> bool:
    """A model (model.json) or a directory of section models (sections.json)."""
    path = Path(model_dir)
    return (path / "model.json").exists() or (path / SECTION_MODELS).exists()
