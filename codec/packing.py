"""Integer code streams: pcodec, or zigzag + narrowest width + byte shuffle + zstd.

Quantized anchors, latents and residuals are small signed integers. pcodec (a numeric
entropy coder) packs them 2-20% smaller than zstd-19 and decodes several times faster
(benchmarks/results_entropy_stage.md), so it is the default where the file may use it
(feature `pcodec-codes`). zstd keeps the streams pcodec codes worse: tiny or constant
ones and those whose values repeat row to row (LZ matches). There zigzag maps the codes
to small unsigned ones, the narrowest of 1/2/4/8 bytes holds them, and byte shuffling
groups the (mostly zero) high bytes so zstd removes them. Stream = head byte + payload.

The choice is made from cheap statistics of a sample (no trial compressions); the
exhaustive choice (`Entropy.exhaustive`, CLI `--effort exhaustive`) codes every candidate
and keeps the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from balerc.formats import bounded, zstd_contexts
from balerc.formats.errors import ContainerError

from .lossless import (
    compress_planes,
    decode_column,
    encode_column,
    pcodec_into,
    shuffle_bytes,
    unshuffle_bytes,
)

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
PCODEC = 0x10  # the whole head byte: the payload is a pcodec standalone file of int64 codes
PCODEC32 = 0x11  # the same of int32 codes (feature pcodec-int32): same bytes, ~10% faster
PCODEC_HEADS = (PCODEC, PCODEC32)
_INT32 = np.iinfo(np.int32)
_SAMPLE = 8192
MIN_PCODEC = 64  # shorter streams: zstd (pcodec's own header would weigh too much)
TINY_STREAM = 64  # shorter streams take their form from statistics too: trials would cost
# ~0.25 ms each for the odd byte (a chunk's 1-3 exception rows; a tiny table's columns)
SMALL_TRIAL = 16384  # streams of at most this many codes are coded every way
SMALL_STREAM = 1 << 15  # zstd forms of at most this many bytes are ranked at RANK_LEVEL, not 1
RANK_LEVEL = 15  # zstd level at which the four forms of a short stream are ranked
PCODEC_CLEAR = 0.8  # pcodec this much below zstd at RANK_LEVEL wins without a level-19 pass
REPEAT_ZSTD = 0.6  # a sample repeating the previous value this often may suit zstd better


@dataclass(frozen=True)
class Entropy:
    """How a coder's integer code streams are entropy coded (one per coder and file)."""

    pcodec: bool = False  # the file may use pcodec streams (feature pcodec-codes)
    pcodec_level: int = 8
    pcodec32: bool = False  # codes within int32 go to pcodec as int32 (feature pcodec-int32)
    exhaustive: bool = False  # code every candidate and keep the smallest (slow)
    zstd_level: int = 3  # what the exhaustive choice compares zstd candidates at
    coded_exceptions: bool = False  # exception values as a lossless stream (coded-exceptions)
    dictionary: bool = False  # low-cardinality columns may be mode d (feature dictionary)
    scaled: bool = False  # pwrel predicted columns as mode s (feature scaled-pwrel)


ZSTD_ONLY = Entropy()


def _narrow(codes: np.ndarray, shuffle: bool = True, unsigned: bool = False) -> tuple[int, bytes]:
    u = codes.astype(np.uint64) if unsigned else zigzag(codes)
    top = int(u.max()) if u.size else 0
    width = next(w for w in _WIDTHS if top < (1 << (8 * w)))
    narrow = u.astype(np.dtype(f"<u{width}"))
    return width, shuffle_bytes(narrow) if shuffle else narrow.tobytes()


def _delta(codes: np.ndarray) -> np.ndarray:
    return np.diff(codes.astype(np.int64), prepend=np.int64(0))


def _cheap_flags(sample: np.ndarray) -> int:
    """zstd filter flags from statistics: unshuffled where whole values repeat row to row,
    delta where the sample is sorted or smooth (event numbers), else shuffled."""
    if sample.size < 64:
        return 0
    d = np.diff(sample)
    if np.count_nonzero(d == 0) >= 0.5 * d.size:
        return RAW_FLAG
    spread = int(sample.max()) - int(sample.min())
    return DELTA_FLAG if spread > 0 and 4 * int(np.abs(d).max()) <= spread else 0


