"""File-level entry points used by the CLI: compress a Table to a file, decompress to a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balerc.formats.container import ContainerReader, opened
from balerc.formats.errors import IncompleteFileError, InputError
from balerc.formats.fileio import atomic_output, check_output
from balerc.formats.sections import SectionStream
from balerc.formats.stream import TableStream
from balerc.formats.table import Table
from balerc.formats.tableio import matching, select_names

from . import deadline
from .coders.stats import far_from_data
from .model import ModelBundle
from .options import CompressOptions
from .pipeline import CompressResult, compress_table, default_threads


def compress_file(
    table: Table | TableStream | SectionStream,
    output: str | os.PathLike,
    *,
    model_dir: str | os.PathLike | None = None,
    lossless: bool = False,
    bound: str | None = None,
    threads: int | None = None,
    **options: Any,
) -> CompressResult:
    """Compress `table` into `output`: lossless, or with a model and/or an error bound.

    `options` are CompressOptions fields (chunk_rows, device, zstd_level, embed_model,
    keep_model, latent_bits, force, progress).
    """
    if not isinstance(table, (Table, TableStream, SectionStream)):
        raise InputError(f"compress_file takes a Table, TableStream or SectionStream (e.g. "
                         f"formats.stream.open_input(path)), not a {type(table).__name__}")
    opts = compress_options(model_dir, lossless, bound, threads, options)
    if isinstance(table, SectionStream):
        from .sections import compress_sections, load_models

        models = load_models(model_dir, table.first) if model_dir is not None else {}
        return compress_sections(table, output, opts, models)
    model = ModelBundle.load(model_dir) if model_dir is not None else None
    return compress_table(table, output, opts, model)


def compress_options(model_dir: Any, lossless: bool, bound: str | None, threads: int | None,
                     options: dict[str, Any]) -> CompressOptions:
    """compress_file's arguments checked together (also once, before any file, by the
    many-file driver: a bad option had failed once per file)."""
    if lossless and (model_dir is not None or bound is not None
                     or options.get("column_bounds")):
        raise InputError("--lossless (lossless=True) cannot be combined with -m/--model "
                         "(model_dir=), --error-bound (bound=), --bounds or --precision "
                         "(column_bounds=)")
    if not lossless and model_dir is None and bound is None and not options.get("column_bounds"):
        raise InputError(
            "say how to compress: --lossless (lossless=True), or --error-bound MODE:E "
            "(bound='rel:1e-3'), or -m MODEL_DIR from `balerc train` (model_dir=)"
        )
    return CompressOptions.make(bound, threads=threads, lossless=lossless, **options)


def decompress_file(
    src: str | os.PathLike | bytes | ContainerReader,
    output: str | os.PathLike,
    *,
    model_dir: str | os.PathLike | None = None,
    columns: list[str] | None = None,
    threads: int | None = None,
    device: str = "cpu",
    force: bool = False,
    show_progress: bool = False,
    recover: bool = False,
    sections: list[str] | None = None,
    root_compression: str | None = None,
    root_format: str = "auto",
    timeout: float | None = None,
) -> Table | WrittenTree:
    """Decode `src` and write the table to `output` in the format its extension names.

    A file of several sections (a whole ROOT tree) becomes a ROOT tree again, of the
    source's kind unless `root_format` says "ttree" or "rntuple" (branches a TTree cannot
    take are then left out with a SkippedBranchWarning naming them); to another format
    only one section can go (`sections` picks it, by name or glob).

    A damaged or unfinished file fails before anything is written, unless `recover`: then
    the valid prefix of chunks is written (a RecoveryWarning says how many rows of how
    many), and a file with no complete chunk still fails. `src` may be a reader opened
    with `open_balerc` (the file is then opened once for everything). `timeout` (seconds,
    default BALERC_DECODE_TIMEOUT) limits the whole file's decode: codec/deadline.py.
    """
    from balerc.formats.tableio import SUPPORTED_OUTPUT, write_table

    out = check_output(output, force)
    ext = out.suffix.lower()
    if ext not in SUPPORTED_OUTPUT:
        raise InputError(
            f"cannot write {out}: unsupported extension '{ext or '(none)'}'; "
            f"use one of {', '.join(SUPPORTED_OUTPUT)}"
        )
    _check_root_options(out, root_compression, root_format)
    kw = dict(columns=columns, threads=threads, device=device, model_dir=model_dir,
              show_progress=show_progress)
    with opened(src, recover) as reader, deadline.limit(timeout, _label(reader)):
        if reader.sections is not None:
            return _decompress_sections(reader, out, ext, sections, force,
                                        (root_compression, root_format), **kw)
        if sections:
            raise InputError(f"{_label(reader)} holds one table; --sections applies to files "
                             f"of several")
        table = decompress(reader, **kw)
    if table.n_rows == 0:
        raise IncompleteFileError(f"{_label(reader)}: no complete chunk could be recovered; "
                                  f"nothing written")
    with atomic_output(out, force) as tmp:
        write_table(table, tmp, fmt=ext.lstrip("."), root=(
            _root_codec(root_compression), root_format))
    return table


def open_balerc(src: str | os.PathLike | bytes, recover: bool = False) -> ContainerReader:
    """A .balerc file (a path, or the bytes of stdin) opened once for `default_output` and
    `decompress_file`; close it (a `with` block) when done."""
    return ContainerReader(src, recover=recover)


def _label(reader: ContainerReader) -> str:
    return "<stdin>" if reader.path == "<bytes>" else reader.path


@dataclass
class WrittenTree:
    """What `decompress_file` wrote for a whole tree (streamed: no table in memory)."""

    n_rows: int  # events
    n_columns: int  # stored columns (a fixed-size array counts per element)
    nbytes: int = 0  # decoded bytes of every section (what a Table's nbytes would be)


def pick_section(names: list[str], sections: list[str] | None, label: str, hint: str,
                 alone: bool = False) -> str:
    """The one section `sections` (names or globs) picks, for an output of one table;
    with `alone`, a single section needs no pick."""
    picked = matching(names, sections or [])
    if len(picked) == 1:
        return picked[0]
    if alone and len(names) == 1:
        return names[0]
    raise InputError(f"{label} holds {len(names)} sections ({', '.join(names[:12])}); "
                     f"{hint}")


def _one_section(reader: Any, sections: list[str] | None, columns: list[str] | None,
                 threads: int | None, **runtime: Any) -> Table:
    """One section of a multi-section file as a Table (its own columns only)."""
    from .pipeline import decode_with

    if reader.sections is None:
        raise InputError(f"{reader.path} holds one table; --sections applies to files of "
                         f"several (a whole ROOT tree)")
    names = [s["name"] for s in reader.sections]
    if not sections and columns:  # the sections the columns are in, as a file output picks
        cols = {s["name"]: [c["name"] for c in s["schema"]["columns"]] for s in reader.sections}
        holding = [n for n in names if matching(cols[n], columns)]
        sections = holding if len(holding) == 1 else sections
    name = pick_section(names, sections, reader.path,
                        "pick one with --sections NAME (or write a .root file)")
    view = reader.section(name)
    all_cols = [c["name"] for c in view.header["schema"]["columns"]]
    wanted = None if columns is None else select_names(
        all_cols, columns, f"{reader.path}, section '{name}'", pattern_order=True)
    return decode_with(view, columns=wanted, threads=threads or default_threads(), **runtime)


def _check_root_options(out: Path, compression: str | None, root_format: str) -> None:
    """--root-compression / --root-format: refused when malformed before anything is
    decoded; said, and ignored, for an output that is not .root."""
    if out.suffix.lower() != ".root":
        if compression is not None or root_format != "auto":
            import warnings

            warnings.warn(f"{out}: --root-compression / --root-format apply to .root outputs "
                          f"only; ignored", stacklevel=3)
        return
    from balerc.formats.root_writers import ROOT_FORMATS

    _root_codec(compression)
    if root_format not in ROOT_FORMATS:
        raise InputError(f"--root-format '{root_format}': use one of {', '.join(ROOT_FORMATS)}")


def _root_codec(spec: str | None) -> Any:
    from balerc.formats.root_writers import root_compression

    return root_compression(spec)


def _decompress_sections(reader: ContainerReader, out: Path, ext: str,
                         sections: list[str] | None, force: bool,
                         root: tuple[str | None, str], **kw: Any) -> Table | WrittenTree:
    """A multi-section file to a ROOT tree (or one of its sections to a table); `root`:
    the output's compression and kind (`--root-compression`, `--root-format`)."""
    from balerc.formats.root_writers import root_compression, root_writer, write_root_sections
    from balerc.formats.tableio import write_table

    from .sections import iter_sections, read_sections

    label = _label(reader)
    compression, root_format = root
    if ext == ".root" and not reader.recover:  # step by step: memory of a step
        kw.pop("show_progress")
        steps = iter_sections(reader, sections=sections, **kw)
        first = next(steps)
        events, nbytes = first.n_events, first.nbytes
        codec = root_compression(compression)
        with atomic_output(out, force) as tmp, root_writer(tmp, first, codec, root_format,
                                                           label) as writer:
            writer.extend(first)
            for step in steps:
                writer.extend(step)
                events, nbytes = events + step.n_events, nbytes + step.nbytes
        return WrittenTree(events, first.n_columns, nbytes)
    data = read_sections(reader, sections=sections, **kw)
    if ext == ".root":
        if data.n_events == 0:
            raise IncompleteFileError(f"{label}: no complete event could be recovered"
                                      f"{_lost_sections_hint(reader)}; nothing written")
        with atomic_output(out, force) as tmp:
            write_root_sections(data, tmp, root_compression(compression), root_format, label)
        return WrittenTree(data.n_events, data.n_columns,
                           data.nbytes)  # as the streamed path (the events alone had been)
    table = data[pick_section(data.names, sections, label,
                              f"write a .root file, or pick one section with --sections "
                              f"NAME for {ext}", alone=True)]
    with atomic_output(out, force) as tmp:
        write_table(table, tmp, fmt=ext.lstrip("."))
    return table


