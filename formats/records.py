"""The one validation layer for a container's JSON records (docs/FORMAT.md, section 6).

The header, every chunk descriptor and the footer are checked here, right after they are
parsed: required keys, types, ranges, unique names, sizes the file can hold. Code after
this layer may index and allocate from them without further checks; anything malformed
ends in a SchemaError (or LimitError for sizes) that names the file and the field.
Coder records and chunk metadata are checked by their coder (codec/validate.py) with the
same `Check` helper.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from .errors import LimitError, SchemaError

MAX_JSON_BYTES = 16 << 20  # a decompressed header, descriptor or footer
MAX_JSON_DEPTH = 32  # balerc writes at most 6 levels
MAX_JSON_VALUES = 1 << 20  # values (counted by separators) in one record: Python objects
# cost ~30x their JSON text, so 16 MiB of "{}," would otherwise become ~800 MiB
MAX_CHUNK_ROWS = 1 << 24  # rows per chunk (the default is 65,536)
MAX_COLUMNS = 1 << 16
MAX_NAME_LEN = 4096
MAX_SECTIONS = 1 << 12  # a NanoAOD tree has ~25 collections
KINDS = ("float", "int", "bool", "string")
_DTYPE = re.compile(r"^(<f[248]|<i[248]|\|i1|<u[248]|\|u1|\|b1|str)$")
_KIND_OF_DTYPE = {"f": "float", "i": "int", "u": "int", "b": "bool", "t": "string"}
_HEX = re.compile(r"^[0-9a-f]{1,64}$")


def load_json(raw: bytes, where: str) -> Any:
    """Parse a record's JSON, refusing non-UTF-8, non-JSON and nesting past MAX_JSON_DEPTH."""
    if len(raw) > MAX_JSON_BYTES:
        raise LimitError(f"{where}: {len(raw):,} bytes of JSON, over the limit of {MAX_JSON_BYTES:,}")
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_JSON_VALUES:
        raise LimitError(f"{where}: about {values:,} JSON values, over the limit of "
                         f"{MAX_JSON_VALUES:,}")
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise LimitError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"{where}: not valid JSON ({exc})") from None
    _check_depth(obj, where)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in balerc JSON")


def _check_depth(obj: Any, where: str) -> None:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > MAX_JSON_DEPTH:
            raise LimitError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)


class Check:
    """Typed access to one JSON record: every getter validates or raises SchemaError."""

    def __init__(self, record: Any, where: str):
        self.where = where
        if not isinstance(record, dict):
            self.fail(f"is a JSON {type(record).__name__}, expected an object")
        self.record: dict[str, Any] = record

    def fail(self, what: str) -> SchemaError:
        raise SchemaError(f"{self.where}: {what}")

    def has(self, key: str) -> bool:
        return self.record.get(key) is not None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *,
            what: str | None = None) -> Any:
        v = self.record.get(key)
        if v is None:
            if default is ...:
                self.fail(f"'{key}' is missing")
            if key in self.record:  # null means absent: later `.get(key, x)` must see x
                if default is None:
                    del self.record[key]
                else:
                    self.record[key] = default
            return default
        return self.typed(v, kind, what or f"'{key}'")

    def typed(self, v: Any, kind: type | tuple[type, ...], what: str) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            ok, v = True, float(v)
        if not ok:
            names = "/".join(k.__name__ for k in kinds)
            self.fail(f"{what} is {json.dumps(v)[:60]}, expected {names}")
        return v

    def int(self, key: str, lo: int, hi: int, default: Any = ...) -> int:
        v = self.get(key, int, default)
        if v is not default and not lo <= v <= hi:
            self.fail(f"'{key}' = {v} is outside [{lo}, {hi}]")
        return v

    def num(self, key: str, lo: float, hi: float, default: Any = ..., *,
            open_low: bool = False) -> float:
        v = self.get(key, float, default)
        if v is not default:
            self.in_range(v, lo, hi, f"'{key}'", open_low=open_low)
        return v

    def in_range(self, v: float, lo: float, hi: float, what: str, *, open_low: bool = False) -> None:
        low_ok = v > lo if open_low else v >= lo
        if not (math.isfinite(v) and low_ok and v <= hi):
            self.fail(f"{what} = {v} is outside {'(' if open_low else '['}{lo}, {hi}]")

    def list(self, key: str, item: Callable[[Any, str], Any], *, max_len: int,
             default: Any = ...) -> list[Any]:
        v = self.get(key, list, default)
        if v is default:
            return v
        if len(v) > max_len:
            raise LimitError(f"{self.where}: '{key}' has {len(v):,} entries, over {max_len:,}")
        return [item(x, f"'{key}'[{i}]") for i, x in enumerate(v)]

    def sub(self, key: str, default: Any = ...) -> Check:
        v = self.get(key, dict, default)
        return Check({} if v is default else v, f"{self.where}, '{key}'")

    def unique(self, values: list[Any], what: str) -> None:
        seen: set[Any] = set()
        for v in values:
            if v in seen:
                self.fail(f"{what} '{v}' appears twice")
            seen.add(v)