@dataclass(frozen=True)
class CodeStats:
    """What the cheap choice reads of a stream: of its first _SAMPLE codes, how many steps
    repeat the previous value, the spread, the largest step and the gcd of the codes less
    their minimum; and the whole stream's lowest and highest code, where known."""

    repeats: int
    spread: int
    max_step: int
    gcd: int
    lo: int | None = None
    hi: int | None = None


def code_stats(codes: np.ndarray | list[np.ndarray], shift: np.ndarray | None = None,
               highs: np.ndarray | None = None) -> list[CodeStats]:
    """CodeStats of each row of an (F, n) array of codes (or of each stream of a list, of
    at least two codes each) in a few whole-array passes.

    The same numbers as the per-stream passes over each sample, in ~10 numpy calls per
    chunk instead of ~10 per stream: calls on 8,192-code samples release and retake the
    GIL for a few microseconds of work each, and two encoder threads queue on it there
    (such calls scale 0.9x on two threads; whole-chunk ones 2x). `shift`/`highs`: the rows'
    lowest and highest codes when the caller knows them; the stats then describe each row
    less its lowest code (lo 0), as the caller will code it."""
    if isinstance(codes, list):  # the samples side by side (equal lengths: one array)
        size = min(_SAMPLE, *(len(c) for c in codes)) if codes else 0
        s = np.stack([c[:size] for c in codes]) if codes else np.zeros((0, 2), np.int64)
    else:
        s = codes[:, :_SAMPLE]
    if s.shape[1] < 2:
        raise ValueError("code_stats needs at least two codes a row")
    d = s[:, 1:] - s[:, :-1]
    repeats = np.count_nonzero(d == 0, axis=1)
    smin, smax = s.min(axis=1), s.max(axis=1)
    step = np.maximum(d.max(axis=1), -d.min(axis=1))  # max |d| without an |d| pass
    gcd = np.gcd.reduce(s - smin[:, None], axis=1)
    out = []
    for j in range(len(s)):
        lo = hi = None
        if shift is not None and highs is not None:
            lo, hi = 0, int(highs[j]) - int(shift[j])
        out.append(CodeStats(int(repeats[j]), int(smax[j]) - int(smin[j]), int(step[j]),
                             int(gcd[j]), lo, hi))
    return out


