"""Estimate the bytes the codec would write for a candidate model, without running a model.

Anchor and latent choice is made by measurement: the quantity that matters is the size of
the compressed streams at the target bound, not the reconstruction loss. Integer codes are
packed with the codec's own stream packer (`balerc.codec.packing.pack_codes`: zigzag,
narrowest width, byte shuffle, delta when it pays, zstd level 3), so the estimate tracks
the codec exactly for the streams; container headers and chunking are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from balerc.codec.bounds import Bound
from balerc.codec.packing import pack_codes

ZSTD_LEVEL = 3

__all__ = [
    "Estimate",
    "ZSTD_LEVEL",
    "column_bounds",
    "estimate_bytes",
    "parse_bound",
    "plain_codes",
    "stream_bytes",
]


def parse_bound(text: str | Bound) -> Bound:
    """Parse a training bound (abs, rel or pwrel)."""
    return Bound.parse(text)


def column_bounds(bound: Bound, y: np.ndarray) -> np.ndarray:
    """Absolute bound e per column of y (N, F) in original units, as the codec computes it.

    pwrel has no single step per column; its stand-in (for loss weights and training
    noise only: bytes are estimated in the log domain) is eps x the median magnitude.
    """
    if bound.mode == "pwrel":
        out = []
        for j in range(y.shape[1]):
            a = np.abs(y[:, j])
            m = float(np.median(a)) or float(np.mean(a)) or 1.0
            out.append(bound.value * m)
        return np.array(out, dtype=np.float64)
    return np.array([bound.absolute(y[:, j]) for j in range(y.shape[1])], dtype=np.float64)


def pwrel_plain_bytes(y: np.ndarray, eps: float) -> int:
    """Mode g (sign-folded log codes) stream of one column at pwrel eps."""
    from balerc.codec.logdomain import log_codes

    return stream_bytes(log_codes(np.asarray(y, dtype=np.float64), eps)[0])


def pwrel_residual_bytes(y: np.ndarray, p: np.ndarray, eps: float, exact: bool) -> int:
    """Mode r streams (log-ratio codes + flags) of one column against prediction p.

    The codec's finer step leaves room for runtime drift: 1/256 of eps for float64
    formula columns, about half of eps for float32 learned outputs (their drift allowance
    is range-sized).
    """
    from balerc.codec import lossless
    from balerc.codec.logdomain import relog_codes

    eps_r = eps * (1.0 - (1.0 / 256 if exact else 0.5))
    codes, flag = relog_codes(np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64), eps_r)
    return stream_bytes(codes) + len(lossless.encode_column(flag, ZSTD_LEVEL))


def stream_bytes(codes: np.ndarray) -> int:
    """Size of one column's code stream as the codec packs it."""
    return len(pack_codes(np.asarray(codes, dtype=np.int64), level=ZSTD_LEVEL))


def plain_codes(y: np.ndarray, e: float) -> np.ndarray:
    """Codes of plain quantization at bound e: round(y / 2e) (exact to e after decoding)."""
    return np.rint(np.asarray(y, dtype=np.float64) / (2.0 * e)).astype(np.int64)


MAX_CODE = 2.0**53  # codes beyond it are not exact: the codec stores such values verbatim


def quantized_bytes(y: np.ndarray, e: float) -> int:
    """Bytes of y's code stream at bound e, or 8 a value where the codes run past MAX_CODE
    (1e30 at abs:1e-3: the codec stores them as exceptions; the int64 cast had warned)."""
    q = np.asarray(y, dtype=np.float64) / (2.0 * e)
    if q.size and not np.nanmax(np.abs(q), initial=0.0) < MAX_CODE:
        return 8 * q.size
    return stream_bytes(np.rint(q).astype(np.int64))


@dataclass
class Estimate:
    """Estimated codec output for one candidate, scaled from a sample to `total_rows`."""

    rows: int
    total_rows: int
    n_columns: int
    raw_bytes: int
    anchor_bytes: dict[str, float] = field(default_factory=dict)
    latent_bytes: list[float] = field(default_factory=list)
    residual_bytes: dict[str, float] = field(default_factory=dict)
    fallback: dict[str, bool] = field(default_factory=dict)
    model_bytes: int = 0
    total_bytes: float = 0.0

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.total_bytes if self.total_bytes > 0 else float("inf")

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "total_rows": self.total_rows,
            "raw_bytes": self.raw_bytes,
            "anchor_bytes": round(sum(self.anchor_bytes.values())),
            "latent_bytes": round(sum(self.latent_bytes)),
            "residual_bytes": round(sum(self.residual_bytes.values())),
            "model_bytes": self.model_bytes,
            "total_bytes": round(self.total_bytes),
            "ratio": round(self.ratio, 4),
            "fallback_columns": sorted(k for k, v in self.fallback.items() if v),
        }


def estimate_bytes(
    y: np.ndarray,
    names: Sequence[str],
    e: np.ndarray,
    anchors: Sequence[int],
    y_hat: np.ndarray | None,
    latent_codes: np.ndarray | None = None,
    model_bytes: int = 0,
    total_rows: int | None = None,
    plain_cache: dict[int, int] | None = None,
    pwrel: float | None = None,
    exact: Sequence[int] = (),
) -> Estimate:
    """Bytes the codec would write for y (N, F, original units) under one candidate.

    anchors: column indices stored by plain quantization. y_hat: (N, P) predictions in
    original units for the other columns in order (None: no model, all plain).
    latent_codes: (N, L) integer latent codes. Each predicted column costs the smaller of
    its residual stream and its plain stream (the codec's per-column fallback). Stream
    bytes are scaled by total_rows / N; model_bytes (the embedded decoder) are added once.
    pwrel: a pointwise relative bound (e is then ignored): log-domain codes as the codec
    writes them; exact: predicted column indices computed by float64 formulas.
    """
    y = np.asarray(y, dtype=np.float64)
    n, f = y.shape
    total_rows = n if total_rows is None else int(total_rows)
    scale = total_rows / max(n, 1)
    cache = plain_cache if plain_cache is not None else {}

    def plain(j: int) -> int:
        if j not in cache:
            if pwrel is not None:
                cache[j] = pwrel_plain_bytes(y[:, j], pwrel)
            else:
                cache[j] = quantized_bytes(y[:, j], float(e[j]))
        return cache[j]

    est = Estimate(rows=n, total_rows=total_rows, n_columns=f, raw_bytes=total_rows * f * 8)
    anchor_set = set(int(a) for a in anchors)
    predicted = [j for j in range(f) if j not in anchor_set]
    for j in sorted(anchor_set):
        est.anchor_bytes[names[j]] = plain(j) * scale
    if latent_codes is not None:
        for k in range(latent_codes.shape[1]):
            est.latent_bytes.append(stream_bytes(latent_codes[:, k]) * scale)
    for i, j in enumerate(predicted):
        p = plain(j)
        if y_hat is None:
            r = p
        elif pwrel is not None:
            r = pwrel_residual_bytes(y[:, j], y_hat[:, i], pwrel, j in set(exact))
        else:
            r = quantized_bytes(y[:, j] - y_hat[:, i], float(e[j]))
        est.fallback[names[j]] = p <= r
        est.residual_bytes[names[j]] = min(p, r) * scale
    est.model_bytes = int(model_bytes)
    est.total_bytes = (
        sum(est.anchor_bytes.values())
        + sum(est.latent_bytes)
        + sum(est.residual_bytes.values())
        + est.model_bytes
    )
    return est
