"""Several tables in one .balerc file (format 2.2, feature "sections").

Each section is planned and encoded by its own `Writer` (its own coders, bound, model,
rows per chunk) and writes its chunks through a channel into one shared container, so
chunks of different sections interleave in the order the steps produce them and memory
stays bounded by the step and chunk sizes. On reading, a section is decoded through a
`SectionView` by the same code as a file of one table.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from balerc.formats.container import (
    CHAINED_FEATURE,
    ContainerReader,
    ContainerWriter,
    RecoveryWarning,
    opened,
)
from balerc.formats.errors import InputError, SchemaError
from balerc.formats.fileio import atomic_output
from balerc.formats.sections import EVENTS, Sections, SectionStream, chain_order, chain_up
from balerc.formats.table import Table, concat
from balerc.formats.tableio import matching, select_names

from . import deadline, params
from .model import SECTION_MODELS, ModelBundle, section_models
from .options import CompressOptions, default_threads
from .plan import Ranges
from .progress import progress
from .reader import decode_with
from .writer import CompressResult, Writer, _jsonable, producer

CHUNK_BYTES = 32 << 20  # raw bytes per chunk of a section: a wide event table gets fewer rows


def _chained(sections: Sections) -> bool:
    return any(lay.get("kind") == "collection" and lay.get("counter_section", EVENTS) != EVENTS
               for lay in sections.layouts.values())


def section_chunk_rows(table: Table, chunk_rows: int) -> int:
    """Rows per chunk for a section: the option, fewer for wide rows (a power of two)."""
    row = max(1, sum(a.dtype.itemsize if a.dtype.kind != "O" else 16
                     for a in table.columns.values()))
    fit = max(1024, CHUNK_BYTES // row)
    return min(chunk_rows, 1 << (fit.bit_length() - 1))


class _Channel:
    """What a section's Writer sees of the shared container."""

    def __init__(self, cw: ContainerWriter, section: int):
        self._cw, self._section, self._chunks = cw, section, 0
        self.summary: dict[str, Any] = {}

    def write_chunk(self, streams: Mapping[str, bytes], rows: int, meta: Any) -> int:
        self._chunks += 1
        return self._cw.write_chunk(streams, rows, meta, section=self._section)

    @property
    def n_chunks(self) -> int:
        return self._chunks

    @property
    def rows(self) -> int:
        return self._cw.section_rows(self._section)

    @property
    def bytes_written(self) -> int:
        return self._cw.bytes_written

    def close(self, summary: Mapping[str, Any]) -> None:
        self.summary = dict(summary)


