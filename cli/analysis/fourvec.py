"""Four-vectors in a table, confirmed by the numbers and turned into invariant masses.

Physicists judge a lossy file by the invariant masses it still gives, so the report must
find the (E, px, py, pz) or (pt, eta, phi, m) columns of each object by itself. The
`--four-vector` grammar, the role names and the detection from column names are shared
with `balerc train` (balerc.train.fourvec, torch-free). Names alone are not proof (``E1``
could be anything), so each group found by name is kept only when its values behave like
a four-vector in almost every row.
"""

from __future__ import annotations

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.train.fourvec import FULL, FourVector, declared, from_names

# share of finite rows that must pass the physical check for a name match to count
MIN_PHYSICAL = 0.99


def physical_fraction(table: Table, fv: FourVector) -> float:
    """Share of finite rows whose values can be a four-vector (E >= |p|, pt >= 0, |phi| <= pi)."""
    cols = [table[c].astype(np.float64) for c in fv.columns]
    finite = np.all([np.isfinite(c) for c in cols], axis=0)
    if not finite.any():
        return 0.0
    if fv.kind == "cartesian":
        # massless objects stored in float32 have E = |p| only to rounding: allow a few ulps
        eps = max(float(np.finfo(table[c].dtype).eps) for c in fv.columns)
        e, px, py, pz = (c[finite] for c in cols)
        p2 = px * px + py * py + pz * pz
        ok = (e >= 0) & (e * e >= p2 * (1 - 16 * eps))
    else:
        pt, _, phi, m = (c[finite] for c in cols)
        ok = (pt >= 0) & (np.abs(phi) <= np.pi * (1 + 1e-6)) & (m >= -1e-2 * np.maximum(pt, 1.0))
    return float(np.mean(ok))


def detect(table: Table) -> tuple[list[FourVector], list[str]]:
    """Four-vectors among the float columns, in column order, and notes on rejected groups.

    A group found by name needs a complete set (E,px,py,pz or pt,eta,phi,m); the cartesian
    set wins when both are present and physical (no trigonometry, exact E).
    """
    found: list[FourVector] = []
    notes: list[str] = []
    for g in from_names(table.names_of_kind("float")):
        for kind, roles in FULL.items():
            if not all(r in g.cols for r in roles):
                continue
            fv = FourVector(g.label, {r: g.cols[r] for r in roles})
            frac = physical_fraction(table, fv)
            if frac >= MIN_PHYSICAL:
                found.append(fv)
                break
            notes.append(f"{', '.join(fv.columns)} are named like a {kind} four-vector but "
                         f"only {frac:.1%} of rows are physical: not used")
    return found, notes


def resolve(table: Table, specs: list[str] | None) -> tuple[list[FourVector], list[str]]:
    """The user's --four-vector groups when given (checked), else automatic detection."""
    if not specs:
        return detect(table)
    fvs = declared(specs, table.names_of_kind("float"))
    notes = []
    for text, fv in zip(specs, fvs, strict=True):
        if fv.kind is None:
            raise InputError(f"--four-vector {text!r}: an invariant mass needs the fourth "
                             f"column too (E for cartesian, mass for polar)")
        frac = physical_fraction(table, fv)
        if frac < MIN_PHYSICAL:
            notes.append(f"--four-vector {fv.describe()}: only {frac:.1%} of rows are physical")
    return fvs, notes


def cartesian(table: Table, fv: FourVector) -> np.ndarray:
    """(4, N) float64 array E, px, py, pz of one object in `table`."""
    a, b, c, d = (table[n].astype(np.float64) for n in fv.columns)
    if fv.kind == "cartesian":
        return np.stack([a, b, c, d])
    pt, eta, phi, m = a, b, c, d
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px * px + py * py + pz * pz + m * m), px, py, pz])


def invariant_mass(p4: np.ndarray) -> np.ndarray:
    """sqrt(E^2 - |p|^2), clipped at 0 where resolution makes it negative (as most tools do)."""
    e, px, py, pz = p4
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))


MAX_PAIRED = 4  # objects whose pairs are all formed (6 pairs); more: the first pair only


def mass_quantities(table: Table, fvs: list[FourVector]) -> dict[str, np.ndarray]:
    """Invariant masses of systems of recognised objects: every pair of the first four,
    and all objects together when there are three or more. label -> values.

    A single object's mass is not an analysis quantity here (a muon's mass from E and p is
    float rounding before compression and noise after), so none is formed.
    """
    p4s = [cartesian(table, fv) for fv in fvs]
    out: dict[str, np.ndarray] = {}
    k = min(len(fvs), MAX_PAIRED)
    for i in range(k):
        for j in range(i + 1, k):
            out[f"m({fvs[i].label}+{fvs[j].label})"] = invariant_mass(p4s[i] + p4s[j])
    if len(fvs) >= 3:
        label = "+".join(fv.label for fv in fvs)
        out[f"m({label})"] = invariant_mass(np.sum(p4s, axis=0))
    return out


def single_object_note(fv: FourVector) -> str:
    """Why one four-vector gives no mass to compare (mass_quantities forms none)."""
    return (f"one four-vector ({fv.label}): a single object's mass is not an analysis "
            f"quantity, so no mass is compared")


def primary_mass(labels: list[str]) -> str | None:
    """The quantity the headline relative mass difference is quoted for: the first pair."""
    return labels[0] if labels else None
