"""A .balerc file taken apart into editable parts, and written back with fixed checksums.

`parse(data)` splits a (valid) file into preamble fields, the header record, attachments,
chunk records (descriptor JSON + stream payloads), the footer record and the trailer.
`write(parts)` lays it out again and recomputes everything a reader checks: the stream
entries ``[name, size, xxh64_hex]`` of each descriptor, the header's attachment entries,
the footer's chunk offsets/sizes/rows, every record xxh64 (over the stored, compressed
bytes) and the header checksum, which for format >= 2.1 also covers preamble bytes 8..20
(major, minor, flags, header length). A record whose JSON object was not edited keeps its
stored bytes, so parse + write of an untouched file gives the same bytes.

Mutators edit the parts (JSON objects, payloads, chunk order) and switch off single fixes
(``fix_streams``, ``fix_attachments``, ``fix_footer``) or override a checksum to produce
files that are inconsistent in exactly one way.
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import xxhash
import zstandard

from balerc.formats import container as _container
from balerc.formats.json_dictionary import JSON_DICT_V1

MAGIC_START = b"\x89BLR\r\n\x1a\n"
MAGIC_END = b"\x89BLRCEND"
CHUNK_MARK = b"BCHK"
FOOTER_MARK = b"BFTR"
PREAMBLE = struct.Struct("<8sHHIIQ")  # magic, major, minor, flags, header_len, header_xxh64
PREAMBLE_FIELDS = struct.Struct("<HHII")  # preamble bytes 8..20: what 2.1 checksums too
RECORD = struct.Struct("<4sIQ")  # mark, json_len, json_xxh64
TRAILER = struct.Struct("<Q8s")  # footer_offset, MAGIC_END
FLAG_ZSTD_JSON = 1
FLAG_JSON_DICT = 2
_DICT = zstandard.ZstdCompressionDict(JSON_DICT_V1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
_LOAD_LIMIT = 1 << 28  # parse() is for seeds: refuse to inflate a JSON record beyond this


def xxh64_hex(data: bytes) -> str:
    """The 16-digit lower-case hex xxh64 (seed 0) used in descriptors and the header."""
    return xxhash.xxh64_hexdigest(data)


def xxh64_int(data: bytes, seed: int = 0) -> int:
    """The xxh64 as the u64 stored in preambles and record headers (2.1 seeds descriptor
    and footer checksums with the header checksum)."""
    return xxhash.xxh64_intdigest(data, seed)


def header_checksum(major: int, minor: int, flags: int, header: bytes) -> int:
    """The preamble's header_xxh64: 2.1 on also covers major, minor, flags, header length."""
    if (major, minor) >= (2, 1):
        return xxh64_int(PREAMBLE_FIELDS.pack(major, minor, flags, len(header)) + header)
    return xxh64_int(header)


def canon(obj: Any) -> str:
    """A canonical text of a JSON object (to see whether a mutator edited it)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=True, default=repr)


def dump_json(obj: Any, flags: int) -> bytes:
    """Stored bytes of a JSON object under `flags`: the container writer's own `_dump`."""
    return _container._dump(obj, flags)


def compress_json_text(text: bytes, flags: int) -> bytes:
    """Stored bytes of raw JSON text (any bytes), compressed as the writer would."""
    fast = len(text) > 1 << 18  # huge crafted texts: a fast level, same format
    if flags & FLAG_JSON_DICT:
        cctx = zstandard.ZstdCompressor(level=3 if fast else 19, dict_data=_DICT,
                                        write_dict_id=False)
        return cctx.compress(text)
    if flags & FLAG_ZSTD_JSON:
        return zstandard.ZstdCompressor(level=3 if fast else 9).compress(text)
    return text


def load_json(stored: bytes, flags: int) -> Any:
    """Parse stored record bytes (seeds only: inflation capped at 256 MiB)."""
    if flags & (FLAG_ZSTD_JSON | FLAG_JSON_DICT):
        dctx = zstandard.ZstdDecompressor(dict_data=_DICT if flags & FLAG_JSON_DICT else None)
        with dctx.stream_reader(stored) as reader:
            text = reader.read(_LOAD_LIMIT + 1)
        if len(text) > _LOAD_LIMIT:
            raise ValueError("JSON record inflates beyond the parse limit")
        return json.loads(text)
    return json.loads(stored)


