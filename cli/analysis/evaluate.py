"""`balerc evaluate`: compare a table with its decompressed .balerc file, numbers and figures.

The work is split so that the numbers (summary.json) never depend on plotting: `summarize`
computes everything, `render` draws from those numbers, `write_reports` writes the files.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from balerc.codec.pipeline import coder_column_names
from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.formats.tableio import list_names

from . import figures, fourvec, metrics, peakfit, report

MAX_CORRELATION_JSON = 60  # matrices beyond this many columns are summarized, not listed
MAX_OBJECTS = 8  # four-vectors whose masses are drawn (each is one figure)
MAX_BOXES = 100  # columns drawn in the residual box plot (all are in summary.json)


@dataclass
class EvaluateOptions:
    """Everything `evaluate` can be asked for; the CLI fills it from its options."""

    fmt: str = "png"
    model_dir: Path | None = None
    four_vectors: list[str] | None = None
    mass_window: tuple[float, float] | None = None
    max_column_plots: int = 30
    force: bool = False
    style: str = "auto"  # figures.STYLES: mplhep's ROOT style when installed, or forced
    peak_shape: str = "gauss"  # peakfit.SHAPES
    labels: dict[str, str] = field(default_factory=dict)  # 'data' / 'file' in the report
    given: dict[str, str] = field(default_factory=dict)  # ... as given, for error messages
    # the raw bytes of every column the file (or section) holds, when --columns picked some:
    # the ratio is then the file's, not its bytes against the picked columns' raw bytes
    whole_raw: int | None = None
    data_size: int | None = None  # DATA's file size, to say when FILE records another source
    section: str | None = None  # the section of FILE evaluated (its bytes are the section's)


# ------------------------------------------------------------------------ inputs


def read_header(path: str | os.PathLike, section: str | None = None
                ) -> tuple[dict[str, Any], int, int]:
    """The container's JSON header, its size in bytes (for the ratio) and the raw bytes of
    all its columns; of a file of several sections, the section's header, the bytes of its
    chunks' streams and its columns' raw bytes."""
    import balerc.codec.reader  # noqa: F401  (registers the container features)
    from balerc.codec.inspect import table_raw_bytes
    from balerc.formats.container import ContainerReader

    with ContainerReader(Path(path)) as reader:
        if reader.sections is None:
            if section is not None:
                raise InputError(f"{path} holds one table; --section applies to files of a "
                                 f"whole ROOT tree")
            return reader.header, int(reader.file_size), table_raw_bytes(reader)
        if section is None:
            names = [s["name"] for s in reader.sections]
            raise InputError(f"{path} holds {len(names)} sections ({', '.join(names[:12])}); "
                             f"evaluate one with --section NAME")
        view = reader.section(section)
        return (view.header, sum(s.size for c in view.chunks for s in c.streams.values()),
                table_raw_bytes(view))


def _only_section(path: Path) -> str | None:
    """The section of a file of exactly one (a flat tree with fixed-size arrays, an empty
    tree): no --section needed for it."""
    import balerc.codec.reader  # noqa: F401  (registers the container features)
    from balerc.formats.container import ContainerReader

    with ContainerReader(Path(path)) as reader:
        names = [s["name"] for s in reader.sections or []]
    return names[0] if len(names) == 1 else None


def read_section(path: Path, section: str, tree: str | None, columns: list[str] | None
                 ) -> Table:
    """One section of a whole ROOT tree, as `compress` stored it (all its rows)."""
    from balerc.formats.root_sections import open_root_sections
    from balerc.formats.table import concat

    stream = open_root_sections(path, tree=tree, columns=columns, allow_skip=True)
    if section not in stream.first.names:
        raise InputError(f"{path} has no section '{section}'; it has {stream.first.names}")
    return concat([step[section] for step in stream.steps(1 << 17)])


def check_pairing(data: Table, decoded: Table, data_name: str, file_name: str) -> None:
    """Refuse a FILE that was not made from DATA, with one line saying what differs."""
    what = f"{file_name} does not belong to {data_name}"
    if decoded.n_rows != data.n_rows:
        raise InputError(f"{what}: it has {decoded.n_rows:,} rows, DATA has {data.n_rows:,}")
    missing = [n for n in decoded.names if n not in data]
    if missing:
        raise InputError(f"{what}: its column(s) {list_names(missing)} are not in DATA "
                         f"(DATA has {list_names(data.names)})")
    kinds = [f"'{n}' is {decoded.kind(n)} in the file but {data.kind(n)} in DATA"
             for n in decoded.names if decoded.kind(n) != data.kind(n)]
    if kinds:
        raise InputError(f"{what}: column {'; '.join(kinds)}")
    for n in decoded.names:
        if decoded.kind(n) != "float":
            differ = int(np.count_nonzero(np.asarray(decoded[n] != data[n])))
            if differ:
                raise InputError(f"{what}: column '{n}' (stored losslessly) differs in "
                                 f"{differ:,} of {data.n_rows:,} rows")


def column_bounds(header: dict[str, Any], decoded: Table) -> tuple[dict[str, metrics.ColumnBound], str | None]:
    """Each float column's promise as recorded in the file, and the file's bound text."""
    out = {n: metrics.ColumnBound(None, None) for n in decoded.names_of_kind("float")}
    texts: dict[str, int] = {}  # each bound and its columns (per-column bounds: several)
    for coder in header.get("coders", []):
        cols = coder_column_names(header, coder)
        if coder.get("id") == "lossless":
            out.update({c: metrics.ColumnBound("lossless", 0.0) for c in cols if c in out})
            continue
        b = coder.get("bound")
        absb = coder.get("abs_bounds") or [None] * len(cols)
        if b:
            text = f"{b['mode']}:{b['value']:g}"
            texts[text] = texts.get(text, 0) + sum(c in out for c in cols)
            for c, e in zip(cols, absb, strict=True):
                if c in out:
                    out[c] = metrics.ColumnBound(
                        "pwrel", float(b["value"])) if b["mode"] == "pwrel" else metrics.ColumnBound(
                        b["mode"], None if e is None else float(e))
        else:  # pure autoencoder: only the anchors were quantized, at the training bound
            anchors = set((coder.get("model") or {}).get("anchors", []))
            for c, e in zip(cols, absb, strict=True):
                if c in out and c in anchors and e is not None:
                    out[c] = metrics.ColumnBound("abs", float(e))
    if len(texts) > 1:  # the first coder's bound alone had been reported as the file's
        return out, ", ".join(f"{t} ({n} column{'s' if n != 1 else ''})"
                              for t, n in texts.items())
    return out, next(iter(texts), None)


def read_loss_curve(model_dir: Path) -> dict[str, list[float]] | None:
    """epoch / train_loss / val_loss columns of MODEL_DIR/loss_curve.csv, or None if absent
    or not a table of numbers (the report then says so)."""
    path = model_dir / "loss_curve.csv"
    if not path.exists():
        return None
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        cols = [c for c in ("epoch", "train_loss", "val_loss") if rows and c in rows[0]]
        return {c: [float(r[c]) for r in rows] for c in cols}
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error):
        return None


# ------------------------------------------------------------------------ numbers


def _correlation(data: Table, decoded: Table, floats: list[str], notes: list[str]) -> dict[str, Any]:
    """Correlation matrices before and after, so a reader sees whether compression bent the
    relations between columns; large matrices are reduced to their worst pair (appends notes)."""
    corr: dict[str, Any] = {"columns": floats}
    if len(floats) < 2:
        corr.update(max_abs_diff=None, worst_pair=None)
        notes.append("fewer than two float columns: no correlation matrix")
        return corr
    c0 = metrics.correlation(data.to_numpy(floats))
    c1 = metrics.correlation(decoded.to_numpy(floats))
    d = np.abs(c1 - c0)
    worst = np.unravel_index(np.nanargmax(d), d.shape) if np.isfinite(d).any() else (0, 0)
    corr.update(max_abs_diff=float(np.nanmax(d)) if np.isfinite(d).any() else None,
                worst_pair=[floats[worst[0]], floats[worst[1]]])
    if len(floats) <= MAX_CORRELATION_JSON:
        corr.update(before=c0.tolist(), after=c1.tolist(), diff=(c1 - c0).tolist())
    else:
        notes.append(f"correlation matrices of {len(floats)} columns are drawn but not "
                     f"listed in summary.json (limit {MAX_CORRELATION_JSON})")
    return corr


def _four_vectors(data: Table, floats: list[str], opts: EvaluateOptions, notes: list[str]) -> list[Any]:
    """The four-vectors whose masses can be compared: those given explicitly must all be in the
    file (an error otherwise), guessed ones are dropped quietly with a note (appends notes)."""
    fvs, fv_notes = fourvec.resolve(data, opts.four_vectors)
    notes += fv_notes
    for fv in list(fvs):
        absent = [c for c in fv.columns if c not in floats]
        if absent and opts.four_vectors:
            raise InputError(f"--four-vector {fv.label}: column(s) {absent} are not float "
                             f"columns of {opts.given.get('file', 'FILE')}")
        if absent:
            fvs.remove(fv)
            notes.append(f"four-vector {fv.label} skipped: {absent} not in the file")
    if len(fvs) > MAX_OBJECTS:
        notes.append(f"{len(fvs)} four-vectors found: masses for the first {MAX_OBJECTS} only")
        fvs = fvs[:MAX_OBJECTS]
    return fvs


def _masses(data: Table, decoded: Table, fvs: list[Any], opts: EvaluateOptions, notes: list[str]
            ) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]], str | None]:
    """Mass comparisons per quantity, the arrays to draw them, and the primary quantity; a mass
    needs at least two objects, so fewer give none (appends notes)."""
    masses: dict[str, Any] = {}
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    primary = None
    if not fvs:
        notes.append("no four-vector columns found (give them with --four-vector): no masses")
    elif len(fvs) == 1:
        notes.append(fourvec.single_object_note(fvs[0]))
    else:
        before = fourvec.mass_quantities(data, fvs)
        after = fourvec.mass_quantities(decoded, fvs)
        primary = fourvec.primary_mass(list(before))
        for q, m in before.items():
            window = opts.mass_window if (q == primary and opts.mass_window) else peakfit.find_window(m)
            masses[q] = metrics.mass_comparison(m, after[q], window, shape=opts.peak_shape)
            arrays[q] = (m, after[q])
    return masses, arrays, primary


def _plot_limit_notes(floats: list[str], opts: EvaluateOptions, notes: list[str]) -> None:
    """Say when figures show fewer columns than the tables, so no column seems missing."""
    if len(floats) > MAX_BOXES:
        notes.append(f"the residual box plot shows the first {MAX_BOXES} of {len(floats)} columns")
    n_plot = min(len(floats), opts.max_column_plots)
    if n_plot < len(floats):
        notes.append(f"per-column figures for the first {n_plot} of {len(floats)} float columns "
                     f"(--max-column-plots); every column is in the tables")


def _check_model_of(header: dict[str, Any], opts: EvaluateOptions) -> None:
    """--model must be the model the file was compressed with (its decoder's sha256, as
    decompress -m checks): another model's training curve had been reported as this
    file's."""
    from balerc.codec.model import ModelBundle, sha256

    assert opts.model_dir is not None
    want = {c.get("decoder_sha256") for c in header.get("coders", []) if c.get("model")}
    have = sha256(ModelBundle.load(opts.model_dir).decoder)
    if have not in want:
        raise InputError(f"--model {opts.given.get('model', opts.model_dir)}: its decoder "
                         f"(sha256 {have[:16]}...) is not the one "
                         f"{opts.given.get('file', file_label(opts))} was compressed with; give "
                         f"that model's directory, or leave out --model")


