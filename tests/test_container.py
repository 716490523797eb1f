"""The .balerc container: round trips, checksums, truncation recovery, versions, features."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from balerc.codec.pipeline import compress_lossless, read_container
from balerc.formats.container import (
    MAGIC_END,
    MAGIC_START,
    ContainerReader,
    ContainerWriter,
    RecoveryWarning,
)
from balerc.formats.errors import (
    ChecksumError,
    ContainerError,
    FormatVersionError,
    IncompleteFileError,
    UnsupportedFeatureError,
)


def _write(chunks: list[dict[str, bytes]], close: bool = True) -> bytes:
    buf = io.BytesIO()
    w = ContainerWriter(buf, {"note": "test"})
    for streams in chunks:
        w.write_chunk(streams, rows=len(next(iter(streams.values()))))
    if close:
        w.close({"hello": 1})
    return buf.getvalue()


CHUNKS = [{"a": b"abc", "b": b"0123456789"}, {"a": b"defg", "b": b"xy"}, {"a": b"h", "b": b""}]


def test_write_then_read_equals():
    data = _write(CHUNKS)
    assert data.startswith(MAGIC_START) and data.endswith(MAGIC_END)
    with ContainerReader(data) as r:
        assert r.header["note"] == "test"
        assert r.header["format_version"] == [2, 1]
        assert r.n_chunks == 3 and not r.recovered
        assert r.footer["summary"] == {"hello": 1}
        for i, streams in enumerate(CHUNKS):
            assert r.read_chunk(i) == streams
        assert r.read_chunk(1, ["b"]) == {"b": b"xy"}  # one stream alone
        assert r.verify() == []


def test_flipped_byte_names_chunk_and_stream():
    data = bytearray(_write(CHUNKS))
    with ContainerReader(bytes(data)) as r:
        off = r.chunk(1).streams["b"].offset
    data[off] ^= 0x40
    with ContainerReader(bytes(data)) as r:
        assert r.read_chunk(0) == CHUNKS[0]  # other chunks intact
        with pytest.raises(ChecksumError, match=r"chunk 1, stream 'b'") as exc:
            r.read_chunk(1)
        assert exc.value.chunk == 1 and exc.value.stream == "b"
        assert len(r.verify()) == 1


def test_flipped_byte_in_descriptor_names_chunk():
    data = bytearray(_write(CHUNKS))
    with ContainerReader(bytes(data)) as r:
        off = r.chunk(2).offset + 20
    data[off] ^= 0x01
    with ContainerReader(bytes(data)) as r:
        assert r.read_chunk(0) == CHUNKS[0]
        with pytest.raises(ChecksumError, match="chunk 2"):
            r.read_chunk(2)


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_truncated_file_recovers_complete_chunks(cut):
    full = _write(CHUNKS)
    with ContainerReader(full) as r:
        end_of_chunk1 = r.chunk(1).end
    data = full[: end_of_chunk1 + cut]  # chunk 2 incomplete, no footer
    with pytest.raises(IncompleteFileError, match=r"no footer.*2 complete chunk\(s\), 7 rows.*--recover"):
        ContainerReader(data)
    with pytest.warns(RecoveryWarning, match=r"recovered the first 7 rows \(the total is unknown\) in 2"):
        r = ContainerReader(data, recover=True)
    assert r.recovered and r.n_chunks == 2 and r.recovery.rows == 7
    assert r.read_chunk(1) == CHUNKS[1]


def test_writer_that_never_closed_is_readable():
    data = _write(CHUNKS, close=False)
    with pytest.warns(RecoveryWarning, match="recovered the first 8 rows .* in 3"):
        with ContainerReader(data, recover=True) as r:
            assert r.read_chunk(2) == CHUNKS[2]


def test_not_a_balerc_file_says_what_it_is(tmp_path):
    p = tmp_path / "x.balerc"
    p.write_bytes(b"E1,px1,py1\n1,2,3\n")
    with pytest.raises(ContainerError, match=r"not a \.balerc file.*text file"):
        ContainerReader(p)
    p.write_bytes(b"root\x00\x00\xf4\x1e" + bytes(100))
    with pytest.raises(ContainerError, match="ROOT file"):
        ContainerReader(p)
    p.write_bytes(b"")
    with pytest.raises(ContainerError, match="empty"):
        ContainerReader(p)
    with pytest.raises(ContainerError, match="no such file"):
        ContainerReader(tmp_path / "missing.balerc")


def test_unknown_version_is_refused():
    data = bytearray(_write(CHUNKS))
    struct.pack_into("<H", data, 8, 7)  # major version 7
    with pytest.raises(FormatVersionError, match=r"version 7\.1 is not supported.*reads 1\.x, 2\.x"):
        ContainerReader(bytes(data))



def test_damaged_version_and_cut_preamble_are_called_damage():
    """A version field no balerc ever wrote (a flipped byte) is damage, not a reason to
    upgrade; a file cut inside its preamble says so, not 'starts with X, expected X'."""
    data = bytearray(_write(CHUNKS))
    data[9] ^= 0xFF  # the major version's high byte
    with pytest.raises(ContainerError, match=r"preamble is damaged \(its format version reads"):
        ContainerReader(bytes(data))
    for n in (3, 8, 16):
        with pytest.raises(ContainerError, match=rf"truncated inside the preamble \({n} of"):
            ContainerReader(bytes(data[:n]))
    with pytest.raises(ContainerError, match="not a .balerc file"):
        ContainerReader(b"PK\x03\x04" + bytes(40))

def _preamble_edit(data: bytes, fmt: str, offset: int, value: int, fix: bool) -> bytes:
    """Change a preamble field; with fix, recompute the header checksum as a forger would."""
    from balerc.formats.container import header_checksum

    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    if fix:
        major, minor, _, hlen = struct.unpack_from("<HHII", out, 8)
        xx = header_checksum(bytes(out[:28]), bytes(out[28 : 28 + hlen]), (major, minor))
        struct.pack_into("<Q", out, 20, xx)
    return bytes(out)


def test_unknown_preamble_flags_are_refused():
    data = _write(CHUNKS)
    with pytest.raises(UnsupportedFeatureError, match="preamble flags 0xb"):
        ContainerReader(_preamble_edit(data, "<I", 12, 3 | 8, fix=True))
    with pytest.raises(UnsupportedFeatureError, match="preamble flags 0x3"):  # 1.x had no dict
        ContainerReader(_preamble_edit(data, "<H", 8, 1, fix=True))


@pytest.mark.parametrize("flags", [0, 1, 3 | 8])
def test_preamble_flags_are_covered_by_the_header_checksum(flags):
    """Format 2.1: flipping a flag bit is damage, not a silently different reading."""
    with pytest.raises(ChecksumError, match="header is damaged"):
        ContainerReader(_preamble_edit(_write(CHUNKS), "<I", 12, flags, fix=False))


def test_json_dictionary_is_frozen_and_pays():
    """Format 2's JSON dictionary is part of the format: its bytes may never change."""
    import json

    import xxhash
    import zstandard

    from balerc.formats.container import _dump
    from balerc.formats.json_dictionary import JSON_DICT_V1

    assert len(JSON_DICT_V1) == 1989 and xxhash.xxh64_hexdigest(JSON_DICT_V1) == "da9151031f679969"
    header = {"format": "balerc", "required_features": ["lossless", "quantized", "residual"],
              "schema": {"columns": [{"name": f"c{i}", "kind": "float", "dtype": "<f8",
                                      "codec": "autoencoder"} for i in range(5)]}}
    plain = zstandard.ZstdCompressor(level=9).compress(json.dumps(header, separators=(",", ":")).encode())
    assert len(_dump(header)) < 0.6 * len(plain)


