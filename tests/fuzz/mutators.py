"""Mutations of seed files: random byte damage, and structural edits with checksums fixed.

Random mutations (`random_mutation`) damage bytes without fixing anything: every outcome
but a typed error, an identical table or (with ``recover=True``) a correct prefix is a bug.
Structural mutations (`structural_mutation`) edit the parsed file (JSON fields, stream
payloads, chunk order, attachments, preamble) and write it back with every checksum
recomputed, so they reach the decoder. Each carries an expectation: ``refuse`` (the file
is invalid: decoding it to a different table is a bug, "accepted-invalid") or ``any`` (it
may be a legitimately different valid file).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

from . import fileparts as fp
from .fileparts import FileParts

ANY, REFUSE = "any", "refuse"


@dataclass
class Mutation:
    """A mutated file and what was done to it."""

    data: bytes
    name: str
    detail: str
    kind: str  # "random" | "structural"
    expect: str = REFUSE
    as_seed: str | None = None  # the result is this other seed's file, byte for byte


@dataclass
class Target:
    """A seed prepared for mutation: bytes, parts and the offsets worth hitting."""

    name: str
    data: bytes
    parts: FileParts
    hot: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, data: bytes) -> Target:
        parts = fp.parse(data)
        return cls(name, data, parts, list(parts.regions))


# =============================================================================== random
INTERESTING_U8 = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x40)
INTERESTING_INT = (0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1,
                   2**64 - 1, 2**32, 2**40)


def _pos(rng: random.Random, t: Target, n: int) -> int:
    """A byte offset: often inside a structural field (preamble, record headers, trailer)."""
    if t.hot and rng.random() < 0.4:
        off, size, _ = rng.choice(t.hot)
        return min(max(off + rng.randrange(size), 0), max(n - 1, 0))
    return rng.randrange(max(n, 1))


def _bitflip(rng: random.Random, t: Target, d: bytearray) -> str:
    spots = []
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        p = _pos(rng, t, len(d))
        d[p] ^= 1 << rng.randrange(8)
        spots.append(p)
    return f"bits@{spots}"


def _byteset(rng: random.Random, t: Target, d: bytearray) -> str:
    spots = []
    for _ in range(rng.choice((1, 2, 4))):
        p = _pos(rng, t, len(d))
        d[p] = rng.choice(INTERESTING_U8) if rng.random() < 0.5 else rng.randrange(256)
        spots.append(p)
    return f"set@{spots}"


def _intset(rng: random.Random, t: Target, d: bytearray) -> str:
    off, size, label = rng.choice(t.hot) if t.hot else (0, 8, "start")
    width = size if size in (2, 4, 8) else rng.choice((2, 4, 8))
    off = min(off if size in (2, 4, 8) else off + rng.randrange(max(size - width, 1)),
              max(len(d) - width, 0))
    v = rng.choice(INTERESTING_INT + (len(d), len(d) - 1, len(d) + 1, off))
    v &= (1 << (8 * width)) - 1
    d[off : off + width] = v.to_bytes(width, "little")
    return f"int{width * 8}@{off}({label})={v}"


def _span(rng: random.Random, n: int) -> tuple[int, int]:
    a = rng.randrange(max(n, 1))
    size = rng.choice((1, 2, 4, 8, 16, 64, 256, max(n // 4, 1)))
    return a, min(n, a + size)


def _delete(rng: random.Random, t: Target, d: bytearray) -> str:
    a, b = _span(rng, len(d))
    del d[a:b]
    return f"del[{a}:{b}]"


def _insert(rng: random.Random, t: Target, d: bytearray) -> str:
    p = _pos(rng, t, len(d))
    n = rng.choice((1, 4, 8, 16, 200))
    blob = bytes(rng.randrange(256) for _ in range(n)) if rng.random() < 0.5 else b"\0" * n
    d[p:p] = blob
    return f"ins@{p}+{n}"


def _duplicate(rng: random.Random, t: Target, d: bytearray) -> str:
    a, b = _span(rng, len(d))
    p = b if rng.random() < 0.5 else rng.randrange(len(d) + 1)
    d[p:p] = d[a:b]
    return f"dup[{a}:{b}]@{p}"


def _truncate(rng: random.Random, t: Target, d: bytearray) -> str:
    n = len(d)
    if n == 0:  # earlier mutations of the case emptied it (randrange(1, 1) failed)
        return "cut@0/0"
    r = rng.random()
    cut = n - rng.randrange(1, min(64, n) + 1) if r < 0.3 else rng.randrange(n)
    del d[cut:]
    return f"cut@{cut}/{n}"


PREAMBLE_BYTES = 16  # magic (8), major and minor version (2 + 2), flags (4)


RANDOM_OPS: dict[str, Callable[[random.Random, Target, bytearray], str]] = {
    "bitflip": _bitflip, "byteset": _byteset, "intset": _intset, "delete": _delete,
    "insert": _insert, "duplicate": _duplicate, "truncate": _truncate,
}


def random_mutation(rng: random.Random, t: Target, others: list[Target]) -> Mutation:
    """1-3 stacked byte-level mutations, or a splice with another seed; no fixing."""
    if others and rng.random() < 0.08:
        o = rng.choice(others)
        a = rng.randrange(len(t.data))
        b = rng.randrange(len(o.data)) if rng.random() < 0.5 else min(a, len(o.data) - 1)
        data = t.data[:a] + o.data[b:]
        # wholly the other seed's file, or it with part of t's 16-byte preamble (magic,
        # version, flags): a 1.0 file relabelled 2.0 reads as the file it is (format 2.0's
        # checksums do not cover the preamble), which is no silent difference
        other = data == o.data or (a == b and a <= PREAMBLE_BYTES)
        return Mutation(data, "splice", f"{t.name}[:{a}]+{o.name}[{b}:]", "random",
                        as_seed=o.name if other else None)
    d = bytearray(t.data)
    names, details = [], []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name = rng.choice(list(RANDOM_OPS))
        if not d:
            break
        details.append(RANDOM_OPS[name](rng, t, d))
        names.append(name)
    return Mutation(bytes(d), "+".join(names), " ".join(details), "random")


# =============================================================================== JSON
def _paths(obj: Any, prefix: tuple[Any, ...] = (), limit: int = 4000) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (breadth first, capped)."""
    out = [prefix]
    queue = [(prefix, obj)]
    while queue and len(out) < limit:
        path, node = queue.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
            node, list) else ()
        for k, v in items:
            out.append(path + (k,))
            queue.append((path + (k,), v))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    """Set a value at a path; returns the (possibly new) root."""
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _fmt(path: tuple[Any, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path) or "<root>"


JSON_VALUES: tuple[Any, ...] = (
    0, 1, -1, 2, 7, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, 10**12, -10**12, -(2**63), 10**30,
    0.5, -0.0, 1e308, -1e308, 5e-324, "", "x", "q", "z", "<f8", "str", "col/0", "\u00e9\u0000",
    None, True, False, [], {}, [0], [-1], [10**12], {"a": 1}, [[]],
)


@dataclass
class Records:
    """The JSON records of a file, addressed by a label: header, desc/<k>, footer."""

    parts: FileParts

    def labels(self) -> list[str]:
        out = ["header"] + [f"desc/{k}" for k in range(len(self.parts.chunks))]
        return out + (["footer"] if self.parts.footer is not None else [])

    def record(self, label: str) -> fp.JsonRecord:
        if label == "header":
            return self.parts.header
        if label == "footer":
            assert self.parts.footer is not None
            return self.parts.footer
        return self.parts.chunks[int(label.split("/")[1])].desc


def _pick_record(rng: random.Random, parts: FileParts) -> tuple[str, fp.JsonRecord]:
    recs = Records(parts)
    label = rng.choice(recs.labels())
    return label, recs.record(label)


def json_set(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Any value of any record replaced (huge, negative, float, string, null, ...)."""
    label, rec = _pick_record(rng, parts)
    path = rng.choice(_paths(rec.obj))
    value = rng.choice(JSON_VALUES)
    rec.obj = _set(rec.obj, path, value)
    return f"{label}{_fmt(path)}={json.dumps(value)}", ANY


def json_delete(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A key (or list item) of any record deleted."""
    label, rec = _pick_record(rng, parts)
    paths = [p for p in _paths(rec.obj) if p and isinstance(_get(rec.obj, p[:-1]), dict | list)]
    if not paths:
        return "nothing to delete", ANY
    path = rng.choice(paths)
    del _get(rec.obj, path[:-1])[path[-1]]
    return f"del {label}{_fmt(path)}", ANY


def json_dup(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Duplicate an element of some list (schema columns, streams, footer entries...)."""
    label, rec = _pick_record(rng, parts)
    lists = [p for p in _paths(rec.obj) if isinstance(_get(rec.obj, p), list) and _get(rec.obj, p)]
    if not lists:
        return "no list", ANY
    path = rng.choice(lists)
    lst = _get(rec.obj, path)
    k = rng.randrange(len(lst))
    lst.insert(rng.randrange(len(lst) + 1), json.loads(json.dumps(lst[k])))
    return f"dup {label}{_fmt(path)}[{k}]", ANY


_SENTINEL = "\u2603FUZZ\u2603"


def _text_with(rec: fp.JsonRecord, path: tuple[Any, ...], text: str) -> bytes:
    obj = _set(json.loads(json.dumps(rec.obj)), path, _SENTINEL)
    return json.dumps(obj, separators=(",", ":")).replace(json.dumps(_SENTINEL), text).encode()


def json_deep(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A value replaced by a list or object nested up to 100,000 levels."""
    label, rec = _pick_record(rng, parts)
    path = rng.choice(_paths(rec.obj))
    depth = rng.choice((200, 1000, 5000, 100_000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    rec.text = _text_with(rec, path, opener * depth + "0" + closer * depth)
    return f"{label}{_fmt(path)} nested x{depth}", REFUSE if depth > 1000 else ANY


def json_huge_list(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A list replaced by one of up to a million items."""
    label, rec = _pick_record(rng, parts)
    lists = [p for p in _paths(rec.obj) if isinstance(_get(rec.obj, p), list)] or [()]
    path = rng.choice(lists)
    n = rng.choice((10_000, 100_000, 1_000_000))
    item = rng.choice(("0", "1", "-1", '"x"', "[]", "null", "1e308"))
    rec.text = _text_with(rec, path, "[" + ",".join([item] * n) + "]")
    return f"{label}{_fmt(path)} = [{item}] x{n}", ANY


def json_text(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Record text that is not the JSON a writer makes: NaN, garbage, BOM, bare values."""
    label, rec = _pick_record(rng, parts)
    base = json.dumps(rec.obj, separators=(",", ":"))
    choices = {
        "nan": base.replace("0", "NaN", 1), "inf": base.replace("1", "Infinity", 1),
        "trailing": base + "}", "bom": "\ufeff" + base, "empty": "", "bare": "7",
        "latin1": base.replace("\"", "\"\xe9", 1), "dupkey": base[:-1] + "," + base[1:]
        if base.startswith("{") else base,
        "cut": base[: len(base) // 2],
    }
    name = rng.choice(list(choices))
    rec.text = choices[name].encode("latin-1" if name == "latin1" else "utf-8", "replace")
    return f"{label} text:{name}", ANY


# =============================================================================== targeted JSON
MODE_LETTERS = "qgplarzQ?x0 "
KNOWN_MODES = "qgplar"
DTYPES_OK = ("<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1",
             "str")
DTYPES_BAD = (">f8", "O", "|O", "V8", "<c16", "<M8[ns]", "<m8[s]", "|S5", "<U3", "f8",
              "float64", "bogus", "", "<f16", "|V0", "<i0", "(2,)<f8")


def _metas(parts: FileParts) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for k, c in enumerate(parts.chunks):
        meta = c.desc.obj.get("meta") if isinstance(c.desc.obj, dict) else None
        if isinstance(meta, dict):
            out += [(k, key, m) for key, m in meta.items() if isinstance(m, dict) and "modes" in m]
    return out


def modes_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A letter of a chunk's modes string changed (unknown letters too), or its length."""
    metas = _metas(parts)
    if not metas:
        return json_set(rng, parts)
    k, key, m = rng.choice(metas)
    modes = str(m["modes"])
    r = rng.random()
    if r < 0.7 and modes:
        j = rng.randrange(len(modes))
        letter = rng.choice(MODE_LETTERS)
        m["modes"] = modes[:j] + letter + modes[j + 1 :]
        expect = ANY if letter in KNOWN_MODES else REFUSE
        return f"desc/{k}.meta.{key}.modes[{j}]={letter!r}", expect
    m["modes"] = modes[:-1] if r < 0.85 else modes + rng.choice(KNOWN_MODES)
    return f"desc/{k}.meta.{key}.modes length {len(modes)}->{len(m['modes'])}", REFUSE


def _columns(parts: FileParts) -> list[dict[str, Any]]:
    h = parts.header.obj
    try:
        return [c for c in h["schema"]["columns"] if isinstance(c, dict)]
    except (KeyError, TypeError):
        return []


def schema_dtype(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    cols = _columns(parts)
    if not cols:
        return json_set(rng, parts)
    c = rng.choice(cols)
    bad = rng.random() < 0.5
    c["dtype"] = rng.choice(DTYPES_BAD if bad else DTYPES_OK)
    return f"schema {c.get('name')}.dtype={c['dtype']!r}", REFUSE if bad else ANY


def schema_dup_name(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    cols = _columns(parts)
    if len(cols) < 2:
        return json_set(rng, parts)
    a, b = rng.sample(range(len(cols)), 2)
    cols[a]["name"] = cols[b].get("name")
    return f"schema column {a} renamed to column {b}'s name {cols[b].get('name')!r}", REFUSE


def coder_columns(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A coder's column list: duplicated, out of range, negative, unknown name, shared."""
    coders = parts.header.obj.get("coders") if isinstance(parts.header.obj, dict) else None
    if not isinstance(coders, list) or not coders:
        return json_set(rng, parts)
    k = rng.randrange(len(coders))
    cols = coders[k].get("columns") if isinstance(coders[k], dict) else None
    if not isinstance(cols, list) or not cols:
        return json_set(rng, parts)
    choice = rng.choice(("dup", "oob", "neg", "name", "drop", "steal"))
    if choice == "dup":
        cols.append(cols[0])
    elif choice == "oob":
        cols[rng.randrange(len(cols))] = 10_000
    elif choice == "neg":
        cols[rng.randrange(len(cols))] = -1
    elif choice == "name":
        cols[rng.randrange(len(cols))] = "no_such_column"
    elif choice == "drop":
        cols.pop()
    else:  # a column owned by another coder too
        other = coders[(k + 1) % len(coders)]
        if isinstance(other, dict) and other.get("columns"):
            cols.append(other["columns"][0])
    return f"coders[{k}].columns {choice}", REFUSE


def chunk_rows(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A chunk claims another row count (0, -1, 10^12, 2^63, off by one)."""
    k = rng.randrange(len(parts.chunks))
    d = parts.chunks[k].desc.obj
    old = d.get("rows", 0)
    new = rng.choice((0, -1, 1, 10**12, 2**63, 2**31, old + 1, max(old - 1, 0), old * 2))
    if new == old:
        new = old + 1
    d["rows"] = new
    return f"desc/{k}.rows {old}->{new}", REFUSE


def footer_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Footer chunk entries inconsistent with the chunks (offsets, sizes, rows, count)."""
    if parts.footer is None:
        return json_set(rng, parts)
    obj = json.loads(json.dumps(fp.footer_for(parts)))
    if not isinstance(obj, dict) or not obj.get("chunks"):
        return json_set(rng, parts)
    entries = obj["chunks"]
    k = rng.randrange(len(entries))
    what = rng.choice(("offset", "size", "rows", "repeat", "total", "drop"))
    if what in ("offset", "size", "rows"):
        entries[k][what] += rng.choice((-16, -1, 1, 16, 10**12))
    elif what == "repeat":
        n = rng.choice((2, 100, 10_000))
        obj["chunks"] = [entries[0]] * n
        obj["rows"] = n * entries[0]["rows"]
    elif what == "total":
        obj["rows"] += rng.choice((-1, 1, 10**12))
    else:
        entries.pop(k)
    parts.footer.obj = obj
    parts.footer.orig = ""
    parts.fix_footer = False
    return f"footer {what} (entry {k})", REFUSE


# =============================================================================== streams
def _all_streams(parts: FileParts) -> list[tuple[int, int]]:
    return [(k, s) for k, c in enumerate(parts.chunks) for s in range(len(c.streams))]


def _pick_stream(rng: random.Random, parts: FileParts, prefix: str = "") -> tuple[int, list[Any]]:
    pool = [(k, s) for k, s in _all_streams(parts)
            if parts.chunks[k].streams[s][0].startswith(prefix)]
    if not pool:
        pool = _all_streams(parts)
    k, s = rng.choice(pool)
    return k, parts.chunks[k].streams[s]


def stream_swap(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k, entry = _pick_stream(rng, parts)
    k2, other = _pick_stream(rng, parts)
    entry[1] = other[1]
    return f"chunk {k} {entry[0]} <- chunk {k2} {other[0]}", ANY


def stream_truncate(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k, entry = _pick_stream(rng, parts)
    n = len(entry[1])
    cut = rng.randrange(n) if n else 0
    entry[1] = entry[1][:cut]
    return f"chunk {k} {entry[0]} cut {n}->{cut}", REFUSE


def stream_empty(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k, entry = _pick_stream(rng, parts)
    entry[1] = b""
    return f"chunk {k} {entry[0]} emptied", REFUSE


def stream_byte(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Edit the filter / width byte (or any early byte) of a stream."""
    k, entry = _pick_stream(rng, parts)
    if not entry[1]:
        return "empty stream", ANY
    b = bytearray(entry[1])
    p = 0 if rng.random() < 0.6 else rng.randrange(min(len(b), 24))
    b[p] = rng.choice((0, 1, 2, 3, 4, 8, 0x21, 0x41, 0x81, 0xE8, 0x1F, 0xFF, rng.randrange(256)))
    entry[1] = bytes(b)
    return f"chunk {k} {entry[0]} byte[{p}]={b[p]}", ANY


def stream_bytes(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Random damage inside a payload with its checksum fixed: the codec must catch it."""
    k, entry = _pick_stream(rng, parts)
    if not entry[1]:
        return "empty stream", ANY
    b = bytearray(entry[1])
    for _ in range(rng.choice((1, 2, 8))):
        b[rng.randrange(len(b))] = rng.randrange(256)
    entry[1] = bytes(b)
    return f"chunk {k} {entry[0]} bytes damaged", ANY


def _with_frame(payload: bytes, fn: Callable[[bytes], bytes]) -> bytes | None:
    at = fp.find_frame(payload)
    if at < 0:
        return None
    return payload[:at] + fn(payload[at:])


def stream_content_size(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A zstd frame whose declared content size is huge or wrong by a little."""
    k, entry = _pick_stream(rng, parts)
    at = fp.find_frame(entry[1])
    if at < 0:
        return stream_truncate(rng, parts)
    real = zstandard.frame_content_size(entry[1][at:])
    real = real if real >= 0 else 0
    size = rng.choice((real + 1, max(real - 1, 0), real * 2, 2**32, 2**40, 2**62, 0))
    entry[1] = entry[1][:at] + fp.set_content_size(entry[1][at:], size)
    return f"chunk {k} {entry[0]} frame declares {size} (holds {real})", REFUSE


def stream_bomb(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Replace a stream's frame by one that really inflates to 64 MiB .. 8 GiB."""
    k, entry = _pick_stream(rng, parts, rng.choice(("col/", "qgroup", "exc/", "latents", "")))
    size = rng.choice((1 << 26, 1 << 26, 1 << 30, 1 << 33))
    frame = fp.rle_frame(size, rng.choice((0, 1, 0x20)))
    at = fp.find_frame(entry[1])
    entry[1] = (entry[1][:at] if at > 0 else entry[1][:1] if entry[0].startswith("col/") else b"") \
        + frame
    return f"chunk {k} {entry[0]} inflates to {size}", REFUSE


def stream_drop(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k, entry = _pick_stream(rng, parts)
    parts.chunks[k].streams.remove(entry)
    optional = str(entry[0]).startswith("exc/")  # exceptions are optional: a valid file
    return f"chunk {k} stream {entry[0]} dropped", ANY if optional else REFUSE


def stream_rename(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k, entry = _pick_stream(rng, parts)
    old = entry[0]
    entry[0] = rng.choice(("col/0", "col/99", "col/-1", "res/0", "exc/0", "sign/0", "qgroup",
                           "latents", "QGROUP", "col/", "/0", "", "col/0/0", old + "x"))
    return f"chunk {k} stream {old} renamed {entry[0]}", ANY


def stream_add(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    k = rng.randrange(len(parts.chunks))
    _, src = _pick_stream(rng, parts)
    name = rng.choice(("exc/0", "exc/1", "res/0", "sign/1", "latents", "qgroup", "col/0", "x/0"))
    parts.chunks[k].streams.append([name, src[1]])
    return f"chunk {k} extra stream {name}", ANY


def stream_desync(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A descriptor whose stream entries disagree with the payloads (sizes or hashes)."""
    k = rng.randrange(len(parts.chunks))
    c = parts.chunks[k]
    if not c.streams:
        return "no stream", ANY
    entries = [[n, len(b), fp.xxh64_hex(b)] for n, b in c.streams]
    s = rng.randrange(len(entries))
    what = rng.choice(("size+", "size-", "huge", "negative", "hash", "float", "string"))
    entries[s][1] = {"size+": entries[s][1] + 1, "size-": max(entries[s][1] - 1, 0),
                     "huge": 2**62, "negative": -5, "float": entries[s][1] + 0.5,
                     "string": str(entries[s][1]), "hash": entries[s][1]}[what]
    if what == "hash":
        entries[s][2] = "0" * 16
    c.desc.obj["streams"] = entries
    c.fix_streams = False
    return f"chunk {k} descriptor stream {entries[s][0]} {what}", REFUSE


def _pack_codes(codes: list[int]) -> bytes:
    """An integer code stream: width byte 8, unshuffled (0x40), zigzag; zstd frame."""
    c = np.asarray(codes, dtype=np.int64)
    u = ((c << 1) ^ (c >> 63)).astype("<u8")
    return bytes([8 | 0x40]) + zstandard.ZstdCompressor().compress(u.tobytes())


def exc_rows(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Exception streams whose row indices are out of range or negative, or a lying count."""
    k, entry = _pick_stream(rng, parts, "exc/")
    if not entry[0].startswith("exc/") or len(entry[1]) < 16:
        return stream_bytes(rng, parts)
    data = entry[1]
    m = int.from_bytes(data[:8], "little")
    blen = int.from_bytes(data[8:16], "little")
    values = data[16 + blen :]
    rows = parts.chunks[k].rows
    what = rng.choice(("beyond", "negative", "count", "blen", "values"))
    if what in ("beyond", "negative") and 0 < m <= rows:  # m from a stream another
        # mutation damaged can be ~1e19: the reader refuses that count by itself
        big = rng.choice((0, 5, 10**9))
        target = rows + big if what == "beyond" else -max(big, 1)
        idx = list(range(m - 1)) + [target]
        body = _pack_codes(list(np.diff(np.asarray(idx, dtype=np.int64), prepend=0)))
        entry[1] = struct.pack("<QQ", m, len(body)) + body + values
    elif what == "count":
        entry[1] = struct.pack("<Q", rng.choice((m + 1, 2**40, 2**64 - 1))) + data[8:]
    elif what == "blen":
        entry[1] = data[:8] + struct.pack("<Q", rng.choice((blen + 1, 2**63, 0))) + data[16:]
    else:
        entry[1] = data[: 16 + blen] + values[: max(len(values) - 8, 0)]
    return f"chunk {k} {entry[0]} {what} (m={m}, rows={rows})", REFUSE


def qgroup_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Edit inside the qgroup frame: a part's length or head byte, or drop the last part."""
    k, entry = _pick_stream(rng, parts, "qgroup")
    if entry[0] != "qgroup":
        return stream_bytes(rng, parts)
    try:
        body = bytearray(zstandard.ZstdDecompressor().decompress(entry[1]))
    except zstandard.ZstdError:
        return stream_bytes(rng, parts)
    if len(body) < 5:
        return stream_bytes(rng, parts)
    what = rng.choice(("length", "head", "cut", "extra"))
    if what == "length":
        body[1:5] = rng.choice((0, 1, 2**31, 2**32 - 1, len(body))).to_bytes(4, "little")
    elif what == "head":
        body[0] = rng.choice((0, 3, 5, 0x48, 0xFF))
    elif what == "cut":
        del body[rng.randrange(len(body)) :]
    else:
        body += bytes([8]) + (2**31).to_bytes(4, "little")
    entry[1] = zstandard.ZstdCompressor().compress(bytes(body))
    return f"chunk {k} qgroup {what}", REFUSE if what != "head" else ANY


# =============================================================================== chunks
def _chunk_op(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    n = len(parts.chunks)
    op = rng.choice(("swap", "dup", "drop", "shuffle", "reverse") if n > 1 else ("dup", "drop"))
    order = list(range(n))
    if op == "swap":
        i, j = rng.sample(range(n), 2)
        order[i], order[j] = order[j], order[i]
    elif op == "dup":
        i = rng.randrange(n)
        order.insert(rng.randrange(n + 1), i)
    elif op == "drop" and n > 1:
        order.pop(rng.randrange(n))
    elif op == "shuffle":
        while order == sorted(order):
            rng.shuffle(order)
    elif op == "reverse":
        order.reverse()
    parts.chunks = [json_copy_chunk(parts.chunks[i]) for i in order]
    prefix = order == list(range(len(order)))  # the last chunk dropped: a valid shorter file
    return f"{op} -> order {order}", ANY if prefix else REFUSE


def json_copy_chunk(c: fp.Chunk) -> fp.Chunk:
    return fp.Chunk(fp.JsonRecord(json.loads(json.dumps(c.desc.obj)), c.desc.stored,
                                  orig=c.desc.orig),
                    [list(s) for s in c.streams], c.mark, c.checksum, c.fix_streams)


def chunk_order(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Swap, duplicate, drop or reorder chunks; the footer rebuilt, kept, or dropped;
    descriptors renumbered (a valid file) or not (must be refused)."""
    before = fp.footer_for(parts)
    what, expect = _chunk_op(rng, parts)
    how = rng.choice(("footer rebuilt", "footer rebuilt", "footer kept", "no footer",
                      "renumbered"))
    if how == "renumbered":
        parts.renumber()
        expect = ANY
    elif how == "footer kept" and parts.footer is not None:
        parts.footer.obj = before
        parts.footer.orig = ""
        parts.fix_footer = False
    elif how == "no footer":
        parts.footer = None
    return f"chunks {what}, {how}", expect


def footer_drop(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """No footer (writer died): refused without recover, a correct prefix with it."""
    what = "footer dropped"
    if parts.footer is not None:
        parts.footer = None
    if rng.random() < 0.5 and parts.chunks:
        k = rng.randrange(len(parts.chunks))
        c = parts.chunks[k]
        if c.streams and rng.random() < 0.5:
            c.streams[-1][1] = c.streams[-1][1][: len(c.streams[-1][1]) // 2]
            c.fix_streams = False
            what += f", chunk {k} cut short"
        else:
            parts.chunks = parts.chunks[: k + 1]
            parts.tail = b"BCHK" + bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
            what += f", junk after chunk {k}"
    return what, REFUSE


def gap_tail(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 16, 100))))
    if rng.random() < 0.5:
        parts.gap = junk
        return f"{len(junk)} junk bytes before the footer", ANY
    parts.tail = junk
    return f"{len(junk)} junk bytes after the trailer", REFUSE


# =============================================================================== attachments
def _decoder_coder(parts: FileParts) -> dict[str, Any] | None:
    h = parts.header.obj
    for c in (h.get("coders") or []) if isinstance(h, dict) else []:
        if isinstance(c, dict) and isinstance(c.get("decoder_attachment"), str):
            return c
    return None


def _set_decoder(parts: FileParts, onnx: bytes, fix_sha: bool) -> None:
    coder = _decoder_coder(parts)
    assert coder is not None
    name = coder["decoder_attachment"]
    blob = zstandard.ZstdCompressor(level=3).compress(onnx) if name.endswith(".zst") else onnx
    for a in parts.attachments:
        if a[0] == name:
            a[1] = blob
    if fix_sha:
        key = "decoder_attachment_sha256" if "decoder_attachment_sha256" in coder else \
            "decoder_sha256"
        coder[key] = hashlib.sha256(onnx).hexdigest()


def attachment_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Embedded decoder replaced (random, truncated or damaged ONNX), sha256 fixed or not."""
    coder = _decoder_coder(parts)
    if coder is None or not parts.attachments:
        return json_set(rng, parts)
    name = coder["decoder_attachment"]
    blob = next((b for n, b in parts.attachments if n == name), b"")
    try:
        onnx = zstandard.ZstdDecompressor().decompress(blob) if name.endswith(".zst") else blob
    except zstandard.ZstdError:
        onnx = blob
    fix = rng.random() < 0.8
    what = rng.choice(("random", "truncated", "damaged", "empty", "raw", "rename", "size"))
    if not onnx and what in ("truncated", "damaged"):
        what = "random"
    expect = REFUSE
    if what == "random":
        _set_decoder(parts, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048))), fix)
    elif what == "truncated":
        _set_decoder(parts, onnx[: rng.randrange(len(onnx))], fix)
    elif what == "damaged":
        b = bytearray(onnx)
        for _ in range(rng.choice((1, 4, 16))):
            b[rng.randrange(len(b))] = rng.randrange(256)
        _set_decoder(parts, bytes(b), fix)
        expect = ANY  # changed weights are a different, valid model
    elif what == "empty":
        _set_decoder(parts, b"", fix)
    elif what == "raw":  # the ONNX bytes where a zstd frame is expected
        for a in parts.attachments:
            if a[0] == name:
                a[1] = onnx
    elif what == "rename":
        coder["decoder_attachment"] = rng.choice(("missing.onnx.zst", "", name + "x"))
    else:
        parts.fix_attachments = False
        atts = parts.header.obj.get("attachments") or []
        for a in atts:
            a[1] = rng.choice((a[1] + 1, max(a[1] - 1, 0), 2**62, -1))
    return f"decoder attachment {what} (sha {'fixed' if fix else 'stale'})", expect


# =============================================================================== preamble
def preamble_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Flags or version changed, records re-encoded for the new flags or not."""
    what = rng.choice(("flags", "flags", "version", "header_len", "magic"))
    if what == "flags":
        new = rng.choice((0, 1, 2, 3, 4, 5, 7, 0x80000000, 0xFFFFFFFF))
        old = parts.flags
        reencode = new in (0, 1, 3) and rng.random() < 0.5
        if reencode:
            _reencode(parts, new)
        parts.flags = new
        return f"flags {old}->{new}{' (records re-encoded)' if reencode else ''}", \
            ANY if reencode else REFUSE
    if what == "version":
        old = parts.version
        parts.major, parts.minor = rng.choice(((1, 0), (2, 0), (2, 1), (2, 2), (2, 65535),
                                               (3, 0), (0, 0), (65535, 0), (1, 1)))
        return f"version {old}->{parts.version}", ANY
    if what == "header_len":
        parts.header_len = len(parts.header.encode(parts.flags)) + rng.choice((-1, 1, 2**31))
        parts.header_xxh64 = None
        return f"header_len -> {parts.header_len}", REFUSE
    parts.magic = rng.choice((b"\x89BLR\n\x1a\n\n", b"\x89BLR\r\n\x1a\x00", b"\x00" * 8))
    return f"magic {parts.magic!r}", REFUSE


def _reencode(parts: FileParts, flags: int) -> None:
    """Make every record re-dump (under the flags `write` will use)."""
    del flags
    recs = Records(parts)
    for label in recs.labels():
        r = recs.record(label)
        r.orig = ""  # forces a fresh dump with the new flags


# =============================================================================== codec records
META_VALUES: dict[str, tuple[Any, ...]] = {
    "offsets": (2**53, -(2**53), 2**53 + 1, 2**62, 0.5, -1, "1", None),
    "grouped": (0, 1, 2, 3, -1, True, 1.0, None),
    "rel_eps": (0.0, 5e-324, 1e-9, 0.5, 0.5000001, -1e-3, 1.0, None),
}


def meta_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """A chunk's coder metadata: offsets, grouped, rel_eps, modes swapped between letters."""
    metas = _metas(parts)
    if not metas:
        return json_set(rng, parts)
    k, key, m = rng.choice(metas)
    field_ = rng.choice(("offsets", "grouped", "rel_eps", "swap"))
    F = len(str(m.get("modes", "")))
    if field_ == "swap":
        pairs = {"q": "g", "g": "q", "p": "r", "r": "p", "a": "p", "l": "g"}
        modes = str(m.get("modes", ""))
        j = rng.randrange(max(len(modes), 1))
        if modes:
            m["modes"] = modes[:j] + pairs.get(modes[j], "q") + modes[j + 1 :]
        return f"desc/{k}.meta.{key}.modes[{j}] swapped", ANY
    value = rng.choice(META_VALUES[field_])
    if field_ == "grouped":
        m["grouped"] = value
    else:
        lst = m.get(field_) if isinstance(m.get(field_), list) else [0] * F
        if lst and rng.random() < 0.8:
            lst[rng.randrange(len(lst))] = value
        else:
            lst = [value] * rng.choice((F, F + 1, max(F - 1, 0)))
        m[field_] = lst
    return f"desc/{k}.meta.{key}.{field_} <- {json.dumps(value)}", ANY


CODER_VALUES: tuple[Any, ...] = (5e-324, 1e-300, 1e-12, 0.25, 0.4999, 0.5, 1.0, 1e300, 0.0, -1.0)


def coder_edit(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """The autoencoder coder's header record: bound, abs_bounds, margins, model fields."""
    coders = parts.header.obj.get("coders") if isinstance(parts.header.obj, dict) else None
    ae = [c for c in coders or [] if isinstance(c, dict) and c.get("id") == "autoencoder"]
    if not ae:
        return json_set(rng, parts)
    c = rng.choice(ae)
    model = c.get("model") if isinstance(c.get("model"), dict) else None
    keys = ["bound.value", "bound.mode", "abs_bounds", "margin", "exact_drift", "latent_step"]
    if model:
        keys += ["norm.offset", "norm.scale", "latent_bits", "latent_dim", "decoder_io",
                 "anchors", "predicted"]
    key = rng.choice(keys)
    value: Any = rng.choice(CODER_VALUES)
    if key == "bound.mode" and isinstance(c.get("bound"), dict):
        value = rng.choice(("abs", "rel", "pwrel", "PWREL", ""))
        c["bound"]["mode"] = value
    elif key == "bound.value" and isinstance(c.get("bound"), dict):
        c["bound"]["value"] = value
    elif key == "abs_bounds" and isinstance(c.get("abs_bounds"), list) and c["abs_bounds"]:
        c["abs_bounds"][rng.randrange(len(c["abs_bounds"]))] = value
    elif key.startswith("norm.") and model and model.get("normalization"):
        rng.choice(model["normalization"])[key[5:]] = value
    elif key in ("latent_bits", "latent_dim") and model:
        value = rng.choice((0, 1, 2, 16, 17, 4096, model.get(key, 0) + 1))
        model[key] = value
    elif key == "decoder_io" and model:
        value = rng.choice(("float32", "float64", None))
        model[key] = value
    elif key in ("anchors", "predicted") and model and model.get("columns"):
        value = rng.sample(model["columns"], rng.randrange(len(model["columns"]) + 1))
        model[key] = value
    else:
        c[key] = value
    return f"coder {key} <- {json.dumps(value)}", ANY


def stream_inner(rng: random.Random, parts: FileParts) -> tuple[str, str]:
    """Edit a stream's decompressed content and recompress it (declared size correct), so
    the codec's own parsing (filters, widths, lengths, UTF-8, exceptions) is reached."""
    k, entry = _pick_stream(rng, parts)
    at = fp.find_frame(entry[1])
    if at < 0:
        return stream_bytes(rng, parts)
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(entry[1][at:])
        content = bytearray(reader.read(64 << 20))
    except zstandard.ZstdError:
        return stream_bytes(rng, parts)
    if not content:
        return stream_bytes(rng, parts)
    what = rng.choice(("bytes", "cut", "extend", "u32", "utf8"))
    if what == "bytes":
        for _ in range(rng.choice((1, 2, 8, 64))):
            content[rng.randrange(len(content))] = rng.randrange(256)
    elif what == "cut":
        del content[rng.randrange(len(content)) :]
    elif what == "extend":
        content += bytes(rng.choice((1, 7, 8, 4096)))
    elif what == "u32":
        p = rng.randrange(0, max(len(content) - 4, 1), 4) if len(content) >= 4 else 0
        content[p : p + 4] = rng.choice((0, 2**31, 2**32 - 1, len(content))).to_bytes(4, "little")
    else:
        p = rng.randrange(len(content))
        content[p] = rng.choice((0x80, 0xC0, 0xFF, 0xED))
    frame = zstandard.ZstdCompressor(level=3).compress(bytes(content))
    entry[1] = entry[1][:at] + frame
    return f"chunk {k} {entry[0]} content {what}", ANY


# =============================================================================== driver
STRUCTURAL_OPS: dict[str, tuple[Callable[[random.Random, FileParts], tuple[str, str]], int]] = {
    "json.set": (json_set, 12), "json.delete": (json_delete, 5), "json.dup": (json_dup, 4),
    "json.deep": (json_deep, 2), "json.hugelist": (json_huge_list, 1), "json.text": (json_text, 3),
    "meta.modes": (modes_edit, 5), "schema.dtype": (schema_dtype, 4),
    "schema.dupname": (schema_dup_name, 2), "coder.columns": (coder_columns, 3),
    "chunk.rows": (chunk_rows, 3), "footer.edit": (footer_edit, 4),
    "stream.swap": (stream_swap, 5), "stream.truncate": (stream_truncate, 3),
    "stream.empty": (stream_empty, 2), "stream.byte": (stream_byte, 5),
    "stream.bytes": (stream_bytes, 6), "stream.size": (stream_content_size, 4),
    "stream.bomb": (stream_bomb, 1), "stream.drop": (stream_drop, 2),
    "stream.rename": (stream_rename, 2), "stream.add": (stream_add, 2),
    "stream.desync": (stream_desync, 3), "exc.rows": (exc_rows, 4), "qgroup": (qgroup_edit, 4),
    "chunk.order": (chunk_order, 8), "footer.drop": (footer_drop, 4), "gap": (gap_tail, 2),
    "attachment": (attachment_edit, 4), "preamble": (preamble_edit, 4),
    "meta.edit": (meta_edit, 5), "coder.edit": (coder_edit, 5), "stream.inner": (stream_inner, 8),
}


def structural_mutation(rng: random.Random, t: Target, as21: bool = False) -> Mutation:
    """One structural edit (sometimes two) of a seed, written back with checksums fixed."""
    parts = t.parts.copy()
    if as21 and parts.version == (2, 0):
        parts.upgrade_to_21()
    names = list(STRUCTURAL_OPS)
    weights = [STRUCTURAL_OPS[n][1] for n in names]
    picked = rng.choices(names, weights)
    if rng.random() < 0.1:
        picked += rng.choices(names, weights)
    details, expects = [], []
    for name in picked:
        detail, exp = STRUCTURAL_OPS[name][0](rng, parts)
        details.append(detail)
        expects.append(exp)
    # stacked: one edit that may legitimately change the data makes any outcome plausible
    expect = ANY if ANY in expects else REFUSE
    return Mutation(fp.write(parts), "+".join(picked), "; ".join(details), "structural", expect)
