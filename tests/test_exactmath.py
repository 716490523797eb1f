"""codec.exactmath: accuracy against a 40-digit decimal reference, numpy's special values,
and the same bits whatever SIMD code numpy dispatches to (pwrel files decode through these).

The environment helpers at the top (dispatchable_features, numpy_feature_env,
FEATURE_SETS) are meant for reuse by other tests that compare numpy code paths.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balerc.codec import exactmath
from balerc.codec.exactmath import exp2, log2
from balerc.codec.logdomain import log_delta

# --------------------------------------------------------- numpy CPU-dispatch environments

# NPY_DISABLE_CPU_FEATURES values to compare: numpy's default dispatch, AVX-512 minus the
# newest groups, and no AVX-512 at all (np.exp2/np.log2 then run glibc's libm on x86).
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "default": (),
    "no-avx512-icl-spr": ("AVX512_SPR", "AVX512_ICL"),
    "no-x86-v4": ("X86_V4", "AVX512_ICL", "AVX512_SPR"),
}

_DISPATCH_CODE = """
import json
try:
    from numpy._core import _multiarray_umath as m
except ImportError:  # numpy < 2
    from numpy.core import _multiarray_umath as m
print(json.dumps([f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]))
"""


def _clean_env() -> dict[str, str]:
    """os.environ without a feature override inherited from the caller."""
    env = dict(os.environ)
    env.pop("NPY_DISABLE_CPU_FEATURES", None)
    env.pop("NPY_ENABLE_CPU_FEATURES", None)
    return env


@functools.cache
def dispatchable_features(python: str = sys.executable) -> tuple[str, ...]:
    """numpy's dispatch targets that this machine supports, asked in a fresh process.

    Only these may be named in NPY_DISABLE_CPU_FEATURES: numpy versions differ on whether
    naming another is ignored or an import error.
    """
    out = subprocess.run([python, "-c", _DISPATCH_CODE], env=_clean_env(), check=True,
                         capture_output=True, text=True, timeout=120)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def numpy_feature_env(disable: Sequence[str], python: str = sys.executable
                      ) -> dict[str, str] | None:
    """Environment running numpy with those of `disable` that apply here turned off.

    Returns None when `disable` is non-empty but none of it applies on this machine (the
    run would repeat the default one), so callers can skip.
    """
    env = _clean_env()
    if not disable:
        return env
    names = [f for f in disable if f in dispatchable_features(python)]
    if not names:
        return None
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(names)
    return env


# ------------------------------------------------------------------ fixed inputs, digests


def _splitmix64(n: int, seed: int) -> np.ndarray:
    """n pseudo-random uint64 (splitmix64): the same on every numpy version and machine."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z += np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fixed_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Inputs for the pinned digest: exp2 over its whole range and the codec's grids,
    log2 over every binade (raw bit patterns: subnormals, inf and nan included)."""
    u = _splitmix64(60000, 1)
    unit = (u >> np.uint64(11)).astype(np.float64) * 2.0**-53  # [0, 1), exact
    # the codec's steps, computed without libm (math.log2 may differ across platforms)
    ctx = decimal.Context(prec=40)
    steps = [2.0 * float(ctx.divide(ctx.ln(decimal.Decimal(1.0 + eps)), ctx.ln(2)))
             * (1.0 - 1e-9) for eps in (1e-2, 1e-3, 5e-4, 1e-4)]
    grids = [np.arange(-4000, 4000) * step for step in steps]
    special = np.array([0.0, -0.0, 1.0, -1.0, 1023.5, 1024.0, -1022.0, -1074.0, -1075.0,
                        np.inf, -np.inf, np.nan, 5e-324])
    xe = np.concatenate([unit[:20000] * 2200.0 - 1100.0, unit[20000:40000] * 2.0 - 1.0,
                         unit[40000:] * 64.0 - 32.0, *grids, special])
    bits = _splitmix64(40000, 2)
    xl = np.concatenate([(bits >> np.uint64(1)).view(np.float64)[:20000],
                         unit[:20000] + 0.5, 1.0 + (unit[20000:30000] - 0.5) * 2.0**-8,
                         special])
    return xe, xl


def fixed_digest() -> str:
    """sha256 of exp2 and log2 over fixed_inputs(), little-endian float64 bytes."""
    xe, xl = fixed_inputs()
    h = hashlib.sha256()
    h.update(exp2(xe).astype("<f8").tobytes())
    h.update(log2(xl).astype("<f8").tobytes())
    return h.hexdigest()


# Changing this changes how pwrel files decode: only with a format version bump.
GOLDEN_DIGEST = "d680d5d2371eb6fa4a4dd2ab9019096ab1236e48acbae4177356819df5898fa4"

_DIGEST_CODE = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_exactmath as t
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
active = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]
print(json.dumps({{"digest": t.fixed_digest(), "active": active}}))
"""


