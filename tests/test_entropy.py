"""The entropy stage (issue 15): pcodec code streams, the cheap and exhaustive choices."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from balerc.codec import packing
from balerc.codec.bounds import Bound
from balerc.codec.coders.grouping import group_members
from balerc.codec.options import CompressOptions
from balerc.codec.pipeline import compress_table, read_container
from balerc.formats import toy
from balerc.formats.container import ContainerReader
from balerc.formats.errors import BalercError, ContainerError, InputError
from balerc.formats.table import Table

pytest.importorskip("pcodec")

ENTROPIES = [
    packing.ZSTD_ONLY,
    packing.Entropy(pcodec=True),
    packing.Entropy(pcodec=True, pcodec32=True),
    packing.Entropy(pcodec=True, pcodec32=True, exhaustive=True, zstd_level=3),
    packing.Entropy(pcodec=False, exhaustive=True, zstd_level=3),
]
codes_st = st.one_of(
    arrays(np.int64, st.integers(0, 3000), elements=st.integers(-(2**40), 2**40)),
    arrays(np.int64, st.integers(0, 20000), elements=st.integers(-3, 3)),
    st.integers(0, 40000).map(lambda n: np.repeat(np.arange(n // 4 + 1), 4)[:n]),
    st.integers(0, 40000).map(lambda n: np.random.default_rng(n).integers(-500, 500, n)),
)


@settings(max_examples=60, deadline=None)
@given(codes=codes_st, which=st.integers(0, len(ENTROPIES) - 1))
def test_every_packing_round_trips(codes, which):
    ent = ENTROPIES[which]
    part = packing.encode_codes(codes, ent)
    stream = packing.finish_codes(part, 3)
    assert np.array_equal(packing.unpack_codes(stream, codes.size), codes)
    assert np.array_equal(packing.decode_codes(*part, codes.size), codes)
    if not ent.pcodec:
        assert part[0] not in packing.PCODEC_HEADS
    if not ent.pcodec32:
        assert part[0] != packing.PCODEC32


def test_large_numeric_streams_choose_pcodec_without_trials(monkeypatch):
    codes = np.random.default_rng(0).normal(0, 300, 100_000).astype(np.int64)
    monkeypatch.setattr(packing, "_zstd_form", None)  # a trial would call it
    head, _ = packing.encode_codes(codes, packing.Entropy(pcodec=True))
    assert head == packing.PCODEC


def test_group_with_pcodec_members_round_trips():
    rng = np.random.default_rng(1)
    arrays_ = [rng.integers(-1000, 1000, 50_000), np.zeros(50_000, np.int64),
               rng.integers(0, 3, 50_000)]
    parts = [packing.encode_codes(a, packing.Entropy(pcodec=True)) for a in arrays_]
    assert parts[0][0] == packing.PCODEC
    back = packing.unpack_group(packing.pack_group(parts), len(parts), 50_000)
    for a, p in zip(arrays_, back, strict=True):
        assert np.array_equal(packing.decode_codes(*p, 50_000), a)


def test_int32_pcodec_where_the_codes_fit_int64_beyond():
    """pcodec-int32: codes within int32 go as int32 (head 0x11), others keep head 0x10;
    both decode to the same int64 codes, and a stream of the other type is refused."""
    ent = packing.Entropy(pcodec=True, pcodec32=True)
    rng = np.random.default_rng(4)
    inside = rng.integers(-1000, 1000, 50_000)
    inside[:2] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max]
    beyond = inside.copy()
    beyond[7] = np.iinfo(np.int32).max + 1
    for codes, head in ((inside, packing.PCODEC32), (beyond, packing.PCODEC)):
        stream = packing.pack_codes(codes, 3, ent)
        assert stream[0] == head
        back = packing.unpack_codes(stream, codes.size)
        assert back.dtype == np.int64 and np.array_equal(back, codes)
        swapped = bytes([packing.PCODEC32 + packing.PCODEC - head]) + stream[1:]
        with pytest.raises(ContainerError, match="pcodec"):
            packing.unpack_codes(swapped, codes.size)


def test_int32_pcodec_is_listed_and_decodes_like_int64():
    """Files list pcodec-int32 only with pcodec; --entropy zstd files list neither; the
    decoded values do not depend on the int32 form."""
    t = _table()
    data = _compress(t, "rel:1e-3", chunk_rows=30_000)
    with ContainerReader(data) as r:
        features = r.header["required_features"]
        meta, streams = r.chunks[0].meta["0"], r.read_chunk(0)  # coder 0's chunk meta
    members = group_members(meta["modes"], meta["grouped"])  # the codes are in one group
    heads = [h for h, _ in packing.unpack_group(streams["qgroup"], len(members), 30_000)]
    assert "pcodec-int32" in features and packing.PCODEC32 in heads
    compat = _compress(t, "rel:1e-3", entropy="zstd")
    with ContainerReader(compat) as r:
        assert not {"pcodec-int32", "pcodec-codes"} & set(r.header["required_features"])
    a, b = read_container(data), read_container(compat)
    for name in t.names:
        assert np.array_equal(a[name], b[name])


def _pcodec_stream(n: int = 5000) -> bytes:
    codes = np.random.default_rng(2).integers(-2000, 2000, n)
    stream = packing.pack_codes(codes, 3, packing.Entropy(pcodec=True))
    assert stream[0] == packing.PCODEC
    return stream


@pytest.mark.parametrize("n", [4999, 5001, 0, 10**9])
def test_pcodec_count_must_match_the_records(n):
    with pytest.raises(ContainerError, match="pcodec"):
        packing.unpack_codes(_pcodec_stream(), n) if n < 10**9 else packing._pcodec_decode(
            _pcodec_stream()[1:], 10**6 + 1)


def test_hostile_pcodec_bytes_end_in_a_typed_error():
    stream = _pcodec_stream()
    rng = np.random.default_rng(3)
    for k in range(600):
        data = bytearray(stream)
        if k % 3 == 0:
            data = data[: rng.integers(1, len(data))]
        else:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(1, len(data))] = rng.integers(0, 256)
        try:
            out = packing.unpack_codes(bytes(data), 5000)
        except BalercError:
            continue
        assert out.shape == (5000,) and out.dtype == np.int64


def _table() -> Table:
    t = toy.jets(30_000, seed=1)
    return Table({n: np.asarray(t[n]) for n in t.names_of_kind("float")})


def _compress(t: Table, bound: str, **kw) -> bytes:
    buf = io.BytesIO()
    kw.setdefault("chunk_rows", 8192)
    compress_table(t, buf, CompressOptions(bound=Bound.parse(bound), **kw))
    return buf.getvalue()


def _chunks(data: bytes) -> list[tuple[str, dict]]:
    with ContainerReader(data) as r:
        return [(json.dumps(c.meta, sort_keys=True), r.read_chunk(i))
                for i, c in enumerate(r.chunks)]


@pytest.mark.parametrize("bound", ["rel:1e-3", "pwrel:5e-4"])
def test_cheap_choice_never_changes_decoded_values(bound):
    t = _table()
    decoded = [read_container(_compress(t, bound, effort=e, entropy=x))
               for e, x in (("cheap", "auto"), ("exhaustive", "auto"), ("cheap", "zstd"))]
    for name in t.names:
        assert np.array_equal(decoded[0][name], decoded[1][name])
        assert np.array_equal(decoded[0][name], decoded[2][name])


@pytest.mark.parametrize("bound, level", [("abs:0.01", None), ("pwrel:1e-3", None),
                                          ("rel:1e-3", 3), ("pwrel:1e-3", 3)])
def test_chunk_bytes_identical_for_1_and_2_threads(bound, level):
    """Also at zstd level 3, where plane blocks are written and short streams ranked at
    the file's own level."""
    t = _table()
    one, two = (_chunks(_compress(t, bound, threads=k, zstd_level=level)) for k in (1, 2))
    assert one == two


