"""`balerc compare`: the same table, the same bounds, balerc against the compressors users
would otherwise pick, with one measurement code path for every method.

Every method is timed and checked here (not inside each peer) so the numbers in one table
are comparable: the same raw-bytes denominator (the float columns as DATA stores them), the
same error definitions (`metrics.error_metrics`), and the same mass fit.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from balerc.codec.bounds import Bound
from balerc.formats.errors import BalercError, InputError, MissingDependencyError
from balerc.formats.table import Table

from . import figures, fourvec, metrics, peakfit, report

BALERC, BALERC_MODEL = "balerc", "balerc+model"
DEFAULT_SWEEP = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class Row:
    """One method at one bound; `skipped` says why it did not run (and how to fix it)."""

    method: str
    bound: str
    params: str = ""
    lossless: bool = False
    compressed_bytes: int | None = None
    raw_bytes: int = 0
    ratio: float | None = None
    max_err_rel: float | None = None
    rms_err_rel: float | None = None
    held: bool | None = None
    compress_s: float | None = None
    decompress_s: float | None = None
    compress_mbps: float | None = None
    decompress_mbps: float | None = None
    relative_mass_difference: float | None = None
    mass_rel_rms: float | None = None
    mass_event_mean: float | None = None  # per-event (M'-M)/M in the fit window
    mass_event_rms: float | None = None
    peak_shift: float | None = None  # fitted peak after - before, and its statistical error
    peak_shift_err: float | None = None
    shift_exceeds_error: bool | None = None
    mass_note: str | None = None
    skipped: str | None = None


@dataclass
class CompareOptions:
    """What `compare` runs: methods (None: all), timing repeats, threads, the sweep."""

    model_dir: Path | None = None
    methods: list[str] | None = None
    repeats: int = 1
    threads: int = 1
    sweep: list[float] | None = None  # rel bounds for the rate-distortion plot; [] = none
    sweep_rows: int = 20_000
    four_vectors: list[str] | None = None
    mass_window: tuple[float, float] | None = None
    fmt: str = "png"
    force: bool = False
    data_label: str = "DATA"


def all_methods(model_dir: Path | None) -> list[str]:
    """balerc (model-free always, with the model when given) and every registered peer."""
    from .peers import PEERS

    return [BALERC] + ([BALERC_MODEL] if model_dir else []) + list(PEERS)


def parse_sweep(text: str | None) -> list[float]:
    """'1e-4,1e-3' -> rel bound values; 'none' or '' -> no sweep; None -> the default set."""
    if text is None:
        return list(DEFAULT_SWEEP)
    if text.strip().lower() in ("", "none", "off"):
        return []
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--sweep '{text}': give rel bound values, e.g. 1e-4,1e-3,1e-2,1e-1") from None
    for v in vals:
        Bound("rel", v)  # validates (positive, finite)
    return sorted(set(vals))


# ------------------------------------------------------------------------ running methods


Runner = Callable[[Bound], tuple[Row, np.ndarray]]


def _timed(repeats: int, comp: Callable[[], Any], decomp: Callable[[Any], Any]) -> tuple[Any, Any, float, float]:
    """Best-of-`repeats` wall times of compress then decompress (what a user would see)."""
    tc, td, blob, out = [], [], None, None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        blob = comp()
        t1 = time.perf_counter()
        out = decomp(blob)
        tc.append(t1 - t0)
        td.append(time.perf_counter() - t1)
    return blob, out, min(tc), min(td)


def _balerc_runner(ft: Table, model_dir: Path | None, opts: CompareOptions) -> Runner:
    from balerc.codec.ae import compress_with_model
    from balerc.codec.api import decompress

    method = BALERC_MODEL if model_dir else BALERC
    names = ft.names

    def run(bound: Bound) -> tuple[Row, np.ndarray]:
        info: dict[str, Any] = {}

        def comp() -> bytes:
            buf = io.BytesIO()
            res = compress_with_model(ft, buf, model_dir=model_dir, bound=bound, threads=opts.threads)
            info["errors"] = res.extra.get("errors", [])
            return buf.getvalue()

        blob, back, tc, td = _timed(
            opts.repeats, comp, lambda b: decompress(b, threads=opts.threads, model_dir=model_dir))
        modes: dict[str, int] = {}
        for e in info["errors"]:
            modes[e["mode"]] = modes.get(e["mode"], 0) + 1
        params = ", ".join(f"{k} {v}" for k, v in modes.items())
        if model_dir:
            params += "; decoder embedded (counted)"
        y = np.stack([np.asarray(back[n], dtype=np.float64) for n in names], axis=1)
        return Row(method, str(bound), params, compressed_bytes=len(blob),
                   compress_s=tc, decompress_s=td), y

    return run


def _peer_runner(name: str, x: np.ndarray, opts: CompareOptions) -> Runner:
    from .peers import PEERS, read_header

    peer = PEERS[name]

    def run(bound: Bound) -> tuple[Row, np.ndarray]:
        b = None if peer.lossless else bound
        blob, y, tc, td = _timed(opts.repeats, lambda: peer.compress(x, b), peer.decompress)
        return Row(name, str(bound), peer.describe(read_header(blob)), lossless=peer.lossless,
                   compressed_bytes=len(blob), compress_s=tc, decompress_s=td), y

    return run


def _skip_reason(name: str, bound: Bound) -> str | None:
    """Why a method cannot run here (missing package, unsupported mode), else None."""
    if name in (BALERC, BALERC_MODEL):
        return None
    from .peers import PEERS

    peer = PEERS[name]
    if not peer.available():
        return f"skipped ({peer.install_hint})"
    if not peer.supports(bound):
        return f"skipped (no {bound.mode} mode)"
    return None


class _Bench:
    """Runs methods on one table and fills rows (errors, ratio, speed, mass)."""

    def __init__(self, ft: Table, opts: CompareOptions, mass: dict[str, Any] | None) -> None:
        self.ft, self.opts, self.mass = ft, opts, mass
        self.raw = ft.nbytes
        dts = {ft[n].dtype for n in ft.names}
        self.x = ft.to_numpy(dtype=dts.pop() if len(dts) == 1 else np.float64)
        self.x64 = ft.to_numpy()
        self._lossless_cache: dict[str, tuple[Row, np.ndarray]] = {}

    def runner(self, name: str) -> Runner:
        if name == BALERC:
            return _balerc_runner(self.ft, None, self.opts)
        if name == BALERC_MODEL:
            return _balerc_runner(self.ft, self.opts.model_dir, self.opts)
        return _peer_runner(name, self.x, self.opts)

    def row(self, name: str, bound: Bound, with_mass: bool) -> Row:
        why = _skip_reason(name, bound)
        if why:
            return Row(name, str(bound), raw_bytes=self.raw, skipped=why)
        try:
            if name in self._lossless_cache:
                row, y = self._lossless_cache[name]
                row = replace(row, bound=str(bound))
            else:
                row, y = self.runner(name)(bound)
                if row.lossless:
                    self._lossless_cache[name] = (row, y)
        except MissingDependencyError as exc:
            return Row(name, str(bound), raw_bytes=self.raw, skipped=f"skipped ({exc})")
        except (BalercError, ValueError, RuntimeError, MemoryError) as exc:
            if isinstance(exc, InputError) and name == BALERC_MODEL:
                raise  # the model does not fit this table: the user must hear it
            return Row(name, str(bound), raw_bytes=self.raw,
                       skipped=f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        err = metrics.error_metrics(self.x64, y, bound)
        row.raw_bytes = self.raw
        row.ratio = self.raw / row.compressed_bytes if row.compressed_bytes else None
        row.max_err_rel, row.rms_err_rel, row.held = err["max_err_rel"], err["rms_err_rel"], err["held"]
        row.compress_mbps = self.raw / 1e6 / row.compress_s if row.compress_s else None
        row.decompress_mbps = self.raw / 1e6 / row.decompress_s if row.decompress_s else None
        if with_mass and self.mass is not None:
            self._mass(row, y)
        return row

    def _mass(self, row: Row, y: np.ndarray) -> None:
        m = self.mass
        assert m is not None
        after = fourvec.mass_quantities(Table.from_numpy(y, self.ft.names), m["fvs"])[m["quantity"]]
        mc = metrics.mass_comparison(m["values"], after, m["window"], m["bins"])
        row.relative_mass_difference = mc["relative_mass_difference"]
        row.mass_rel_rms = mc["rel_diff_rms"]
        pe = mc["per_event_window"] or mc["per_event"]
        row.mass_event_mean, row.mass_event_rms = pe["mean"], pe["rms"]
        row.peak_shift, row.peak_shift_err = mc["peak_shift"], mc["peak_shift_err"]
        row.shift_exceeds_error = mc["shift_exceeds_error"]
        row.mass_note = mc["fit_note"]


def _mass_reference(ft: Table, opts: CompareOptions, notes: list[str]) -> dict[str, Any] | None:
    """The quantity, window and binning every method's mass is compared at."""
    fvs, fv_notes = fourvec.resolve(ft, opts.four_vectors)
    notes += fv_notes
    if not fvs:
        notes.append("no four-vector columns found (give them with --four-vector): no mass column")
        return None
    q = fourvec.mass_quantities(ft, fvs)
    quantity = fourvec.primary_mass(list(q))
    if quantity is None:  # one object per row (e.g. one jet collection): no pair to form
        notes.append(fourvec.single_object_note(fvs[0]))
        return None
    values = q[quantity]
    window = opts.mass_window or peakfit.find_window(values)
    bins = peakfit.default_bins(values, window) if window else None
    before, why = peakfit.fit_peak(values, window, bins) if window and bins else (None, "no peak found")
    if before is None:
        notes.append(f"mass {quantity}: {why}; relative mass differences are not available")
    return {"fvs": fvs, "quantity": quantity, "values": values, "window": window, "bins": bins,
            "fit_before": before.to_json() if before else None}


