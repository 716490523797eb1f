"""Read and write tables by file extension: one entry point for every supported format.

`read_table` picks a reader from the extension (or `fmt`), applies the `columns` glob
patterns, refuses empty tables, and records where the data came from in `Table.source`
so that `write_table` can rebuild the same kind of file. The per-format modules
(io_csv, io_root, io_numpy, io_parquet) are imported lazily so that importing this module
never pulls in uproot, awkward or pyarrow.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .sections import ARRAY_COLUMN
from .table import Table

# extension -> format name; .txt is read as CSV or TSV depending on its header line.
_EXTENSIONS: dict[str, str] = {
    ".root": "root",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "txt",
    ".npy": "npy",
    ".npz": "npz",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FORMATS = ("root", "csv", "tsv", "txt", "npy", "npz", "parquet")

SUPPORTED_INPUT: tuple[str, ...] = tuple(_EXTENSIONS)
SUPPORTED_OUTPUT: tuple[str, ...] = tuple(_EXTENSIONS)

_MAX_LISTED = 60


def list_names(names: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """Render column names for an error message, shortened when there are very many."""
    shown = ", ".join(repr(n) for n in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names)} in all)"
    return f"[{shown}]"


def pattern_matches(available: Sequence[str], pattern: str) -> list[str]:
    """The names a column selector picks, in `available`'s order, by the first rule that
    picks any: the name equal to it (names with glob characters, such as `x[0]`, are
    given as they are); the names it matches as a case-sensitive glob; the same glob with
    its brackets literal (`m[0]*`: m[0][0], m[0][1]); the element columns (arr[0], ...)
    of the fixed-size arrays it names (`arr`, or a glob); or, where only whole branches
    exist (`compress --columns`), the array branch an element names (`x[1]`: x).
    Every column and section selector of the CLI and API uses this."""
    if pattern in available:
        return [pattern]
    literal = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    for glob in (pattern, literal):
        found = [n for n in available if fnmatch.fnmatchcase(n, glob)]
        if found:
            return found
    found = [n for n in available if (m := ARRAY_COLUMN.match(n)) is not None
             and fnmatch.fnmatchcase(m.group(1), pattern)]
    if found:
        return found
    m = ARRAY_COLUMN.match(pattern)
    return [m.group(1)] if m is not None and m.group(1) in available else []


def matching(available: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names any of `patterns` picks (`pattern_matches`), in `available`'s order; none
    is an empty list (select_names refuses a pattern that picks nothing)."""
    picked = {n for p in patterns for n in pattern_matches(available, p)}
    return [n for n in available if n in picked]


def select_names(
    available: Sequence[str], patterns: Sequence[str] | None, path: str | os.PathLike[str],
    *, pattern_order: bool = False,
) -> list[str]:
    """Names in `available` any pattern picks (`pattern_matches`), in file order, or
    with `pattern_order` in the order the patterns give (each pattern's matches in file
    order, a name once): reading a source keeps its order, decoding a .balerc file hands
    columns back as asked, like a DataFrame's `df[[...]]`.

    Every pattern must match at least one name, so a typo is reported rather than
    silently dropping columns the user asked for.
    """
    if patterns is None:
        return list(available)
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise InputError(f"{path}: the columns selection is empty; give at least one pattern "
                         f"(or none at all for every column)")
    matches = {p: pattern_matches(available, p) for p in patterns}
    unmatched = [p for p in patterns if not matches[p]]
    if unmatched:
        raise InputError(
            f"{path}: no column matches {unmatched} (patterns are case-sensitive globs); "
            f"available columns: {list_names(list(available))}"
        )
    picked = dict.fromkeys(n for p in patterns for n in matches[p])  # the patterns' order
    return list(picked) if pattern_order else [n for n in available if n in picked]


