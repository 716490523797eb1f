"""The model manifest (model.json, docs/MODEL.md) as one typed record.

train/ writes it (`to_dict`), codec/ reads it (`from_dict`); the model format version and
the ONNX opset are defined here once. The decoder's kind (a dense MLP on normalized
float32, or the physics decoder on float64 column units) is the `decoder_io` field, set by
the decoder class that was exported, never guessed from the object.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from balerc.formats.errors import InputError

MODEL_FORMAT = "balerc-model"
MODEL_FORMAT_VERSION = 2  # 2: decoder_io "float64" and "exact" columns (docs/MODEL.md)
READABLE_VERSIONS = (1, 2)
OPSET = 17
DECODER_IO = ("normalized-float32", "float64")
_ORDER = ("format", "model_format_version", "decoder_io", "exact", "columns", "anchors",
          "predicted", "latent_dim", "latent_bits", "latent_step", "normalization", "model",
          "encoder", "decoder", "opset", "train_bound", "training", "producer")


@dataclass(frozen=True)
class ModelManifest:
    """What a model directory (or a file's coder record) says about its model."""

    columns: list[str]
    predicted: list[str]
    normalization: list[dict[str, Any]]  # per column: name, offset, scale (+ method, min, max)
    anchors: list[str] = field(default_factory=list)
    latent_dim: int = 0
    latent_bits: int = 6
    latent_step: float | None = None
    decoder_io: str = "normalized-float32"
    exact: list[str] = field(default_factory=list)  # predicted by float64 formulas only
    model: dict[str, Any] = field(default_factory=dict)  # architecture (name, widths, ...)
    encoder: dict[str, Any] | None = None  # {"file", "sha256", "inputs", "outputs"}
    decoder: dict[str, Any] | None = None
    opset: int | None = None  # the exporter always states it (OPSET)
    train_bound: str = "rel:1e-3"
    training: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    model_format_version: int = MODEL_FORMAT_VERSION
    format: str = MODEL_FORMAT

    # -- what the codec asks ---------------------------------------------------------
    @property
    def io64(self) -> bool:
        """The decoder takes anchors and returns predictions in column units as float64."""
        return self.decoder_io == "float64"

    def norm(self) -> tuple[list[float], list[float]]:
        """(offsets, scales) in column order."""
        by_name = {n["name"]: n for n in self.normalization}
        return ([float(by_name[c]["offset"]) for c in self.columns],
                [float(by_name[c]["scale"]) for c in self.columns])

    def training_ranges(self) -> dict[str, tuple[float, float]]:
        """Each column's (min, max) in the training data, where recorded."""
        return {n["name"]: (float(n["min"]), float(n["max"])) for n in self.normalization
                if "min" in n and "max" in n}

    def header_fields(self) -> dict[str, Any]:
        """The fields a .balerc coder record stores (docs/FORMAT.md, section 5)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in (
            "columns", "anchors", "predicted", "latent_dim", "latent_bits", "opset")}
        out["normalization"] = [{"name": n["name"], "offset": n["offset"], "scale": n["scale"]}
                                for n in self.normalization]
        if self.io64:
            out["decoder_io"] = "float64"
            out["exact"] = list(self.exact)
        out["model_format_version"] = self.model_format_version
        return out

    # -- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """model.json's content, in the documented key order."""
        d = asdict(self)
        return {k: d[k] for k in _ORDER}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ModelManifest:
        """Read and check a manifest (a model.json, or a file's coder record with
        `format` added); errors name `where` and the field."""
        if not isinstance(d, dict):
            raise InputError(f"{where} is not a JSON object")
        if d.get("format") != MODEL_FORMAT:
            raise InputError(f"{where} is not a balerc model manifest")
        version = d.get("model_format_version", 1)
        if version not in READABLE_VERSIONS:
            raise InputError(
                f"{where}: model format version {version} is not supported (this balerc reads "
                f"{', '.join(map(str, READABLE_VERSIONS))}); re-export or upgrade balerc")
        known = {k: d[k] for k in _ORDER if k in d and d[k] is not None}
        known.setdefault("columns", [])
        known.setdefault("predicted", [])
        known.setdefault("normalization", [])
        if known.get("decoder_io") in (None, "float32"):  # format-1 wording
            known["decoder_io"] = "normalized-float32"
        try:
            m = cls(**known)
        except TypeError as exc:
            raise InputError(f"{where}: malformed manifest ({exc})") from None
        m._check(where)
        return m

    def _check(self, where: str) -> None:
        if self.decoder_io not in DECODER_IO:
            raise InputError(f"{where}: decoder_io '{self.decoder_io}' is not one of {DECODER_IO}")
        cols = set(self.columns)
        stray = [c for c in [*self.anchors, *self.predicted] if c not in cols]
        if stray or not self.predicted:
            raise InputError(f"{where}: anchors and predicted columns must be among 'columns' "
                             f"(stray: {stray[:5]}) and at least one column predicted")
        both = [c for c in self.anchors if c in set(self.predicted)]
        if both:
            raise InputError(f"{where}: column(s) {both[:5]} are both anchors and predicted")
        for key, lo, hi in (("latent_bits", 1, 16), ("latent_dim", 0, 4096)):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                raise InputError(f"{where}: '{key}' = {v!r} must be an integer in "
                                 f"[{lo}, {hi}]; re-export the model with `balerc train`")
        named = {n.get("name") for n in self.normalization if isinstance(n, dict)}
        missing = [c for c in self.columns if c not in named]
        if missing:
            raise InputError(f"{where}: no normalization for column(s) {missing[:5]}")
        for n in self.normalization:
            if not (math.isfinite(float(n.get("offset", math.nan)))
                    and math.isfinite(float(n.get("scale", math.nan))) and n["scale"] != 0):
                raise InputError(f"{where}: normalization of '{n.get('name')}' needs a finite "
                                 f"offset and a finite non-zero scale")