def test_digest_is_pinned():
    assert fixed_digest() == GOLDEN_DIGEST


def test_same_bits_under_every_numpy_dispatch():
    envs = {name: numpy_feature_env(feats) for name, feats in FEATURE_SETS.items()}
    envs["no-dispatch"] = numpy_feature_env(dispatchable_features())
    envs = {name: env for name, env in envs.items() if env is not None}
    runs = {}
    for name, env in envs.items():
        out = subprocess.run([sys.executable, "-c", _DIGEST_CODE], env=env, check=True,
                             capture_output=True, text=True, timeout=300)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    if len({tuple(r["active"]) for r in runs.values()}) < 2:
        pytest.skip(f"numpy dispatches nothing that can be disabled here: {runs}")
    assert {r["digest"] for r in runs.values()} == {GOLDEN_DIGEST}, runs


# ----------------------------------------------------------------- the decimal reference

_CTX = decimal.Context(prec=40, Emin=-999999, Emax=999999)
_LN2 = _CTX.ln(decimal.Decimal(2))


def _exact_exp2(x: float) -> decimal.Decimal:
    """2^x to 40 digits."""
    return _CTX.power(decimal.Decimal(2), decimal.Decimal(x))


def _exact_log2(x: float) -> decimal.Decimal:
    """log2(x) to 40 digits (x > 0 finite)."""
    return _CTX.divide(_CTX.ln(decimal.Decimal(x)), _LN2)


def _ulp_error(got: float, exact: decimal.Decimal) -> float:
    """|got - exact| in units of the last place at |exact| (subnormal spacing below)."""
    ref = float(exact)  # correctly rounded
    if math.isinf(ref):
        return 0.0 if got == ref else math.inf
    ulp = math.ulp(abs(ref))
    below = abs(exact) < abs(decimal.Decimal(ref))
    if below and math.frexp(ref)[0] in (0.5, -0.5) and abs(ref) > 2.0**-1022:
        ulp /= 2  # rounded up to a power of two: the spacing just below it
    return float(abs(decimal.Decimal(got) - exact) / decimal.Decimal(ulp))


def _check(fn, exact_fn, xs: np.ndarray, max_ulp: float, min_correct: float) -> None:
    """Assert fn's error against the reference, and the fraction correctly rounded."""
    got = fn(xs)
    errs, correct = [], 0
    for x, g in zip(xs.tolist(), got.tolist(), strict=True):
        exact = exact_fn(x)
        errs.append(_ulp_error(g, exact))
        correct += g == float(exact)
    worst = int(np.argmax(errs))
    assert errs[worst] <= max_ulp, (xs[worst], got[worst], errs[worst])
    assert correct / len(xs) >= min_correct, correct / len(xs)


CODEC_DELTAS = [log_delta(eps) for eps in (1e-2, 1e-3, 5e-4, 1e-4)]


# -------------------------------------------------------------------------------- exp2


def test_exp2_accuracy_random():
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.uniform(-1, 1, 600), rng.uniform(-60, 60, 600),
                         rng.uniform(-1074, 1024, 400), rng.uniform(-1e-4, 1e-4, 100)])
    _check(exp2, _exact_exp2, xs, max_ulp=0.51, min_correct=0.995)