@dataclass
class JsonRecord:
    """A JSON record: the object, its stored bytes, and optional verbatim overrides."""

    obj: Any
    stored: bytes
    text: bytes | None = None  # store this raw JSON text (compressed per flags) instead of obj
    raw_stored: bytes | None = None  # store these bytes verbatim
    orig: str = ""

    @classmethod
    def load(cls, stored: bytes, flags: int) -> JsonRecord:
        obj = load_json(stored, flags)
        return cls(obj, bytes(stored), orig=canon(obj))

    def encode(self, flags: int, obj: Any = None) -> bytes:
        """Stored bytes: an override, the original bytes if unedited, else a fresh dump."""
        if self.raw_stored is not None:
            return self.raw_stored
        if self.text is not None:
            return compress_json_text(self.text, flags)
        obj = self.obj if obj is None else obj
        if canon(obj) == self.orig:
            return self.stored
        return dump_json(obj, flags)


@dataclass
class Chunk:
    """A chunk record: descriptor and stream payloads (``[name, bytes]`` in order)."""

    desc: JsonRecord
    streams: list[list[Any]]
    mark: bytes = CHUNK_MARK
    checksum: int | None = None  # stored descriptor xxh64; None: recompute
    fix_streams: bool = True  # rewrite the descriptor's stream entries from `streams`

    @property
    def rows(self) -> int:
        d = self.desc.obj
        r = d.get("rows") if isinstance(d, dict) else None
        return r if isinstance(r, int) and not isinstance(r, bool) else 0

    def payload(self, name: str) -> bytes:
        for n, data in self.streams:
            if n == name:
                return data
        raise KeyError(name)

    def set_payload(self, name: str, data: bytes) -> None:
        for entry in self.streams:
            if entry[0] == name:
                entry[1] = data
                return
        raise KeyError(name)


@dataclass
class FileParts:
    """Everything in a .balerc file; `write` lays it out with every checksum fixed."""

    major: int
    minor: int
    flags: int
    header: JsonRecord
    attachments: list[list[Any]]  # [name, bytes]
    chunks: list[Chunk]
    footer: JsonRecord | None
    magic: bytes = MAGIC_START
    end_magic: bytes = MAGIC_END
    header_xxh64: int | None = None  # override the preamble checksum
    header_len: int | None = None  # override the preamble's header length
    footer_xxh64: int | None = None
    footer_offset: int | None = None  # override the trailer's footer offset
    gap: bytes = b""  # bytes between the last chunk and the footer
    tail: bytes = b""  # bytes after the trailer (or after the last chunk without a footer)
    fix_attachments: bool = True
    fix_footer: bool = True
    regions: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def copy(self) -> FileParts:
        return copy.deepcopy(self)

    def row_starts(self) -> list[int]:
        starts, total = [], 0
        for c in self.chunks:
            starts.append(total)
            total += c.rows
        return starts

    def renumber(self) -> None:
        """Make descriptor "index" (and "first_row" where present or 2.1+) consistent."""
        for i, (c, start) in enumerate(zip(self.chunks, self.row_starts(), strict=True)):
            if isinstance(c.desc.obj, dict):
                c.desc.obj["index"] = i
                if "first_row" in c.desc.obj or self.version >= (2, 1):
                    c.desc.obj["first_row"] = start

    def upgrade_to_21(self) -> None:
        """Make this a format 2.1 file (descriptors get first_row; checksum rule 2.1)."""
        self.major, self.minor = 2, 1
        if isinstance(self.header.obj, dict) and "format_version" in self.header.obj:
            self.header.obj["format_version"] = [2, 1]
        for c, start in zip(self.chunks, self.row_starts(), strict=True):
            if isinstance(c.desc.obj, dict) and "first_row" not in c.desc.obj:
                items = list(c.desc.obj.items())
                pos = next((k + 1 for k, (key, _) in enumerate(items) if key == "index"), 0)
                items.insert(pos, ("first_row", start))
                c.desc.obj = dict(items)