def _lost_sections_hint(reader: ContainerReader) -> str:
    """Which sections lost every chunk with a damaged file's end (each event needs its
    objects from all of them), and how to write the ones that survived."""
    names = [s["name"] for s in reader.sections or []]
    kept = {c.section for c in reader.chunks if c.section >= 0}
    lost = [n for i, n in enumerate(names) if i not in kept]
    whole = [n for i, n in enumerate(names) if i in kept]
    if not lost or not whole:
        return ""
    return (f" (section(s) {', '.join(lost[:8])}{' ...' if len(lost) > 8 else ''} lost every "
            f"chunk, and an event needs its objects from each; --recover --sections "
            f"{','.join(whole[:8])} writes what survived)")


def decompress(
    src: str | os.PathLike | bytes,
    *,
    columns: list[str] | None = None,
    threads: int | None = None,
    device: str = "cpu",
    model_dir: str | os.PathLike | None = None,
    show_progress: bool = False,
    recover: bool = False,
    sections: list[str] | None = None,
    timeout: float | None = None,
) -> Table:
    """Decode a .balerc file or bytes into a Table (column globs select columns; of a
    file of several sections, `sections` must pick one). Columns come in the order the
    patterns give; a pattern matching no column is refused."""
    from .pipeline import decode_with

    with opened(src, recover) as reader, deadline.limit(timeout, _label(reader)):
        if reader.sections is not None or sections:
            return _one_section(reader, sections, columns, threads, device=device,
                                model_dir=model_dir, show_progress=show_progress)
        names = [c["name"] for c in reader.header["schema"]["columns"]]
        wanted = None if columns is None else select_names(names, columns, reader.path,
                                                           pattern_order=True)
        return decode_with(reader, columns=wanted, threads=threads or default_threads(),
                           show_progress=show_progress, device=device, model_dir=model_dir)


