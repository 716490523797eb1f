"""A whole ROOT tree as Sections, step by step, and Sections back to a ROOT tree.

Every branch lands somewhere, under its own name and dtype:

* flat numeric and string branches, counters included: the ``events`` section;
* fixed-size arrays (``float x[3]``): columns ``x[0]``, ``x[1]``, ... of ``events``,
  rebuilt as the array branch on output;
* jagged numeric branches: one section per collection (the branches sharing a counter,
  or, without a counter branch, a name prefix and equal lengths), one row per object;
* nested vectors of numbers (``var * var * T``) and vectors of strings: chained sections
  of their own (``__lists__/x``, ``__values__/x``; formats/sections.py).

A branch of any other type (deeper nesting, classes, records) stops the read with its
name and type, unless the caller allows leaving such branches out; then they are listed
in a warning and in the file's source record (`skipped`), never dropped silently. Other
objects in the file (histograms, other trees) are listed the same way.

Writing Sections back to a TTree or an RNTuple: formats/root_writers.py.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io_root import (
    CHAINED_KINDS,
    _Field,
    _list_trees,
    _modules,
    _native,
    _pick_tree,
    classify,
    open_root,
    other_objects,
    unreadable,
)
from .root_writers import (  # noqa: F401  (the writers were defined here before)
    ROOT_FORMATS,
    RNTupleWriter,
    RootTreeWriter,
    SkippedBranchWarning,
    root_compression,
    root_writer,
    write_root_sections,
)
from .sections import (
    ARRAY_COLUMN,
    EVENTS,
    LISTS,
    SYNTHETIC_COUNTER,
    VALUES,
    Sections,
    SectionStream,
    array_columns,
)
from .table import Table


@dataclass
class _Collection:
    name: str
    counter: str  # a branch of the events section, or SYNTHETIC_COUNTER + name
    members: list[_Field]
    synthetic: bool


def _group(fields: list[_Field], flat_names: set[str]) -> list[_Collection]:
    """Jagged branches by counter; those without one by name prefix."""
    by_counter: dict[str, list[_Field]] = {}
    loose: dict[str, list[_Field]] = {}
    for f in fields:
        if f.kind != "jagged":
            continue
        if f.counter and f.counter in flat_names:
            by_counter.setdefault(f.counter, []).append(f)
        else:
            loose.setdefault(f.name.split("_", 1)[0] if "_" in f.name else f.name, []).append(f)
    out: list[_Collection] = []
    taken: set[str] = {EVENTS}
    for counter, members in by_counter.items():
        prefixes = {m.name.split("_", 1)[0] for m in members}
        name = prefixes.pop() if len(prefixes) == 1 else counter
        if name in taken:
            name = counter
        taken.add(name)
        out.append(_Collection(name, counter, members, False))
    for prefix, members in loose.items():
        name = prefix if prefix not in taken else prefix + "_"
        counter = next((c for c in ("n" + prefix, "N" + prefix) if c in flat_names), None)
        taken.add(name)
        out.append(_Collection(name, counter or SYNTHETIC_COUNTER + name, members,
                               counter is None))
    return out


def _open(path: Path, tree: str | None) -> tuple[Any, Any, str, str, list[dict[str, str]]]:
    """The ROOT file, the tree object, its name and class, and the file's other objects."""
    file = open_root(path, array_cache=None, object_cache=None)
    trees = _list_trees(file)
    try:
        tree = _pick_tree(path, trees, tree)
    except InputError:
        file.close()
        raise
    return file, file[tree], tree, trees[tree], other_objects(file, tree)


def _classified(path: Path, tree: str | None) -> tuple[Any, Any, str, str, list[Any],
                                                      list[_Field]]:
    """`_open` plus how each branch maps to a table (flat, jagged, string, array, other)."""
    uproot, ak = _modules()
    file, obj, tree, cls, others = _open(path, tree)
    fields = classify(path, tree, obj, "RNTuple" in cls)
    return file, obj, tree, cls, others, fields


def needs_sections(path: Path, *, tree: str | None = None, columns: list[str] | None = None
                   ) -> bool:
    """Whether the selected branches need Sections: anything but flat numbers/strings,
    or a tree without entries (a table of no rows is refused; a tree of no events is a
    valid, empty run)."""
    from .tableio import select_names

    file, obj, _, _, _, fields = _classified(path, tree)
    with file:
        names = [f.name for f in fields]
        wanted = set(names if columns is None else select_names(names, columns, path))
        return int(obj.num_entries) == 0 or any(
            f.kind not in ("flat", "string") for f in fields if f.name in wanted)


