"""The in-memory table every reader returns and every writer takes.

A `Table` is an ordered set of named 1-D numpy columns of equal length, each with a kind
(float, int, bool, string), plus `source` metadata that lets a writer rebuild the input
faithfully (format, tree name, original dtypes, the CSV header text, jagged layout).
Strings are numpy object arrays of Python `str`, so their lengths are unbounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

KINDS = ("float", "int", "bool", "string")


def kind_of(array: np.ndarray, name: str | None = None) -> str:
    """Classify a numpy array into one of KINDS (raises for shapes/dtypes we cannot store,
    naming the column when `name` is given)."""
    what = "columns" if name is None else f"column '{name}'"
    if array.ndim != 1:
        raise InputError(f"{what} must be 1-D, got shape {array.shape}")
    k = array.dtype.kind
    if k == "f" and array.dtype.itemsize in (2, 4, 8):
        return "float"
    if k == "f":  # long double: no portable file type, and numpy's differs by platform
        raise InputError(f"{what}: unsupported dtype {array.dtype} (long double): convert "
                         f"it to float64 first")
    if k in "iu":
        return "int"
    if k == "b":
        return "bool"
    if k in "OUS":
        return "string"
    raise InputError(f"{what}: unsupported dtype {array.dtype} (use float, int, bool or string)")


def finite_range(col: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of the finite values of a numeric column, None when it has none: two
    SIMD reductions, and the masked copy only for a column holding NaN or Inf."""
    if not col.size:
        return None
    a, b = float(col.min()), float(col.max())
    if np.isfinite(a) and np.isfinite(b):
        return a, b
    fin = col[np.isfinite(col)]
    return (float(fin.min()), float(fin.max())) if fin.size else None


def refuse_masked(values: Any, what: str) -> None:
    """A masked array's hidden values would be stored as data (np.asarray drops the
    mask): refused by name wherever columns come in."""
    if isinstance(values, np.ma.MaskedArray) and np.ma.is_masked(values):
        raise InputError(f"{what} has {int(np.ma.count_masked(values)):,} masked "
                         f"(missing) value(s); balerc stores complete columns: fill them first")


def as_column(values: Any, name: str) -> np.ndarray:
    """A column as the Table keeps it: strings as an object array of str (bytes and other
    objects refused by name), masked values refused."""
    refuse_masked(values, f"column '{name}'")
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    if arr.dtype.kind == "O":
        bad = [v for v in arr[:1000] if not isinstance(v, str)]
        if bad:
            raise InputError(f"column '{name}': object columns must hold str values, found "
                             f"{type(bad[0]).__name__}")
    return arr


@dataclass
class Table:
    """Ordered named columns of equal length plus source metadata.

    `source` keys used by the readers/writers: ``format`` (root, csv, tsv, npy, npz,
    parquet, generated), ``path``, ``size`` (source file bytes), ``tree``, ``dtypes``
    (name -> original dtype string), ``header_text`` / ``newline`` (CSV), ``jagged``
    (ROOT collection layout), ``shape`` (N-D numpy inputs).
    """

    columns: dict[str, np.ndarray]
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cols: dict[str, np.ndarray] = {}
        n = None
        for name, values in self.columns.items():
            arr = as_column(values, str(name))
            kind_of(arr, str(name))
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise InputError(
                    f"column '{name}' has {len(arr)} rows but earlier columns have {n}"
                )
            cols[str(name)] = arr
        self.columns = cols

    # -- shape -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def kind(self, name: str) -> str:
        return kind_of(self.columns[name])

    @property
    def kinds(self) -> dict[str, str]:
        return {n: kind_of(a) for n, a in self.columns.items()}

    def names_of_kind(self, kind: str) -> list[str]:
        return [n for n, a in self.columns.items() if kind_of(a) == kind]

    @property
    def nbytes(self) -> int:
        """Raw size: numeric bytes plus UTF-8 bytes of strings (the ratio's denominator)."""
        return self.fixed_nbytes() + sum(self.text_nbytes().values())

    def fixed_nbytes(self) -> int:
        """Bytes of the fixed-width (non-string) columns: the rest of `nbytes`."""
        return sum(a.nbytes for a in self.columns.values() if a.dtype.kind != "O")

    def text_nbytes(self) -> dict[str, int]:
        """UTF-8 bytes of each string column: its share of `nbytes`."""
        return {n: sum(len(s.encode("utf-8")) for s in a)
                for n, a in self.columns.items() if a.dtype.kind == "O"}

    # -- other libraries (formats/interop.py) ---------------------------------------------
    def to_pandas(self) -> Any:
        """A DataFrame (a pandas index the table came with becomes the index again)."""
        from .interop import to_pandas

        return to_pandas(self)

    def to_arrow(self) -> Any:
        from .interop import to_arrow

        return to_arrow(self)

    def to_awkward(self) -> Any:
        """A record array; one list of records per event for a flattened collection."""
        from .interop import to_awkward

        return to_awkward(self)

    # -- derived tables ----------------------------------------------------------------
    def select(self, names: Iterable[str]) -> Table:
        names = list(names)
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise InputError(f"no column(s) {missing}; the table has {self.names}")
        return Table({n: self.columns[n] for n in names}, dict(self.source))

    def slice(self, start: int, stop: int) -> Table:
        return Table({n: a[start:stop] for n, a in self.columns.items()}, self.source)

    def to_numpy(self, names: Iterable[str] | None = None, dtype: Any = np.float64) -> np.ndarray:
        """Stack numeric columns into an (N, F) array (float columns by default)."""
        names = self.names_of_kind("float") if names is None else list(names)
        out = np.empty((self.n_rows, len(names)), dtype=dtype)
        for j, n in enumerate(names):
            out[:, j] = self.columns[n]
        return out

    @classmethod
    def from_numpy(
        cls, array: np.ndarray, names: Iterable[str] | None = None, source: dict | None = None
    ) -> Table:
        refuse_masked(array, "the array")
        array = np.asarray(array)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise InputError(f"expected a 1-D or 2-D array, got shape {array.shape}")
        names = [f"c{j}" for j in range(array.shape[1])] if names is None else list(names)
        if len(names) != array.shape[1]:
            raise InputError(f"{len(names)} names for {array.shape[1]} columns")
        return cls({n: np.ascontiguousarray(array[:, j]) for j, n in enumerate(names)}, source or {})

    def equals(self, other: Table) -> bool:
        """Bit-exact equality of names, order, dtypes and values (NaN payloads included)."""
        if self.names != other.names:
            return False
        for n in self.names:
            a, b = self.columns[n], other.columns[n]
            if a.dtype != b.dtype or a.shape != b.shape:
                return False
            if a.dtype.kind == "O":
                if not all(x == y for x, y in zip(a, b, strict=False)):
                    return False
            elif a.tobytes() != b.tobytes():
                return False
        return True

    def describe(self) -> str:
        cols = ", ".join(f"{n}:{self.kind(n)}" for n in self.names[:12])
        more = f", ... ({self.n_columns} in all)" if self.n_columns > 12 else ""
        return f"Table({self.n_rows} rows; {cols}{more})"

    __repr__ = describe


def concat(tables: list[Table]) -> Table:
    """Row-wise concatenation of tables with identical names and dtypes."""
    if not tables:
        raise InputError("nothing to concatenate")
    first = tables[0]
    cols = {n: np.concatenate([t.columns[n] for t in tables]) for n in first.names}
    return Table(cols, dict(first.source))
