"""Four-vector column groups: the one `--four-vector` grammar and the one name detector.

`balerc train` derives columns from four-vectors, `balerc evaluate` and `balerc compare`
plot the invariant masses they give; all three read the same option text into the same
groups with this module. It imports numpy and balerc.formats only (no torch), so the
analysis commands can use it on a machine without the `train` extra.

Grammar of SPEC (repeatable option, one object each):

    SPEC  := [LABEL "="] [KIND ":"] COL "," COL "," COL ["," COL]
    KIND  := "cart" | "cartesian" | "polar"        (default: cartesian)
    cartesian: E,PX,PY,PZ or PX,PY,PZ;  polar: PT,ETA,PHI,MASS or PT,ETA,PHI

A missing LABEL is `obj1`, `obj2`, ... by position. Names are matched against the table's
float columns by the caller (`declared`); detection from names is only a candidate list,
which train/relations.py confirms numerically and cli/analysis/fourvec.py checks physically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from balerc.formats.errors import InputError

CARTESIAN = ("px", "py", "pz")  # momentum roles of the cartesian basis
POLAR = ("pt", "eta", "phi")  # momentum roles of the polar basis
# The complete four-column sets an invariant mass needs, per kind.
FULL = {"cartesian": ("E", *CARTESIAN), "polar": (*POLAR, "m")}
KINDS = {"cart": "cartesian", "cartesian": "cartesian", "polar": "polar"}
SPEC_HELP = ("An object's columns, repeatable: [LABEL=][cart:]E,PX,PY,PZ or "
             "[LABEL=]polar:PT,ETA,PHI,MASS; train also takes the three-column forms "
             "PX,PY,PZ and PT,ETA,PHI (a mass in evaluate and compare needs all four).")
# The role vocabulary (shared by the grammar, the detector, the formulas and the manifests)
# with each role's name tokens, matched case-insensitively (the longest match wins).
_TOKENS = {
    "E": ("energy", "e"),
    "px": ("px",), "py": ("py",), "pz": ("pz",), "pt": ("pt",),
    "eta": ("eta",), "phi": ("phi",), "m": ("mass", "m"),
}
_SEPARATORS = "_.:-/ "
MAX_LISTED = 20  # float columns an error message lists
BARE_LABEL = "obj"  # the label of a group named without prefix or suffix (pt, eta, ...)


@dataclass
class FourVector:
    """One object's kinematic columns, role -> column name.

    `mass` and `confirmed` are filled by train/relations.py when it checks the group on the
    data; the analysis uses `kind` and `columns`, the complete set an invariant mass needs.
    """

    label: str
    cols: dict[str, str]
    declared: bool = False
    mass: float | None = None  # constant mass found on the data (E from p and this)
    confirmed: dict[str, float] = field(default_factory=dict)  # role -> fraction exact

    def bases(self) -> list[str]:
        """The momentum bases the group has all three columns of."""
        return [b for b, roles in (("cartesian", CARTESIAN), ("polar", POLAR))
                if all(r in self.cols for r in roles)]

    @property
    def kind(self) -> str | None:
        """'cartesian' with E,px,py,pz, else 'polar' with pt,eta,phi,m, else None."""
        return next((k for k, roles in FULL.items() if all(r in self.cols for r in roles)), None)

    @property
    def columns(self) -> tuple[str, ...]:
        """The four columns of `kind` in role order (empty when the group is incomplete)."""
        return tuple(self.cols[r] for r in FULL[self.kind]) if self.kind else ()

    def describe(self) -> str:
        return f"{self.label}: " + ", ".join(f"{r}={c}" for r, c in self.cols.items())

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "columns": dict(self.cols), "mass": self.mass,
                "declared": self.declared}


# ---------------------------------------------------------------------------- grammar
def parse_spec(text: str, index: int = 0) -> FourVector:
    """One SPEC (see the module docstring) -> a declared group; `index` names unlabelled ones."""
    label, sep, rest = text.partition("=")
    if not sep:
        label, rest = "", text
    kind = "cartesian"
    head, sep, tail = rest.partition(":")
    if sep and head.strip().lower() in KINDS:
        kind, rest = KINDS[head.strip().lower()], tail
    cols = [c.strip() for c in rest.split(",") if c.strip()]
    if len(cols) not in (3, 4):
        raise InputError(f"--four-vector {text!r}: give 3 or 4 columns (got {len(cols)}) as "
                         f"[LABEL=][cart:]E,PX,PY,PZ or [LABEL=]polar:PT,ETA,PHI,MASS")
    roles = FULL[kind] if len(cols) == 4 else (POLAR if kind == "polar" else CARTESIAN)
    return FourVector(label.strip() or f"obj{index + 1}", dict(zip(roles, cols, strict=True)),
                      declared=True)


def parse_specs(texts: Sequence[str]) -> list[FourVector]:
    """Every SPEC of a command line; labels must differ (they name the masses)."""
    groups = [parse_spec(t, i) for i, t in enumerate(texts)]
    labels = [g.label for g in groups]
    if len(set(labels)) != len(labels):
        raise InputError(f"--four-vector labels must differ, got {labels}")
    return groups


def declared(texts: Sequence[str], names: Sequence[str]) -> list[FourVector]:
    """The user's groups, each column checked against `names` (the float columns)."""
    out = parse_specs(texts)
    for text, g in zip(texts, out, strict=True):
        missing = [c for c in g.cols.values() if c not in names]
        if missing:
            kinds = f" (kinds are {', '.join(KINDS)})" if any(":" in c for c in missing) else ""
            more = ", ..." if len(names) > MAX_LISTED else ""
            shown = ", ".join(list(names)[:MAX_LISTED]) + more
            raise InputError(f"--four-vector {text!r} names column(s) {missing} that are not "
                             f"float columns{kinds}; available: {shown}")
    return out


