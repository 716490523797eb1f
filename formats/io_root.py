"""ROOT TTree and RNTuple tables through uproot and awkward (imported only when used).

A Table is one row per entry, so a selection holds either flat numeric branches (one
row per event) or the jagged branches of ONE collection such as ``Jet_*`` (one row per
object, with an int64 ``__event__`` column giving the event index). The jagged layout is
recorded in ``source["jagged"]`` so the writer can rebuild the per-event counts,
events without objects included.

A table is written back through the whole-tree writers (formats/root_writers.py) as one
section, or two for a collection: the source's kind (a TTree, or an RNTuple for an
RNTuple source; `root_format` forces one), tree name, title and compression. A table
from another format becomes a TTree ``events`` (readable by every ROOT version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .optional import require
from .sections import array_columns
from .table import Table

EVENT_COLUMN = "__event__"
CHAINED_KINDS = ("nested", "jagged-string")  # stored in chained sections (formats/sections.py)
_TREE_CLASSES = {"TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple", "ROOT::Experimental::RNTuple"}
_CHUNK_ROWS = 100_000  # entries per extend() call, i.e. per basket when writing


@dataclass
class _Field:
    """How one branch/field maps to a table: flat, jagged, string or unusable."""

    name: str
    # "flat" | "jagged" | "string" | "array" (fixed size) | "nested" (var * var * number)
    # | "jagged-string" (var * string) | "other"
    kind: str
    dtype: np.dtype | None = None
    counter: str | None = None
    detail: str = ""


def _modules() -> tuple[Any, Any]:
    return require("uproot", "ROOT I/O"), require("awkward", "ROOT I/O")


def unreadable(path: Path, exc: BaseException, doing: str = "") -> InputError:
    """One line for a ROOT file uproot cannot read (not ROOT, truncated, a damaged
    basket): uproot's and the decompressors' messages span lines and name internals."""
    if isinstance(exc, MemoryError):
        raise exc
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    what = f"reading {doing} failed" if doing else "not a readable ROOT file"
    return InputError(f"{path}: {what}: the file is damaged, truncated or not ROOT "
                      f"({type(exc).__name__}: {text})")


def open_root(path: Path, **options: Any) -> Any:
    """uproot.open with the one-line error of `unreadable`."""
    uproot, _ = _modules()
    try:
        return uproot.open(path, **options)
    except Exception as exc:  # uproot raises many types for non-ROOT bytes
        raise unreadable(path, exc) from None


def _numeric(dtype: np.dtype) -> bool:
    return dtype.shape == () and dtype.kind in "biuf"


def _classify_ttree(tree: Any, uproot: Any) -> list[_Field]:
    out = []
    for name, branch in tree.items():
        interp = branch.interpretation
        if isinstance(interp, uproot.AsDtype):
            dt = np.dtype(interp.to_dtype)
            if _numeric(dt):
                out.append(_Field(name, "flat", dt))
            elif dt.subdtype is not None and dt.subdtype[0].kind in "biuf":
                out.append(_Field(name, "array", dt, detail=f"fixed-size array {branch.typename}"))
            else:
                out.append(_Field(name, "other", detail=f"fixed-size array {branch.typename}"))
        elif isinstance(interp, uproot.AsJagged) and isinstance(interp.content, uproot.AsDtype):
            dt = np.dtype(interp.content.to_dtype)
            if _numeric(dt):
                cb = getattr(branch, "count_branch", None)
                out.append(_Field(name, "jagged", dt, cb.name if cb is not None else None))
            else:
                out.append(_Field(name, "other", detail=branch.typename))
        elif isinstance(interp, uproot.AsStrings):
            out.append(_Field(name, "string", np.dtype(object)))
        else:
            out.append(_classify_objects(name, branch, interp))
    return out


def _classify_objects(name: str, branch: Any, interp: Any) -> _Field:
    """A branch of C++ objects: nested vectors of numbers and vectors of strings are
    carried (as awkward reads them); anything else is "other"."""
    _, ak = _modules()
    detail = branch.typename or str(interp)
    try:
        form = interp.awkward_form(branch.file)
    except Exception:  # uproot cannot describe it as an awkward array
        return _Field(name, "other", detail=detail)
    field = _classify_form(name, form, ak)
    if field.kind in CHAINED_KINDS:
        return _Field(name, field.kind, field.dtype, detail=detail)
    return _Field(name, "other", detail=detail)


def _classify_form(name: str, form: Any, ak: Any) -> _Field:
    forms = ak.forms
    if form.parameter("__array__") == "string":
        return _Field(name, "string", np.dtype(object))
    if isinstance(form, forms.NumpyForm) and not form.inner_shape:
        return _Field(name, "flat", np.dtype(ak.types.numpytype.primitive_to_dtype(form.primitive)))
    shape, inner = [], form  # std::array (RNTuple): regular lists of numbers
    while isinstance(inner, forms.RegularForm):
        shape.append(inner.size)
        inner = inner.content
    if shape and isinstance(inner, forms.NumpyForm) and not inner.inner_shape:
        dt = np.dtype(ak.types.numpytype.primitive_to_dtype(inner.primitive))
        if dt.kind in "biuf":
            return _Field(name, "array", np.dtype((dt, tuple(shape))), detail=str(form.type))
    lists = (forms.ListOffsetForm, forms.ListForm)
    if isinstance(form, lists):
        content = form.content
        if isinstance(content, forms.NumpyForm) and not content.inner_shape:
            dt = np.dtype(ak.types.numpytype.primitive_to_dtype(content.primitive))
            return _Field(name, "jagged", dt)
        if content.parameter("__array__") == "string":
            return _Field(name, "jagged-string", np.dtype(object), detail=str(form.type))
        inner = getattr(content, "content", None)
        if (isinstance(content, lists) and isinstance(inner, forms.NumpyForm)
                and not inner.inner_shape and content.parameter("__array__") is None):
            dt = np.dtype(ak.types.numpytype.primitive_to_dtype(inner.primitive))
            if dt.kind in "biuf":
                return _Field(name, "nested", dt, detail=str(form.type))
    return _Field(name, "other", detail=str(form.type))


def _classify_rntuple(ntuple: Any, ak: Any) -> list[_Field]:
    probe = ntuple.arrays(entry_stop=0)
    names = [n for n in ntuple.keys(recursive=False) if n in probe.fields]
    return [_classify_form(n, probe[n].layout.form, ak) for n in names]


def classify(path: Path, tree: str, obj: Any, is_ntuple: bool) -> list[_Field]:
    """How each branch or field maps to a table (an RNTuple's probe reads pages: a
    damaged file fails here already, with `unreadable`'s one line)."""
    uproot, ak = _modules()
    try:
        return _classify_rntuple(obj, ak) if is_ntuple else _classify_ttree(obj, uproot)
    except InputError:
        raise
    except Exception as exc:  # zlib, lzma, zstd or uproot errors
        raise unreadable(path, exc, f"tree '{tree}'") from None


def _prefix(name: str) -> str:
    return name.split("_", 1)[0] if "_" in name else name


def _collections_text(fields: list[_Field]) -> tuple[str, str]:
    """A readable list of jagged collections and an example pattern for messages."""
    groups: dict[str, int] = {}
    for f in fields:
        if f.kind == "jagged":
            groups[_prefix(f.name)] = groups.get(_prefix(f.name), 0) + 1
    if not groups:
        return "none", "'NAME_*'"
    text = ", ".join(f"{p} ({n} branches)" for p, n in groups.items())
    return text, f"'{next(iter(groups))}_*'"


def other_objects(file: Any, tree: str) -> list[dict[str, str]]:
    """The file's objects besides `tree` (histograms, other trees), by path and class;
    directories are not objects of their own (what they hold is listed by its path)."""
    return [{"name": k.rsplit(";", 1)[0], "class": c} for k, c in file.classnames().items()
            if k.rsplit(";", 1)[0] != tree and c != "TDirectory"]


def _list_trees(file: Any) -> dict[str, str]:
    trees: dict[str, str] = {}
    for key, cls in file.classnames().items():
        if cls in _TREE_CLASSES:
            trees.setdefault(key.rsplit(";", 1)[0], cls)
    return trees


def _pick_tree(path: Path, trees: dict[str, str], tree: str | None) -> str:
    """The tree to read: the one asked for, or the file's only tree, so that a file
    with several trees never silently reads the wrong one."""
    if tree is None:
        if not trees:
            raise InputError(f"{path} holds no TTree or RNTuple to read")
        if len(trees) != 1:
            raise InputError(f"{path} has {len(trees)} trees; pick one with --tree (or "
                             f"FILE.root:TREE); trees: {list(trees)}")
        return next(iter(trees))
    if tree not in trees:
        raise InputError(f"{path} has no tree '{tree}'; trees: {list(trees)}")
    return tree


_PER_EVENT = ("flat", "string", "array")  # one row per event (an array: a column per element)


def _wanted_names(
    path: Path, tree: str, fields: list[_Field], columns: list[str] | None
) -> list[str]:
    """The selected branch names (file order). Without a selection every branch of one
    value per entry (numbers and strings: nothing of a flat tree is left behind); a jagged
    collection changes what a row is, so it must be asked for."""
    from .tableio import select_names

    if columns is not None:
        return select_names([f.name for f in fields], columns, path)
    wanted = [f.name for f in fields if f.kind in _PER_EVENT]
    collections, example = _collections_text(fields)
    if not any(f.kind == "flat" for f in fields):
        raise InputError(
            f"{path}: tree '{tree}' has no flat numeric branches; select one "
            f"collection of jagged branches with columns, e.g. {example}; "
            f"collections: {collections}"
        )
    left = [f.name for f in fields if f.kind not in _PER_EVENT]
    if left:  # said, not silent: the table holds one row per event
        import warnings

        from .root_writers import SkippedBranchWarning

        warnings.warn(SkippedBranchWarning(
            f"{path}: tree '{tree}': {len(left)} branch(es) holding more than one number or "
            f"string per event are not in this table (collections: {collections}); select one with "
            f"columns, e.g. {example} (balerc compress keeps every branch)"), stacklevel=4)
    return wanted


def _check_selection(path: Path, chosen: list[_Field]) -> list[_Field]:
    """Refuse branches that cannot be columns and mixes of per-event and per-object
    branches (a table has one row meaning); return the jagged fields, if any."""
    from .tableio import list_names

    other = [f for f in chosen if f.kind not in (*_PER_EVENT, "jagged")]
    if other:
        desc = ", ".join(f"{f.name} ({f.detail})" for f in other[:10])
        raise InputError(
            f"{path}: branches {desc} cannot become table columns (only flat numbers, "
            "strings, fixed-size arrays, or variable-length lists of numbers can); leave them "
            "out of the columns selection"
        )
    flat = [f.name for f in chosen if f.kind in _PER_EVENT]
    jagged = [f for f in chosen if f.kind == "jagged"]
    if flat and jagged:
        raise InputError(
            f"{path}: the selection mixes flat branches {list_names(flat, 10)} with jagged "
            f"branches {list_names([f.name for f in jagged], 10)}; a table is one row per "
            f"event or one row per object, not both. Select one collection, e.g. "
            f"--columns {_suggest(jagged)}, or only flat branches"
        )
    return jagged


def _read_arrays(
    obj: Any,
    wanted: list[str],
    *,
    is_ntuple: bool,
    jagged: bool,
    entry_start: int | None,
    entry_stop: int | None,
) -> Any:
    """Read only the selected branches: RNTuples in uproot's default library, jagged
    TTree branches as awkward (they need flattening), flat ones straight to numpy."""
    wanted_set = set(wanted)
    library: dict[str, str] = {} if is_ntuple else {"library": "ak" if jagged else "np"}
    return obj.arrays(
        filter_name=lambda n: n in wanted_set,
        entry_start=entry_start,
        entry_stop=entry_stop,
        **library,
    )


def _flat_columns(
    wanted: list[str], arrays: Any, by_name: dict[str, _Field], ak: Any
) -> dict[str, np.ndarray]:
    """One row per event: strings as object arrays of str, numbers as native-endian
    contiguous numpy, whichever library uproot returned them in."""
    cols: dict[str, np.ndarray] = {}
    for n in wanted:
        a = arrays[n]
        if by_name[n].kind == "string":
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "O"):
                values = a.tolist() if isinstance(a, np.ndarray) else ak.to_list(a)
                a = np.array([str(v) for v in values], dtype=object)
            cols[n] = a
        elif by_name[n].kind == "array":  # x[0], x[1], ... (x[0][0], ...), as in sections
            cols.update(array_columns(n, _native(a if isinstance(a, np.ndarray)
                                                 else ak.to_numpy(a))))
        else:
            cols[n] = _native(a if isinstance(a, np.ndarray) else ak.to_numpy(a))
    return cols


