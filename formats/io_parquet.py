"""Parquet tables through pyarrow (an optional dependency: ``balerc[parquet]``).

Flat numeric, bool and string columns are read with their dtypes and written back in
the same order and with the same dtypes; string columns keep their Arrow type
(`large_string`, dictionary-encoded) and the schema's metadata comes back (pandas' index
and extension dtypes with it) when every column does. Nested columns (lists, structs,
maps) and other logical types (timestamps, decimals, binary) are refused with an
InputError, because a Table only holds flat float/int/bool/string columns. Nulls in float
columns become NaN; nulls in integer, bool or string columns are refused by name
(integers had silently become float64, then been quantized under a bound).
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
    if column.null_count and pa.types.is_integer(typ):
        raise InputError(
            f"{path}: integer column '{name}' has {column.null_count:,} nulls; integers have "
            f"no missing value: fill them, or cast the column to float64 yourself to store "
            f"the nulls as NaN")
    arr = column.to_numpy()
    return np.ascontiguousarray(arr)


MAX_METADATA_BYTES = 1 << 20  # schema metadata carried in the header (pandas' is ~1 kB)


def _arrow_record(schema: Any, wanted: list[str]) -> dict[str, Any]:
    """What the Table cannot hold but a Parquet writer needs to give it back: string
    columns' Arrow types, and the schema's metadata (UTF-8 keys and values only)."""
    pa = require("pyarrow", "Parquet I/O")
    types = {}
    for name in wanted:
        typ = schema.field(name).type
        if pa.types.is_large_string(typ):
            types[name] = "large_string"
        elif pa.types.is_dictionary(typ) and (pa.types.is_string(typ.value_type)
                                              or pa.types.is_large_string(typ.value_type)):
            types[name] = "dictionary"
    meta: dict[str, str] = {}
    left: list[str] = []
    for key, value in (schema.metadata or {}).items():
        try:
            meta[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:  # binary metadata has no JSON form: not carried
            left.append(key.decode("utf-8", "replace"))
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_BYTES:
        left, meta = left + list(meta), {}
    if left:  # said, not dropped silently
        import warnings

        warnings.warn(f"Parquet schema metadata {left[:8]} is not stored (binary, or over "
                      f"{MAX_METADATA_BYTES:,} bytes in all); the values are", stacklevel=3)
    out: dict[str, Any] = {}
    if types:
        out["arrow_types"] = types
    if meta and list(schema.names) == wanted:
        out["arrow_metadata"] = meta
        out["arrow_columns"] = wanted
    return out


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
    dupes = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: duplicate column names {dupes}; rename them (pyarrow: "
                         f"table.rename_columns)")
    wanted = select_names(list(schema.names), columns, path)
    for name in wanted:
        _check_type(path, name, schema.field(name).type, pa)
    try:
        data = pq.read_table(path, columns=wanted, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read Parquet data ({exc})") from exc
    cols = {n: _to_numpy(path, n, data.column(n), pa) for n in wanted}
    source = {"format": "parquet", "dtypes": {n: str(a.dtype) for n, a in cols.items()},
              **_arrow_record(schema, wanted)}
    return Table(cols, source)


def write_parquet(table: Table, path: str | Path) -> None:
    """Write every column with its numpy dtype (strings as UTF-8 strings)."""
    pa = require("pyarrow", "Parquet I/O")
    pq = require("pyarrow.parquet", "Parquet I/O")
    src = table.source if table.source.get("format") == "parquet" else {}
    types = src.get("arrow_types") if isinstance(src.get("arrow_types"), dict) else {}
    arrays = []
    for name in table.names:
        arr = table.columns[name]
        if arr.dtype.kind == "O":
            kind = types.get(name)
            col = pa.array(arr.tolist(), type=pa.large_string() if kind == "large_string"
                           else pa.string())
            arrays.append(col.dictionary_encode() if kind == "dictionary" else col)
        else:
            arrays.append(pa.array(arr))
    meta = src.get("arrow_metadata")
    whole = isinstance(meta, dict) and src.get("arrow_columns") == table.names
    out = pa.Table.from_arrays(arrays, names=table.names)
    if whole:  # pandas' index and dtypes, the writer's notes: only for the same columns
        out = out.replace_schema_metadata({str(k): str(v) for k, v in meta.items()})
    pq.write_table(out, Path(path))
