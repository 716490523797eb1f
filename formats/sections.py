"""Several tables with their own row counts: a ROOT tree split into sections.

A physicist's file is a tree with event-level branches (one row per event) and jagged
collections (one row per object, ``Jet_*`` counted by ``nJet``). `Sections` keeps each as
its own Table: the section ``events`` holds the flat branches and the counters (stored
losslessly), and each collection section holds its branches flattened, tied to the
events by its counter (``layout["counter"]``, a column of ``layout["counter_section"]``).
Nothing else is needed to rebuild the jagged arrays: object i of event e is row
``sum(counter[:e]) + i`` of its section.

A collection may also be counted by a column of another collection (a *chain*): a nested
branch ``x`` (``std::vector<std::vector<float>>``) is the events column ``__lists__/x``
(inner lists per event), the section ``__lists__/x`` (one row per inner list, its column
``__values__/x`` the values in that list) and the section ``__values__/x`` (one row per
value, its column named ``x``). A vector of strings has no list section: its section
``__values__/x`` is counted by the events column ``__values__/x``. Names starting with
``__count__/``, ``__lists__/`` or ``__values__/`` are reserved (ROOT branch and RNTuple
field names hold no ``/``) and are never written back as branches.

`SectionStream` produces Sections step by step (entry ranges of events) so memory is
bounded by the step, not the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .table import Table, finite_range

EVENTS = "events"
# counts of a jagged branch that has no counter branch in the source (std::vector) are
# kept in the events section under this reserved name, and not written back as a branch
SYNTHETIC_COUNTER = "__count__/"
# chained sections of a nested branch x (module docstring): their names, and the names of
# the columns counting their rows (a counter is named after the section it counts)
LISTS = "__lists__/"
VALUES = "__values__/"
RESERVED = (SYNTHETIC_COUNTER, LISTS, VALUES)
_PAST_END = np.iinfo(np.int64).max  # an event boundary beyond a truncated parent's rows


def is_structural(name: str) -> bool:
    """A counter or section balerc made up (not a branch of the source)."""
    return name.startswith(RESERVED)


def chain_up(layouts: Mapping[str, Mapping[str, Any]], section: str
             ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, layout) of collection `section` and of each collection whose column counts
    the previous one, up to the section that is not a collection (the events); a loop in
    a damaged file ends the walk."""
    seen: set[str] = set()
    while layouts.get(section, {}).get("kind") == "collection" and section not in seen:
        seen.add(section)
        yield section, layouts[section]
        section = str(layouts[section].get("counter_section", EVENTS))


def chain_order(layouts: Mapping[str, Mapping[str, Any]], present: Iterable[str]) -> list[str]:
    """The collections among `present`, each after the section holding its counter, so a
    chained collection is sliced after its parent (loops and unknown parents refused)."""
    present = list(present)
    colls = {n for n in present if layouts.get(n, {}).get("kind") == "collection"}
    order: list[str] = []
    for name in present:
        trail: list[str] = []
        n = name
        while n in colls and n not in order:
            if n in trail:
                raise InputError(f"section '{name}': its counters loop through "
                                 f"{' -> '.join(trail)}; the file is damaged")
            trail.append(n)
            n = str(layouts[n].get("counter_section", EVENTS))
        if n not in colls and n != EVENTS and trail:
            raise InputError(f"section '{trail[-1]}' is counted by a column of '{n}', which is "
                             f"neither '{EVENTS}' nor a collection section of this file")
        order += reversed(trail)
    return order


