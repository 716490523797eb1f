"""Chunked, thread-parallel compression of a Table into a .balerc file, and back.

A file is a sequence of independent chunks; each chunk holds the streams of every column
group coder (lossless columns here; the autoencoder group in codec/ae.py). Chunks are
encoded by a thread pool (numpy, zstd and ONNX Runtime release the GIL) with a bounded
window of chunks in flight, so memory is bounded by chunk size x threads, not file size.
"""

from __future__ import annotations

import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zstandard

from balerc.formats.container import ContainerReader, ContainerWriter
from balerc.formats.errors import (
    ContainerError,
    InputError,
    SchemaError,
    UnsupportedFeatureError,
)
from balerc.formats.fileio import atomic_output
from balerc.formats.stream import TableStream
from balerc.formats.table import Table, kind_of

from . import lossless
from .progress import progress
from .validate import check_lossless_desc

DEFAULT_CHUNK_ROWS = 65536
SMALL_TABLE_BYTES = 16 << 20  # below this, zstd's strongest level costs well under a second


def choose_level(requested: int | None, stream: TableStream) -> int:
    """The zstd level: the user's, else 19 for small tables (where every byte of the
    entropy stage shows in the ratio and time is negligible) and 3 for large ones."""
    if requested is not None:
        return requested
    first = stream.first
    raw = first.nbytes / max(first.n_rows, 1) * stream.n_rows
    return 19 if raw <= SMALL_TABLE_BYTES else 3


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("balerc")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def producer() -> dict[str, str]:
    return {
        "balerc": package_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "zstandard": zstandard.__version__,
    }


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def dtype_str(values: np.ndarray) -> str:
    """Portable dtype name stored in the schema ('<f8', '|b1', 'str')."""
    return "str" if values.dtype.kind in "OUS" else values.dtype.newbyteorder("<").str


