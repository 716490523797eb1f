"""Tables from and to the notebook's types: pandas, Arrow, awkward, always by column name.

pandas: a non-default index (gene ids, event numbers) becomes a column and comes back as
the index (`source["pandas_index"]`). awkward: a record array of flat fields, or of one
jagged collection (every field with the same counts), which is flattened to one row per
object with an `__event__` column the way the ROOT reader does, and rebuilt on the way
back. Arrow: flat tables of numeric, boolean and string columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError
from .optional import require
from .table import Table

EVENT_COLUMN = "__event__"
INDEX_COLUMN = "__index__"


def from_any(data: Any) -> Table | None:
    """A Table from a DataFrame, Arrow table or awkward array; None for other types."""
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return from_pandas(data)
    if module == "pyarrow" and hasattr(data, "column_names"):
        return from_arrow(data)
    if module == "awkward":
        return from_awkward(data)
    return None


def from_pandas(frame: Any) -> Table:
    """Columns by name; the index is kept unless it is an unnamed RangeIndex of step 1
    (whatever its start, so the chunks of `read_csv(chunksize=...)` or `df.iloc[a:b]`
    all have the same columns)."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):  # frame[c] would be a DataFrame
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"the DataFrame has duplicate column names {dup[:5]}")
    cols = {str(c): _pandas_column(frame[c], f"column '{c}'") for c in frame.columns}
    source: dict[str, Any] = {"format": "pandas"}
    dtypes = {str(c): str(frame[c].dtype) for c in frame.columns
              if not isinstance(frame[c].dtype, np.dtype)}
    index = frame.index
    if getattr(index, "nlevels", 1) > 1:
        raise InputError(f"the DataFrame's index is a MultiIndex ({index.nlevels} levels): "
                         f"balerc keeps one index; reset_index() first")
    if not (type(index).__name__ == "RangeIndex" and index.step == 1 and index.name is None):
        name = str(index.name) if index.name is not None else INDEX_COLUMN
        if name in cols:
            raise InputError(f"the index name '{name}' is also a column name")
        what = "the index" if name == INDEX_COLUMN else f"the index '{name}'"
        cols = {name: _pandas_column(index, what), **cols}
        source["pandas_index"] = name
        if not isinstance(index.dtype, np.dtype):
            dtypes[name] = str(index.dtype)
    if dtypes:  # pandas' own dtypes (Int64, boolean, string, category...), restored on reading
        source["pandas_dtypes"] = dtypes
    labels = {str(c): c for c in frame.columns if not isinstance(c, str)}
    if labels and all(type(c) in (int, float, bool) for c in labels.values()):
        source["pandas_labels"] = labels  # numeric column labels, restored on reading
    if frame.columns.name is not None:
        source["pandas_columns_name"] = str(frame.columns.name)
    return Table(cols, source)


def _pandas_column(values: Any, name: str) -> np.ndarray:
    """A Series or Index as numpy: pandas' nullable types (Int64, boolean, Float64, string)
    go to their numpy type; a missing value (pd.NA) is refused, since to_numpy() would
    turn an Int64 column with one NA into lossy floats."""
    dtype = values.dtype
    if getattr(dtype, "kind", "") in "mM" or str(dtype).startswith(("datetime", "timedelta")):
        raise InputError(f"{name} holds {dtype} values: balerc stores numbers, booleans and "
                         f"strings; convert it first (.astype('int64'): ticks of its unit, "
                         f"or .astype(str))")
    if not isinstance(dtype, np.dtype):  # a pandas extension dtype
        missing = int(values.isna().sum())
        if missing:
            raise InputError(f"{name} ({dtype}) has {missing:,} missing value(s) "
                             f"(pd.NA); balerc stores complete columns: fill them (fillna) "
                             f"or, for floats, store NaN with .astype('float64')")
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if numpy_dtype is not None and np.dtype(numpy_dtype).kind in "iufb":
            return values.to_numpy(dtype=numpy_dtype)
        if str(dtype).startswith("string"):
            return values.to_numpy(dtype=object)
    return values.to_numpy()


def to_pandas(table: Table) -> Any:
    pd = require("pandas", "returning a pandas DataFrame")
    frame = pd.DataFrame({n: table[n] for n in table.names})
    dtypes = table.source.get("pandas_dtypes")
    for name, dtype in (dtypes.items() if isinstance(dtypes, dict) else ()):
        if name in frame.columns and isinstance(dtype, str):
            try:  # a category's set and order are not kept: its values are
                frame[name] = frame[name].astype(dtype)
            except (TypeError, ValueError, ImportError):
                pass  # a dtype this pandas does not know: the numpy values stay
    index = table.source.get("pandas_index")
    if index in frame.columns:
        frame = frame.set_index(index)
        if index == INDEX_COLUMN:
            frame.index.name = None
    labels = table.source.get("pandas_labels")
    if isinstance(labels, dict):
        frame = frame.rename(columns={k: v for k, v in labels.items()
                                      if type(v) in (int, float, bool)})
    name = table.source.get("pandas_columns_name")
    if isinstance(name, str):
        frame.columns.name = name
    return frame