def _loss_summary(header: dict[str, Any], opts: EvaluateOptions, notes: list[str]
                  ) -> dict[str, Any] | None:
    """The training loss curve and its final/best values, only when a model directory is given
    and the file really uses a model (appends notes)."""
    if opts.model_dir is None:
        return None
    if not any(c.get("model") for c in header.get("coders", [])):
        notes.append(f"{file_label(opts)} does not use a model (compress stored it without "
                     f"one): no training section")
        return None
    _check_model_of(header, opts)
    loss = read_loss_curve(opts.model_dir)
    if loss is None:
        notes.append(f"{opts.model_dir}/loss_curve.csv not found or unreadable: no loss "
                     f"curve")
    elif loss.get("val_loss") or loss.get("train_loss"):
        key = "val_loss" if loss.get("val_loss") else "train_loss"
        loss.update(epochs=len(loss["epoch"]), final_train=(loss.get("train_loss") or [None])[-1],
                    final_val=(loss.get("val_loss") or [None])[-1], best=min(loss[key]))
    return loss


def _file_info(data: Table, decoded: Table, header: dict[str, Any], file_bytes: int,
               bound_text: str | None, opts: EvaluateOptions) -> dict[str, Any]:
    """The compressed file's size, ratio against the raw columns it holds, bound and coders."""
    raw = opts.whole_raw or data.select(decoded.names).nbytes
    return {"path": opts.labels.get("file"), "bytes": file_bytes, "section": opts.section,
            "raw_bytes": raw, "ratio": raw / file_bytes if file_bytes else None,
            "ratio_of": "the whole file (--columns picked some of its columns)"
            if opts.whole_raw else "the file",
            "bound": bound_text, "coders": [c.get("id") for c in header.get("coders", [])],
            "columns": decoded.n_columns}