# ------------------------------------------------------------------------------ parse
def parse(data: bytes) -> FileParts:
    """Split a well-formed .balerc file into parts (raises ValueError on a damaged one)."""
    data = bytes(data)
    if len(data) < PREAMBLE.size or data[:8] != MAGIC_START:
        raise ValueError("not a .balerc file")
    magic, major, minor, flags, hlen, _ = PREAMBLE.unpack_from(data, 0)
    regions = [(8, 2, "major"), (10, 2, "minor"), (12, 4, "flags"), (16, 4, "header_len"),
               (20, 8, "header_xxh64")]
    pos = PREAMBLE.size + hlen
    header = JsonRecord.load(data[PREAMBLE.size : pos], flags)
    attachments: list[list[Any]] = []
    for name, size, _xx in (header.obj.get("attachments") or []):
        attachments.append([name, data[pos : pos + int(size)]])
        pos += int(size)
    end = len(data)
    footer = None
    foot_off = end
    if data.endswith(MAGIC_END) and end - TRAILER.size >= pos:
        foot_off = TRAILER.unpack_from(data, end - TRAILER.size)[0]
        regions.append((end - TRAILER.size, 8, "footer_offset"))
        mark, flen, _ = RECORD.unpack_from(data, foot_off)
        if mark != FOOTER_MARK:
            raise ValueError("trailer does not point at a footer")
        regions.append((foot_off, RECORD.size, "footer_record"))
        fstart = foot_off + RECORD.size
        footer = JsonRecord.load(data[fstart : fstart + flen], flags)
    chunks = []
    while pos + RECORD.size <= foot_off and data[pos : pos + 4] == CHUNK_MARK:
        chunk, nxt = _parse_chunk(data, pos, flags)
        regions.append((pos, RECORD.size, f"chunk_record_{len(chunks)}"))
        chunks.append(chunk)
        pos = nxt
    if pos != foot_off:
        raise ValueError(f"unparsed bytes between offset {pos} and the footer at {foot_off}")
    return FileParts(major, minor, flags, header, attachments, chunks, footer, magic=magic,
                     regions=regions)


def _parse_chunk(data: bytes, pos: int, flags: int) -> tuple[Chunk, int]:
    _, dlen, _ = RECORD.unpack_from(data, pos)
    dstart = pos + RECORD.size
    desc = JsonRecord.load(data[dstart : dstart + dlen], flags)
    p = dstart + dlen
    streams = []
    for name, size, _xx in desc.obj["streams"]:
        streams.append([name, data[p : p + int(size)]])
        p += int(size)
    return Chunk(desc, streams), p


# ------------------------------------------------------------------------------ write
def _fixed_header(parts: FileParts) -> Any:
    obj = parts.header.obj
    has = isinstance(obj, dict) and (bool(parts.attachments) or "attachments" in obj)
    if parts.fix_attachments and has:
        obj = dict(obj)
        obj["attachments"] = [[n, len(b), xxh64_hex(b)] for n, b in parts.attachments]
    return obj


def _chunk_bytes(chunk: Chunk, flags: int, seed: int = 0) -> bytes:
    obj = chunk.desc.obj
    if chunk.fix_streams and isinstance(obj, dict) and "streams" in obj:
        obj = dict(obj)
        obj["streams"] = [[n, len(b), xxh64_hex(b)] for n, b in chunk.streams]
    dstored = chunk.desc.encode(flags, obj)
    xx = xxh64_int(dstored, seed) if chunk.checksum is None else chunk.checksum
    payloads = b"".join(b for _, b in chunk.streams)
    return RECORD.pack(chunk.mark, len(dstored), xx) + dstored + payloads


def _fixed_footer(parts: FileParts, entries: list[dict[str, int]]) -> Any:
    assert parts.footer is not None
    obj = parts.footer.obj
    if not (parts.fix_footer and isinstance(obj, dict)):
        return obj
    obj = dict(obj)
    old = obj.get("chunks") if isinstance(obj.get("chunks"), list) else []
    new = []
    for k, e in enumerate(entries):
        base = old[k] if k < len(old) and isinstance(old[k], dict) else {}
        new.append({**base, **e})
    obj["chunks"] = new
    obj["rows"] = sum(e["rows"] for e in entries)
    return obj


def write(parts: FileParts) -> bytes:
    """Lay the parts out as a file, recomputing every length, offset and checksum."""
    return layout(parts)[0]


def footer_for(parts: FileParts) -> Any:
    """The footer object `write` would store now (chunk entries of the current layout)."""
    return _fixed_footer(parts, layout(parts)[1]) if parts.footer is not None else None


