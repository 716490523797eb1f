"""Sections back to a ROOT tree, step by step: a TTree or an RNTuple, written by uproot.

`root_format` picks the kind: ``auto`` writes the source's kind (an RNTuple source comes
back as an RNTuple, anything else as a TTree), ``ttree`` or ``rntuple`` force one.

* TTree: branches in the source's order, collections as jagged branches sharing their
  counter (every counter an ``int32`` branch: uproot writes counters as ``Int_t``,
  ROOT's convention; the .balerc file keeps the source's dtype), fixed-size arrays as
  array branches. uproot 5.7 cannot write nested vectors or vectors of strings into a
  TTree: such branches are left out with a SkippedBranchWarning that names them and says
  how to get them (``--root-format rntuple``, or ``Sections.to_awkward`` in Python).
* RNTuple: every stored branch as a field of its stored type, in the source's order
  (counters are plain integer fields, as in an RNTuple source; a TTree's synthetic
  counters are not written). Nested vectors and vectors of strings included.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io_root import CHAINED_KINDS, _modules
from .sections import (
    EVENTS,
    LISTS,
    SYNTHETIC_COUNTER,
    VALUES,
    Sections,
    _array_parts,
    is_structural,
    strings_layout,
)
from .table import Table

BASKET_EVENTS = 50_000
ROOT_FORMATS = ("auto", "ttree", "rntuple")


class SkippedBranchWarning(UserWarning):
    """Branches or objects of a ROOT file that a .balerc file (or its output) does not carry."""


UNCOMPRESSED = "uncompressed"  # root_compression('none' or 0): baskets stored as they are


def root_compression(spec: str | int | None) -> Any:
    """An uproot codec from 'zstd:5', 'lzma:9', 'zlib:1', 'lz4:1', 'none' or ROOT's code;
    None when not given (the source's setting then), UNCOMPRESSED for 'none' and 0."""
    uproot, _ = _modules()
    if spec is None:
        return None
    codecs = {"zstd": uproot.ZSTD, "lzma": uproot.LZMA, "zlib": uproot.ZLIB, "lz4": uproot.LZ4}
    usage = (f"write ALGO[:LEVEL] with ALGO one of {', '.join(codecs)} or none, e.g. zstd:5, "
             f"or ROOT's code 100 x algorithm + level (e.g. 505)")
    if isinstance(spec, int) or str(spec).isdigit():
        if not int(spec):
            return UNCOMPRESSED
        make, arg = uproot.compression.Compression.from_code, int(spec)
    else:
        algo, _, level = str(spec).lower().partition(":")
        if algo == "none":
            return UNCOMPRESSED
        if algo not in codecs or (level and not level.isdigit()):
            raise InputError(f"--root-compression '{spec}': {usage}")
        make, arg = codecs[algo], int(level) if level else 1
    try:
        return make(arg)
    except ValueError as exc:  # uproot's range check on the level or code
        raise InputError(f"--root-compression '{spec}': {exc}; {usage}") from None


def root_writer(path: str | Path, first: Sections, compression: Any = None,
                root_format: str = "auto", label: str = "") -> RootTreeWriter | RNTupleWriter:
    """The writer of the kind `root_format` asks for (``auto``: the source's kind);
    `label` names the .balerc file in warnings."""
    if root_format not in ROOT_FORMATS:
        raise InputError(f"--root-format '{root_format}': use one of {', '.join(ROOT_FORMATS)}")
    if root_format == "auto":
        root_format = "rntuple" if first.source.get("tree_class") == "RNTuple" else "ttree"
    try:
        if root_format == "rntuple":
            return RNTupleWriter(path, first, compression)
        return RootTreeWriter(path, first, compression, label)
    except InputError as exc:  # name the .balerc file the tree comes from
        if label and not str(exc).startswith(label):
            raise InputError(f"{label}: {exc}") from None
        raise


def write_root_sections(sections: Sections, path: str | Path, compression: Any = None,
                        root_format: str = "auto", label: str = "") -> None:
    """Write Sections as one tree (`root_writer`). `compression`: an uproot codec (e.g.
    ``uproot.ZSTD(5)``; default the source's, else uproot's ZLIB 1). The sections are
    checked first (a collection cut short had been written as a short tree) and the
    file is written beside `path` and renamed into place (a failure had left a broken
    file)."""
    from .fileio import atomic_output

    if not isinstance(sections, Sections):
        raise InputError(f"write_root_sections takes Sections (read_sections, "
                         f"open_root_sections), not a {type(sections).__name__}; a Table "
                         f"goes to write_table")
    if compression is not None and not hasattr(compression, "level") \
            and compression is not UNCOMPRESSED:
        raise InputError(f"compression must be an uproot codec such as uproot.ZSTD(5), or "
                         f"None, not {compression!r}")
    if EVENTS not in sections.tables:
        raise InputError(f"{path}: the sections {list(sections.tables)[:8]} have no "
                         f"'{EVENTS}' section to count their objects")
    sections.check(f"{path}: ")
    with atomic_output(path, force=True) as tmp:
        with root_writer(tmp, sections, compression, root_format, label) as out:
            for start in range(0, sections.n_events, BASKET_EVENTS):
                out.extend(sections.event_slice(start, start + BASKET_EVENTS))


def _open_file(path: str | Path, first: Sections, compression: Any) -> Any:
    """The output file, compressed as asked, else as the source tree was."""
    uproot, _ = _modules()
    if compression is None and first.source.get("compression") is not None:
        compression = root_compression(int(first.source["compression"]))
    if compression is UNCOMPRESSED:
        return uproot.recreate(Path(path), compression=None)  # None: uproot stores raw
    extra = {} if compression is None else {"compression": compression}
    return uproot.recreate(Path(path), **extra)


class _StepWriter:
    """A ROOT file open for writing, closed on leaving the `with` block."""

    _file: Any

    def __enter__(self) -> _StepWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


class RootTreeWriter(_StepWriter):
    """A TTree written step by step (`extend(step)` per Sections step), so writing a
    whole tree back needs memory for one step, not the file. The branch types come from
    the first step given (it may hold no events); the compression is the source tree's
    unless given (uproot's ZLIB 1 for sources that do not say)."""

    def __init__(self, path: str | Path, first: Sections, compression: Any = None,
                 label: str = ""):
        records = _branches(first)
        self._records = [r for r in records if r["kind"] not in CHAINED_KINDS]
        _warn_not_in_ttree([r["name"] for r in records if r["kind"] in CHAINED_KINDS], label)
        types, self._counter_of = _branch_types(first, self._records)
        self._file = _open_file(path, first, compression)
        src = first.source
        self._tree = self._file.mktree(str(src.get("tree") or "events"), types,
                                       title=str(src.get("title") or ""),
                                       counter_name=lambda b: self._counter_of[b])

    def extend(self, step: Sections) -> None:
        """Append a step's events (one basket per branch: keep steps ~50k events)."""
        if step.n_events:
            self._tree.extend(_branch_data(step, self._records, self._counter_of))


class RNTupleWriter(_StepWriter):
    """An RNTuple written step by step (one cluster per `extend(step)`): every stored
    branch as a field, nested ones included; same interface as RootTreeWriter."""

    def __init__(self, path: str | Path, first: Sections, compression: Any = None):
        self._records = _branches(first)
        self._file = _open_file(path, first, compression)
        src = first.source
        form = _fields(first, self._records).layout.form
        self._ntuple = self._file.mkrntuple(str(src.get("tree") or "events"), form,
                                            description=str(src.get("title") or ""))

    def extend(self, step: Sections) -> None:
        """Append a step's events as one cluster (keep steps ~50k events)."""
        if step.n_events:
            self._ntuple.extend(_fields(step, self._records))


def _warn_not_in_ttree(names: list[str], label: str) -> None:
    """Nested branches a TTree cannot take: named, with the ways to get them."""
    if not names:
        return
    where = f"{label}: " if label else ""
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} branches)" if len(names) > 20 else "")
    source = label or "FILE.balerc"
    warnings.warn(SkippedBranchWarning(
        f"{where}branch(es) {shown} (nested vectors or vectors of strings) cannot be written "
        f"into a TTree by uproot and are left out of the output tree; they are in the "
        f".balerc file: write an RNTuple with --root-format rntuple, or read them in Python "
        f"with balerc.read_sections('{source}').to_awkward('{names[0]}')"), stacklevel=3)