def _source_notes(header: dict[str, Any], opts: EvaluateOptions) -> list[str]:
    """A FILE that records another source than DATA (rows and columns may still agree, and
    its bounds then come from other data's ranges): said, not refused."""
    src = header.get("source") or header.get("schema", {}).get("source", {})
    size, path = src.get("size"), src.get("path")
    if opts.data_size is None or not isinstance(size, int) or size == opts.data_size:
        return []
    name = Path(str(path)).name if path else "another file"
    return [f"{file_label(opts)} was compressed from {name} ({size:,} bytes), DATA has "
            f"{opts.data_size:,} bytes: is FILE from this DATA? (its bounds follow its "
            f"source's ranges)"]


def summarize(data: Table, decoded: Table, header: dict[str, Any], file_bytes: int,
              opts: EvaluateOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every number of the report, and the arrays the figures need (masses per quantity)."""
    floats = decoded.names_of_kind("float")
    bounds, bound_text = column_bounds(header, decoded)
    source_note = _source_notes(header, opts)
    notes: list[str] = list(source_note)
    cols = {n: metrics.column_stats(data[n], decoded[n], bounds[n]) for n in floats}
    held = [c["held"] for c in cols.values() if c["held"] is not None]
    unit = "bound" if all(b.mode in ("abs", "rel", "pwrel") for b in bounds.values()) else "range"
    boxes = [metrics.box_stats(metrics.scaled_residual(data[n], decoded[n], bounds[n], unit), n)
             for n in floats]
    corr = _correlation(data, decoded, floats, notes)
    fvs = _four_vectors(data, floats, opts, notes)
    masses, arrays, primary = _masses(data, decoded, fvs, opts, notes)
    _plot_limit_notes(floats, opts, notes)
    loss = _loss_summary(header, opts, notes)
    summary = {
        "data": {"path": opts.labels.get("data"), "rows": data.n_rows, "columns": data.n_columns},
        "file": _file_info(data, decoded, header, file_bytes, bound_text, opts),
        "float_columns": floats,
        "columns": cols,
        "all_held": all(held) if held else None,
        "unbounded": [n for n, c in cols.items() if c["held"] is None],  # no bound to hold
        "boxplot": {"unit": unit, "boxes": boxes},
        "correlation": corr,
        "four_vectors": [{"label": f.label, "kind": f.kind, "columns": list(f.columns)} for f in fvs],
        "units": units_of(fvs, floats),
        "primary_mass": primary,
        "relative_mass_difference": masses[primary]["relative_mass_difference"] if primary else None,
        "masses": masses,
        "loss_curve": loss,
        "max_column_plots": opts.max_column_plots,
        "format": opts.fmt,
        "style": opts.style,
        "notes": notes,
        "source_mismatch": source_note[0] if source_note else None,
    }
    summary["headline"] = headline(summary)
    return summary, arrays


ENERGY_ROLES = ("E", "px", "py", "pz", "pt", "m")


def units_of(fvs: list[Any], floats: list[str]) -> dict[str, str]:
    """Units of recognised four-vector components: GeV for energies, momenta and masses
    (the HEP convention of ROOT and NanoAOD files), rad for phi; others have none. An
    object confirmed in one form (E,px,py,pz) lends units to its other columns found by
    name (pt, phi of the same label)."""
    from balerc.train.fourvec import from_names

    labels = {fv.label for fv in fvs}
    groups = [*fvs, *(g for g in from_names(floats) if g.label in labels)]
    out = {}
    for fv in groups:
        for role, col in fv.cols.items():
            if role in ENERGY_ROLES:
                out[col] = "GeV"
            elif role == "phi":
                out[col] = "rad"
    return out


def file_label(opts: EvaluateOptions) -> str:
    return opts.labels.get("file", "FILE")


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The four answers a reader wants first: ratio, bound held, mass shift, worst column."""
    cols = summary["columns"]
    bounded = {n: c for n, c in cols.items() if c["max_over_bound"] is not None}
    if bounded:
        worst = max(bounded, key=lambda n: bounded[n]["max_over_bound"])
        worst_text = f"{worst}: max error {bounded[worst]['max_over_bound']:.3f} of its bound"
        free = {n: c for n, c in cols.items() if n not in bounded}
        if free:  # columns the model reconstructs with no bound (Baler's mode) have errors too
            loose = max(free, key=lambda n: free[n]["max_err_rel"])
            worst_text += (f"; unbounded column {loose}: max error "
                           f"{free[loose]['max_err_rel']:.3g} of its range")
    else:
        worst = max(cols, key=lambda n: cols[n]["max_err_rel"])
        worst_text = f"{worst}: max error {cols[worst]['max_err_rel']:.3g} of its range"
    changes = {k: sum(c[k] for c in cols.values()) for k in ("became_zero", "sign_changed",
                                                               "left_range")}
    out: dict[str, Any] = {"ratio": summary["file"]["ratio"],
                           "ratio_of": summary["file"].get("ratio_of", "the file"),
                           "bound": summary["file"]["bound"],
                           "held": summary["all_held"], "worst_column": worst,
                           "worst_text": worst_text, "changes": changes, "mass": None}
    q = summary["primary_mass"]
    if q:
        mc = summary["masses"][q]
        # in the fit window when there is one: far below a peak, masses near 0 make the
        # relative difference of a few events dominate the mean and RMS
        pe = mc["per_event_window"] or mc["per_event"]
        out["mass"] = {"quantity": q, "per_event_mean": pe["mean"], "per_event_rms": pe["rms"],
                       "per_event_where": "in the fit window" if mc["per_event_window"] else
                       "all events", "shift": mc["peak_shift"],
                       "shift_err": mc["peak_shift_err"], "sigmas": mc["peak_shift_sigmas"],
                       "flag": mc["shift_exceeds_error"], "note": mc["fit_note"]}
    return out


# ------------------------------------------------------------------------ figures and files


def slug(text: str) -> str:
    """A file-name-safe form of a column or mass label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def figure_names(summary: dict[str, Any]) -> list[str]:
    """The figure names the report will contain, in order (also what tests expect): the
    masses first (the headline), then all-column views, then each column, then training."""
    names = [f"mass_{slug(q.removeprefix('m(').removesuffix(')'))}" for q in summary["masses"]]
    names.append("residuals_boxplot")
    if len(summary["float_columns"]) >= 2:
        names.append("correlation")
    seen: set[str] = set()
    for n in summary["float_columns"][: summary["max_column_plots"]]:
        s = f"column_{slug(n)}"
        while s in seen:
            s += "_"
        seen.add(s)
        names.append(s)
    if summary["loss_curve"]:
        names.append("loss_curve")
    return names


def render(summary: dict[str, Any], data: Table, decoded: Table,
           arrays: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path) -> list[dict[str, Any]]:
    """Draw every figure into out_dir (PNGs or report.pdf); returns the pages for the HTML."""
    names = iter(figure_names(summary))
    floats = summary["float_columns"]
    with figures.sink(out_dir, summary["format"], "report.pdf", summary["style"]) as s:
        for q, (m, m2) in arrays.items():
            s.add(figures.mass_figure(q, m, m2, summary["masses"][q]), next(names), f"mass {q}")
        s.add(figures.boxplot_figure(summary["boxplot"]["boxes"][:MAX_BOXES], summary["boxplot"]["unit"]),
              next(names), "residuals of all columns")
        if len(floats) >= 2:
            c0 = metrics.correlation(data.to_numpy(floats))
            c1 = metrics.correlation(decoded.to_numpy(floats))
            s.add(figures.correlation_figure(c0, c1, floats), next(names), "correlation matrices")
        for n in floats[: summary["max_column_plots"]]:
            s.add(figures.column_figure(n, data[n], decoded[n], summary["columns"][n],
                                        summary["units"].get(n)), next(names), f"column {n}")
        if summary["loss_curve"]:
            s.add(figures.loss_figure(summary["loss_curve"]), next(names), "training loss curve")
    summary["figures"] = [{"name": p["name"], "title": p["title"], "file": p["file"]} for p in s.pages]
    summary["figure_files"] = s.files
    return s.pages


def headline_lines(summary: dict[str, Any]) -> list[str]:
    """The report's first lines (also what `balerc evaluate` prints)."""
    h, num = summary["headline"], report.num
    held = {True: "yes", False: "NO", None: "no bound in the file"}[h["held"]]
    free = summary.get("unbounded") or []
    if h["held"] is not None and free:
        held += f" ({len(free)} column(s) without a bound: {', '.join(free[:5])}" + (
            ", ...)" if len(free) > 5 else ")")
    whole = " (whole file)" if h.get("ratio_of", "the file") != "the file" else ""
    lines = [f"ratio {num(h['ratio'], '.3f')}{whole} at bound {h['bound'] or 'none'}; every value "
             f"within its bound: {held}", f"worst column {h['worst_text']}"]
    m = h["mass"]
    if m:
        text = (f"{m['quantity']}: per-event (M'-M)/M {m['per_event_where']} mean "
                f"{num(m['per_event_mean'], '.3g')}, RMS {num(m['per_event_rms'], '.3g')}")
        if m["shift"] is not None:
            text += (f"; fitted peak shift {m['shift']:+.3g} ± {m['shift_err']:.2g} GeV "
                     f"({m['sigmas']:+.2f} σ)")
            if m["flag"]:
                text += ": EXCEEDS the statistical error of the fit"
        elif m["note"]:
            text += f"; no peak fit ({m['note']})"
        lines.append(text)
    c = h["changes"]
    if any(c.values()):
        lines.append(f"values that became 0: {c['became_zero']:,}; changed sign: "
                     f"{c['sign_changed']:,}; left the original range: {c['left_range']:,}")
    if summary.get("source_mismatch"):
        lines.append(f"note: {summary['source_mismatch']}")
    return lines


def _tables(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables (shared by summary.md and report.html), only those with content."""
    num = report.num
    f, d = summary["file"], summary["data"]
    overview = [
        ["DATA", str(d["path"])], ["FILE", str(f["path"])], ["rows", num(d["rows"], ",")],
        ["bound", f["bound"] or "none (see per-column)"],
        [f"section {f['section']}'s bytes" if f.get("section") else "file bytes",
         num(f["bytes"], ",")], ["raw bytes (same columns)" if f.get("ratio_of", "the file") == "the file"
                      else "raw bytes (all the file's columns)", num(f["raw_bytes"], ",")],
        ["ratio", num(f["ratio"], ".3f")], ["every value within its bound", num(summary["all_held"])],
        ["max correlation change", num(summary["correlation"]["max_abs_diff"], ".3g")],
    ]
    out = []
    masses = _mass_rows(summary)
    if masses:
        out.append(("Invariant masses", ["mass", "per-event mean (M'-M)/M (fit window)", "RMS",
                                          "16%..84%",
                                          "fit window [GeV]", "peak before [GeV]", "peak after [GeV]",
                                          "shift / stat. error", "note"], masses))
    out.append(("Overview", ["quantity", "value"], overview))
    out.append(("Float columns (residual r = y' - y, response = r / y)", COLUMN_HEADER,
                [_column_row(n, c, summary["units"].get(n)) for n, c in summary["columns"].items()]))
    if summary["loss_curve"] and "epochs" in summary["loss_curve"]:
        lc = summary["loss_curve"]
        out.append(("Training", ["epochs", "final train loss", "final val loss", "best loss"],
                    [[num(lc["epochs"]), num(lc["final_train"]), num(lc["final_val"]), num(lc["best"])]]))
    return out


COLUMN_HEADER = ["column", "unit", "bound mode", "bound", "mean r", "RMS r", "max |r|",
                 "max |r|/bound", "at bound", "became 0", "sign changed", "left range",
                 "RMS response", "held"]


def _column_row(n: str, c: dict[str, Any], unit: str | None) -> list[str]:
    num = report.num
    return [n, unit or "", c["bound_mode"] or "none", num(c["bound"], ".4g"),
            num(c["residual"]["mean"], ".3g"), num(c["residual"]["rms"], ".3g"),
            num(c["residual"]["max_abs"], ".3g"), num(c["max_over_bound"], ".4f"),
            num(c.get("at_bound"), ".2%"), num(c["became_zero"], ","),
            num(c["sign_changed"], ","), num(c["left_range"], ","),
            num(c["response"]["rms"], ".3g"), num(c["held"])]


def _mass_rows(summary: dict[str, Any]) -> list[list[str]]:
    num = report.num
    rows = []
    for q, mc in summary["masses"].items():
        fb, fa, pe = mc["fit_before"], mc["fit_after"], mc["per_event_window"] or mc["per_event"]
        qs = pe.get("quantiles") or {}
        sig = mc["peak_shift_sigmas"]
        rows.append([q, num(pe["mean"], ".3g"), num(pe["rms"], ".3g"),
                     f"{num(qs.get('0.16'), '.3g')}..{num(qs.get('0.84'), '.3g')}",
                     "-" if not mc["window"] else f"{mc['window'][0]:.4g}..{mc['window'][1]:.4g}",
                     "-" if not fb else f"{fb['mean']:.6g} ± {fb['mean_err']:.2g}",
                     "-" if not fa else f"{fa['mean']:.6g} ± {fa['mean_err']:.2g}",
                     "-" if sig is None else f"{sig:+.2f}" + (" (exceeds)" if mc["shift_exceeds_error"] else ""),
                     mc["fit_note"] or ""])
    return rows


def write_reports(summary: dict[str, Any], pages: list[dict[str, Any]], out_dir: Path) -> None:
    """summary.json (every number), summary.md (the tables), report.html (tables + figures):
    headline first, then a table of contents, then only the sections that have content."""
    tables = _tables(summary)
    report.write_json(out_dir / "summary.json", summary)
    title = f"balerc evaluate: {summary['file']['path']}"
    head = headline_lines(summary)
    md = [f"# {title}", ""] + [f"- {line}" for line in head] + [""]
    sections = [h for h, _, _ in tables] + (["Notes"] if summary["notes"] else []) + ["Figures"]
    md += ["Contents: " + " · ".join(f"[{h}](#{report.anchor(h)})" for h in sections), ""]
    for heading, header, rows in tables:
        md += [f"## {heading}", "", report.md_table(header, rows), ""]
    if summary["notes"]:
        md += ["## Notes", ""] + [f"- {n}" for n in summary["notes"]] + [""]
    md += ["## Figures", ""] + [f"- {p['title']}: `{p['file']}`" for p in summary["figures"]] + [""]
    (out_dir / "summary.md").write_text("\n".join(md))
    (out_dir / "report.html").write_text(
        report.html_page(title, tables, summary["notes"], pages, head))


def evaluate(data: Table, decoded: Table, header: dict[str, Any], file_bytes: int, out_dir: Path,
             opts: EvaluateOptions) -> dict[str, Any]:
    """Check that the two belong together, then compute, draw and write the whole report."""
    check_pairing(data, decoded, opts.given.get("data", "DATA"), opts.given.get("file", "FILE"))
    if not decoded.names_of_kind("float"):
        raise InputError(f"{opts.given.get('file', 'FILE')} has no float columns: nothing lossy "
                         "to evaluate (every column is stored exactly)")
    summary, arrays = summarize(data, decoded, header, file_bytes, opts)
    pages = render(summary, data, decoded, arrays, out_dir)
    write_reports(summary, pages, out_dir)
    return summary


def _section_model(model_dir: Path | None, section: str | None) -> Path | None:
    """--model: a model directory, or (with --section) the section's model in a directory
    of section models that `balerc train` wrote for a whole tree."""
    from balerc.codec.model import is_model_dir, section_models

    if model_dir is None:
        return None
    if not is_model_dir(model_dir):
        raise InputError(f"--model {model_dir}: not a model directory (no model.json or "
                         f"sections.json)")
    subs = section_models(model_dir)
    if subs is None:
        return model_dir
    if section is None:
        raise InputError(f"--model {model_dir} holds models of sections {sorted(subs)}: "
                         f"evaluate one of them with --section NAME")
    return subs.get(section)  # None: that section was trained without a model


def evaluate_files(data_path: Path, file_path: Path, out_dir: Path, opts: EvaluateOptions, *,
                   tree: str | None = None, columns: list[str] | None = None,
                   threads: int | None = None, section: str | None = None) -> dict[str, Any]:
    """File-level entry: check the output directory first, read both inputs, evaluate."""
    from balerc.codec.api import decompress
    from balerc.formats.tableio import read_table

    section = section or _only_section(file_path)
    opts.model_dir = _section_model(opts.model_dir, section)
    with report.output_dir(out_dir, "summary.json", opts.force):
        header, size, whole_raw = read_header(file_path, section)
        opts.whole_raw = whole_raw if columns else None
        opts.section = section
        opts.data_size = data_path.stat().st_size if data_path.is_file() else None
        data = (read_section(data_path, section, tree, columns) if section is not None
                else read_table(data_path, tree=tree, columns=columns))
        decoded = decompress(file_path, threads=threads, model_dir=opts.model_dir,
                             sections=[section] if section is not None else None,
                             columns=columns)  # the same selection on both sides
        opts.given = {"data": str(data_path), "file": str(file_path)}
        opts.labels = {"data": report.relative(data_path, out_dir),
                       "file": report.relative(file_path, out_dir)}
        return evaluate(data, decoded, header, size, out_dir, opts)
