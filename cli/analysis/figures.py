"""matplotlib figures for the evaluate report and the compare plots (Agg, no pyplot).

Figures are built as `matplotlib.figure.Figure` objects and never touch pyplot, so the
caller's backend and global state are left alone and nothing needs a display. Every number
drawn comes from the metrics dictionaries that also go to summary.json.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from balerc.formats.optional import available, require

from . import metrics
from .peakfit import PeakFit

BEFORE, AFTER = "#1f77b4", "#d62728"
DPI = 100


def _style() -> contextlib.AbstractContextManager[Any]:
    """mplhep's ROOT style when installed (what physicists expect), matplotlib's otherwise."""
    if available("mplhep"):
        import matplotlib
        import mplhep  # type: ignore[import-not-found]

        return matplotlib.style.context(mplhep.style.ROOT)
    return contextlib.nullcontext()


def new_figure(width: float, height: float, constrained: bool = False) -> Any:
    """A pyplot-free Figure (raises with the install hint when matplotlib is missing).

    Constrained layout costs about as much as drawing, so only figures with long rotated
    labels use it; the others get fixed margins.
    """
    require("matplotlib", "the report figures")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)


def _logy(ax: Any) -> None:
    """Log y without minor ticks (minor tick objects dominate the drawing time)."""
    from matplotlib.ticker import LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=6))
    ax.yaxis.set_minor_locator(NullLocator())


class FigureSink:
    """Writes figures as PNG files or as pages of one PDF, and keeps PNG bytes for the HTML."""

    def __init__(self, out_dir: Path, fmt: str, pdf_name: str) -> None:
        self.out_dir, self.fmt = out_dir, fmt
        self.pages: list[dict[str, Any]] = []
        self._pdf: Any = None
        self.pdf_path = out_dir / pdf_name
        if fmt == "pdf":
            require("matplotlib", "the report figures")
            from matplotlib.backends.backend_pdf import PdfPages

            self._pdf = PdfPages(self.pdf_path, metadata={"Creator": "balerc", "CreationDate": None})

    def add(self, fig: Any, name: str, title: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        png = buf.getvalue()
        if self._pdf is not None:
            self._pdf.savefig(fig)
            where = f"{self.pdf_path.name} page {len(self.pages) + 1}"
        else:
            where = f"{name}.png"
            (self.out_dir / where).write_bytes(png)
        self.pages.append({"name": name, "title": title, "file": where, "png": png})

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None

    @property
    def files(self) -> list[str]:
        """Files written, in order (one PDF, or one PNG per figure)."""
        if self.fmt == "pdf":
            return [self.pdf_path.name] if self.pages else []
        return [p["file"] for p in self.pages]


@contextlib.contextmanager
def sink(out_dir: Path, fmt: str, pdf_name: str) -> Iterator[FigureSink]:
    s = FigureSink(out_dir, fmt, pdf_name)
    try:
        with _style():
            yield s
    finally:
        s.close()


# ------------------------------------------------------------------------ helpers


def _range(*arrays: np.ndarray, robust: bool = False) -> tuple[float, float]:
    v = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(1)
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = (np.percentile(v, [0.5, 99.5]) if robust else (v.min(), v.max()))
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        pad = max(abs(lo) * 1e-3, 1e-12)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _bound_lines(ax: Any, e: float) -> None:
    """Dotted lines at +-e, labelled, on a residual or response histogram."""
    ax.axvline(-e, color="k", ls=":", label=f"bound +-{e:.3g}")
    ax.axvline(e, color="k", ls=":")
    ax.legend(fontsize=8, loc="upper right")


def _hist(ax: Any, v: np.ndarray, rng: tuple[float, float], bins: int, **kw: Any) -> None:
    h, edges = np.histogram(v[np.isfinite(v)], bins=bins, range=rng)
    ax.stairs(h, edges, **kw)


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "n/a" if v is None else format(v, spec)


def _title(ax: Any, text: str) -> None:
    ax.set_title(text, fontsize=8, family="monospace")


def _text(ax: Any, lines: list[str]) -> None:
    ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="left",
            fontsize=7, family="monospace", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})


# ------------------------------------------------------------------------ evaluate


def column_figure(name: str, y: np.ndarray, y2: np.ndarray, st: dict[str, Any]) -> Any:
    """Before/after (log y), residual with the bound, response, |residual| / bound."""
    y = np.asarray(y, dtype=np.float64)
    y2 = np.asarray(y2, dtype=np.float64)
    fin = np.isfinite(y)
    a, b = y[fin], y2[fin]
    r = b - a
    fig = new_figure(10, 6.5)
    axs = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.92, hspace=0.42, wspace=0.18)
    fig.suptitle(f"{name}: {st['values']:,} values, bound {_bound_text(st)}")

    ax = axs[0, 0]
    rng = _range(a, b)
    _hist(ax, a, rng, 100, color=BEFORE, label="before", lw=1.5)
    _hist(ax, b, rng, 100, color=AFTER, label="after", lw=1.0, ls="--")
    _logy(ax)
    ax.set_xlabel(name)
    ax.set_ylabel("values")
    ax.legend(fontsize=8, loc="upper right")

    ax = axs[0, 1]
    res = st["residual"]
    if st["bound_mode"] in ("abs", "rel") and st["bound"]:
        e = float(st["bound"])
        rr = (-1.2 * e, 1.2 * e) if res["max_abs"] is None or res["max_abs"] <= 1.2 * e else _range(r)
        _bound_lines(ax, e)
    else:
        rr = _range(r, robust=True)
    _hist(ax, r, rr, 100, color="k", fill=True, alpha=0.4)
    ax.set_xlabel(f"residual {name}' - {name}")
    _title(ax, f"mean {_fmt(res['mean'])}   RMS {_fmt(res['rms'])}   max |r| {_fmt(res['max_abs'])}")

    ax = axs[1, 0]
    resp = st["response"]
    nz = a != 0
    q = r[nz] / a[nz]
    if st["bound_mode"] == "pwrel" and st["bound"]:
        e = float(st["bound"])
        _bound_lines(ax, e)
        qr = (-1.2 * e, 1.2 * e)
    else:
        qr = _range(q, robust=True)
    _hist(ax, q, qr, 100, color="k", fill=True, alpha=0.4)
    ax.set_xlabel(f"response ({name}' - {name}) / {name}  (range 0.5-99.5%)")
    _title(ax, f"mean {_fmt(resp['mean'])}   RMS {_fmt(resp['rms'])}   max |r/y| {_fmt(resp['max_abs'])}")

    ax = axs[1, 1]
    if st["max_over_bound"] is not None:
        allowed = metrics.ColumnBound(st["bound_mode"], st["bound"]).allowed(a)
        assert allowed is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(allowed > 0, np.abs(r) / allowed, 0.0)
        _hist(ax, f, (0.0, max(1.05, float(np.max(f, initial=0.0)) * 1.01)), 50,
              color="k", fill=True, alpha=0.4)
        ax.axvline(1.0, color=AFTER, ls="--", label="bound")
        ax.set_xlabel("|residual| / bound")
        ax.legend(fontsize=8, loc="lower right")
        _title(ax, f"max |r|/bound {_fmt(st['max_over_bound'], '.4f')}   "
                   f"held: {'yes' if st['held'] else 'NO'}")
    else:
        ax.axis("off")
        _text(ax, ["no error bound in this file:", f"max |r| / range {_fmt(st['max_err_rel'])}"])
    return fig


def _bound_text(st: dict[str, Any]) -> str:
    if st["bound_mode"] is None:
        return "none"
    if st["bound_mode"] == "lossless":
        return "lossless (exact)"
    if st["bound_mode"] == "pwrel":
        return f"pwrel {st['bound']:.3g} x |y|"
    return f"|y'-y| <= {st['bound']:.4g} ({st['bound_mode']})"


def boxplot_figure(boxes: list[dict[str, Any]], unit: str) -> Any:
    """All columns' residuals in units of their bound, one box each (whiskers 1.5 IQR)."""
    fig = new_figure(min(max(6.0, 0.35 * len(boxes) + 2), 40.0), 4.8, constrained=True)
    ax = fig.subplots()
    ax.bxp(boxes, showfliers=False)
    ax.set_xticks(range(1, len(boxes) + 1), [b["label"] for b in boxes], rotation=90, fontsize=7)
    ax.axhline(0.0, color="grey", lw=0.5)
    if unit == "bound":
        for s in (-1, 1):
            ax.axhline(s, color=AFTER, ls=":", lw=1)
    ax.set_ylabel(f"residual / {unit}")
    ax.set_title(f"Residuals of every float column, in units of the {unit}")
    return fig