def test_feature_is_required_only_by_files_that_may_use_pcodec():
    t = _table()
    for entropy, needs in (("auto", True), ("zstd", False)):
        with ContainerReader(_compress(t, "rel:1e-3", entropy=entropy)) as r:
            assert ("pcodec-codes" in r.header["required_features"]) is needs


def test_effort_and_entropy_are_checked():
    with pytest.raises(InputError, match="effort"):
        CompressOptions(effort="max")
    with pytest.raises(InputError, match="entropy"):
        CompressOptions(entropy="lz4")


def _low_cardinality(n: int = 40_000) -> Table:
    """A float32 column of 17 distinct values on half quantization steps at abs:0.01 (like
    the generated jets' `area` at rel:1e-4), next to a smooth one."""
    rng = np.random.default_rng(4)
    area = ((rng.integers(0, 17, n) + 0.5) * 0.02).astype(np.float32)
    return Table({"area": area, "pt": rng.exponential(30.0, n).astype(np.float32)})


def test_low_cardinality_column_is_a_dictionary_within_the_bound():
    from balerc.cli.analysis.peers import run_peer

    t = _low_cardinality()
    data = _compress(t, "abs:0.01")
    with ContainerReader(data) as r:
        assert "dictionary" in r.header["required_features"]
        modes = [json.loads(m)["0"]["modes"] for m, _ in _chunks(data)]
    assert all(m[0] == "d" for m in modes)
    back = read_container(data)
    assert np.array_equal(back["area"], t["area"])  # a dictionary is exact
    area = Table({"area": t["area"]})
    before = _compress(area, "abs:0.01", entropy="zstd")  # exceptions: half the rows verbatim
    assert len(_compress(area, "abs:0.01")) < 0.5 * len(before)
    peer = run_peer("quant-zstd", np.asarray(t["area"])[:, None], "abs:0.01")
    buf = io.BytesIO()  # one chunk, as the peer: within its container overhead of the peer
    compress_table(Table({"area": t["area"]}), buf, CompressOptions(bound=Bound.parse("abs:0.01")))
    assert len(buf.getvalue()) < peer.compressed_bytes + 1200


