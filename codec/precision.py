"""Per-column error bounds: overrides by glob, a bounds file, and precision presets.

A physicist's file has a precision per branch (NanoAOD keeps eta and phi to 12 mantissa
bits, masses to 10, energy fractions to 6, pt in full), so one bound for every column is
either too loose for some or wastes bytes on others. `ColumnBounds` holds ordered rules
``glob -> bound`` (``None`` = lossless); the last matching rule wins, columns no rule
matches take the default (`--error-bound` without a glob).

Rules come from `--error-bound 'Jet_eta,Jet_phi=abs:1e-3'`, a TOML bounds file (globs to
bounds, ``"lossless"`` allowed), `--precision nanoaod` (the table below) or
`--precision FILE.root|csv|...` (the mantissa bits each float column of that file
actually uses). Mantissa truncation to m bits, rounded, is within ``2^-(m+1)`` of the
value: that is the pointwise bound a column of m bits gets (``pwrel:2^-(m+1)``); a column
using every bit of its type is stored losslessly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.tableio import pattern_matches

from .bounds import Bound

LOSSLESS = "lossless"

# NanoAOD's mantissa bits per branch (CMSSW PhysicsTools/NanoAOD: `P4Vars` in common_cff.py
# keeps eta and phi at precision 12, mass at 10 and pt at -1 = full float; the object
# tables give energy fractions and resolutions 6 bits, GenPart/GenVisTau kinematics 8,
# LHE/generator quantities and MVA outputs 14, most other floats 10). Checked against the
# bits the CMS Open Data ttbar NanoAOD sample in ../shared/data actually uses
# (benchmarks/results_whole_files.md). First matching glob wins; None = full precision.
NANOAOD_BITS: tuple[tuple[str, int | None], ...] = (
    ("GenPart_*", 8), ("GenVisTau_*", 8),
    ("LHE_*", None), ("LHEWeight_*", None), ("fixedGridRho*", None),
    ("SoftActivityJetHT*", None), ("Pileup_gpudensity", None),
    ("LHE*", 14), ("Generator_*", 14), ("*_mvaTTH", 14), ("*_mvaLowPt", 14),
    ("*_segmentComp", 14), ("PV_z", 16), ("SV_z", 14), ("Tau_dz", 14),
    ("*_eta", 12), ("*_phi", 12), ("*_mass", 10),
    ("*Err", 6), ("*EF", 6), ("*_rawFactor", 6), ("*_muonSubtrFactor", 6),
    ("*RegRes", 6), ("*_tkRelIso", 6), ("*_tunepRelPt", 6),
    ("*_dr03*", 8), ("*_hoe", 8), ("*_jetPtRelv2", 8), ("*_jetRelIso", 8),
    ("*_scEtOverPt", 8), ("MET_cov*", 8), ("*_btagDeepFlavB", 8),
    ("*_pt", None), ("*Iso*", None), ("*Weight*", None), ("genWeight", None),
    ("*MET*_pt", None),
)
NANOAOD_DEFAULT_BITS = 10
PRESETS = ("nanoaod",)


def nanoaod_bits(name: str) -> int | None:
    """NanoAOD's mantissa bits for a branch name (the first matching glob of the table;
    None: full precision)."""
    return next((b for g, b in NANOAOD_BITS if fnmatchcase(name, g)), NANOAOD_DEFAULT_BITS)


def bound_for_bits(bits: int | None, dtype: np.dtype) -> Bound | None:
    """The pointwise bound that rounding to `bits` mantissa bits gives (None: lossless)."""
    full = np.finfo(dtype).nmant
    if bits is None or bits >= full:
        return None
    return Bound("pwrel", math.ldexp(1.0, -(bits + 1)))


def parse_rule_value(text: str, where: str) -> Bound | None:
    if text.strip().lower() == LOSSLESS:
        return None
    try:
        return Bound.parse(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ColumnBounds:
    """Ordered glob rules to bounds; `resolve` gives each column its bound."""

    rules: tuple[tuple[str, Bound | None], ...] = ()
    origin: str = "--error-bound"  # for messages
    strict: bool = True  # refuse globs that match no column
    # per-column presets (inferred from a file, or a table such as NanoAOD's), applied in
    # order before the rules; a name a preset does not contain keeps what it had
    presets: tuple[Mapping[str, Bound | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules) or bool(self.presets)

    def resolve(self, columns: Mapping[str, np.dtype], default: Bound | None
                ) -> dict[str, Bound | None]:
        """Bound per float column (None: lossless); the default where nothing matches."""
        out = {}
        names = list(columns)
        picked = [set(pattern_matches(names, glob)) for glob, _ in self.rules]
        for name, dtype in columns.items():
            if np.dtype(dtype).kind != "f":
                continue
            bound = default
            for preset in self.presets:
                if name in preset:
                    bound = preset[name]
            for (_, b), chosen in zip(self.rules, picked, strict=True):
                if name in chosen:
                    bound = b
            out[name] = bound
        return out

    def check(self, names: Sequence[str]) -> None:
        """Refuse globs matching no column, naming the columns there are."""
        if not self.strict:
            return
        unknown = [g for g, _ in self.rules if not pattern_matches(list(names), g)]
        if unknown:
            shown = ", ".join(list(names)[:40]) + (" ..." if len(names) > 40 else "")
            raise InputError(f"{self.origin}: {unknown} match(es) no column; the columns are: "
                             f"{shown}")

    def to_json(self) -> list[list[str]]:
        return [[g, str(b) if b is not None else LOSSLESS] for g, b in self.rules]


def split_bound_specs(specs: Iterable[str]) -> tuple[str | None, ColumnBounds]:
    """`--error-bound` values: one without '=' is the default, 'GLOBS=BOUND' overrides."""
    default, rules = None, []
    for spec in specs:
        globs, sep, value = spec.rpartition("=")
        if not sep:
            if default is not None:
                raise InputError(f"--error-bound given twice without a column glob ('{default}' "
                                 f"and '{spec}'); overrides read 'GLOBS=MODE:E'")
            default = spec
            continue
        patterns = [g.strip() for g in globs.split(",") if g.strip()]
        if not patterns:
            raise InputError(f"--error-bound '{spec}': no column glob before '='")
        bound = parse_rule_value(value, f"--error-bound '{spec}'")
        rules += [(p, bound) for p in patterns]
    return default, ColumnBounds(tuple(rules))


def load_bounds_file(path: str | Path) -> ColumnBounds:
    """A TOML file of ``"GLOB" = "MODE:E"`` (or ``"lossless"``), optionally under
    ``[bounds]``; later entries win over earlier ones."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from balerc.formats.optional import require

        tomllib = require("tomli", "reading a bounds file on Python 3.10")
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such bounds file: {p}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{p}: not a valid TOML bounds file ({exc})") from None
    table = data.get("bounds", data)
    if not isinstance(table, dict) or not table:
        raise InputError(f"{p}: expected entries like \"Jet_eta\" = \"abs:1e-3\" (or under "
                         f"[bounds])")
    rules = []
    for glob, value in table.items():
        if not isinstance(value, str):
            raise InputError(f"{p}: the bound of '{glob}' must be a string such as "
                             f"\"pwrel:5e-4\" or \"lossless\", not {value!r}")
        rules.append((glob, parse_rule_value(value, f"{p}, '{glob}'")))
    return ColumnBounds(tuple(rules), origin=str(p))