@dataclass
class Sections:
    """Ordered named tables plus how they tie together and the file-level source."""

    tables: dict[str, Table]
    layouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.tables)

    def __getitem__(self, name: str) -> Table:
        if name not in self.tables:  # a KeyError had named nothing else
            raise InputError(f"no section {name!r}; the sections are {list(self.tables)[:12]}")
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    @property
    def n_events(self) -> int:
        return self.tables[EVENTS].n_rows if EVENTS in self.tables else 0

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values())

    @property
    def n_columns(self) -> int:
        return sum(t.n_columns for t in self.tables.values())

    def counts(self, name: str) -> np.ndarray:
        """Rows of collection `name` per row of the section holding its counter (objects
        per event; for a chained section, values per inner list)."""
        lay = self.layouts.get(name, {})
        counter, owner = lay.get("counter"), lay.get("counter_section", EVENTS)
        if not counter or owner not in self.tables or counter not in self.tables[owner]:
            raise InputError(f"section '{name}' has no counter column to tie it to the events")
        return np.asarray(self.tables[owner][counter], dtype=np.int64)

    def event_ends(self) -> dict[str, np.ndarray]:
        """Per collection, its first row at each event boundary (n_events + 1 values),
        chained ones through their parent's; a boundary a truncated parent does not
        reach (after a recovery) is past any row count."""
        at_events = np.arange(self.n_events + 1, dtype=np.int64)
        ends: dict[str, np.ndarray] = {}
        for name in chain_order(self.layouts, self.tables):
            parent = self.layouts[name].get("counter_section", EVENTS)
            own = np.concatenate([[0], np.cumsum(self.counts(name), dtype=np.int64)])
            at = at_events if parent == EVENTS else ends[parent]
            reach = at < len(own)
            ends[name] = np.where(reach, own[np.where(reach, at, 0)], _PAST_END)
        return ends

    def event_slice(self, a: int, b: int) -> Sections:
        """Events [a, b) and their objects (every collection sliced by its counters)."""
        ends = self.event_ends()
        lo, hi = min(a, self.n_events), min(b, self.n_events)
        tables = {n: t.slice(int(ends[n][lo]), int(ends[n][hi])) if n in ends else t.slice(a, b)
                  for n, t in self.tables.items()}
        return Sections(tables, self.layouts, self.source)

    def check(self, where: str = "") -> None:
        """Every collection holds exactly the objects its counter says (a clear error,
        not a silently misaligned tree)."""
        for name in chain_order(self.layouts, self.tables):
            counts = self.counts(name)
            if counts.size and counts.min() < 0:
                raise InputError(f"{where}section '{name}': its counter has negative values")
            total, rows = int(counts.sum()), self.tables[name].n_rows
            if total != rows:
                raise InputError(f"{where}section '{name}' holds {rows:,} rows but its counter "
                                 f"'{self.layouts[name]['counter']}' adds up to {total:,}")

    def to_awkward(self, name: str) -> Any:
        """Branch `name` as an awkward array, one entry per event: jagged and nested
        branches rebuilt through their counters, fixed-size arrays with their shape.
        The way to nested branches in Python, and to those a TTree cannot take back."""
        from .optional import require

        ak = require("awkward", "to_awkward")
        section, shape = self._where(name)
        if shape is not None:
            parts = [self.tables[EVENTS][c] for c in _array_parts(self.tables[EVENTS], name)]
            return ak.Array(np.stack(parts, axis=1).reshape(-1, *shape))
        return self.column_awkward(section, name)

    def column_awkward(self, section: str, name: str) -> Any:
        """Column `name` of `section` as an awkward array with one entry per event
        (unflattened through every counter up to the events)."""
        from .optional import require

        ak = require("awkward", "to_awkward")
        col = self.tables[section][name]
        arr = ak.Array(strings_layout(col, ak) if col.dtype.kind == "O" else col)
        for sec, _ in chain_up(self.layouts, section):
            arr = ak.unflatten(arr, self.counts(sec))
        return arr

    def _where(self, name: str) -> tuple[str, tuple[int, ...] | None]:
        """The section of branch `name`, and its shape if it is a fixed-size array."""
        for rec in self.source.get("branches") or []:
            if rec.get("name") == name and rec.get("kind") == "array":
                parts = _array_parts(self.tables.get(EVENTS, Table({})), name)
                if parts:
                    return EVENTS, tuple(rec.get("shape") or [len(parts)])
            elif rec.get("name") == name and name in self.tables.get(
                    rec.get("section", EVENTS), Table({})):
                return str(rec.get("section", EVENTS)), None
        for section, table in self.tables.items():
            if name in table:
                return section, None
        if _array_parts(self.tables.get(EVENTS, Table({})), name):
            return EVENTS, (len(_array_parts(self.tables[EVENTS], name)),)
        where = f"{self.source['path']}: " if self.source.get("path") else ""
        names = [c for t in self.tables.values() for c in t.names if not is_structural(c)]
        raise InputError(f"{where}no branch '{name}' among the sections read; read it (no "
                         f"--columns/sections filter leaving it out) or pick one of "
                         f"{names[:20]}")

    def describe(self) -> str:
        parts = [f"{n} ({t.n_rows:,} rows x {t.n_columns})" for n, t in self.tables.items()]
        return "Sections(" + ", ".join(parts) + ")"

    __repr__ = describe