class SectionsWriter:
    """Writes Sections step by step: `append(step)` for each step, then `close()`."""

    def __init__(self, f: BinaryIO, options: CompressOptions, first: Sections, *,
                 ranges: Mapping[str, Ranges] | None = None,
                 models: Mapping[str, ModelBundle] | None = None):
        self.options = options
        self._source = {k: v for k, v in first.source.items() if _jsonable(v)}
        self._t0 = time.perf_counter()
        self._pool = ThreadPoolExecutor(options.threads) if options.threads > 1 else None
        self.writers: dict[str, Writer] = {}
        window: Any = None
        specs = []
        for name in first.names:
            t = first[name]
            opts = options.with_(chunk_rows=section_chunk_rows(t, options.chunk_rows),
                                 progress=False)
            if not t.names_of_kind("float") and (name not in (models or {})):
                opts = opts.with_(bound=None, lossless=True, column_bounds=None)  # counters
            w = Writer(None, opts, schema={n: a.dtype for n, a in t.columns.items()},
                       model=(models or {}).get(name), ranges=(ranges or {}).get(name),
                       probe=t if t.n_rows else None)
            w._pool, w._pool_shared = self._pool, True
            window = w._window if window is None else window
            w._window = window  # one window: chunks reach the file in submission order
            self.writers[name] = w
            spec = {"name": name, "chunk_rows": opts.chunk_rows,
                    "schema": w.table_header["schema"], "coders": w.table_header["coders"]}
            if first.layouts.get(name):
                spec["layout"] = first.layouts[name]
            specs.append(spec)
        features = sorted({f for w in self.writers.values()
                           for f in w.table_header["required_features"]}
                          | ({CHAINED_FEATURE} if _chained(first) else set()))
        header = {"format": "balerc", "required_features": features, "producer": producer(),
                  "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "chunk_rows": max(s["chunk_rows"] for s in specs),
                  "source": self._source, "sections": specs}
        attachments = {f"{k}/{n}": b for k, w in enumerate(self.writers.values())
                       for n, b in w.table_attachments.items()}
        self._cw = ContainerWriter(f, header, attachments)
        for k, w in enumerate(self.writers.values()):
            w._cw = _Channel(self._cw, k)

    def append(self, step: Sections) -> None:
        for name, w in self.writers.items():
            w._append(step[name], copy=False)  # a step is never changed once read

    def abandon(self) -> None:
        """Stop after an error: the chunks in flight finish and are written in order (up
        to a failure), no footer; the shared pool is shut down (its threads had lived on
        after a failed compress, until garbage collection)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for w in self.writers.values():
            w._abandon()

    def close(self) -> CompressResult:
        try:
            results = {name: w.close() for name, w in self.writers.items()}
            summaries = {name: w._cw.summary for name, w in self.writers.items()}
            raw = sum(r.raw_bytes for r in results.values())
            self._cw.close({"raw_bytes": raw, "sections": summaries})
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        result = CompressResult(
            path=None, rows=self._cw.section_rows(0), chunks=self._cw.n_chunks, raw_bytes=raw,
            file_bytes=self._cw.bytes_written, source_bytes=self._source.get("size"),
            seconds=time.perf_counter() - self._t0,
            column_bytes={f"{n}/{k}": v for n, r in results.items()
                          for k, v in r.column_bytes.items()})
        result.extra["sections"] = {n: {"rows": r.rows, "raw_bytes": r.raw_bytes,
                                        "bytes": sum(r.column_bytes.values()),
                                        "errors": r.extra.get("errors", [])}
                                    for n, r in results.items()}
        result.extra["errors"] = [dict(e, name=f"{n}/{e.get('name', '')}")
                                  for n, r in results.items() for e in r.extra.get("errors", [])]
        notes = {note: None for r in results.values() for note in r.extra.get("notes", [])
                 if note.startswith("ONNX Runtime provider")}
        result.extra["notes"] = [f"section {n}: {note}" for n, r in results.items()
                                 for note in r.extra.get("notes", []) if note not in notes]
        result.extra["notes"] += list(notes)
        return result


def load_models(model_dir: str | os.PathLike, first: Sections) -> dict[str, ModelBundle]:
    """`-m DIR` for a whole tree: DIR of section models (sections.json) or one model."""
    subs = section_models(model_dir)
    if subs is None:
        return models_for(first, ModelBundle.load(model_dir))
    unknown = [n for n in subs if n not in first.names]
    if len(unknown) == len(subs):
        raise InputError(f"{Path(model_dir) / SECTION_MODELS} has models for section(s) "
                         f"{unknown}, none of which this file has (its sections: "
                         f"{first.names}); train a model on this tree with `balerc train`")
    models = {section: ModelBundle.load(sub) for section, sub in subs.items()
              if section in first.names}
    partial = [n for n, m in models.items() if not set(m.columns) <= set(first[n].names)]
    if unknown or partial:  # --columns 'Jet_*' with a whole tree's models: Jet's applies
        warnings.warn(f"{Path(model_dir) / SECTION_MODELS}: the models of section(s) "
                      f"{', '.join((unknown + partial)[:8])} are not used (this file has no "
                      f"such section, or not all of the columns they were trained on)",
                      stacklevel=2)
    if len(partial) == len(models):
        raise InputError(f"{Path(model_dir) / SECTION_MODELS}: no section model fits this "
                         f"file (its sections: {first.names}); train one on it")
    return {n: m for n, m in models.items() if n not in partial}


def _check_modelless(first: Sections, options: CompressOptions,
                     models: Mapping[str, ModelBundle]) -> None:
    """With -m and no bound, every section holding floats needs a model: name those that
    have none (train skips small ones), not 'without a model an error bound is needed'."""
    if options.lossless or options.bound is not None or options.column_bounds or not models:
        return
    bare = [n for n in first.names if n not in models and first[n].names_of_kind("float")]
    if bare:
        raise InputError(
            f"section(s) {', '.join(bare[:8])} have no model (balerc train skips sections "
            f"with too few rows) and hold float columns: add --error-bound MODE:E (it "
            f"bounds them, and the sections with a model too)")


def models_for(first: Sections, model: ModelBundle | None) -> dict[str, ModelBundle]:
    """The section a model was trained for: the one holding all of its columns."""
    if model is None:
        return {}
    fits = [n for n in first.names if set(model.columns) <= set(first[n].names)]
    if not fits:
        raise InputError(f"the model's columns {model.columns[:6]} are not all in one section "
                         f"of this file (sections: {first.names}); train it on this file's "
                         f"tree with `balerc train`")
    return {fits[0]: model}


def compress_sections(stream: SectionStream, out: str | os.PathLike | BinaryIO,
                      options: CompressOptions, models: Mapping[str, ModelBundle] | None = None
                      ) -> CompressResult:
    """Compress a SectionStream (a whole ROOT tree) into one file, step by step; every
    step's collections must hold exactly what their counters say (a cut or padded
    collection had been written, unreadable or with rows dropped)."""
    if isinstance(stream, Sections):
        stream = SectionStream.of(stream)
    if not isinstance(stream, SectionStream) or not isinstance(options, CompressOptions):
        raise InputError(f"compress_sections takes a SectionStream (or Sections) and "
                         f"CompressOptions, not {type(stream).__name__} and "
                         f"{type(options).__name__}")
    first = stream.first
    if EVENTS not in first.tables:
        raise InputError(f"the sections {list(first.tables)[:8]} have no '{EVENTS}' section: "
                         f"its counters say which objects belong to which event")
    step = options.chunk_rows
    _check_modelless(first, options, models or {})
    if options.column_bounds:  # globs are checked against every section's columns at once
        options.column_bounds.check([n for t in first.tables.values() for n in t.names])
        options = options.with_(column_bounds=replace(options.column_bounds, strict=False))
    raw = first.nbytes / max(first.n_events, 1) * stream.n_events
    options = options.with_(zstd_level=options.level_for(raw))
    ranges = _ranges(stream, options, models or {})

    def run(f: BinaryIO) -> CompressResult:
        steps = stream.steps(step, prefetch=True)
        w: SectionsWriter | None = None
        try:  # the first step plans every section's coders, then is written like the rest
            probe = next(steps, first)
            w = SectionsWriter(f, options, probe, ranges=ranges, models=models)
            with progress(-(-stream.n_events // step), "compress", "step",
                          enabled=options.progress) as bar:
                for part in itertools.chain([probe] if stream.n_events else [], steps):
                    part.check("compress: ")
                    w.append(part)
                    bar.update(1)
        except BaseException:
            if w is not None:
                w.abandon()
            raise
        finally:
            steps.close()
        return w.close()

    if hasattr(out, "write"):
        return run(out)  # type: ignore[arg-type]
    with atomic_output(out, options.force) as tmp, open(tmp, "wb") as f:
        result = run(f)
    result.path = Path(out)
    return result


def _ranges(stream: SectionStream, options: CompressOptions,
            models: Mapping[str, ModelBundle]) -> dict[str, Ranges] | None:
    """One pass for the float columns' ranges when a bound is relative to them."""
    from .precision import needs_ranges

    if options.lossless:
        return None
    wanted = {name: stream.first[name].names_of_kind("float") for name in stream.first.names
              if needs_ranges(options, models.get(name))}
    return stream.column_ranges(wanted, options.chunk_rows) if wanted else None