def mantissa_bits(values: np.ndarray) -> int | None:
    """Mantissa bits the finite nonzero values use (None if there are none)."""
    v = np.asarray(values)
    v = v[np.isfinite(v) & (v != 0)]
    if not v.size:
        return None
    nmant = np.finfo(v.dtype).nmant
    ints = v.view(np.uint32 if v.dtype.itemsize == 4 else np.uint64)
    mant = ints & ((1 << nmant) - 1)
    mant = mant[mant != 0]
    if not mant.size:
        return 0
    low = mant & (~mant + 1)  # the lowest set bit of each
    return nmant - int(np.log2(low.astype(np.float64)).min())


def inferred_bounds(samples: Mapping[str, np.ndarray], origin: str) -> ColumnBounds:
    """Bounds from the bits each float column of `samples` uses (`--precision FILE`)."""
    exact = {}
    for name, values in samples.items():
        values = np.asarray(values)
        if values.dtype.kind != "f" or values.dtype.itemsize not in (4, 8):
            continue
        exact[name] = bound_for_bits(mantissa_bits(values), values.dtype)
    return ColumnBounds((), origin=origin, strict=False, presets=(exact,))


def combine(*parts: ColumnBounds) -> ColumnBounds:
    """Presets first, then the file, then command-line overrides (later wins)."""
    return ColumnBounds(tuple(r for p in parts for r in p.rules),
                        origin=" / ".join(p.origin for p in parts if p), strict=True,
                        presets=tuple(m for p in parts for m in p.presets))