def test_exp2_codec_grids():
    rng = np.random.default_rng(12)
    xs = np.concatenate([rng.integers(-20000, 20000, 250) * d for d in CODEC_DELTAS])
    _check(exp2, _exact_exp2, xs, max_ulp=0.51, min_correct=0.99)


def test_exp2_edges():
    tiny = [5e-324, -5e-324, 1e-300, -1e-300, 2.0**-60, -(2.0**-60)]
    near_over = [1023.0, 1023.5, np.nextafter(1024.0, 0.0), 1023.9999999999]
    subnormal = [-1022.0, -1022.5, -1023.0, -1030.25, -1060.7, -1073.9, -1074.0, -1074.4,
                 -1074.6, np.nextafter(-1075.0, 0.0), -1021.9999999, -1022.0000001]
    small = list(np.linspace(-1021.99, -995.0, 150))  # tiny normal results
    ints = list(np.arange(-1074.0, 1024.0, 37.0)) + [0.0, 1.0, -1.0, 10.0]
    seams = [j / 1024 + k * 2.0**-52 for j in (1, 511, 512, 513, 1023) for k in (-1, 0, 1)]
    seams += [0.5 / 1024 + k * 2.0**-60 for k in (-2, -1, 0, 1, 2)]  # rounding ties of N
    xs = np.array(tiny + near_over + subnormal + small + ints + seams, dtype=np.float64)
    _check(exp2, _exact_exp2, xs, max_ulp=0.51, min_correct=0.97)
    assert np.array_equal(exp2(np.array(ints)), np.ldexp(1.0, np.array(ints, dtype=int)))


def test_exp2_special_values_match_numpy():
    xs = np.array([np.inf, -np.inf, np.nan, 1024.0, 1e300, -1075.0, -1076.0, -1e300,
                   -np.nextafter(1075.0, 2000.0), 2000.0, -2000.0, 0.0, -0.0])
    got = exp2(xs)
    with np.errstate(all="ignore"):
        want = np.exp2(xs)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got).any()


def test_exp2_huge_and_nan_in_a_long_array():
    """The slow path fixes only its own elements, whatever chunk they fall in."""
    rng = np.random.default_rng(13)
    xs = rng.uniform(-30, 30, 3 * exactmath._CHUNK + 17)
    pos = [0, 5, exactmath._CHUNK - 1, exactmath._CHUNK, 2 * exactmath._CHUNK + 3, len(xs) - 1]
    xs[pos] = [np.nan, 1e6, -1e6, -1074.5, 1023.99, np.inf]
    got = exp2(xs)
    one_by_one = np.array([exp2(xs[i:i + 1])[0] for i in range(0, len(xs), 97)])
    np.testing.assert_array_equal(got[::97], one_by_one)
    np.testing.assert_array_equal(got[pos], exp2(xs[pos]))
    keep = np.ones(len(xs), dtype=bool)
    keep[pos] = False
    assert np.array_equal(got[keep], exp2(xs[keep]))


# -------------------------------------------------------------------------------- log2


def test_log2_accuracy_random():
    rng = np.random.default_rng(21)
    xs = np.concatenate([np.exp(rng.uniform(-700, 700, 600)), rng.uniform(0.5, 2.0, 600),
                         1.0 + rng.uniform(-2e-3, 2e-3, 300), rng.uniform(0, 1e6, 200),
                         rng.uniform(0, 1, 100) * 2.0**-1022])
    _check(log2, _exact_log2, xs, max_ulp=0.51, min_correct=0.995)


