"""NumPy .npy and .npz tables, loaded with ``allow_pickle=False`` only.

Pickled (object) arrays can run arbitrary code when loaded, so they are refused with an
InputError instead of being opened. Layouts:

* ``.npy``: a 1-D array is one column, a 2-D array has columns ``c0..cK``, and an N-D
  array (N > 2) is viewed as ``(shape[0], prod(shape[1:]))``. ``source["shape"]`` keeps
  the original shape so the writer can restore it.
* ``.npz`` in Baler's layout: ``data`` (2-D or N-D, reshaped as above) plus ``names``
  (column names; may be empty, then ``c0..`` are used and an empty ``names`` is written
  back with its original dtype).
* any other ``.npz``: every key is one 1-D column of equal length.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .table import Table

_PICKLE_HINT = (
    "holds a pickled object array, which is refused because loading pickles can run "
    "arbitrary code; save plain numeric or unicode arrays instead (e.g. arr.astype(float) "
    "or names.astype(str))"
)


def _default_names(n: int) -> list[str]:
    return [f"c{j}" for j in range(n)]


def _check_array(path: Path, key: str, arr: np.ndarray) -> None:
    if arr.dtype.kind == "O":
        raise InputError(f"{path}: '{key}' {_PICKLE_HINT}")
    if arr.dtype.names is not None:
        raise InputError(
            f"{path}: '{key}' is a structured array; save one plain array per column "
            "(np.savez(path, **columns)) instead"
        )
    if arr.dtype.kind not in "fiubUS":
        raise InputError(
            f"{path}: '{key}' has dtype {arr.dtype}, which is not a float, int, bool or "
            "string type; convert it before compressing"
        )


def _load(loader: Any, path: Path, key: str) -> np.ndarray:
    """Run `loader()` and turn numpy's pickle refusal into an InputError."""
    try:
        arr = loader()
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{path}: '{key}' {_PICKLE_HINT}") from exc
        raise InputError(f"{path}: cannot read '{key}' ({exc})") from exc
    _check_array(path, key, arr)
    if arr.dtype.kind == "S":
        try:
            arr = np.char.decode(arr, "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: '{key}' holds bytes that are not UTF-8 text") from exc
    return arr