def run_compare(table: Table, bounds: list[Bound], opts: CompareOptions) -> dict[str, Any]:
    """Every method at every bound (plus the sweep); returns the results.json content."""
    floats = table.names_of_kind("float")
    if not floats:
        raise InputError(f"{opts.data_label} has no float columns: there is nothing to compress "
                         f"lossily (kinds: {table.kinds})")
    if not bounds:
        raise InputError("give at least one --bound, e.g. --bound rel:1e-3")
    known = all_methods(opts.model_dir)
    methods = opts.methods or known
    unknown = [m for m in methods if m not in known]
    if unknown:
        extra = " (balerc+model needs --model)" if BALERC_MODEL in unknown else ""
        named = known if opts.model_dir else [*known[:1], f"{BALERC_MODEL} (with --model)",
                                              *known[1:]]
        raise InputError(f"unknown method(s) {unknown}{extra}; choose from {', '.join(named)}")
    if opts.model_dir and BALERC_MODEL not in methods:
        raise InputError(f"--model {opts.model_dir} is given but --methods leaves out "
                         f"{BALERC_MODEL}: add it to --methods, or leave out --model")
    ft = table.select(floats)
    notes: list[str] = []
    mass = _mass_reference(ft, opts, notes)
    bench = _Bench(ft, opts, mass)
    rows = [asdict(bench.row(m, b, True)) for b in bounds for m in methods]

    sweep_vals = opts.sweep if opts.sweep is not None else list(DEFAULT_SWEEP)
    sweep_rows: list[dict[str, Any]] = []
    n_sweep = min(table.n_rows, opts.sweep_rows)
    if sweep_vals:
        sub = ft.slice(0, n_sweep)
        sb = _Bench(sub, opts, None)
        sweep_rows = [asdict(sb.row(m, Bound("rel", v), False)) for v in sweep_vals for m in methods]
        if n_sweep < table.n_rows:
            notes.append(f"the rate-distortion sweep used the first {n_sweep:,} rows (--sweep-rows)")
    if BALERC_MODEL in methods:
        notes.append("balerc+model counts the embedded decoder in its compressed bytes")
    if len({table[n].dtype for n in floats}) > 1:
        notes.append("the float columns have mixed dtypes: peers were given float64 copies; every "
                     "ratio uses the bytes of the columns as stored in DATA")
    return {
        "data": {"path": opts.data_label, "rows": table.n_rows, "float_columns": floats,
                 "raw_bytes": ft.nbytes},
        "bounds": [str(b) for b in bounds],
        "methods": methods,
        "rows": rows,
        "sweep": {"bounds": [str(Bound("rel", v)) for v in sweep_vals], "rows_used": n_sweep,
                  "rows": sweep_rows},
        "mass": None if mass is None else {
            "quantity": mass["quantity"], "window": mass["window"], "bins": mass["bins"],
            "four_vectors": [f.describe() for f in mass["fvs"]], "fit_before": mass["fit_before"]},
        "timing": {"repeats": opts.repeats, "threads": opts.threads},
        "notes": notes,
    }


