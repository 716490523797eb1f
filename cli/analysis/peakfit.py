"""Resonance peak: find it, fit a Gaussian on a linear background, compare before/after.

The "relative mass difference" Baler's users quote is the shift of a fitted peak, not of a
mean, so the fit must be the same (window and binning) before and after compression.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.optional import require

MIN_EVENTS = 30  # fewer events in the window than this: no fit
MIN_SIGNIFICANCE = 5.0  # peak amplitude / its error below this: noise, not a peak


@dataclass
class PeakFit:
    """Gaussian + linear background fitted to a histogram; errors from the covariance."""

    mean: float
    mean_err: float
    sigma: float
    sigma_err: float
    amplitude: float
    amplitude_err: float
    b0: float  # background at the window centre (events per bin)
    b1: float  # background slope (events per bin per unit of mass)
    chi2: float
    ndf: int
    events: int
    window: tuple[float, float]
    bins: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = list(self.window)
        return d

    def curve(self, x: np.ndarray) -> np.ndarray:
        """Fitted counts per bin at masses x (for drawing)."""
        return _model(x, self.amplitude, self.mean, self.sigma, self.b0, self.b1,
                      xc=0.5 * (self.window[0] + self.window[1]))


def _model(x: np.ndarray, a: float, mu: float, s: float, b0: float, b1: float,
           xc: float = 0.0) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b0 + b1 * (x - xc)


def parse_window(text: str | None) -> tuple[float, float] | None:
    """'LO,HI' -> (LO, HI) with LO < HI; None stays None (automatic window)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--mass-window '{text}': write LO,HI, e.g. 70,110") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"--mass-window '{text}': need finite LO < HI")
    return lo, hi


def find_window(m: np.ndarray) -> tuple[float, float] | None:
    """A window around the most prominent peak, found in log(mass).

    Log binning makes resonances of equal relative resolution equally narrow, so a falling
    continuum does not outrank them; the window is +-5 sigma of the peak's half width.
    """
    require("scipy", "peak finding")
    from scipy.signal import find_peaks, peak_widths

    v = m[np.isfinite(m) & (m > 0)]
    if v.size < MIN_EVENTS * 2:
        return None
    lv = np.log(v)
    lo, hi = np.quantile(lv, [0.001, 0.999])
    if not hi > lo:
        return None
    nb = int(np.clip(v.size / 40, 40, 400))
    h, edges = np.histogram(lv, bins=nb, range=(lo, hi))
    hs = np.convolve(np.pad(h.astype(float), 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    peaks, props = find_peaks(np.pad(hs, 1), prominence=max(3.0, 0.02 * hs.max()))
    if peaks.size == 0:
        return None
    peaks = peaks - 1
    best = int(peaks[np.argmax(props["prominences"])])
    width = float(peak_widths(hs, [best], rel_height=0.5)[0][0])
    bw = edges[1] - edges[0]
    sig = max(width * bw / 2.355, bw)
    centre = 0.5 * (edges[best] + edges[best + 1])
    # Coarse bins (small samples) overstate the width: refine it from the events themselves
    # (median and MAD are robust against the background inside the window).
    for _ in range(2):
        near = lv[np.abs(lv - centre) < 5 * sig]
        if near.size < MIN_EVENTS:
            break
        centre = float(np.median(near))
        sig = max(1.4826 * float(np.median(np.abs(near - centre))), 1e-6)
    return float(np.exp(centre - 5 * sig)), float(np.exp(centre + 5 * sig))


def histogram(m: np.ndarray, window: tuple[float, float], bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin centres of m inside the window."""
    h, edges = np.histogram(m[np.isfinite(m)], bins=bins, range=window)
    return h, 0.5 * (edges[1:] + edges[:-1])


def default_bins(m: np.ndarray, window: tuple[float, float]) -> int:
    """Bins for the fit: ~sqrt(events in the window), between 20 and 100."""
    n = int(np.count_nonzero((m >= window[0]) & (m <= window[1])))
    return int(np.clip(round(2 * math.sqrt(max(n, 1))), 20, 100))


def fit_peak(m: np.ndarray, window: tuple[float, float], bins: int) -> tuple[PeakFit | None, str]:
    """Least-squares fit with Poisson errors; (None, reason) when it cannot be trusted."""
    require("scipy", "peak fitting")
    from scipy.optimize import OptimizeWarning, curve_fit

    h, x = histogram(m, window, bins)
    n = int(h.sum())
    if n < MIN_EVENTS:
        return None, f"only {n} events in the window {window[0]:.4g}..{window[1]:.4g}"
    lo, hi = window
    xc, width = 0.5 * (lo + hi), hi - lo
    y = h.astype(np.float64)
    ys = np.convolve(np.pad(y, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    edge = 0.5 * (y[:3].mean() + y[-3:].mean())
    p0 = [max(ys.max() - edge, 1.0), float(x[np.argmax(ys)]), width / 10, edge,
          (y[-3:].mean() - y[:3].mean()) / width]
    bounds = ([0.0, lo, width / bins / 4, -np.inf, -np.inf], [np.inf, hi, width, np.inf, np.inf])
    sigma = np.sqrt(np.maximum(y, 1.0))

    def model(xx: np.ndarray, a: float, mu: float, s: float, b0: float, b1: float) -> np.ndarray:
        return _model(xx, a, mu, s, b0, b1, xc)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            p, cov = curve_fit(model, x, y, p0=p0, sigma=sigma, absolute_sigma=True,
                               bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError, OptimizeWarning) as exc:
        return None, f"fit failed: {str(exc).splitlines()[0]}"
    err = np.sqrt(np.diag(cov))
    if not np.all(np.isfinite(err)):
        return None, "fit failed: covariance not finite (no peak in the window?)"
    if not p[0] > MIN_SIGNIFICANCE * err[0]:
        return None, (f"no significant peak in the window (amplitude {p[0]:.3g} +- {err[0]:.2g} "
                      "events per bin)")
    if np.isclose(p[2], bounds[0][2]) or np.isclose(p[2], bounds[1][2]) or not lo < p[1] < hi:
        return None, "fit failed: the peak parameters ran to the edge of the allowed range"
    chi2 = float(np.sum(((y - model(x, *p)) / sigma) ** 2))
    fit = PeakFit(mean=float(p[1]), mean_err=float(err[1]), sigma=abs(float(p[2])),
                  sigma_err=float(err[2]), amplitude=float(p[0]), amplitude_err=float(err[0]),
                  b0=float(p[3]), b1=float(p[4]),
                  chi2=chi2, ndf=int(bins - 5), events=n, window=(float(lo), float(hi)), bins=bins)
    return fit, ""