# ----------------------------------------------------------------------------- reading
def select(reader: ContainerReader, sections: list[str] | None, columns: list[str] | None
           ) -> dict[str, list[str] | None]:
    """Which columns of which sections to decode: `sections` by name or glob, `columns`
    by glob; a collection's counter always comes with it (the structure needs it)."""
    specs = reader.sections or []
    names = [s["name"] for s in specs]
    chosen = names
    sections = [sections] if isinstance(sections, str) else sections  # one pattern,
    columns = [columns] if isinstance(columns, str) else columns  # not its letters
    if sections:
        chosen = matching(names, sections)
        if not chosen:
            raise InputError(f"--sections {sections} matches no section of {reader.path}; it "
                             f"has {names}")
    out: dict[str, list[str] | None] = {}
    for s in specs:
        if s["name"] not in chosen:
            continue
        cols = [c["name"] for c in s["schema"]["columns"]]
        out[s["name"]] = cols if columns is None else matching(cols, columns)
    if columns is not None:  # every pattern matches somewhere, as in a single table
        every = [c for s in specs if s["name"] in chosen for c in
                 (x["name"] for x in s["schema"]["columns"])]
        select_names(every, columns, reader.path)
    layouts = {s["name"]: s.get("layout", {}) for s in specs}
    for name in [s["name"] for s in specs if out.get(s["name"])]:
        for _, lay in chain_up(layouts, name):  # counters up the chain: values -> lists -> events
            if not lay.get("counter"):
                break
            owner = out.setdefault(lay.get("counter_section", EVENTS), [])
            if owner is not None and lay["counter"] not in owner:
                owner.append(lay["counter"])
    return {n: c for n, c in out.items() if c is None or c}