def triple(c: Check) -> Callable[[Any, str], tuple[str, int, str]]:
    """[name, size, xxh64 hex]: a stream or attachment entry."""

    def item(x: Any, what: str) -> tuple[str, int, str]:
        if not (isinstance(x, list) and len(x) == 3):
            c.fail(f"{what} is not a [name, size, xxh64] entry")
        name = c.typed(x[0], str, f"{what} name")
        size = c.typed(x[1], int, f"{what} size")
        xx = c.typed(x[2], str, f"{what} checksum")
        if size < 0 or not _HEX.match(xx) or not name or len(name) > MAX_NAME_LEN:
            c.fail(f"{what} = {json.dumps(x)[:80]} is malformed")
        return name, size, xx

    return item


def check_header(header: Any, where: str) -> dict[str, Any]:
    """Validate a header record; returns it (unchanged) for use as a plain dict.

    The container's own fields always; a table's schema and coders whenever either is
    present (every file balerc writes has both; `check_table` demands them).
    """
    c = Check(header, where)
    c.list("required_features", lambda x, w: c.typed(x, str, w), max_len=256, default=[])
    c.int("chunk_rows", 1, MAX_CHUNK_ROWS, None)
    attachments = c.list("attachments", triple(c), max_len=64, default=[])
    c.unique([a[0] for a in attachments], "attachment")
    if "schema" in header or "coders" in header:
        check_table(header, where)
    if "sections" in header:
        sections = c.list("sections", lambda x, w: _section(x, f"{where}, section {w}"),
                          max_len=MAX_SECTIONS)
        if not sections:
            c.fail("'sections' is empty")
        c.unique(sections, "section name")
        check_source(c.get("source", dict, {}), f"{where}, 'source'")
    return header


def _section(x: Any, where: str) -> str:
    """One section of a multi-section file (format 2.2): a name, its rows per chunk, a
    table (schema and coders) and how it ties to another section (`layout`)."""
    s = Check(x, where)
    name = s.get("name", str)
    if not name or len(name) > MAX_NAME_LEN:
        s.fail("'name' must be 1 to 4096 characters")
    s.int("chunk_rows", 1, MAX_CHUNK_ROWS, None)
    check_table(x, where)
    if s.has("layout"):
        lay = s.sub("layout")
        lay.get("kind", str, "")
        for key in ("counter", "counter_section", "branch"):
            if len(lay.get(key, str, "")) > MAX_NAME_LEN:
                lay.fail(f"'{key}' is too long")
    return name


def check_table(header: dict[str, Any], where: str) -> None:
    """A table's schema (unique names, known dtypes) and its coders' column ownership."""
    c = Check(header, where)
    schema = c.sub("schema")
    cols = schema.list("columns", lambda x, w: _column(schema, x, w), max_len=MAX_COLUMNS)
    if not cols:
        schema.fail("'columns' is empty")
    schema.unique([n for n, _ in cols], "column name")
    check_source(schema.get("source", dict, {}), f"{where}, 'source'")
    coders = c.list("coders", lambda x, w: Check(x, f"{where}, coder {w}"), max_len=MAX_COLUMNS)
    owner: dict[int, int] = {}
    index = {n: i for i, (n, _) in enumerate(cols)}
    for k, cc in enumerate(coders):
        cc.get("id", str)
        entries = cc.list("columns", lambda x, w, cc=cc: cc.typed(x, (int, str), w),
                          max_len=MAX_COLUMNS)
        for i, col in enumerate(entries):
            if isinstance(col, str):  # files before 1.0 final stored names
                if col not in index:
                    cc.fail(f"'columns'[{i}] = '{col[:40]}' is not a schema column")
                col = index[col]
            if not 0 <= col < len(cols):
                cc.fail(f"'columns'[{i}] = {col} is not a schema column index (0..{len(cols) - 1})")
            if col in owner:
                cc.fail(f"column '{cols[col][0]}' is claimed by coders {owner[col]} and {k}")
            owner[col] = k
    orphans = [cols[i][0] for i in range(len(cols)) if i not in owner]
    if orphans:
        c.fail(f"no coder holds column(s) {orphans[:5]}")


def _column(c: Check, x: Any, what: str) -> tuple[str, str]:
    col = Check(x, f"{c.where}, column {what}")
    name = col.get("name", str)
    if len(name) > MAX_NAME_LEN:
        col.fail(f"the name is {len(name):,} characters long")
    dtype = col.get("dtype", str)
    if not _DTYPE.match(dtype):
        col.fail(f"dtype '{dtype[:40]}' is not one balerc writes")
    kind = col.get("kind", str)
    if kind != _KIND_OF_DTYPE[dtype[1]]:
        col.fail(f"kind '{kind[:40]}' does not match dtype '{dtype}'")
    col.get("codec", str, "")
    if len(col.get("bound", str, "")) > 64:
        col.fail("'bound' is too long")
    return name, dtype


