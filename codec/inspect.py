"""Describe a .balerc file for `balerc info` (also usable from Python)."""

from __future__ import annotations

import os
import warnings
from typing import Any

from balerc.formats.container import ContainerReader, RecoveryWarning
from balerc.formats.errors import BalercError, SchemaError
from balerc.formats.sections import EVENTS, chain_up

from . import lossless


def _stream_column(name: str) -> int | None:
    """Streams named '<role>/<schema index>' belong to one column (docs/FORMAT.md)."""
    _, sep, idx = name.rpartition("/")
    return int(idx) if sep and idx.isdigit() else None


def _describe_table(r: ContainerReader, table: Any, summary: dict[str, Any]
                    ) -> dict[str, Any]:
    """Columns, stored bytes per column and shared streams of one table: the file's, or
    one section's (`table` is then a SectionView with the section's header)."""
    header = table.header
    schema = header["schema"]["columns"]
    per_col = [0] * len(schema)
    filters: list[set[str]] = [set() for _ in schema]
    coded = [False] * len(schema)  # codes in a stream of its own ('res/j') in some chunk
    shared: dict[str, int] = {}
    for c in table.chunks:
        for name, s in c.streams.items():
            j = _stream_column(name)
            if j is None or j >= len(schema):
                shared[name] = shared.get(name, 0) + s.size
            else:
                per_col[j] += s.size
                coded[j] = coded[j] or name.startswith("res/")
                if name.startswith("col/"):
                    head = r.read_stream(c.index, name, verify=False)[:1]
                    filters[j].add(lossless.filter_name(head))
    rows = sum(c.rows for c in table.chunks)
    columns = []
    recorded = _recorded_errors(header, summary)
    methods = _methods(header.get("coders", []))
    text = summary.get("text_raw_bytes")
    text = text if isinstance(text, dict) else {}  # (files before 2026-12-02: none)
    for j, col in enumerate(schema):
        width = _itemsize(col["dtype"])
        raw_j = width * rows if width else text.get(col["name"])
        raw_j = raw_j if isinstance(raw_j, int) else None
        entry = {"name": col["name"], "kind": col["kind"], "dtype": col["dtype"],
                 "codec": col.get("codec", "lossless"),
                 "method": methods.get(j, col.get("codec", "lossless")),
                 "filters": sorted(filters[j]),
                 "stored_bytes": per_col[j], "raw_bytes": raw_j,
                 # its codes in the shared streams (qgroup), its own bytes besides (exceptions)
                 "in_shared_streams": bool(shared) and not coded[j]
                 and col.get("codec", "lossless") != "lossless"}
        if col.get("bound"):
            entry["bound"] = col["bound"]
        if col["name"] in recorded:
            entry["max_error"] = recorded[col["name"]]
        columns.append(entry)
    return {"rows": rows, "chunks": len(table.chunks), "chunk_rows": header.get("chunk_rows"),
            "raw_bytes": table_raw_bytes(table), "stored_bytes": sum(per_col) + sum(shared.values()),
            "coders": header.get("coders", []), "shared_streams": shared, "columns": columns}


def table_raw_bytes(table: Any) -> int:
    """Raw bytes of a table's (or a section view's) fixed-width columns over its chunks:
    what its stored bytes are measured against."""
    rows = sum(c.rows for c in table.chunks)
    return sum((_itemsize(c["dtype"]) or 0) * rows for c in table.header["schema"]["columns"])


def _methods(coders: list[dict[str, Any]]) -> dict[int, str]:
    """How each column is coded, in words: the autoencoder coder without a model is plain
    quantization, of log2|y| under a pointwise bound (its schema codec says 'autoencoder'
    either way); compress -v uses the same words."""
    out = {}
    for c in coders:
        if c.get("id") == "autoencoder":
            pw = isinstance(c.get("bound"), dict) and c["bound"].get("mode") == "pwrel"
            how = ("autoencoder" if "autoencoder" in c.get("features", []) else
                   "log-quantized" if pw else "quantized")
            out.update({j: how for j in c.get("columns", []) if isinstance(j, int)})
    return out