def test_coded_exceptions_round_trip():
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(10_000, 3000, replace=False))
    values = rng.choice([0.25, np.nan, np.inf, -1.5], 3000)
    ent = packing.Entropy(pcodec=True, coded_exceptions=True)
    r, v = packing.unpack_exceptions(packing.pack_exceptions(rows, values, 3, ent), 10_000, True)
    assert np.array_equal(r, rows) and np.array_equal(v, values, equal_nan=True)


def test_hostile_dictionary_streams_end_in_a_typed_error():
    from tests.fuzz import fileparts

    data = _compress(_low_cardinality(5000), "abs:0.01")
    good = fileparts.parse(data).chunks[0].payload("dict/0")
    res = fileparts.parse(data).chunks[0].payload("res/0")
    k = int.from_bytes(good[:4], "little")
    forged = [("dict/0", b""), ("dict/0", (10**9).to_bytes(4, "little") + good[4:]),
              ("dict/0", (k - 1).to_bytes(4, "little") + good[4:]), ("dict/0", good[:-3]),
              ("dict/0", (1).to_bytes(4, "little") + packing.pack_codes(np.zeros(1), 3)),
              ("res/0", res[:-2])]
    for name, bad in forged:
        parts = fileparts.parse(data)
        parts.chunks[0].set_payload(name, bad)
        with pytest.raises(BalercError):
            read_container(fileparts.write(parts))


@settings(max_examples=40, deadline=None)
@given(y=arrays(np.float64, st.integers(1, 500),
                elements=st.floats(-1e30, 1e30, allow_nan=False).filter(lambda v: v != 0)))
def test_log_codes_fast_path_matches_the_general_one(y):
    from balerc.codec.exactmath import log2
    from balerc.codec.logdomain import log_codes, log_delta

    codes, low, r = log_codes(y, 5e-4)
    k = np.rint(log2(np.abs(y)) / log_delta(5e-4)).astype(np.int64)  # the general formula
    assert low == int(k.min())
    assert np.array_equal(codes, np.where(np.signbit(y), -1, 1) * (k - low + 1))


LOSSLESS_DTYPES = ["<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"]


@settings(max_examples=80, deadline=None)
@given(dtype=st.sampled_from(LOSSLESS_DTYPES), n=st.integers(0, 20_000),
       seed=st.integers(0, 2**32 - 1), kind=st.integers(0, 3), exhaustive=st.booleans())
def test_lossless_pcodec_is_bit_exact(dtype, n, seed, kind, exhaustive):
    from balerc.codec import lossless

    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    raw = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8)  # any bits: NaN payloads
    if kind == 1:
        raw = np.repeat(raw[: dt.itemsize * 8], n)[: n * dt.itemsize]  # runs
    values = raw.view(dt) if kind != 2 else np.sort(raw.view(dt))
    if kind == 3:
        values = np.arange(n).astype(dt)
    stream = lossless.encode_column(values, 3, pcodec=True, exhaustive=exhaustive)
    back = lossless.decode_column(stream, dt, n)
    assert back.dtype == dt and back.tobytes() == values.tobytes()


def test_lossless_pcodec_stream_is_checked():
    from balerc.codec import lossless

    values = np.random.default_rng(6).normal(size=30_000)
    stream = lossless.encode_column(values, 3, pcodec=True)
    assert stream[0] == lossless.PCODEC
    for n, dt in ((29_999, "<f8"), (30_001, "<f8"), (30_000, "<f4"), (30_000, "<i8"),
                  (30_000, "|b1")):
        with pytest.raises(ContainerError):
            lossless.decode_column(stream, dt, n)
    rng = np.random.default_rng(7)
    for k in range(300):
        data = bytearray(stream)
        data[rng.integers(1, len(data))] ^= 1 << int(rng.integers(0, 8))
        if k % 2:
            data = data[: rng.integers(1, len(data))]
        try:
            out = lossless.decode_column(bytes(data), "<f8", 30_000)
        except BalercError:
            continue
        assert out.shape == (30_000,)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), eps=st.sampled_from([1e-2, 1e-3, 5e-4, 1e-5]),
       spread=st.sampled_from([1e-6, 1e-3, 0.3, 30.0]))
