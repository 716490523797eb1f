"""Resonance peak: find it, fit it unbinned, compare before/after.

The "relative mass difference" Baler's users quote is a peak shift, so the fit must be the
same model on the same window before and after compression. An unbinned maximum-likelihood
fit (iminuit) of a Gaussian or Crystal Ball on a linear background has no binning choice to
move the answer and gives the mean's uncertainty from the likelihood; a binned chi2 fit
of the Zmumu peak had chi2/ndf 261/81 and moved by 2 of its sigmas between identical
samples' binnings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.optional import require

MIN_EVENTS = 30  # fewer events in the window than this: no fit
MIN_SIGNIFICANCE = 5.0  # signal events / their error below this: noise, not a peak
SHAPES = ("gauss", "crystalball")


@dataclass
class PeakFit:
    """An unbinned fit of signal (Gaussian or Crystal Ball) + linear background in a window.

    frac is the signal fraction, slope the background's (1 + slope t) on t in [-1, 1];
    beta/m are the Crystal Ball tail parameters (None for a Gaussian)."""

    mean: float
    mean_err: float
    sigma: float
    sigma_err: float
    frac: float
    frac_err: float
    slope: float
    events: int
    window: tuple[float, float]
    bins: int  # binning used only to draw the curve over a histogram
    shape: str = "gauss"
    beta: float | None = None
    m: float | None = None
    nll: float = 0.0

    @property
    def signal(self) -> float:
        return self.frac * self.events

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = list(self.window)
        d["signal"] = self.signal
        return d

    def curve(self, x: np.ndarray) -> np.ndarray:
        """Expected events per bin (of this fit's binning) at masses x, for drawing."""
        lo, hi = self.window
        width = (hi - lo) / self.bins
        return self.events * width * _pdf(x, self.frac, self.mean, self.sigma, self.slope,
                                          lo, hi, self.shape, self.beta, self.m)


def _pdf(x: np.ndarray, frac: float, mu: float, sigma: float, slope: float, lo: float,
         hi: float, shape: str, beta: float | None = None, m: float | None = None) -> np.ndarray:
    """Normalized density on [lo, hi]: frac x signal + (1 - frac) x linear background."""
    from scipy import stats

    dist = stats.norm(mu, sigma) if shape == "gauss" else stats.crystalball(beta, m, mu, sigma)
    norm = max(float(dist.cdf(hi) - dist.cdf(lo)), 1e-300)
    t = (2.0 * x - lo - hi) / (hi - lo)
    return frac * dist.pdf(x) / norm + (1.0 - frac) * (1.0 + slope * t) / (hi - lo)


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


def fit_peak(m: np.ndarray, window: tuple[float, float], bins: int, shape: str = "gauss"
             ) -> tuple[PeakFit | None, str]:
    """Unbinned maximum-likelihood fit (iminuit) in the window; (None, reason) when it
    cannot be trusted (too few events, no convergence, no significant signal)."""
    if shape not in SHAPES:
        raise InputError(f"unknown peak shape '{shape}'; use one of {', '.join(SHAPES)}")
    iminuit = require("iminuit", "unbinned peak fits")
    from iminuit.cost import UnbinnedNLL

    lo, hi = window
    x = m[np.isfinite(m) & (m >= lo) & (m <= hi)]
    n = int(x.size)
    if n < MIN_EVENTS:
        return None, f"only {n} events in the window {lo:.4g}..{hi:.4g}"
    med = float(np.median(x))
    mad = max(1.4826 * float(np.median(np.abs(x - med))), (hi - lo) / 1000)
    start = dict(frac=0.8, mu=med, sigma=min(mad, (hi - lo) / 4), slope=0.0)
    limits = dict(frac=(0.0, 1.0), mu=(lo, hi), sigma=((hi - lo) / 2000, hi - lo),
                  slope=(-1.0, 1.0))
    if shape == "gauss":
        def density(xx: np.ndarray, frac: float, mu: float, sigma: float, slope: float):
            return _pdf(xx, frac, mu, sigma, slope, lo, hi, "gauss")
    else:
        start.update(beta=1.5, m=3.0)
        limits.update(beta=(0.2, 5.0), m=(1.05, 50.0))

        def density(xx: np.ndarray, frac: float, mu: float, sigma: float, slope: float,  # type: ignore[misc]
                    beta: float, m: float):
            return _pdf(xx, frac, mu, sigma, slope, lo, hi, "crystalball", beta, m)

    fit = iminuit.Minuit(UnbinnedNLL(x, density), **start)
    for name, lim in limits.items():
        fit.limits[name] = lim
    fit.migrad()
    fit.hesse()
    return _result(fit, n, window, bins, shape)


def _result(fit: Any, n: int, window: tuple[float, float], bins: int, shape: str
            ) -> tuple[PeakFit | None, str]:
    """The PeakFit of a finished Minuit fit, or why it is not trusted."""
    if not fit.valid:
        return None, "fit failed: the likelihood minimum was not found (no peak in the window?)"
    v, e = fit.values, fit.errors
    if not all(math.isfinite(e[k]) for k in ("mu", "sigma", "frac")):
        return None, "fit failed: uncertainties not finite"
    if not v["frac"] * n > MIN_SIGNIFICANCE * max(e["frac"] * n, 1.0):
        return None, (f"no significant peak in the window ({v['frac'] * n:.3g} +- "
                      f"{e['frac'] * n:.2g} signal events)")
    lo, hi = window
    if not lo < v["mu"] < hi:
        return None, "fit failed: the peak ran to the edge of the window"
    return PeakFit(mean=float(v["mu"]), mean_err=float(e["mu"]), sigma=abs(float(v["sigma"])),
                   sigma_err=float(e["sigma"]), frac=float(v["frac"]), frac_err=float(e["frac"]),
                   slope=float(v["slope"]), events=n, window=(float(lo), float(hi)), bins=bins,
                   shape=shape, beta=float(v["beta"]) if shape != "gauss" else None,
                   m=float(v["m"]) if shape != "gauss" else None, nll=float(fit.fval)), ""
