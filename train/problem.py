"""The data side of a training run: selected columns, split, normalization and bounds.

Built once by `fit` and shared by the candidate search and the final training, so both
see the same split, the same normalization (fitted on the training split only) and the
same per-column bound.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from balerc.codec.bounds import Bound
from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.formats.tableio import matching, pattern_matches

from .estimate import column_bounds, parse_bound
from .normalization import ColumnNorm, fit_normalization, offsets_scales

MIN_ROWS = 20


def select_columns(table: Table, patterns: Sequence[str] | None) -> list[str]:
    """Float columns matching the glob patterns, in table order (all floats if None)."""
    floats = table.names_of_kind("float")
    if not patterns:
        if not floats:
            raise InputError(
                f"the table has no float columns to train on (columns: {table.names}); "
                f"balerc models cover float columns, others are stored losslessly"
            )
        return floats
    pats = [p.strip() for p in patterns if p and p.strip()]
    unmatched = [p for p in pats if not pattern_matches(table.names, p)]
    if unmatched:  # a typo had been skipped without a word (README: an error, not skipped)
        others = [n for n in table.names if n not in floats]
        raise InputError(f"--columns pattern(s) {unmatched} match no column; available float "
                         f"columns: {', '.join(floats[:20])}" + (
                             f" (and not float: {', '.join(others[:8])})" if others else ""))
    chosen = matching(floats, pats)
    if not chosen:
        non_float = [n for n in matching(table.names, pats) if n not in floats]
        why = (f"; {non_float} match but are not float columns (models cover float "
               f"columns; the others are stored losslessly)" if non_float else "")
        listing = (f"available float columns: {', '.join(floats)}" if floats else
                   "name float columns of DATA")  # DATA was read with --columns already
        raise InputError(f"--columns {','.join(pats)} matches no float column{why}; {listing}")
    return chosen


def check_finite(y: np.ndarray, names: Sequence[str]) -> None:
    """Refuse NaN/Inf with one message naming every bad column and its counts."""
    bad = []
    for j, n in enumerate(names):
        col = y[:, j]
        n_nan = int(np.isnan(col).sum())
        n_inf = int(np.isinf(col).sum())
        if n_nan or n_inf:
            parts = [f"{n_nan} NaN"] if n_nan else []
            parts += [f"{n_inf} Inf"] if n_inf else []
            bad.append(f"'{n}' ({' and '.join(parts)})")
    if bad:
        raise InputError(
            f"training data must be finite; column(s) {', '.join(bad)} of {len(y)} rows. "
            f"Drop or fill those rows, or leave the column(s) out with --columns"
        )


def data_sha256(table: Table, names: Sequence[str]) -> str:
    """sha256 over the training columns' raw bytes (original dtype, C order, manifest order)."""
    h = hashlib.sha256()
    for n in names:
        h.update(np.ascontiguousarray(table[n]).tobytes())
    return h.hexdigest()


def decoded_anchors(y: np.ndarray, anchors: Sequence[int], e: np.ndarray,
                    pwrel: float | None = None) -> np.ndarray:
    """Anchors in column units exactly as the codec decodes them: 2e round(y/2e), or at a
    pwrel bound the log-domain reconstruction (mode g)."""
    idx = list(anchors)
    if not idx:
        return np.zeros((y.shape[0], 0), dtype=np.float64)
    if pwrel is not None:
        from balerc.codec.logdomain import log_codes

        return np.stack([log_codes(np.ascontiguousarray(y[:, j]), pwrel)[2] for j in idx], axis=1)
    ea = e[idx]
    return 2.0 * ea * np.rint(y[:, idx] / (2.0 * ea))


def quantize_anchors(
    y: np.ndarray, anchors: Sequence[int], e: np.ndarray, offset: np.ndarray, scale: np.ndarray,
    pwrel: float | None = None,
) -> np.ndarray:
    """Normalized anchors exactly as the codec decodes them: (decoded - offset) / scale."""
    idx = list(anchors)
    return (decoded_anchors(y, idx, e, pwrel) - offset[idx]) / scale[idx]


@dataclass
class Problem:
    names: list[str]
    norms: list[ColumnNorm]
    offset: np.ndarray
    scale: np.ndarray
    bound: str
    e: np.ndarray  # per-column absolute bound, original units
    e_n: np.ndarray  # the same in normalized units
    y_train: np.ndarray
    y_val: np.ndarray
    total_rows: int
    data_sha256: str
    pw: float | None = None  # a pwrel bound's eps (e is then only a stand-in for weights)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def normalize(self, y: np.ndarray) -> np.ndarray:
        return (y - self.offset) / self.scale

    def anchor_inputs(self, y: np.ndarray, anchors: Sequence[int]) -> np.ndarray:
        """Normalized anchors of rows y as the codec decodes them (the decoder's input)."""
        return quantize_anchors(y, anchors, self.e, self.offset, self.scale, self.pw)

    def weights(self, predicted: Sequence[int]) -> np.ndarray:
        """Loss weight per predicted column so the loss counts error in units of the bound.

        Bytes depend on residual / e; with minmax and a rel bound all weights are 1.
        Clipped so a constant column (tiny e) cannot swamp the others.
        """
        idx = list(predicted)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            w = (self.scale[idx] / self.e[idx]) ** 2
            if not (np.isfinite(w).all() and w.all()):  # a subnormal column: e underflows
                logw = np.nan_to_num(2.0 * (np.log(self.scale[idx]) - np.log(self.e[idx])),
                                     nan=0.0, posinf=1e3, neginf=-1e3)
                w = np.exp(np.clip(logw - np.median(logw), -50.0, 50.0))
        w = w / np.median(w)
        return np.clip(w, 1e-2, 1e2)


def _check_bound_leaves_work(b: Bound, e: np.ndarray, y: np.ndarray, names: Sequence[str]) -> None:
    """A bound as wide as every column's range stores each value as one code: no model
    can save anything, and a huge one (rel:1e300) overflowed the training loss."""
    if b.mode == "pwrel" or not len(y):
        return
    spans = y.max(axis=0) - y.min(axis=0)
    if np.all(e >= spans):
        raise InputError(f"--bound {b}: the bound covers the whole range of every column "
                         f"({', '.join(names[:4])}{' ...' if len(names) > 4 else ''}), so each "
                         f"value is stored as one code and no model can save anything; "
                         f"train for a smaller bound (e.g. rel:1e-3)")


def build_problem(table: Table, names: list[str], norm: str, bound: str, val_fraction: float,
                  seed: int, norm_columns: Mapping[str, str] | None = None) -> Problem:
    """Check the data, split it (shuffled, seeded), fit normalization on the training part."""
    n = table.n_rows
    if n < MIN_ROWS:
        raise InputError(f"training needs at least {MIN_ROWS} rows, the table has {n}")
    y = table.to_numpy(names, dtype=np.float64)
    check_finite(y, names)
    b = parse_bound(bound)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - MIN_ROWS // 2, max(1, round(n * val_fraction)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    y_train, y_val = y[train_idx], y[val_idx]
    norms = fit_normalization(y_train, names, norm, norm_columns)
    off, sc = offsets_scales(norms)
    e = column_bounds(b, y_train)
    _check_bound_leaves_work(b, e, y_train, names)
    return Problem(
        names=list(names), norms=norms, offset=off, scale=sc, bound=str(b), e=e, e_n=e / sc,
        y_train=y_train, y_val=y_val, total_rows=n, data_sha256=data_sha256(table, names),
        pw=b.value if b.mode == "pwrel" else None,
    )