def from_arrow(arrow: Any) -> Table:
    names = [str(n) for n in arrow.column_names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"the Arrow table has duplicate column names {dup[:5]}")
    cols = {}
    for name in arrow.column_names:
        col = arrow.column(name)
        if col.null_count:
            raise InputError(f"Arrow column '{name}' has {col.null_count} nulls; balerc stores "
                             f"complete columns (fill or drop them first)")
        cols[str(name)] = col.to_numpy(zero_copy_only=False)
    return Table(cols, {"format": "arrow"})


def to_arrow(table: Table) -> Any:
    pa = require("pyarrow", "returning an Arrow table")
    return pa.table({n: table[n] for n in table.names})


def from_awkward(array: Any) -> Table:
    ak = require("awkward", "reading awkward arrays")
    fields = ak.fields(array)
    if not fields:
        raise InputError("the awkward array has no record fields: give a record array")
    if EVENT_COLUMN in fields:
        raise InputError(f"the awkward field name '{EVENT_COLUMN}' is reserved (balerc numbers "
                         f"the events of a jagged collection with it): rename it")
    for f in fields:  # records inside records, unions, fixed-size lists: not one column
        kind = type(ak.to_layout(array[f])).__name__
        inner = str(ak.type(array[f]).content)
        if "Union" in kind or "union[" in inner or ak.fields(array[f]) or "Regular" in kind:
            raise InputError(f"awkward field '{f}' has type {inner[:80]}: balerc stores flat "
                             f"fields and one level of variable-length lists of numbers or "
                             f"strings; flatten or unzip it first")
    depth = {f: array[f].ndim for f in fields}
    flat = [f for f in fields if depth[f] == 1]
    jagged = [f for f in fields if depth[f] == 2]
    odd = [f for f in fields if depth[f] > 2]
    if odd:
        raise InputError(f"fields {odd[:5]} are nested more than one level; flatten them")
    if not jagged:
        return Table({f: _awkward_column(array[f], f, ak) for f in flat}, {"format": "awkward"})
    if flat:
        raise InputError(f"mixing per-event fields {flat[:5]} and per-object fields "
                         f"{jagged[:5]}: give one of them at a time")
    counts = np.asarray(ak.to_numpy(ak.num(array[jagged[0]], axis=1)), dtype=np.int64)
    for f in jagged[1:]:
        if not np.array_equal(np.asarray(ak.to_numpy(ak.num(array[f], axis=1))), counts):
            raise InputError(f"field '{f}' has other counts per event than '{jagged[0]}': "
                             f"one collection at a time")
    cols = {EVENT_COLUMN: np.repeat(np.arange(len(counts), dtype=np.int64), counts)}
    cols.update({f: _awkward_column(ak.flatten(array[f]), f, ak) for f in jagged})
    return Table(cols, {"format": "awkward", "jagged": {"n_events": len(counts)}})


def _awkward_column(values: Any, name: str, ak: Any) -> np.ndarray:
    """One field as numpy; an option type holding None is refused by name (to_numpy gives
    a masked array whose hidden values, e.g. INT64_MAX, would be stored as data)."""
    if values.ndim == 1 and ak.any(ak.is_none(values, axis=-1)):
        missing = int(ak.sum(ak.is_none(values, axis=-1)))
        raise InputError(f"awkward field '{name}' has {missing:,} missing value(s) (None); "
                         f"balerc stores complete columns: fill them first (ak.fill_none)")
    if str(ak.type(values).content).startswith("string"):
        return np.asarray(ak.to_list(values), dtype=object)
    out = ak.to_numpy(values)
    return np.asarray(out.data if isinstance(out, np.ma.MaskedArray) else out)


def to_awkward(table: Table) -> Any:
    """A record array; rebuilt per event when the table came from a jagged collection."""
    ak = require("awkward", "returning awkward arrays")
    from .sections import strings_layout

    names = [n for n in table.names if n != EVENT_COLUMN]
    records = ak.zip({n: ak.Array(strings_layout(table[n], ak)) if table[n].dtype.kind == "O"
                      else table[n] for n in names}, depth_limit=1)
    if EVENT_COLUMN not in table:
        return records
    events = table[EVENT_COLUMN]
    n_events = int((table.source.get("jagged") or {}).get("n_events") or 0)
    n_events = max(n_events, int(events.max()) + 1 if len(events) else 0)
    if len(events) > 1 and np.any(events[1:] < events[:-1]):
        raise InputError(f"'{EVENT_COLUMN}' is not sorted: cannot rebuild the events")
    counts = np.bincount(events.astype(np.int64), minlength=n_events)
    return ak.unflatten(records, counts)
