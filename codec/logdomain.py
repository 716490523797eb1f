"""Pointwise-relative (pwrel) coding in the log domain: the arithmetic writer and reader share.

Mode g codes log2|y| on a uniform grid with the sign folded into the code; mode r codes
log2|y| - log2|p| against a prediction p with a finer step (docs/FORMAT.md, section 5).
Every function here is used by both sides, so a value decodes to the bits it was checked at.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from .exactmath import exp2, log2  # never numpy's: its SIMD paths differ between CPUs
from .packing import row_entropies

LOG_SLACK = 1.0 - 1e-9  # the step is a hair finer than the bound allows: rounding headroom


_NEAR = 2.0 ** -40  # relative: thousands of ulps more than numpy's log2 can be off by
_MAX_LOG2 = 1075.0  # |log2| of any finite nonzero float64


def rint_log2(a: np.ndarray, delta: float) -> np.ndarray:
    """np.rint(log2(a) / delta) with the exactmath log2, for positive finite a: numpy's
    (SIMD) log2 wherever the rounding cannot depend on its last bits, the exact one where
    log2(a) / delta lies within 2^-40 (relative) of a half-integer, so the result is the
    exact path's bit for bit on every CPU."""
    return rint_log2_diff(a, None, delta)


def rint_log2_diff(a: np.ndarray, logb: np.ndarray | None, delta: float) -> np.ndarray:
    """np.rint((log2(a) - logb) / delta) with the exactmath log2 of a, bit for bit (logb,
    when given, is exact already), as `rint_log2`; in blocks of up to 65,536 values. Rows where
    a is not positive and finite give whatever numpy gives (callers mask them)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    out = np.empty_like(a)
    if not len(a):
        return out
    block = min(len(a), 1 << 16)  # a chunk column at once (16k blocks scaled 1.3x on two threads)
    q, frac = np.empty(block), np.empty(block)
    span = _MAX_LOG2 if logb is None else 2 * _MAX_LOG2
    limit = 0.5 - (span * _NEAR + _NEAR) / delta  # |frac| above it: decide exactly
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, len(a), block):
            n = min(block, len(a) - start)
            qs, fs, os_ = q[:n], frac[:n], out[start:start + n]
            np.log2(a[start:start + n], out=qs)
            if logb is not None:
                np.subtract(qs, logb[start:start + n], out=qs)
            np.divide(qs, delta, out=qs)
            np.rint(qs, out=os_)
            np.subtract(qs, os_, out=fs)
            np.abs(fs, out=fs)
            near = fs >= limit  # NaN compares False: masked rows stay numpy's
            if near.any():
                idx = np.flatnonzero(near) + start
                exact = log2(a[idx])
                if logb is not None:
                    exact -= logb[idx]
                out[idx] = np.rint(exact / delta)
    return out


# log2 of a positive finite float64 lies in [-1075, 1024], so k - low <= 2099 / delta + 1:
# above this delta every mode g code |k - low + 1| fits int32 (pcodec takes it uncopied)
_INT32_DELTA = 2200.0 / 2**31


def log_codes(y: np.ndarray, eps: float, finite: np.ndarray | None = None,
              out: np.ndarray | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Mode g codes of y at pwrel eps, their offset k and the reconstruction (docs/FORMAT.md
    mode g), written into `out` when given (no array allocated for it)."""
    delta = log_delta(eps)
    finite = np.isfinite(y) if finite is None else finite
    valid = finite & (y != 0)
    if valid.all() and len(y):  # the usual chunk: whole-array operations, no gathers
        ay = np.abs(y).astype(np.float64, copy=False)
        m = rint_log2(ay, delta)  # integers below 2^53: exact
        low = int(m.min())
        m -= low - 1
        np.copysign(m, y, out=m)  # m >= 1: y's sign, 10x faster than a masked negative
        codes = m.astype(np.int32 if delta > _INT32_DELTA else np.int64)
        return codes, low, unlog(codes, low, delta, out)
    k = np.zeros(len(y), dtype=np.int64)
    k[valid] = rint_log2(np.abs(y[valid]).astype(np.float64), delta).astype(np.int64)
    low = int(k[valid].min()) if valid.any() else 0
    codes = np.where(valid, np.where(np.signbit(y), -1, 1) * (k - low + 1), 0)
    return codes, low, unlog(codes, low, delta, out)


