"""`Codec`: the Python API for pipelines (model loaded and sessions created once)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.records import MAX_CHUNK_ROWS
from balerc.formats.table import Table, refuse_masked

from . import params
from .bounds import Bound
from .model import ModelBundle
from .pipeline import DEFAULT_CHUNK_ROWS, CompressResult, default_threads


class _DefaultBound(str):
    """The default bound, told apart from one the caller gave (`lossless=True` with a
    bound had ignored the bound)."""


DEFAULT_BOUND = _DefaultBound("rel:1e-3")


class Codec:
    """Compress tables or 2-D arrays to .balerc bytes/files and back.

    >>> codec = Codec("model/")               # or Codec() for the model-free path
    >>> blob = codec.compress(array, bound="rel:1e-3")
    >>> back = codec.decompress(blob, as_array=True)
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        zstd_level: int | None = None,
        embed_model: bool = True,
        keep_model: bool = False,
    ):
        self.model_dir = model_dir
        self.embed_model = params.flag(embed_model, "embed_model")
        self.keep_model = params.flag(keep_model, "keep_model")
        self.device = params.device(device)
        self.threads = params.count_or_default(threads, "threads", default_threads)
        self.chunk_rows = params.integer(chunk_rows, "chunk_rows", 1, MAX_CHUNK_ROWS)
        self.zstd_level = (None if zstd_level is None else
                           params.integer(zstd_level, "zstd_level", *params.ZSTD_LEVELS))
        self.model = ModelBundle.load(model_dir) if model_dir is not None else None
        self.last_result: CompressResult | None = None

    def _table(self, data: Any, names: list[str] | None = None) -> Table:
        """Columns by name from a Table, DataFrame, dict of arrays or structured array; a
        plain 2-D array takes `names`, else the model's columns by position, else c0, c1..."""
        names = params.names(names, "names")
        plain = isinstance(data, np.ndarray) and not data.dtype.names
        if names is not None and not plain:  # had been ignored: the columns have names
            raise InputError(f"names= applies to a plain 2-D array; a {type(data).__name__} "
                             f"has its own column names")
        if isinstance(data, Table):
            return data
        if plain:
            refuse_masked(data, "the array")
            arr = np.asarray(data)
            names = names or (self.model.columns if self.model is not None else None)
            if names is not None and arr.ndim == 2 and len(names) != arr.shape[1]:
                raise InputError(f"{len(names)} names for an array of {arr.shape[1]} columns")
            if names is not None:
                params.unique_names(names, "names=")
            return Table.from_numpy(arr, names)
        from balerc.formats.interop import from_any

        from .writer import columns_of

        table = from_any(data)
        return table if table is not None else Table(columns_of(data))

    def compress(
        self,
        data: Any,
        bound: str | Bound | None = DEFAULT_BOUND,
        out: str | os.PathLike | None = None,
        force: bool = False,
        names: list[str] | None = None,
        lossless: bool = False,
        ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> bytes | CompressResult:
        """Bytes of a .balerc file, or write it to `out` and return the result summary.

        `data`: a Table, pandas DataFrame, dict of arrays or numpy structured array (columns
        matched by name), or a 2-D array whose columns are `names` (or, without them, the
        model's columns in order). `lossless=True` stores every column bit-exact (no bound,
        no model: e.g. a table of integers only). `ranges` ({name: (min, max)}): a rel
        bound against these declared ranges instead of the data's own."""
        from .pipeline import compress_with_model

        lossless = params.flag(lossless, "lossless")
        if lossless and (bound is not DEFAULT_BOUND or ranges is not None):
            raise InputError("lossless=True stores every value bit-exact: give no bound and "
                             "no ranges with it (or drop lossless=True to use the bound)")
        if not lossless:
            ranges = params.ranges(ranges, Bound.parse(bound) if bound is not None else None)
        target: Any = io.BytesIO() if out is None else out
        if lossless:
            from .api import compress_file

            self.last_result = compress_file(self._table(data, names), target, lossless=True,
                                             threads=self.threads, chunk_rows=self.chunk_rows,
                                             zstd_level=self.zstd_level, force=force)
            return target.getvalue() if out is None else self.last_result
        self.last_result = compress_with_model(
            self._table(data, names), target, model_dir=None, bound=bound, chunk_rows=self.chunk_rows,
            threads=self.threads, device=self.device, zstd_level=self.zstd_level, force=force,
            model=self.model, keep_model=self.keep_model, embed_model=self.embed_model,
            ranges=ranges,
        )
        return target.getvalue() if out is None else self.last_result

    def decompress(
        self, src: str | os.PathLike | bytes, as_array: bool = False,
        columns: list[str] | None = None, recover: bool = False,
    ) -> Table | np.ndarray:
        """A Table (or the float columns as an (N, F) float64 array with as_array=True).

        A damaged or unfinished file raises; `recover=True` returns its valid prefix.
        """
        from .api import decompress

        if not isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview)):
            raise InputError(f"decompress takes a path or the bytes of a .balerc file, not a "
                             f"{type(src).__name__}")
        table = decompress(src, columns=columns, threads=self.threads, device="cpu",
                           model_dir=self.model_dir, recover=recover)
        return table.to_numpy() if as_array else table
