"""The bounded codec without a model (plain quantization path): the bound on every value."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from balerc.codec.ae import compress_with_model
from balerc.codec.bounds import Bound
from balerc.codec.pipeline import read_container
from balerc.formats.errors import InputError
from balerc.formats.table import Table


def assert_within(orig: Table, back: Table, bound: Bound) -> None:
    """Exact float64 check of the bound on every value; non-float columns bit-exact."""
    assert back.names == orig.names
    for name in orig.names:
        y, r = orig[name], back[name]
        assert r.dtype == y.dtype, name
        if orig.kind(name) != "float":
            assert orig.select([name]).equals(back.select([name])), name
            continue
        y64, r64 = y.astype(np.float64), r.astype(np.float64)
        fin = np.isfinite(y64)
        # non-finite values come back bit-exact
        assert np.array_equal(y[~fin].view(np.uint8), r[~fin].view(np.uint8)), name
        if bound.mode == "pwrel":
            limit = bound.value * np.abs(y64[fin])
        else:
            limit = bound.absolute(y64)
        err = np.abs(y64[fin] - r64[fin])
        assert np.all(err <= limit), (name, float(np.max(err - limit)))


def roundtrip(table: Table, bound: str, **kw) -> tuple[Table, int]:
    buf = io.BytesIO()
    res = compress_with_model(table, buf, model_dir=None, bound=bound, **kw)
    return read_container(buf.getvalue(), threads=kw.get("threads", 1)), res.file_bytes


@pytest.mark.parametrize("bound", ["abs:0.01", "rel:1e-3", "rel:1e-5", "pwrel:1e-3", "pwrel:5e-4"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bound_holds_every_mode(mixed_table, bound, threads):
    back, _ = roundtrip(mixed_table, bound, chunk_rows=700, threads=threads)
    assert_within(mixed_table, back, Bound.parse(bound))


def test_real_zmumu_every_bound():
    from balerc.formats.tableio import read_table
    from conftest import shared_file

    t = read_table(shared_file("uproot-Zmumu.root"))
    for b in ("rel:1e-2", "rel:1e-4", "abs:0.5", "pwrel:1e-3"):
        back, size = roundtrip(t, b, chunk_rows=1000)
        assert_within(t, back, Bound.parse(b))
        assert size < t.nbytes / 2


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e300, max_value=1e300),
    st.floats(min_value=-1e-300, max_value=1e-300),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    col=arrays(np.float64, st.integers(1, 300), elements=finite_or_not),
    col32=arrays(np.float32, 300, elements=st.floats(width=32, allow_nan=True)),
    const=st.floats(-1e6, 1e6),
    bound=st.sampled_from(["abs:1e-3", "rel:1e-3", "rel:1e-7", "pwrel:1e-3", "abs:1e-300"]),
)
def test_bound_holds_on_extreme_tables(col, col32, const, bound):
    n = len(col)
    t = Table({"a": col, "b": col32[:n], "c": np.full(n, const)})
    back, _ = roundtrip(t, bound, chunk_rows=64)
    assert_within(t, back, Bound.parse(bound))


@pytest.mark.parametrize("text", ["rel:0", "abs:-1", "rel:abc", "foo:1e-3", "rel:nan", "pwrel:2",
                                  "pwrel:1e-16", "pwrel:1e-14", "pwrel:1e-300"])
def test_bad_bounds_are_refused(text):
    with pytest.raises(InputError):
        Bound.parse(text)


def test_pwrel_down_to_its_floor_holds_on_extreme_values():
    """The smallest pointwise bound taken (2^-43: mode g codes of any finite value stay
    within 2^52; a file written at 2^-52 once had offsets its reader refused, and below
    2^-53 the log step was 0) decodes and holds on every value, subnormals to 1e300."""
    rng = np.random.default_rng(1)
    y = rng.lognormal(0, 3, 500) * rng.choice([-1, 1], 500)
    y[:6] = [1e-300, -1e300, 5e-324, 2.0**1023, -0.0, 1.0]
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32: stored verbatim
        t = Table({"a": y, "b": y[::-1].astype(np.float32)})
    bound = f"pwrel:{2.0 ** -43!r}"
    back, _ = roundtrip(t, bound)
    assert_within(t, back, Bound.parse(bound))
    with pytest.raises(InputError, match="at least 1.14e-13"):
        Bound.parse(f"pwrel:{2.0 ** -44!r}")


def test_table_without_floats_is_stored_losslessly_under_a_bound():
    """A bound on a table of integers only was an error (one such file stopped a batch,
    while a file of sections stored such a section losslessly): every column is stored
    bit-exact, which holds any bound, and the summary says so."""
    t = Table({"i": np.arange(10), "flag": np.arange(10) % 2 == 0})
    buf = io.BytesIO()
    res = compress_with_model(t, buf, model_dir=None, bound="rel:1e-3")
    assert any("no float columns (2 column(s) of bool, int64): stored losslessly" in n
               for n in res.extra["notes"])
    assert read_container(buf.getvalue()).equals(t)


def test_pwrel_summary_reports_relative_error():
    from balerc.codec.api import format_summary

    rng = np.random.default_rng(2)
    t = Table({"a": rng.lognormal(0, 3, 5000) * rng.choice([-1, 1], 5000), "b": rng.normal(size=5000)})
    res = compress_with_model(t, io.BytesIO(), model_dir=None, bound="pwrel:1e-3")
    for row in res.extra["errors"]:
        assert 0.9 < row["max_over_bound"] <= 1.0, row  # measured max |y-y'|/|y| over 1e-3
        assert row["max_rel"] == pytest.approx(row["max_over_bound"] * 1e-3)
    assert "0.001*|y|" in format_summary(res, verbose=True)
    assert "0.001*|y|" not in format_summary(res) and len(format_summary(res).splitlines()) <= 2


@pytest.mark.parametrize("bound", ["abs:1e-3", "rel:1e-3", "pwrel:1e-3"])
def test_summary_rms_is_over_the_finite_values(bound):
    """NaN and Inf come back exactly; they had counted as zero errors in the RMS (1% of
    non-finite values lowered it by 0.5%), which `evaluate` takes over finite values."""
    rng = np.random.default_rng(4)
    a = rng.normal(3.0, 1.0, 20_000)
    a[rng.choice(a.size, 2_000, replace=False)] = rng.choice([np.nan, np.inf, -np.inf], 2_000)
    t = Table({"a": a, "b": rng.normal(size=a.size)})
    buf = io.BytesIO()
    res = compress_with_model(t, buf, model_dir=None, bound=bound)
    back = read_container(buf.getvalue())
    for row in res.extra["errors"]:
        y, d = t[row["name"]], back[row["name"]]
        fin = np.isfinite(y)
        assert np.array_equal(y[~fin], d[~fin], equal_nan=True)
        assert row["rms"] == pytest.approx(np.sqrt(np.mean((y[fin] - d[fin]) ** 2)), rel=1e-9)
