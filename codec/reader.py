"""The read path: a .balerc file (or bytes) back to tables, all at once or chunk by chunk.

`read_container` decodes a whole file (or some columns or chunks); `open_reader` gives a
Reader for pipelines: `iter_chunks(columns=...)` yields one Table per chunk, `read(rows=,
columns=)` decodes only the chunks a row range touches (from the footer index), `info()`
describes the file. Every record was validated when the container opened; the coders
validate their own metadata before decoding (codec/validate.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from balerc.formats.container import (
    CHAINED_FEATURE,
    SECTIONS_FEATURE,
    ContainerReader,
    accept_features,
)
from balerc.formats.errors import (
    BalercError,
    ContainerError,
    InputError,
    SchemaError,
    TimeLimitError,
)
from balerc.formats.records import MAX_EVENTS
from balerc.formats.table import Table
from balerc.formats.tableio import matching, select_names

from . import deadline, params
from .coders import ColumnCoder, get_coder
from .options import default_threads
from .parallel import parallel_ordered
from .progress import progress

# multi-section files (codec/sections.py); several coders of one id (codec/precision.py)
accept_features([SECTIONS_FEATURE, CHAINED_FEATURE, "stream-prefix"])


def coder_column_names(header: dict[str, Any], desc: dict[str, Any]) -> list[str]:
    """A coder's columns by name (stored as schema indices; early files stored names)."""
    schema = header["schema"]["columns"]
    return [schema[c]["name"] if isinstance(c, int) else c for c in desc.get("columns", [])]


def coders_from_header(header: dict[str, Any], **runtime: Any) -> list[ColumnCoder]:
    """Rebuild the coders a file was written with, by id from the coder registry."""
    if "schema" not in header or "coders" not in header:
        raise SchemaError("the header has no table schema or coders: not a balerc table file")
    schema = header["schema"]["columns"]
    index = {c["name"]: i for i, c in enumerate(schema)}
    dtypes = {c["name"]: c["dtype"] for c in schema}
    coders = []
    for desc in header["coders"]:
        desc = dict(desc, columns=coder_column_names(header, desc))
        prefix = desc.pop("stream_prefix", "")
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise SchemaError(f"coder '{str(desc.get('id'))[:40]}': 'stream_prefix' must look "
                              f"like '2:'")
        coder = get_coder(desc["id"]).from_config(desc, index, dtypes, **runtime)
        coder.stream_prefix = prefix
        coders.append(coder)
    return coders


_PREFIX = re.compile(r"^([0-9]{1,4}:)?$")


def read_container(
    source: str | os.PathLike | bytes,
    *,
    columns: list[str] | None = None,
    chunks: Iterable[int] | None = None,
    threads: int = 1,
    show_progress: bool = False,
    recover: bool = False,
    timeout: float | None = None,
    **runtime: Any,
) -> Table:
    """Decode a .balerc file (all of it, some chunks, or some columns) into a Table.

    A damaged or unfinished file raises a ContainerError subclass; with `recover=True` the
    longest valid prefix of chunks is returned instead, with a RecoveryWarning. `timeout`
    (seconds; default BALERC_DECODE_TIMEOUT, else none) stops a decode that runs longer
    with a LimitError: set it for files from elsewhere (codec/deadline.py).
    """
    _check_runtime(runtime)
    with ContainerReader(source, recover=recover) as reader:
        columns, chunks = _selection(reader, columns, chunks)
        return decode_with(reader, columns=columns, chunks=chunks, threads=threads,
                           show_progress=show_progress, timeout=timeout, **runtime)


def decode_with(
    reader: ContainerReader,
    *,
    columns: list[str] | None = None,
    chunks: Iterable[int] | None = None,
    threads: int = 1,
    show_progress: bool = False,
    timeout: float | None = None,
    **runtime: Any,
) -> Table:
    """Decode chunks of an open reader; on a damaged chunk, fail, or with the reader's
    `recover`, keep the chunks before it (the reader then says how many rows survive).
    `timeout`: as read_container's."""
    with deadline.limit(timeout, reader.path):
        return _decode_chunks(reader, columns, chunks, threads, show_progress, runtime)


