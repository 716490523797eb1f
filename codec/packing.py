"""Integer code streams: zigzag, narrowest width, byte shuffle, zstd.

Quantized anchors, latents and residuals are small signed integers; zigzag maps them to
small unsigned ones, the narrowest of 1/2/4/8 bytes holds them, and byte shuffling groups
the (mostly zero) high bytes so zstd removes them. Stream = width byte + zstd frame.
"""

from __future__ import annotations

import numpy as np
import zstandard

from balerc.formats import bounded
from balerc.formats.errors import ContainerError

from .lossless import effective_level, shuffle_bytes, unshuffle_bytes

_WIDTHS = (1, 2, 4, 8)


def zigzag(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.int64, copy=False)
    return ((c << 1) ^ (c >> 63)).view(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64, copy=False)
    return ((u >> np.uint64(1)).view(np.int64)) ^ -((u & np.uint64(1)).view(np.int64))


DELTA_FLAG = 0x80  # in the width byte: the values are successive differences
RAW_FLAG = 0x40  # in the width byte: bytes are not shuffled
UNSIGNED_FLAG = 0x20  # in the width byte: values are >= 0 and stored without zigzag
_FLAGS = DELTA_FLAG | RAW_FLAG | UNSIGNED_FLAG
_SAMPLE = 8192


def _narrow(codes: np.ndarray, shuffle: bool = True, unsigned: bool = False) -> tuple[int, bytes]:
    u = codes.astype(np.uint64) if unsigned else zigzag(codes)
    top = int(u.max()) if u.size else 0
    width = next(w for w in _WIDTHS if top < (1 << (8 * w)))
    narrow = u.astype(np.dtype(f"<u{width}"))
    return width, shuffle_bytes(narrow) if shuffle else narrow.tobytes()


def _delta(codes: np.ndarray) -> np.ndarray:
    return np.diff(codes.astype(np.int64), prepend=np.int64(0))


def _choose(codes: np.ndarray) -> int:
    """Flags (delta? unshuffled?) that pack a sample smallest with zstd level 1.

    Delta wins on sorted or repetitive columns (files often repeat values row to row);
    unshuffled wins when whole multi-byte values repeat.
    """
    sample = codes[:_SAMPLE]
    if sample.size < 64:
        return 0
    cctx = zstandard.ZstdCompressor(level=1)
    best, best_flags = None, 0
    for flags in (0, DELTA_FLAG, RAW_FLAG, DELTA_FLAG | RAW_FLAG):
        c = _delta(sample) if flags & DELTA_FLAG else sample
        width, data = _narrow(c, not flags & RAW_FLAG)
        if width == 1 and flags & RAW_FLAG:
            continue  # identical to the shuffled form
        size = len(cctx.compress(data))
        if best is None or size < 0.97 * best:  # prefer the simpler form unless it clearly wins
            best, best_flags = size, flags
    return best_flags


def encode_codes(codes: np.ndarray) -> tuple[int, bytes]:
    """(width/flags byte, uncompressed payload) for a 1-D array of integer codes."""
    flags = _choose(codes)
    if flags & DELTA_FLAG:
        codes = _delta(codes)
    elif codes.size and codes.min() >= 0:
        flags |= UNSIGNED_FLAG  # zigzag would double every value for nothing
    width, data = _narrow(codes, not flags & RAW_FLAG, bool(flags & UNSIGNED_FLAG))
    return width | flags, data


def finish_codes(part: tuple[int, bytes], level: int = 3) -> bytes:
    """A (head, payload) pair from encode_codes as a standalone stream: head + zstd frame."""
    head, data = part
    return bytes([head]) + zstandard.ZstdCompressor(level=effective_level(level, len(data))).compress(data)


def pack_codes(codes: np.ndarray, level: int = 3) -> bytes:
    """Pack a 1-D array of signed integer codes into one stream."""
    return finish_codes(encode_codes(codes), level)


