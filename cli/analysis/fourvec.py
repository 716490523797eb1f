"""Four-vector column groups: found from names, confirmed by the numbers, turned into masses.

Physicists judge a lossy file by the invariant masses it still gives, so the report must
find the (E, px, py, pz) or (pt, eta, phi, mass) columns of each object by itself. Names
alone are not proof (``E1`` could be anything), so each group found by name is kept only
when its values behave like a four-vector in almost every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.table import Table

CARTESIAN = ("E", "px", "py", "pz")
POLAR = ("pt", "eta", "phi", "mass")
# component -> accepted spellings (compared case-insensitively)
_ALIASES: dict[str, tuple[str, ...]] = {
    "E": ("e", "energy"),
    "px": ("px",),
    "py": ("py",),
    "pz": ("pz",),
    "pt": ("pt",),
    "eta": ("eta",),
    "phi": ("phi",),
    "mass": ("mass", "m"),
}
# what may follow a component (E1, pt_2, px_lead) or precede it (Jet_pt, mu1_E)
_SUFFIX = re.compile(r"^(_?\d+|_[A-Za-z0-9]+)$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*_$")
# share of finite rows that must pass the physical check for a name match to count
MIN_PHYSICAL = 0.99


@dataclass(frozen=True)
class FourVector:
    """One object's four columns; `kind` is 'cartesian' (E,px,py,pz) or 'polar' (pt,eta,phi,mass)."""

    label: str
    kind: str
    columns: tuple[str, str, str, str]

    def describe(self) -> str:
        comps = CARTESIAN if self.kind == "cartesian" else POLAR
        return f"{self.label}: " + ", ".join(f"{c}={n}" for c, n in zip(comps, self.columns, strict=True))


def _split(name: str) -> list[tuple[str, str]]:
    """Every (component, tag) reading of a column name; the tag identifies the object."""
    low, out = name.lower(), []
    for comp, spellings in _ALIASES.items():
        for s in spellings:
            if low == s:  # bare names (pt, eta, phi, mass): one object per row, e.g. jets
                out.append((comp, "~"))
            elif low.startswith(s) and _SUFFIX.match(name[len(s):]):
                out.append((comp, "~" + name[len(s):]))
            if low.endswith(s) and _PREFIX.match(name[: len(name) - len(s)]):
                out.append((comp, name[: len(name) - len(s)] + "~"))
    return out


def _label(tag: str) -> str:
    """'~1' -> '1', 'Jet_~' -> 'Jet', '~' (bare names) -> 'obj'."""
    return tag.replace("~", "").strip("_") or "obj"


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

    A group needs all four components under one tag (suffix such as ``1`` or prefix such as
    ``Jet_``); the cartesian set wins when both are present (no trigonometry, exact E).
    """
    floats = table.names_of_kind("float")
    groups: dict[str, dict[str, str]] = {}
    for name in floats:
        for comp, tag in _split(name):
            groups.setdefault(tag, {}).setdefault(comp, name)
    found: list[tuple[int, FourVector]] = []
    notes: list[str] = []
    for tag, comps in groups.items():
        for kind, need in (("cartesian", CARTESIAN), ("polar", POLAR)):
            if all(c in comps for c in need):
                fv = FourVector(_label(tag), kind, tuple(comps[c] for c in need))  # type: ignore[arg-type]
                frac = physical_fraction(table, fv)
                if frac >= MIN_PHYSICAL:
                    found.append((min(floats.index(c) for c in fv.columns), fv))
                    break
                notes.append(f"{', '.join(fv.columns)} are named like a four-vector but only "
                             f"{frac:.1%} of rows are physical: not used")
    found.sort(key=lambda t: t[0])
    return [fv for _, fv in found], notes


def parse_spec(spec: str, table: Table, index: int = 0) -> FourVector:
    """``[LABEL=][cart:|polar:]C1,C2,C3,C4``: E,px,py,pz (default) or pt,eta,phi,mass columns."""
    label, sep, rest = spec.partition("=")
    if not sep:
        label, rest = f"obj{index + 1}", spec
    kind = "cartesian"
    head, sep, tail = rest.partition(":")
    if sep and head.strip().lower() in ("cart", "cartesian", "polar"):
        kind = "polar" if head.strip().lower() == "polar" else "cartesian"
        rest = tail
    cols = [c.strip() for c in rest.split(",") if c.strip()]
    if len(cols) != 4:
        raise InputError(
            f"--four-vector '{spec}': give 4 columns, [LABEL=][cart:|polar:]E,PX,PY,PZ "
            f"or polar:PT,ETA,PHI,MASS (got {len(cols)})"
        )
    missing = [c for c in cols if c not in table]
    if missing:
        raise InputError(f"--four-vector '{spec}': no column(s) {missing} in DATA")
    not_float = [c for c in cols if table.kind(c) != "float"]
    if not_float:
        raise InputError(f"--four-vector '{spec}': column(s) {not_float} are not float columns")
    return FourVector(label.strip() or f"obj{index + 1}", kind, tuple(cols))  # type: ignore[arg-type]


def resolve(table: Table, specs: list[str] | None) -> tuple[list[FourVector], list[str]]:
    """The user's --four-vector groups when given (checked), else automatic detection."""
    if not specs:
        return detect(table)
    fvs = [parse_spec(s, table, i) for i, s in enumerate(specs)]
    labels = [f.label for f in fvs]
    if len(set(labels)) != len(labels):
        raise InputError(f"--four-vector labels must differ, got {labels}")
    notes = []
    for fv in fvs:
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


def mass_quantities(table: Table, fvs: list[FourVector]) -> dict[str, np.ndarray]:
    """Mass of each object, then of the pair of the first two objects: label -> values.

    Only the first two objects are paired: the report stays bounded for wide tables and a
    two-body resonance is what the relative mass difference is quoted for.
    """
    p4s = [cartesian(table, fv) for fv in fvs]
    out = {f"m({fv.label})": invariant_mass(p) for fv, p in zip(fvs, p4s, strict=True)}
    if len(fvs) >= 2:
        out[f"m({fvs[0].label}+{fvs[1].label})"] = invariant_mass(p4s[0] + p4s[1])
    return out


def primary_mass(labels: list[str]) -> str | None:
    """The quantity the headline relative mass difference is quoted for: the pair if any."""
    pairs = [q for q in labels if "+" in q]
    return pairs[0] if pairs else (labels[0] if labels else None)