def sampled_log_entropy(S: np.ndarray, finite: np.ndarray, eps: float) -> np.ndarray:
    """Per row of S (a sample of each of several columns): the order-0 entropy in bits per
    value of its mode g codes, `log_codes(S[i], eps, finite[i])[0]`, every row in one set
    of passes. The codes are formed against the lowest k of all rows, not of each: within
    a row that shifts each sign's codes by one constant, so its histogram (in order) is
    the same."""
    m, s = S.shape
    if not S.size:
        return np.zeros(m)
    valid = finite & (S != 0)
    k = rint_log2(np.where(valid, np.abs(S), 1.0).ravel(), log_delta(eps)).reshape(m, s)
    low = k[valid].min() if valid.any() else 0.0
    k -= low - 1
    np.copysign(k, S, out=k)
    k[~valid] = 0.0
    return row_entropies(k)


def relog_codes(y: np.ndarray, p: np.ndarray, eps_r: float) -> tuple[np.ndarray, np.ndarray]:
    """Mode r codes and flags of y against the prediction p (no drift check, no 'alone')."""
    ap, ay = np.abs(p), np.abs(y)
    rel = np.isfinite(y) & (ay > 0) & (ap > 0) & np.isfinite(p)
    codes = np.zeros(len(y), dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes[rel] = np.rint((log2(ay[rel]) - log2(ap[rel])) / log_delta(eps_r))
    flag = np.where(np.signbit(y) != np.signbit(p), 1, 0).astype(np.uint8)
    flag[y == 0] = 2
    return codes, flag


def unlog(codes: np.ndarray, low: int, delta: float, out: np.ndarray | None = None
          ) -> np.ndarray:
    """Mode g reconstruction: 0 for code 0, else sign(c) * 2^((|c| - 1 + low) * delta).

    exp2 runs once per distinct |c| (a table) when the codes span a modest range: the same
    arguments, so the same values as the elementwise form, at a fraction of the cost. The
    table is signed (index c + hi: -2^.. for c < 0, 0 at c = 0), so one gather gives the
    result: no |c| pass, no zero fix-up and no copysign, whose int32 -> float64 cast of the
    codes cost as much as the gather (unlog of 65,536 codes 220 -> 120 us).
    """
    hi = max(int(codes.max(initial=0)), -int(codes.min(initial=0)))
    with np.errstate(over="ignore"):
        if hi <= 4 * len(codes) and hi <= 1 << 20:
            return _signed_table(low, hi, delta).take(np.add(codes, hi, dtype=codes.dtype),
                                                      out=out, mode="clip")  # in range
        # elementwise; int64 whatever the codes' type: low may be far beyond int32
        a = np.abs(codes)
        mag = np.where(a == 0, 0.0, exp2((a.astype(np.int64) - 1 + low) * delta))
    if out is not None:
        out[...] = mag
        mag = out
    np.copysign(mag, codes, out=mag)  # mag >= 0, never NaN: the codes' sign
    return mag


def _signed_table(low: int, hi: int, delta: float) -> np.ndarray:
    """t[c + hi] = sign(c) 2^((|c| - 1 + low) delta) for |c| <= hi, t[hi] = 0: the values
    (bits) of copysign(exp2(..), c), from the per-thread exp2 table."""
    mag = exp2_range(low - 1, low - 1 + hi, delta)  # index i: m = i - 1 + low
    t = np.empty(2 * hi + 1)
    t[hi:] = mag
    t[hi] = 0.0
    np.negative(mag[:0:-1], out=t[:hi])
    return t


def flip_sign(x: np.ndarray, mask: np.ndarray) -> None:
    """np.negative(x, where=mask, out=x) bit for bit (NaN included: both flip the sign
    bit), as whole-array integer operations: a masked ufunc loop is ~3x slower."""
    x.view(np.uint64)[...] ^= mask.astype(np.uint64) << np.uint64(63)


@functools.lru_cache(maxsize=256)
def log_delta(eps: float) -> float:
    """Log2 step whose half keeps |y'/y - 1| <= eps (with a hair of slack for rounding);
    remembered: every column of every chunk asks, and one exact log2 costs ~0.1 ms."""
    return 2.0 * float(log2(np.array([1.0 + eps]))[0]) * LOG_SLACK


def alone_values(codes: np.ndarray, flag: np.ndarray, delta: float) -> np.ndarray:
    """Mode r rows coded without the prediction (flag 3/4): +/- 2^(c delta)."""
    with np.errstate(over="ignore"):
        mag = exp2(codes * delta)
    return np.where(flag == 4, -mag, mag)


def relog(p: np.ndarray, codes: np.ndarray, flag: np.ndarray, delta_rel: float,
          delta: float, logp: np.ndarray | None = None) -> np.ndarray:
    """Prediction-relative pwrel reconstruction, identical in encoder and decoder.

    flag 0/1: |y'| = |p| 2^(c delta_rel) with p's sign / the other sign; 2: zero;
    3/4: +/- 2^(c delta), independent of the prediction. logp: log2|p| when known.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = exp2((log2(np.abs(p)) if logp is None else logp) + codes * delta_rel)
    return _signed(out, p, codes, flag, delta)


def _signed(mag: np.ndarray, p: np.ndarray, codes: np.ndarray, flag: np.ndarray,
            delta: float) -> np.ndarray:
    """Modes r and s from |y'| relative to p: p's sign (flag 0) or the other (1); flags
    3/4 coded alone as +/-2^(c delta); zero for flag 2 and where p is 0."""
    flip_sign(mag, np.signbit(p) != (flag == 1))
    alone = flag >= 3
    if alone.any():
        mag[alone] = alone_values(codes[alone], flag[alone], delta)
    mag[(flag == 2) | ((flag <= 1) & (p == 0))] = 0.0
    return mag


def exp2_steps(codes: np.ndarray, delta: float) -> np.ndarray:
    """2^(c delta) for integer codes c: exp2 once per distinct code (a table) when the
    codes span a modest range, else elementwise; the same arguments, so the same bits."""
    if not codes.size:
        return np.empty(0)
    lo, hi = int(codes.min()), int(codes.max())
    with np.errstate(over="ignore"):
        if hi - lo <= 4 * codes.size and hi - lo <= 1 << 20:
            return exp2_range(lo, hi, delta).take((codes - lo).astype(np.int64))
        return exp2(codes * delta)


class _Exp2Tables(threading.local):
    """Per thread: delta -> (first m, read-only exp2(m delta) for consecutive m)."""

    def __init__(self) -> None:
        self.tables: dict[float, tuple[int, np.ndarray]] = {}


_TABLES = _Exp2Tables()
MAX_TABLE_ENTRIES = 1 << 21  # per thread, all deltas together (16 MB)


def exp2_range(lo: int, hi: int, delta: float) -> np.ndarray:
    """exp2(m delta) for m = lo..hi, as exactmath computes each (so the elementwise values,
    bit for bit), from a per-thread table per delta grown to what chunks ask: the chunks of
    a column share delta and mostly the same m, so exp2 runs once per m per thread, not
    once per m per column and chunk (15% of a pwrel decode). A read-only view."""
    tables = _TABLES.tables
    held = tables.get(delta)
    lo2, hi2 = lo, hi
    if held is not None:
        m0, old = held
        if m0 <= lo and hi < m0 + len(old):
            return old[lo - m0 : hi - m0 + 1]
        lo2, hi2 = min(lo, m0), max(hi, m0 + len(old) - 1)
    if hi2 - lo2 + 1 > MAX_TABLE_ENTRIES:  # too wide to keep
        return _exp2_of(lo, hi + 1, delta)
    if held is None:
        table = _exp2_of(lo2, hi2 + 1, delta)
    else:  # only the missing ends are computed
        table = np.concatenate([_exp2_of(lo2, m0, delta), old,
                                _exp2_of(m0 + len(old), hi2 + 1, delta)])
    table.flags.writeable = False
    if sum(len(t) for k, (_, t) in tables.items() if k != delta) + len(table) > MAX_TABLE_ENTRIES:
        tables.clear()  # many deltas (mode s picks one per column and chunk)
    tables[delta] = (lo2, table)
    return table[lo - lo2 : hi - lo2 + 1]


def _exp2_of(start: int, stop: int, delta: float) -> np.ndarray:
    return exp2(np.arange(start, stop, dtype=np.int64) * delta)


def scaled_codes(ay: np.ndarray, ap: np.ndarray, rel: np.ndarray, delta_r: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mode s codes rint(log2(|y|/|p|) / delta_r) (bit for bit the exact log2's, at numpy's
    speed) and the rows where the ratio is usable: `rel` rows whose |y|/|p| neither
    overflows nor underflows (the others are coded alone)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
        ratio = np.where(rel, ay / np.where(rel, ap, 1.0), 1.0)
    usable = rel & np.isfinite(ratio) & (ratio >= np.finfo(np.float64).tiny)
    ratio[~usable] = 1.0
    return rint_log2(ratio, delta_r), usable


def rescale(p: np.ndarray, codes: np.ndarray, flag: np.ndarray, delta_rel: float,
            delta: float) -> np.ndarray:
    """Mode s reconstruction, identical in encoder and decoder: |y'| = |p| x 2^(c delta_rel)
    (one exact exp2 per distinct code, one IEEE multiplication: no log2 of p, so no
    per-value transcendental) with p's sign (flag 0) or the other (1); 2: zero;
    3/4: +/- 2^(c delta) as in mode r."""
    with np.errstate(over="ignore", invalid="ignore"):  # whole-array: no gathers
        out = np.abs(p) * exp2_steps(np.where(flag <= 1, codes, 0), delta_rel)
    return _signed(out, p, codes, flag, delta)