class GroupCoder(Protocol):
    """Codes some columns of every chunk into named streams (and back)."""

    columns: list[str]

    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]: ...

    def decode(
        self, streams: dict[str, bytes], rows: int, meta: dict[str, Any]
    ) -> dict[str, np.ndarray]: ...

    def streams_for(self, names: list[str]) -> list[str] | None: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class LosslessCoder:
    """Every column in its own stream 'col/<i>' (i = schema index)."""

    columns: list[str]
    index: dict[str, int]
    dtypes: dict[str, str]
    level: int = 3

    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        return (
            {f"col/{self.index[n]}": lossless.encode_column(chunk[n], self.level) for n in self.columns},
            {},
        )

    def decode(self, streams: dict[str, bytes], rows: int, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for n in self.columns:
            key = f"col/{self.index[n]}"
            if key in streams:
                dt = object if self.dtypes[n] == "str" else self.dtypes[n]
                out[n] = lossless.decode_column(streams[key], dt, rows, f"stream '{key}'")
        return out

    def streams_for(self, names: list[str]) -> list[str]:
        return [f"col/{self.index[n]}" for n in names if n in self.index]

    def describe(self) -> dict[str, Any]:
        return {"id": "lossless", "columns": [self.index[n] for n in self.columns], "zstd_level": self.level}


@dataclass
class CompressResult:
    path: Path | None
    rows: int
    chunks: int
    raw_bytes: int
    file_bytes: int
    source_bytes: int | None
    seconds: float
    column_bytes: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.file_bytes if self.file_bytes else float("inf")

    @property
    def ratio_vs_source(self) -> float | None:
        return self.source_bytes / self.file_bytes if self.source_bytes and self.file_bytes else None

    @property
    def mbps(self) -> float:
        return self.raw_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


def _schema(table: Table, codec_of: dict[str, str]) -> dict[str, Any]:
    source = {k: v for k, v in table.source.items() if _jsonable(v)}
    return {
        "columns": [
            {"name": n, "kind": kind_of(a), "dtype": dtype_str(a), "codec": codec_of.get(n, "lossless")}
            for n, a in table.columns.items()
        ],
        "source": source,
    }


def _jsonable(value: Any) -> bool:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _parallel_ordered(
    func: Callable[[Any], Any], items: Iterable[Any], threads: int
) -> Iterator[Any]:
    """Map func over items with a thread pool, yielding results in order, bounded window."""
    if threads <= 1:
        for item in items:
            yield func(item)
        return
    window: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for item in items:
            window.append(pool.submit(func, item))
            if len(window) >= 2 * threads:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def write_table_container(
    data: Table | TableStream,
    out: str | os.PathLike | Any,
    coders: list[GroupCoder],
    *,
    header_extra: dict[str, Any] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    threads: int = 1,
    force: bool = False,
    show_progress: bool = False,
    summary: Callable[[], dict[str, Any]] | None = None,
) -> CompressResult:
    """Encode a table or stream chunk by chunk with `coders` into `out` (path or binary file).

    Memory is bounded by chunk_rows x threads: chunks are read, encoded and written one
    window at a time.
    """
    stream = data if isinstance(data, TableStream) else TableStream.from_table(data)
    table = stream.first
    if stream.n_rows == 0 or table.n_columns == 0:
        raise InputError("the table is empty: nothing to compress")
    if chunk_rows < 1:
        raise InputError(f"--chunk-rows must be positive, got {chunk_rows}")
    codec_of = {n: c.describe()["id"] for c in coders for n in c.columns}
    source = dict(table.source)
    if isinstance(source.get("dtypes"), dict):  # keep only what the schema does not record
        differ = {n: d for n, d in source["dtypes"].items()
                  if n in table.columns and d != str(table[n].dtype)}
        source.pop("dtypes")
        if differ:
            source["dtypes"] = differ
    table = Table(table.columns, source)
    features = sorted({f for c in coders for f in c.describe().get("features", [c.describe()["id"]])})
    header = {
        "format": "balerc",
        "required_features": features,
        "producer": producer(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "chunk_rows": chunk_rows,
        "schema": _schema(table, codec_of),
        "coders": [c.describe() for c in coders],
    }
    header.update(header_extra or {})
    t0 = time.perf_counter()

    def encode(item: tuple[int, Table]) -> tuple[int, dict[str, bytes], dict[str, Any]]:
        i, chunk = item
        streams: dict[str, bytes] = {}
        meta: dict[str, Any] = {}
        for k, coder in enumerate(coders):
            s, m = coder.encode(chunk, i)
            streams.update(s)
            if m:
                meta[str(k)] = m
        return chunk.n_rows, streams, meta

    col_bytes: dict[str, int] = {}
    raw = [0]

    def counted() -> Iterator[tuple[int, Table]]:
        """Chunks in order, adding up raw bytes as they are read (reader thread only)."""
        for i, t in enumerate(stream.chunks(chunk_rows)):
            raw[0] += t.nbytes
            yield i, t

    attachments: dict[str, bytes] = {}
    for c in coders:
        attachments.update(getattr(c, "attachments", dict)())

    def run(f: Any) -> ContainerWriter:
        writer = ContainerWriter(f, header, attachments)
        n_chunks = -(-stream.n_rows // chunk_rows)
        with progress(n_chunks, "compress", "chunk", enabled=show_progress) as bar:
            workers = min(threads, n_chunks)  # one chunk: stay in this thread (warm sessions)
            for rows, streams, meta in _parallel_ordered(encode, counted(), workers):
                writer.write_chunk(streams, rows, meta)
                for name, blob in streams.items():
                    col_bytes[name] = col_bytes.get(name, 0) + len(blob)
                bar.update(1)
        writer.close({"raw_bytes": raw[0], **(summary() if summary else {})})
        return writer

    path: Path | None = None
    if hasattr(out, "write"):
        writer = run(out)
    else:
        with atomic_output(out, force) as tmp:
            with open(tmp, "wb") as f:
                writer = run(f)
        path = Path(out)
    seconds = time.perf_counter() - t0
    return CompressResult(
        path=path,
        rows=stream.n_rows,
        chunks=writer.n_chunks,
        raw_bytes=raw[0],
        file_bytes=writer.bytes_written,
        source_bytes=table.source.get("size"),
        seconds=seconds,
        column_bytes=col_bytes,
    )


def compress_lossless(
    table: Table | TableStream,
    out: str | os.PathLike | Any,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    threads: int = 1,
    zstd_level: int | None = None,
    force: bool = False,
    show_progress: bool = False,
) -> CompressResult:
    """Store every column losslessly (bit-exact floats, identical strings)."""
    stream = table if isinstance(table, TableStream) else TableStream.from_table(table)
    first = stream.first
    zstd_level = choose_level(zstd_level, stream)
    coder = LosslessCoder(
        first.names,
        {n: i for i, n in enumerate(first.names)},
        {n: dtype_str(a) for n, a in first.columns.items()},
        zstd_level,
    )
    return write_table_container(
        table, out, [coder], chunk_rows=chunk_rows, threads=threads, force=force,
        show_progress=show_progress,
    )


# ------------------------------------------------------------------------------ reading
def coder_column_names(header: dict[str, Any], desc: dict[str, Any]) -> list[str]:
    """A coder's columns by name (stored as schema indices; early files stored names)."""
    schema = header["schema"]["columns"]
    return [schema[c]["name"] if isinstance(c, int) else c for c in desc.get("columns", [])]


def coders_from_header(header: dict[str, Any], **runtime: Any) -> list[GroupCoder]:
    """Rebuild the group coders a file was written with (the codec registry by id)."""
    if "schema" not in header or "coders" not in header:
        raise SchemaError("the header has no table schema or coders: not a balerc table file")
    schema = header["schema"]["columns"]
    index = {c["name"]: i for i, c in enumerate(schema)}
    dtypes = {c["name"]: c["dtype"] for c in schema}
    coders: list[GroupCoder] = []
    for k, desc in enumerate(header["coders"]):
        desc = dict(desc, columns=coder_column_names(header, desc))
        cid = desc["id"]
        if cid == "lossless":
            check_lossless_desc(desc, f"header, coder {k}")
            coders.append(LosslessCoder(desc["columns"], index, dtypes, desc.get("zstd_level", 3)))
        elif cid == "autoencoder":
            from .ae import AECoder

            coders.append(AECoder.from_header(desc, index, dtypes, **runtime))
        else:
            raise UnsupportedFeatureError(
                f"unknown column coder '{cid[:40]}' in the file header; upgrade balerc")
    return coders


def read_container(
    source: str | os.PathLike | bytes,
    *,
    columns: list[str] | None = None,
    chunks: Iterable[int] | None = None,
    threads: int = 1,
    show_progress: bool = False,
    recover: bool = False,
    **runtime: Any,
) -> Table:
    """Decode a .balerc file (all of it, some chunks, or some columns) into a Table.

    A damaged or unfinished file raises a ContainerError subclass; with `recover=True` the
    longest valid prefix of chunks is returned instead, with a RecoveryWarning.
    """
    with ContainerReader(source, recover=recover) as reader:
        return decode_with(reader, columns=columns, chunks=chunks, threads=threads,
                           show_progress=show_progress, **runtime)


def decode_with(
    reader: ContainerReader,
    *,
    columns: list[str] | None = None,
    chunks: Iterable[int] | None = None,
    threads: int = 1,
    show_progress: bool = False,
    **runtime: Any,
) -> Table:
    """Decode chunks of an open reader; on a damaged chunk, fail, or with the reader's
    `recover`, keep the chunks before it (the reader then says how many rows survive)."""
    header = reader.header
    try:
        coders = coders_from_header(header, attachment=reader.read_attachment,
                                    source=reader.path, **runtime)
    except ContainerError as exc:
        raise _prefixed(reader, exc) from None
    schema = header["schema"]["columns"]
    all_names = [c["name"] for c in schema]
    wanted = all_names if columns is None else list(columns)
    missing = [n for n in wanted if n not in all_names]
    if missing:
        raise InputError(f"{reader.path} has no column(s) {missing}; it has {all_names}")
    plan = []
    for k, coder in enumerate(coders):
        need = [n for n in wanted if n in coder.columns]
        if need:
            plan.append((k, coder, need, coder.streams_for(need)))
    chunk_ids = list(range(reader.n_chunks)) if chunks is None else list(chunks)

    def decode(i: int) -> dict[str, np.ndarray] | ContainerError:
        try:
            info = reader.chunk(i)
            cols: dict[str, np.ndarray] = {}
            for k, coder, need, stream_names in plan:
                streams = reader.read_chunk(i, stream_names)
                got = coder.decode(streams, info.rows, info.meta.get(str(k), {}))
                lost = [n for n in need if n not in got]
                if lost:
                    raise SchemaError(f"the streams of column(s) {lost[:5]} are missing")
                cols.update({n: got[n] for n in need})
            return cols
        except ContainerError as exc:
            return _prefixed(reader, exc, f"chunk {i}: ")

    # output columns preallocated and filled chunk by chunk: peak memory ~ output + window
    dtypes = {c["name"]: c["dtype"] for c in schema}
    starts = np.cumsum([0] + [reader.chunk_rows_of(i) for i in chunk_ids])
    out = {n: np.empty(int(starts[-1]), dtype=object if dtypes[n] == "str" else dtypes[n]) for n in wanted}
    with progress(len(chunk_ids), "decompress", "chunk", enabled=show_progress) as bar:
        for k, cols in enumerate(_parallel_ordered(decode, chunk_ids, min(threads, len(chunk_ids)))):
            if isinstance(cols, ContainerError):
                if not (reader.recover and chunks is None):
                    raise cols
                reader.keep_prefix(k, f"chunk {k} is damaged ({cols})")
                out = {n: a[: starts[k]] for n, a in out.items()}
                break
            for n in wanted:
                out[n][starts[k] : starts[k + 1]] = cols[n]
            bar.update(1)
    source = dict(header["schema"].get("source", {}))
    return Table(out, source)


def _prefixed(reader: ContainerReader, exc: ContainerError, where: str = "") -> ContainerError:
    """The same error, its message naming the file (and chunk): codec errors know neither."""
    text = str(exc)
    if text.startswith(reader.path):
        return exc
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (f"{reader.path}: {where}{text}",)
    return new