def format_summary(result: CompressResult, verbose: bool = False) -> str:
    """What `compress` ends with: one line (with -v, also the per-column errors), and any
    notes (a dropped model, the ONNX Runtime provider)."""
    worst = result.worst_over_bound
    secs = result.extra.get("sections")
    what = f"{result.rows:,} events in {len(secs)} sections" if secs else f"{result.rows:,} rows"
    empty = not result.raw_bytes  # a tree without entries: no ratio, no speed to speak of
    lines = [
        f"wrote {result.path or 'stdout'}: {what}, {result.file_bytes:,} bytes"
        + ("" if empty else f", {result.ratio:.2f}x vs raw")
        + (f" ({result.ratio_vs_source:.2f}x vs the input file)"
           if result.ratio_vs_source and not empty else "")
        + (f", worst error {worst:.3f} of the bound" if worst is not None else "")
        + ("" if empty else f", {result.mbps:.{0 if result.mbps >= 1 else 2}f} MB/s")
    ]
    errors: list[dict[str, Any]] = result.extra.get("errors", [])
    unbounded = any("range" in r for r in errors)  # the autoencoder's reconstruction alone
    report = errors if verbose or unbounded else []
    if unbounded:
        lines.extend(_unbounded_table(errors))
        report = []
    if report:
        lines.append(f"  {result.chunks} chunk(s), {result.raw_bytes:,} raw bytes")
        w = max(len(r["name"]) for r in report)
        lines.append(f"  {'column':<{w}}  {'bound':>10} {'max err':>10} {'rms err':>10} {'max/bound':>9}  mode")
        for r in report:
            b, mx, rms = (_num(r.get(k), ".3g") for k in ("bound", "max", "rms"))
            b = r.get("bound_text") or b
            frac = _num(r.get("max_over_bound"), ".3f")
            lines.append(f"  {r['name']:<{w}}  {b:>10} {mx:>10} {rms:>10} {frac:>9}  {r['mode']}")
    if verbose and not errors and not secs:
        lines.append("  every column is stored bit-exact (lossless)")
    if secs and verbose:
        w = max(len(n) for n in secs)
        lines.append(f"  {'section':<{w}}  {'rows':>10} {'raw bytes':>12} {'stored':>10} {'ratio':>7}")
        for n, sec in secs.items():
            ratio = f"{sec['raw_bytes'] / sec['bytes']:.2f}" if sec["bytes"] and sec[
                "raw_bytes"] else "-"  # as info prints an empty section
            lines.append(f"  {n:<{w}}  {sec['rows']:>10,} {sec['raw_bytes']:>12,} "
                         f"{sec['bytes']:>10,} {ratio:>7}")
    for note in result.extra.get("notes", []):
        lines.append(f"  note: {note}")
    for warning in far_from_data(errors):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def _unbounded_table(rows: list[dict[str, Any]]) -> list[str]:
    """Without a bound every column's measured error, relative to its range."""
    w = max(len(r["name"]) for r in rows)
    out = ["  no error bound: measured errors of the reconstruction (relative to each "
           "column's range)",
           f"  {'column':<{w}}  {'max err':>10} {'rms err':>10} {'max/range':>9} "
           f"{'rms/range':>9} {'new sign':>8}  mode"]
    for r in rows:
        rng = r.get("range") or 0.0
        rms_rel = _num(r["rms"] / rng if rng and r.get("rms") is not None else None, ".2%")
        out.append(f"  {r['name']:<{w}}  {_num(r.get('max'), '.3g'):>10} "
                   f"{_num(r.get('rms'), '.3g'):>10} {_num(r.get('max_over_range'), '.2%'):>9} "
                   f"{rms_rel:>9} {r.get('new_sign', 0):>8,}  {r['mode']}")
    return out


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def result_json(result: CompressResult) -> dict[str, Any]:
    """`compress --json`: what a pipeline step wants to record."""
    empty = not result.raw_bytes
    out = {"output": str(result.path) if result.path else "-", "rows": result.rows,
           "chunks": result.chunks, "raw_bytes": result.raw_bytes,
           "file_bytes": result.file_bytes, "ratio": None if empty else round(result.ratio, 4),
           "ratio_vs_source": None if empty or result.ratio_vs_source is None
           else round(result.ratio_vs_source, 4),
           "seconds": round(result.seconds, 3),
           "mb_per_s": None if empty else round(result.mbps, 2),  # raw MB / compress seconds
           "errors": result.extra.get("errors", []), "notes": result.extra.get("notes", []),
           "warnings": far_from_data(result.extra.get("errors", []))}
    secs = result.extra.get("sections")
    if secs:
        out["sections"] = {n: {"rows": s["rows"], "raw_bytes": s["raw_bytes"],
                               "stored_bytes": s["bytes"]} for n, s in secs.items()}
    return out