def _describe_sections(r: ContainerReader, summary: dict[str, Any]
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each section's description, and the file-level totals (rows: the events')."""
    sections = []
    for k, spec in enumerate(r.sections or []):
        part = _describe_table(r, r.section(k), summary.get("sections", {}).get(spec["name"], {}))
        sections.append({"name": spec["name"], "layout": spec.get("layout", {}), **part})
    main = {"rows": sections[0]["rows"], "chunks": r.n_chunks,
            "chunk_rows": r.header.get("chunk_rows"),
            "raw_bytes": sum(x["raw_bytes"] for x in sections), "coders": [],
            "shared_streams": {}, "columns": []}
    return sections, main


def describe_file(path: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Everything `info` prints, as a JSON-ready dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)  # reported in the description
        reader = ContainerReader(path, recover=True)
    with reader as r:
        header = r.header
        summary = r.footer.get("summary", {})
        if r.sections is not None:
            sections, main = _describe_sections(r, summary)
            source = header.get("source", {})
        elif "schema" not in header:
            raise SchemaError(f"{path}: the header has no table schema: not a balerc table file")
        else:
            sections = None
            source = header["schema"].get("source", {})
            main = _describe_table(r, r, summary)
        damaged = r.verify_chunks() if verify else {}
        problems = [m for msgs in damaged.values() for m in msgs]
        n_chunks = r.n_chunks
        if damaged and r.recovery is None:  # what decompress --recover does: the prefix
            first = next(iter(damaged))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RecoveryWarning)  # reported below
                r.keep_prefix(first, f"chunk {first} is damaged")
        raw = summary.get("raw_bytes", main["raw_bytes"])
        # a file cut short (its total unknown) has sizes that are no ratio of its data
        sized = r.recovery is None or r.recovery.total_rows is not None
        desc = {
            "file": str(path),
            "format_version": ".".join(map(str, r.format_version)),
            "producer": header.get("producer", {}),
            "created": header.get("created"),
            "rows": main["rows"],
            "n_columns": len(main["columns"]) if sections is None else sum(
                len(x["columns"]) for x in sections),
            "chunks": n_chunks,
            "chunk_rows": main["chunk_rows"],
            "file_bytes": r.file_size,
            "raw_bytes": raw,
            "ratio_vs_raw": raw / r.file_size if r.file_size and sized else None,
            "source": {k: source.get(k) for k in ("format", "path", "size", "tree", "title")
                       if k in source},
            "ratio_vs_source": source["size"] / r.file_size if source.get("size") and sized
            else None,
            "coders": main["coders"],
            "shared_streams": main["shared_streams"],
            "attachments": {n: a.size for n, a in r.attachments.items()},
            "columns": main["columns"],
            "complete": not r.recovered,
            "recovery": None if r.recovery is None else _recovery(r, sections is not None),
            "damaged_chunks": sorted(set(r.damaged_chunks) | set(damaged)),
            "checksums": "not checked" if not verify else (
                "damaged" if problems or r.recovered else "ok"),
            "problems": problems,
            "summary": summary,
        }
        if sections is not None:
            desc["sections"] = sections
        desc.update(_tree_notes(sections or [], source))  # a flat tree's other objects too
    return desc


def _recovery(r: ContainerReader, sectioned: bool) -> dict[str, Any]:
    """What `decompress --recover` reads of an incomplete file: rows of the valid chunks;
    of a file of sections, the events whose objects all survived (what it writes)."""
    out: dict[str, Any] = {"reason": r.recovery.reason, "rows": r.recovery.rows,
                           "chunks": r.recovery.chunks, "total_rows": r.recovery.total_rows}
    if sectioned:
        from .sections import recoverable_events

        try:
            out["events"], out["short_sections"] = recoverable_events(r)
        except BalercError as exc:  # counters damaged too: say so rather than guess
            out["events"], out["short_sections"] = 0, []
            out["counters_unreadable"] = str(exc)
    return out


def _tree_notes(sections: list[dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """What a whole tree's file did not store (`skipped`, `other_objects`, `views`) and
    which branches it stores in chained sections (`chained`)."""
    notes = {key: source[key] for key in ("skipped", "other_objects", "views")
             if source.get(key)}
    chained = _chained_branches(sections, source)
    if chained:
        notes["chained"] = chained
    return notes


def _chained_branches(sections: list[dict[str, Any]], source: dict[str, Any]
                      ) -> list[dict[str, Any]]:
    """Branches stored in chained sections (nested vectors, vectors of strings): name,
    kind and the sections from the events down to the values."""
    layouts = {s["name"]: s.get("layout", {}) for s in sections}
    out = []
    for rec in source.get("branches") or []:
        if not isinstance(rec, dict) or rec.get("kind") not in ("nested", "jagged-string"):
            continue
        chain = [name for name, _ in chain_up(layouts, rec.get("section"))]
        top = layouts[chain[-1]].get("counter_section", EVENTS) if chain else None
        path = ([top] if top in layouts else []) + chain[::-1]
        out.append({"name": rec.get("name"), "kind": rec.get("kind"), "sections": path})
    return out


def _recorded_errors(header: dict[str, Any], summary: dict[str, Any]) -> dict[str, float | None]:
    """Max error per lossy column as measured at compression (footer), by column name."""
    by_column = summary.get("max_error_by_column")
    if isinstance(by_column, dict):
        return by_column
    from .pipeline import coder_column_names

    errors = summary.get("max_error")
    for desc in header.get("coders", []):
        if desc.get("id") == "autoencoder" and errors is not None:
            names = coder_column_names(header, desc)
            if len(names) == len(errors):
                return dict(zip(names, errors, strict=True))
    return {}


def _itemsize(dtype: str) -> int | None:
    if dtype == "str":
        return None
    import numpy as np

    return np.dtype(dtype).itemsize


def format_description(d: dict[str, Any]) -> str:
    """Human-readable text of describe_file's dict."""
    lines = [
        f"{d['file']}: balerc format {d['format_version']}, written by balerc "
        f"{d['producer'].get('balerc', '?')} on {d.get('created') or '?'}",
        f"  rows {d['rows']:,} in {d['chunks']} chunk(s) of up to {d['chunk_rows']:,}"
        + (" (the whole chunks left: the total is unknown)"
           if (d.get("recovery") or {"total_rows": 0})["total_rows"] is None else "")
        + f"; {d['n_columns']} columns",
        f"  size {d['file_bytes']:,} bytes; raw {d['raw_bytes']:,} bytes; " + (
            f"ratio {d['ratio_vs_raw']:.2f}x vs raw" if d.get("ratio_vs_raw") is not None
            else "no ratio: the file is cut short")
        + (f", {d['ratio_vs_source']:.2f}x vs the source file" if d.get("ratio_vs_source") else ""),
    ]
    src = d.get("source") or {}
    if src:
        lines.append("  source " + ", ".join(f"{k}={v}" for k, v in src.items()))
    lines += _coder_lines(d.get("coders", []))
    rec = d.get("recovery")
    lines.append(f"  checksums {d['checksums']}" + ("" if rec is None else _recovery_text(rec)))
    lines += [f"    {p}" for p in d.get("problems", [])]
    for sec in d.get("sections", []):
        lines.append(_section_line(sec))
        lines += ["  " + x for x in _coder_lines(sec.get("coders", []))]
        lines += ["  " + x for x in _column_lines(sec["columns"])]
        lines += ["  " + x for x in _stream_lines(sec.get("shared_streams", {}), {})]
    lines += _tree_lines(d)
    lines += _column_lines(d["columns"]) if d["columns"] else []
    lines += _stream_lines(d.get("shared_streams", {}), d.get("attachments", {}))
    return "\n".join(lines)


