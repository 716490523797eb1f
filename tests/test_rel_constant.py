"""A rel bound on a zero-range column (constant, or a one-row table) stores it exactly."""

from __future__ import annotations

import numpy as np
import pytest

from balerc.codec.bounds import Bound
from balerc.codec.codec import Codec
from balerc.formats.table import Table


def columns(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"vel": np.full(n, 0.025), "f32": np.full(n, -3.3, dtype=np.float32),
            "zero": np.zeros(n), "huge": np.full(n, 1.7e300), "small": np.full(n, 3e-290),
            "x": rng.normal(size=n)}


@pytest.mark.parametrize("rows", [1, 2, 4000])
@pytest.mark.parametrize("bound", ["rel:1e-3", "rel:0.2"])
def test_constant_columns_come_back_bit_identical(rows: int, bound: str) -> None:
    cols = columns(rows)
    if rows == 2:
        cols["x"] = np.array([5.5, 5.5])  # a two-row table whose rows agree
    out = Codec().decompress(Codec().compress(Table(cols), bound=bound))
    for name, y in cols.items():
        back = np.asarray(out[name])
        if rows == 4000 and name == "x":
            lim = Bound.parse(bound).absolute(y)
            assert np.abs(back - y).max() <= lim and lim == Bound.parse(bound).value * np.ptp(y)
        else:
            assert back.dtype == y.dtype and np.array_equal(back, y), (name, back[:2], y[:2])


def test_zero_range_limit_is_a_power_of_two_fraction() -> None:
    b = Bound.parse("rel:1e-3")
    assert b.absolute_from_range(0.025, 0.025) == 0.025 * 2.0**-24
    assert b.absolute_from_range(0.0, 0.0) == 1e-3  # 0 is reproduced under any limit
    assert b.absolute_from_range(-2.0, 3.0) == 5e-3