def _selection(reader: ContainerReader, columns: Any, chunks: Any
               ) -> tuple[list[str] | None, list[int] | None]:
    """read_container's columns (names or globs, as Reader.read and decompress take them)
    and chunk indices, checked; the internal callers of decode_with pass resolved ones."""
    if columns is not None:
        names = [c["name"] for c in reader.header.get("schema", {}).get("columns", [])]
        columns = select_names(names, params.patterns(columns, "columns"), reader.path,
                               pattern_order=True)
    if chunks is not None:
        chunks = [params.integer(i, f"chunks[] (the file has {reader.n_chunks})", 0,
                                 reader.n_chunks - 1) for i in chunks]
    return columns, chunks


RUNTIME = ("device", "model_dir")  # what the decoders take besides the arguments above


def _check_runtime(runtime: dict[str, Any]) -> None:
    """Unknown keywords had been passed on and ignored (`colums=` read every column)."""
    if "device" in runtime:
        params.device(runtime["device"])
    unknown = sorted(set(runtime) - set(RUNTIME))
    if unknown:
        raise InputError(f"unknown keyword argument(s) {unknown}; reading takes columns, "
                         f"chunks, threads, recover, timeout, show_progress, "
                         f"{', '.join(RUNTIME)}")


def _decode_chunks(reader: ContainerReader, columns: list[str] | None,
                   chunks: Iterable[int] | None, threads: int, show_progress: bool,
                   runtime: dict[str, Any]) -> Table:
    wanted, plan, prefixes = _decode_plan(reader, columns, runtime)  # refuses no schema
    header = reader.header
    schema = header["schema"]["columns"]
    chunk_ids = list(range(reader.n_chunks)) if chunks is None else list(chunks)

    # output columns preallocated; each worker copies its chunk into place (the copy and
    # the first touch of the output's pages run in parallel): peak ~ output + window
    dtypes = {c["name"]: c["dtype"] for c in schema}
    starts = np.cumsum([0] + [reader.chunk_rows_of(i) for i in chunk_ids])
    out = {n: np.empty(int(starts[-1]), dtype=object if dtypes[n] == "str" else dtypes[n]) for n in wanted}

    def decode(job: tuple[int, int]) -> ContainerError | None:
        k, i = job  # position in the output, chunk index
        try:
            deadline.check(f"starting chunk {i} of {reader.n_chunks}")
            info = reader.chunk(i)
            for c, coder, need, stream_names in plan:
                p = prefixes[c]
                streams = reader.read_chunk(i, [p + n for n in stream_names])
                if p:
                    streams = {n[len(p):]: b for n, b in streams.items()}
                meta = info.meta.get(str(c), {})
                into = {n: out[n][starts[k] : starts[k + 1]] for n in need}
                got = (coder.decode(streams, info.rows, meta, into=into)
                       if getattr(coder, "decodes_into", False)  # third-party coders: copied
                       else coder.decode(streams, info.rows, meta))
                lost = [n for n in need if n not in got]
                if lost:
                    raise SchemaError(f"the streams of column(s) {lost[:5]} are missing")
                for n in need:
                    if got[n] is not into[n]:
                        into[n][...] = got[n]
            return None
        except TimeLimitError:
            raise  # not damage: --recover must not cut the table here
        except ContainerError as exc:
            return _prefixed(reader, exc, f"chunk {i}: ")

    jobs, kept = list(enumerate(chunk_ids)), int(starts[-1])
    with progress(len(chunk_ids), "decompress", "chunk", enabled=show_progress) as bar:
        results = parallel_ordered(decode, jobs, min(threads, len(jobs)))
        for k, failed in enumerate(results):
            if failed is not None:
                if not (reader.recover and chunks is None):
                    raise failed
                reader.keep_prefix(k, f"chunk {k} is damaged ({failed})")
                kept = int(starts[k])
                break
            bar.update(1)
        results.close()  # chunks still in flight finish (into rows past `kept`) here
    return Table({n: a[:kept] for n, a in out.items()}, _table_source(reader, header))