def _complete(groups: list[FourVector], found: FourVector, taken: set[str]) -> None:
    """Add `found`'s other roles to the one declared group it agrees with, role by role."""
    for g in groups:
        if g.declared and all(found.cols.get(r) == c for r, c in g.cols.items()):
            extra = {r: c for r, c in found.cols.items() if r not in g.cols and c not in taken}
            g.cols.update(extra)
            taken.update(extra.values())
            return


# ---------------------------------------------------------------------------- names
def parse_name(name: str) -> tuple[str, str, str] | None:
    """(role, prefix, suffix) for names like px1, Muon_Px, Jet_pt, E2, jet_mass; else None.

    The prefix must be empty or end in a separator, the suffix empty or start with a digit
    or a separator, so "Event" or "Muon_Eta" never read as an energy. The longest token wins.
    """
    low = name.lower()
    best = None
    for role, toks in _TOKENS.items():
        for tok in toks:
            for m in re.finditer(re.escape(tok), low):
                pre, suf = name[: m.start()], name[m.end():]
                if pre and pre[-1] not in _SEPARATORS:
                    continue
                if suf and not (suf[0] in _SEPARATORS or suf[0].isdigit()):
                    continue
                if best is None or len(tok) > len(best[3]):
                    best = (role, pre, suf, tok)
    return None if best is None else best[:3]


def from_names(names: Sequence[str]) -> list[FourVector]:
    """Candidate groups: columns sharing a prefix/suffix (case-insensitively), in column
    order, with four or more roles of which three form a momentum basis."""
    by_key: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    for n in names:
        parsed = parse_name(n)
        if parsed is None:
            continue
        role, pre, suf = parsed
        label = (pre + suf).strip(_SEPARATORS) or BARE_LABEL
        slot = by_key.setdefault((pre.lower(), suf.lower()), (label, {}))[1]
        slot.setdefault(role, n)
    groups = [FourVector(label, cols) for label, cols in by_key.values()]
    return [g for g in groups if g.bases() and len(g.cols) > 3]


def groups(texts: Sequence[str] | None, names: Sequence[str]) -> list[FourVector]:
    """Declared groups, then the name-detected ones that share no column with them. A
    name group holding a declared group's columns in the same roles completes it: a
    declared PX,PY,PZ had kept the object's E, PT, ETA, PHI from every relation."""
    out = declared(texts or [], names)
    taken = {c for g in out for c in g.cols.values()}
    labels = {g.label for g in out}
    for g in from_names(names):
        if taken.intersection(g.cols.values()):
            _complete(out, g, taken)
            continue
        while g.label in labels:
            g.label += "_"
        out.append(g)
        taken.update(g.cols.values())
        labels.add(g.label)
    return out