def _recovery_text(rec: dict[str, Any]) -> str:
    """' (incomplete: why; what decompress --recover reads)'."""
    text = f" (incomplete: {rec['reason']}; decompress --recover reads "
    if "events" not in rec:
        return text + f"{rec['rows']:,} rows in {rec['chunks']} valid chunk(s))"
    text += f"{rec['events']:,} complete events"
    if rec.get("counters_unreadable"):
        return text + f"; the counters are unreadable: {rec['counters_unreadable']})"
    short = rec["short_sections"]
    return text + (f"; section(s) {', '.join(short[:8])} are cut short, {short[0]} first)"
                   if short else ")")


def _coder_lines(coders: list[dict[str, Any]]) -> list[str]:
    """One line per coder: what it covers and its settings (not the per-column lists)."""
    lines = []
    for c in coders:
        extra = {k: v for k, v in c.items() if k not in (
            "columns", "id", "model", "decoder_onnx", "abs_bounds", "features")}
        plain = {"quantized", "log-quantized"} & set(_methods([c]).values())
        how = f" (no model: {plain.pop()})" if plain else ""
        lines.append(f"  coder {c['id']}{how} over {len(c.get('columns', []))} column(s) "
                     f"{extra if extra else ''}".rstrip())
    return lines


def _section_line(sec: dict[str, Any]) -> str:
    lay = sec.get("layout", {})
    tie = f", counted by {lay['counter']}" if lay.get("counter") else ""
    if lay.get("counter") and lay.get("counter_section", EVENTS) != EVENTS:
        tie += f" of section {lay['counter_section']}"
    ratio = (f"{sec['raw_bytes'] / sec['stored_bytes']:.2f}x"
             if sec["stored_bytes"] and sec["raw_bytes"] else "-")
    return (f"  section {sec['name']}: {sec['rows']:,} rows in {sec['chunks']} chunk(s)"
            f"{tie}; {sec['stored_bytes']:,} bytes, {ratio}")