def test_mode_s_codes_hold_the_finer_bound(seed, eps, spread):
    """Mode s: |p| x 2^(c delta_r) with c from the ratio |y|/|p| holds E_r on every usable
    row (rows the ratio cannot serve are left to the caller's 'alone' path)."""
    from balerc.codec.logdomain import log_delta, rescale, scaled_codes

    rng = np.random.default_rng(seed)
    n = 3000
    p = rng.lognormal(0, 3, n) * rng.choice([-1.0, 1.0], n)
    y = p * np.exp(rng.normal(0, spread, n)) * np.where(rng.random(n) < 0.05, -1.0, 1.0)
    p[:5] = [0.0, 1e-310, 1e300, -1e-300, 5e-324]
    ay, ap = np.abs(y), np.abs(p)
    rel = ap > 0
    dr, d = log_delta(eps), log_delta(eps)
    codes, usable = scaled_codes(ay, ap, rel, dr)
    flag = (np.signbit(y) != np.signbit(p)).view(np.uint8)
    r = rescale(p, np.where(usable, codes, 0.0), flag, dr, d)
    ok = usable & np.isfinite(r)
    assert np.all(np.abs(y[ok] - r[ok]) <= eps * ay[ok] * (1 + 1e-12))
    assert np.array_equal(np.signbit(r[ok & (r != 0)]), np.signbit(y[ok & (r != 0)]))


def test_mode_s_table_is_the_elementwise_exp2_and_hostile_input_is_harmless():
    from balerc.codec.logdomain import exp2, exp2_steps, rescale

    codes = np.random.default_rng(2).integers(-500, 500, 20_000)
    delta = 0.0014
    assert np.array_equal(exp2_steps(codes, delta), exp2(codes * delta))
    wide = np.array([-(2**62), 0, 2**62, 7], dtype=np.int64)  # no table: elementwise
    assert exp2_steps(wide, delta).shape == (4,)
    n = 64
    rng = np.random.default_rng(3)
    p = rng.normal(0, 1e3, n)
    p[:3] = [0.0, 1e308, -1e-320]
    hostile = rng.integers(-(2**62), 2**62, n)
    flags = rng.integers(0, 256, n).astype(np.uint8)  # a damaged flag stream
    with np.errstate(all="ignore"):
        out = rescale(p, hostile, flags, delta, delta)
    assert out.shape == (n,) and out.dtype == np.float64


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), finite_only=st.booleans())
def test_whole_chunk_quantization_is_the_per_column_one(seed, finite_only):
    """_quantize_all (every column of a chunk, work arrays reused) gives _quantize's bits:
    codes and reconstruction, with -0.0, NaN, Inf and codes beyond 2^52 in the chunk, and
    the codes' extremes it derives from the values' range are the codes' own."""
    from balerc.codec.coders.autoencoder import _MAX_CODE, _quantize, _quantize_all
    from balerc.codec.scratch import Scratch

    rng = np.random.default_rng(seed)
    Y = rng.normal(0, 10.0 ** rng.integers(-3, 6), (4, 500))
    Y[0, :3] = [-0.0, 0.0, 1e300]
    if not finite_only:
        Y[1, 5:8] = [np.nan, np.inf, -np.inf]
    e = 10.0 ** rng.uniform(-6, 0, 4)
    finite = np.isfinite(Y)
    recon = np.empty_like(Y)
    codes, lows, highs = _quantize_all(Y, e, finite, finite.all(axis=1), recon, Scratch())
    assert np.array_equal(lows, codes.min(axis=1))  # from the values' range where finite
    assert np.array_equal(highs, codes.max(axis=1))
    for j in range(4):
        c, r, _, _ = _quantize(Y[j], 0.0, float(e[j]), finite[j], bool(finite[j].all()))
        assert np.array_equal(codes[j], c)
        assert recon[j].tobytes() == r.tobytes()
        step = 2.0 * float(e[j])  # the formula itself, written out
        ref = np.rint((np.where(finite[j], Y[j], 0.0) - 0.0) / step)
        ref[~(np.abs(ref) <= _MAX_CODE)] = 0.0
        assert np.array_equal(c, ref.astype(np.int64))
        assert r.tobytes() == (ref * step + 0.0).tobytes()


