"""`balerc evaluate DATA FILE.balerc -o REPORT_DIR`: is the compressed file usable for physics?

Thin: parse the options and call balerc.cli.analysis.evaluate, which does the work.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    columns_option,
    data_and_tree,
    force_option,
    four_vector_option,
    mass_window_option,
    split_patterns,
    threads_option,
    tree_option,
)


@click.command("evaluate")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("file", metavar="FILE.balerc", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True,
              type=click.Path(path_type=Path),
              help="Report directory (created): figures, summary.json, summary.md, report.html.")
@click.option("-m", "--model", "model_dir", type=click.Path(path_type=Path),
              help="Model directory: adds its training loss curve (and decodes files written "
                   "with --no-embed-model).")
@four_vector_option
@mass_window_option
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png",
              show_default=True, help="One PNG per figure, or one multi-page report.pdf.")
@click.option("--max-column-plots", type=click.IntRange(0), default=30, show_default=True,
              help="Per-column figures for at most this many float columns (tables list all).")
@click.option("--style", type=click.Choice(["auto", "mplhep", "plain"]), default="auto",
              show_default=True,
              help="Figure style: mplhep's ROOT style when installed (auto), required "
                   "(mplhep), or matplotlib's (plain).")
@click.option("--peak-shape", type=click.Choice(["gauss", "crystalball"]), default="gauss",
              show_default=True,
              help="Signal shape of the unbinned peak fit (on a linear background).")
@tree_option
@columns_option
@click.option("--section", default=None, metavar="NAME",
              help="FILE holds a whole ROOT tree: evaluate this section of it (e.g. Jet, "
                   "or events), against the same branches of DATA.")
@threads_option
@force_option
def evaluate_command(data: Path, file: Path, output: Path, model_dir: Path | None,
                     four_vectors: tuple[str, ...], mass_window: str | None, fmt: str,
                     max_column_plots: int, style: str, peak_shape: str, tree: str | None,
                     columns: tuple[str, ...], section: str | None, threads: int | None,
                     force: bool) -> None:
    """Compare DATA with FILE.balerc decompressed: per-column residuals, correlations,
    invariant masses with a fitted peak, and an offline HTML report."""
    from .analysis.evaluate import EvaluateOptions, evaluate_files, headline_lines
    from .analysis.peakfit import parse_window

    opts = EvaluateOptions(fmt=fmt, model_dir=model_dir, four_vectors=list(four_vectors) or None,
                           mass_window=parse_window(mass_window),
                           max_column_plots=max_column_plots, force=force, style=style,
                           peak_shape=peak_shape)
    data, tree = data_and_tree(data, tree)
    summary = evaluate_files(data, file, output, opts, tree=tree, columns=split_patterns(columns),
                             threads=threads, section=section)
    click.echo(f"wrote {output}/report.html ({len(summary['figures'])} figures)")
    for line in headline_lines(summary):
        click.echo(f"  {line}")
