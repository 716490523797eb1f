"""balerc.train: learn an encoder/decoder for a table and export them to ONNX.

    from balerc.train import TrainConfig, fit, export
    model = fit(table, TrainConfig(latent=2))
    export(model, "model_dir")

`import balerc.train` stays light (no torch) so the CLI can attach `balerc train` and the
analysis can use the torch-free modules (config, fourvec, normalization); torch is imported
on first use of fit/export/train_file/the model zoo.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import TrainConfig

__all__ = [
    "MODELS",
    "MODEL_FORMAT_VERSION",
    "ExportError",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "build_model",
    "export",
    "fit",
    "train_file",
    "train_files",
]

_LAZY = {
    "fit": "trainer",
    "TrainedModel": "trainer",
    "TrainingError": "trainer",
    "export": "exporter",
    "ExportError": "exporter",
    "MODEL_FORMAT_VERSION": "exporter",
    "MODELS": "models",
    "build_model": "models",
    "train_file": "api",
    "train_files": "api",
}


def __getattr__(name: str) -> Any:
    """Import torch-dependent parts on first use, with an install hint if torch is missing."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'balerc.train' has no attribute '{name}'")
    from balerc.formats.optional import require

    require("torch", "training models")
    require("onnx", "exporting models")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
