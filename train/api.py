"""`train_file`: what `balerc train` does, as one call (read, fit, export)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.table import Table, concat, kind_of
from balerc.formats.tableio import read_table

from .config import TrainConfig
from .exporter import check_target, export
from .trainer import TrainedModel, fit


def train_file(data: str | os.PathLike, model_dir: str | os.PathLike, cfg: TrainConfig, *,
               tree: str | None = None, force: bool = False
               ) -> tuple[TrainedModel, Path]:
    """Train on the float columns of the table file `data` and export to `model_dir`.

    The target is checked before the table is read, so a long run never ends in a refusal.
    """
    cfg.validate()
    check_target(model_dir, force)
    table = read_table(data, tree=tree, columns=cfg.columns)
    model = fit(table, cfg)
    return model, export(model, model_dir, force=force)


MAX_TRAIN_ROWS = 2_000_000  # rows sampled across all files (training converges long before)


def train_files(specs: list[str], model_dir: str | os.PathLike, cfg: TrainConfig, *,
                tree: str | None = None, force: bool = False,
                max_rows: int = MAX_TRAIN_ROWS) -> tuple[TrainedModel, Path]:
    """Train on rows sampled evenly across several files (globs and `file:tree` allowed),
    so a model shared by a dataset's files has seen all of them."""
    from balerc.codec.many import expand_inputs

    cfg.validate()
    check_target(model_dir, force)
    inputs = expand_inputs(specs)
    per_file = max(1, max_rows // len(inputs))
    rng = np.random.default_rng(cfg.seed)
    parts: list[Table] = []
    for path, spec_tree in inputs:
        t = read_table(path, tree=spec_tree or tree, columns=cfg.columns)
        if parts:
            t = _same_schema(t, parts[0], path, inputs[0][0])
        if t.n_rows > per_file:
            keep = np.sort(rng.choice(t.n_rows, per_file, replace=False))
            t = Table({n: a[keep] for n, a in t.columns.items()}, t.source)
        parts.append(t)
    model = fit(concat(parts), cfg)
    return model, export(model, model_dir, force=force)


def _same_schema(t: Table, first: Table, path: Any, first_path: Any) -> Table:
    """`t` with the first file's column order; refused when its columns or their kinds
    differ (an int column in one file and float in another had been trained as float, and
    the model then refused the int file it was trained on). A reordering is accepted, as
    compress accepts it."""
    if sorted(t.names) != sorted(first.names):
        only = sorted(set(t.names) ^ set(first.names))
        raise InputError(f"{path} and the first file {first_path} have different columns "
                         f"({only[:8]} in one only): train on files of one schema (or select "
                         f"columns with --columns)")
    clash = {n: (str(first[n].dtype), str(t[n].dtype)) for n in first.names
             if kind_of(first[n]) != kind_of(t[n])}
    if clash:
        raise InputError(f"{path}: column kinds differ from the first file {first_path} "
                         f"(first, this): {dict(list(clash.items())[:5])}; train on files "
                         f"whose columns hold the same kind of values")
    return t.select(first.names)