def test_unknown_required_feature_is_refused():
    buf = io.BytesIO()
    w = ContainerWriter(buf, {"required_features": ["lossless", "quantum-entanglement"]})
    w.close()
    with pytest.raises(UnsupportedFeatureError, match="quantum-entanglement"):
        ContainerReader(buf.getvalue())


def test_lossless_roundtrip_bit_exact_with_nan_payloads(mixed_table):
    t = mixed_table
    x = t["x"].copy()
    x[[3, 50]] = [np.nan, np.inf]
    x.view(np.uint64)[7] = 0x7FF8DEADBEEF0001  # a NaN with a payload
    t.columns["x"] = x
    buf = io.BytesIO()
    res = compress_lossless(t, buf, chunk_rows=1000, threads=2)
    assert res.chunks == 3
    back = read_container(buf.getvalue(), threads=2)
    assert back.equals(t)
    assert back.names == t.names
    part = read_container(buf.getvalue(), columns=["label", "idx"], chunks=[2])
    assert part.names == ["label", "idx"]
    assert list(part["idx"]) == list(range(2000, 3000))


def test_lossless_on_real_zmumu(tmp_path):
    from balerc.formats.tableio import read_table
    from conftest import shared_file

    t = read_table(shared_file("uproot-Zmumu.root"))
    out = tmp_path / "z.balerc"
    res = compress_lossless(t, out, chunk_rows=500)
    assert res.ratio > 1.5
    assert read_container(out).equals(t)


def test_format_md_prints_the_json_dictionary():
    """docs/FORMAT.md 1.1 is what a reader in another language copies: it must match."""
    from pathlib import Path

    from balerc.formats.json_dictionary import JSON_DICT_V1

    text = (Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md").read_text()
    block = text.split("### 1.1 The JSON dictionary")[1].split("```")[1]
    assert "".join(block.strip().splitlines()).encode() == JSON_DICT_V1


@pytest.mark.parametrize("threads", [1, 2])
def test_a_damaged_middle_chunk_keeps_the_chunks_before_it(threads):
    """Decoding with recover: chunks after the damaged one may be decoding in parallel
    (workers copy into the output themselves); the table still ends where the damage is,
    and every kept row is the original."""
    import io

    from balerc.codec.bounds import Bound
    from balerc.codec.options import CompressOptions
    from balerc.codec.pipeline import compress_table
    from balerc.codec.reader import read_container
    from balerc.formats.table import Table

    x = np.arange(50_000, dtype=np.float64)
    buf = io.BytesIO()
    compress_table(Table({"x": x}), buf, CompressOptions(bound=Bound.parse("abs:0.5"),
                                                         chunk_rows=5_000))
    data = bytearray(buf.getvalue())
    with ContainerReader(bytes(data)) as r:
        off = r.chunk(4).offset + r.chunk(4).size // 2
    data[off] ^= 0xFF
    with pytest.raises(ChecksumError, match="chunk 4"):
        read_container(bytes(data), threads=threads)
    with pytest.warns(RecoveryWarning, match="chunk 4 is damaged"):
        back = read_container(bytes(data), threads=threads, recover=True)
    assert np.array_equal(back["x"], x[:20_000])
