"""`balerc compare DATA --bound rel:1e-3 -o OUT_DIR`: balerc against the peer compressors.

Thin: parse the options and call balerc.cli.analysis.compare, which does the work.
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
    tree_option,
)


@click.command("compare")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bound", "bounds", multiple=True, required=True, metavar="MODE:E",
              help="Error bound, repeatable: abs:E, rel:E (E x column range) or pwrel:E.")
@click.option("-m", "--model", "model_dir", type=click.Path(path_type=Path),
              help="Also run balerc with this trained model (balerc+model rows).")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(path_type=Path),
              help="Output directory (created): results.json, results.md, plots.")
@click.option("--methods", default=None, metavar="LIST",
              help="Comma-separated methods to run (default: balerc and every peer).")
@click.option("--sweep", default=None, metavar="LIST",
              help="rel bounds for the rate-distortion plot (default 1e-4,1e-3,1e-2,1e-1; "
                   "'none' to skip and plot the --bound rows).")
@click.option("--sweep-rows", type=click.IntRange(1), default=20_000, show_default=True,
              help="Rows used by the sweep (the first ones), to keep it quick.")
@click.option("--repeats", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Time each method this many times and keep the best.")
@click.option("-T", "--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="balerc threads (peers are single-threaded; 1 compares like with like).")
@four_vector_option
@mass_window_option
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png",
              show_default=True, help="PNG files, or one compare.pdf.")
@tree_option
@columns_option
@force_option
def compare_command(data: Path, bounds: tuple[str, ...], model_dir: Path | None, output: Path,
                    methods: str | None, sweep: str | None, sweep_rows: int, repeats: int,
                    threads: int, four_vectors: tuple[str, ...], mass_window: str | None,
                    fmt: str, tree: str | None, columns: tuple[str, ...], force: bool) -> None:
    """Compress DATA at the same bounds with balerc and the peers (zstd, shuffle+zstd,
    mantissa truncation, quantization, SZ3, ZFP): ratio, errors, speed, mass shift."""
    from .analysis.compare import CompareOptions, compare_file, parse_sweep, text_table
    from .analysis.peakfit import parse_window

    opts = CompareOptions(
        model_dir=model_dir,
        methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None,
        repeats=repeats, threads=threads, sweep=parse_sweep(sweep), sweep_rows=sweep_rows,
        four_vectors=list(four_vectors) or None, mass_window=parse_window(mass_window), fmt=fmt,
        force=force,
    )
    data, tree = data_and_tree(data, tree)
    results = compare_file(data, list(bounds), output, opts, tree=tree,
                           columns=split_patterns(columns))
    click.echo(text_table(results))
    click.echo(f"wrote {output}/results.md, results.json and {', '.join(results['figure_files'])}")
