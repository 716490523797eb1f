"""Compatibility names: the autoencoder coder lives in codec/coders/autoencoder.py and
`compress_with_model` in codec/pipeline.py."""

from .coders.autoencoder import EXACT_DRIFT, LEAN_ATTACHMENT, MARGIN, MAX_MODEL_BYTES, AECoder
from .pipeline import compress_with_model

__all__ = ["EXACT_DRIFT", "LEAN_ATTACHMENT", "MARGIN", "MAX_MODEL_BYTES", "AECoder",
           "compress_with_model"]
