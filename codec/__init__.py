"""balerc.codec: the deployable, torch-free runtime (numpy + ONNX Runtime + zstandard).

Pipelines use `open_writer` (append batches, crash-safe per chunk) and `open_reader`
(chunks, row ranges); `Codec` compresses whole tables in memory.
"""

from .bounds import Bound
from .codec import Codec
from .options import CompressOptions
from .pipeline import CompressResult, compress_lossless, read_container
from .reader import Reader, open_reader
from .writer import Writer, open_writer

__all__ = ["Bound", "Codec", "CompressOptions", "CompressResult", "Reader", "Writer",
           "compress_lossless", "open_reader", "open_writer", "read_container"]