def _as_2d(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 0:
        raise InputError(f"{path}: holds a single scalar, not a table")
    if arr.ndim == 1:
        return arr[:, None]
    return arr.reshape(arr.shape[0], math.prod(arr.shape[1:]))


def _columns_from_2d(data: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.ascontiguousarray(data[:, j]) for j, n in enumerate(names)}


def _finish(
    path: Path, cols: dict[str, np.ndarray], columns: list[str] | None, source: dict
) -> Table:
    from .tableio import select_names

    wanted = select_names(list(cols), columns, path)
    cols = {n: cols[n] for n in wanted}
    source["dtypes"] = {n: str(a.dtype) for n, a in cols.items()}
    return Table(cols, source)


def read_npy(path: str | Path, *, columns: list[str] | None = None) -> Table:
    """Read a .npy array as a table (columns ``c0..``)."""
    path = Path(path)
    try:
        arr = _load(lambda: np.load(path, allow_pickle=False), path, "array")
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from exc
    data = _as_2d(path, arr)
    cols = _columns_from_2d(data, _default_names(data.shape[1]))
    source: dict[str, Any] = {"format": "npy", "shape": list(arr.shape)}
    if arr.dtype.byteorder == ">" or (arr.ndim > 1 and np.isfortran(arr)):
        source["npy_layout"] = {"byteorder": ">" if arr.dtype.byteorder == ">" else "<",
                                "fortran": bool(arr.ndim > 1 and np.isfortran(arr))}
    return _finish(path, cols, columns, source)


def read_npz(path: str | Path, *, columns: list[str] | None = None) -> Table:
    """Read a .npz archive in Baler's data+names layout or as one key per column."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a valid .npz file ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: holds a single array, not an archive; rename it to .npy")
    with archive:
        keys = list(archive.files)
        if not keys:
            raise InputError(f"{path}: the table is empty (the archive has no arrays)")
        arrays = {k: _load(lambda k=k: archive[k], path, k) for k in keys}
        as_bytes = [k for k in keys if archive[k].dtype.kind == "S"]  # decoded by _load

    data = arrays.get("data")
    if data is not None and ("names" in arrays or data.ndim >= 2):
        extra = [k for k in keys if k not in ("data", "names")]
        if extra:  # they had been left out silently
            raise InputError(
                f"{path}: besides 'data' and 'names' (Baler's layout) it holds {extra}; "
                f"balerc stores one table: save those arrays in a file of their own (or "
                f"each column under its own key, all of one length)")
        return _read_baler(path, data, arrays.get("names"), columns, as_bytes)

    lengths = {k: a.shape for k, a in arrays.items()}
    bad = {k: s for k, s in lengths.items() if len(s) != 1}
    if bad:
        raise InputError(
            f"{path}: arrays {bad} are not 1-D; use Baler's layout (keys 'data' and 'names') "
            "or save one 1-D array per column"
        )
    if len({s[0] for s in lengths.values()}) > 1:
        raise InputError(
            f"{path}: the arrays have different lengths {lengths}; every column needs the "
            "same number of rows"
        )
    cols = {k: a for k, a in arrays.items()}
    source: dict[str, Any] = {"format": "npz", "npz_layout": "columns"}
    if as_bytes:
        source["bytes_arrays"] = as_bytes
    return _finish(path, cols, columns, source)


def _read_baler(
    path: Path, data: np.ndarray, names_arr: np.ndarray | None, columns: list[str] | None,
    as_bytes: list[str],
) -> Table:
    if data.dtype.kind in "US":
        raise InputError(f"{path}: 'data' holds strings; it must be numeric")
    matrix = _as_2d(path, data)
    source: dict[str, Any] = {"format": "npz", "npz_layout": "baler", "shape": list(data.shape)}
    if "names" in as_bytes and names_arr is not None and names_arr.size:
        source["bytes_arrays"] = ["names"]  # written back as bytes (|S), as they came
    if names_arr is None or names_arr.size == 0:
        names = _default_names(matrix.shape[1])
        if names_arr is not None:
            source["names_empty_dtype"] = str(names_arr.dtype)
    else:
        names = [str(n) for n in names_arr.reshape(-1).tolist()]
        if len(names) != matrix.shape[1]:
            raise InputError(
                f"{path}: 'names' has {len(names)} entries but 'data' has "
                f"{matrix.shape[1]} columns; fix the names or leave them empty"
            )
        if len(set(names)) != len(names):
            raise InputError(f"{path}: 'names' has duplicates; column names must be unique")
    return _finish(path, _columns_from_2d(matrix, names), columns, source)


def _stack(table: Table, path: Path, suggestion: str) -> np.ndarray:
    """All columns as one 2-D array; they must share one numeric dtype."""
    dtypes = {str(a.dtype) for a in table.columns.values()}
    strings = table.names_of_kind("string")
    if strings and len(strings) == table.n_columns:  # a unicode array (a .npy of strings)
        return np.stack([np.array(table.columns[n].tolist(), dtype=str) for n in table.names],
                        axis=1).reshape(table.n_rows, table.n_columns)
    if strings or len(dtypes) > 1:
        why = f"string columns {strings}" if strings else f"mixed dtypes {sorted(dtypes)}"
        raise InputError(
            f"cannot write {path}: one array needs one numeric dtype but the table has "
            f"{why}; write {suggestion} instead"
        )
    out = np.empty((table.n_rows, table.n_columns), dtype=next(iter(dtypes)) if dtypes else "f8")
    for j, n in enumerate(table.names):
        out[:, j] = table.columns[n]
    return out


def _restore_shape(table: Table, matrix: np.ndarray) -> np.ndarray:
    """Give back the N-D (or 1-D) shape the table was read with, when it still fits."""
    shape = table.source.get("shape")
    if table.source.get("format") not in ("npy", "npz") or not shape:
        return matrix
    shape = tuple(int(s) for s in shape)
    if shape[0] == matrix.shape[0] and math.prod(shape) == matrix.size:
        return matrix.reshape(shape)
    return matrix


def write_npy(table: Table, path: str | Path) -> None:
    """Write one 2-D array (or the source's original N-D shape); names are not kept."""
    path = Path(path)
    matrix = _restore_shape(table, _stack(table, path, "npz (one array per column) or parquet"))
    layout = table.source.get("npy_layout") if table.source.get("format") == "npy" else None
    if isinstance(layout, dict):  # the source's byte order and memory order (values equal)
        if layout.get("byteorder") == ">" and matrix.dtype.kind in "fiu":
            matrix = matrix.astype(matrix.dtype.newbyteorder(">"))
        if layout.get("fortran") is True:
            matrix = np.asfortranarray(matrix)
    with open(path, "wb") as fh:
        np.save(fh, matrix, allow_pickle=False)


def write_npz(table: Table, path: str | Path) -> None:
    """Write Baler's data+names layout when the columns share a dtype, else one key per column.

    Names are saved as a numpy unicode array (never object), so the file loads without
    pickle.
    """
    path = Path(path)
    src = table.source
    dtypes = {str(a.dtype) for a in table.columns.values()}
    one_dtype = len(dtypes) == 1 and not table.names_of_kind("string")
    per_column = src.get("npz_layout") == "columns" and src.get("format") == "npz"
    arrays: dict[str, np.ndarray]
    if one_dtype and not per_column:
        data = _restore_shape(table, _stack(table, path, "parquet"))
        if table.names == _default_names(table.n_columns) and "names_empty_dtype" in src:
            dt = np.dtype(src["names_empty_dtype"])
            names = np.empty(0, dtype=dt if dt.kind in "fiubUS" else "U1")
        else:
            names = np.array(table.names, dtype=str)
        arrays = {"data": data, "names": names}
    else:
        arrays = {}
        for n, a in table.columns.items():
            arrays[n] = np.array(a.tolist(), dtype=str) if a.dtype.kind == "O" else a
    if src.get("format") == "npz":
        for k in src.get("bytes_arrays", []):  # text that came as bytes goes back as bytes
            if k in arrays and arrays[k].dtype.kind == "U":
                arrays[k] = np.char.encode(arrays[k], "utf-8")
    _savez(path, arrays)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez without its keyword-argument API, so any column name (even 'file') works."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
