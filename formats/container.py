"""The .balerc container, format 2 (reads 1 too; specification: docs/FORMAT.md).

Layout, all integers little-endian::

    preamble  MAGIC_START(8) major:u16 minor:u16 flags:u32 header_len:u32 header_xxh64:u64
    header    JSON, UTF-8 (header_len bytes)
    chunk*    b"BCHK" desc_len:u32 desc_xxh64:u64 desc JSON | stream payloads in desc order
    footer    b"BFTR" foot_len:u32 foot_xxh64:u64 foot JSON
    trailer   footer_offset:u64 MAGIC_END(8)

Chunks are independent and self-describing, so a file whose writer died before the
footer is still readable up to its last complete chunk (found by a forward scan), and
every stream carries an xxh64 so damage is reported by chunk number and stream name.
The container knows nothing about what the streams mean: codec/ decides that.
"""

from __future__ import annotations

import json
import mmap
import os
import secrets
import struct
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import xxhash
import zstandard

from . import bounded
from .errors import (
    ChecksumError,
    ChunkOrderError,
    ContainerError,
    FormatVersionError,
    IncompleteFileError,
    LimitError,
    UnsupportedFeatureError,
)
from .json_dictionary import JSON_DICT_V1
from .records import (
    MAX_CHUNK_ROWS,
    MAX_JSON_BYTES,
    check_descriptor,
    check_footer,
    check_header,
    load_json,
)

MAGIC_START = b"\x89BLR\r\n\x1a\n"
MAGIC_END = b"\x89BLRCEND"
CHUNK_MARK = b"BCHK"
FOOTER_MARK = b"BFTR"
FORMAT_MAJOR = 2  # 2: JSON records compressed with the frozen dictionary (flag 2)
FORMAT_MINOR = 1  # 1: the header checksum covers the preamble; descriptors state first_row
SECTIONS_MINOR = 2  # 2: a file may hold several sections (feature "sections"); files with one
# table stay 2.1, so every 2.1 reader still reads them
SECTIONS_FEATURE = "sections"
# a section counted by a column of another collection section (nested branches, docs/
# FORMAT.md 3.1): required only by files holding one; earlier readers refuse them by name
CHAINED_FEATURE = "chained-sections"
READABLE_MAJORS = (1, 2)
_PLAUSIBLE_MAJOR = 99  # a version field above this is damage, not a newer balerc
_PREAMBLE = struct.Struct("<8sHHIIQ")  # magic, major, minor, flags, header_len, header_xxh64
_RECORD = struct.Struct("<4sIQ")  # mark, json_len, json_xxh64
_TRAILER = struct.Struct("<Q8s")  # footer_offset, MAGIC_END
# Features this reader understands: handed over by the codec's coder registry (each coder
# declares the features files using it may require), so the container lists none itself;
# a file listing anything else in header["required_features"] is refused with the names.
_KNOWN_FEATURES: set[str] = set()


def accept_features(names: Iterable[str]) -> None:
    """Called by codec.coders.register_coder: these features can be read."""
    _KNOWN_FEATURES.update(names)


def known_features() -> frozenset[str]:
    return frozenset(_KNOWN_FEATURES)


class RecoveryWarning(UserWarning):
    """Issued when a file without a valid footer is read up to its last complete chunk."""


def xxh64_hex(data: bytes | memoryview) -> str:
    return xxhash.xxh64_hexdigest(data)


def _xxh64_int(data: bytes | memoryview, seed: int = 0) -> int:
    return xxhash.xxh64_intdigest(data, seed)