def _fields(step: Sections, records: list[dict[str, Any]]) -> Any:
    """One step as an awkward record array, one field per branch record."""
    _, ak = _modules()
    data = {}
    for rec in records:
        shape = tuple(rec.get("shape") or []) if rec["kind"] == "array" else None
        if shape is not None:
            data[rec["name"]] = step.to_awkward(rec["name"])
        else:
            data[rec["name"]] = step.column_awkward(rec.get("section", EVENTS), rec["name"])
    return ak.zip(data, depth_limit=1) if data else ak.Array([{}] * step.n_events)


def _counter_name(sections: Sections, section: str) -> str:
    counter = sections.layouts[section]["counter"]
    return "n" + section if counter.startswith(SYNTHETIC_COUNTER) else counter


def _branch_types(sections: Sections, records: list[dict[str, Any]]
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """uproot branch types in the records' order, and each jagged branch's counter."""
    _, ak = _modules()
    events = sections.tables.get(EVENTS, Table({}))
    types: dict[str, Any] = {}
    counter_of: dict[str, str] = {}
    for rec in records:
        name, kind = rec["name"], rec["kind"]
        if kind == "jagged":
            col = sections[rec["section"]][name]
            counter_of[name] = _counter_name(sections, rec["section"])
            types[name] = ak.types.ListType(ak.types.NumpyType(
                ak.types.numpytype.dtype_to_primitive(col.dtype)))
        elif kind == "array":
            parts = _array_parts(events, name)
            shape = tuple(rec.get("shape") or [len(parts)])
            types[name] = np.dtype((events[parts[0]].dtype, shape))
        elif kind == "string":
            types[name] = "string"
        else:
            types[name] = events[name].dtype
    return types, counter_of


def _branch_data(step: Sections, records: list[dict[str, Any]], counter_of: dict[str, str]
                 ) -> dict[str, Any]:
    """One step's arrays for uproot's extend (counters are filled by uproot)."""
    _, ak = _modules()
    events = step.tables.get(EVENTS, Table({}))
    data: dict[str, Any] = {}
    for rec in records:
        name, kind = rec["name"], rec["kind"]
        if kind == "jagged":
            data[name] = ak.unflatten(step[rec["section"]][name], step.counts(rec["section"]))
        elif kind == "array":
            parts = _array_parts(events, name)
            shape = tuple(rec.get("shape") or [len(parts)])
            data[name] = np.stack([events[c] for c in parts], axis=1).reshape(-1, *shape)
        elif kind == "string":
            data[name] = ak.Array(strings_layout(events[name], ak))
        else:
            data[name] = events[name]
    for c in set(counter_of.values()):
        data.pop(c, None)
    return data


def _check_whole_array(rec: dict[str, Any], events: Table) -> None:
    """A fixed-size array branch is written whole: some of its element columns alone
    (decompress --columns 'x[1]') had been packed into rows of the full shape, mixing
    events (or failed to reshape)."""
    if rec["kind"] != "array":
        return
    shape = tuple(int(d) for d in rec.get("shape") or [])
    parts = _array_parts(events, rec["name"])
    if shape and len(parts) != int(np.prod(shape)):
        raise InputError(
            f"the fixed-size array branch '{rec['name']}' {list(shape)} is only partly selected "
            f"({', '.join(parts[:6])}): a ROOT tree takes the whole array; select "
            f"'{rec['name']}' (all its elements), or write the elements to .csv or .parquet")


def _branches(sections: Sections) -> list[dict[str, Any]]:
    """The branch list to write: the source's, else every column (events first)."""
    recs = sections.source.get("branches")
    events = sections.tables.get(EVENTS, Table({}))
    if recs:
        present = set()
        for n, t in sections.tables.items():
            present.update((n, c) for c in t.names)
        out = [r for r in recs if (r["kind"] == "array" and _array_parts(events, r["name"]))
               or (r.get("section", EVENTS), r["name"]) in present]
        for r in out:
            _check_whole_array(r, events)
        return out
    out = [{"name": c, "kind": "string" if events.kind(c) == "string" else "flat"}
           for c in events.names if not is_structural(c)]
    for n, t in sections.tables.items():
        if n == EVENTS or n.startswith(LISTS):
            continue
        chained = n.startswith(VALUES)
        parent = sections.layouts.get(n, {}).get("counter_section", EVENTS)
        for c in t.names:
            kind = "jagged"
            if chained:
                kind = "nested" if parent != EVENTS else (
                    "jagged-string" if t.kind(c) == "string" else "jagged")
            out.append({"name": c, "kind": kind, "section": n})
    return out