def _table_source(reader: Any, header: dict[str, Any]) -> dict[str, Any]:
    """The schema's source record; a streamed jagged table's event count (its trailing
    empty events) comes from the footer, known only when the writer closed. A section of
    a file of sections has its counts in the events section instead."""
    source = dict(header["schema"].get("source", {}))
    footer = getattr(reader, "footer", None) or {}
    events = footer.get("summary", {}).get("n_events")
    if (isinstance(source.get("jagged"), dict) and type(events) is int
            and 0 <= events <= MAX_EVENTS and not getattr(reader, "recovered", False)):
        source["jagged"] = {**source["jagged"], "n_events": events}
    return source


def _decode_plan(reader: ContainerReader, columns: list[str] | None, runtime: dict[str, Any]
                 ) -> tuple[list[str], list[tuple[int, Any, list[str], list[str]]], list[str]]:
    """The wanted columns, (coder index, coder, its wanted columns, their streams) per
    coder that holds any, and each coder's stream prefix."""
    name = getattr(reader, "name", None)  # a section of a file of sections
    if runtime.get("model_dir") is not None and name is not None:
        runtime = {**runtime, "model_dir": _section_model_dir(runtime["model_dir"], name)}
    try:
        coders = coders_from_header(reader.header, attachment=reader.read_attachment,
                                    source=reader.path, **runtime)
    except (ContainerError, InputError) as exc:  # e.g. a --no-embed-model file's model
        raise _prefixed(reader, exc) from None
    all_names = [c["name"] for c in reader.header["schema"]["columns"]]
    wanted = all_names if columns is None else list(columns)
    missing = [n for n in wanted if n not in all_names]
    if missing:
        raise InputError(f"{reader.path} has no column(s) {missing}; it has {all_names}")
    plan = [(k, coder, need, coder.streams_for(need)) for k, coder in enumerate(coders)
            if (need := [n for n in wanted if n in coder.columns])]
    return wanted, plan, [getattr(coder, "stream_prefix", "") for coder in coders]


def _section_model_dir(model_dir: Any, section: str) -> Any:
    """-m DIR for one section: DIR's model of that section when DIR holds section models
    (`balerc train` on a whole tree: sections.json), else DIR itself."""
    from .model import section_models

    subs = section_models(model_dir)
    return model_dir if subs is None else subs.get(section)


def _prefixed(reader: ContainerReader, exc: BalercError, where: str = "") -> BalercError:
    """The same error, its message naming the file (and chunk): codec errors know neither."""
    text = str(exc)
    if text.startswith(reader.path):
        return exc
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (f"{reader.path}: {where}{text}",)
    return new


