"""The write path: batches in, a crash-safe .balerc out (the public streaming writer).

`open_writer(...)` returns a Writer; `append(batch)` buffers rows to `chunk_rows`,
encodes full chunks on a thread pool (a bounded window, so memory is chunk size x
threads) and writes them in order, each flushed as written: a process killed mid-run
leaves a file that `decompress --recover` reads up to its last written chunk. `close()`
writes the footer. `balerc compress` is this writer fed by a file's chunks.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import zstandard

from balerc.formats.container import ContainerWriter
from balerc.formats.errors import InputError
from balerc.formats.fileio import check_output, open_locked
from balerc.formats.interop import EVENT_COLUMN
from balerc.formats.table import Table, as_column, kind_of, refuse_masked

from . import params
from .coders.stats import finite_or_none
from .coders.wiremodes import PREDICTING
from .model import ModelBundle
from .options import CompressOptions
from .plan import Plan, Ranges, dtype_str, plan_coders
from .progress import progress
from .validate import check_own_coders

# Buffered batches are merged into one piece every this many appends: 20,000 appends of
# 3 rows had kept 20,000 dicts of views (~2.5 kB each) until their chunk filled
MERGE_PIECES = 512


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

    @property
    def worst_over_bound(self) -> float | None:
        """The largest measured error / bound over the lossy columns (None without a bound)."""
        worst = [r.get("max_over_bound") for r in self.extra.get("errors", [])]
        worst = [w for w in worst if w is not None]
        return max(worst) if worst else None


def package_version() -> str:
    """The installed balerc version: `balerc.__version__`, looked up once when the package
    is imported (importlib.metadata scans every installed distribution, ~1 ms)."""
    from balerc import __version__  # the parent package, imported before this module

    return __version__


def producer() -> dict[str, str]:
    return {"balerc": package_version(), "python": platform.python_version(),
            "numpy": np.__version__, "zstandard": zstandard.__version__}


def schema_of(batch: Any) -> dict[str, np.dtype]:
    """Column names in order -> dtypes, from a Table, dict of arrays or structured array."""
    return {n: np.asarray(a).dtype for n, a in columns_of(batch).items()}


def columns_of(batch: Any) -> dict[str, np.ndarray]:
    """A batch as named 1-D columns: Table, dict of arrays, numpy structured array, pandas
    DataFrame, Arrow table or awkward record array (formats/interop.py)."""
    return batch_of(batch)[0]


def batch_of(batch: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The batch's columns and what its conversion records to rebuild it on reading
    (`pandas_index`, `jagged`: formats/interop.py)."""
    if isinstance(batch, Table):
        return dict(batch.columns), {}
    from balerc.formats.interop import from_any

    converted = from_any(batch)  # pandas (index kept as a column), Arrow, awkward
    if converted is not None:
        return dict(converted.columns), converted.source
    if isinstance(batch, np.ndarray) and batch.dtype.names:
        for n in batch.dtype.names:
            refuse_masked(batch[n], f"column '{n}'")
        return {n: np.asarray(batch[n]) for n in batch.dtype.names}, {}
    if isinstance(batch, Mapping):
        for k, v in batch.items():
            refuse_masked(v, f"column '{k}'")
        params.unique_names([str(k) for k in batch], "the batch")
        return {str(k): np.asarray(v) for k, v in batch.items()}, {}
    raise InputError(f"cannot append a {type(batch).__name__}: give a Table, a dict of "
                     f"arrays, a numpy structured array or a pandas DataFrame")