_SAME_FORMAT = {"csv": (".txt",), "tsv": (".tab", ".txt"), "parquet": (".pq",)}


def default_output(source: str | os.PathLike | bytes | ContainerReader, src: Path) -> Path:
    """x.balerc -> x.<the format it was compressed from> (refused when unknown or stdin);
    `source` may be a reader from `open_balerc`."""
    from balerc.formats.tableio import SUPPORTED_OUTPUT

    if isinstance(source, (bytes, bytearray)) or str(src) == "-":
        raise InputError("reading stdin: say where to write with -o FILE (or -o - for CSV)")
    with opened(source, recover=True) as r:
        src_rec = r.header.get("source") if r.sections is not None else r.header.get(
            "schema", {}).get("source", {})
        fmt = str((src_rec or {}).get("format", ""))
    ext = f".{fmt}"
    named = Path(str((src_rec or {}).get("path", ""))).suffix.lower()  # x.txt, x.pq, x.tab
    if named in _SAME_FORMAT.get(fmt, ()):
        ext = named
    if ext not in SUPPORTED_OUTPUT:
        raise InputError(f"{src} does not record a source format balerc can write "
                         f"({fmt or 'none'}); say where to write with -o FILE")
    return Path(src).with_suffix(ext)


def decompress_to_stream(source: str | os.PathLike | bytes | ContainerReader, stream: Any,
                         **kw: Any) -> Table:
    """Decode and write the table as CSV to a text stream (stdout)."""
    kw.pop("root_compression", None)  # CSV has neither
    kw.pop("root_format", None)
    import shutil
    import tempfile

    from balerc.formats.tableio import write_table

    table = decompress(source, **kw)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "out.csv"
        write_table(table, tmp, fmt="csv")
        with open(tmp, encoding="utf-8", newline="") as f:
            shutil.copyfileobj(f, stream)
    stream.flush()
    return table