def _planned(reader: ContainerReader, sections: list[str] | None, columns: list[str] | None
             ) -> Iterator[tuple[str, Any, list[str] | None]]:
    """(name, view, columns in schema order or None for all) of each section `select`
    keeps, in file order."""
    plan = select(reader, sections, columns)
    for k, spec in enumerate(reader.sections or []):
        if spec["name"] not in plan:
            continue
        cols = plan[spec["name"]]
        order = [c["name"] for c in spec["schema"]["columns"]]
        yield spec["name"], reader.section(k), None if cols is None else [
            c for c in order if c in cols]


def read_sections(source: str | os.PathLike | bytes | ContainerReader, *,
                  sections: list[str] | None = None, columns: list[str] | None = None,
                  threads: int | None = None, recover: bool = False,
                  show_progress: bool = False, timeout: float | None = None,
                  **runtime: Any) -> Sections:
    """Decode a multi-section file (some sections or columns) into Sections (`source`
    may be an open reader: its own `recover` then applies); `timeout` (seconds) limits
    the whole file's decode (codec/deadline.py)."""
    with opened(source, recover) as reader, deadline.limit(timeout, str(reader.path)):
        if reader.sections is None:
            raise InputError(f"{reader.path} holds one table, not sections: read it with "
                             f"read_container")
        tables, layouts = {}, {}
        for name, view, wanted in _planned(reader, sections, columns):
            tables[name] = decode_with(view, columns=wanted, threads=threads or default_threads(),
                                       show_progress=show_progress, **runtime)
            layouts[name] = view.layout
        out = Sections(tables, layouts, dict(reader.header.get("source", {})))
        if reader.recovered:
            out = complete_events(out, str(reader.path))
        return out


STEP_EVENTS = 50_000  # events per step when a tree is written back


class _Cursor:
    """Rows of one section in increasing ranges, each chunk decoded once (the last chunk
    of a range is kept for the next)."""

    def __init__(self, view: Any, columns: list[str] | None, threads: int, runtime: Any):
        self.view, self.columns, self.threads, self.runtime = view, columns, threads, runtime
        self.starts = np.cumsum([0] + [c.rows for c in view.chunks])
        self._kept: tuple[int, Table] | None = None

    def take(self, lo: int, hi: int) -> Table:
        if hi <= lo:
            return decode_with(self.view, columns=self.columns, chunks=[], **self.runtime)
        first = int(np.searchsorted(self.starts, lo, side="right") - 1)
        last = int(np.searchsorted(self.starts, hi, side="left"))
        parts, todo = [], list(range(first, last))
        if self._kept is not None and self._kept[0] == first:
            parts.append(self._kept[1])
            todo = todo[1:]
        if todo:
            parts.append(decode_with(self.view, columns=self.columns, chunks=todo,
                                     threads=self.threads, **self.runtime))
        whole = parts[0] if len(parts) == 1 else concat(parts)
        base = int(self.starts[first])
        self._kept = (last - 1, whole.slice(int(self.starts[last - 1]) - base, whole.n_rows))
        return whole.slice(lo - base, hi - base)


def iter_sections(source: str | os.PathLike | bytes | ContainerReader, *,
                  sections: list[str] | None = None,
                  columns: list[str] | None = None, threads: int | None = None,
                  step_events: int = STEP_EVENTS, **runtime: Any) -> Iterator[Sections]:
    """A multi-section file as steps of `step_events` events with their objects: memory
    for a step and a chunk per section, not the file (the counters are read first)."""
    threads = threads or default_threads()
    step_events = params.integer(step_events, "step_events", 1)  # 0 had been a ValueError
    with opened(source) as reader:
        if reader.sections is None:
            raise InputError(f"{reader.path} holds one table, not sections")
        cursors, layouts = {}, {}
        for name, view, wanted in _planned(reader, sections, columns):
            cursors[name] = _Cursor(view, wanted, threads, runtime)
            layouts[name] = view.layout
        source_rec = dict(reader.header.get("source", {}))
        ends = _object_ends(reader, layouts, threads, runtime)
        n_events = int(cursors[EVENTS].starts[-1]) if EVENTS in cursors else 0
        for a in range(0, max(n_events, 1), step_events):
            b = min(a + step_events, n_events)
            tables = {name: (cur.take(int(ends[name][a]), int(ends[name][b])) if name in ends
                             else cur.take(a, b)) for name, cur in cursors.items()}
            yield Sections(tables, layouts, source_rec)


