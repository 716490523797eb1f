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


# One set of sizes on top of any style: mplhep's ROOT style is made for one 10x10 inch
# panel (26 pt labels) and overprinted the multi-panel figures; these keep labels,
# ticks, legends and titles in proportion whatever style is active.
RC_SIZES = {"font.size": 11, "axes.labelsize": 11, "axes.titlesize": 11,
            "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
            "figure.titlesize": 12, "legend.title_fontsize": 9,
            # minor tick objects (mplhep's ROOT style draws them on all four sides) took
            # 40% of a report's drawing: Zmumu's 18 figures 13.2 -> 7.6 s without them
            "xtick.minor.visible": False, "ytick.minor.visible": False}
STYLES = ("auto", "mplhep", "plain")


def use_mplhep(style: str = "auto") -> bool:
    """Whether figures use mplhep's ROOT style: 'auto' when installed, 'mplhep' required."""
    if style == "mplhep":
        require("mplhep", "ROOT-style figures")
        return True
    return style == "auto" and available("mplhep")


@contextlib.contextmanager
def _style(style: str = "auto") -> Iterator[None]:
    """mplhep's ROOT style when installed (what physicists expect), matplotlib's otherwise,
    with RC_SIZES over either."""
    import matplotlib.style

    styles: list[Any] = []
    if use_mplhep(style):
        import mplhep  # type: ignore[import-not-found]

        styles.append(mplhep.style.ROOT)
    with matplotlib.style.context([*styles, RC_SIZES]):
        yield


def new_figure(width: float, height: float, constrained: bool = True) -> Any:
    """A pyplot-free Figure with constrained layout (raises with the install hint when
    matplotlib is missing). Fixed margins were cut or overprinted under mplhep's style."""
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
def sink(out_dir: Path, fmt: str, pdf_name: str, style: str = "auto") -> Iterator[FigureSink]:
    s = FigureSink(out_dir, fmt, pdf_name)
    try:
        with _style(style):
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
    ax.axvline(-e, color="k", ls=":", label=f"bound ±{e:.3g}")
    ax.axvline(e, color="k", ls=":")
    ax.legend(loc="upper right")


def _hist(ax: Any, v: np.ndarray, rng: tuple[float, float], bins: int, **kw: Any) -> None:
    h, edges = np.histogram(v[np.isfinite(v)], bins=bins, range=rng)
    ax.stairs(h, edges, **kw)


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "n/a" if v is None else format(v, spec)


def _title(ax: Any, text: str) -> None:
    ax.set_title(text, family="monospace", fontsize="small")


def _text(ax: Any, lines: list[str]) -> None:
    ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="left",
            family="monospace", fontsize="small",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})


def with_unit(label: str, unit: str | None) -> str:
    return f"{label} [{unit}]" if unit else label


