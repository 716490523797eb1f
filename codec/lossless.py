"""Lossless column coding: a filter (none, byte shuffle, delta + shuffle) then zstd.

Used for `--lossless`, and by the lossy codec for integer, boolean, string and uncovered
columns. Each stream is one filter byte followed by one zstd frame, so a reader needs no
side information beyond the column's dtype and the chunk's row count (docs/FORMAT.md).
The filter is chosen per chunk on a small sample, because what helps (delta for sorted
event numbers, shuffle for smooth floats) depends on the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zstandard

from balerc.formats import bounded, zstd_contexts
from balerc.formats.errors import ContainerError, LimitError, UnsupportedFeatureError

RAW, SHUFFLE, DELTA_SHUFFLE, UTF8, PCODEC = 0, 1, 2, 3, 4
FILTER_NAMES = {RAW: "raw", SHUFFLE: "shuffle", DELTA_SHUFFLE: "delta+shuffle", UTF8: "utf8",
                PCODEC: "pcodec"}
SMALL_TRIAL = 16384  # columns of at most this many rows are coded both ways (pcodec, zstd)
_SAMPLE_ROWS = 8192
TINY_ROWS = 64  # shorter columns are not filter-tried (a chunk's few exception values)
MAX_STRING_CHUNK = 1 << 28  # bytes of UTF-8 text in one string column chunk (documented)


PLANE_BLOCKS_BELOW = 16  # zstd levels below this get a block per byte plane (see below)


def compress_planes(data: bytes, width: int, level: int, stored_at: int | None = None,
                    cctx: zstandard.ZstdCompressor | None = None) -> bytes:
    """One zstd frame of a byte-shuffled stream (`width` planes of equal length) whose
    blocks end where the planes do, so each plane gets its own entropy tables.

    zstd cuts blocks every 128 kB of input, whatever the content: below level 16 (where
    its block splitter is off) a 65,536-row two-byte stream is one block, and the
    near-constant high-byte plane and the noisy low-byte plane share one Huffman table:
    9-11% more bytes (1M dimuon log codes at zstd-3: 2.29x -> 2.54x with a block per
    plane, the same speed). Still one standard frame with its content size: any zstd
    reader, older balerc included, decodes it to the same bytes. `stored_at`: the level
    the stream will be stored at when this call only ranks candidates at `level` (the
    planes are split, or not, as they will be). `cctx`: a compressor at `level` (default:
    this thread's, formats/zstd_contexts.py; the output never depends on its history)."""
    cctx = cctx or zstd_contexts.compressor(level)
    final = level if stored_at is None else stored_at
    if width <= 1 or final >= PLANE_BLOCKS_BELOW or len(data) < width * 1024:
        return cctx.compress(data)
    plane, view = len(data) // width, memoryview(data)
    co = cctx.compressobj(size=len(data))
    parts = []
    for k in range(width - 1):
        parts.append(co.compress(view[k * plane : (k + 1) * plane]))
        parts.append(co.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    parts.append(co.compress(view[(width - 1) * plane :]))
    parts.append(co.flush())
    return b"".join(parts)


def shuffle_bytes(values: np.ndarray) -> bytes:
    """Byte-transpose: all first bytes, then all second bytes... (zstd likes the result)."""
    width = values.dtype.itemsize
    if width == 1:
        return values.tobytes()
    return values.view(np.uint8).reshape(-1, width).T.tobytes()


def unshuffle_bytes(data: bytes, dtype: np.dtype, n: int) -> np.ndarray:
    width = dtype.itemsize
    raw = np.frombuffer(data, dtype=np.uint8)
    if width == 1:
        return raw.view(dtype).copy()
    return raw.reshape(width, n).T.copy().view(dtype).reshape(n)


def _uint_view(values: np.ndarray) -> np.ndarray:
    return values.view(np.dtype(f"<u{values.dtype.itemsize}"))


def _apply(values: np.ndarray, filt: int) -> bytes:
    if filt == RAW:
        return values.tobytes()
    if filt == SHUFFLE:
        return shuffle_bytes(values)
    if filt == DELTA_SHUFFLE:
        u = _uint_view(values)
        d = np.empty_like(u)
        if len(u):
            d[0] = u[0]
            np.subtract(u[1:], u[:-1], out=d[1:])  # wraps modulo 2**bits: exact inverse
        return shuffle_bytes(d)
    raise ValueError(f"unknown filter {filt}")


def _invert(data: bytes, filt: int, dtype: np.dtype, n: int) -> np.ndarray:
    if filt == RAW:
        return np.frombuffer(data, dtype=dtype, count=n).copy()
    if filt == SHUFFLE:
        return unshuffle_bytes(data, dtype, n)
    if filt == DELTA_SHUFFLE:
        udt = np.dtype(f"<u{dtype.itemsize}")
        d = unshuffle_bytes(data, udt, n)
        return np.cumsum(d, dtype=udt).view(dtype)
    raise ContainerError(f"unknown lossless filter id {filt}")


def _choose_filter(values: np.ndarray, level: int, exhaustive: bool = False) -> int:
    """Pick the filter that compresses a sample best (zstd level 1, cheap); columns of
    under TINY_ROWS values stay raw unless `exhaustive` (three trials for a few bytes)."""
    if values.dtype.itemsize == 1 or (len(values) < TINY_ROWS and not exhaustive):
        return RAW
    sample = values[:_SAMPLE_ROWS]
    width = values.dtype.itemsize
    sizes = {f: len(compress_planes(_apply(sample, f), 1 if f == RAW else width, 1, level))
             for f in (RAW, SHUFFLE, DELTA_SHUFFLE)}
    return min(sizes, key=lambda f: (sizes[f], f))


def _le(values: np.ndarray) -> np.ndarray:
    """Little-endian, contiguous view of a numeric column (bool stored as uint8)."""
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))