def open_root_sections(path: str | Path, *, tree: str | None = None,
                       columns: list[str] | None = None, allow_skip: bool = False
                       ) -> SectionStream:
    """A SectionStream over a whole tree (or the branches `columns` selects; the counters
    of selected jagged branches come with them)."""
    from .tableio import select_names

    _, ak = _modules()
    path = Path(path)
    file, obj, tree, cls, others, fields = _classified(path, tree)
    is_ntuple = "RNTuple" in cls
    by_name = {f.name: f for f in fields}
    wanted = [f.name for f in fields] if columns is None else select_names(list(by_name), columns, path)
    for f in [by_name[n] for n in wanted]:  # a selected jagged branch brings its counter
        if f.kind == "jagged" and f.counter in by_name and f.counter not in wanted:
            wanted.append(f.counter)
    order = [f.name for f in fields if f.name in set(wanted)]
    chosen = [by_name[n] for n in order]
    views = _record_views(obj, chosen, by_name) if is_ntuple else []
    chosen = [f for f in chosen if f.name not in views]
    bad = [f for f in chosen if f.kind == "other"]
    if bad and not allow_skip:
        desc = ", ".join(f"{f.name} ({f.detail})" for f in bad[:10])
        raise InputError(
            f"{path}: branch(es) {desc} have types balerc cannot store yet (classes, "
            f"structs, lists nested three deep); leave them out with --columns, or pass "
            f"--skip-unsupported to compress the rest and list them in the file")
    chosen = [f for f in chosen if f.kind != "other"]
    flat = [f for f in chosen if f.kind in ("flat", "string", "array")]
    _check_array_names(path, flat)
    collections = _group(chosen, {f.name for f in flat})
    chains = [f for f in chosen if f.kind in CHAINED_KINDS]
    source = {"format": "root", "path": Path(path).name, "tree": tree,
              "tree_class": "RNTuple" if is_ntuple else "TTree",
              "title": str(getattr(obj, "title", "") or ""),
              "compression": compression_code(file, obj, is_ntuple),
              "n_entries": int(obj.num_entries),
              "branches": [_branch_record(f, collections) for f in chosen]}
    if views:
        source["views"] = views  # RNTuple collections whose fields are stored one by one
    if columns is None and not others:  # the whole file: a ratio against its size means something
        source["size"] = path.stat().st_size
    _left_out(path, source, [{"name": f.name, "type": f.detail} for f in bad], others)
    stored = {f.name for f in chosen}
    pools = {} if is_ntuple else _executors()

    def read(a: int, b: int) -> Sections:
        try:
            arrays = obj.arrays(filter_name=lambda n: n in stored, entry_start=a,
                                entry_stop=b, library="ak", **pools)
        except Exception as exc:  # a damaged basket: zlib, lzma, zstd or uproot errors
            raise unreadable(path, exc, f"tree '{tree}', entries {a:,} to {b:,}") from None
        return _to_sections(path, arrays, flat, collections, chains, source, ak)

    n = int(obj.num_entries)
    first = read(0, min(n, 1))
    return SectionStream(first, n, read)


def compression_code(file: Any, obj: Any, is_ntuple: bool) -> int:
    """ROOT's compression setting of the tree (its first branch's, else the file's), so
    a tree written back is compressed as the source was (e.g. 101 = ZLIB 1, 505 = ZSTD 5)."""
    try:
        code = int(obj.branches[0].member("fCompress")) if not is_ntuple and obj.branches else 0
        return code if code > 0 else int(file.file.fCompress)  # uproot writes 0: the file's
    except Exception:  # a file without the member: uproot's default then
        return 101


