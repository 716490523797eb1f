"""`balerc train DATA -o MODEL_DIR`: parse the options, call balerc.train.train_file, print.

Importing this module does not import torch (balerc.train.config is numpy-only), so the
command is always listed; torch is imported when it runs, and its absence is reported
with the install hint.
"""

from __future__ import annotations

from pathlib import Path

import click

from balerc.formats.errors import InputError
from balerc.train.config import DEVICES, LOSSES, MODEL_NAMES, PHYSICS, TrainConfig
from balerc.train.normalization import NORMS

from .options import columns_option, force_option, four_vector_option, split_patterns, tree_option


def _parse_widths(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise InputError(f"--widths {text}: expected comma-separated integers like 128,64"
                         ) from None
    if not widths or min(widths) < 1:
        raise InputError(f"--widths {text}: expected positive integers like 128,64")
    return widths


def _norm_config(path: str | None) -> dict[str, str] | None:
    """Read a --norm-config JSON file: {column or glob: method}."""
    if path is None:
        return None
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--norm-config {path}: cannot read it as JSON ({exc}); expected "
                         f'{{"column": "minmax", "pt*": "log"}}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"--norm-config {path}: expected an object of column -> method, "
                         f'like {{"E1": "minmax", "pt*": "log"}}')
    return {str(k): v for k, v in data.items()}


def _parse_anchors(text: str | None) -> list[str] | None:
    if text is None or text.strip().lower() == "auto":
        return None
    if text.strip().lower() == "none":
        return []
    return [a.strip() for a in text.split(",") if a.strip()]


@click.command("train")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--output", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (encoder.onnx, decoder.onnx, model.json).")
@tree_option
@columns_option
@click.option("--latent", type=int, default=None,
              help="Fix the latent size L (an encoder.onnx is written when L > 0). "
                   "Default: searched among 0, 1, 2 and ceil(F/4).")
@click.option("--ratio", type=float, default=None,
              help="Fix the latent size to ceil(F / R) for F float columns (Baler's "
                   "compression ratio); an autoencoder of exactly that size is written.")
@click.option("--model", "model_name", default=None, type=click.Choice(MODEL_NAMES),
              help="Fix the architecture: dense (64,32), baler (Baler's 200,100,50; no "
                   "anchors unless --anchors), dense-wide (--widths), physics (exact "
                   "formulas). Default: dense, or a physics decoder when it writes fewer "
                   "bytes and nothing else was fixed.")
@click.option("--widths", default=None, help="Hidden widths, e.g. 128,64 (encoder; mirrored).")
@click.option("--norm", type=click.Choice(NORMS), default="auto", show_default=True,
              help="Column normalization: minmax (Baler's), standard, robust, log, or auto "
                   "(log for non-negative heavy-tailed columns, standard for the rest).")
@click.option("--norm-config", type=click.Path(dir_okay=False, exists=True), default=None,
              help="JSON file {column or glob: method} choosing the normalization per column "
                   "(Baler's custom normalization); other columns use --norm.")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True,
              help="Most training epochs of the final model (early stopping may end sooner).")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True,
              help="Rows per optimizer step.")
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True,
              help="Adam learning rate (lowered on plateaus).")
@click.option("--patience", type=int, default=TrainConfig.patience, show_default=True,
              help="Epochs without validation progress before training stops.")
@click.option("--min-delta", type=float, default=TrainConfig.min_delta, show_default=True,
              help="Relative validation-loss gain that counts as progress.")
@click.option("--val-fraction", type=float, default=TrainConfig.val_fraction, show_default=True,
              help="Share of rows held out for validation (early stopping, reported errors).")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True,
              help="Seed of the split, the row samples and the weights (same seed, same model).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where torch trains (auto: cuda when available).")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: 1 below 50,000 rows, else torch's choice).")
@click.option("--no-qat", is_flag=True, help="Train without latent quantization noise.")
@click.option("--anchors", default=None,
              help="Fix the anchor columns (comma-separated; stored exactly to the bound and "
                   "fed to the decoder), 'none', or 'auto' (default: searched).")
@click.option("--search-seconds", type=float, default=TrainConfig.search_seconds,
              show_default=True,
              help="Time budget of the anchor search: no new anchor step starts after it "
                   f"(each step tries at most {TrainConfig.anchor_trials} columns).")