def encode_strings(values: np.ndarray, level: int) -> bytes:
    encoded = [s.encode("utf-8") for s in values]
    lengths = np.fromiter((len(b) for b in encoded), dtype="<u4", count=len(encoded))
    payload = lengths.tobytes() + b"".join(encoded)
    return bytes([UTF8]) + zstd_contexts.compressor(level).compress(payload)


def encode_column(values: np.ndarray, level: int = 3, pcodec: bool = False,
                  exhaustive: bool = False) -> bytes:
    """Encode one column chunk losslessly: filter byte + zstd frame, or with `pcodec`
    (feature pcodec-lossless) filter 4 + a pcodec file for numeric columns of 2-8 bytes:
    chosen like integer code streams (codec/packing.py), short columns coded both ways."""
    if values.dtype.kind in "OUS":
        return encode_strings(values, level)
    le = _le(values)
    if pcodec and le.dtype.kind in "iuf" and le.dtype.itemsize >= 2 and len(le) >= 64:
        small = exhaustive or len(le) <= SMALL_TRIAL
        if small or not _repeats(le[:_SAMPLE_ROWS]):
            pc = bytes([PCODEC]) + _pcodec_bytes(le)
            if not small:
                return pc
            zs = _zstd_stream(le, level, exhaustive)
            return pc if len(pc) < len(zs) else zs
    return _zstd_stream(le, level, exhaustive)


def _zstd_stream(le: np.ndarray, level: int, exhaustive: bool = False) -> bytes:
    filt = _choose_filter(le, level, exhaustive)
    data = _apply(le, filt)
    width = 1 if filt == RAW else le.dtype.itemsize
    return bytes([filt]) + compress_planes(data, width, level)


def _repeats(sample: np.ndarray) -> bool:
    """Whether values repeat row to row far more than their histogram implies (runs, rows
    repeated per event): zstd's matches beat pcodec there."""
    u = _uint_view(sample)
    rep = float(np.count_nonzero(u[1:] == u[:-1])) / max(1, u.size - 1)
    if rep < 0.6:
        return False
    p = np.unique(u, return_counts=True)[1] / u.size
    return rep > 2.0 * float(np.dot(p, p))


def _pcodec_bytes(le: np.ndarray) -> bytes:
    """pcodec of a numeric column; for integers its delta and multiplier searches only
    where a sample says they may pay (as for code streams)."""
    import pcodec

    cfg = pcodec.ChunkConfig()
    if le.dtype.kind in "iu":
        s = le[:_SAMPLE_ROWS].astype(np.int64)
        d = np.diff(s)
        smooth = s.max() > s.min() and 4 * int(np.abs(d).max()) <= int(s.max()) - int(s.min())
        common = int(np.gcd.reduce(s - s.min())) > 1
        cfg = pcodec.ChunkConfig(
            delta_spec=pcodec.DeltaSpec.auto() if smooth else pcodec.DeltaSpec.no_op(),
            mode_spec=pcodec.ModeSpec.auto() if common else pcodec.ModeSpec.classic())
    native = le.astype(le.dtype.newbyteorder("="), copy=False)
    return pcodec.standalone.simple_compress(np.ascontiguousarray(native), cfg)