def decode_codes(head: int, raw: bytes, n: int) -> np.ndarray:
    """Invert encode_codes."""
    flags, width = head & _FLAGS, head & ~_FLAGS
    if width not in _WIDTHS:
        raise ContainerError("malformed integer code stream (bad width byte)")
    if len(raw) != width * n:
        raise ContainerError(f"integer code stream holds {len(raw) // width} values, expected {n}")
    dt = np.dtype(f"<u{width}")
    u = np.frombuffer(raw, dtype=dt).copy() if flags & RAW_FLAG else unshuffle_bytes(raw, dt, n)
    codes = u.astype(np.int64) if flags & UNSIGNED_FLAG else unzigzag(u)
    return np.cumsum(codes) if flags & DELTA_FLAG else codes


def unpack_codes(data: bytes, n: int, what: str = "integer code stream") -> np.ndarray:
    """Invert pack_codes for n values; the frame must hold exactly n x width bytes."""
    if not data:
        raise ContainerError(f"{what}: empty")
    width = data[0] & ~_FLAGS
    if width not in _WIDTHS:
        raise ContainerError(f"{what}: malformed (bad width byte {data[0]:#x})")
    raw = bounded.decompress(data[1:], what, exact=width * n)
    return decode_codes(data[0], raw, n)


def pack_group(parts: list[tuple[int, bytes]], level: int = 3) -> bytes:
    """Several code payloads in one zstd frame (small chunks: one entropy table, not many).

    Layout inside the frame, per part: head byte, u32 payload length, payload.
    """
    body = b"".join(bytes([h]) + len(d).to_bytes(4, "little") + d for h, d in parts)
    return zstandard.ZstdCompressor(level=effective_level(level, len(body))).compress(body)


def unpack_group(data: bytes, count: int, rows: int) -> list[tuple[int, bytes]]:
    """Invert pack_group for `count` parts of `rows` codes each (at most 8 bytes a code)."""
    body = bounded.decompress(data, "grouped code stream", limit=count * (5 + 8 * rows))
    parts, pos = [], 0
    for _ in range(count):
        if pos + 5 > len(body):
            raise ContainerError("malformed grouped code stream (truncated)")
        head, size = body[pos], int.from_bytes(body[pos + 1 : pos + 5], "little")
        parts.append((head, body[pos + 5 : pos + 5 + size]))
        pos += 5 + size
    return parts


def pack_exceptions(rows: np.ndarray, values: np.ndarray, level: int = 3) -> bytes:
    """Values stored verbatim (NaN/Inf, overflow, rounding misses): row deltas + raw floats."""
    rows = rows.astype(np.int64)
    deltas = np.diff(rows, prepend=0)
    head = np.array([len(rows)], dtype="<u8").tobytes()
    body = pack_codes(deltas, level)
    return head + len(body).to_bytes(8, "little") + body + values.astype("<f8").tobytes()


def unpack_exceptions(data: bytes, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Invert pack_exceptions for a chunk of n_rows rows: strictly increasing row indices
    inside the chunk, one float64 each, and nothing else in the stream."""
    if len(data) < 16:
        raise ContainerError("exception stream: truncated")
    n = int.from_bytes(data[:8], "little")
    blen = int.from_bytes(data[8:16], "little")
    if n > n_rows or 16 + blen + 8 * n != len(data):
        raise ContainerError(f"exception stream: malformed ({n:,} values in a chunk of "
                             f"{n_rows:,} rows, {len(data):,} bytes)")
    deltas = unpack_codes(data[16 : 16 + blen], n, "exception rows")
    if n and (deltas[0] < 0 or (deltas[1:] <= 0).any()):
        raise ContainerError("exception stream: row indices are not strictly increasing")
    rows = np.cumsum(deltas)
    if n and rows[-1] >= n_rows:
        raise ContainerError(f"exception stream: row {int(rows[-1])} is outside the chunk "
                             f"({n_rows:,} rows)")
    values = np.frombuffer(data, dtype="<f8", count=n, offset=16 + blen).copy()
    return rows, values
