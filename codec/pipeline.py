"""Whole tables and files through the writer and reader (what `balerc compress` runs).

A file is compressed as a stream of chunks through `codec/writer.py` (one code path with
the streaming API): a `rel` bound first takes each column's range in one pass, small
tables get zstd's strongest level, and a model is checked on the first chunk to pay for
its embedded decoder. Reading lives in `codec/reader.py`; the names below are kept for
callers of earlier versions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from balerc.formats.fileio import atomic_output
from balerc.formats.stream import TableStream
from balerc.formats.table import Table

from .bounds import Bound
from .coders.lossless import LosslessCoder
from .model import ModelBundle
from .options import DEFAULT_CHUNK_ROWS, CompressOptions, default_threads
from .plan import dtype_str
from .reader import coder_column_names, coders_from_header, decode_with, read_container
from .writer import CompressResult, Writer, package_version, producer

__all__ = [
    "DEFAULT_CHUNK_ROWS", "CompressResult", "LosslessCoder", "coder_column_names",
    "coders_from_header", "compress_lossless", "compress_table", "compress_with_model",
    "decode_with",
    "default_threads", "dtype_str", "package_version", "producer", "read_container",
]


def as_stream(data: Table | TableStream) -> TableStream:
    return data if isinstance(data, TableStream) else TableStream.from_table(data)


def compress_table(data: Table | TableStream, out: str | os.PathLike | Any,
                   options: CompressOptions, model: ModelBundle | None = None,
                   ranges: Mapping[str, tuple[float, float]] | None = None) -> CompressResult:
    """Compress a table or stream into `out` (a path, written atomically, or a binary file).
    `ranges`: declared (min, max) per column for a rel bound (default: one pass over the
    data measures them)."""
    from balerc.formats.errors import InputError

    stream = as_stream(data)
    first = stream.first
    if stream.n_rows == 0 or first.n_columns == 0:
        raise InputError("the table is empty: nothing to compress")
    raw = first.nbytes / max(first.n_rows, 1) * stream.n_rows
    options = options.with_(zstd_level=options.level_for(raw))
    ranges = ranges if ranges is not None else _ranges(stream, options, model)
    probe = None
    if model is not None and options.bound is not None and not options.keep_model:
        probe = next(stream.chunks(options.chunk_rows))

    def run(f: Any, path: Path | None) -> CompressResult:
        w = Writer(f, options, schema={n: a.dtype for n, a in first.columns.items()},
                   model=model, ranges=ranges, source=_source(first), probe=probe,
                   expected_rows=stream.n_rows)
        try:
            for chunk in stream.chunks(options.chunk_rows):
                w._append(chunk, copy=False)  # the stream's chunks are never changed
        except BaseException:
            w._abandon()
            raise
        result = w.close()
        result.path = path
        return result

    if hasattr(out, "write"):
        return run(out, None)
    with atomic_output(out, options.force) as tmp, open(tmp, "wb") as f:
        return run(f, Path(out))


def _ranges(stream: TableStream, options: CompressOptions, model: ModelBundle | None
            ) -> dict[str, tuple[float, float]] | None:
    """One pass for the columns' ranges when the bound (or the model's training bound,
    without one) is relative to them."""
    from .precision import needs_ranges

    if options.lossless or not needs_ranges(options, model):
        return None
    cols = stream.first.names_of_kind("float") if options.column_bounds or model is None \
        else model.columns
    cols = [c for c in cols if c in stream.first.columns and stream.first.kind(c) == "float"]
    return stream.column_ranges(cols)


def _source(table: Table) -> dict[str, Any]:
    """The source details to keep: dtypes only where the schema does not record them."""
    source = dict(table.source)
    if isinstance(source.get("dtypes"), dict):
        differ = {n: d for n, d in source["dtypes"].items()
                  if n in table.columns and d != str(table[n].dtype)}
        source.pop("dtypes")
        if differ:
            source["dtypes"] = differ
    return source


def compress_lossless(table: Table | TableStream, out: str | os.PathLike | Any, *,
                      chunk_rows: int = DEFAULT_CHUNK_ROWS, threads: int = 1,
                      zstd_level: int | None = None, force: bool = False,
                      show_progress: bool = False) -> CompressResult:
    """Store every column losslessly (bit-exact floats, identical strings)."""
    opts = CompressOptions(lossless=True, chunk_rows=chunk_rows, threads=threads,
                           zstd_level=zstd_level, force=force, progress=show_progress)
    return compress_table(table, out, opts)


def compress_with_model(
    data: Table | TableStream,
    output: Any,
    *,
    model_dir: str | os.PathLike | None,
    bound: str | Bound | None,
    latent_bits: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    threads: int = 1,
    device: str = "auto",
    zstd_level: int | None = None,
    embed_model: bool = True,
    force: bool = False,
    show_progress: bool = False,
    model: ModelBundle | None = None,
    keep_model: bool = False,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> CompressResult:
    """Lossy compression of `table`'s float columns (model and/or bound), the rest lossless.

    With a bound, a model whose embedded decoder costs more than it saves on this table is
    dropped (plain quantization, with a note) unless `keep_model` is set.
    """
    if model is None and model_dir is not None:
        model = ModelBundle.load(model_dir)
    opts = CompressOptions(
        bound=Bound.parse(bound) if bound is not None else None, latent_bits=latent_bits,
        chunk_rows=chunk_rows, threads=max(1, threads), device=device, zstd_level=zstd_level,
        embed_model=embed_model, force=force, progress=show_progress, keep_model=keep_model)
    return compress_table(data, output, opts, model, ranges)
