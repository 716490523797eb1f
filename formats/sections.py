"""Several tables with their own row counts: a ROOT tree split into sections.

A physicist's file is a tree with event-level branches (one row per event) and jagged
collections (one row per object, ``Jet_*`` counted by ``nJet``). `Sections` keeps each as
its own Table: the section ``events`` holds the flat branches and the counters (stored
losslessly), and each collection section holds its branches flattened, tied to the
events by its counter (``layout["counter"]``, a column of ``layout["counter_section"]``).
Nothing else is needed to rebuild the jagged arrays: object i of event e is row
``sum(counter[:e]) + i`` of its section.

`SectionStream` produces Sections step by step (entry ranges of events) so memory is
bounded by the step, not the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .table import Table

EVENTS = "events"
# counts of a jagged branch that has no counter branch in the source (std::vector) are
# kept in the events section under this reserved name, and not written back as a branch
SYNTHETIC_COUNTER = "__count__/"


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
        """Objects per event of collection `name` (from its counter column)."""
        lay = self.layouts.get(name, {})
        counter, owner = lay.get("counter"), lay.get("counter_section", EVENTS)
        if not counter or owner not in self.tables or counter not in self.tables[owner]:
            raise InputError(f"section '{name}' has no counter column to tie it to the events")
        return np.asarray(self.tables[owner][counter], dtype=np.int64)

    def check(self, where: str = "") -> None:
        """Every collection holds exactly the objects its counter says (a clear error,
        not a silently misaligned tree)."""
        for name in self.tables:
            if self.layouts.get(name, {}).get("kind") != "collection":
                continue
            counts = self.counts(name)
            if counts.size and counts.min() < 0:
                raise InputError(f"{where}section '{name}': its counter has negative values")
            total, rows = int(counts.sum()), self.tables[name].n_rows
            if total != rows:
                raise InputError(f"{where}section '{name}' holds {rows:,} rows but its counter "
                                 f"'{self.layouts[name]['counter']}' adds up to {total:,}")

    def describe(self) -> str:
        parts = [f"{n} ({t.n_rows:,} rows x {t.n_columns})" for n, t in self.tables.items()]
        return "Sections(" + ", ".join(parts) + ")"

    __repr__ = describe


@dataclass
class SectionStream:
    """Sections known by their first step and the event count, produced step by step."""

    first: Sections
    n_events: int
    _reader: Callable[[int, int], Sections] = field(repr=False)

    @property
    def source(self) -> dict[str, Any]:
        return self.first.source

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
                    col = step[s][n]
                    fin = col[np.isfinite(col)]
                    if fin.size:
                        lo[s][n] = min(lo[s][n], float(fin.min()))
                        hi[s][n] = max(hi[s][n], float(fin.max()))
        return {s: {n: (lo[s][n], hi[s][n]) if lo[s][n] <= hi[s][n] else (np.nan, np.nan)
                    for n in cols} for s, cols in wanted.items()}
