"""The numbers behind every figure: per-column errors, correlations, mass comparisons.

Computed apart from the plotting so that summary.json holds exactly what the figures show
and tests can check the numbers without looking at images. All statistics skip values that
are not finite in the original (they are stored exactly and have no error to speak of).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from balerc.codec.bounds import Bound

from . import peakfit


@dataclass(frozen=True)
class ColumnBound:
    """What a column was promised: an absolute error (abs/rel) or a pointwise fraction."""

    mode: str | None  # None: no bound (pure autoencoder file or lossless)
    value: float | None  # absolute error for abs/rel, the fraction for pwrel

    def allowed(self, y: np.ndarray) -> np.ndarray | None:
        """Allowed |y' - y| per value, or None without a bound."""
        if self.mode is None or self.value is None:
            return None
        if self.mode == "lossless":
            return np.zeros(y.shape)
        if self.mode == "pwrel":
            return self.value * np.abs(y)
        return np.full(y.shape, self.value)


def column_range(y: np.ndarray) -> float:
    """max - min over finite values (the unit of the 'fraction of range' errors); a
    constant column uses max(|y|, 1), a column without finite values 1."""
    y = np.asarray(y, dtype=np.float64)
    fin = y[np.isfinite(y)]
    if fin.size == 0:
        return 1.0
    rng = float(fin.max() - fin.min())
    return rng if 0.0 < rng < math.inf else max(abs(float(fin[0])), 1.0)


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def column_stats(y: np.ndarray, y2: np.ndarray, bound: ColumnBound) -> dict[str, Any]:
    """Residual y' - y and response (y' - y)/y statistics, and the error against the bound."""
    y = np.asarray(y, dtype=np.float64)
    y2 = np.asarray(y2, dtype=np.float64)
    fin = np.isfinite(y)
    same_nonfinite = bool(np.array_equal(y[~fin], y2[~fin], equal_nan=True))
    a, b = y[fin], y2[fin]
    r = b - a
    nz = a != 0
    resp = r[nz] / a[nz]
    out: dict[str, Any] = {
        "values": int(a.size),
        "nonfinite": int((~fin).sum()),
        "nonfinite_exact": same_nonfinite,
        "before": _moments(a),
        "after": _moments(b),
        "residual": _moments(r, with_max=True),
        "response": _moments(resp, with_max=True),
        "range": column_range(y),
        "bound_mode": bound.mode,
        "bound": bound.value,
        **value_changes(a, b),
    }
    allowed = bound.allowed(a)
    if allowed is None or r.size == 0:
        out["max_over_bound"], out["held"], out["at_bound"] = None, None, None
    else:
        err = np.abs(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(allowed > 0, err / allowed, np.where(err > 0, np.inf, 0.0))
        out["max_over_bound"] = _finite_or_none(float(frac.max()))
        out["held"] = bool(np.all(err <= allowed)) and same_nonfinite
        out["at_bound"] = float(np.mean((frac >= AT_BOUND) & (err > 0)))
    rng = out["range"]
    out["max_err_rel"] = float(np.abs(r).max() / rng) if r.size else 0.0
    return out


AT_BOUND = 0.99  # a value "at the bound": its error is at least 99% of what it may be


def value_changes(a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """Counts a user filtering on values must know even when every value is within the
    bound: nonzero values that became exactly 0, values whose sign changed, and decoded
    values outside the original [min, max] (finite originals a, decoded b)."""
    if a.size == 0:
        return {"became_zero": 0, "sign_changed": 0, "left_range": 0}
    with np.errstate(invalid="ignore"):
        return {
            "became_zero": int(np.count_nonzero((a != 0) & (b == 0))),
            "sign_changed": int(np.count_nonzero(np.sign(a) * np.sign(b) < 0)),
            "left_range": int(np.count_nonzero((b < a.min()) | (b > a.max()))),
        }


def _moments(v: np.ndarray, with_max: bool = False) -> dict[str, float | None]:
    if v.size == 0:
        d: dict[str, float | None] = {"mean": None, "rms": None, "std": None}
        if with_max:
            d["max_abs"] = None
        else:
            d["min"], d["max"] = None, None
        return d
    d = {"mean": float(v.mean()), "rms": float(np.sqrt(np.mean(v * v))), "std": float(v.std())}
    if with_max:
        d["max_abs"] = _finite_or_none(float(np.abs(v).max()))
    else:
        d["min"], d["max"] = float(v.min()), float(v.max())
    return {k: (None if x is None else _finite_or_none(x)) for k, x in d.items()}


def scaled_residual(y: np.ndarray, y2: np.ndarray, bound: ColumnBound, unit: str) -> np.ndarray:
    """Residual in units of the bound or of the column range, finite values only.

    One unit for every column, so a single box plot compares columns of any scale.
    """
    y = np.asarray(y, dtype=np.float64)
    fin = np.isfinite(y)
    a = y[fin]
    r = np.asarray(y2, dtype=np.float64)[fin] - a
    allowed = bound.allowed(a)
    if unit == "range" or allowed is None:
        return r / column_range(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(allowed > 0, r / allowed, 0.0)


def box_stats(v: np.ndarray, label: str) -> dict[str, Any]:
    """Quartiles and 1.5 IQR whiskers (the numbers `Axes.bxp` draws)."""
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    iqr = q3 - q1
    inside = v[(v >= q1 - 1.5 * iqr) & (v <= q3 + 1.5 * iqr)]
    return {"label": label, "med": med, "q1": q1, "q3": q3,
            "whislo": float(inside.min()), "whishi": float(inside.max()),
            "min": float(v.min()), "max": float(v.max()), "fliers": []}


def correlation(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of the columns of x over rows where every value is finite."""
    rows = np.all(np.isfinite(x), axis=1)
    x = x[rows]
    if x.shape[0] < 2:
        return np.full((x.shape[1], x.shape[1]), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.atleast_2d(np.corrcoef(x, rowvar=False))


def error_metrics(x: np.ndarray, y: np.ndarray, bound: Bound | None) -> dict[str, Any]:
    """Compare-table errors: max and RMS of |y' - y| / column range, and whether every value
    kept the bound (non-finite values must come back exactly). Same definitions as peers."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fin = np.isfinite(x)
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    lost = bool(np.any(~fin & ~same))
    with np.errstate(invalid="ignore"):
        err = np.where(fin, np.abs(x - y), 0.0)
    err[fin & ~np.isfinite(y)] = np.inf
    ranges = np.array([column_range(c) for c in x.T])
    rel = err / ranges
    held: bool | None = None
    if bound is not None:
        if bound.mode == "pwrel":
            allowed = bound.value * np.abs(x)
        else:
            allowed = np.array([bound.absolute(c) for c in x.T])[None, :]
        held = bool(np.all(err <= np.where(fin, allowed, 0.0))) and not lost
    return {
        "max_err_rel": math.inf if lost else float(rel.max()),
        "rms_err_rel": float(np.sqrt(np.mean(rel[fin] ** 2))) if fin.any() else 0.0,
        "held": held,
    }


QUANTILES = (0.01, 0.16, 0.5, 0.84, 0.99)


def relative_difference(m: np.ndarray, m2: np.ndarray) -> dict[str, Any]:
    """Per-event (M' - M)/M over events with a finite, positive M: mean, rms, quantiles.

    The primary figure: it compares each event with itself, so it needs no fit and has no
    statistical error of the sample's size."""
    ok = np.isfinite(m) & np.isfinite(m2) & (m > 0)
    rel = (m2[ok] - m[ok]) / m[ok]
    if rel.size == 0:
        return {"events": 0, "mean": None, "rms": None, "quantiles": None}
    return {"events": int(rel.size), "mean": float(rel.mean()),
            "rms": float(np.sqrt(np.mean(rel * rel))),
            "quantiles": {f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(rel, QUANTILES),
                                                             strict=True)}}


def mass_comparison(m: np.ndarray, m2: np.ndarray, window: tuple[float, float] | None,
                    bins: int | None = None, shape: str = "gauss") -> dict[str, Any]:
    """Per-event relative difference (everywhere and in the window), then the fitted peak
    before and after (same model and window): its shift, in units of the fit's statistical
    error, flagged when larger than that error."""
    ok = np.isfinite(m) & np.isfinite(m2) & (m > 0)
    per_event = relative_difference(m, m2)
    out: dict[str, Any] = {
        "events": per_event["events"],
        "mean_before": _finite_or_none(float(np.mean(m[ok]))) if ok.any() else None,
        "mean_after": _finite_or_none(float(np.mean(m2[ok]))) if ok.any() else None,
        "per_event": per_event,
        "rel_diff_mean": per_event["mean"], "rel_diff_rms": per_event["rms"],
        "per_event_window": None, "window": list(window) if window else None,
        "fit_before": None, "fit_after": None, "fit_note": None,
        "peak_shift": None, "peak_shift_err": None, "peak_shift_sigmas": None,
        "shift_exceeds_error": None,
        "relative_mass_difference": None, "relative_mass_difference_err": None,
    }
    mo = m[ok]
    if mo.size and not np.ptp(mo) > 1e-6 * np.abs(mo).max():
        out["fit_note"] = "the same mass in every event before compression: no peak to fit"
        return out
    if window is None:
        out["fit_note"] = "no peak found"
        return out
    inside = (m >= window[0]) & (m <= window[1])
    out["per_event_window"] = relative_difference(m[inside], m2[inside])
    bins = bins or peakfit.default_bins(m, window)
    before, why_b = peakfit.fit_peak(m, window, bins, shape)
    after, why_a = peakfit.fit_peak(m2, window, bins, shape)
    out["fit_before"] = before.to_json() if before else None
    out["fit_after"] = after.to_json() if after else None
    if before and after:
        shift = after.mean - before.mean
        out.update(peak_shift=shift, peak_shift_err=before.mean_err,
                   peak_shift_sigmas=shift / before.mean_err if before.mean_err > 0 else None,
                   shift_exceeds_error=bool(abs(shift) > before.mean_err),
                   relative_mass_difference=shift / before.mean,
                   relative_mass_difference_err=before.mean_err / before.mean)
    else:
        out["fit_note"] = "; ".join(f"{w}: {why}" for w, why in (("before", why_b), ("after", why_a)) if why)
    return out