@click.option("--bound", default=TrainConfig.bound, show_default=True,
              help="Bound the model search optimizes bytes for: abs:E, rel:E (x column range) or "
                   "pwrel:E (pointwise relative). Train for the bound you compress at: on "
                   "four-vectors rel picks pt,eta,phi anchors, pwrel picks px,py,pz.")
@click.option("--loss", type=click.Choice(LOSSES), default=TrainConfig.loss, show_default=True,
              help="mse (even errors), bits (log-MSE per column: favours bytes), smooth_l1.")
@four_vector_option
@click.option("--physics", type=click.Choice(PHYSICS), default="auto", show_default=True,
              help="auto: also score physics-informed decoders (exact relations) and keep the "
                   "smallest; off: never. --model physics forces one.")
@click.option("--half-weights", is_flag=True,
              help="Store the physics decoder's learned MLP weights in float16.")
@force_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train_command(data: tuple[str, ...], model_dir: str, tree: str | None, columns: tuple[str, ...],
                  latent: int | None, ratio: float | None, model_name: str | None,
                  widths: str | None, norm: str, norm_config: str | None, epochs: int, batch_size: int, lr: float, patience: int,
                  min_delta: float, val_fraction: float, seed: int, device: str,
                  threads: int | None, no_qat: bool, anchors: str | None,
                  search_seconds: float, bound: str,
                  loss: str, four_vectors: tuple[str, ...], physics: str, half_weights: bool,
                  force: bool, quiet: bool) -> None:
    """Train an encoder/decoder for the float columns of DATA and export them to ONNX.

    \b
    What you fix is kept: --model, --latent/--ratio and --anchors are never overridden.
    What you leave open is searched by the bytes the codec would write at --bound:
      anchors   greedy, up to 6 columns (wide tables: a sample of the columns)
      latent    0, 1, 2, ceil(F/4)
      model     dense, or a physics decoder (exact formulas) when all three are open

    Several files or globs (and `file.root:tree`) train one model on rows sampled evenly
    across them (at most 2,000,000 in all), for a model shared by a dataset's files.

    A ROOT tree with jagged collections trains one model per section (each collection,
    and the event-level floats when there are at most 64) into one directory with a
    sections.json; `compress -m DIR` gives each section its model.
    """
    cfg = TrainConfig(
        columns=split_patterns(columns), latent=latent, ratio=ratio, model=model_name,
        widths=_parse_widths(widths), norm=norm,
        norm_columns=_norm_config(norm_config), epochs=epochs, batch_size=batch_size, lr=lr,
        patience=patience, min_delta=min_delta, val_fraction=val_fraction, seed=seed,
        device=device, threads=threads, qat=not no_qat, anchors=_parse_anchors(anchors),
        search_seconds=search_seconds,
        bound=bound, loss=loss, progress=not quiet, physics=physics,
        four_vectors=list(four_vectors) or None, half_weights=half_weights,
    )
    cfg.validate()
    from balerc.codec.many import several
    from balerc.train import train_file, train_files  # torch from here on

    if not several(data) and _whole_tree(data[0], tree, cfg.columns):
        from balerc.train.sections import train_sections

        record = train_sections(data[0], model_dir, cfg, tree=tree, force=force,
                                log=click.echo)
        click.echo(f"models for section(s) {', '.join(record['sections'])} written to "
                   f"{model_dir}/ (one directory each, sections.json); compress with "
                   f"-m {model_dir}")
        return
    if not several(data) and Path(data[0]).is_file():
        model, path = train_file(data[0], model_dir, cfg, tree=tree, force=force)
    else:
        model, path = train_files(list(data), model_dir, cfg, tree=tree, force=force)
    from balerc.train.exporter import written_files

    click.echo(model.summary())
    click.echo(f"model written to {path}/ ({', '.join(written_files(path))})")
    if model.latent_dim == 0:
        click.echo("  no encoder.onnx: this decoder takes no latents (anchors only); "
                   "give --ratio or --latent for an autoencoder")
    for note in model.training.get("notes", []):
        click.echo(f"  note: {note}")


def _whole_tree(path: str, tree: str | None, columns: list[str] | None) -> bool:
    """A ROOT tree with jagged collections: one model per section (train/sections.py)."""
    p = Path(path)
    if p.suffix.lower() != ".root" or not p.is_file():
        return False
    from balerc.formats.root_sections import needs_sections

    return needs_sections(p, tree=tree, columns=columns)
