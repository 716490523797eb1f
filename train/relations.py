"""Exact relations between columns, found on the training data: four-vectors, pair masses,
linear identities (sums, differences, fractions adding to one, copies).

A relation lets the decoder compute a column from the decoded anchors with a formula, so its
residual costs almost nothing (it only carries the anchors' quantization noise and whatever
the source file rounded). Detection never trusts names alone: every relation is confirmed
numerically, and a column whose values do not follow it is simply not derived. The codec's
residual path keeps the bound on rows that violate a relation (corrupted or rounded values).
Four-vector groups (declared with --four-vector, or found by name) come from fourvec.py.

Formulas are written once against a tiny op interface (`Ops`) so that the torch reference
(train/physics.py), the ONNX graph built from it and the detection here compute the same
thing in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import fourvec
from .fourvec import CARTESIAN, POLAR, FourVector

# Acceptance of a relation on the data: at least EXACT_FRACTION of the rows within
# EXACT_REL relative, or CLOSE_FRACTION within CLOSE_RANGE of the column's range (source
# files that rounded a derived column, e.g. Zmumu's pt, still gain from the formula).
EXACT_REL = 1e-6
EXACT_FRACTION = 0.5
CLOSE_RANGE = 1e-2
CLOSE_FRACTION = 0.9
DETECT_ROWS = 20000
LINEAR_FIT_ROWS = 4096
LINEAR_TEST_ROWS = 2048
LINEAR_TOL = 1e-6  # relative to the target's largest magnitude
LINEAR_MAX_SOURCES = 8


# ---------------------------------------------------------------------------- structures
@dataclass
class PairMass:
    """Column `name` is the invariant mass of four-vectors `a` + `b` (labels)."""

    name: str
    a: str
    b: str

    def to_json(self) -> dict[str, Any]:
        return {"column": self.name, "pair": [self.a, self.b]}


@dataclass
class Linear:
    """target = intercept + sum(coef_k * source_k), exact on the training data."""

    target: str
    sources: list[str]
    coefs: list[float]
    intercept: float

    def to_json(self) -> dict[str, Any]:
        return {"column": self.target, "sources": list(self.sources),
                "coefs": [float(c) for c in self.coefs], "intercept": float(self.intercept)}


@dataclass
class Relations:
    groups: list[FourVector] = field(default_factory=list)
    pairs: list[PairMass] = field(default_factory=list)
    linear: list[Linear] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.groups or self.pairs or self.linear)


@dataclass
class Plan:
    """A concrete choice: which columns are anchors and how each derived column is made."""

    relations: Relations
    basis: dict[str, str]  # group label -> "cartesian" | "polar"
    derived: list[str]  # columns computed by formulas, in evaluation order
    anchors_needed: list[str]  # columns the formulas read

    def to_json(self) -> dict[str, Any]:
        return {
            "four_vectors": [dict(g.to_json(), basis=self.basis.get(g.label))
                             for g in self.relations.groups if g.label in self.basis],
            "pair_masses": [p.to_json() for p in self.relations.pairs if p.name in self.derived],
            "linear": [r.to_json() for r in self.relations.linear if r.target in self.derived],
            "derived": list(self.derived),
        }


# ---------------------------------------------------------------------------- formulas
class Ops:
    """Primitive ops the formulas use; implemented for torch (float64) and ONNX."""

    def const(self, v: float) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def sqrt(self, a: Any) -> Any: ...
    def log(self, a: Any) -> Any: ...
    def exp(self, a: Any) -> Any: ...
    def abs(self, a: Any) -> Any: ...
    def sign(self, a: Any) -> Any: ...
    def sin(self, a: Any) -> Any: ...
    def cos(self, a: Any) -> Any: ...
    def relu(self, a: Any) -> Any: ...
    def atan32(self, a: Any) -> Any: ...  # atan evaluated in float32, result float64
    def where_gt0(self, c: Any, a: Any, b: Any) -> Any: ...
    def where_lt0(self, c: Any, a: Any, b: Any) -> Any: ...
    def where_eq0(self, c: Any, a: Any, b: Any) -> Any: ...


def atan2(o: Ops, y: Any, x: Any) -> Any:
    """atan2 from a float32 atan, quadrant selection and one float64 Newton step.

    ONNX Runtime has no double Atan on CPU; the Newton step on f(phi) = y cos(phi) -
    x sin(phi) takes the float32 estimate (error ~1e-7) to float64 precision. x = 0 gives
    sign(y) pi/2 (0 when y = 0 too).
    """
    t = o.atan32(o.div(y, x))
    pi = o.const(math.pi)
    left = o.where_lt0(y, o.sub(t, pi), o.add(t, pi))
    base = o.where_gt0(x, t, left)
    base = o.where_eq0(x, o.mul(o.sign(y), o.const(math.pi / 2)), base)
    c, s = o.cos(base), o.sin(base)
    num = o.sub(o.mul(y, c), o.mul(x, s))
    den = o.add(o.mul(x, c), o.mul(y, s))
    step = o.where_gt0(den, o.div(num, den), o.const(0.0))
    return o.add(base, step)


def group_values(o: Ops, g: FourVector, basis: str, v: dict[str, Any]) -> dict[str, Any]:
    """Every kinematic quantity of g from its basis (+ mass source) in v (role -> value)."""
    out: dict[str, Any] = {}
    if basis == "cartesian":
        px, py, pz = v["px"], v["py"], v["pz"]
        pt2 = o.add(o.mul(px, px), o.mul(py, py))
        pt = o.sqrt(pt2)
        p2 = o.add(pt2, o.mul(pz, pz))
        p = o.sqrt(p2)
        out.update(px=px, py=py, pz=pz, pt=pt,
                   eta=o.mul(o.sign(pz), o.log(o.div(o.add(o.abs(pz), p), pt))),
                   phi=atan2(o, py, px))
    else:
        pt, eta, phi = v["pt"], v["eta"], v["phi"]
        ex = o.exp(eta)
        inv = o.div(o.const(1.0), ex)
        half = o.const(0.5)
        sinh = o.mul(o.sub(ex, inv), half)
        cosh = o.mul(o.add(ex, inv), half)
        p = o.mul(pt, cosh)
        p2 = o.mul(p, p)
        out.update(pt=pt, eta=eta, phi=phi, px=o.mul(pt, o.cos(phi)), py=o.mul(pt, o.sin(phi)),
                   pz=o.mul(pt, sinh))
    if g.mass is not None:
        m = o.const(g.mass)
        out["m"] = m
        out["E"] = o.sqrt(o.add(p2, o.const(g.mass * g.mass)))
    elif "m" in v:
        out["m"] = v["m"]
        out["E"] = o.sqrt(o.add(p2, o.mul(v["m"], v["m"])))
    elif "E" in v:
        out["E"] = v["E"]
        out["m"] = o.sqrt(o.relu(o.sub(o.mul(v["E"], v["E"]), p2)))
    return out


def pair_mass(o: Ops, a: dict[str, Any], b: dict[str, Any]) -> Any:
    e = o.add(a["E"], b["E"])
    m2 = o.mul(e, e)
    for r in ("px", "py", "pz"):
        s = o.add(a[r], b[r])
        m2 = o.sub(m2, o.mul(s, s))
    return o.sqrt(o.relu(m2))


def mass_source(g: FourVector) -> str | None:
    """Which column fixes the mass when it is not constant: m if present, else E."""
    if g.mass is not None:
        return None
    if "m" in g.cols:
        return "m"
    if "E" in g.cols:
        return "E"
    return None


def anchor_roles(g: FourVector, basis: str) -> list[str]:
    roles = list(CARTESIAN if basis == "cartesian" else POLAR)
    ms = mass_source(g)
    if ms is not None:
        roles.append(ms)
    return roles


def evaluate(o: Ops, plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
    """Derived columns (name -> value) from anchor values (name -> value, original units)."""
    rel = plan.relations
    derived = set(plan.derived)
    out: dict[str, Any] = {}
    kin: dict[str, dict[str, Any]] = {}
    for g in rel.groups:
        basis = plan.basis.get(g.label)
        if basis is None:
            continue
        v = {r: values[g.cols[r]] for r in anchor_roles(g, basis)}
        kin[g.label] = group_values(o, g, basis, v)
        for role, col in g.cols.items():
            if col in derived and role in kin[g.label]:
                out[col] = kin[g.label][role]
    for pm in rel.pairs:
        if pm.name in derived:
            out[pm.name] = pair_mass(o, kin[pm.a], kin[pm.b])
    for lr in rel.linear:
        if lr.target in derived:
            acc = o.const(lr.intercept)
            for c, s in zip(lr.coefs, lr.sources, strict=True):
                acc = o.add(acc, o.mul(o.const(c), values[s] if s in values else out[s]))
            out[lr.target] = acc
    return out


# ---------------------------------------------------------------------------- numpy ops
class NumpyOps(Ops):
    """float64 numpy implementation (detection on the data; the torch module is the reference)."""

    def const(self, v):
        return np.float64(v)

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def div(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return a / b

    def sqrt(self, a):
        with np.errstate(invalid="ignore"):
            return np.sqrt(a)

    def log(self, a):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    def exp(self, a):
        with np.errstate(over="ignore"):
            return np.exp(a)

    def abs(self, a):
        return np.abs(a)

    def sign(self, a):
        return np.sign(a)

    def sin(self, a):
        return np.sin(a)

    def cos(self, a):
        return np.cos(a)

    def relu(self, a):
        return np.maximum(a, 0.0)

    def atan32(self, a):
        return np.arctan(np.asarray(a, dtype=np.float32)).astype(np.float64)

    def where_gt0(self, c, a, b):
        return np.where(c > 0, a, b)

    def where_lt0(self, c, a, b):
        return np.where(c < 0, a, b)

    def where_eq0(self, c, a, b):
        return np.where(c == 0, a, b)


# ---------------------------------------------------------------------------- detection
def agreement(y: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """(fraction of rows within EXACT_REL relative, fraction within CLOSE_RANGE x range)."""
    y = np.asarray(y, dtype=np.float64)
    f = np.broadcast_to(np.asarray(f, dtype=np.float64), y.shape)
    with np.errstate(invalid="ignore"):
        d = np.abs(y - f)
        exact = d <= EXACT_REL * np.maximum(np.abs(y), 1e-30)
        rng = float(np.nanmax(y) - np.nanmin(y)) if y.size else 0.0
        close = d <= CLOSE_RANGE * max(rng, 1e-30)
    return float(np.mean(exact)) if y.size else 0.0, float(np.mean(close)) if y.size else 0.0


def holds(y: np.ndarray, f: np.ndarray) -> bool:
    ex, cl = agreement(y, f)
    return ex >= EXACT_FRACTION or cl >= CLOSE_FRACTION


def _find_mass(g: FourVector, data: dict[str, np.ndarray]) -> float | None:
    """A constant mass for g if E (or m) agrees with one on the data, else None."""
    o = NumpyOps()
    if "m" in g.cols:
        m = data[g.cols["m"]]
        m0 = float(np.median(m))
        if holds(m, np.full_like(m, m0)) and agreement(m, m0)[0] >= 0.9:
            return m0
        return None
    if "E" not in g.cols:
        return None
    basis = g.bases()[0]
    v = {r: data[g.cols[r]] for r in (CARTESIAN if basis == "cartesian" else POLAR)}
    probe = FourVector(g.label, g.cols, mass=0.0)
    kin = group_values(o, probe, basis, v)
    e = data[g.cols["E"]]
    p2 = kin["E"] ** 2
    # The mass from the rows with the least cancellation (smallest momentum).
    m2 = e * e - p2
    low = p2 <= np.quantile(p2, 0.25)
    m0 = float(np.sqrt(max(float(np.median(m2[low])), 0.0)))
    for cand in (m0, 0.0):
        probe.mass = cand
        if agreement(e, group_values(o, probe, basis, v)["E"])[0] >= EXACT_FRACTION:
            return cand
    return None


def confirm_group(g: FourVector, data: dict[str, np.ndarray]) -> FourVector | None:
    """Numerically check which derived roles of g hold; None when none does."""
    o = NumpyOps()
    g.mass = _find_mass(g, data)
    ok: dict[str, float] = {}
    for basis in g.bases():
        v = {r: data[g.cols[r]] for r in anchor_roles(g, basis)}
        kin = group_values(o, g, basis, v)
        for role, col in g.cols.items():
            if role in v or role not in kin:
                continue
            if holds(data[col], kin[role]):
                ok[role] = max(ok.get(role, 0.0), agreement(data[col], kin[role])[0])
    g.confirmed = ok
    return g if (ok or g.declared) else None


def detect(names: Sequence[str], y: np.ndarray, declared: Sequence[str] = (),
           linear: bool = True, seed: int = 0) -> Relations:
    """All relations that hold on y (N, F, original units, finite), names in column order."""
    names = list(names)
    rng = np.random.default_rng(seed)
    rows = y if len(y) <= DETECT_ROWS else y[np.sort(rng.choice(len(y), DETECT_ROWS, replace=False))]
    data = {n: rows[:, j] for j, n in enumerate(names)}
    rel = Relations()
    rel.groups = [g for g in fourvec.groups(declared, names) if confirm_group(g, data) is not None]
    # Pair masses: any remaining column equal to the invariant mass of two groups.
    o = NumpyOps()
    kins = {}
    for g in rel.groups:
        basis = g.bases()[0]
        v = {r: data[g.cols[r]] for r in anchor_roles(g, basis)}
        k = group_values(o, g, basis, v)
        if "E" in k:
            kins[g.label] = k
    grouped = {c for g in rel.groups for c in g.cols.values()}
    for n in names:
        if n in grouped:
            continue
        found = False
        for i, a in enumerate(kins):
            for b in list(kins)[i + 1:]:
                if holds(data[n], pair_mass(o, kins[a], kins[b])):
                    rel.pairs.append(PairMass(n, a, b))
                    found = True
                    break
            if found:
                break
    if linear:
        skip = grouped | {p.name for p in rel.pairs}
        rel.linear = detect_linear(names, rows, skip, seed)
    return rel


def detect_linear(names: Sequence[str], y: np.ndarray, skip: set[str] = frozenset(),
                  seed: int = 0) -> list[Linear]:
    """Columns that are an exact affine combination of other columns.

    Least squares on LINEAR_FIT_ROWS rows, the exactness test on LINEAR_TEST_ROWS other rows
    (a fit on as many rows as unknowns fits anything; a held-out test does not). A column
    is explained by the earlier non-derived columns (a conditional order: the table's own),
    so a derived column is never a source.
    """
    names = list(names)
    n, f = y.shape
    pool = [j for j in range(f) if names[j] not in skip and np.ptp(y[:, j]) > 0]
    if len(pool) < 2 or n < 4 * (len(pool) + 1) + 50:
        return []
    perm = np.random.default_rng(seed + 11).permutation(n)
    n_fit = min(LINEAR_FIT_ROWS, (2 * n) // 3)
    fit_i, test_i = perm[:n_fit], perm[n_fit: n_fit + LINEAR_TEST_ROWS]
    mu = y[fit_i].mean(0)
    sd = y[fit_i].std(0)
    sd[sd == 0] = 1.0
    out: list[Linear] = []
    derived: set[int] = set()
    for t in pool:
        src = [j for j in pool if j < t and j not in derived]
        if not src:
            continue
        coef = _lstsq(y, fit_i, src, t, mu, sd)
        if coef is None or not _exact(y, test_i, src, t, coef, mu, sd):
            continue
        # Sparsify: drop negligible sources, refit, keep only if still exact.
        keep = [s for s, c in zip(src, coef[1:], strict=True) if abs(c) > 1e-7]
        if not keep or len(keep) > LINEAR_MAX_SOURCES:
            continue
        coef = _lstsq(y, fit_i, keep, t, mu, sd)
        if coef is None or not _exact(y, test_i, keep, t, coef, mu, sd):
            continue
        # Back to original units: y_t = mu_t + sd_t (c0 + sum c_k (y_k - mu_k) / sd_k).
        ck = [float(coef[1 + i] * sd[t] / sd[s]) for i, s in enumerate(keep)]
        ck = [_snap(c) for c in ck]
        icpt = float(mu[t] + sd[t] * coef[0] - sum(c * mu[s] for c, s in zip(ck, keep, strict=True)))
        icpt = _snap(icpt)
        pred = icpt + y[test_i][:, keep] @ np.asarray(ck)
        if not _within(y[test_i, t], pred):
            continue
        out.append(Linear(names[t], [names[s] for s in keep], ck, icpt))
        derived.add(t)
    return out


def _lstsq(y, rows, src, t, mu, sd):
    a = (y[np.ix_(rows, src)] - mu[src]) / sd[src]
    a = np.hstack([np.ones((len(rows), 1)), a])
    b = (y[rows, t] - mu[t]) / sd[t]
    try:
        coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    except np.linalg.LinAlgError:
        return None
    return coef


def _exact(y, rows, src, t, coef, mu, sd) -> bool:
    a = (y[np.ix_(rows, src)] - mu[src]) / sd[src]
    pred = mu[t] + sd[t] * (coef[0] + a @ coef[1:])
    return _within(y[rows, t], pred)


def _within(y: np.ndarray, pred: np.ndarray) -> bool:
    tol = LINEAR_TOL * max(float(np.max(np.abs(y))), 1e-300)
    return float(np.mean(np.abs(y - pred) <= tol)) >= 0.99


def _snap(c: float) -> float:
    """Round a coefficient to a nearby simple value (integer, 1/2^k) when it is that close."""
    for den in (1, 2, 4, 8, 16, 64, 256, 1024):
        r = round(c * den) / den
        if abs(r - c) <= 1e-9 * max(1.0, abs(c)):
            return r
    return c


# ---------------------------------------------------------------------------- plans
def make_plan(rel: Relations, names: Sequence[str], basis: dict[str, str] | None = None) -> Plan:
    """Derived columns and the anchors the formulas need, for a basis per group."""
    names = list(names)
    chosen: dict[str, str] = {}
    derived: list[str] = []
    needed: list[str] = []
    for g in rel.groups:
        b = (basis or {}).get(g.label) or g.bases()[0]
        if b not in g.bases():
            continue
        roles = anchor_roles(g, b)
        outs = [c for r, c in g.cols.items() if r not in roles and r in g.confirmed]
        chosen[g.label] = b
        needed += [g.cols[r] for r in roles]
        derived += outs
    for pm in rel.pairs:
        if pm.a in chosen and pm.b in chosen:
            derived.append(pm.name)
    for lr in rel.linear:
        if lr.target in derived or any(s in derived for s in lr.sources):
            continue
        derived.append(lr.target)
        needed += lr.sources
    # A column some formula needs is never derived itself.
    derived = [c for c in derived if c not in needed]
    # Keep groups only if they derive something.
    used = {g.label for g in rel.groups
            if g.label in chosen and (any(c in derived for c in g.cols.values())
                                      or any(p.name in derived and g.label in (p.a, p.b)
                                             for p in rel.pairs))}
    chosen = {k: v for k, v in chosen.items() if k in used}
    needed = [c for g in rel.groups if g.label in chosen
              for c in (g.cols[r] for r in anchor_roles(g, chosen[g.label]))]
    needed += [s for lr in rel.linear if lr.target in derived for s in lr.sources]
    derived = [c for c in derived if c not in needed]
    order = {n: i for i, n in enumerate(names)}
    return Plan(rel, chosen, sorted(set(derived), key=order.__getitem__),
                sorted(set(needed), key=order.__getitem__))


def candidate_plans(rel: Relations, names: Sequence[str]) -> list[Plan]:
    """One plan per basis assignment: all-cartesian, all-polar (where possible)."""
    plans = []
    seen = set()
    for pref in ("cartesian", "polar"):
        basis = {g.label: (pref if pref in g.bases() else g.bases()[0]) for g in rel.groups}
        key = tuple(sorted(basis.items()))
        if key in seen:
            continue
        seen.add(key)
        p = make_plan(rel, names, basis)
        if p.derived:
            plans.append(p)
    return plans


def describe(rel: Relations) -> list[str]:
    lines = []
    for g in rel.groups:
        m = "" if g.mass is None else f", mass {g.mass:.6g}"
        lines.append(f"four-vector {g.label}: {g.cols}{m}; holds for {sorted(g.confirmed)}")
    for p in rel.pairs:
        lines.append(f"pair mass {p.name} = m({p.a} + {p.b})")
    for lr in rel.linear:
        terms = " + ".join(f"{c:g}*{s}" for c, s in zip(lr.coefs, lr.sources, strict=True))
        lines.append(f"linear {lr.target} = {lr.intercept:g} + {terms}")
    return lines
