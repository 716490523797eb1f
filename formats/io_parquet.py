"""Parquet tables through pyarrow (an optional dependency: ``balerc[parquet]``).

Flat numeric, bool and string columns are read with their dtypes and written back in
the same order and with the same dtypes. Nested columns (lists, structs, maps) and
other logical types (timestamps, decimals, binary) are refused with an InputError,
because a Table only holds flat float/int/bool/string columns. Nulls in float columns
become NaN; nulls in integer columns turn the column into float64 with NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .optional import require
from .table import Table


def _check_type(path: Path, name: str, typ: Any, pa: Any) -> None:
    t = pa.types
    if t.is_dictionary(typ):
        typ = typ.value_type
    if t.is_integer(typ) or t.is_floating(typ) or t.is_boolean(typ):
        return
    if t.is_string(typ) or t.is_large_string(typ):
        return
    if t.is_nested(typ):
        raise InputError(
            f"{path}: column '{name}' is nested ({typ}); flatten it into one column per "
            "field (one row per element) or exclude it with the columns selection"
        )
    raise InputError(
        f"{path}: column '{name}' has type {typ}, which is not a number, bool or string; "
        "convert it or exclude it with the columns selection"
    )


def _to_numpy(path: Path, name: str, column: Any, pa: Any) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    typ = column.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if column.null_count:
            raise InputError(
                f"{path}: string column '{name}' has {column.null_count} nulls; fill them "
                "(e.g. with '') before compressing"
            )
        return np.array(column.to_pylist(), dtype=object)
    if column.null_count and pa.types.is_boolean(typ):
        raise InputError(f"{path}: bool column '{name}' has nulls; fill them first")
    arr = column.to_numpy()
    return np.ascontiguousarray(arr)


def read_parquet(path: str | Path, *, columns: list[str] | None = None) -> Table:
    """Read the selected columns of a Parquet file."""
    from .tableio import select_names

    pa = require("pyarrow", "Parquet I/O")
    pq = require("pyarrow.parquet", "Parquet I/O")
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    wanted = select_names(list(schema.names), columns, path)
    for name in wanted:
        _check_type(path, name, schema.field(name).type, pa)
    try:
        data = pq.read_table(path, columns=wanted, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read Parquet data ({exc})") from exc
    cols = {n: _to_numpy(path, n, data.column(n), pa) for n in wanted}
    source = {"format": "parquet", "dtypes": {n: str(a.dtype) for n, a in cols.items()}}
    return Table(cols, source)


def write_parquet(table: Table, path: str | Path) -> None:
    """Write every column with its numpy dtype (strings as UTF-8 strings)."""
    pa = require("pyarrow", "Parquet I/O")
    pq = require("pyarrow.parquet", "Parquet I/O")
    arrays = []
    for name in table.names:
        arr = table.columns[name]
        if arr.dtype.kind == "O":
            arrays.append(pa.array(arr.tolist(), type=pa.string()))
        else:
            arrays.append(pa.array(arr))
    pq.write_table(pa.Table.from_arrays(arrays, names=table.names), Path(path))
