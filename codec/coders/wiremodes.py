"""The autoencoder coder's wire modes: how one column of one chunk is stored.

Each chunk's metadata names one mode per column by letter (docs/FORMAT.md, section 5);
this module is the one place that says what each letter means: which streams it uses,
whether it needs the model's prediction, whether it takes a code offset, which `qgroup`
version may pack its streams, and how it is decoded. Code elsewhere asks these
attributes instead of testing letters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from balerc.formats.errors import ContainerError

from ..logdomain import exp2, log_delta, relog, rescale, unlog


@dataclass(frozen=True)
class WireMode:
    letter: str
    name: str
    roles: tuple[str, ...]  # the column's streams: "res" (codes), "sign" (flags)
    needs_prediction: bool
    takes_offset: bool  # meta.offsets[j] is added to its codes
    grouped_in: int  # smallest meta.grouped version whose qgroup packs its streams (0: never)
    decode: Callable[[Any, int], np.ndarray]  # (DecodeContext, column) -> float64 values


@dataclass
class DecodeContext:
    """What decoding one chunk's columns needs (built by the coder per chunk)."""

    codes: Callable[[int], np.ndarray]  # column j's integer codes
    flags: Callable[[int], np.ndarray]  # column j's flag stream (u8)
    offsets: list[int]
    prediction: Callable[[int], np.ndarray]  # column j's prediction, float64 column units
    abs_bound: Callable[[int], float]  # e_j
    drift: Callable[[int], float]  # m_j: the decoder-drift allowance of column j
    eps: float | None  # the pwrel bound E
    rel_eps: list[float] | None  # mode r: the finer bound E_r per column
    table: Callable[[int], np.ndarray] = lambda j: np.empty(0)  # mode d: column j's values
    # column j's codes as stored (int32 from a PCODEC32 stream: no widening pass)
    stored_codes: Callable[[int], np.ndarray] | None = None
    out: Callable[[int], np.ndarray] | None = None  # where column j's values may be written


def _quantized(c: DecodeContext, j: int) -> np.ndarray:
    """(codes + offset) x 2e written where the decoder keeps column j (no temporaries); bit
    for bit the expression `(codes + offset) * (2.0 * e)` with codes widened to int64 first:
    the exact integer sum, rounded once to float64, then scaled."""
    if c.stored_codes is None or c.out is None:
        return (c.codes(j) + c.offsets[j]) * (2.0 * c.abs_bound(j))
    codes, out = c.stored_codes(j), c.out(j)
    if c.offsets[j] and codes.dtype != np.int32:
        np.add(codes, np.int64(c.offsets[j]), out=out, dtype=np.int64)  # |offset| <= 2^53
    else:
        np.copyto(out, codes)  # int -> float64, as the multiplication would widen it
        if c.offsets[j]:  # int32 codes and |offset| <= 2^53 are exact in float64, so the
            # float sum is the exact sum rounded once, as the int64 sum's cast: ~3x faster
            # than that add, whose int -> float output runs numpy's buffered casting loop
            np.add(out, float(c.offsets[j]), out=out)
    np.multiply(out, 2.0 * c.abs_bound(j), out=out)
    return out


def _log(c: DecodeContext, j: int) -> np.ndarray:
    """unlog of the codes as stored (int32 ones too: unlog widens where it adds the offset)
    into column j's row."""
    assert c.eps is not None
    codes = c.stored_codes(j) if c.stored_codes else c.codes(j)
    return unlog(codes, c.offsets[j], log_delta(c.eps), c.out(j) if c.out else None)


def _log_signed(c: DecodeContext, j: int) -> np.ndarray:
    assert c.eps is not None
    sign = c.flags(j)
    r = exp2((c.codes(j) + c.offsets[j]) * log_delta(c.eps)) * np.where(sign == 2, -1.0, 1.0)
    r[sign == 0] = 0.0
    return r


def _dictionary(c: DecodeContext, j: int) -> np.ndarray:
    values, codes = c.table(j), c.codes(j)
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= values.size):
        raise ContainerError(f"column {j}: dictionary codes outside its {values.size} values")
    return values[codes]


def _finite(p: np.ndarray) -> np.ndarray:
    p = np.array(p, dtype=np.float64)
    p[~np.isfinite(p)] = 0.0
    return p


def _predicted(c: DecodeContext, j: int) -> np.ndarray:
    """The finite prediction plus codes x 2(e - m), summed where column j is kept."""
    step = c.codes(j) * (2.0 * (c.abs_bound(j) - c.drift(j)))
    if c.out is None:
        return _finite(c.prediction(j)) + step
    out = c.out(j)
    np.copyto(out, c.prediction(j))
    out[~np.isfinite(out)] = 0.0
    out += step
    return out


def _autoencoder(c: DecodeContext, j: int) -> np.ndarray:
    return np.array(c.prediction(j), dtype=np.float64)


def _relative(rebuild: Callable[..., np.ndarray]) -> Callable[[DecodeContext, int], np.ndarray]:
    """Modes r and s: `rebuild(p, codes, flags, delta_r, delta)`, delta_r from the finer
    bound E_r of column j (meta.rel_eps), delta from E."""
    def decode(c: DecodeContext, j: int) -> np.ndarray:
        assert c.eps is not None
        eps_r = (c.rel_eps or [c.eps] * (j + 1))[j]
        codes = c.stored_codes(j) if c.stored_codes else c.codes(j)  # int32 as stored: the
        # rebuilds only scale and index by them (the encoder passes them as float64)
        return rebuild(_finite(c.prediction(j)), codes, c.flags(j), log_delta(eps_r),
                       log_delta(c.eps))
    return decode


_predicted_log = _relative(relog)
_predicted_scaled = _relative(rescale)


QUANTIZED = WireMode("q", "quantized", ("res",), False, True, 1, _quantized)
LOG = WireMode("g", "log", ("res",), False, True, 1, _log)
LOG_SIGNED = WireMode("l", "log, sign apart", ("res", "sign"), False, True, 0, _log_signed)
PREDICTED = WireMode("p", "predicted", ("res",), True, False, 2, _predicted)
AUTOENCODER = WireMode("a", "autoencoder only", (), True, False, 0, _autoencoder)
PREDICTED_LOG = WireMode("r", "predicted, log", ("res", "sign"), True, False, 2, _predicted_log)
DICTIONARY = WireMode("d", "dictionary", ("res", "dict"), False, False, 0, _dictionary)
PREDICTED_SCALED = WireMode("s", "predicted, pwrel, scaled", ("res", "sign"), True, False, 2,
                            _predicted_scaled)

WIRE_MODES: dict[str, WireMode] = {m.letter: m for m in (
    QUANTIZED, LOG, LOG_SIGNED, PREDICTED, AUTOENCODER, PREDICTED_LOG, DICTIONARY,
    PREDICTED_SCALED)}
MODEL_FREE = frozenset(m.letter for m in WIRE_MODES.values() if not m.needs_prediction)
PREDICTING = frozenset(m.letter for m in WIRE_MODES.values() if m.needs_prediction)