def check_descriptor(desc: Any, where: str, chunk_rows: int, max_streams: int) -> Check:
    """Validate a chunk descriptor (index, rows, first_row, streams, meta)."""
    c = Check(desc, where)
    c.int("index", 0, 1 << 40)
    c.int("rows", 1, chunk_rows)
    c.int("first_row", 0, 1 << 62, None)
    streams = c.list("streams", triple(c), max_len=max_streams)
    c.unique([s[0] for s in streams], "stream")
    meta = c.get("meta", dict, {})
    for k, v in meta.items():
        c.typed(v, dict, f"'meta'['{k[:40]}']")
    return c


def check_footer(footer: Any, where: str, max_chunks: int, chunk_rows: int) -> Check:
    """Validate a footer (rows, chunk index entries, summary)."""
    c = Check(footer, where)
    c.int("rows", 0, 1 << 62)

    def entry(x: Any, what: str) -> tuple[int, int, int]:
        e = Check(x, f"{where}, chunk {what}")
        return e.int("offset", 0, 1 << 62), e.int("size", 1, 1 << 62), e.int("rows", 1, chunk_rows)

    c.list("chunks", entry, max_len=max_chunks)
    c.get("summary", dict, {})
    return c


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,255}$")
_NP_DTYPE = re.compile(r"^[<>|=]?[a-zA-Z]{1,12}[0-9]{0,3}$")
MAX_EVENTS = 1 << 40


def _names(c: Check, key: str) -> list[str]:
    """A list of names (at most MAX_COLUMNS, each at most MAX_NAME_LEN characters)."""
    def name(x: Any, what: str) -> str:
        if len(c.typed(x, str, what)) > MAX_NAME_LEN:
            c.fail(f"{what} is too long")
        return x
    return c.list(key, name, max_len=MAX_COLUMNS, default=[])


def _records(c: Check, key: str, fields: tuple[str, ...]) -> None:
    """A list of objects whose `fields` are names (`branches`, `other_objects`, ...)."""
    def item(x: Any, what: str) -> None:
        r = Check(x, f"{c.where}, {what}")
        for f in fields:
            if len(r.get(f, str, "")) > MAX_NAME_LEN:
                r.fail(f"'{f}' is too long")
        r.list("shape", lambda v, w: r.typed(v, int, w), max_len=32, default=None)
    c.list(key, item, max_len=MAX_COLUMNS, default=[])


def _check_writeback(c: Check) -> None:
    """The keys that shape the file a writer gives back (FORMAT.md 3): typed here, so a
    crafted header is a SchemaError, never a writer's TypeError."""
    if len(c.get("title", str, "")) > MAX_JSON_BYTES // 4:
        c.fail("'title' is too long")
    if len(c.get("tree_class", str, "")) > MAX_NAME_LEN:
        c.fail("'tree_class' is too long")
    _records(c, "branches", ("name", "kind", "section"))
    _records(c, "other_objects", ("name", "class"))
    _records(c, "skipped", ("name", "type"))
    _names(c, "empty_nan")
    _names(c, "arrow_columns")
    _names(c, "bytes_arrays")
    for key in ("arrow_types", "arrow_metadata"):
        for k, v in c.get(key, dict, {}).items():
            if not isinstance(v, str):
                c.fail(f"'{key}'['{k[:40]}'] is not a string")
    if c.has("npy_layout"):
        lay = c.sub("npy_layout")
        lay.get("byteorder", str, "<")
        lay.get("fortran", bool, False)


def check_source(source: dict[str, Any], where: str) -> None:
    """The source-format details writers use to rebuild the input (docs/FORMAT.md 3)."""
    c = Check(source, where)
    for key in ("format", "path", "tree", "npz_layout", "generator"):
        if len(c.get(key, str, "")) > MAX_NAME_LEN:
            c.fail(f"'{key}' is too long")
    shape = c.list("shape", lambda x, w: c.typed(x, int, w), max_len=32, default=None)
    if shape is not None and any(d < 0 for d in shape):
        c.fail("'shape' has a negative dimension")
    if len(c.get("header_text", str, "")) > MAX_JSON_BYTES // 4:
        c.fail("'header_text' is too long")
    if c.get("newline", str, "\n") not in ("\n", "\r\n", "\r"):
        c.fail("'newline' is not a line terminator")
    if len(c.get("delimiter", str, ",")) != 1:
        c.fail("'delimiter' must be one character")
    c.get("bom", bool, False)
    if not _NP_DTYPE.match(c.get("names_empty_dtype", str, "U1")):
        c.fail("'names_empty_dtype' is not a simple NumPy dtype")
    if c.has("jagged"):
        j = c.sub("jagged")
        for key in ("collection", "counter"):
            name = j.get(key, str, None)
            if name is not None and not _NAME.match(name):
                j.fail(f"'{key}' = {name[:40]!r} is not a branch name")
        j.int("n_events", 0, MAX_EVENTS, None)
    c.int("compression", 0, 10_000, None)
    _check_writeback(c)
    dtypes = c.get("dtypes", dict, {})
    for k, v in dtypes.items():
        if not isinstance(v, str) or len(v) > 64:
            c.fail(f"'dtypes'['{k[:40]}'] is not a dtype name")