def _pcodec_column(raw: bytes, store: np.dtype, n: int, what: str) -> np.ndarray:
    """Exactly n values of `store` from a pcodec file, allocated from n."""
    if store.kind not in "iuf" or store.itemsize < 2:
        raise ContainerError(f"{what}: a pcodec stream for a {store} column")
    return pcodec_into(raw, np.empty(n, dtype=store.newbyteorder("=")), what,
                       "pcodec-lossless", "values")


def pcodec_into(raw: bytes, out: np.ndarray, what: str, feature: str, unit: str) -> np.ndarray:
    """Fill `out` (allocated from what the records imply) from a pcodec standalone file;
    a stream holding fewer or more values, another number type or damaged bytes is a
    ContainerError, a missing pcodec an UnsupportedFeatureError naming `feature`."""
    try:
        import pcodec
    except ImportError:
        raise UnsupportedFeatureError(f"{what}: this file uses pcodec (feature {feature}): "
                                      f"pip install pcodec") from None
    try:
        progress = pcodec.standalone.simple_decompress_into(bytes(raw), out)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise ContainerError(f"{what}: damaged pcodec stream ({str(exc)[:120]})") from None
    if progress.n_processed != len(out) or not progress.finished:
        raise ContainerError(f"{what}: pcodec stream does not hold exactly {len(out):,} {unit}")
    return out


def decode_column(data: bytes, dtype: str | np.dtype, n: int, what: str = "lossless stream"
                  ) -> np.ndarray:
    """Invert encode_column for a chunk of `n` rows of `dtype` ('object' for strings).

    The inflated size is known before decompression (n x itemsize; strings: n lengths plus
    at most MAX_STRING_CHUNK bytes of text), so a forged frame cannot allocate more.
    """
    if not data:
        raise ContainerError(f"{what}: empty")
    filt = data[0]
    dt = np.dtype(dtype)
    if (filt == UTF8) != (dt.kind == "O"):
        raise ContainerError(f"{what}: a {'string' if filt == UTF8 else 'numeric'} stream "
                             f"where the schema says {'strings' if dt.kind == 'O' else dt}")
    if filt == UTF8:
        return _decode_strings(data, n, what)
    store = np.dtype(np.uint8) if dt.kind == "b" else dt.newbyteorder("<")
    if filt == PCODEC:
        values = _pcodec_column(data[1:], store, n, what)
        return values.astype(dt, copy=False)
    if filt not in (RAW, SHUFFLE, DELTA_SHUFFLE):
        raise ContainerError(f"{what}: unknown lossless filter id {filt}")
    payload = bounded.decompress(data[1:], what, exact=n * store.itemsize)
    values = _invert(payload, filt, store, n)
    if dt.kind == "b":
        return values.view(np.bool_)
    return values.astype(dt, copy=False)


def _decode_strings(data: bytes, n: int, what: str) -> np.ndarray:
    """n u32 lengths, then the text: the lengths are read first, so the text's exact size
    is known (and checked against the limit and the frame's declared size) before it is
    inflated."""
    frame = data[1:]
    declared = bounded.declared_size(frame, what)
    try:
        with zstd_contexts.decompressor().stream_reader(frame, read_across_frames=False) as r:
            head = _read_exactly(r, 4 * n)
            if len(head) != 4 * n:
                raise ContainerError(f"{what}: holds fewer than {n:,} string lengths")
            lengths = np.frombuffer(head, dtype="<u4")
            ends = np.cumsum(lengths, dtype=np.int64)
            total = int(ends[-1]) if n else 0
            if total > MAX_STRING_CHUNK:
                raise LimitError(f"{what}: {total:,} bytes of text, over {MAX_STRING_CHUNK:,}")
            if declared is not None and declared != 4 * n + total:
                raise LimitError(f"{what}: the zstd frame declares {declared:,} bytes where "
                                 f"its string lengths imply {4 * n + total:,}")
            blob = _read_exactly(r, total + 1)
    except zstandard.ZstdError as exc:
        raise ContainerError(f"{what}: damaged zstd frame ({exc})") from None
    if len(blob) != total:
        raise ContainerError(f"{what}: string lengths add up to {total:,} bytes, the stream "
                             f"holds {len(blob):,}")
    starts = ends - lengths
    out = np.empty(n, dtype=object)
    try:
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            out[i] = blob[a:b].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContainerError(f"{what}: row {i} is not valid UTF-8 ({exc.reason})") from None
    return out


def _read_exactly(reader: Any, size: int) -> bytes:
    """Up to `size` bytes from a zstd stream reader (which may return short reads)."""
    parts, got = [], 0
    while got < size:
        block = reader.read(min(size - got, 1 << 20))
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def filter_name(data: bytes) -> str:
    return FILTER_NAMES.get(data[0], "?") if data else "?"
