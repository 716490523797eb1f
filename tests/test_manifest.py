"""The model manifest as one typed record shared by train/ (writes) and codec/ (reads)."""

from __future__ import annotations

import json

import pytest

from balerc.codec.model import ModelBundle
from balerc.codec.model.manifest import MODEL_FORMAT_VERSION, OPSET, ModelManifest
from balerc.formats.errors import InputError


def _base() -> dict:
    return {"format": "balerc-model", "model_format_version": 2, "columns": ["a", "b"],
            "anchors": ["a"], "predicted": ["b"], "latent_dim": 0,
            "normalization": [{"name": "a", "offset": 0.0, "scale": 1.0, "min": -1.0, "max": 1.0},
                              {"name": "b", "offset": 0.0, "scale": 2.0}],
            "decoder_io": "float64", "exact": ["b"], "opset": OPSET}


def test_round_trip_and_what_the_codec_asks():
    m = ModelManifest.from_dict(_base(), "m.json")
    assert ModelManifest.from_dict(m.to_dict(), "again") == m
    assert list(m.to_dict())[:3] == ["format", "model_format_version", "decoder_io"]
    assert m.io64 and m.norm() == ([0.0, 0.0], [1.0, 2.0])
    assert m.training_ranges() == {"a": (-1.0, 1.0)}
    h = m.header_fields()
    assert h["decoder_io"] == "float64" and h["exact"] == ["b"] and "min" not in h["normalization"][0]
    assert m.model_format_version == MODEL_FORMAT_VERSION


@pytest.mark.parametrize(("change", "words"), [
    ({"model_format_version": 3}, "model format version 3 is not supported"),
    ({"format": "other"}, "not a balerc model manifest"),
    ({"decoder_io": "int8"}, "decoder_io 'int8'"),
    ({"predicted": ["c"]}, "stray: \\['c'\\]"),
    ({"normalization": [{"name": "a", "offset": 0.0, "scale": 1.0}]}, "no normalization for"),
    ({"normalization": [{"name": "a", "offset": 0.0, "scale": 0.0},
                        {"name": "b", "offset": 0.0, "scale": 1.0}]}, "non-zero scale"),
    ({"latent_dim": "x"}, "'latent_dim' = 'x' must be an integer"),
    ({"latent_bits": 17}, "'latent_bits' = 17 must be an integer in \\[1, 16\\]"),
    ({"anchors": ["a"], "predicted": ["a", "b"]}, "\\['a'\\] are both anchors and predicted"),
    ({"unknown_field": 1}, None),
])
def test_malformed_manifests_are_refused_by_name(change, words):
    d = {**_base(), **change}
    if words is None:  # unknown keys are ignored
        ModelManifest.from_dict(d, "m.json")
        return
    with pytest.raises(InputError, match=words):
        ModelManifest.from_dict(d, "m.json")


def test_model_directory_file_names_stay_inside(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({**_base(), "decoder": {
        "file": "../secret.onnx", "sha256": "0" * 64}}))
    with pytest.raises(InputError, match="plain name in the model directory"):
        ModelBundle.load(d)