FLAG_ZSTD_JSON = 1  # header, descriptors and footer JSON are stored as zstd frames
FLAG_JSON_DICT = 2  # ... compressed with the raw-content dictionary JSON_DICT_V1 (format 2)
KNOWN_FLAGS = FLAG_ZSTD_JSON | FLAG_JSON_DICT
WRITE_FLAGS = FLAG_ZSTD_JSON | FLAG_JSON_DICT
_DICT = zstandard.ZstdCompressionDict(JSON_DICT_V1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _dump(obj: Any, flags: int = WRITE_FLAGS) -> bytes:
    raw = json.dumps(obj, separators=(",", ":"), sort_keys=False, allow_nan=False).encode()
    if flags & FLAG_JSON_DICT:
        return zstandard.ZstdCompressor(level=19, dict_data=_DICT, write_dict_id=False).compress(raw)
    if flags & FLAG_ZSTD_JSON:
        return zstandard.ZstdCompressor(level=9).compress(raw)
    return raw


def _check_own_header(header: Mapping[str, Any], hbytes: bytes) -> None:
    """Run the readers' header checks on a header about to be written: a file every
    reader refuses (a 5,000-character column name, too many columns) is refused here,
    before its first byte, instead of being found unreadable later."""
    from .errors import BalercError, InputError

    try:
        check_header(_load(hbytes, WRITE_FLAGS, "header"), "header")
    except BalercError as exc:
        raise InputError(f"cannot write this table: readers would refuse its header "
                         f"({exc}); rename or leave out what it names") from None


def record_size(obj: Any) -> int:
    """Stored bytes of a JSON record as this writer stores it (for cost estimates)."""
    return len(_dump(obj))


def _load(data: bytes, flags: int, where: str) -> Any:
    """A stored JSON record back to Python, its inflated size and nesting bounded."""
    if flags & FLAG_JSON_DICT:
        dctx = zstandard.ZstdDecompressor(dict_data=_DICT)
        data = bounded.decompress(data, where, limit=MAX_JSON_BYTES, dctx=dctx)
    elif flags & FLAG_ZSTD_JSON:
        data = bounded.decompress(data, where, limit=MAX_JSON_BYTES)
    return load_json(data, where)


def header_checksum(preamble: bytes, hbytes: bytes, version: tuple[int, int]) -> int:
    """xxh64 of the header; from format 2.1 on, of the preamble fields too (flags!)."""
    if version >= (2, 1):
        return _xxh64_int(preamble[8:20] + hbytes)
    return _xxh64_int(hbytes)


@dataclass
class StreamInfo:
    name: str
    offset: int  # absolute file offset of the payload
    size: int
    xxh64: str


@dataclass
class ChunkInfo:
    index: int
    offset: int  # absolute offset of the chunk record (its b"BCHK")
    end: int  # absolute offset just past its last payload
    rows: int
    streams: dict[str, StreamInfo] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    section: int = 0

    @property
    def size(self) -> int:
        return self.end - self.offset


# ----------------------------------------------------------------------------- writer
class ContainerWriter:
    """Appends independent chunks to a .balerc stream; `close()` writes the footer.

    Each chunk is flushed as written, so a pipeline that dies leaves a readable file.
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        header: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
    ):
        self._f = fileobj
        self._chunks: list[dict[str, int]] = []
        self._rows = 0
        self._closed = False
        self._broken = False  # a chunk write failed or was interrupted: write no more
        header = dict(header)
        header.setdefault("format", "balerc")
        header.setdefault("file_id", secrets.token_hex(8))  # no two files share a header
        self._max_rows = int(header.get("chunk_rows", MAX_CHUNK_ROWS))
        sections = header.get("sections")
        self._sectioned = sections is not None
        minor = SECTIONS_MINOR if self._sectioned else FORMAT_MINOR
        self._section_rows = [0] * (len(sections) if sections else 1)
        self._section_max = ([int(s.get("chunk_rows", self._max_rows)) for s in sections]
                             if sections else [self._max_rows])
        if self._sectioned and SECTIONS_FEATURE not in header.get("required_features", []):
            header["required_features"] = sorted({*header.get("required_features", []),
                                                  SECTIONS_FEATURE})
        header["format_version"] = [FORMAT_MAJOR, minor]
        attachments = dict(attachments or {})
        header["attachments"] = [[n, len(b), xxh64_hex(b)] for n, b in attachments.items()]
        hbytes = _dump(header)
        _check_own_header(header, hbytes)
        pre = _PREAMBLE.pack(MAGIC_START, FORMAT_MAJOR, minor, WRITE_FLAGS, len(hbytes), 0)
        xx = header_checksum(pre, hbytes, (FORMAT_MAJOR, minor))
        self._f.write(pre[:-8] + struct.pack("<Q", xx))
        self._seed = xx  # 2.1: chunk and footer checksums are bound to this header
        self._f.write(hbytes)
        for blob in attachments.values():
            self._f.write(blob)
        self._f.flush()  # a writer killed before its first chunk leaves a recognisable file
        self._pos = _PREAMBLE.size + len(hbytes) + sum(len(b) for b in attachments.values())

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def n_chunks(self) -> int:
        return len(self._chunks)

    @property
    def bytes_written(self) -> int:
        return self._pos

    def section_rows(self, section: int = 0) -> int:
        return self._section_rows[section]

    def write_chunk(
        self, streams: Mapping[str, bytes], rows: int, meta: Mapping[str, Any] | None = None,
        section: int = 0,
    ) -> int:
        """Write one chunk of named streams holding `rows` rows of `section` (0 in a file
        of one table); returns its index in the file."""
        if self._closed:
            raise ContainerError("cannot write a chunk after close()")
        if self._broken:
            raise ContainerError("an earlier chunk's write failed or was interrupted: no "
                                 "chunk is written after it (it would take its place)")
        if not 0 <= section < len(self._section_rows):
            raise ContainerError(f"the file has {len(self._section_rows)} section(s); there is "
                                 f"no section {section}")
        limit = self._section_max[section]
        if not 1 <= rows <= limit:
            raise ContainerError(f"a chunk holds 1 to {limit:,} rows (the header's "
                                 f"chunk_rows), not {rows:,}")
        index = len(self._chunks)
        desc: dict[str, Any] = {"index": index}
        if self._sectioned:
            desc["section"] = section
        desc.update({
            "first_row": self._section_rows[section],
            "rows": int(rows),
            "streams": [[name, len(data), xxh64_hex(data)] for name, data in streams.items()],
        })
        if meta:
            desc["meta"] = dict(meta)
        dbytes = _dump(desc)
        start = self._pos
        self._broken = True  # until the whole chunk is written
        self._f.write(_RECORD.pack(CHUNK_MARK, len(dbytes), _xxh64_int(dbytes, self._seed)))
        self._f.write(dbytes)
        size = _RECORD.size + len(dbytes)
        for data in streams.values():
            self._f.write(data)
            size += len(data)
        self._f.flush()
        self._broken = False
        self._pos += size
        self._chunks.append({"offset": start, "size": size, "rows": int(rows)})
        self._rows += int(rows)
        self._section_rows[section] += int(rows)
        return index

    def close(self, summary: Mapping[str, Any] | None = None) -> None:
        """Write the footer (chunk index + optional summary) and the trailer."""
        if self._closed:
            return
        if self._broken:  # a torn chunk sits before the footer: leave the file to recovery
            raise ContainerError("an earlier chunk's write failed or was interrupted: the "
                                 "file gets no footer (it reads with recover=True)")
        footer: dict[str, Any] = {"rows": self._rows, "chunks": self._chunks}
        if self._sectioned:
            footer["section_rows"] = self._section_rows
        footer["summary"] = dict(summary or {})
        fbytes = _dump(footer)
        foot_off = self._pos
        self._f.write(_RECORD.pack(FOOTER_MARK, len(fbytes), _xxh64_int(fbytes, self._seed)))
        self._f.write(fbytes)
        self._f.write(_TRAILER.pack(foot_off, MAGIC_END))
        self._f.flush()
        self._pos += _RECORD.size + len(fbytes) + _TRAILER.size
        self._closed = True


# ----------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class Recovery:
    """What a `recover=True` read of a damaged or unfinished file kept."""

    reason: str  # why the file is not whole
    rows: int  # rows in the valid prefix of chunks (of the first section in a file of sections)
    chunks: int
    total_rows: int | None  # the footer's count when the footer is intact, else unknown


@contextmanager
def opened(source: Any, recover: bool = False) -> Iterator[ContainerReader]:
    """`source` itself when it is an open reader (its opener closes it), else a new reader
    closed on exit: one open serves every step of a decompress."""
    if isinstance(source, ContainerReader):
        yield source
        return
    with ContainerReader(source, recover=recover) as reader:
        yield reader


class ContainerReader:
    """Random-access reader over a file (memory-mapped) or a bytes object.

    Opening parses and validates the preamble, header and chunk index (formats/records.py)
    and checks every chunk's identity (index, first row, offset) against the footer and
    its position. A file without a valid footer raises IncompleteFileError unless
    `recover=True`, which keeps the longest valid prefix of chunks (a forward scan) with a
    RecoveryWarning. Payloads are read and verified lazily, per chunk and per stream, so
    one column of one chunk costs only its own bytes. Reads are thread-safe.
    """

    def __init__(self, source: str | os.PathLike | bytes | bytearray | memoryview,
                 recover: bool = False):
        self.path: str = "<bytes>"
        self.recover = recover
        self.recovery: Recovery | None = None
        self._mmap: mmap.mmap | None = None
        self._file: BinaryIO | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buf = memoryview(source)
        else:
            self.path = str(source)
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                raise ContainerError(f"no such file: {self.path}") from None
            except IsADirectoryError:
                raise ContainerError(f"{self.path} is a directory, not a .balerc file") from None
            size = os.fstat(self._file.fileno()).st_size
            if size == 0:
                self._file.close()
                raise ContainerError(f"{self.path} is empty (0 bytes), not a .balerc file (a "
                                     f"writer stopped before its header leaves such a file)")
            self._mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._buf = memoryview(self._mmap)
        try:
            self._parse()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        buf = getattr(self, "_buf", None)
        if buf is not None:
            buf.release()
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ContainerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def recovered(self) -> bool:
        return self.recovery is not None

    # -- parsing -----------------------------------------------------------------------
    def _fail(self, what: str) -> ContainerError:
        return ContainerError(f"{self.path}: {what}")

    def _parse(self) -> None:
        """Preamble, header, attachments and chunk index; an unfinished file is scanned
        (and refused unless `recover`)."""
        self._read_layout(self._read_header())
        self.footer: dict[str, Any] = {}
        self._damaged: dict[int, ContainerError] = {}
        problem = self._read_footer()
        if problem is None:
            self.chunks = self._index_chunks()
            return
        self.chunks = self._scan()
        if not self.recover:
            what = (f"{self._lead_rows(self.chunks):,} rows, can be read" if self.sections is None
                    else f"{self._lead_rows(self.chunks):,} rows of section "
                         f"{self.sections[0]['name']!r}: of those events, the ones whose "
                         f"objects all survived (balerc info says how many) can be read")
            raise IncompleteFileError(
                f"{self.path}: {problem} (the writer stopped before closing the file, or the "
                f"file was cut or damaged at its end); {len(self.chunks)} complete chunk(s), "
                f"{what} with --recover (recover=True)"
            )
        self._recovered(problem, len(self.chunks), None)

    def _read_header(self) -> int:
        """Check the preamble (magic, version, flags) and the header's checksum and
        features, and load it; returns where the header ends."""
        buf = self._buf
        n = len(buf)
        if 0 < n < _PREAMBLE.size and MAGIC_START.startswith(bytes(buf[:8])):
            raise self._fail(f"truncated inside the preamble ({n} of {_PREAMBLE.size} bytes); "
                             f"nothing can be recovered")
        if n < _PREAMBLE.size or bytes(buf[:8]) != MAGIC_START:
            raise self._fail(
                f"not a .balerc file (starts with {bytes(buf[:8])!r}, expected {MAGIC_START!r}); "
                f"{_sniff(bytes(buf[:16]))}"
            )
        _, major, minor, flags, hlen, hxx = _PREAMBLE.unpack_from(buf, 0)
        self.flags = flags
        if major > _PLAUSIBLE_MAJOR:  # not a newer format
            raise self._fail(f"the preamble is damaged (its format version reads {major}.{minor})")
        if major not in READABLE_MAJORS:
            raise FormatVersionError(
                f"{self.path}: container format version {major}.{minor} is not supported by this "
                f"balerc (reads {', '.join(f'{m}.x' for m in READABLE_MAJORS)}); upgrade balerc to read it"
            )
        self.format_version = (major, minor)
        hend = _PREAMBLE.size + hlen
        if hend > n:
            raise self._fail("truncated inside the header; nothing can be recovered")
        hbytes = bytes(buf[_PREAMBLE.size : hend])
        if header_checksum(bytes(buf[: _PREAMBLE.size]), hbytes, self.format_version) != hxx:
            raise ChecksumError(f"{self.path}: the header is damaged (checksum mismatch)")
        # 2.1: descriptor and footer checksums are seeded with the header's, so a chunk or
        # footer of another file (a splice, a resumed download) reads as damage
        self._seed = hxx if self.format_version >= (2, 1) else 0
        if flags & ~KNOWN_FLAGS or (major == 1 and flags & FLAG_JSON_DICT):
            raise UnsupportedFeatureError(
                f"{self.path}: preamble flags {flags:#x} include bits this balerc does not know; "
                f"upgrade balerc"
            )
        self.header: dict[str, Any] = check_header(
            _load(hbytes, flags, f"{self.path}: header"), f"{self.path}: header")
        missing = sorted(set(self.header.get("required_features", [])) - _KNOWN_FEATURES)
        if missing:
            raise UnsupportedFeatureError(
                f"{self.path}: needs feature(s) {missing} that this balerc does not implement; "
                f"upgrade balerc"
            )
        return hend

    def _read_layout(self, hend: int) -> None:
        """Where the attachments and the chunks start, and the per-section limits the
        chunk records are checked against."""
        self.attachments: dict[str, StreamInfo] = {}
        pos = hend
        for name, size, xx in self.header.get("attachments", []):
            self.attachments[name] = StreamInfo(name, pos, size, xx)
            pos += size
        if pos > len(self._buf):
            raise self._fail("truncated inside the attachments; nothing can be recovered")
        self._data_start = pos
        self._chunk_rows = int(self.header.get("chunk_rows", MAX_CHUNK_ROWS))
        self.sections: list[dict[str, Any]] | None = self.header.get("sections")
        tables = self.sections if self.sections is not None else [self.header]
        self._section_limits = [int(t.get("chunk_rows", self._chunk_rows)) for t in tables]
        n_cols = max(len(t.get("schema", {}).get("columns", [])) for t in tables)
        self._max_streams = 4 * n_cols + 64

    def _recovered(self, reason: str, keep: int, total: int | None) -> None:
        """Keep the first `keep` chunks and say so (recover=True only)."""
        self.chunks = self.chunks[:keep]
        self._damaged = {i: e for i, e in self._damaged.items() if i < keep}
        rows = self._lead_rows(self.chunks)
        self.recovery = Recovery(reason, rows, keep, total)
        of = f" of {total:,}" if total is not None else " (the total is unknown)"
        warnings.warn(RecoveryWarning(
            f"{self.path}: {reason}; recovered the first {rows:,} {self._row_unit()}{of} in "
            f"{keep} complete chunk(s)"), stacklevel=4)

    def _row_unit(self) -> str:
        return "rows" if self.sections is None else f"rows of section {self.sections[0]['name']!r}"

    def _lead_rows(self, chunks: list[ChunkInfo]) -> int:
        """Rows of the file's table, or of its first section (the events) in a file of
        sections: rows of different sections are not the same unit and are not summed."""
        return sum(c.rows for c in chunks if self.sections is None or c.section == 0)

    def _read_footer(self) -> str | None:
        """Load the footer; return None if fine, else a description of what is wrong."""
        buf, n = self._buf, len(self._buf)
        if n < self._data_start + _TRAILER.size or bytes(buf[n - 8 :]) != MAGIC_END:
            return "no footer"
        foot_off, _ = _TRAILER.unpack_from(buf, n - _TRAILER.size)
        if not self._data_start <= foot_off <= n - _TRAILER.size - _RECORD.size:
            return "the footer offset is invalid"
        mark, flen, fxx = _RECORD.unpack_from(buf, foot_off)
        fstart = foot_off + _RECORD.size
        if mark != FOOTER_MARK or fstart + flen != n - _TRAILER.size:
            return "the footer is malformed"
        fbytes = bytes(buf[fstart : fstart + flen])
        if _xxh64_int(fbytes, self._seed) != fxx:
            return "the footer is damaged (checksum mismatch)"
        where = f"{self.path}: footer"
        max_chunks = (foot_off - self._data_start) // (_RECORD.size + 1)
        self.footer = check_footer(_load(fbytes, self.flags, where), where, max_chunks,
                                   self._chunk_rows).record
        self._data_end = foot_off
        return None

    def _index_chunks(self) -> list[ChunkInfo]:
        """Chunks from the footer, each checked against its own record and position."""
        chunks: list[ChunkInfo] = []
        pos, rows = self._data_start, 0
        before = [0] * len(self._section_limits)  # rows of each section so far
        for i, c in enumerate(self.footer["chunks"]):
            off, size, n = int(c["offset"]), int(c["size"]), int(c["rows"])
            if off != pos:
                raise ChunkOrderError(
                    f"{self.path}: the footer puts chunk {i} at offset {off:,}, but chunk "
                    f"{i - 1 if i else 'records'} end(s) at {pos:,} (chunks duplicated, dropped "
                    f"or reordered)")
            try:
                info = self._read_chunk_record(off, i, before)
            except ChunkOrderError:
                raise
            except ContainerError as exc:  # keep the others readable; report on access
                self._damaged[i] = exc
                section = 0 if self.sections is None else -1  # unknown: its descriptor is bad
                info = ChunkInfo(i, off, off + size, n, section=section)
                if section == 0:
                    before[0] += n
            if info.end != off + size or info.rows != n:
                raise ChunkOrderError(
                    f"{self.path}: chunk {i} does not match its footer entry (size {info.size:,} "
                    f"vs {size:,}, rows {info.rows:,} vs {n:,})")
            chunks.append(info)
            pos, rows = off + size, rows + n
        if pos != self._data_end:
            raise ChunkOrderError(f"{self.path}: the chunks end at {pos:,} but the footer starts "
                                  f"at {self._data_end:,}")
        if rows != self.footer["rows"]:
            raise ChunkOrderError(f"{self.path}: the footer says {self.footer['rows']:,} rows but "
                                  f"its chunks hold {rows:,}")
        stated = self.footer.get("section_rows")
        if self.sections is not None and not self._damaged and stated != before:
            raise ChunkOrderError(f"{self.path}: the footer says the sections hold {stated} "
                                  f"rows but their chunks hold {before}")
        return chunks

    def _read_chunk_record(self, offset: int, expect_index: int, before: list[int]) -> ChunkInfo:
        """The chunk record at `offset`, checked to be chunk `expect_index` and to start
        where its section's previous chunks end (`before`: rows per section so far, which
        this advances)."""
        buf = self._buf
        limit = getattr(self, "_data_end", len(buf))
        where = f"{self.path}: chunk {expect_index}"
        if offset + _RECORD.size > limit:
            raise self._fail(f"chunk {expect_index} lies outside the file")
        mark, dlen, dxx = _RECORD.unpack_from(buf, offset)
        if mark != CHUNK_MARK:
            raise self._fail(f"chunk {expect_index}: no chunk marker at offset {offset}")
        dstart = offset + _RECORD.size
        if dstart + dlen > limit:
            raise self._fail(f"chunk {expect_index}: descriptor runs past the end of the file")
        dbytes = bytes(buf[dstart : dstart + dlen])
        if _xxh64_int(dbytes, self._seed) != dxx:
            raise ChecksumError(
                f"{where} is damaged (its descriptor checksum does not match)", chunk=expect_index)
        desc = check_descriptor(_load(dbytes, self.flags, where), where, self._chunk_rows,
                                self._max_streams)
        index, rows = desc.record["index"], desc.record["rows"]
        section = desc.int("section", 0, len(self._section_limits) - 1, 0)
        if self.sections is not None and not desc.has("section"):
            desc.fail("'section' is missing")
        if rows > self._section_limits[section]:
            desc.fail(f"'rows' = {rows:,} is over its section's chunk_rows "
                      f"({self._section_limits[section]:,})")
        first_row = before[section]
        stated = desc.record.get("first_row")
        if stated is None and self.format_version >= (2, 1):
            desc.fail("'first_row' is missing")
        if self.sections is not None and self._damaged:
            stated = None  # a damaged chunk of unknown section came first: rows unknown
        if index != expect_index or (stated is not None and stated != first_row):
            raise ChunkOrderError(
                f"{self.path}: the chunk at offset {offset:,} says it is chunk {index} "
                f"(first row {stated}) but it is read as chunk {expect_index} (first row "
                f"{first_row:,}): chunks swapped, duplicated or dropped")
        pos = dstart + dlen
        streams: dict[str, StreamInfo] = {}
        for name, size, xx in desc.record["streams"]:
            streams[name] = StreamInfo(name, pos, size, xx)
            pos += size
        if pos > limit:
            raise self._fail(f"chunk {expect_index}: payload runs past the end of the file")
        before[section] += rows
        return ChunkInfo(index, offset, pos, rows, streams, desc.record.get("meta", {}), section)

    def _scan(self) -> list[ChunkInfo]:
        """Walk chunk records from the header on; stop at the first incomplete or out of
        order one, so what is kept is the longest valid prefix, in order."""
        chunks: list[ChunkInfo] = []
        pos = self._data_start
        before = [0] * len(self._section_limits)
        self._data_end = len(self._buf)
        while pos + _RECORD.size <= self._data_end:
            if bytes(self._buf[pos : pos + 4]) != CHUNK_MARK:
                break
            try:
                info = self._read_chunk_record(pos, len(chunks), before)
            except ContainerError:
                break
            chunks.append(info)
            pos = info.end
        self._data_end = pos
        return chunks

    # -- access ------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    @property
    def file_size(self) -> int:
        return len(self._buf)

    @property
    def damaged_chunks(self) -> list[int]:
        """Chunks whose descriptor failed its checks (known from opening alone)."""
        return sorted(self._damaged)

    def chunk_rows_of(self, i: int) -> int:
        """Rows of chunk i, known even when the chunk itself is damaged."""
        return self.chunks[i].rows

    def keep_prefix(self, keep: int, reason: str) -> None:
        """recover=True: drop chunk `keep` and everything after it (found damaged)."""
        if not self.recover:
            raise ValueError("keep_prefix needs recover=True")
        total = self._lead_rows(self.chunks) if self.recovery is None else self.recovery.total_rows
        self._recovered(reason, keep, total)

    def read_attachment(self, name: str, limit: int | None = None) -> bytes:
        """A named binary attachment (e.g. the embedded decoder), checksum-verified."""
        info = self.attachments.get(name)
        if info is None:
            raise self._fail(f"has no attachment '{name}'")
        if limit is not None and info.size > limit:
            raise LimitError(f"{self.path}: attachment '{name}' is {info.size:,} bytes, over "
                             f"the limit of {limit:,}")
        data = bytes(self._buf[info.offset : info.offset + info.size])
        if xxh64_hex(data) != info.xxh64:
            raise ChecksumError(f"{self.path}: attachment '{name}' is damaged (checksum mismatch)")
        return data

    def chunk(self, i: int) -> ChunkInfo:
        if not 0 <= i < len(self.chunks):
            raise IndexError(f"{self.path} has {len(self.chunks)} chunk(s); chunk {i} does not exist")
        if i in self._damaged:
            raise self._damaged[i]
        return self.chunks[i]

    def read_stream(self, i: int, name: str, verify: bool = True) -> bytes:
        """One stream of chunk i, checksum-verified."""
        info = self.chunk(i).streams.get(name)
        if info is None:
            raise self._fail(f"chunk {i} has no stream '{name}'")
        data = bytes(self._buf[info.offset : info.offset + info.size])
        if verify and xxh64_hex(data) != info.xxh64:
            raise ChecksumError(
                f"{self.path}: chunk {i}, stream '{name}' is damaged (checksum mismatch); "
                f"the other chunks are intact",
                chunk=i,
                stream=name,
            )
        return data

    def read_chunk(self, i: int, names: Iterable[str] | None = None, verify: bool = True) -> dict[str, bytes]:
        """The named streams of chunk i (all when `names` is None), checksum-verified."""
        info = self.chunk(i)
        wanted = list(info.streams) if names is None else list(names)
        return {n: self.read_stream(i, n, verify) for n in wanted if n in info.streams}

    def section(self, which: int | str) -> SectionView:
        """A section of a multi-section file by index or name (refused for other files)."""
        if self.sections is None:
            raise ContainerError(f"{self.path} holds one table, not sections")
        names = [s["name"] for s in self.sections]
        index = names.index(which) if isinstance(which, str) and which in names else which
        if not isinstance(index, int) or not 0 <= index < len(names):
            raise ContainerError(f"{self.path} has no section {which!r}; it has {names}")
        lost = next((i for i, c in enumerate(self.chunks) if c.section < 0), None)
        if lost is not None:  # a damaged descriptor: its section, and so every one, is unsure
            if not self.recover:
                raise self._damaged[lost]
            self.keep_prefix(lost, f"chunk {lost} is damaged ({self._damaged[lost]})")
        return SectionView(self, index)

    def verify(self) -> list[str]:
        """Check every stream's checksum; returns one message per damaged stream."""
        return [m for msgs in self.verify_chunks().values() for m in msgs]

    def verify_chunks(self) -> dict[int, list[str]]:
        """Check every stream's checksum: {chunk index: a message per damaged stream} for
        the damaged chunks (descriptors found damaged on opening included), in order."""
        problems = {i: [str(exc)] for i, exc in self._damaged.items()}
        for c in self.chunks:
            if c.index in self._damaged:
                continue
            for name in c.streams:
                try:
                    self.read_stream(c.index, name)
                except ChecksumError as exc:
                    problems.setdefault(c.index, []).append(str(exc))
        return dict(sorted(problems.items()))


