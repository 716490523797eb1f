"""zstd decompression whose output size is known before anything is allocated.

python-zstandard's ``max_output_size`` is ignored whenever a frame states its content
size, so a few bytes may claim (and inflate to) gigabytes. Every stream balerc reads has a
size the header and chunk records already determine (rows x width), or at least a
documented ceiling; these helpers check the frame's declared size against it first and
decompress frames without a declared size through a reader bounded to it.
"""

from __future__ import annotations

import zstandard

from . import zstd_contexts
from .errors import ContainerError, LimitError

_UNKNOWN = zstandard.CONTENTSIZE_UNKNOWN
_READ = 1 << 20


def declared_size(frame: bytes | memoryview, what: str) -> int | None:
    """The content size a zstd frame declares, or None when it declares none."""
    try:
        size = zstandard.get_frame_parameters(frame).content_size
    except zstandard.ZstdError as exc:
        raise ContainerError(f"{what}: not a valid zstd frame ({exc})") from None
    return None if size == _UNKNOWN else int(size)


def _read_bounded(frame: bytes | memoryview, limit: int, what: str,
                  dctx: zstandard.ZstdDecompressor) -> bytes:
    """Decompress a frame without a declared size, refusing more than `limit` bytes."""
    out = bytearray()
    try:
        with dctx.stream_reader(bytes(frame), read_across_frames=False) as reader:
            while len(out) <= limit:
                block = reader.read(min(_READ, limit + 1 - len(out)))
                if not block:
                    break
                out += block
    except zstandard.ZstdError as exc:
        raise ContainerError(f"{what}: damaged zstd frame ({exc})") from None
    if len(out) > limit:
        raise LimitError(f"{what}: the zstd frame inflates past {limit:,} bytes, more than "
                         f"the file's own records allow")
    return bytes(out)


def decompress(frame: bytes | memoryview, what: str, *, exact: int | None = None,
               limit: int | None = None,
               dctx: zstandard.ZstdDecompressor | None = None) -> bytes:
    """Decompress one zstd frame of exactly `exact` bytes, or of at most `limit` bytes.

    `what` names the stream in errors (file, chunk, stream). Refuses, before allocating,
    a frame that declares another size; a damaged frame is a ContainerError.
    """
    if (exact is None) == (limit is None):
        raise ValueError("give exactly one of exact= and limit=")
    dctx = dctx or zstd_contexts.decompressor()
    declared = declared_size(frame, what)
    if exact is not None:
        if declared is not None and declared != exact:
            raise LimitError(f"{what}: the zstd frame declares {declared:,} bytes where the "
                             f"file's records imply {exact:,}")
        ceiling = exact
    else:
        assert limit is not None
        if declared is not None and declared > limit:
            raise LimitError(f"{what}: the zstd frame declares {declared:,} bytes, over the "
                             f"limit of {limit:,}")
        ceiling = limit
    if declared is None:
        data = _read_bounded(frame, ceiling, what, dctx)
    else:
        try:
            data = dctx.decompress(frame)
        except zstandard.ZstdError as exc:
            raise ContainerError(f"{what}: damaged zstd frame ({exc})") from None
    if exact is not None and len(data) != exact:
        raise ContainerError(f"{what}: holds {len(data):,} bytes, expected {exact:,}")
    return data
