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

from balerc.codec.bound import Bound
from balerc.codec.packing import pack_codes
from balerc.formats.errors import InputError

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
    """Parse a training bound; only abs and rel give one number per column to train for."""
    bound = Bound.parse(text)
    if bound.mode not in ("abs", "rel"):
        raise InputError(
            f"--bound {text}: training selects anchors for an abs or rel bound; "
            f"use e.g. rel:1e-3 (a pwrel bound has no single per-column step)"
        )
    return bound


def column_bounds(bound: Bound, y: np.ndarray) -> np.ndarray:
    """Absolute bound e per column of y (N, F) in original units, as the codec computes it."""
    return np.array([bound.absolute(y[:, j]) for j in range(y.shape[1])], dtype=np.float64)


def stream_bytes(codes: np.ndarray) -> int:
    """Size of one column's code stream as the codec packs it."""
    return len(pack_codes(np.asarray(codes, dtype=np.int64), level=ZSTD_LEVEL))


def plain_codes(y: np.ndarray, e: float) -> np.ndarray:
    """Codes of plain quantization at bound e: round(y / 2e) (exact to e after decoding)."""
    return np.rint(np.asarray(y, dtype=np.float64) / (2.0 * e)).astype(np.int64)


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
) -> Estimate:
    """Bytes the codec would write for y (N, F, original units) under one candidate.

    anchors: column indices stored by plain quantization. y_hat: (N, P) predictions in
    original units for the other columns in order (None: no model, all plain).
    latent_codes: (N, L) integer latent codes. Each predicted column costs the smaller of
    its residual stream and its plain stream (the codec's per-column fallback). Stream
    bytes are scaled by total_rows / N; model_bytes (the embedded decoder) are added once.
    """
    y = np.asarray(y, dtype=np.float64)
    n, f = y.shape
    total_rows = n if total_rows is None else int(total_rows)
    scale = total_rows / max(n, 1)
    cache = plain_cache if plain_cache is not None else {}

    def plain(j: int) -> int:
        if j not in cache:
            cache[j] = stream_bytes(plain_codes(y[:, j], float(e[j])))
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
        else:
            r = stream_bytes(plain_codes(y[:, j] - y_hat[:, i], float(e[j])))
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