def test_flip_sign_is_a_masked_negative_bit_for_bit():
    """Mode r/s reconstructions flip signs with integer XOR: the same bits as
    np.negative(where=...) for every value, NaN payloads and infinities included."""
    from balerc.codec.logdomain import flip_sign

    rng = np.random.default_rng(9)
    x = rng.normal(0, 1e3, 4096)
    x[:6] = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0]
    mask = rng.random(4096) < 0.5
    mask[:6] = True
    want = x.copy()
    np.negative(want, where=mask, out=want)
    flip_sign(x, mask)
    assert x.view(np.uint64).tolist() == want.view(np.uint64).tolist()


@pytest.mark.parametrize("level", [1, 3, 19])
def test_the_files_zstd_level_holds_for_every_code_stream(monkeypatch, level):
    """A small table's streams are coded (and ranked) at the file's zstd level, not above:
    --zstd-level 3 is the fast choice for small tables; the default 19 is unchanged."""
    from balerc.formats import zstd_contexts

    used: list[int] = []
    real = zstd_contexts.compressor

    def spy(level: int):  # every code stream's compressor comes from here
        used.append(level)
        return real(level)

    monkeypatch.setattr(zstd_contexts, "compressor", spy)
    t = toy.dimuon(3000, seed=3)
    t = Table({n: t[n] for n in t.names_of_kind("float")})
    data = _compress(t, "rel:1e-3", zstd_level=level, chunk_rows=3000)
    assert used and max(used) == level  # every code stream: at the level, or ranked at 1
    monkeypatch.undo()
    back = read_container(data)
    for name in t.names:
        assert np.all(np.abs(back[name] - t[name]) <= 1e-3 * np.ptp(t[name]) * (1 + 1e-12))


def test_scratch_arrays_are_per_thread_and_follow_the_shape():
    """Reused work arrays: the same array for the same name and shape in one thread, a
    different one in another thread (no sharing between encoder threads), a new one when
    the shape or dtype changes (the last, shorter chunk)."""
    import threading

    from balerc.codec.scratch import Scratch

    ws = Scratch()
    a = ws.array("Y", (3, 10))
    assert ws.array("Y", (3, 10)) is a
    assert ws.array("Y", (3, 4)).shape == (3, 4) and ws.array("Y", (3, 4), bool).dtype == bool
    other: list[np.ndarray] = []
    th = threading.Thread(target=lambda: other.append(ws.array("Y", (3, 10))))
    th.start()
    th.join()
    assert other[0] is not a and not np.shares_memory(other[0], a)


def test_zstd_contexts_are_per_thread_and_forget_nothing_that_changes_the_output():
    """A reused compressor gives the bytes a new one gives, whatever it compressed before
    (the chunks stay a function of their data, on any thread); each thread has its own;
    levels above MAX_CACHED_LEVEL are not kept (their tables stay allocated)."""
    import threading

    import zstandard

    from balerc.formats import zstd_contexts as zc

    rng = np.random.default_rng(3)
    big = rng.integers(0, 40, 1 << 20).astype(np.uint8).tobytes()
    small = rng.integers(0, 7, 5000).astype(np.uint8).tobytes()
    for level in (1, 3, zc.MAX_CACHED_LEVEL):
        c = zc.compressor(level)
        assert zc.compressor(level) is c
        c.compress(big)
        assert c.compress(small) == zstandard.ZstdCompressor(level=level).compress(small)
    assert zc.compressor(zc.MAX_CACHED_LEVEL + 1) is not zc.compressor(zc.MAX_CACHED_LEVEL + 1)
    d = zc.decompressor()
    assert d is zc.decompressor() and d.decompress(zc.compressor(3).compress(big)) == big
    other: list[object] = []
    th = threading.Thread(target=lambda: other.extend([zc.compressor(3), zc.decompressor()]))
    th.start()
    th.join()
    assert other[0] is not zc.compressor(3) and other[1] is not d


@settings(max_examples=40, deadline=None)
@given(ranges=st.lists(st.tuples(st.integers(-3000, 3000), st.integers(0, 3000)),
                       min_size=1, max_size=6),
       delta=st.sampled_from([0.0014, 0.00071, 1e-3 / 3]))