def strings_layout(col: np.ndarray, ak: Any) -> Any:
    """An object array of str as an awkward string array (UTF-8 bytes and offsets; its
    type is right even when empty)."""
    raw = [str(v).encode() for v in col]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(b) for b in raw), np.int64, len(raw)), out=offsets[1:])
    chars = ak.contents.NumpyArray(np.frombuffer(b"".join(raw), dtype=np.uint8),
                                   parameters={"__array__": "char"})
    return ak.contents.ListOffsetArray(ak.index.Index64(offsets), chars,
                                       parameters={"__array__": "string"})


ARRAY_COLUMN = re.compile(r"^(.*?)((?:\[\d+\])+)$")
"""A fixed-size array branch x is stored as the columns x[0], x[1], ... (x[0][0], ...)."""


def array_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """The element columns of array branch `name` from its (events, *shape) values."""
    return {name + "".join(f"[{i}]" for i in idx): np.ascontiguousarray(
        values[(slice(None), *idx)]) for idx in np.ndindex(*values.shape[1:])}


def _array_parts(events: Table, name: str) -> list[str]:
    """The columns x[0], x[1], ... (x[0][0], ...) of a fixed-size array branch x."""
    return [c for c in events.names
            if (m := ARRAY_COLUMN.match(c)) is not None and m.group(1) == name]


@dataclass
class SectionStream:
    """Sections known by their first step and the event count, produced step by step."""

    first: Sections
    n_events: int
    _reader: Callable[[int, int], Sections] = field(repr=False)

    @property
    def source(self) -> dict[str, Any]:
        return self.first.source

    @classmethod
    def of(cls, sections: Sections) -> SectionStream:
        """A stream over Sections held in memory (tests, generated trees)."""
        return cls(sections, sections.n_events, sections.event_slice)

    def steps(self, step_events: int, prefetch: bool = False) -> Iterator[Sections]:
        """Steps of `step_events` events in order; with `prefetch` the next step is read on
        a thread while the caller works on this one (ROOT decompression overlaps encoding;
        memory: two steps)."""
        ranges = [(a, min(a + step_events, self.n_events))
                  for a in range(0, self.n_events, step_events)]
        if not prefetch or len(ranges) < 2:
            for a, b in ranges:
                yield self._reader(a, b)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(self._reader, *ranges[0])
            for nxt in ranges[1:]:
                current = ahead.result()
                ahead = pool.submit(self._reader, *nxt)
                yield current
            yield ahead.result()

    def column_ranges(self, wanted: dict[str, list[str]], step_events: int = 1 << 16
                      ) -> dict[str, dict[str, tuple[float, float]]]:
        """Finite (min, max) of the named float columns of each section (one pass)."""
        lo = {s: dict.fromkeys(cols, np.inf) for s, cols in wanted.items()}
        hi = {s: dict.fromkeys(cols, -np.inf) for s, cols in wanted.items()}
        for step in self.steps(step_events):
            for s, cols in wanted.items():
                for n in cols:
                    span = finite_range(step[s][n])
                    if span is not None:
                        lo[s][n] = min(lo[s][n], span[0])
                        hi[s][n] = max(hi[s][n], span[1])
        return {s: {n: (lo[s][n], hi[s][n]) if lo[s][n] <= hi[s][n] else (np.nan, np.nan)
                    for n in cols} for s, cols in wanted.items()}