def test_log2_edges():
    one = [np.nextafter(1.0, 0.0), np.nextafter(1.0, 2.0), 1.0 + 2.0**-30, 1.0 - 2.0**-30,
           1.0 + 2.0**-12, 1.0 - 2.0**-13, 1.0 + 2.0**-11, 1.0 - 2.0**-12]
    binades = [np.nextafter(2.0**e, s) for e in (-1022, -1, 1, 1023) for s in (0.0, np.inf)]
    sub = [5e-324, 1e-320, 2.0**-1030 * 1.5, np.nextafter(2.0**-1022, 0.0), 2.0**-1022]
    wide = [np.finfo(np.float64).max, 1e-300, 1e300, 3.0, 10.0, 0.75, 1.5, 1.4999999999]
    pow2 = [2.0**e for e in range(-1074, 1024, 41)]
    xs = np.array(one + binades + sub + wide + pow2, dtype=np.float64)
    _check(log2, _exact_log2, xs, max_ulp=0.51, min_correct=0.97)
    assert np.array_equal(log2(np.array(pow2)), np.arange(-1074, 1024, 41, dtype=np.float64))


def test_log2_special_values_match_numpy():
    xs = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, -5e-324, 1.0])
    got = log2(xs)
    with np.errstate(all="ignore"):
        want = np.log2(xs)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[-1])  # log2(1) is +0


def _non_decreasing(y: np.ndarray) -> bool:
    """Along the last axis (inf == inf counts as non-decreasing)."""
    return bool((y[..., 1:] >= y[..., :-1]).all())


def _runs(starts: np.ndarray, n: int = 16) -> np.ndarray:
    """For each start, n consecutive doubles from 8 below it upwards (rows)."""
    x = np.asarray(starts, dtype=np.float64).copy()
    for _ in range(n // 2):
        x = np.nextafter(x, -np.inf)
    cols = [x]
    for _ in range(n - 1):
        cols.append(np.nextafter(cols[-1], np.inf))
    return np.stack(cols, axis=1)


def test_log2_table_seams_are_monotonic():
    """Runs of consecutive doubles across every interval boundary of the table."""
    width = 1 << (52 - exactmath._K)
    starts = exactmath._OFF + width * np.arange(exactmath._N, dtype=np.int64)
    for k in (0, 1, -3, -1000):
        x = _runs((starts + (k << 52)).view(np.float64))
        assert _non_decreasing(log2(x))


def test_exp2_table_seams_are_monotonic():
    """Runs of consecutive doubles across every j/2^K step (and where N's rounding flips)."""
    j = np.arange(-3 * exactmath._N, 3 * exactmath._N) / exactmath._N
    for shift in (0.0, 0.5 / exactmath._N, 700.0):
        assert _non_decreasing(exp2(_runs(j + shift)))


# ------------------------------------------------------------------ properties and shapes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1100.0, 1100.0), min_size=2, max_size=60))
def test_exp2_monotonic(xs):
    assert _non_decreasing(exp2(np.sort(np.array(xs, dtype=np.float64))))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, np.inf, allow_nan=False), min_size=2, max_size=60))
def test_log2_monotonic(xs):
    assert _non_decreasing(log2(np.sort(np.array(xs, dtype=np.float64))))


@settings(max_examples=200, deadline=None)
@given(st.floats(2.0**-1022, 2.0**1023))  # above, log2 may round up to 1024: inf
def test_exp2_of_log2_round_trips(x):
    lg = log2(np.array([x]))[0]
    back = exp2(np.array([lg]))[0]
    # |log2 x| carries half an ulp of itself; 2^ turns that into a relative error ln2 * it
    assert abs(back - x) <= x * (math.log(2) * math.ulp(lg) + 2.0**-51)


def test_shapes_and_dtypes():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
    assert exp2(x).shape == (3, 4) and exp2(x).dtype == np.float64
    assert log2(x).shape == (3, 4)
    assert np.array_equal(exp2(x), exp2(x.astype(np.float64).ravel()).reshape(3, 4))
    assert exp2(np.float64(3.0)).shape == () and float(exp2(3.0)) == 8.0
    assert float(log2([8.0])[0]) == 3.0
    assert exp2(np.array([])).shape == (0,) and log2(np.zeros((0, 3))).shape == (0, 3)
    strided = np.linspace(0.5, 4, 40)[::3]
    assert np.array_equal(log2(strided), log2(strided.copy()))