class Reader:
    """An open .balerc file for pipelines: chunk by chunk, row ranges, info. `timeout=`
    (seconds) limits each `read` and each chunk of `iter_chunks` (codec/deadline.py)."""

    def __init__(self, source: str | os.PathLike | bytes, *, recover: bool = False,
                 threads: int | None = None, section: str | None = None, **runtime: Any):
        _check_runtime({k: v for k, v in runtime.items() if k != "timeout"})
        self.threads = params.count_or_default(threads, "threads", default_threads)
        self._file = ContainerReader(source, recover=recover)
        self._closed = False
        self.path = self._file.path
        self._runtime = runtime
        self.sections = [s["name"] for s in self._file.sections or []]
        try:
            if self.sections and section is None:
                raise InputError(f"{self.path} holds {len(self.sections)} sections "
                                 f"({', '.join(self.sections[:12])}); open one with "
                                 f"section=NAME, or read them all with read_sections")
            if section is not None:  # a name or a glob that picks one section
                picked = matching(self.sections, [section]) if self.sections else []
                if len(picked) > 1:
                    raise InputError(f"{self.path}: section={section!r} picks {picked[:8]}; "
                                     f"a Reader reads one section")
                self._reader: Any = self._file.section(picked[0] if picked else section)
            else:
                self._reader = self._file
        except BaseException:
            self._file.close()
            raise
        header = self._reader.header
        if "schema" not in header:
            self._file.close()
            raise SchemaError(f"{self.path}: the header has no table schema: not a balerc "
                              f"table file")
        self.columns = [c["name"] for c in header["schema"]["columns"]]
        self._starts = np.cumsum([0] + [c.rows for c in self._reader.chunks])

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._file.close()

    def _open_check(self) -> None:
        if self._closed:
            raise InputError(f"{self.path}: the reader is closed; open it again to read")

    def _columns(self, columns: list[str] | None) -> list[str] | None:
        """Names or glob patterns -> the file's columns, in the order the patterns give
        (each pattern's matches in the file's order), as `decompress` takes them; a
        pattern matching nothing is refused."""
        if columns is None:
            return None
        columns = params.patterns(columns, "columns")
        if not columns:
            raise InputError(f"{self.path}: columns=[] selects nothing; pass None for every "
                             f"column")
        return select_names(self.columns, columns, self.path, pattern_order=True)

    @property
    def n_rows(self) -> int:
        return int(self._starts[-1])

    @property
    def n_chunks(self) -> int:
        return self._reader.n_chunks

    def info(self) -> dict[str, Any]:
        """What `balerc info --json` prints (without re-verifying every stream)."""
        self._open_check()
        from .inspect import describe_file

        return describe_file(self.path, verify=False) if self.path != "<bytes>" else {
            "rows": self.n_rows, "chunks": self.n_chunks, "columns": self.columns,
            "format_version": ".".join(map(str, self._file.format_version))}

    def iter_chunks(self, columns: list[str] | None = None) -> Iterator[Table]:
        """One Table per chunk, in order (decoded on `threads` threads ahead)."""
        self._open_check()
        columns = self._columns(columns)

        def one(i: int) -> Table:
            self._open_check()
            try:
                return decode_with(self._reader, columns=columns, chunks=[i], threads=1,
                                   **self._runtime)
            except ValueError:  # closed while decoding: the file's buffer was released
                self._open_check()
                raise

        for table in parallel_ordered(one, range(self.n_chunks), self.threads):
            self._open_check()  # the generator resumed after close()
            yield table

    def read(self, rows: slice | None = None, columns: list[str] | None = None) -> Table:
        """Rows `rows` (a slice or range, step 1) of `columns` (names or globs), decoding
        only the chunks it touches."""
        self._open_check()
        columns = self._columns(columns)
        if isinstance(rows, range):
            rows = slice(rows.start, rows.stop, rows.step)
        if rows is not None and not isinstance(rows, slice):
            raise InputError(f"read(rows={rows!r}): give a slice of rows, e.g. "
                             f"rows=slice(10, 20) (one row: slice(i, i + 1))")
        try:
            start, stop, step = (rows or slice(None)).indices(self.n_rows)
        except TypeError:
            raise InputError(f"read(rows={rows!r}): slice bounds must be integers") from None
        if step != 1:
            raise InputError("read(rows=...) takes a contiguous slice (step 1)")
        if stop <= start:
            return self._decode([], columns)
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        last = int(np.searchsorted(self._starts, stop, side="left"))
        table = self._decode(list(range(first, last)), columns)
        offset = int(self._starts[first])
        return table.slice(start - offset, stop - offset)

    def _decode(self, chunks: list[int], columns: list[str] | None) -> Table:
        try:
            return decode_with(self._reader, columns=columns, chunks=chunks,
                               threads=self.threads, **self._runtime)
        except ValueError:  # closed from another thread: the file's buffer was released
            self._open_check()
            raise


def open_reader(source: str | os.PathLike | bytes, **kw: Any) -> Reader:
    """A Reader over a .balerc file (`recover=True` for a damaged or unfinished one)."""
    return Reader(source, **kw)