def correlation_figure(c0: np.ndarray, c1: np.ndarray, names: list[str]) -> Any:
    """Correlation matrices before, after, and after - before (own colour scale)."""
    fig = new_figure(15, 5, constrained=True)
    axs = fig.subplots(1, 3)
    diff = c1 - c0
    dmax = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
    dmax = dmax if dmax > 0 else 1e-12
    show_ticks = len(names) <= 40
    for ax, m, title, lim, cmap in (
        (axs[0], c0, "before", 1.0, "RdBu_r"),
        (axs[1], c1, "after", 1.0, "RdBu_r"),
        (axs[2], diff, f"after - before (max |d| {dmax:.2g})", dmax, "PiYG"),
    ):
        im = ax.imshow(m, vmin=-lim, vmax=lim, cmap=cmap, interpolation="nearest")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
        if show_ticks:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def mass_figure(label: str, m: np.ndarray, m2: np.ndarray, mc: dict[str, Any]) -> Any:
    """Mass before/after over the full range, the fitted peak, and (M' - M)/M per event."""
    fig = new_figure(15, 4.6)
    axs = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.89, wspace=0.2)
    fig.suptitle(f"invariant mass {label}: {mc['events']:,} events")
    ax = axs[0]
    lo, hi = _range(m, robust=True)
    if lo > 0 and hi / lo > 20:
        edges = np.geomspace(lo, hi, 120)
        ax.set_xscale("log")
    else:
        edges = np.linspace(lo, hi, 121)
    for v, c, lab, ls in ((m, BEFORE, "before", "-"), (m2, AFTER, "after", "--")):
        h, _ = np.histogram(v[np.isfinite(v)], bins=edges)
        ax.stairs(h, edges, color=c, label=lab, ls=ls)
    _logy(ax)
    ax.set_xlabel(f"{label} (0.5-99.5% range)")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)

    ax = axs[1]
    fb, fa = mc["fit_before"], mc["fit_after"]
    if mc["window"] and (fb or fa):
        w = tuple(mc["window"])
        bins = (fb or fa)["bins"]
        for v, c, lab, ls, f in ((m, BEFORE, "before", "-", fb), (m2, AFTER, "after", "--", fa)):
            h, edges = np.histogram(v[np.isfinite(v)], bins=bins, range=w)
            ax.stairs(h, edges, color=c, ls=ls, label=f"{lab}: {_fit_text(f)}")
            if f:
                x = np.linspace(w[0], w[1], 400)
                ax.plot(x, PeakFit(**{**f, "window": w}).curve(x), color=c, lw=1, ls=ls)
        rmd = mc["relative_mass_difference"]
        _title(ax, "relative mass difference " + ("n/a" if rmd is None else f"{rmd:.3g}"))
        ax.set_xlabel(f"{label}, fit window {w[0]:.4g}..{w[1]:.4g}")
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.axis("off")
        _text(ax, [f"no peak fit: {mc['fit_note']}"])

    ax = axs[2]
    ok = np.isfinite(m) & np.isfinite(m2) & (m > 0)
    rel = (m2[ok] - m[ok]) / m[ok]
    _hist(ax, rel, _range(rel, robust=True), 100, color="k", fill=True, alpha=0.4)
    ax.set_xlabel(f"({label}' - {label}) / {label}  (range 0.5-99.5%)")
    _title(ax, f"mean {_fmt(mc['rel_diff_mean'])}   RMS {_fmt(mc['rel_diff_rms'])}")
    return fig