def read_root(
    path: str | Path,
    *,
    tree: str | None = None,
    columns: list[str] | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> Table:
    """Read flat branches, or one jagged collection flattened to one row per object."""
    uproot, ak = _modules()
    path = Path(path)
    with open_root(path) as file:
        trees = _list_trees(file)
        tree = _pick_tree(path, trees, tree)
        obj = file[tree]
        is_ntuple = "RNTuple" in trees[tree]
        fields = classify(path, tree, obj, is_ntuple)
        by_name = {f.name: f for f in fields}
        wanted = _wanted_names(path, tree, fields, columns)
        jagged = _check_selection(path, [by_name[n] for n in wanted])
        try:
            arrays = _read_arrays(obj, wanted, is_ntuple=is_ntuple, jagged=bool(jagged),
                                  entry_start=entry_start, entry_stop=entry_stop)
        except Exception as exc:  # a damaged basket: zlib, lzma, zstd or uproot errors
            raise unreadable(path, exc, f"tree '{tree}'") from None
        n_entries = int(obj.num_entries)
        from .root_sections import compression_code

        source: dict[str, Any] = {
            "format": "root",
            "n_entries": n_entries,
            "tree": tree,
            "tree_class": "RNTuple" if is_ntuple else "TTree",
            "title": str(getattr(obj, "title", "") or ""),
            "compression": compression_code(file, obj, is_ntuple),
        }
        others = other_objects(file, tree)
        if others:
            source["other_objects"] = others
        if jagged:
            cols, source["jagged"] = _flatten_collection(path, jagged, arrays, set(by_name), ak)
        else:
            cols = _flat_columns(wanted, arrays, by_name, ak)
            if any(by_name[n].kind == "array" for n in wanted):  # written back as arrays
                source["branches"] = [
                    {"name": n, "kind": by_name[n].kind}
                    | ({"shape": list(by_name[n].dtype.shape)} if by_name[n].kind == "array"
                       else {}) for n in wanted]
    source["dtypes"] = {n: str(a.dtype) for n, a in cols.items()}
    return Table(cols, source)


def _native(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _suggest(jagged: list[_Field]) -> str:
    return f"'{_prefix(jagged[0].name)}_*'"


def _flatten_collection(
    path: Path,
    jagged: list[_Field],
    arrays: Any,
    all_names: set[str],
    ak: Any,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One row per object plus the event index; all branches must share their counts.
    The index counts the events read (an entry range's first event is 0), so `n_events`
    is that range's length, zero-object events included."""
    groups: list[tuple[str | None, np.ndarray, list[str]]] = []
    for f in jagged:
        counts = np.asarray(ak.to_numpy(ak.num(arrays[f.name], axis=1)), dtype=np.int64)
        for key, ref, members in groups:
            if key is not None and f.counter is not None:
                same = key == f.counter
            else:
                same = np.array_equal(ref, counts)
            if same:
                members.append(f.name)
                break
        else:
            groups.append((f.counter, counts, [f.name]))
    if len(groups) > 1:
        parts = []
        for key, _, members in groups:
            shown = ", ".join(members[:3]) + (
                f", ... ({len(members)} branches)" if len(members) > 3 else ""
            )
            parts.append(f"[{shown}]" + (f" counted by {key}" if key else ""))
        raise InputError(
            f"{path}: the selected jagged branches have different numbers of objects per "
            f"event: {'; '.join(parts)}; select one collection at a time, e.g. "
            f"--columns {_suggest(jagged)}"
        )
    counter, counts, _ = groups[0]
    n_events = len(counts)
    names = [f.name for f in jagged]
    prefixes = {_prefix(n) for n in names}
    if len(prefixes) == 1 and all("_" in n for n in names):
        collection: str | None = prefixes.pop()
    elif counter and counter[:1] in "nN":
        collection = counter[1:]
    else:
        collection = None
    if counter is None and collection is not None:
        counter = next((c for c in ("n" + collection, "N" + collection) if c in all_names), None)

    cols = {EVENT_COLUMN: np.repeat(np.arange(n_events, dtype=np.int64), counts)}
    for n in names:
        cols[n] = _native(ak.to_numpy(ak.flatten(arrays[n], axis=1)))
    layout = {"counter": counter, "n_events": n_events, "collection": collection}
    return cols, layout


def write_root(table: Table, path: str | Path, compression: Any = None,
               root_format: str = "auto", label: str = "") -> None:
    """Write a table as a tree: flat columns as branches, a jagged source's collection as
    jagged branches with their counter. Through the whole-tree writers (root_writers):
    the source tree's name, title, kind (TTree or RNTuple, or `root_format`) and
    compression (or `compression`, e.g. root_compression('zstd:5')) come back with it.
    """
    from .root_writers import write_root_sections

    path = Path(path)
    half = [n for n, a in table.columns.items() if a.dtype.itemsize == 2 and a.dtype.kind == "f"]
    if half:
        raise InputError(
            f"cannot write {path}: float16 column(s) {half} have no ROOT type; cast them to "
            "float32 or write .parquet instead"
        )
    write_root_sections(table_sections(table, path), path, compression, root_format, label)


def table_sections(table: Table, path: Path) -> Any:
    """A table as Sections: `events` alone for flat columns; for a jagged source's table
    (one row per object, the __event__ column), `events` holding the per-event counter
    and the collection's section."""
    from .sections import EVENTS, Sections

    src = table.source
    from_root = src.get("format") == "root"
    source = {k: src[k] for k in ("tree", "title", "compression", "tree_class", "branches")
              if from_root and k in src}
    layout = src.get("jagged") if from_root else None
    if not (layout and EVENT_COLUMN in table and table.n_columns > 1):
        return Sections({EVENTS: table}, {EVENTS: {"kind": "events"}}, source)
    strings = table.names_of_kind("string")
    if strings:
        raise InputError(
            f"cannot write {path}: column(s) {strings} of a collection hold strings (vectors "
            "of strings), which uproot cannot write; write .csv or .parquet instead, or leave "
            "those columns out"
        )
    events = table[EVENT_COLUMN]
    if events.dtype.kind not in "iu" or (events.size and events.min() < 0):
        raise InputError(f"cannot write {path}: '{EVENT_COLUMN}' must hold event indices "
                         f"(integers >= 0)")
    cols = {n: _native(table[n]) for n in table.names if n != EVENT_COLUMN}
    events = events.astype(np.int64)
    if events.size > 1 and np.any(events[1:] < events[:-1]):
        order = np.argsort(events, kind="stable")
        events, cols = events[order], {n: a[order] for n, a in cols.items()}
    n_events = max(int(layout.get("n_events") or 0), int(events[-1]) + 1 if events.size else 0)
    collection = str(layout.get("collection") or "Object")
    counter = str(layout.get("counter") or "n" + collection)
    if counter in cols:
        counter += "_count"
    counts = np.bincount(events, minlength=n_events).astype(np.int32)
    return Sections({EVENTS: Table({counter: counts}), collection: Table(cols)},
                    {EVENTS: {"kind": "events"},
                     collection: {"kind": "collection", "counter": counter,
                                  "counter_section": EVENTS}}, source)