def _executors() -> dict[str, Any]:
    """Threads for uproot's basket decompression and interpretation (zlib, lzma and zstd
    release the GIL): reading a 1M-event tree went from 5.5 s to 3.6 s on 2 cores."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if cores < 2:
        return {}
    pool = ThreadPoolExecutor(min(cores, 8), thread_name_prefix="balerc-root")
    return {"decompression_executor": pool, "interpretation_executor": pool}


def _record_views(obj: Any, chosen: list[_Field], by_name: dict[str, _Field]) -> list[str]:
    """RNTuple fields that are lists of records whose every field is also a top-level
    jagged field (uproot shows an RNTuple collection both ways): the same data twice."""
    probe = obj.arrays(entry_stop=0)
    out = []
    for f in chosen:
        if f.kind != "other":
            continue
        fields = getattr(probe[f.name], "fields", None) or []
        if fields and all(by_name.get(x) is not None and by_name[x].kind == "jagged"
                          for x in fields):
            out.append(f.name)
    return out


def _branch_record(f: _Field, collections: list[_Collection]) -> dict[str, Any]:
    """What the writer needs to rebuild a branch in its place: kind, section, shape."""
    rec: dict[str, Any] = {"name": f.name, "kind": f.kind}
    if f.kind == "jagged":
        rec["section"] = next(c.name for c in collections if f in c.members)
    if f.kind in CHAINED_KINDS:
        rec["section"] = VALUES + f.name
    if f.kind == "array" and f.dtype is not None:
        rec["shape"] = list(f.dtype.shape)
    return rec


def _check_array_names(path: Path, flat: list[_Field]) -> None:
    """A fixed-size array x is stored as the columns x[0], x[1], ... (x[0][0], ... for
    2-D): a branch named like one of them, or an array whose own name ends in [k], would
    be read back as part of another branch (one overwrote the other, silently)."""
    arrays = {f.name for f in flat if f.kind == "array"}
    for f in flat:
        m = ARRAY_COLUMN.match(f.name)
        if m is None:
            continue
        if f.kind == "array":
            raise InputError(
                f"{path}: the fixed-size array branch '{f.name}' ends in an index; its "
                f"element columns ({f.name}[0], ...) would read as those of '{m.group(1)}'. "
                f"Leave it out with --columns, or rename it in the source")
        if m.group(1) in arrays:
            raise InputError(
                f"{path}: branch '{f.name}' has the name of an element of the fixed-size "
                f"array '{m.group(1)}' (stored as the columns {m.group(1)}[0], "
                f"{m.group(1)}[1], ...); leave one of them out with --columns")


def _left_out(path: Path, source: dict[str, Any], skipped: list[dict[str, str]],
              others: list[dict[str, str]]) -> None:
    """Record what the file holds that is not stored (branches, other objects), and say it."""
    if skipped:
        source["skipped"] = skipped
    if others:
        source["other_objects"] = others
    if skipped or others:
        warn_left_out(path, skipped, others)


def warn_left_out(path: Path, skipped: list[dict[str, str]], others: list[dict[str, str]]) -> None:
    parts = []
    if skipped:
        parts.append("branches not stored: " + ", ".join(f"{s['name']} ({s['type']})"
                                                          for s in skipped[:20]))
    if others:
        parts.append("other objects not stored: " + ", ".join(f"{o['name']} ({o['class']})"
                                                               for o in others[:20]))
    warnings.warn(SkippedBranchWarning(f"{path}: " + "; ".join(parts)), stacklevel=3)


def _to_sections(path: Path, arrays: Any, flat: list[_Field], collections: list[_Collection],
                 chains: list[_Field], source: dict[str, Any], ak: Any) -> Sections:
    """One step of entries as Sections (events, one per collection, and the chained
    sections of each nested branch)."""
    events: dict[str, np.ndarray] = {}
    for f in flat:
        a = arrays[f.name]
        if f.kind == "string":
            events[f.name] = np.array([str(v) for v in ak.to_list(a)], dtype=object)
        elif f.kind == "array":
            events.update(array_columns(f.name, _native(ak.to_numpy(a))))
        else:
            events[f.name] = _native(ak.to_numpy(a))
    tables: dict[str, Table] = {}
    layouts: dict[str, dict[str, Any]] = {EVENTS: {"kind": "events"}}
    for c in collections:
        counts = np.asarray(ak.to_numpy(ak.num(arrays[c.members[0].name], axis=1)))
        cols = {}
        for m in c.members:
            a = arrays[m.name]
            if not np.array_equal(np.asarray(ak.to_numpy(ak.num(a, axis=1))), counts):
                raise InputError(f"{path}: branch {m.name} has other lengths than "
                                 f"{c.members[0].name} in some events; they cannot share "
                                 f"section '{c.name}'")
            cols[m.name] = _native(ak.to_numpy(ak.flatten(a, axis=1)))
        if c.synthetic:
            events[c.counter] = counts.astype(np.int32)
        elif not np.array_equal(events[c.counter], counts):
            raise InputError(f"{path}: branch {c.counter} does not count the objects of "
                             f"{c.members[0].name} in some events")
        tables[c.name] = Table(cols)
        layouts[c.name] = {"kind": "collection", "counter": c.counter,
                           "counter_section": EVENTS}
    for f in chains:
        _add_chain(f, arrays[f.name], events, tables, layouts, ak)
    out = Sections({EVENTS: Table(events), **tables}, layouts, dict(source))
    out.check(f"{path}: ")
    return out


def _add_chain(f: _Field, a: Any, events: dict[str, np.ndarray], tables: dict[str, Table],
               layouts: dict[str, dict[str, Any]], ak: Any) -> None:
    """A nested branch as chained sections: lists per event (events), values per list
    (``__lists__/x``) and the values (``__values__/x``); a vector of strings skips the
    list level."""
    parent, values = EVENTS, a
    if f.kind == "nested":
        parent = LISTS + f.name
        events[parent] = np.asarray(ak.to_numpy(ak.num(a, axis=1)), dtype=np.int32)
        values = ak.flatten(a, axis=1)
        layouts[parent] = {"kind": "collection", "counter": parent, "counter_section": EVENTS}
    counts = np.asarray(ak.to_numpy(ak.num(values, axis=1)), dtype=np.int32)
    flat = ak.flatten(values, axis=1)
    if f.kind == "jagged-string":
        column = np.array([str(v) for v in ak.to_list(flat)], dtype=object)
    else:
        column = _native(np.asarray(ak.to_numpy(flat)))
    name = VALUES + f.name
    if parent == EVENTS:
        events[name] = counts
    else:
        tables[parent] = Table({name: counts})
    tables[name] = Table({f.name: column})
    layouts[name] = {"kind": "collection", "counter": name, "counter_section": parent}
