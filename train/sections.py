"""Training per section: one model per table of a whole ROOT tree that can use one.

`balerc train nano.root` on a tree with jagged collections trains each collection (and
the event-level table, when it is narrow enough) on its own float columns and writes
one directory holding them all: ``DIR/sections.json`` names the model directory of each
section and says why the others have none. `compress -m DIR` gives each section its
model; the codec still drops a model that does not pay on the data (with a note) and
codes those columns model-free, so a section where nothing pays costs nothing extra.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from balerc.codec.model import SECTION_MODELS
from balerc.formats.errors import BalercError, InputError
from balerc.formats.table import Table, concat

from .config import TrainConfig
from .exporter import check_target, export
from .trainer import fit

MIN_ROWS = 1000  # fewer objects than this: the decoder would cost more than it saves
MAX_COLUMNS = 64  # wider tables (NanoAOD's 600 event-level floats) are not trained
MAX_ROWS = 1_000_000  # rows sampled per section


def train_sections(data: str | os.PathLike, model_dir: str | os.PathLike, cfg: TrainConfig, *,
                   tree: str | None = None, force: bool = False,
                   log: Any = print) -> dict[str, Any]:
    """Train every section of the tree in `data` that can hold a model; returns the
    record written to DIR/sections.json."""
    from balerc.formats.root_sections import open_root_sections

    cfg.validate()
    out = check_target(model_dir, force)
    if (out / SECTION_MODELS).exists() and not force:
        raise InputError(f"{out} already holds section models ({SECTION_MODELS}); use --force "
                         f"to overwrite")
    stream = open_root_sections(data, tree=tree, columns=cfg.columns)
    tables = _sample(stream, cfg.seed)
    record: dict[str, Any] = {"format": "balerc-section-models", "version": 1,
                              "source": str(data), "sections": {}, "skipped": {}}
    section_cfg = replace(cfg, columns=None)
    for name, table in tables.items():
        floats = table.names_of_kind("float")
        why = _why_not(table, floats)
        if why:
            record["skipped"][name] = why
            log(f"section {name}: no model ({why})")
            continue
        log(f"section {name}: training on {table.n_rows:,} rows x {len(floats)} float columns")
        try:
            model = fit(Table({n: table[n] for n in floats}, table.source), section_cfg)
        except BalercError as exc:
            record["skipped"][name] = str(exc)
            log(f"section {name}: no model ({exc})")
            continue
        export(model, Path(out) / name, force=force)
        record["sections"][name] = name
    if not record["sections"]:
        raise InputError(f"{data}: no section could hold a model: " + "; ".join(
            f"{n}: {w}" for n, w in record["skipped"].items()))
    Path(out, SECTION_MODELS).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _why_not(table: Table, floats: list[str]) -> str | None:
    if len(floats) < 2:
        return f"{len(floats)} float column(s); a model needs at least 2"
    if len(floats) > MAX_COLUMNS:
        return f"{len(floats)} float columns, over {MAX_COLUMNS}: compressed model-free"
    if table.n_rows < MIN_ROWS:
        return f"only {table.n_rows:,} rows; a decoder would cost more than it saves"
    return None


def _sample(stream: Any, seed: int) -> dict[str, Table]:
    """Every section, at most MAX_ROWS rows each, sampled evenly across the file."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Table]] = {}
    for step in stream.steps(1 << 16):
        for name, t in step.tables.items():
            parts.setdefault(name, []).append(t)
    out = {}
    for name, ts in parts.items():
        t = concat(ts)
        if t.n_rows > MAX_ROWS:
            keep = np.sort(rng.choice(t.n_rows, MAX_ROWS, replace=False))
            t = Table({n: a[keep] for n, a in t.columns.items()}, t.source)
        out[name] = t
    return out