def _fit_text(f: dict[str, Any] | None) -> str:
    if not f:
        return "no fit"
    return f"{f['mean']:.5g} +- {f['mean_err']:.2g}, sigma {f['sigma']:.3g}"


def loss_figure(curve: dict[str, list[float]]) -> Any:
    """Training and validation loss per epoch from the model's loss_curve.csv."""
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
    for key, c in (("train_loss", BEFORE), ("val_loss", AFTER)):
        if key in curve:
            ax.plot(curve["epoch"], curve[key], color=c, label=key.replace("_", " "))
    vals = [v for k in ("train_loss", "val_loss") for v in curve.get(k, [])]
    if vals and min(vals) > 0:
        _logy(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("training loss curve")
    ax.legend()
    return fig


# ------------------------------------------------------------------------ compare


def rate_distortion_figure(rows: list[dict[str, Any]]) -> Any:
    """Ratio against max error (fraction of range) per method; lossless as flat lines."""
    from matplotlib.ticker import LogLocator, ScalarFormatter

    fig = new_figure(9, 5, constrained=True)
    ax = fig.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cmap = _colors(len(methods))
    for i, meth in enumerate(methods):
        pts = [r for r in rows if r["method"] == meth and not r["skipped"]]
        if not pts:
            continue
        if pts[0]["lossless"]:
            ax.axhline(pts[0]["ratio"], color=cmap[i], ls=":", label=f"{meth} (lossless)")
            continue
        pts = [p for p in pts if p["max_err_rel"] and math.isfinite(p["max_err_rel"]) and p["max_err_rel"] > 0]
        pts.sort(key=lambda p: p["max_err_rel"])
        ax.plot([p["max_err_rel"] for p in pts], [p["ratio"] for p in pts], "o-", color=cmap[i],
                label=meth, ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter("")
    ax.set_xlabel("max error / column range")
    ax.set_ylabel("compression ratio")
    ax.set_title("rate-distortion (sweep of rel bounds)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def throughput_figure(rows: list[dict[str, Any]], bound: str) -> Any:
    """Compress and decompress MB/s per method at one bound (log scale)."""
    pts = [r for r in rows if not r["skipped"] and r["compress_mbps"]]
    fig = new_figure(7.5, max(3.0, 0.4 * len(pts) + 1.5), constrained=True)
    ax = fig.subplots()
    y = np.arange(len(pts))
    ax.barh(y - 0.2, [p["compress_mbps"] for p in pts], height=0.4, color=BEFORE, label="compress")
    ax.barh(y + 0.2, [p["decompress_mbps"] or 0 for p in pts], height=0.4, color=AFTER,
            label="decompress")
    ax.set_yticks(y, [p["method"] for p in pts])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MB/s (raw float bytes)")
    ax.set_title(f"throughput at {bound}")
    ax.legend(fontsize=8)
    return fig


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cm = colormaps["tab10" if n <= 10 else "tab20"]
    return [cm(i % cm.N) for i in range(n)]