def shared_counts(a: np.ndarray, b: np.ndarray, bins: int = 60, robust: bool = True,
                  rng: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of a and b on one binning taken from both samples (0.5-99.5% of their
    union, or rng), with under- and overflow added to the outer bins so no entry vanishes."""
    bh = require("boost_histogram", "the report histograms")
    lo, hi = rng or _range(a, b, robust=robust)
    counts = []
    for v in (a, b):
        h = bh.Histogram(bh.axis.Regular(bins, lo, hi, underflow=True, overflow=True))
        h.fill(v[np.isfinite(v)])
        c = h.values(flow=True).astype(np.float64)
        c[1] += c[0]
        c[-2] += c[-1]
        counts.append(c[1:-1])
    return counts[0], counts[1], np.linspace(lo, hi, bins + 1)


def overlay_with_ratio(ax: Any, rax: Any, a: np.ndarray, b: np.ndarray, xlabel: str,
                       bins: int = 60, log: bool = True,
                       rng: tuple[float, float] | None = None) -> None:
    """Before/after on shared binning (flow in the outer bins) and after/before below with
    Poisson errors of both samples (they share events, so the error is conservative)."""
    ha, hb, edges = shared_counts(a, b, bins, rng=rng)
    if use_mplhep() and available("mplhep"):
        import mplhep  # type: ignore[import-not-found]

        mplhep.histplot(ha, edges, ax=ax, color=BEFORE, label="before", lw=1.5)
        mplhep.histplot(hb, edges, ax=ax, color=AFTER, label="after", ls="--", lw=1.0)
    else:
        ax.stairs(ha, edges, color=BEFORE, label="before", lw=1.5)
        ax.stairs(hb, edges, color=AFTER, label="after", ls="--", lw=1.0)
    if log and ha.max(initial=0) > 0:
        _logy(ax)
    ax.set_ylabel("entries / bin")
    ax.legend(loc="upper right")
    ax.tick_params(labelbottom=False)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ok = ha > 0
    ratio = np.where(ok, hb / np.where(ok, ha, 1.0), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = ratio * np.sqrt(1.0 / np.where(ok, ha, 1.0) + 1.0 / np.where(hb > 0, hb, 1.0))
    rax.errorbar(centres[ok], ratio[ok], yerr=err[ok], fmt="o", ms=2, color="k", lw=0.8)
    rax.axhline(1.0, color="grey", lw=0.8)
    spread = np.nanmax(np.abs(ratio[ok] - 1.0) + err[ok], initial=0.05) if ok.any() else 0.05
    half = float(min(max(spread * 1.1, 0.05), 1.0))
    rax.set_ylim(1.0 - half, 1.0 + half)
    rax.set_ylabel("after / before")
    rax.set_xlabel(f"{xlabel}; outer bins hold under/overflow" if rng is None else xlabel)
    rax.set_xlim(edges[0], edges[-1])


# ------------------------------------------------------------------------ evaluate


def column_figure(name: str, y: np.ndarray, y2: np.ndarray, st: dict[str, Any],
                  unit: str | None = None) -> Any:
    """Before/after with a ratio panel, residual with the bound, response, |residual|/bound."""
    y = np.asarray(y, dtype=np.float64)
    y2 = np.asarray(y2, dtype=np.float64)
    fin = np.isfinite(y)
    a, b = y[fin], y2[fin]
    r = b - a
    fig = new_figure(11, 8)
    gs = fig.add_gridspec(3, 2, height_ratios=[3, 1.2, 3])
    fig.suptitle(f"{name}: {st['values']:,} values, bound {_bound_text(st)}")
    ax = fig.add_subplot(gs[0, 0])
    overlay_with_ratio(ax, fig.add_subplot(gs[1, 0], sharex=ax), a, b, with_unit(name, unit))

    ax = fig.add_subplot(gs[0:2, 1])
    res = st["residual"]
    if st["bound_mode"] in ("abs", "rel") and st["bound"]:
        e = float(st["bound"])
        rr = (-1.2 * e, 1.2 * e) if res["max_abs"] is None or res["max_abs"] <= 1.2 * e else _range(r)
        _bound_lines(ax, e)
    else:
        rr = _range(r, robust=True)
    _hist(ax, r, rr, 100, color="k", fill=True, alpha=0.4)
    ax.set_xlabel(with_unit(f"residual {name}' − {name}", unit))
    ax.set_ylabel("values / bin")
    _title(ax, f"mean {_fmt(res['mean'])}  RMS {_fmt(res['rms'])}  max |r| {_fmt(res['max_abs'])}")

    ax = fig.add_subplot(gs[2, 0])
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
    ax.set_xlabel(f"response ({name}' − {name}) / {name}")
    ax.set_ylabel("values / bin")
    _title(ax, f"mean {_fmt(resp['mean'])}  RMS {_fmt(resp['rms'])}")
    _bound_panel(fig.add_subplot(gs[2, 1]), a, r, st)
    return fig


def _bound_panel(ax: Any, a: np.ndarray, r: np.ndarray, st: dict[str, Any]) -> None:
    """|residual| / bound with the value counts a bound does not show (zeros, signs)."""
    changes = [f"became 0: {st.get('became_zero', 0):,}",
               f"sign changed: {st.get('sign_changed', 0):,}",
               f"outside original range: {st.get('left_range', 0):,}"]
    if st["max_over_bound"] is None:
        ax.axis("off")
        _text(ax, ["no error bound in this file:",
                   f"max |r| / range {_fmt(st['max_err_rel'])}", *changes])
        return
    allowed = metrics.ColumnBound(st["bound_mode"], st["bound"]).allowed(a)
    assert allowed is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(allowed > 0, np.abs(r) / allowed, 0.0)
    _hist(ax, f, (0.0, max(1.05, float(np.max(f, initial=0.0)) * 1.01)), 50,
          color="k", fill=True, alpha=0.4)
    ax.axvline(1.0, color=AFTER, ls="--", label="bound")
    ax.set_xlabel("|residual| / bound")
    ax.set_ylabel("values / bin")
    ax.legend(loc="upper right")
    at = st.get("at_bound")
    _title(ax, f"max {_fmt(st['max_over_bound'], '.4f')}  held: {'yes' if st['held'] else 'NO'}"
               f"  at bound: {_fmt(at, '.1%') if at is not None else 'n/a'}")
    ax.text(0.03, 0.95, "\n".join(changes), transform=ax.transAxes, va="top", ha="left",
            fontsize="small", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})


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
    """Per-event (M' - M)/M (the primary figure), the fitted peak, the full range; the
    mass panels have an after/before ratio panel below."""
    fig = new_figure(16, 6)
    gs = fig.add_gridspec(2, 3, height_ratios=[3, 1])
    fig.suptitle(f"invariant mass {label}: {mc['events']:,} events")
    ax = fig.add_subplot(gs[:, 0])
    ok = np.isfinite(m) & np.isfinite(m2) & (m > 0)
    where = ""
    if mc["window"]:  # far below a peak masses near 0 give relative differences of O(1)
        ok &= (m >= mc["window"][0]) & (m <= mc["window"][1])
        where = " (fit window)"
    rel = (m2[ok] - m[ok]) / m[ok]
    lo, hi = (np.quantile(rel, [0.01, 0.99]) if rel.size else (-1.0, 1.0))
    half = max(abs(float(lo)), abs(float(hi)), 1e-12)
    _hist(ax, rel, (-half, half), 80, color="k", fill=True, alpha=0.4)
    ax.set_xlabel(f"per-event ({label}' − {label}) / {label}{where}, 1-99%")
    ax.set_ylabel("events / bin")
    lines = []
    for what, pe in (("all events", mc.get("per_event")), ("fit window", mc.get("per_event_window"))):
        if pe and pe.get("events"):
            qs = pe.get("quantiles") or {}
            lines += [f"{what}: mean {_fmt(pe.get('mean'))}, RMS {_fmt(pe.get('rms'))}",
                      f"  16-84% {_fmt(qs.get('0.16'))}..{_fmt(qs.get('0.84'))}"]
    _text(ax, lines)
    ax = fig.add_subplot(gs[0, 1])
    fb, fa = mc["fit_before"], mc["fit_after"]
    if mc["window"] and (fb or fa):
        _peak_panel(ax, fig.add_subplot(gs[1, 1], sharex=ax), label, m, m2, mc)
    else:
        ax.axis("off")
        _text(ax, ["no peak fit:", str(mc["fit_note"])])
    ax = fig.add_subplot(gs[0, 2])
    overlay_with_ratio(ax, fig.add_subplot(gs[1, 2], sharex=ax), m[np.isfinite(m)],
                       m2[np.isfinite(m2)], f"{label} [GeV]", bins=80)
    return fig


def _peak_panel(ax: Any, rax: Any, label: str, m: np.ndarray, m2: np.ndarray,
                mc: dict[str, Any]) -> None:
    """Histogram of the fit window before/after with the unbinned fits' curves."""
    fb, fa = mc["fit_before"], mc["fit_after"]
    w = (float(mc["window"][0]), float(mc["window"][1]))
    bins = (fb or fa)["bins"]
    inside = [v[np.isfinite(v) & (v >= w[0]) & (v <= w[1])] for v in (m, m2)]
    overlay_with_ratio(ax, rax, inside[0], inside[1], f"{label} [GeV], fit window", bins=bins,
                       log=False, rng=w)
    x = np.linspace(w[0], w[1], 400)
    for f, c, ls, what in ((fb, BEFORE, "-", "before"), (fa, AFTER, "--", "after")):
        if f:
            fit = PeakFit(**{k: v for k, v in f.items() if k != "signal"} | {"window": w})
            ax.plot(x, fit.curve(x), color=c, lw=1.2, ls=ls, label=f"{what}: {_fit_text(f)}")
    ax.legend(loc="upper left", fontsize="x-small")
    shift, err = mc.get("peak_shift"), mc.get("peak_shift_err")
    flag = "  EXCEEDS stat. error" if mc.get("shift_exceeds_error") else ""
    _title(ax, "peak shift " + ("n/a" if shift is None else
                               f"{shift:+.3g} ± {err:.2g} GeV ({mc['peak_shift_sigmas']:+.2f}σ)")
           + flag)


def _fit_text(f: dict[str, Any] | None) -> str:
    if not f:
        return "no fit"
    return f"μ {f['mean']:.5g} ± {f['mean_err']:.2g}, σ {f['sigma']:.3g}"


def loss_figure(curve: dict[str, list[float]]) -> Any:
    """Training and validation loss per epoch from the model's loss_curve.csv."""
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
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