def test_remembered_exp2_tables_are_the_elementwise_values(ranges, delta):
    """exp2_range grows its per-thread table at either end and forgets it past the budget;
    every slice it returns equals exactmath's elementwise exp2 bit for bit, and so do
    unlog (mode g) and exp2_steps (mode s) built on it."""
    from balerc.codec import logdomain
    from balerc.codec.logdomain import exp2, exp2_range, exp2_steps, unlog

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logdomain, "MAX_TABLE_ENTRIES", 4000)  # the forgetting and too-wide paths
        mp.setattr(logdomain._TABLES, "tables", {})  # this thread's tables, from empty
        for k, (lo, width) in enumerate(ranges):
            d = delta * (1 + k % 2)  # two deltas share the budget
            want = exp2(np.arange(lo, lo + width + 1, dtype=np.int64) * d)
            assert exp2_range(lo, lo + width, d).tobytes() == want.tobytes()
            assert sum(len(t) for _, t in logdomain._TABLES.tables.values()) <= 4000
    rng = np.random.default_rng(len(ranges))
    codes = rng.integers(-900, 900, 5000)
    codes[:3] = 0
    low = int(ranges[0][0])
    want = np.where(codes == 0, 0.0, exp2((np.abs(codes) - 1 + low) * delta))
    assert unlog(codes, low, delta).tobytes() == np.copysign(want, codes).tobytes()
    assert exp2_steps(codes, delta).tobytes() == exp2(codes * delta).tobytes()
    view = exp2_range(0, 10, delta)
    with pytest.raises(ValueError):
        view[0] = 1.0  # shared between calls: read-only


def test_a_block_per_byte_plane_is_one_standard_frame_and_smaller():
    """compress_planes: below level 16 each byte plane of a shuffled stream ends a zstd
    block (own entropy tables); the result is one frame declaring its size, which any zstd
    reader (bounded.decompress here) inflates to the same bytes; at 16+ it is zstd's own."""
    import zstandard

    from balerc.codec.lossless import compress_planes, shuffle_bytes
    from balerc.formats import bounded

    rng = np.random.default_rng(9)
    codes = np.abs(rng.normal(0, 3000, 65_536)).astype("<u2")  # a noisy low, a skewed high byte
    data = shuffle_bytes(codes)
    for level in (1, 3, 9):
        planes = compress_planes(data, 2, level)
        plain = zstandard.ZstdCompressor(level=level).compress(data)
        assert zstandard.get_frame_parameters(planes).content_size == len(data)
        assert bounded.decompress(planes, "test", exact=len(data)) == data
        assert len(planes) < 0.97 * len(plain)
    top = zstandard.ZstdCompressor(level=19).compress(data)
    assert compress_planes(data, 2, 19) == top
    assert compress_planes(data, 2, 3, stored_at=19) == zstandard.ZstdCompressor(level=3).compress(data)
    assert compress_planes(data[:100], 2, 3) == zstandard.ZstdCompressor(level=3).compress(data[:100])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 20_000), kind=st.sampled_from(
    ["noise", "sorted", "runs", "even"]))