@pytest.mark.parametrize("eps", [1e-2, 5e-4, 1e-6, 1e-9])
def test_fast_rounded_log2_equals_the_exact_path(eps: float) -> None:
    """logdomain.rint_log2 (numpy's log2 away from ties) gives exactly the codes of the
    exactmath path, also on values built to sit on and next to rounding boundaries."""
    from balerc.codec.logdomain import log_delta, rint_log2

    delta = log_delta(eps)
    rng = np.random.default_rng(5)
    k = rng.integers(-2000, 2000, 5000).astype(np.float64)
    ties = exp2((k + 0.5) * delta)
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, 0), ties,
                           np.nextafter(np.nextafter(ties, np.inf), np.inf)])
    wide = np.abs(rng.normal(0, 1, 20000)) * 10.0 ** rng.integers(-300, 300, 20000)
    special = np.array([5e-324, 1e-310, 2.2250738585072014e-308, 1.0, 2.0, 0.5,
                        1.7976931348623157e308, np.nextafter(1.0, 2), np.nextafter(1.0, 0)])
    x = np.concatenate([near, wide[wide > 0], special])
    assert rint_log2(x[:0], delta).shape == (0,)
    expected = np.rint(log2(x) / delta)
    assert np.array_equal(rint_log2(x, delta), expected)


@pytest.mark.parametrize("eps", [5e-4, 1e-7])
def test_fast_rounded_log2_difference_equals_the_exact_path(eps: float) -> None:
    """logdomain.rint_log2_diff (mode r codes against a prediction) gives exactly the
    exactmath path's codes, on values built to sit on rounding ties."""
    from balerc.codec.logdomain import log_delta, rint_log2_diff

    delta = log_delta(eps)
    rng = np.random.default_rng(8)
    p = np.abs(rng.normal(0, 30, 6000)) + 1e-3
    logp = log2(p)
    k = rng.integers(-300, 300, p.size).astype(np.float64)
    ties = exp2(logp + (k + 0.5) * delta)
    a = np.concatenate([ties, np.nextafter(ties, np.inf), np.nextafter(ties, 0),
                        p * np.abs(rng.normal(1, 0.01, p.size))])
    b = np.concatenate([logp, logp, logp, logp])
    assert np.array_equal(rint_log2_diff(a, b, delta), np.rint((log2(a) - b) / delta))
    assert rint_log2_diff(a[:0], b[:0], delta).shape == (0,)


def test_format_appendix_states_the_tables_and_coefficients():
    """docs/FORMAT.md, Appendix A, lets a reader rebuild exp2 and log2 without this code:
    its table digests and coefficients must be the ones the code uses."""
    from balerc.codec import exactmath as m

    doc = " ".join((Path(__file__).parents[1] / "docs" / "FORMAT.md").read_text(
        encoding="utf-8").split())  # line breaks as spaces
    e, lg = m._exp2_tables(), m._log2_tables()

    def digest(a: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(a, "<f8").tobytes()).hexdigest()[:16]

    for name, table in (("hi", e.hi), ("tail", e.tail), ("invc", lg.invc), ("lhi", lg.lhi),
                        ("lmid", lg.lmid)):
        assert f"{name} sha256 `{digest(table)}" in doc or f"{name} `{digest(table)}" in doc, name
    for k, c in enumerate(e.coef, 1):
        assert f"c{k} = {c.hex()}" in doc
    for k, c in enumerate(lg.coef, 2):
        text = c.hex()
        assert f"a{k} = {text}" in doc, (k, text)
    assert float.fromhex("0x1.71547652p+0") == lg.ih and float.fromhex("0x1.705fc2eefa2p-33") == lg.il
    assert "OFF = 0x3FE7FE0000000000" in doc and m._OFF == 0x3FE7FE0000000000
    assert "SHIFT = 0x1.8p+42" in doc and m._SHIFT == float.fromhex("0x1.8p+42")
    assert "GOLDEN_DIGEST" in doc