def _object_ends(reader: ContainerReader, layouts: dict[str, Any], threads: int,
                 runtime: Any) -> dict[str, np.ndarray]:
    """Per collection, its first row at each event boundary: cumulative counters of the
    events, and for a chained collection its counter summed through its parent's."""
    order = chain_order(layouts, layouts)
    if not order or EVENTS not in layouts:
        return {}
    direct = sorted({layouts[n]["counter"] for n in order
                     if layouts[n].get("counter_section", EVENTS) == EVENTS})
    counters = decode_with(reader.section(EVENTS), columns=direct, threads=threads, **runtime)
    ends: dict[str, np.ndarray] = {}
    for name in order:
        lay = layouts[name]
        parent = lay.get("counter_section", EVENTS)
        if parent == EVENTS:
            ends[name] = np.concatenate([[0], np.cumsum(counters[lay["counter"]],
                                                        dtype=np.int64)])
        else:
            ends[name] = _ends_through(reader.section(parent), lay["counter"], ends[parent],
                                       f"{reader.path}, section '{name}'", threads, runtime)
    return ends


def _ends_through(parent: Any, counter: str, parent_ends: np.ndarray, where: str,
                  threads: int, runtime: Any) -> np.ndarray:
    """A chained collection's rows at the event boundaries `parent_ends` (rows of its
    parent): its counter, a column of the parent, summed one parent chunk at a time, so
    memory holds a chunk of the column, not all of it."""
    out = np.zeros(len(parent_ends), dtype=np.int64)
    total = first = 0
    for k in range(len(parent.chunks)):
        counts = decode_with(parent, columns=[counter], chunks=[k], threads=threads,
                             **runtime)[counter]
        cum = total + np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        lo = int(np.searchsorted(parent_ends, first, side="left"))
        hi = int(np.searchsorted(parent_ends, first + len(counts), side="right"))
        out[lo:hi] = cum[parent_ends[lo:hi] - first]
        total, first = int(cum[-1]), first + len(counts)
    if len(parent_ends) and int(parent_ends[-1]) != first:
        raise SchemaError(f"{where}: the counters of its parent section add up to "
                          f"{int(parent_ends[-1]):,} rows, but that section holds {first:,}")
    return out


def recoverable_events(reader: ContainerReader) -> tuple[int, list[str]]:
    """What `recover` of a damaged file of sections keeps: the events whose objects all
    survived, and the sections cut short, the one that ends them first (decoding only
    the counters)."""
    layouts = {s["name"]: s.get("layout", {}) for s in reader.sections or []}
    if EVENTS not in layouts:
        return 0, []
    ends = _object_ends(reader, layouts, 1, {})
    n_events = sum(c.rows for c in reader.section(EVENTS).chunks)
    rows = {name: sum(c.rows for c in reader.section(name).chunks) for name in ends}
    return _whole_events(ends, rows, n_events)


def _whole_events(ends: Mapping[str, np.ndarray], rows: Mapping[str, int], n_events: int
                  ) -> tuple[int, list[str]]:
    """Of `n_events` events, how many have all their objects within each collection's
    `rows` (`ends`: each collection's first row per event), and the collections cut short
    before the last event, the one that ends the kept events first."""
    whole = {name: int(np.searchsorted(at[: n_events + 1], rows[name], side="right")) - 1
             for name, at in ends.items()}
    keep = min([n_events, *whole.values()])
    return keep, sorted((n for n, k in whole.items() if k < n_events), key=whole.__getitem__)


def complete_events(sections: Sections, label: str = "the file") -> Sections:
    """After a recovery: keep the events whose objects all survived (each section keeps
    its own prefix of chunks, so the last events may miss objects, or a chained section
    miss the lists its values belong to)."""
    if EVENTS not in sections.tables:
        return sections
    ends = sections.event_ends()
    keep, short = _whole_events(ends, {n: sections[n].n_rows for n in ends},
                                sections.n_events)
    if keep < sections.n_events:
        why = (" (lost every chunk: a small collection fills its chunks slowly, so they "
               "come late in the file)" if sections[short[0]].n_rows == 0 else "")
        warnings.warn(RecoveryWarning(
            f"{label}: kept the first {keep:,} of {sections.n_events:,} recovered events, "
            f"those whose objects all survived; section(s) {', '.join(short[:8])} are cut "
            f"short, {short[0]} first{why}; --sections can pick the sections that survived"),
            stacklevel=2)
    tables = {}
    for n, t in sections.tables.items():
        rows = int(ends[n][keep]) if n in ends else keep if n == EVENTS else t.n_rows
        tables[n] = t.slice(0, rows)
    return Sections(tables, sections.layouts, sections.source)