def test_code_stats_of_a_chunk_are_each_streams_own(seed, n, kind):
    """code_stats over an (F, n) array gives each row the numbers the per-stream passes
    compute (the sample's repeats, spread, largest step, gcd; the extremes), and the
    encoded streams are the same with the stats handed in or computed inside."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-300, 300, (3, n))
    if kind == "sorted":
        codes = np.sort(codes, axis=1)
    elif kind == "runs":
        codes = np.repeat(codes[:, : n // 4 + 1], 4, axis=1)[:, :n]
    elif kind == "even":
        codes = 6 * codes + 2
    lows, highs = codes.min(axis=1), codes.max(axis=1)
    stats = packing.code_stats(codes, lows, highs)
    listed = packing.code_stats(list(codes))  # streams apart: the same sample numbers
    assert [(a.repeats, a.spread, a.max_step, a.gcd) for a in listed] == [
        (a.repeats, a.spread, a.max_step, a.gcd) for a in stats]
    assert all(a.lo is None and a.hi is None for a in listed)
    ent = packing.Entropy(pcodec=True, pcodec32=True)
    for j, s_ in enumerate(stats):
        sample = codes[j, : packing._SAMPLE]
        d = np.diff(sample)
        assert s_.repeats == np.count_nonzero(d == 0)
        assert s_.spread == int(sample.max()) - int(sample.min())
        assert s_.max_step == int(np.abs(d).max())
        assert s_.gcd == int(np.gcd.reduce(sample - sample.min()))
        assert (s_.lo, s_.hi) == (0, int(highs[j] - lows[j]))
        shifted = codes[j] - lows[j]
        assert packing.encode_codes(shifted, ent, s_) == packing.encode_codes(shifted, ent)
        for e in (ent, packing.ZSTD_ONLY, packing.Entropy(pcodec=True, exhaustive=True)):
            # int32 codes (the rel path's shifted codes) code as their int64 values do
            assert packing.encode_codes(shifted.astype(np.int32), e) == packing.encode_codes(
                shifted, e)


@pytest.mark.parametrize("large", [True, False])
def test_grouping_asks_for_raw_parts_only_when_it_tries_a_group(large):
    """A mode s column's flags are coded as integer codes only for a qgroup frame: on a
    chunk too large to try one (CHEAP_GROUP_BYTES) no raw part is asked for, and the
    answer is the separate streams, as when every part was made."""
    from balerc.codec.coders.grouping import choose_grouping

    rng = np.random.default_rng(3)
    asked: list[bool] = []
    parts = {sid: packing.encode_codes(rng.integers(-40, 40, 5000))
             for sid in ("res/0", "res/1", "sign/1")}

    def member(j: int, role: str, with_part: bool):
        asked.append(with_part)
        sid = f"{role}/{j}"
        stored = bytes(400_000) if large else packing.finish_codes(parts[sid])
        return sid, parts[sid] if with_part else None, stored

    version, frame, members = choose_grouping(["g", "s"], member, 3)
    assert any(asked) is not large
    if large:
        assert (version, frame) == (0, None)
        assert [m[0] for m in members] == ["res/0"]  # version 1's members, stored as they are
    else:
        assert version == 2 and frame is not None  # one frame: fewer headers and entries
        assert [m[0] for m in members] == ["res/0", "res/1", "sign/1"]


def test_tiny_streams_take_their_form_without_trial_compressions(monkeypatch):
    """A chunk's 1-3 exception rows cost ~0.25 ms each in trials for the odd byte: streams
    of under TINY_STREAM codes (columns of under TINY_ROWS values) are formed from
    statistics, round-trip, and --effort exhaustive still tries every form."""
    from balerc.codec import lossless

    codes = np.array([5, 70_000, -3, 12])
    values = np.array([1.5, -2.25, np.nan])

    def no_trials(level: int):
        raise AssertionError("a trial compression for a tiny stream")

    with monkeypatch.context() as m:
        m.setattr(packing.zstd_contexts, "compressor", no_trials)
        head, payload = packing.encode_codes(codes, packing.Entropy(pcodec=True))
    assert packing.decode_codes(head, payload, len(codes)).tolist() == codes.tolist()
    stream = lossless.encode_column(values, 19)
    assert stream[0] == lossless.RAW
    back = lossless.decode_column(stream, np.float64, len(values), "test")
    assert back.tobytes() == values.tobytes()
    every = packing.encode_codes(codes, packing.Entropy(pcodec=True, exhaustive=True))
    assert packing.decode_codes(*every, len(codes)).tolist() == codes.tolist()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), narrow=st.booleans(), offset=st.sampled_from(
    [0, 7, -123_456, 2**40, -(2**53), 2**53, 2**53 - 1, -(2**53) + 1, 2**52 + 1]))
def test_mode_q_decoded_in_place_is_the_expression_bit_for_bit(seed, narrow, offset):
    """The mode q decoder sums codes and offset (in float64 for int32 codes: both exact, the
    sum rounded once) and scales them where the column is kept: the same bits as
    `(codes + offset) * (2.0 * e)` with the codes widened to int64 first, whether the stream
    held int32 or int64 codes, for offsets up to 2^53 (sums that round, ties included)."""
    from balerc.codec.coders.wiremodes import DecodeContext, _quantized

    rng = np.random.default_rng(seed)
    codes = rng.integers(-(2**31), 2**31 - 1, 300).astype(np.int32 if narrow else np.int64)
    e = float(10.0 ** rng.uniform(-9, 3))
    out = np.full(300, np.nan)
    base = dict(codes=lambda j: codes.astype(np.int64), flags=lambda j: None,
                offsets=[offset], prediction=lambda j: None, abs_bound=lambda j: e,
                drift=lambda j: 0.0, eps=None, rel_eps=None)
    got = _quantized(DecodeContext(**base, stored_codes=lambda j: codes, out=lambda j: out), 0)
    ref = _quantized(DecodeContext(**base), 0)
    assert got is out
    assert got.tobytes() == ref.tobytes()
    assert ref.tobytes() == ((codes.astype(np.int64) + offset) * (2.0 * e)).tobytes()


@pytest.mark.parametrize("bound", ["rel:1e-3", "pwrel:1e-3"])
def test_decode_into_the_callers_arrays_gives_decodes_bits(bound):
    """AECoder.decode(into=...) casts each column straight into the given arrays (the
    reader's output slices) and returns those arrays: the same bits as a plain decode."""
    from balerc.codec.reader import coders_from_header

    with ContainerReader(_compress(_table(), bound)) as r:
        (coder,) = coders_from_header(r.header)
        assert coder.stream_prefix == ""
        info = r.chunk(0)
        streams = r.read_chunk(0)
        meta = info.meta.get("0", {})
        plain = coder.decode(streams, info.rows, meta)
        into = {n: np.empty(info.rows, dtype=plain[n].dtype) for n in coder.columns[:3]}
        got = coder.decode(streams, info.rows, meta, into=into)
    for n in coder.columns:
        assert got[n].tobytes() == plain[n].tobytes()
    assert all(got[n] is into[n] for n in into)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), low=st.sampled_from([-(2**40), -5000, 0, 17, 2**40]),
       spread=st.sampled_from([50, 3_000_000]))