class SectionView:
    """One section of a multi-section file, seen as a file of one table.

    It has the ContainerReader methods the decoders use (`header` with the section's
    schema and coders, `chunk`, `read_chunk`, ...), with chunk numbers counted within the
    section, so the one-table decode path serves every section unchanged. Attachments of
    section k are stored as ``"<k>/<name>"``.
    """

    def __init__(self, reader: ContainerReader, index: int):
        assert reader.sections is not None
        self._r = reader
        self.index = index
        spec = reader.sections[index]
        self.name: str = spec["name"]
        self.layout: dict[str, Any] = spec.get("layout", {})
        self.header = {k: v for k, v in reader.header.items() if k != "sections"}
        self.header.update(schema=spec["schema"], coders=spec["coders"],
                           chunk_rows=spec.get("chunk_rows", reader.header.get("chunk_rows")))
        self.path = reader.path
        self.format_version = reader.format_version

    @property
    def recover(self) -> bool:
        return self._r.recover

    @property
    def chunks(self) -> list[ChunkInfo]:
        return [c for c in self._r.chunks if c.section == self.index]

    @property
    def _global(self) -> list[int]:
        return [k for k, c in enumerate(self._r.chunks) if c.section == self.index]

    @property
    def n_chunks(self) -> int:
        return len(self._global)

    @property
    def n_rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    def chunk(self, i: int) -> ChunkInfo:
        return self._r.chunk(self._global[i])

    def chunk_rows_of(self, i: int) -> int:
        return self._r.chunk_rows_of(self._global[i])

    def read_chunk(self, i: int, names: Iterable[str] | None = None, verify: bool = True
                   ) -> dict[str, bytes]:
        return self._r.read_chunk(self._global[i], names, verify)

    def read_attachment(self, name: str, limit: int | None = None) -> bytes:
        return self._r.read_attachment(f"{self.index}/{name}", limit)

    def keep_prefix(self, keep: int, reason: str) -> None:
        """Recovery: keep the file's chunks before this section's chunk `keep`."""
        order = self._global
        self._r.keep_prefix(order[keep] if keep < len(order) else len(self._r.chunks), reason)


def _sniff(head: bytes) -> str:
    """Say what a non-balerc file looks like, so the error tells the user what they gave."""
    known = {
        b"root": "it looks like a ROOT file; compress it with `balerc compress`",
        b"PAR1": "it looks like a Parquet file",
        b"\x93NUMPY": "it looks like a NumPy .npy file",
        b"PK\x03\x04": "it looks like a zip archive (.npz?)",
        b"\x28\xb5\x2f\xfd": "it looks like a raw zstd frame",
        b"\x89HDF": "it looks like an HDF5 file",
    }
    for magic, text in known.items():
        if head.startswith(magic):
            return text
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it looks like a text file (CSV?)"
    return "the file is not recognised"