# ------------------------------------------------------------------------ outputs


def _md(results: dict[str, Any]) -> str:
    num = report.num
    out = [f"# balerc compare: {results['data']['path']}", "",
           f"{results['data']['rows']:,} rows, {len(results['data']['float_columns'])} float columns, "
           f"{results['data']['raw_bytes']:,} raw bytes. Errors are fractions of each column's "
           "range; MB/s of raw bytes.", ""]
    if results["mass"]:
        m = results["mass"]
        fb = m["fit_before"]
        out += [f"Mass {m['quantity']}: fitted peak before "
                + (f"{fb['mean']:.6g} +- {fb['mean_err']:.2g}" if fb else "n/a")
                + (f" in {m['window'][0]:.4g}..{m['window'][1]:.4g}" if m["window"] else ""), ""]
    header = ["method", "params", "ratio", "max err / range", "RMS err / range", "held",
              "compress MB/s",
              "decompress MB/s", "per-event (M'-M)/M mean", "RMS", "peak shift [GeV]", "note"]
    for b in results["bounds"]:
        rows = []
        for r in (r for r in results["rows"] if r["bound"] == b):
            held = "lossless" if r["lossless"] and not r["skipped"] else num(r["held"])
            rows.append([r["method"], r["params"], num(r["ratio"], ".3f"), num(r["max_err_rel"], ".3g"),
                         num(r["rms_err_rel"], ".3g"), held if not r["skipped"] else "-",
                         num(r["compress_mbps"], ".1f"), num(r["decompress_mbps"], ".1f"),
                         num(r["mass_event_mean"], ".3g"), num(r["mass_event_rms"], ".3g"),
                         _shift_text(r), r["skipped"] or r["mass_note"] or ""])
        out += [f"## bound {b}", "", report.md_table(header, rows), ""]
    if results["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    out += ["## Figures", ""] + [f"- {f['title']}: `{f['file']}`" for f in results["figures"]] + [""]
    return "\n".join(out)


def write_outputs(results: dict[str, Any], out_dir: Path, fmt: str) -> None:
    """rate_distortion / throughput figures, results.json and results.md."""
    rd_rows = results["sweep"]["rows"] or results["rows"]
    with figures.sink(out_dir, fmt, "compare.pdf") as s:
        s.add(figures.rate_distortion_figure(rd_rows), "rate_distortion", "rate-distortion")
        first = results["bounds"][0]
        s.add(figures.throughput_figure([r for r in results["rows"] if r["bound"] == first], first),
              "throughput", f"throughput at {first}")
    results["figures"] = [{"name": p["name"], "title": p["title"], "file": p["file"]} for p in s.pages]
    results["figure_files"] = s.files
    report.write_json(out_dir / "results.json", results)
    (out_dir / "results.md").write_text(_md(results))


def compare_file(data_path: Path, bounds: list[str], out_dir: Path, opts: CompareOptions, *,
                 tree: str | None = None, columns: list[str] | None = None) -> dict[str, Any]:
    """File-level entry: check the output directory first, read DATA, run, write."""
    from balerc.formats.tableio import read_table

    parsed = [Bound.parse(b) for b in bounds]
    if opts.model_dir is not None and not (opts.model_dir / "model.json").exists():
        from balerc.codec.model import section_models

        subs = section_models(opts.model_dir)
        hint = (f"; it holds the models of sections {sorted(subs)} (a whole tree): give one, "
                f"e.g. -m {subs[sorted(subs)[0]]}, with the table it was trained on"
                if subs else "")
        raise InputError(f"--model {opts.model_dir}: not a model directory (no model.json)"
                         f"{hint}")
    with report.output_dir(out_dir, "results.json", opts.force):
        table = read_table(data_path, tree=tree, columns=columns)
        opts.data_label = str(data_path)
        results = run_compare(table, parsed, opts)
        write_outputs(results, out_dir, opts.fmt)
        return results


def _shift_text(r: dict[str, Any]) -> str:
    if r.get("peak_shift") is None:
        return "-"
    flag = " (exceeds stat. error)" if r.get("shift_exceeds_error") else ""
    return f"{r['peak_shift']:+.3g} ± {r['peak_shift_err']:.2g}{flag}"


def text_table(results: dict[str, Any]) -> str:
    """The short table the command prints."""
    lines = [f"{'method':<14} {'bound':<13} {'ratio':>8} {'max/range':>9} {'held':>8} "
             f"{'comp MB/s':>9} {'dec MB/s':>9} {'dm/m':>9}"]
    for r in results["rows"]:
        if r["skipped"]:
            lines.append(f"{r['method']:<14} {r['bound']:<13} {r['skipped']}")
            continue
        held = "lossless" if r["lossless"] else report.num(r["held"])
        dm = r["relative_mass_difference"]
        lines.append(f"{r['method']:<14} {r['bound']:<13} {r['ratio']:>8.3f} "
                     f"{report.num(r['max_err_rel'], '.3g'):>9} {held:>8} "
                     f"{report.num(r['compress_mbps'], '.1f'):>9} "
                     f"{report.num(r['decompress_mbps'], '.1f'):>9} "
                     f"{'-' if dm is None or not math.isfinite(dm) else format(dm, '.2g'):>9}")
    return "\n".join(lines)
