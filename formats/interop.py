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
    cols = {str(c): frame[c].to_numpy() for c in frame.columns}
    if len(cols) != len(frame.columns):
        raise InputError("the DataFrame has duplicate column names")
    source: dict[str, Any] = {"format": "pandas"}
    index = frame.index
    if not (type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1):
        name = str(index.name) if index.name is not None else INDEX_COLUMN
        if name in cols:
            raise InputError(f"the index name '{name}' is also a column name")
        cols = {name: index.to_numpy(), **cols}
        source["pandas_index"] = name
    return Table(cols, source)


def to_pandas(table: Table) -> Any:
    pd = require("pandas", "returning a pandas DataFrame")
    frame = pd.DataFrame({n: table[n] for n in table.names})
    index = table.source.get("pandas_index")
    if index in frame.columns:
        frame = frame.set_index(index)
        if index == INDEX_COLUMN:
            frame.index.name = None
    return frame


def from_arrow(arrow: Any) -> Table:
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
    depth = {f: array[f].ndim for f in fields}
    flat = [f for f in fields if depth[f] == 1]
    jagged = [f for f in fields if depth[f] == 2]
    odd = [f for f in fields if depth[f] > 2]
    if odd:
        raise InputError(f"fields {odd[:5]} are nested more than one level; flatten them")
    if not jagged:
        return Table({f: ak.to_numpy(array[f]) for f in flat}, {"format": "awkward"})
    if flat:
        raise InputError(f"mixing per-event fields {flat[:5]} and per-object fields "
                         f"{jagged[:5]}: give one of them at a time")
    counts = np.asarray(ak.to_numpy(ak.num(array[jagged[0]], axis=1)), dtype=np.int64)
    for f in jagged[1:]:
        if not np.array_equal(np.asarray(ak.to_numpy(ak.num(array[f], axis=1))), counts):
            raise InputError(f"field '{f}' has other counts per event than '{jagged[0]}': "
                             f"one collection at a time")
    cols = {EVENT_COLUMN: np.repeat(np.arange(len(counts), dtype=np.int64), counts)}
    cols.update({f: ak.to_numpy(ak.flatten(array[f])) for f in jagged})
    return Table(cols, {"format": "awkward", "jagged": {"n_events": len(counts)}})


def to_awkward(table: Table) -> Any:
    """A record array; rebuilt per event when the table came from a jagged collection."""
    ak = require("awkward", "returning awkward arrays")
    names = [n for n in table.names if n != EVENT_COLUMN]
    records = ak.zip({n: table[n] for n in names}, depth_limit=1)
    if EVENT_COLUMN not in table:
        return records
    events = table[EVENT_COLUMN]
    n_events = int((table.source.get("jagged") or {}).get("n_events") or 0)
    n_events = max(n_events, int(events.max()) + 1 if len(events) else 0)
    if len(events) > 1 and np.any(events[1:] < events[:-1]):
        raise InputError(f"'{EVENT_COLUMN}' is not sorted: cannot rebuild the events")
    counts = np.bincount(events.astype(np.int64), minlength=n_events)
    return ak.unflatten(records, counts)