def describe(bounds: Mapping[str, Bound | None]) -> dict[str, Any]:
    """Column -> bound text, for the header's schema and `info`."""
    return {n: (str(b) if b is not None else LOSSLESS) for n, b in bounds.items()}


def plan_grouped(schema: Mapping[str, np.dtype], options: Any, model: Any, ranges: Any,
                 probe: Any, expected_rows: int | None) -> Any:
    """One autoencoder coder per distinct bound (the model's columns keep the default),
    the exact columns and non-floats in the lossless coder."""
    from .plan import Plan, lossless_coder, plan_coders

    cb: ColumnBounds = options.column_bounds
    cb.check(list(schema))
    per_col = cb.resolve(schema, options.bound)
    if model is not None:
        if options.bound is None:
            raise InputError("per-column bounds with a model need a default --error-bound "
                             "for the model's columns")
        moved = [c for c in model.columns if per_col.get(c) != options.bound]
        if moved:
            raise InputError(f"{cb.origin}: the model's columns {moved[:8]} must keep the "
                             f"default bound {options.bound}; override other columns only")
    groups: dict[str, tuple[Bound, list[str]]] = {}
    for name, bound in per_col.items():
        if bound is not None:
            groups.setdefault(str(bound), (bound, []))[1].append(name)
    base = options.with_(column_bounds=None)
    plan = Plan([])
    for bound, cols in groups.values():
        m = model if model is not None and bound == options.bound else None
        sub = plan_coders(schema, base.with_(bound=bound), m, ranges, probe, expected_rows,
                          only=cols)
        plan.coders += sub.coders
        plan.notes += sub.notes
        if plan.ae is None or m is not None:
            plan.ae, plan.model = sub.ae, sub.model
    exact = [n for n in schema if per_col.get(n) is None]
    if exact:
        plan.coders.append(lossless_coder(exact, schema, base))
    plan.bounds = describe(per_col)
    return plan


def column_bounds_from(specs: Sequence[str], bounds_file: str | Path | None,
                       precision: str | None, tree: str | None = None
                       ) -> tuple[str | None, ColumnBounds | None]:
    """The CLI's bound options as (default bound text, per-column rules or None)."""
    default, overrides = split_bound_specs(specs)
    parts = []
    if precision is not None:
        parts.append(precision_preset(precision, tree))
    if bounds_file is not None:
        parts.append(load_bounds_file(bounds_file))
    if overrides:
        parts.append(overrides)
    if not parts:
        return default, None
    return default, combine(*parts)


def precision_preset(spec: str, tree: str | None = None) -> ColumnBounds:
    """`--precision nanoaod` (rules resolved per column later) or `--precision FILE`."""
    if spec.lower() == "nanoaod":
        return ColumnBounds((), origin="--precision nanoaod", strict=False,
                            presets=(_NanoTable(),))
    path = Path(spec)
    if not path.exists():
        raise InputError(f"--precision {spec}: neither a preset ({', '.join(PRESETS)}) nor an "
                         f"existing data file")
    from balerc.formats.sections import SectionStream
    from balerc.formats.stream import open_input

    stream = open_input(path, tree=tree, allow_skip=True)
    if isinstance(stream, SectionStream):
        step = next(stream.steps(65536)) if stream.n_events else stream.first
        samples = {n: a for t in step.tables.values() for n, a in t.columns.items()}
    else:
        first = next(stream.chunks(65536)) if stream.n_rows else stream.first
        samples = dict(first.columns)
    return inferred_bounds(samples, f"--precision {spec}")


class _NanoTable(dict):
    """The NanoAOD table as a preset mapping that answers for any column name."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __getitem__(self, name: str) -> Bound | None:
        return bound_for_bits(nanoaod_bits(name), np.dtype(np.float32))


def needs_ranges(options: Any, model: Any = None) -> bool:
    """Whether any column's bound is relative to its range (a pass over the data first)."""
    from .plan import limit_rule

    rule = limit_rule(options.bound, model)
    if rule is not None and rule.needs_range:
        return True
    cb = options.column_bounds
    return bool(cb) and any(b is not None and b.needs_range for _, b in cb.rules)