def _format_of(path: Path, fmt: str | None, supported: tuple[str, ...]) -> str:
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        fmt = _EXTENSIONS.get("." + fmt, fmt)
        if fmt not in FORMATS:
            raise InputError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
        return fmt
    ext = path.suffix.lower()
    if ext not in _EXTENSIONS:
        shown = ext or "(no extension)"
        what = ("a directory, not a table file" if path.is_dir() else
                "a .balerc file: decompress it" if ext == ".balerc" else
                f"unsupported file extension {shown}")
        raise InputError(f"{path}: {what}; tables are read from {', '.join(supported)} "
                         f"(rename the file to its format's extension; from Python, "
                         f"read_table(..., fmt=))")
    return _EXTENSIONS[ext]


def read_table(
    path: str | os.PathLike[str],
    *,
    tree: str | None = None,
    columns: list[str] | None = None,
    fmt: str | None = None,
    entries: tuple[int, int] | None = None,
) -> Table:
    """Read a table from `path`; `columns` are fnmatch patterns, `tree` is for ROOT only.

    `entries=(start, stop)` reads only those ROOT entries (used for streaming).
    """
    p = Path(path)
    kind = _format_of(p, fmt, SUPPORTED_INPUT)
    if not p.exists():
        raise InputError(f"no such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a directory; give a file")
    if tree is not None and kind != "root":
        raise InputError(f"{p}: a tree name only applies to ROOT files (this is {kind})")

    if kind == "root":
        from .io_root import read_root

        start, stop = entries if entries is not None else (None, None)
        table = read_root(p, tree=tree, columns=columns, entry_start=start, entry_stop=stop)
    elif kind in ("csv", "tsv", "txt"):
        from .io_csv import read_csv

        delimiter = {"csv": ",", "tsv": "\t", "txt": None}[kind]
        table = read_csv(p, delimiter=delimiter, columns=columns)
    elif kind == "npy":
        from .io_numpy import read_npy

        table = read_npy(p, columns=columns)
    elif kind == "npz":
        from .io_numpy import read_npz

        table = read_npz(p, columns=columns)
    else:
        from .io_parquet import read_parquet

        table = read_parquet(p, columns=columns)

    if entries is None and (table.n_rows == 0 or table.n_columns == 0):  # a range may be empty
        raise InputError(
            f"{p}: the table is empty ({table.n_rows} rows, {table.n_columns} columns); "
            "nothing to compress (check the file and the columns selection)"
        )
    table.source["path"] = p.name  # the name only: files travel, directory layouts stay home
    if columns is None and not table.source.get("other_objects"):
        table.source["size"] = p.stat().st_size  # a ratio against it means something
    return table


def write_table(table: Table, path: str | os.PathLike[str], *, fmt: str | None = None,
                root: tuple[Any, str] = (None, "auto")) -> None:
    """Write `table` to `path` in the format of its extension (or `fmt`).

    Writes straight to `path`; callers wanting atomic replacement write to a temporary
    name and rename. Metadata in `table.source` from the same format (CSV header text,
    ROOT tree name and jagged layout, N-D numpy shape) is used to rebuild the original.
    `root`: (compression, kind) of a .root output (root_writers.root_compression's codec
    or None for the source's; "auto", "ttree" or "rntuple").
    """
    p = Path(path)
    kind = _format_of(p, fmt, SUPPORTED_OUTPUT)
    if not p.parent.is_dir():
        raise InputError(f"cannot write {p}: the folder {p.parent} does not exist")
    if kind == "root":
        from .io_root import write_root

        write_root(table, p, *root)
    elif kind in ("csv", "tsv", "txt"):
        from .io_csv import write_csv

        if kind == "txt":
            same = table.source.get("format") in ("csv", "tsv")
            delimiter = table.source.get("delimiter", "\t") if same else "\t"
        else:
            delimiter = "," if kind == "csv" else "\t"
        write_csv(table, p, delimiter=delimiter)
    elif kind == "npy":
        from .io_numpy import write_npy

        write_npy(table, p)
    elif kind == "npz":
        from .io_numpy import write_npz

        write_npz(table, p)
    else:
        from .io_parquet import write_parquet

        write_parquet(table, p)
