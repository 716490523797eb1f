"""balerc.codec: the deployable, torch-free runtime (numpy + ONNX Runtime + zstandard)."""

from .bound import Bound
from .codec import Codec
from .pipeline import CompressResult, compress_lossless, read_container

__all__ = ["Bound", "Codec", "CompressResult", "compress_lossless", "read_container"]
