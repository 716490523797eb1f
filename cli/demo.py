"""`balerc demo`: the whole chain on generated dimuon events, verified and compared.

generate -> train -> compress at the bound -> decompress -> check every value -> table of
ratios against zstd, quantization + zstd and SZ3 at the same bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from balerc.formats.errors import InputError


@click.command("demo")
@click.option("--rows", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True,
              help="Dimuon events to generate (the table compressed and compared).")
@click.option("--bound", default="rel:1e-3", show_default=True, help="Error bound to demonstrate.")
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True,
              help="Training epochs at most (early stopping may end sooner).")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-out"), show_default=True,
              help="Folder for the data, the model, the .balerc file and the reports.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Worker threads (default: the cores this process may use, at most 8).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the generated events and of training.")
def demo_command(rows: int, bound: str, epochs: int, output_dir: Path, threads: int | None,
                 seed: int) -> None:
    """Generate toy dimuon events, train, compress, verify the bound, compare with peers."""
    from balerc.codec.ae import compress_with_model
    from balerc.codec.api import decompress
    from balerc.codec.bounds import Bound
    from balerc.codec.pipeline import default_threads
    from balerc.formats import toy
    from balerc.formats.errors import BalercError
    from balerc.formats.tableio import write_table
    from balerc.train import TrainConfig, export, fit

    from .analysis.peers import compare

    b = Bound.parse(bound)
    threads = threads or default_threads()
    _replace_previous(output_dir)
    t0 = time.perf_counter()
    table = toy.dimuon(rows, seed=seed)
    write_table(table, output_dir / "dimuon.root")
    click.echo(f"[1/5] generated {rows:,} dimuon events -> {output_dir / 'dimuon.root'}")

    floats = table.names_of_kind("float")
    cfg = TrainConfig(epochs=epochs, bound=str(b) if b.mode != "pwrel" else "rel:1e-3",
                      seed=seed, threads=threads, progress=True)
    model = fit(table, cfg)
    model_dir = export(model, output_dir / "model", force=True)
    click.echo(f"[2/5] trained and exported {model_dir} ({time.perf_counter() - t0:.0f}s so far)")

    blc = output_dir / "dimuon.balerc"
    res = compress_with_model(table, blc, model_dir=model_dir, bound=b, threads=threads,
                              show_progress=True)
    click.echo(f"[3/5] compressed at {b}: {res.file_bytes:,} bytes, {res.mbps:.0f} MB/s")

    back = decompress(blc, threads=threads)
    worst = 0.0
    for name in floats:
        y = table[name].astype(np.float64)
        err = np.abs(y - back[name].astype(np.float64))
        limit = b.value * np.abs(y) if b.mode == "pwrel" else b.absolute(y)
        if not np.all(err <= limit):
            raise BalercError(f"bound violated in column {name}: this is a bug, please report it")
        worst = max(worst, float(np.max(err / np.maximum(limit, 1e-300))))
    exact = all(np.array_equal(table[n], back[n]) for n in table.names if n not in floats)
    click.echo(f"[4/5] decompressed and verified: every one of {rows * len(floats):,} float values "
               f"within the bound (worst {worst:.3f} of it); integer columns bit-exact: {exact}")

    data = table.to_numpy(floats)
    raw = data.nbytes
    lines = [("balerc (model counted)", raw / _float_bytes(res), "yes")]
    for r in compare(data, [b], methods=["zstd", "quant-zstd", "sz3", "zfp", "mantissa"]):
        if r.skipped:
            lines.append((r.method, None, f"skipped: {r.skipped}"))
        else:
            lines.append((r.method, r.ratio, "lossless" if r.bound_held is None else
                          ("yes" if r.bound_held else "NO")))
    click.echo(f"[5/5] {len(floats)} float columns, {raw:,} raw bytes, bound {b}:")
    click.echo(f"      {'method':<24} {'ratio':>7}  bound held")
    for name, ratio, held in lines:
        click.echo(f"      {name:<24} {(f'{ratio:.2f}x') if ratio else '-':>7}  {held}")
    click.echo(f"done in {time.perf_counter() - t0:.0f}s; files in {output_dir}/")


DEMO_FILES = ("dimuon.root", "dimuon.balerc")
MARKER = ".balerc-demo"  # a folder the demo wrote: its files are the demo's to replace


def _replace_previous(output_dir: Path) -> None:
    """A previous demo's files in OUTPUT_DIR (known by the marker it leaves) are replaced;
    nothing else there is touched (the whole folder was deleted: `-o .` or `-o ~/work`
    would have lost everything in it), and files of the same names the demo did not
    write are refused (a user's dimuon.root had been replaced)."""
    from balerc.formats.fileio import check_writable_dir

    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"--output-dir {output_dir} is a file; give a folder")
    ours = (output_dir / MARKER).exists()
    model = output_dir / "model"
    if model.exists() and not ((model / "model.json").exists() and ours):
        raise InputError(f"{model} exists and is not the demo's model: the demo would write "
                         f"its model there; choose another --output-dir")
    theirs = [n for n in DEMO_FILES if (output_dir / n).exists() and not ours]
    if theirs:
        raise InputError(f"{output_dir} holds {', '.join(theirs)}, not written by the demo; "
                         f"choose another --output-dir")
    check_writable_dir(output_dir, "--output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).touch()
    for name in DEMO_FILES:
        (output_dir / name).unlink(missing_ok=True)


def _float_bytes(res: object) -> int:
    """Bytes of the file minus the lossless integer columns, to compare float-only peers."""
    col_bytes: dict[str, int] = getattr(res, "column_bytes", {})
    lossless = sum(v for k, v in col_bytes.items() if k.startswith("col/"))
    return int(res.file_bytes) - lossless