def layout(parts: FileParts) -> tuple[bytes, list[dict[str, int]]]:
    """The file bytes and the footer chunk entries (offset, size, rows) they hold."""
    flags = parts.flags
    hstored = parts.header.encode(flags, _fixed_header(parts))
    hlen = len(hstored) if parts.header_len is None else parts.header_len
    hxx = parts.header_xxh64
    if hxx is None:
        hxx = header_checksum(parts.major, parts.minor, flags, hstored)
    seed = hxx if parts.version >= (2, 1) else 0
    out = bytearray(PREAMBLE.pack(parts.magic, parts.major, parts.minor, flags, hlen, hxx))
    out += hstored
    for _, blob in parts.attachments:
        out += blob
    entries = []
    for chunk in parts.chunks:
        start = len(out)
        out += _chunk_bytes(chunk, flags, seed)
        entries.append({"offset": start, "size": len(out) - start, "rows": chunk.rows})
    out += parts.gap
    if parts.footer is not None:
        foot_off = len(out)
        fstored = parts.footer.encode(flags, _fixed_footer(parts, entries))
        fxx = xxh64_int(fstored, seed) if parts.footer_xxh64 is None else parts.footer_xxh64
        out += RECORD.pack(FOOTER_MARK, len(fstored), fxx) + fstored
        off = foot_off if parts.footer_offset is None else parts.footer_offset
        out += TRAILER.pack(off, parts.end_magic)
    out += parts.tail
    return bytes(out), entries


def roundtrip(data: bytes) -> bytes:
    """parse + write: the identity on a well-formed file."""
    return write(parse(data))


# ------------------------------------------------------------------------------ zstd frames
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BLOCK_MAX = 1 << 17  # 128 KiB


def _frame_header(content_size: int, window_log: int = 17) -> bytes:
    """A frame header with an 8-byte Frame_Content_Size and a window descriptor."""
    return ZSTD_MAGIC + bytes([0xC0, (window_log - 10) << 3]) + struct.pack("<Q", content_size)


def _block(kind: int, size: int, body: bytes, last: bool) -> bytes:
    head = int(last) | (kind << 1) | (size << 3)
    return head.to_bytes(3, "little") + body


def rle_frame(size: int, fill: int = 0, prefix: bytes = b"", suffix: bytes = b"",
              declared: int | None = None) -> bytes:
    """A zstd frame of `prefix`, `size` copies of byte `fill`, `suffix` (raw + RLE blocks):
    about 4 bytes per 128 KiB, so a 4 GiB frame is 128 kB. `declared` overrides the header's
    content size (a lie the decoder must catch)."""
    total = len(prefix) + size + len(suffix)
    blocks = []
    for part in (prefix,):
        for k in range(0, len(part), _BLOCK_MAX):
            piece = part[k : k + _BLOCK_MAX]
            blocks.append((0, len(piece), piece))
    left = size
    while left > 0:
        n = min(left, _BLOCK_MAX)
        blocks.append((1, n, bytes([fill])))
        left -= n
    for k in range(0, len(suffix), _BLOCK_MAX):
        piece = suffix[k : k + _BLOCK_MAX]
        blocks.append((0, len(piece), piece))
    if not blocks:
        blocks.append((0, 0, b""))
    out = [_frame_header(total if declared is None else declared)]
    for i, (kind, n, body) in enumerate(blocks):
        out.append(_block(kind, n, body, i == len(blocks) - 1))
    return b"".join(out)


def frame_header_size(frame: bytes) -> int:
    """Bytes of a zstd frame header (magic + descriptor + window + dict id + FCS)."""
    fhd = frame[4]
    single = bool(fhd & 0x20)
    did = (0, 1, 2, 4)[fhd & 3]
    fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    return 5 + (0 if single else 1) + did + fcs


def set_content_size(frame: bytes, size: int) -> bytes:
    """The frame with its declared Frame_Content_Size replaced by `size` (8-byte field).

    A single-segment frame gets a 2^window_log window large enough for its real content."""
    fhd = frame[4]
    single = bool(fhd & 0x20)
    did = (0, 1, 2, 4)[fhd & 3]
    start = 5 + (0 if single else 1)
    dict_id = frame[start : start + did]
    if single:
        real = zstandard.frame_content_size(frame)
        window = max(17, (max(real, 1) - 1).bit_length()) if real > 0 else 17
        wd = bytes([(min(window, 41) - 10) << 3])
    else:
        wd = frame[5:6]
    new_fhd = 0xC0 | (fhd & 0x07)
    return (ZSTD_MAGIC + bytes([new_fhd]) + wd + dict_id + struct.pack("<Q", size)
            + frame[frame_header_size(frame) :])


def find_frame(payload: bytes, within: int = 40) -> int:
    """Offset of the first zstd frame magic in the first `within` bytes, or -1."""
    return payload.find(ZSTD_MAGIC, 0, within + 4)
