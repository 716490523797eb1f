"""The `balerc` command line: thin click commands over formats/, codec/ and train/.

Every deliberate error (bad input, damaged file, missing optional package) is printed as
one line `balerc: error: ...` with exit status 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from balerc.formats.errors import BalercError, InputError
from balerc.formats.records import MAX_CHUNK_ROWS

from .compare_cmd import compare_command
from .evaluate_cmd import evaluate_command
from .info import info_command
from .options import (
    columns_option,
    force_option,
    json_option,
    split_patterns,
    threads_option,
    tree_option,
)


class BalercGroup(click.Group):
    """One line for every failure: BalercError and file errors exit 2, anything else (a
    bug) exits 3 with a hint; `--debug` (or BALERC_DEBUG=1) shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(os.environ.get("BALERC_DEBUG")) or "--debug" in sys.argv[1:2]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except BalercError as exc:
            _fail(2, f"balerc: error: {exc}", debug)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            _fail(2, f"balerc: error: {exc.strerror}: {exc.filename}", debug)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # --help, usage errors: click prints them and sets the exit status
        except KeyboardInterrupt as exc:  # many files: what was written is said
            what = str(exc) or "interrupted; nothing was written"
            click.echo(f"balerc: {what}", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader of our stdout went away (`| head`): quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except OSError as exc:  # the system refused (read-only, disk full): not a bug
            where = f": {exc.filename}" if exc.filename else ""
            _fail(2, f"balerc: error: {exc.strerror or exc}{where}", debug)
        except Exception as exc:  # a bug: say so in one line
            _fail(3, f"balerc: internal error: {type(exc).__name__}: {exc} (this is a bug in "
                     f"balerc; please report it with the output of `balerc --debug ...`)", debug)


def _fail(code: int, message: str, debug: bool) -> None:
    """Exit with `code`, after one line, or with --debug the traceback (the same code:
    --debug had turned exit 2 into Python's 1, which `info` uses for damage)."""
    if debug:
        traceback.print_exc()
    else:
        click.echo(message, err=True)
    sys.exit(code)


SMALL_CHUNK_ROWS = 1024  # below this `compress` warns: per-chunk records outweigh the data


def _check_flags(output: Path | None, model_dir: Path | None, keep_model: bool,
                 no_embed_model: bool) -> None:
    """Binary bytes are not written to a terminal; model flags without a model are said
    (they had been ignored without a word)."""
    if str(output) == "-" and sys.stdout.isatty():
        raise InputError("-o - writes the .balerc bytes to stdout, which is a terminal: "
                         "redirect it (> file.balerc) or pipe it (| balerc decompress - ...)")
    unused = [f for f, on in (("--keep-model", keep_model), ("--no-embed-model",
                                                             no_embed_model)) if on]
    if unused and model_dir is None:
        click.echo(f"balerc: note: {' and '.join(unused)} apply with -m MODEL_DIR; there is "
                   f"no model here", err=True)


def _warn_small_chunks(chunk_rows: int) -> None:
    if chunk_rows < SMALL_CHUNK_ROWS:
        click.echo(f"balerc: warning: --chunk-rows {chunk_rows:,}: every chunk stores its own "
                   f"stream records and coding tables for each column, so chunks under "
                   f"{SMALL_CHUNK_ROWS:,} rows make files larger and compression slower "
                   f"(Zmumu at 16 rows: 3.2x the bytes, 3.5x the time)", err=True)


TERM_GRACE_S = 5.0  # after SIGTERM, the process ends within this even if work is in flight


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are removed. Worker threads in
    ONNX Runtime or numpy do not see the signal, and the unwinding waits for them (a
    hostile decoder ran for minutes after `timeout` sent SIGTERM): the process exits
    regardless after TERM_GRACE_S (a temporary left then is removed by the next run)."""
    import threading

    click.echo("balerc: terminated; nothing was written", err=True)

    def hard_exit() -> None:
        time.sleep(TERM_GRACE_S)
        os._exit(128 + signum)

    threading.Thread(target=hard_exit, daemon=True).start()
    raise SystemExit(128 + signum)


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    click.echo(f"balerc: warning: {message}", err=True)


@click.group(cls=BalercGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="balerc")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """balerc: compress scientific tables with autoencoders and a guaranteed error bound.

    \b
    Everyday use:
      balerc compress events.root -m model/ -o events.balerc --error-bound rel:1e-3
      balerc decompress events.balerc -o events.root
      balerc info events.balerc
    Start with `balerc demo` to see the whole chain on generated dimuon events.

    \b
    Environment:
      BALERC_LOG=info|debug       more diagnostics on stderr (e.g. the ONNX Runtime provider)
      BALERC_ORT_MAX_MEMORY=BYTES ONNX Runtime's memory cap (default 4 GiB, at least 1 MiB)
      BALERC_DECODE_TIMEOUT=S     stop any decode after S seconds (decompress --timeout)
    Shell completion: eval "$(_BALERC_COMPLETE=bash_source balerc)" (zsh_source, fish_source).
    """


@cli.command("compress")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--output", "output", type=click.Path(path_type=Path),
              help="Output .balerc file (default: DATA with the extension .balerc; '-' writes "
                   "to stdout).")
@click.option("-m", "--model", "model_dir", type=click.Path(path_type=Path),
              help="Model directory from `balerc train` (encoder.onnx, decoder.onnx, model.json).")
@click.option("--lossless", is_flag=True, help="Store every column losslessly (bit-exact).")
@click.option("--error-bound", "bounds", multiple=True, metavar="[GLOBS=]MODE:E",
              help="abs:E (|y-y'|<=E), rel:E (E x column range) or pwrel:E (E x |y|). "
                   "Repeat with column globs to override, e.g. --error-bound pwrel:5e-4 "
                   "--error-bound 'Jet_eta,Jet_phi=abs:1e-3' ('GLOBS=lossless' keeps columns "
                   "exact; the last matching glob wins). Without any, a model's "
                   "reconstruction alone is stored.")
@click.option("--bounds", "bounds_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="TOML file of per-column bounds: \"GLOB\" = \"MODE:E\" or \"lossless\" "
                   "lines (optionally under [bounds]); --error-bound globs override it.")
@click.option("--precision", "precision", default=None, metavar="nanoaod|FILE",
              help="Per-column pointwise bounds from mantissa bits: 'nanoaod' uses NanoAOD's "
                   "per-branch precision (eta/phi 12 bits, mass 10, ...; docs/PRECISION.md); "
                   "a data FILE (often the input itself) uses the bits each float column of "
                   "that file holds (its first 65,536 rows or events), so nothing claims more "
                   "precision than the file has. Columns using every bit stay lossless; the "
                   "other options override it.")
@click.option("--latent-bits", type=click.IntRange(1, 16), default=None,
              help="Latent quantization bits (default: what the model was trained for).")
@tree_option
@columns_option
@click.option("--chunk-rows", type=click.IntRange(1, MAX_CHUNK_ROWS), default=65536,
              show_default=True,
              help="Rows per independent chunk: memory per thread; larger chunks scale "
                   "better on 2+ threads, smaller ones keep small tables parallel.")
@threads_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where ONNX Runtime runs the encoder and decoder (the bound holds on either).")
@click.option("--zstd-level", type=click.IntRange(1, 22), default=None,
              help="zstd effort. Default: 19 for tables under 16 MB (a small file's bytes are "
                   "in its short streams), 3 above. On small tables 19 is most of the time: "
                   "Zmumu (2,304 rows) takes 61 ms at 19, 7 ms at 3 (+10% bytes); use 3 "
                   "where many small tables are written.")
@click.option("--effort", type=click.Choice(["cheap", "exhaustive"]), default="cheap",
              show_default=True, help="How stream encodings are chosen: from statistics of a "
              "sample, or by coding every candidate (slower, ~0-1% smaller).")
@click.option("--entropy", type=click.Choice(["auto", "pcodec", "zstd"]), default="auto",
              show_default=True, help="Integer code streams: pcodec where it packs smaller "
              "(auto), or zstd only: 1.5x faster compress for ~1% more bytes at pwrel, ~8% "
              "at rel (1M dimuons), and files that balerc before pcodec-codes can read.")
@click.option("--no-embed-model", is_flag=True,
              help="Do not embed the decoder; decompress then needs -m MODEL_DIR (hash-checked).")
@click.option("--keep-model", is_flag=True,
              help="Use the model even where its embedded decoder costs more than it saves "
                   "(by default small tables fall back to plain quantization, with a note).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Several inputs (or globs): write OUTPUT_DIR/<name>.balerc for each.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Several inputs: run on this Dask scheduler ('local' starts a local Dask "
                   "cluster; default: $DASK_SCHEDULER_ADDRESS, else a local process pool, "
                   "measured faster on one machine). Use --no-embed-model with a model shared "
                   "by every file.")
@click.option("--skip-unsupported", is_flag=True,
              help="ROOT: compress the tree without branches of types balerc cannot store "
                   "(classes, structs, lists nested three deep), which are then listed in a "
                   "warning and in `balerc info`; without it such branches stop the command "
                   "by name.")
@force_option
@json_option
@click.option("-v", "--verbose", is_flag=True,
              help="Also the per-column error table (and per-section sizes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def compress_cmd(data: tuple[str, ...], output: Path | None, model_dir: Path | None,
                 lossless: bool, bounds: tuple[str, ...], bounds_file: Path | None,
                 precision: str | None, latent_bits: int | None, tree: str | None,
                 columns: tuple[str, ...], chunk_rows: int, threads: int | None, device: str,
                 zstd_level: int | None, effort: str, entropy: str, no_embed_model: bool,
                 keep_model: bool, output_dir: Path | None, scheduler: str | None,
                 skip_unsupported: bool, force: bool, as_json: bool, verbose: bool,
                 quiet: bool) -> None:
    """Compress DATA (.root, .csv, .tsv, .npy, .npz, .parquet; `file.root:tree` picks a
    tree; several files or globs with --output-dir) into .balerc files.

    \b
    A ROOT tree is stored whole: flat branches (counters included) in the section
    'events', each jagged collection (Jet_* counted by nJet, ...) in a section of its own,
    nested vectors and vectors of strings in chained sections, a fixed-size array x as the
    columns x[0], x[1], ... (bounded like any float), strings losslessly; `decompress -o
    out.root` writes the tree back. --columns selects branches (a jagged branch brings its
    counter)."""
    import io

    from balerc.codec import api
    from balerc.codec.many import several
    from balerc.codec.precision import column_bounds_from
    from balerc.formats.fileio import check_output
    from balerc.formats.stream import open_input

    bound, column_bounds = column_bounds_from(bounds, bounds_file, precision, tree)
    _warn_small_chunks(chunk_rows)
    _check_flags(output, model_dir, keep_model, no_embed_model)
    options = dict(model_dir=model_dir, lossless=lossless, bound=bound,
                   column_bounds=column_bounds, latent_bits=latent_bits,
                   chunk_rows=chunk_rows, device=device, zstd_level=zstd_level,
                   embed_model=not no_embed_model, force=force, keep_model=keep_model,
                   effort=effort, entropy=entropy)
    if several(data, output_dir):
        if output is not None:
            raise InputError("several inputs: give --output-dir instead of -o")
        from balerc.codec.many import compress_files

        _many(compress_files, data, output_dir or Path("."),
              dict(options, columns=split_patterns(columns), skip_unsupported=skip_unsupported,
                   tree=tree), threads, scheduler, as_json, quiet, "compressed")
        return
    data_path, tree = _one_input(data[0], tree)
    to_stdout = str(output) == "-"
    output = output or data_path.with_suffix(".balerc")
    if not to_stdout:
        _check_container_name(data_path, output)
        check_output(output, force)
    table = open_input(data_path, tree=tree, columns=split_patterns(columns),
                       allow_skip=skip_unsupported)
    target: Any = io.BytesIO() if to_stdout else output
    result = api.compress_file(table, target, threads=threads,
                               progress=not quiet and not to_stdout, **options)
    if to_stdout:
        sys.stdout.buffer.write(target.getvalue())
        sys.stdout.buffer.flush()
    _report(api.result_json(result) if as_json else None,
            None if quiet else api.format_summary(result, verbose), to_stdout)


@cli.command("decompress")
@click.argument("srcs", metavar="IN...", nargs=-1, required=True)
@click.option("-o", "--output", "output", type=click.Path(path_type=Path),
              help="Output table: .root, .csv, .tsv, .npy, .npz or .parquet (default: IN with "
                   "the extension of the format it was compressed from; '-' writes CSV to "
                   "stdout). IN may be '-' for stdin.")
@click.option("-m", "--model", "model_dir", type=click.Path(path_type=Path),
              help="Model directory, needed only for files written with --no-embed-model.")
@columns_option
@threads_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
              show_default=True, help="Where ONNX Runtime runs the decoder.")
@click.option("--recover", is_flag=True,
              help="For a damaged or unfinished file (a writer that died, a cut download): "
                   "write the rows of its valid chunks before the damage, say how many, and "
                   "exit 0. Without it such a file fails and nothing is written.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Several inputs (or globs): write OUTPUT_DIR/<name>.<source format> each.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Several inputs: run on this Dask scheduler ('local': a local Dask cluster).")
@click.option("--root-compression", default=None, metavar="ALGO[:LEVEL]",
              help="A whole tree written back to .root: zstd:5, lzma:9, zlib:1, lz4:1 or "
                   "none (default: the source tree's own setting, recorded at compression; "
                   "zlib:1 writes at ~1/3 the speed of zstd:1 here).")
@click.option("--root-format", type=click.Choice(["auto", "ttree", "rntuple"]), default="auto",
              show_default=True,
              help="A whole tree written back to .root: auto writes the source's kind (an "
                   "RNTuple source as an RNTuple, a TTree as a TTree); ttree leaves nested "
                   "vectors and vectors of strings out (uproot cannot write them into a TTree; "
                   "named in a warning); rntuple writes every branch, nested ones included.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Stop decoding a file after SECONDS (exit 2, nothing written): for files "
                   "from elsewhere, whose embedded decoder may be slow by design (work is "
                   "bounded per row, not per file). Default: $BALERC_DECODE_TIMEOUT, else none.")
@click.option("--sections", "sections", multiple=True, metavar="NAMES",
              help="Files of a whole ROOT tree: the sections to decode (names or globs, "
                   "comma-separated or repeated; e.g. 'Jet' or 'events,Muon'). A .root output "
                   "takes any set; other formats take one section.")
@force_option
@json_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def decompress_cmd(srcs: tuple[str, ...], output: Path | None, model_dir: Path | None,
                   columns: tuple[str, ...], threads: int | None, device: str, recover: bool,
                   output_dir: Path | None, scheduler: str | None,
                   root_compression: str | None, root_format: str, timeout: float | None,
                   sections: tuple[str, ...], force: bool, as_json: bool, quiet: bool) -> None:
    """Restore a table from a .balerc file (only the file is needed).

    \b
    Exit status: 0 written; 2 bad input or a damaged/unfinished file (nothing written;
    see --recover); 3 an internal error.
    """
    from balerc.codec import api

    kw = dict(model_dir=model_dir, columns=split_patterns(columns), device=device,
              recover=recover, sections=split_patterns(sections, "--sections"),
              timeout=timeout)
    if root_compression is not None:
        kw["root_compression"] = root_compression
    if root_format != "auto":
        kw["root_format"] = root_format
    from balerc.codec.many import several

    if several(srcs, output_dir):
        if output is not None:
            raise InputError("several inputs: give --output-dir instead of -o")
        from balerc.codec.many import decompress_files

        _many(decompress_files, srcs, output_dir or Path("."), dict(kw, force=force), threads,
              scheduler, as_json, quiet, "decompressed")
        return
    src = Path(srcs[0])
    source: Any = sys.stdin.buffer.read() if str(src) == "-" else src
    to_stdout = str(output) == "-"
    if output is None and str(src) == "-":
        api.default_output(source, src)  # refused: stdin has no name to derive one from
    kw["threads"] = threads
    with api.open_balerc(source, recover) as reader:  # once: the name, the kind, the decode
        if output is None:
            output = api.default_output(reader, src)
        if to_stdout:
            table = api.decompress_to_stream(reader, sys.stdout, **kw)
        else:
            table = api.decompress_file(reader, output, force=force,
                                        show_progress=not quiet, **kw)
        rec = reader.recovery  # --recover of a damaged file: said in the JSON too
    info = {"output": str(output), "rows": table.n_rows, "columns": table.n_columns,
            "complete": rec is None}
    if rec is not None:
        info["recovery"] = {"reason": rec.reason, "total_rows": rec.total_rows}
    _report(info if as_json else None,
            None if quiet else f"wrote {output}: {table.n_rows:,} "
            f"{'events' if isinstance(table, api.WrittenTree) else 'rows'}", to_stdout)


def _one_input(spec: str, tree: str | None) -> tuple[Path, str | None]:
    """DATA of a one-file compress (FILE or FILE.root:TREE); stdin is refused by name."""
    from balerc.codec.many import split_spec

    path, spec_tree = split_spec(spec)
    if path == "-":
        raise InputError("compress reads a table from a file, not from stdin: save it first "
                         "(e.g. ... > table.csv; balerc compress table.csv); decompress reads "
                         "a .balerc from stdin with '-'")
    return Path(path), tree or spec_tree


def _check_container_name(source: Path, output: Path) -> None:
    """-o of compress names a .balerc container: never the input itself (with --force it
    had replaced the CSV it read), nor a table format's extension (a binary container
    named out.csv)."""
    from balerc.formats.tableio import SUPPORTED_OUTPUT

    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise InputError(f"-o {output} is the input file; compress writes a separate "
                         f".balerc file (e.g. -o {source.with_suffix('.balerc')})")
    if output.suffix.lower() in SUPPORTED_OUTPUT:
        raise InputError(f"-o {output}: compress writes a .balerc container, not a "
                         f"{output.suffix} table; name it .balerc (decompress writes tables)")


def _many(run: Any, inputs: tuple[str, ...], output_dir: Path, options: dict[str, Any],
          threads: int | None, scheduler: str | None, as_json: bool, quiet: bool,
          verb: str) -> None:
    """Several inputs: one task per file; a failure is named and the others go on."""
    import json

    def done(r: Any) -> None:
        if not quiet and not as_json:
            ratio = f", {r.ratio}x" if r.ratio is not None else ""
            what = f"{r.rows:,} rows{ratio}" if r.ok else f"FAILED: {r.error}"
            click.echo(f"  {r.input} -> {r.output}: {what}", err=True)

    results = run(inputs, output_dir, scheduler=scheduler, workers=threads, progress=done,
                  **options)
    failed = [r for r in results if not r.ok]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results]))
    elif not quiet:
        raw = sum(r.raw_bytes for r in results)
        stored = sum(r.file_bytes for r in results)
        click.echo(f"{len(results) - len(failed)} of {len(results)} files {verb}: "
                   f"{raw:,} raw bytes, {stored:,} bytes stored"
                   + (f" ({raw / stored:.2f}x)" if stored and all(
                       r.ratio is not None for r in results if r.ok) else ""))
    if failed:
        click.echo(f"balerc: error: {len(failed)} file(s) failed: "
                   f"{', '.join(r.input for r in failed)}", err=True)
        sys.exit(2)


def _report(machine: dict[str, Any] | None, human: str | None, data_on_stdout: bool) -> None:
    """JSON for machines (stdout, or stderr when stdout carries the data); text for people
    (stderr)."""
    import json

    if machine is not None:
        click.echo(json.dumps(machine), err=data_on_stdout)
    elif human:  # what happened, not the command's data: stderr, like zstd and xz
        click.echo(human, err=True)


@cli.command("generate")
@click.option("--kind", type=click.Choice(["dimuon", "jets", "gene", "nanoaod"]),
              default="dimuon", show_default=True,
              help="Toy table to generate; 'nanoaod' is a whole NanoAOD-like tree (events "
                   "plus Jet, Muon, Electron, Photon and Tau collections; --rows counts "
                   "events; .root output only).")
@click.option("--rows", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="Rows to generate (events for --kind nanoaod).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed gives the same table on the same CPU.")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Output file; the extension picks the format (.root, .csv, .npz, ...).")
@force_option
def generate_cmd(kind: str, rows: int, seed: int, output: Path, force: bool) -> None:
    """Generate realistic toy collider tables (no download needed)."""
    from balerc.formats import toy
    from balerc.formats.fileio import atomic_output
    from balerc.formats.tableio import write_table

    if kind == "nanoaod":
        from balerc.formats.root_sections import write_root_sections
        from balerc.formats.toy_nano import nanoaod_like

        if output.suffix.lower() != ".root":
            raise InputError(f"cannot write {output}: the nanoaod toy is a tree of several "
                             f"collections; write a .root file")
        tree = nanoaod_like(rows, seed)
        with atomic_output(output, force) as tmp:
            write_root_sections(tree, tmp)
        click.echo(f"wrote {output}: {rows:,} events, {tree.n_columns} branches in "
                   f"{len(tree)} sections (nanoaod, seed {seed})")
        return
    table = toy.generate(kind, rows, seed)
    with atomic_output(output, force) as tmp:
        write_table(table, tmp, fmt=output.suffix.lstrip(".").lower())
    click.echo(f"wrote {output}: {table.n_rows} rows x {table.n_columns} columns ({kind}, seed {seed})")


cli.add_command(info_command)
cli.add_command(evaluate_command)
cli.add_command(compare_command)


def _add_optional_commands() -> None:
    """Commands whose modules need extras register lazily, so `--help` always works."""
    try:
        from .train_cmd import train_command
    except ImportError:
        @cli.command("train", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def train_missing(args: tuple[str, ...]) -> None:
            """Train a model (needs the `train` extra)."""
            raise BalercError("training needs PyTorch: pip install torch==2.13.0 'balerc[train]'")
    else:
        cli.add_command(train_command)
    try:
        from .demo import demo_command
    except ImportError:
        pass
    else:
        cli.add_command(demo_command)


_add_optional_commands()


def _logging() -> None:
    """The `balerc` logger hierarchy (balerc.codec, balerc.train, ...) on stderr: warnings
    by default, more with BALERC_LOG=info|debug; results are never logged, they are output."""
    import logging

    level = os.environ.get("BALERC_LOG", "warning").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("balerc: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger("balerc")
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.WARNING))
    root.propagate = False


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    _logging()
    cli(prog_name="balerc")

