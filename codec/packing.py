"""Integer code streams: zigzag, narrowest width, byte shuffle, zstd.

Quantized anchors, latents and residuals are small signed integers; zigzag maps them to
small unsigned ones, the narrowest of 1/2/4/8 bytes holds them, and byte shuffling groups
the (mostly zero) high bytes so zstd removes them. Stream = width byte + zstd frame.
"""

from __future__ import annotations

import numpy as np
import zstandard

from balerc.formats.errors import ContainerError

from .lossless import shuffle_bytes, unshuffle_bytes

_WIDTHS = (1, 2, 4, 8)


def zigzag(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.int64, copy=False)
    return ((c << 1) ^ (c >> 63)).view(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64, copy=False)
    return ((u >> np.uint64(1)).view(np.int64)) ^ -((u & np.uint64(1)).view(np.int64))


DELTA_FLAG = 0x80  # set in the width byte: the values are successive differences
_SAMPLE = 8192


def _narrow(codes: np.ndarray) -> tuple[int, bytes]:
    u = zigzag(codes)
    top = int(u.max()) if u.size else 0
    width = next(w for w in _WIDTHS if top < (1 << (8 * w)))
    return width, shuffle_bytes(u.astype(np.dtype(f"<u{width}")))


def _delta(codes: np.ndarray) -> np.ndarray:
    return np.diff(codes.astype(np.int64), prepend=np.int64(0))


def _delta_pays(codes: np.ndarray) -> bool:
    """Delta coding wins on sorted or repetitive columns (e.g. repeated values in a file)."""
    sample = codes[:_SAMPLE]
    if sample.size < 16:
        return False
    cctx = zstandard.ZstdCompressor(level=1)
    plain = len(cctx.compress(_narrow(sample)[1]))
    return len(cctx.compress(_narrow(_delta(sample))[1])) < 0.9 * plain


def pack_codes(codes: np.ndarray, level: int = 3) -> bytes:
    """Pack a 1-D array of signed integer codes into one stream."""
    flag = 0
    if _delta_pays(codes):
        codes, flag = _delta(codes), DELTA_FLAG
    width, data = _narrow(codes)
    return bytes([width | flag]) + zstandard.ZstdCompressor(level=level).compress(data)


def unpack_codes(data: bytes, n: int) -> np.ndarray:
    if not data or (data[0] & ~DELTA_FLAG) not in _WIDTHS:
        raise ContainerError("malformed integer code stream (bad width byte)")
    width, delta = data[0] & ~DELTA_FLAG, bool(data[0] & DELTA_FLAG)
    raw = zstandard.ZstdDecompressor().decompress(data[1:], max_output_size=width * n)
    if len(raw) != width * n:
        raise ContainerError(f"integer code stream holds {len(raw) // width} values, expected {n}")
    codes = unzigzag(unshuffle_bytes(raw, np.dtype(f"<u{width}"), n))
    return np.cumsum(codes) if delta else codes


def pack_exceptions(rows: np.ndarray, values: np.ndarray, level: int = 3) -> bytes:
    """Values stored verbatim (NaN/Inf, overflow, rounding misses): row deltas + raw floats."""
    rows = rows.astype(np.int64)
    deltas = np.diff(rows, prepend=0)
    head = np.array([len(rows)], dtype="<u8").tobytes()
    body = pack_codes(deltas, level)
    return head + len(body).to_bytes(8, "little") + body + values.astype("<f8").tobytes()


def unpack_exceptions(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = int.from_bytes(data[:8], "little")
    blen = int.from_bytes(data[8:16], "little")
    rows = np.cumsum(unpack_codes(data[16 : 16 + blen], n))
    values = np.frombuffer(data[16 + blen :], dtype="<f8", count=n).copy()
    return rows, values