def row_entropies(s: np.ndarray) -> np.ndarray:
    """Order-0 entropy, bits per value, of each row of an (m, n) array of integers (or of
    NaN-free floats), all rows in one sort: the same terms in the same order, so the same
    float64 sums, as `-(p * log2(p)).sum()` over each row's own np.unique counts (tested),
    without a histogram call per row (each a GIL handoff between encoder threads)."""
    m, n = s.shape
    if not n:
        return np.zeros(m)
    srt = np.sort(s, axis=1)
    new = np.ones((m, n), bool)
    np.not_equal(srt[:, 1:], srt[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new)  # each run of equal values in each sorted row
    p = np.diff(starts, append=m * n) / n
    t = p * np.log2(p)
    rows = np.searchsorted(starts, np.arange(m + 1) * n)
    return np.array([-t[a:b].sum() for a, b in zip(rows[:-1], rows[1:], strict=True)])


def _one_stats(codes: np.ndarray) -> CodeStats:
    return code_stats(codes[None, :])[0]


def _cheap_choice(codes: np.ndarray, ent: Entropy, st: CodeStats | None = None) -> int:
    """PCODEC or zstd flags, from a sample: pcodec unless the stream repeats the previous
    value far more often than independent draws from its histogram would (rows repeated
    per event, runs), where zstd's matches win (measured: benchmarks/entropy_measure.py)."""
    sample = codes[:_SAMPLE]
    if not ent.pcodec:
        return _cheap_flags(sample)
    st = st or _one_stats(codes)
    repeats = float(st.repeats) / (sample.size - 1)
    if repeats >= REPEAT_ZSTD:
        counts = np.unique(sample, return_counts=True)[1] / sample.size
        if repeats > 2.0 * float(np.dot(counts, counts)):  # iid draws repeat sum(p^2)
            return _cheap_flags(sample)
    return PCODEC


def _small_choice(codes: np.ndarray, ent: Entropy) -> tuple[int, bytes]:
    """Short streams are coded every way: the four zstd forms ranked at the file's level, or
    at RANK_LEVEL above it (level 19 costs ~1 ms for 9 kB, level 15 half; lower levels rank
    Zmumu's raw and shuffled forms differently, +2% bytes), the best of them against
    pcodec, settled at the file's level only when the two are close."""
    forms = [_zstd_form(codes, f) for f in (0, DELTA_FLAG, RAW_FLAG, DELTA_FLAG | RAW_FLAG)]
    rank = min(RANK_LEVEL, ent.zstd_level)
    rank = rank if len(forms[0][1]) <= SMALL_STREAM else 1
    cctx = zstd_contexts.compressor(rank)  # one for the four forms
    sizes = [len(compress_planes(f[1], _planes(f[0]), rank, ent.zstd_level, cctx)) for f in forms]
    best = min(range(len(forms)), key=lambda i: (sizes[i] / (1.0 if i == 0 else 0.97), i))
    if not ent.pcodec or codes.size < MIN_PCODEC:
        return forms[best]
    form = _pcodec_form(codes, ent)
    if form is None or len(form[1]) >= sizes[best]:  # zstd at the file's level is no larger
        return forms[best]
    head, pc = form
    if len(pc) < PCODEC_CLEAR * sizes[best]:  # no zstd level closes that gap
        return head, pc
    exact = rank == ent.zstd_level  # the ranked sizes are the stored ones
    stored = 1 + sizes[best] if exact else len(finish_codes(forms[best], ent.zstd_level))
    return (head, pc) if 1 + len(pc) < stored else forms[best]


def zstd_part(part: tuple[int, bytes]) -> tuple[int, bytes]:
    """The zstd form of an encoded part (a pcodec part decoded and re-encoded, its flags
    the best of the four at zstd level 1): what a `qgroup` frame may pack better, since
    one frame shares its entropy tables across columns."""
    head, payload = part
    if head not in PCODEC_HEADS:
        return part
    import pcodec

    codes = np.asarray(pcodec.standalone.simple_decompress(payload), dtype=np.int64)
    cctx = zstd_contexts.compressor(1)
    forms = [_zstd_form(codes, f) for f in (0, DELTA_FLAG, RAW_FLAG, DELTA_FLAG | RAW_FLAG)]
    return min(forms, key=lambda f: len(cctx.compress(f[1])))


def _stored_width(lo: int, hi: int) -> int:
    """Bytes per value of the zstd form's payload (zigzag or unsigned) for codes in
    [lo, hi]."""
    top = hi if lo >= 0 else max(2 * hi, -2 * lo - 1)
    return next(w for w in _WIDTHS if top < (1 << (8 * w)))


def _zstd_form(codes: np.ndarray, flags: int) -> tuple[int, bytes]:
    if flags & DELTA_FLAG:
        codes = _delta(codes)
    elif codes.size and codes.min() >= 0:
        flags |= UNSIGNED_FLAG  # zigzag would double every value for nothing
    width, data = _narrow(codes, not flags & RAW_FLAG, bool(flags & UNSIGNED_FLAG))
    return width | flags, data


def _pcodec_form(codes: np.ndarray, ent: Entropy, st: CodeStats | None = None
                 ) -> tuple[int, bytes] | None:
    """(head, pcodec of the codes), or None where that is not smaller than the zstd form's
    payload (so a qgroup part never outgrows 8 bytes a code). pcodec's delta and
    multiplier searches run only where a sample says they may pay (sorted or smooth codes;
    codes sharing a common factor): they cost a third of its time on the usual noise-like
    residual codes and change nothing there.
    Codes within int32 are handed over as int32 where the file allows (`ent.pcodec32`):
    pcodec 1.1 then packs them to the same size ~10% faster both ways (65,536 log codes:
    1.11 -> 0.97 ms compress, 0.113 -> 0.102 ms decompress into the reader's array)."""
    import pcodec

    delta, mode = pcodec.DeltaSpec.no_op(), pcodec.ModeSpec.classic()
    if codes.size > 1:
        st = st or _one_stats(codes)
        if st.spread > 0 and 4 * st.max_step <= st.spread:
            delta = pcodec.DeltaSpec.auto()
        if st.gcd > 1:
            mode = pcodec.ModeSpec.auto()
    cfg = pcodec.ChunkConfig(compression_level=ent.pcodec_level, delta_spec=delta,
                             mode_spec=mode)
    if st is not None and st.lo is not None and st.hi is not None:
        lo, hi = st.lo, st.hi
    else:
        lo, hi = (int(codes.min()), int(codes.max())) if codes.size else (0, 0)
    if ent.pcodec32 and _INT32.min <= lo and hi <= _INT32.max:
        head, pc = PCODEC32, pcodec.standalone.simple_compress(
            np.asarray(codes, dtype=np.int32), cfg)  # no copy when int32 already
    else:
        head, pc = PCODEC, pcodec.standalone.simple_compress(
            np.ascontiguousarray(codes, np.int64), cfg)
    return (head, pc) if len(pc) < _stored_width(lo, hi) * codes.size else None


def _exhaustive(codes: np.ndarray, ent: Entropy) -> tuple[int, bytes]:
    """Every candidate coded in full; the smallest stored stream wins."""
    forms = [_zstd_form(codes, f) for f in (0, DELTA_FLAG, RAW_FLAG, DELTA_FLAG | RAW_FLAG)]
    sized = [(len(finish_codes(f, ent.zstd_level)), i, f) for i, f in enumerate(forms)]
    if ent.pcodec and codes.size:
        form = _pcodec_form(codes, ent)
        if form is not None:
            sized.append((1 + len(form[1]), -1, form))
    return min(sized, key=lambda t: t[:2])[2]


def encode_codes(codes: np.ndarray, ent: Entropy = ZSTD_ONLY, st: CodeStats | None = None
                 ) -> tuple[int, bytes]:
    """(head byte, payload) for a 1-D array of integer codes. The payload is uncompressed
    (zstd comes in finish_codes or pack_group) unless the head is PCODEC. `st`: the
    stream's CodeStats when the caller computed them for several streams at once. int32
    codes stay int32 (the same streams; pcodec takes them without a copy)."""
    codes = np.asarray(codes)
    if codes.dtype != np.int32:
        codes = codes.astype(np.int64, copy=False)
    if ent.exhaustive:
        return _exhaustive(codes, ent)
    if codes.size < TINY_STREAM:
        return _zstd_form(codes, 0)  # shuffled (what _cheap_flags says this short)
    if codes.size <= SMALL_TRIAL:
        return _small_choice(codes, ent)
    flags = _cheap_choice(codes, ent, st)
    if flags == PCODEC:
        form = _pcodec_form(codes, ent, st)
        if form is not None:  # else zstd's stored form is no larger
            return form
        flags = 0
    return _zstd_form(codes, flags)


def finish_codes(part: tuple[int, bytes], level: int = 3) -> bytes:
    """A (head, payload) pair from encode_codes as a standalone stream: head + zstd frame."""
    head, data = part
    if head in PCODEC_HEADS:
        return bytes([head]) + data
    return bytes([head]) + compress_planes(data, _planes(head), level)


def _planes(head: int) -> int:
    """Byte planes of a zstd code payload: its width when shuffled, else 1."""
    return 1 if head & RAW_FLAG else head & ~_FLAGS


def pack_codes(codes: np.ndarray, level: int = 3, ent: Entropy = ZSTD_ONLY) -> bytes:
    """Pack a 1-D array of signed integer codes into one stream."""
    return finish_codes(encode_codes(codes, ent), level)


def decode_codes(head: int, raw: bytes, n: int) -> np.ndarray:
    """Invert encode_codes."""
    if head in PCODEC_HEADS:
        return _pcodec_decode(raw, n, head)
    flags, width = head & _FLAGS, head & ~_FLAGS
    if width not in _WIDTHS:
        raise ContainerError("malformed integer code stream (bad width byte)")
    if len(raw) != width * n:
        raise ContainerError(f"integer code stream holds {len(raw) // width} values, expected {n}")
    dt = np.dtype(f"<u{width}")
    u = np.frombuffer(raw, dtype=dt).copy() if flags & RAW_FLAG else unshuffle_bytes(raw, dt, n)
    codes = u.astype(np.int64) if flags & UNSIGNED_FLAG else unzigzag(u)
    return np.cumsum(codes) if flags & DELTA_FLAG else codes


def unpack_codes(data: bytes, n: int, what: str = "integer code stream", stored: bool = False
                 ) -> np.ndarray:
    """Invert pack_codes for n values; the frame must hold exactly n x width bytes. int64
    codes, or with `stored` int32 ones where the stream holds int32 (no widening pass)."""
    if not data:
        raise ContainerError(f"{what}: empty")
    if data[0] in PCODEC_HEADS:
        return _pcodec_decode(data[1:], n, data[0], what, stored)
    width = data[0] & ~_FLAGS
    if width not in _WIDTHS:
        raise ContainerError(f"{what}: malformed (bad width byte {data[0]:#x})")
    raw = bounded.decompress(data[1:], what, exact=width * n)
    return decode_codes(data[0], raw, n)


def _pcodec_decode(raw: bytes, n: int, head: int = PCODEC, what: str = "pcodec code stream",
                   stored: bool = False) -> np.ndarray:
    """Exactly n int64 codes (int32 as stored with `stored`) from a pcodec standalone file
    of int64 (head PCODEC) or int32 (PCODEC32) codes; the array is allocated from n, and a
    file of the other type refused."""
    if head == PCODEC32:
        narrow = pcodec_into(raw, np.empty(n, dtype=np.int32), what, "pcodec-int32", "codes")
        return narrow if stored else narrow.astype(np.int64)
    return pcodec_into(raw, np.empty(n, dtype=np.int64), what, "pcodec-codes", "codes")


def pack_group(parts: list[tuple[int, bytes]], level: int = 3) -> bytes:
    """Several code payloads in one zstd frame (small chunks: one entropy table, not many).

    Layout inside the frame, per part: head byte, u32 payload length, payload.
    """
    body = b"".join(bytes([h]) + len(d).to_bytes(4, "little") + d for h, d in parts)
    return zstd_contexts.compressor(level).compress(body)


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


def pack_exceptions(rows: np.ndarray, values: np.ndarray, level: int = 3,
                    ent: Entropy = ZSTD_ONLY) -> bytes:
    """Values stored verbatim (NaN/Inf, overflow, rounding misses): row deltas + floats.

    With `ent.coded_exceptions` (feature coded-exceptions) the floats are a lossless
    stream (filter byte + zstd frame of float64) instead of raw: a low-cardinality column
    whose distinct values sit on half steps sends half its rows here."""
    rows = rows.astype(np.int64)
    deltas = np.diff(rows, prepend=0)
    head = np.array([len(rows)], dtype="<u8").tobytes()
    body = pack_codes(deltas, level, ent)
    floats = values.astype("<f8")
    tail = (encode_column(floats, level, exhaustive=ent.exhaustive) if ent.coded_exceptions
            else floats.tobytes())
    return head + len(body).to_bytes(8, "little") + body + tail


def unpack_exceptions(data: bytes, n_rows: int, coded: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Invert pack_exceptions for a chunk of n_rows rows: strictly increasing row indices
    inside the chunk, one float64 each (raw, or `coded`: one lossless stream of exactly n
    float64), and nothing else in the stream."""
    if len(data) < 16:
        raise ContainerError("exception stream: truncated")
    n = int.from_bytes(data[:8], "little")
    blen = int.from_bytes(data[8:16], "little")
    size_ok = 16 + blen < len(data) if coded else 16 + blen + 8 * n == len(data)
    if n > n_rows or not size_ok:
        raise ContainerError(f"exception stream: malformed ({n:,} values in a chunk of "
                             f"{n_rows:,} rows, {len(data):,} bytes)")
    deltas = unpack_codes(data[16 : 16 + blen], n, "exception rows")
    if n and (deltas[0] < 0 or (deltas[1:] <= 0).any()):
        raise ContainerError("exception stream: row indices are not strictly increasing")
    rows = np.cumsum(deltas)
    if n and rows[-1] >= n_rows:
        raise ContainerError(f"exception stream: row {int(rows[-1])} is outside the chunk "
                             f"({n_rows:,} rows)")
    if coded:
        values = decode_column(data[16 + blen:], "<f8", n, "exception values")
    else:
        values = np.frombuffer(data, dtype="<f8", count=n, offset=16 + blen).copy()
    return rows, values