def test_unlog_of_int32_codes_is_unlog_of_their_int64_values(seed, low, spread):
    """The encoder's mode g codes are int32 where the delta bounds them (pcodec takes them
    uncopied); its reconstruction must be the decoder's, which reads int64 codes: in the
    table path and in the elementwise one (wide codes), with offsets far beyond int32."""
    from balerc.codec.logdomain import _INT32_DELTA, log_codes, log_delta, unlog

    rng = np.random.default_rng(seed)
    codes = rng.integers(-spread, spread, 40)
    codes[codes == 0] = 1
    delta = log_delta(5e-4) if abs(low) < 2**20 else 1e-9
    with np.errstate(over="ignore", under="ignore"):
        a = unlog(codes.astype(np.int32), low, delta)
        b = unlog(codes, low, delta)
    assert a.tobytes() == b.tobytes()
    assert log_delta(5e-4) > _INT32_DELTA
    assert log_codes(rng.normal(0, 1e3, 100), 5e-4)[0].dtype == np.int32
    assert log_codes(rng.normal(0, 1e3, 100), 1e-9)[0].dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 9),
       n=st.sampled_from([1, 7, 300, 4096, 5000]), zeros=st.booleans(), nans=st.booleans(),
       eps=st.sampled_from([1e-5, 5e-4, 0.05]))
def test_sampled_log_entropy_is_each_rows_own(seed, rows, n, zeros, nans, eps):
    """The mode g estimate of several predicted columns at once (one set of passes, codes
    against the lowest k of all rows) equals, bit for bit, the order-0 entropy of each
    row's own log_codes: zeros, NaN, both signs, rows with nothing valid."""
    from balerc.codec.logdomain import log_codes, sampled_log_entropy

    rng = np.random.default_rng(seed)
    S = rng.lognormal(rng.uniform(-20, 20, (rows, 1)), rng.uniform(0.01, 4, (rows, 1)),
                      (rows, n)) * rng.choice([-1.0, 1.0], (rows, n))
    if zeros:
        S[rng.random((rows, n)) < 0.2] = 0.0
    if nans:
        S[rng.random((rows, n)) < 0.1] = np.nan
        S[-1] = np.nan
    fin = np.isfinite(S)
    got = sampled_log_entropy(S, fin, eps)
    for i in range(rows):
        p = np.unique(log_codes(S[i], eps, fin[i])[0], return_counts=True)[1] / n
        assert got[i] == -(p * np.log2(p)).sum()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 6), n=st.sampled_from([1, 5, 300, 4096]),
       span=st.sampled_from([1, 3, 1000, 2**40]), narrow=st.booleans())
def test_row_entropies_is_each_rows_own(seed, rows, n, span, narrow):
    """The per-row order-0 entropy of a whole (m, n) sample in one sort equals, bit for bit,
    each row's own np.unique histogram sum: any span, int32 and int64 rows, one value."""
    from balerc.codec.packing import row_entropies

    rng = np.random.default_rng(seed)
    s = rng.integers(-span, span + 1, (rows, n))
    if narrow:
        s = np.clip(s, -2**31, 2**31 - 1).astype(np.int32)
    got = row_entropies(s)
    assert got.shape == (rows,)
    for i in range(rows):
        p = np.unique(s[i], return_counts=True)[1] / n
        assert got[i] == -(p * np.log2(p)).sum()


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("codes", [[0, 0, 0], [-5, -1, -7], [3, 0, -3, 1], [], [-1, 1]])
def test_unlog_signed_table_is_copysign_of_the_elementwise_values(codes, dtype):
    """unlog's one-gather table (negative codes, zeros, one code each side, none) gives the
    bits of copysign(exp2(..), c) with +0.0 for code 0, written into `out` when given."""
    from balerc.codec.logdomain import exp2, log_delta, unlog

    c = np.array(codes, dtype=dtype)
    delta, low = log_delta(5e-4), -1234
    want = np.copysign(np.where(c == 0, 0.0, exp2((np.abs(c).astype(np.int64) - 1 + low) * delta)),
                       c)
    out = np.full(len(c), np.nan)
    got = unlog(c, low, delta, out)
    assert got is out and got.tobytes() == want.tobytes()
    assert unlog(c, low, delta).tobytes() == want.tobytes()
