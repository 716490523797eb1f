"""`train_file`: what `balerc train` does, as one call (read, fit, export)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.table import Table, concat
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
        if parts and t.names != parts[0].names:
            raise InputError(f"{path} has columns {t.names[:8]}..., the first file "
                             f"{inputs[0][0]} has {parts[0].names[:8]}...: train on files of one "
                             f"schema (or select columns with --columns)")
        if t.n_rows > per_file:
            keep = np.sort(rng.choice(t.n_rows, per_file, replace=False))
            t = Table({n: a[keep] for n, a in t.columns.items()}, t.source)
        parts.append(t)
    model = fit(concat(parts), cfg)
    return model, export(model, model_dir, force=force)