def _tree_lines(d: dict[str, Any]) -> list[str]:
    """What a whole tree's file stores in chained sections and what it left out."""
    lines = []
    if d.get("chained"):
        lines.append("  nested branches in chained sections: " + ", ".join(
            f"{c['name']} ({c['kind']}: {' -> '.join(c['sections'])})" for c in d["chained"]))
    for key, label in (("skipped", "branches NOT stored"), ("other_objects", "objects NOT stored"),
                       ("views", "RNTuple views stored field by field")):
        if d.get(key):
            names = ", ".join(x if isinstance(x, str) else f"{x['name']} ({x.get('type') or x.get('class')})"
                              for x in d[key])
            lines.append(f"  {label}: {names}")
    return lines


def _stream_lines(shared: dict[str, int], attachments: dict[str, int]) -> list[str]:
    """Attachments and the streams that serve several columns (their bytes are not in
    any one column's count)."""
    w = max([len(n) for n in [*attachments, *shared]] + [6]) + 2
    lines = [f"  {'<' + name + '>':<{w}}  attachment {size:>29,}"
             for name, size in attachments.items()]
    lines += [f"  {'[' + name + ']':<{w}}  shared stream {size:>26,}  (several columns' codes)"
              for name, size in shared.items()]
    return lines


def _column_lines(columns: list[dict[str, Any]]) -> list[str]:
    """The column table; a lossy column whose codes are in the table's shared streams
    (`in_shared_streams`, listed after it) shows 'shared' (or its own bytes '+shared')."""
    w = max([len(c["name"]) for c in columns] + [6])
    bounds = any(c.get("bound") for c in columns)
    lines = [f"  {'column':<{w}}  {'kind':<6} {'dtype':<5} {'codec':<12} {'bytes':>10} "
             f"{'ratio':>7}  {'max error':>10}  " + ("bound          " if bounds else "")
             + "filters"]
    for c in columns:
        in_shared = c["in_shared_streams"]
        ratio = (f"{c['raw_bytes'] / c['stored_bytes']:.2f}x"
                 if c["raw_bytes"] and c["stored_bytes"] and not in_shared else "-")
        err = "0 (exact)" if c["codec"] == "lossless" else (
            f"{c['max_error']:.4g}" if c.get("max_error") is not None else "-")
        stored = (f"{c['stored_bytes']:,}+shared" if c["stored_bytes"] else "shared"
                  ) if in_shared else f"{c['stored_bytes']:,}"
        stored = f"{stored:>10}"
        lines.append(
            f"  {c['name']:<{w}}  {c['kind']:<6} {c['dtype']:<5} "
            f"{c.get('method', c['codec']):<12} {stored} {ratio:>7}  {err:>10}  "
            + (f"{c.get('bound', '-'):<15}" if bounds else "") + ",".join(c["filters"]))
    return lines