def _jsonable(value: Any) -> bool:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class Writer:
    """Appends batches of rows to a .balerc file; see the module docstring."""

    def __init__(self, target: str | os.PathLike | BinaryIO, options: CompressOptions, *,
                 schema: Mapping[str, Any] | None = None, model: ModelBundle | None = None,
                 ranges: Ranges | None = None, source: Mapping[str, Any] | None = None,
                 allow_extra: bool = False, probe: Table | None = None,
                 expected_rows: int | None = None, header_extra: dict[str, Any] | None = None):
        self.options = options
        self.model = model
        self.ranges = ranges
        self.allow_extra = allow_extra
        self._source = dict(source or {})
        self._header_extra = header_extra or {}
        self._expected_rows = expected_rows
        self.path: Path | None = None
        # target None: one section of a multi-section file (codec/sections.py), which
        # takes the planned header part and hands a channel into the shared container
        self._deferred = target is None
        self._own = not self._deferred and not hasattr(target, "write")
        if self._own:
            self.path = check_output(target, options.force)
            self._f: BinaryIO = open_locked(self.path)
        else:
            self._f = target  # type: ignore[assignment]
        self._cw: Any = None
        self.table_header: dict[str, Any] = {}
        self.table_attachments: dict[str, bytes] = {}
        self._plan: Plan | None = None
        self._schema: dict[str, np.dtype] = {}
        self._pending: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        self._loose = 0  # batches appended since the pending ones were last merged
        # chunks in flight, oldest first, with the writer that writes them: the sections of
        # a multi-section file share one window, so the file's chunk order is the order of
        # submission whatever the thread count
        self._window = _Window()
        self._submitted = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_shared = False  # a multi-section file's sections share one pool
        self._raw = 0
        self._text_raw: dict[str, int] = {}  # UTF-8 bytes of each string column (in _raw)
        self._col_bytes: dict[str, int] = {}
        self._t0 = time.perf_counter()
        self._bar = progress(-(-expected_rows // options.chunk_rows) if expected_rows else 0,
                             "compress", "chunk", enabled=options.progress and bool(expected_rows))
        self._progress = self._bar.__enter__()
        self.result: CompressResult | None = None
        self._abandoned = False
        self._shut = False
        self._events = 0  # events of jagged awkward batches so far (their __event__ offset)
        if schema is not None:
            try:
                self._start(_schema_dtypes(schema), probe)
            except BaseException:
                self._abandon()
                raise

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # leave what was written, without a footer: readable with --recover
            self._abandon()

    def _start(self, schema: dict[str, np.dtype], probe: Table | None) -> None:
        """Plan the coders and write the header (and attachments)."""
        if not schema:
            raise InputError("the schema has no columns")
        kinds = {n: _kind(d, n) for n, d in schema.items()}  # refuses dtypes balerc cannot store
        self._schema = schema
        if self.options.column_bounds:
            from .precision import plan_grouped

            self._plan = plan_grouped(schema, self.options, self.model, self.ranges, probe,
                                      self._expected_rows)
        else:
            self._plan = plan_coders(schema, self.options, self.model, self.ranges, probe,
                                     self._expected_rows)
        coders = self._plan.coders
        configs = [c.get_config() for c in coders]  # once: the model coder hashes its decoder
        self._prefixes = stream_prefixes(coders)
        features = {f for c, cfg in zip(coders, configs, strict=True)
                    for f in cfg.get("features", [c.codec_id])}
        for cfg, prefix in zip(configs, self._prefixes, strict=True):
            if prefix:
                cfg["stream_prefix"] = prefix
                features.add(STREAM_PREFIX_FEATURE)
        features = sorted(features)
        codec_of = {n: c.codec_id for c in coders for n in c.columns}
        bounds = self._plan.bounds
        header = {
            "format": "balerc", "required_features": features, "producer": producer(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chunk_rows": self.options.chunk_rows,
            "schema": {"columns": [{"name": n, "kind": kinds[n], "dtype": dtype_str(d),
                                    "codec": codec_of.get(n, "lossless"),
                                    **({"bound": bounds[n]} if n in bounds else {})}
                                   for n, d in schema.items()],
                       "source": {k: v for k, v in self._source.items() if _jsonable(v)}},
            "coders": configs,
        }
        header.update(self._header_extra)
        attachments: dict[str, bytes] = {}
        for c in coders:
            attachments.update(c.attachments())
        check_own_coders(header)
        if self._deferred:
            self.table_header, self.table_attachments = header, attachments
            return
        self._cw = ContainerWriter(self._f, header, attachments)

    # -- appending -----------------------------------------------------------------------
    def append(self, batch: Any) -> None:
        """Add rows (columns matched by name); full chunks are encoded and written. The rows
        are copied: a loop may refill the same arrays for its next batch."""
        self._append(batch, copy=True)

    def _append(self, batch: Any, copy: bool) -> None:
        """`append`; `copy=False` for balerc's own callers, whose chunks are never changed
        while the writer holds them (a file's chunks, a table's slices)."""
        self._check_open("append")
        cols, origin = batch_of(batch)
        if self._cw is None:
            if self._deferred:
                raise InputError("a section writer takes rows only once its file is open")
            for key in ("pandas_index", "pandas_dtypes", "pandas_labels", "pandas_columns_name",
                        "jagged"):  # to rebuild the batches on reading
                if key in origin and key not in self._source:
                    self._source[key] = origin[key]
            try:
                self._start({n: a.dtype for n, a in cols.items()}, Table(cols))
            except InputError:
                if self._cw is None:  # a refused first batch: nothing written, go on as new
                    self._plan, self._schema = None, {}
                    raise
                self._abandon()
                raise
            except BaseException:
                self._abandon()  # no header, so no file left behind (with or without `with`)
                raise
        if self._events and "jagged" not in origin:
            raise InputError("after jagged awkward batches, append awkward arrays of the same "
                             "collection (their events are numbered across batches)")
        cols = self._conform(cols)
        if "jagged" in self._source and EVENT_COLUMN in cols and "jagged" in origin:
            cols[EVENT_COLUMN] = cols[EVENT_COLUMN] + self._events  # numbered across batches
            self._events += int(origin["jagged"]["n_events"])
        n = len(next(iter(cols.values())))
        if n == 0:
            return
        size = self.options.chunk_rows
        if not self._pending and n == size and (not copy or self.options.threads <= 1):
            with self._stop_on_error():  # one chunk per batch, encoded now or never changed
                self._submit(cols, n)
                self._write_done()
            return
        if copy:
            cols = {c: a.copy() for c, a in cols.items()}
        self._pending.append(cols)
        self._buffered += n
        self._loose += 1
        if self._loose >= MERGE_PIECES:  # many small batches: one piece (bounded overhead)
            tail = [self._pending.pop() for _ in range(self._loose)][::-1]
            self._pending.append({c: np.concatenate([t[c] for t in tail]) for c in cols})
            self._loose = 0
        with self._stop_on_error():
            while self._buffered >= size:
                self._submit(*self._take(size))
            self._write_done()

    def _conform(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's columns in schema order, refusing other names or types by name."""
        missing = [n for n in self._schema if n not in cols]
        extra = [n for n in cols if n not in self._schema]
        if missing or (extra and not self.allow_extra):
            raise InputError(
                f"the batch does not match the file's schema: missing {missing}, unexpected "
                f"{extra}" + (" (pass allow_extra=True to drop extra columns)" if extra else ""))
        wrong = {}
        for n, d in self._schema.items():
            got = np.asarray(cols[n]).dtype
            if got != d and not (got.kind in "OUS" and d.kind in "OUS"):
                wrong[n] = f"{got} (the file has {d})"
        if wrong:
            raise InputError(f"the batch's column types differ from the file's schema: {wrong}")
        out = {n: as_column(cols[n], n) if d.kind in "OUS" else np.asarray(cols[n])
               for n, d in self._schema.items()}  # bytes and non-str objects refused
        if any(a.ndim != 1 for a in out.values()) or len({len(a) for a in out.values()}) != 1:
            raise InputError(f"the batch's columns must be 1-D of one length, got lengths "
                             f"{ {n: a.shape for n, a in out.items()} }")
        return out

    def _take(self, size: int) -> tuple[dict[str, np.ndarray], int]:
        """The first `size` buffered rows as one chunk; the rest stays buffered as views.

        Copies only when a chunk spans several batches (and then only its own rows).
        """
        pieces, got, k = [], 0, 0
        while got < size:
            batch = self._pending[k]
            n = len(next(iter(batch.values())))
            if got + n > size:  # split: the tail stays first in line, as a view
                batch = {c: a[: size - got] for c, a in batch.items()}
                n = size - got
            pieces.append(batch)
            got += n
            k += 1
        # the chunk is built before any state changes: an error leaves every row buffered
        chunk = pieces[0] if len(pieces) == 1 else {
            c: np.concatenate([p[c] for p in pieces]) for c in self._schema}
        last = self._pending[k - 1]
        rest = len(next(iter(last.values()))) - len(next(iter(pieces[-1].values())))
        del self._pending[:k]
        if rest:
            self._pending.insert(0, {c: a[-rest:] for c, a in last.items()})
        self._loose = min(self._loose, len(self._pending))
        self._buffered -= size
        return chunk, size

    def flush(self) -> None:
        """Encode and write the buffered rows now (a partial chunk) and wait for every
        chunk in flight: afterwards the file on disk holds every row appended so far."""
        self._check_open("flush")
        with self._stop_on_error():
            if self._buffered:
                self._submit(*self._take(self._buffered))
            self._wait_window(0)

    def _wait_window(self, keep: int) -> None:
        """Wait until at most `keep` chunks are in flight, writing each as it is done. While
        this thread waits here, it writes (the done-callbacks leave it to it: a worker
        that wrote would not be encoding the next chunk, 4-8% of a 2-thread compress)."""
        window = self._window
        window.owner_waits = True
        try:
            while True:
                with window.lock:
                    if len(window) <= keep:
                        break
                    head = window[0][1]
                wait([head])
                self._write_done()
        finally:
            window.owner_waits = False  # from here on the callbacks write ...
        self._write_done()  # ... and what was done meanwhile is written now

    def _write_done(self, stop_at_failure: bool = False) -> None:
        """Write the chunks at the head of the window that are already encoded, in order: a
        chunk reaches the disk as soon as it and those before it are done. Each chunk's
        done-callback runs this too, so a loop waiting for its next batch leaves no
        encoded chunk in memory only (a writer killed while its loop waited had lost
        2 x threads - 1 encoded chunks). A chunk whose encoding (or a callback's write)
        failed raises here, or with `stop_at_failure` ends the writing."""
        window = self._window
        with window.lock:
            if window.error is not None:  # a write failed or was interrupted: no chunk is
                if stop_at_failure:       # ever written after it (the next would take its
                    return                # place in the file: rows shifted silently)
                raise window.error
            while window and window[0][1].done():
                owner, fut = window[0]
                if fut.cancelled() or fut.exception() is not None:
                    if stop_at_failure:
                        return
                    fut.result()  # raises the encoder's error; it stays at the head
                try:
                    owner._write(fut.result())
                except BaseException as exc:  # Ctrl-C or a full disk in the middle of it
                    window.error = exc
                    raise
                window.popleft()

    def _written_when_done(self, _fut: Future) -> None:
        """Done-callback (a worker thread): write what is ready unless the writer's own
        thread is waiting to; a failed write is kept on the window (`error`) for the
        writer's next call (append, flush, close) to raise, and stops all writing."""
        if self._window.owner_waits:
            return
        try:
            self._write_done(stop_at_failure=True)
        except BaseException:  # noqa: BLE001 - recorded in window.error, raised later
            pass

    @contextmanager
    def _stop_on_error(self) -> Iterator[None]:
        """An error while chunks are encoded or written (not a refused batch, which leaves
        the writer as it was) stops the writer: what is written reads with recover=True."""
        try:
            yield
        except BaseException:
            self._abandon()
            raise

    # -- encoding ------------------------------------------------------------------------
    def _submit(self, cols: dict[str, np.ndarray], n: int) -> None:
        assert self._cw is not None and self._plan is not None
        chunk = Table(cols, self._source)
        text = chunk.text_nbytes()
        for name, size in text.items():
            self._text_raw[name] = self._text_raw.get(name, 0) + size
        self._raw += chunk.fixed_nbytes() + sum(text.values())  # chunk.nbytes, text once
        index = self._submitted
        self._submitted += 1
        threads = self.options.threads
        if threads <= 1:
            self._write(self._encode(chunk, index))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=threads)
        with self._window.lock:
            fut = self._pool.submit(self._encode, chunk, index)
            self._window.append((self, fut))
        fut.add_done_callback(self._written_when_done)
        self._wait_window(2 * threads - 1)

    def _encode(self, chunk: Table, index: int) -> tuple[int, dict[str, bytes], dict[str, Any]]:
        assert self._plan is not None
        streams: dict[str, bytes] = {}
        meta: dict[str, Any] = {}
        for k, coder in enumerate(self._plan.coders):
            s, m = coder.encode(chunk, index)
            prefix = self._prefixes[k]
            streams.update({prefix + n: b for n, b in s.items()} if prefix else s)
            if m:
                meta[str(k)] = m
        return chunk.n_rows, streams, meta

    def _write(self, encoded: tuple[int, dict[str, bytes], dict[str, Any]]) -> None:
        assert self._cw is not None
        rows, streams, meta = encoded
        self._cw.write_chunk(streams, rows, meta)
        for name, blob in streams.items():
            self._col_bytes[name] = self._col_bytes.get(name, 0) + len(blob)
        self._progress.update(1)

    # -- the end -------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self.result is not None:
            raise InputError(f"{self._name()}: cannot {what}: the writer is closed")
        if self._abandoned:
            raise InputError(f"{self._name()}: cannot {what}: the writer stopped after an "
                             f"error (what it wrote reads with recover=True)")

    def _name(self) -> str:
        return str(self.path) if self.path is not None else "the writer"

    def close(self) -> CompressResult:
        """Write what is buffered, then the footer; returns the result (also `.result`)."""
        if self.result is not None:
            return self.result
        self._check_open("close")
        if self._cw is None:
            self._abandon()
            raise InputError("nothing was appended: an empty table cannot be written")
        try:
            self.flush()
            events = {"n_events": self._events} if "jagged" in self._source and self._events else {}
            text = {"text_raw_bytes": self._text_raw} if self._text_raw else {}
            self._cw.close({"raw_bytes": self._raw, **text, **events, **self._summary()})
        finally:
            self._shutdown()
        self.result = CompressResult(
            path=self.path, rows=self._cw.rows, chunks=self._cw.n_chunks, raw_bytes=self._raw,
            file_bytes=self._cw.bytes_written, source_bytes=self._source.get("size"),
            seconds=time.perf_counter() - self._t0, column_bytes=self._col_bytes)
        self._report(self.result)
        return self.result

    def _lossy(self) -> list[Any]:
        """The autoencoder coders (several under per-column bounds), the main one first."""
        if self._plan is None or self._plan.ae is None:
            return []
        return [self._plan.ae] + [c for c in self._plan.coders
                                  if c is not self._plan.ae and hasattr(c, "error_report")]

    def _summary(self) -> dict[str, Any]:
        lossy = self._lossy()
        if not lossy:
            return {}
        out: dict[str, Any] = {"max_error": [_g4(r["max"]) for r in lossy[0].error_report()],
                               "modes": lossy[0]._stats.modes}
        if len(lossy) > 1:  # every lossy column by name (info reads this first)
            out["max_error_by_column"] = {r["name"]: _g4(r["max"]) for c in lossy
                                          for r in c.error_report()}
        return out

    def _report(self, result: CompressResult) -> None:
        """Measured errors and notes for the summary the CLI prints."""
        assert self._plan is not None
        notes = list(self._plan.notes)
        ae = self._plan.ae
        if ae is not None:
            result.extra["errors"] = self._error_rows()
            if self._plan.model is not None:
                notes.append(f"ONNX Runtime provider: {ae._decoder_session(1).provider}")
                used = sum(ae._stats.modes.get(m, 0) for m in PREDICTING)
                if self.options.bound is not None and used == 0:
                    notes.append("the model did not pay on this table: stored with plain "
                                 "quantization")
        result.extra["notes"] = notes

    def _error_rows(self) -> list[dict[str, Any]]:
        """Every column's measured errors in the table's order: the lossy coders' reports,
        and the columns stored losslessly (int, bool, text, or float by choice) as exact."""
        lossy = {r["name"]: r for c in self._lossy() for r in c.error_report()}
        exact = {"bound": None, "max": 0.0, "rms": 0.0, "max_over_bound": None,
                 "mode": "lossless"}
        return [lossy.get(n) or dict(exact, name=n) for n in self._schema]

    def _shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self._pool is not None and not self._pool_shared:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._bar.__exit__(None, None, None)
        if self._own:
            self._f.close()

    def _abandon(self) -> None:
        """Stop without a footer (after an error or an interrupt). Chunks in flight finish
        and are written, in order, up to the first that failed, so the file reads with
        recover=True up to the last full chunk appended (rows still buffered for a partial
        chunk are not written); a file of ours that never got its header is removed."""
        if self._abandoned:
            return
        self._abandoned = True
        if self._pool is not None and not self._pool_shared:  # chunks in flight (at most
            self._pool.shutdown(wait=True)  # 2 x threads) finish: they hold appended rows
        try:
            self._write_done(stop_at_failure=True)
        except Exception:  # noqa: BLE001 - a failing file (disk full): keep what is written
            pass
        self._window.clear()
        self._shutdown()
        if self._own and self._cw is None and self.path is not None:
            self.path.unlink(missing_ok=True)


class _Window(deque):
    """Chunks in flight, oldest first, with the writer that writes them; the lock orders
    the writes of the owner's thread and of the done-callbacks (the sections of a file
    share one window, and so one lock); `error`: a failed or interrupted write, after
    which nothing is written (raised by the writer's next call)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.error: BaseException | None = None
        self.owner_waits = False  # the writer's thread is in _wait_window: it writes


STREAM_PREFIX_FEATURE = "stream-prefix"


def stream_prefixes(coders: list[Any]) -> list[str]:
    """'' for the first coder of each id, '<k>:' for later ones (several autoencoder coders
    under per-column bounds would otherwise share the names 'latents' and 'qgroup')."""
    seen: set[str] = set()
    out = []
    for k, c in enumerate(coders):
        out.append(f"{k}:" if c.codec_id in seen else "")
        seen.add(c.codec_id)
    return out


def _kind(dtype: np.dtype, name: str | None = None) -> str:
    return kind_of(np.empty(0, dtype=object if dtype.kind in "OUS" else dtype), name)


def _schema_dtypes(schema: Mapping[str, Any]) -> dict[str, np.dtype]:
    """schema= as numpy dtypes, a name numpy does not know refused by column."""
    out = {}
    for n, d in schema.items():
        try:
            out[str(n)] = np.dtype(d)
        except TypeError:
            raise InputError(f"schema: column '{n}' has type {d!r}, which is not a numpy "
                             f"dtype (e.g. 'float32', 'int64', 'bool', 'str')") from None
    return out


def _g4(v: float | None) -> float | None:
    v = finite_or_none(v)
    return None if v is None else float(f"{v:.4g}")


def open_writer(path: str | os.PathLike | BinaryIO, *, model: str | os.PathLike | ModelBundle |
                None = None, bound: str | None = None, schema: Mapping[str, Any] | None = None,
                ranges: Ranges | None = None, allow_extra: bool = False,
                **options: Any) -> Writer:
    """A streaming writer for a data-taking loop::

        with balerc.open_writer("run.balerc", model="model/", bound="pwrel:5e-4") as w:
            for batch in source:
                w.append(batch)
        print(w.result.ratio)

    `schema` (name -> dtype) fixes the columns before the first batch (else the first
    batch does); columns are matched by name. A `rel` bound needs `ranges` (name ->
    (min, max)) or the model's training ranges: the bound is then guaranteed against
    that declared range. `options` are CompressOptions fields (chunk_rows, threads,
    device, zstd_level, embed_model, keep_model, latent_bits, force); `threads` None or 0
    means the cores this process may use (at most 8). The writer writes to `path`
    directly (`force=True` truncates an existing file at once), so a killed process
    leaves a file readable with --recover up to its last finished chunk. Appended rows
    are copied: the loop may refill its arrays.
    """
    bundle = model if isinstance(model, ModelBundle) or model is None else ModelBundle.load(model)
    opts = CompressOptions.make(bound, keep_model=options.pop("keep_model", True), **options)
    if schema is not None and not isinstance(schema, Mapping):
        raise InputError(f"schema must be a dict {{name: dtype}}, got {type(schema).__name__}")
    return Writer(path, opts, schema=schema, model=bundle,
                  ranges=params.ranges(ranges, opts.bound), allow_extra=allow_extra)
