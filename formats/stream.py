"""Reading a table chunk by chunk, so compression memory is bounded by the chunk size.

Flat ROOT trees are read entry range by entry range, NPY files through a memory map; the
other formats (CSV type inference, zip-packed NPZ, jagged ROOT collections) are read whole
and then sliced. `column_ranges` makes the one extra pass a `rel:` bound needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .sections import SectionStream
from .table import Table, finite_range


@dataclass
class TableStream:
    """A table known by its first chunk and its row count, produced chunk by chunk."""

    first: Table
    n_rows: int
    source: dict[str, Any]
    _reader: Any = field(repr=False, default=None)

    @property
    def names(self) -> list[str]:
        return self.first.names

    def chunks(self, chunk_rows: int) -> Iterator[Table]:
        for start in range(0, self.n_rows, chunk_rows):
            t = self._reader(start, min(start + chunk_rows, self.n_rows))
            t.source = self.source
            yield t

    def column_ranges(self, names: list[str], chunk_rows: int = 1 << 18) -> dict[str, tuple[float, float]]:
        """Finite (min, max) of each column over the whole stream (NaN, NaN if none finite)."""
        lo = dict.fromkeys(names, np.inf)
        hi = dict.fromkeys(names, -np.inf)
        for t in self.chunks(chunk_rows):
            for n in names:
                span = finite_range(t[n])
                if span is not None:
                    lo[n], hi[n] = min(lo[n], span[0]), max(hi[n], span[1])
        return {n: (lo[n], hi[n]) if lo[n] <= hi[n] else (np.nan, np.nan) for n in names}

    @classmethod
    def from_table(cls, table: Table) -> TableStream:
        return cls(table, table.n_rows, table.source, lambda a, b: table.slice(a, b))


def open_stream(
    path: str | os.PathLike, *, tree: str | None = None, columns: list[str] | None = None
) -> TableStream:
    """A TableStream over `path`: streamed for flat ROOT trees and NPY, else read whole."""
    from .tableio import read_table

    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".root":
        head = read_table(p, tree=tree, columns=columns, entries=(0, 1))
        n = int(head.source.get("n_entries", 0))
        if "jagged" not in head.source and head.source.get("tree_class") == "TTree" and n > 0:
            names = head.names

            def read(a: int, b: int) -> Table:
                return read_table(p, tree=head.source["tree"], columns=names, entries=(a, b))

            return TableStream(head, n, head.source, read)
    elif ext == ".npy" and p.exists() and columns is None:
        stream = _npy_stream(p)
        if stream is not None:
            return stream
    table = read_table(p, tree=tree, columns=columns)
    return TableStream.from_table(table)


def open_input(path: str | os.PathLike, *, tree: str | None = None,
               columns: list[str] | None = None, allow_skip: bool = False
               ) -> TableStream | SectionStream:
    """What `compress` reads: a whole ROOT tree with jagged collections (or fixed-size
    arrays, or anything else a table of one row per event cannot hold) as Sections; a
    tree of flat branches, and every other format, as one table."""
    p = Path(path)
    if p.suffix.lower() == ".root" and p.is_file():
        from .root_sections import needs_sections, open_root_sections

        if needs_sections(p, tree=tree, columns=columns):
            return open_root_sections(p, tree=tree, columns=columns, allow_skip=allow_skip)
        stream = open_stream(p, tree=tree, columns=columns)
        if stream.source.get("other_objects"):  # said, as for a tree of sections
            from .root_sections import warn_left_out

            warn_left_out(p, [], stream.source["other_objects"])
        return stream
    return open_stream(p, tree=tree, columns=columns)


def _npy_stream(p: Path) -> TableStream | None:
    """Rows of a 2-D C-order numeric .npy read with plain file reads (no memory map, so
    resident memory stays at one chunk); None for layouts read whole instead."""
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InputError(f"{p}: not a valid .npy file ({str(exc)[:160]})") from None
    if len(shape) != 2 or fortran or dtype.kind not in "fiub" or shape[0] == 0:
        return None
    n, k = shape
    names = [f"c{j}" for j in range(k)]
    size = p.stat().st_size
    source: dict[str, Any] = {"format": "npy", "path": p.name, "size": size}
    if dtype.byteorder == ">":  # written back in the source's byte order (read_npy too)
        source["npy_layout"] = {"byteorder": ">", "fortran": False}
    row_bytes = k * dtype.itemsize
    if size < offset + n * row_bytes:
        raise InputError(f"{p}: truncated .npy file: its header says {n:,} x {k} {dtype} "
                         f"({offset + n * row_bytes:,} bytes with the header), the file holds "
                         f"{size:,}")

    def read(a: int, b: int) -> Table:
        with open(p, "rb") as f:
            f.seek(offset + a * row_bytes)
            arr = np.fromfile(f, dtype=dtype, count=(b - a) * k).reshape(b - a, k)
        return Table.from_numpy(arr, names, source)

    return TableStream(read(0, 1), n, source, read)
