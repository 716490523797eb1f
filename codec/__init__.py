"""balerc.codec: the deployable, torch-free runtime (numpy + ONNX Runtime + zstandard)."""

from .bound import Bound
from .pipeline import CompressResult, compress_lossless, read_container

__all__ = ["Bound", "CompressResult", "compress_lossless", "read_container"]
