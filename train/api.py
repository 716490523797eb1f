"""`train_file`: what `balerc train` does, as one call (read, fit, export)."""

from __future__ import annotations

import os
from pathlib import Path

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
