"""Figures and the mass analysis as a physicist reads them: no overlapping or cut text with
or without mplhep's ROOT style, unbinned peak fits that find a known shift, counts of values
a bound does not show."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from balerc.cli.analysis import figures, fourvec, metrics, peakfit  # noqa: E402
from balerc.formats import toy  # noqa: E402
from balerc.formats.optional import available  # noqa: E402

STYLES = ["plain", pytest.param("mplhep", marks=pytest.mark.skipif(
    not available("mplhep"), reason="mplhep is not installed (pip install 'balerc[style]')"))]


def _texts(fig) -> list:  # noqa: ANN001
    """The text artists a drawn figure shows: titles, axis labels, the tick labels the
    axes draw (matplotlib keeps others hidden in place), legends, free texts."""
    out = [t for t in (fig._suptitle, *fig.texts) if t is not None]
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            out += ax.texts
            continue
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
                ax.xaxis.offsetText, ax.yaxis.offsetText, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks this draw placed
                out += [tick.label1, tick.label2]
        legend = ax.get_legend()
        if legend is not None:
            out += [*legend.get_texts(), legend.get_title()]
    return out


def text_boxes(fig) -> list[tuple[str, object]]:  # noqa: ANN001
    """Every visible, non-empty text of a drawn figure with its bounding box in pixels,
    measured by matplotlib's renderer (not pixels of an image)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the report figures are pyplot-free: attach Agg
    canvas.draw()
    renderer = canvas.get_renderer()
    unique = {id(t): t for t in _texts(fig)}.values()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in unique
            if t.get_visible() and t.get_text().strip()]


def assert_readable(fig) -> None:  # noqa: ANN001
    """No text overlaps another and none leaves the figure (cut-off labels)."""
    boxes = text_boxes(fig)
    page = fig.bbox
    for text, b in boxes:
        assert b.x0 >= page.x0 - 1 and b.y0 >= page.y0 - 1 and b.x1 <= page.x1 + 1 \
            and b.y1 <= page.y1 + 1, f"{text!r} is cut off: {b} outside {page}"
    for (t1, b1), (t2, b2) in itertools.combinations(boxes, 2):
        inter = b1.intersection(b1, b2)
        overlap = 0.0 if inter is None else max(inter.width, 0) * max(inter.height, 0)
        assert overlap <= 1.0, f"{t1!r} overlaps {t2!r}"


@pytest.fixture(scope="module")
def dimuon() -> tuple:
    t = toy.dimuon(4000, seed=3)
    rng = np.random.default_rng(0)
    after = {n: np.asarray(t[n], dtype=np.float64) * (1 + 1e-3 * rng.normal(size=t.n_rows))
             for n in t.names_of_kind("float")}
    return t, after


@pytest.mark.parametrize("style", STYLES)
def test_figures_have_no_overlapping_text(style: str, dimuon: tuple) -> None:
    t, after = dimuon
    y, y2 = np.asarray(t["E1"], dtype=np.float64), after["E1"]
    st = metrics.column_stats(y, y2, metrics.ColumnBound("abs", 0.5))
    fvs, _ = fourvec.detect(t)
    m = fourvec.mass_quantities(t, fvs)["m(1+2)"]
    m2 = m * (1 + 1e-3 * np.random.default_rng(1).normal(size=m.size))
    mc = metrics.mass_comparison(m, m2, peakfit.find_window(m))
    names = ["E1", "px1", "py1", "pz1", "E2", "px2"]
    x = np.column_stack([np.asarray(t[n], dtype=np.float64) for n in names])
    boxes = [metrics.box_stats(np.random.default_rng(j).normal(size=100), n)
             for j, n in enumerate(names)]
    with figures._style(style):
        for fig in (figures.column_figure("E1", y, y2, st, "GeV"),
                    figures.mass_figure("m(1+2)", m, m2, mc),
                    figures.loss_figure({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.0],
                                         "val_loss": [3.5, 2.5, 1.5]}),
                    figures.boxplot_figure(boxes, "bound"),
                    figures.correlation_figure(np.corrcoef(x.T), np.corrcoef(x.T), names)):
            assert_readable(fig)
    labels = [t for t, _ in text_boxes(figures.column_figure("E1", y, y2, st, "GeV"))]
    assert "E1 [GeV]; outer bins hold under/overflow" in labels and "after / before" in labels


def test_overlap_check_can_fail() -> None:
    fig = figures.new_figure(3, 2, constrained=False)
    ax = fig.subplots()
    ax.set_title("a title long enough to leave a three inch figure on both sides" * 2)
    ax.text(0.5, 0.5, "x", transform=ax.transAxes)
    ax.text(0.5, 0.5, "y", transform=ax.transAxes)
    with pytest.raises(AssertionError):
        assert_readable(fig)


def test_shared_binning_keeps_entries_outside_the_before_range() -> None:
    a = np.linspace(0.0, 1.0, 1000)
    b = np.concatenate([a[:-10], np.full(10, 50.0)])  # ten values far outside
    ha, hb, edges = figures.shared_counts(a, b, bins=20)
    assert ha.sum() == a.size and hb.sum() == b.size  # under/overflow in the outer bins
    assert hb[-1] >= 10 and ha[0] >= 1  # the far values sit in the last bin, none vanish
    assert edges[0] < 0.01 and edges[-1] >= 1.0


@pytest.mark.parametrize("shape", ["gauss", "crystalball"])
def test_unbinned_fit_recovers_an_injected_shift(shape: str) -> None:
    """Generated Z events on a flat background; the masses scaled by 1 + 2e-3: the fit's
    shift is the injected one within its error, and is flagged as exceeding it."""
    pytest.importorskip("iminuit")
    rng = np.random.default_rng(11)
    m = np.concatenate([rng.normal(91.19, 2.5, 16000), rng.uniform(70, 110, 4000)])
    shifted = m * (1 + 2e-3)
    window = (75.0, 107.0)
    mc = metrics.mass_comparison(m, shifted, window, shape=shape)
    fb = mc["fit_before"]
    assert abs(fb["mean"] - 91.19) < 4 * fb["mean_err"] and fb["mean_err"] < 0.05
    want = 91.19 * 2e-3
    assert abs(mc["peak_shift"] - want) < 3 * mc["peak_shift_err"], mc
    assert mc["shift_exceeds_error"] is True and mc["peak_shift_sigmas"] > 3
    assert mc["per_event"]["mean"] == pytest.approx(2e-3, rel=1e-9)
    same = metrics.mass_comparison(m, m.copy(), window, shape=shape)
    assert same["peak_shift"] == pytest.approx(0.0, abs=1e-6 * 91)
    assert same["shift_exceeds_error"] is False


def test_no_peak_is_not_fitted() -> None:
    pytest.importorskip("iminuit")
    flat = np.random.default_rng(2).uniform(70, 110, 3000)
    fit, why = peakfit.fit_peak(flat, (70.0, 110.0), 40)
    assert fit is None and why


def test_value_changes_counted() -> None:
    a = np.array([1.0, -2.0, 3.0, 0.5, 0.0, 4.0])
    b = np.array([0.0, 2.0, 3.0, 0.5, 0.0, 4.5])  # zeroed, sign flip, one above the max
    st = metrics.column_stats(a, b, metrics.ColumnBound("abs", 5.0))
    assert (st["became_zero"], st["sign_changed"], st["left_range"]) == (1, 1, 1)
    assert st["at_bound"] == 0.0
    st = metrics.column_stats(a, a + np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
                              metrics.ColumnBound("abs", 0.5))
    assert st["at_bound"] == pytest.approx(1 / 6)
