"""Which coder codes which column: the plan a writer starts from.

Lossless files put every column in the lossless coder. Otherwise the float columns (the
model's, or all of them) go to the autoencoder coder with per-column absolute limits,
and everything else is lossless. `rel` limits need each column's range before the first
chunk: from a pass over the data (files), the caller (`ranges=`), or the model's training
ranges (streams); a stream without either is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.table import Table

from .bounds import Bound
from .model import ModelBundle
from .options import CompressOptions
from .packing import Entropy

Ranges = Mapping[str, tuple[float, float]]


@dataclass
class Plan:
    coders: list[Any]
    ae: Any = None  # the autoencoder coder, when there is one (statistics, notes)
    model: ModelBundle | None = None  # the model kept (None when dropped or absent)
    notes: list[str] = field(default_factory=list)
    bounds: dict[str, str] = field(default_factory=dict)  # per-column bounds, when given


def dtype_str(dtype: np.dtype) -> str:
    """Portable dtype name stored in the schema ('<f8', '|b1', 'str')."""
    return "str" if dtype.kind in "OUS" else dtype.newbyteorder("<").str


def plan_coders(schema: Mapping[str, np.dtype], options: CompressOptions,
                model: ModelBundle | None = None, ranges: Ranges | None = None,
                probe: Table | None = None, expected_rows: int | None = None,
                only: list[str] | None = None) -> Plan:
    """The coders for a table of this schema (names in order -> numpy dtypes).

    `only`: the autoencoder coder for just these float columns, without a lossless coder
    for the rest (per-column bounds build one coder per bound: codec/precision.py)."""
    from .coders.autoencoder import AECoder
    from .coders.lossless import LosslessCoder

    names = list(schema)
    index = {n: i for i, n in enumerate(names)}
    dtypes = {n: dtype_str(np.dtype(d)) for n, d in schema.items()}
    level = options.zstd_level if options.zstd_level is not None else 3
    pc, exhaustive = options.use_pcodec(), options.effort == "exhaustive"
    if options.lossless and model is not None:
        raise InputError("--lossless (lossless=True) cannot be combined with -m/--model "
                         "(a model)")
    b = options.bound
    if model is None and b is None and not options.lossless:
        raise InputError("without a model an error bound is needed (e.g. --error-bound rel:1e-3)")
    floatless = (None if model is not None or only is not None or options.lossless
                 else _floatless_note(schema))
    if options.lossless or floatless:
        return Plan([LosslessCoder(names, index, dtypes, level, pc, exhaustive)],
                    notes=[floatless] if floatless else [])
    cols = _lossy_columns(schema, model)
    if only is not None:
        cols = [c for c in cols if c in only]
    abs_bounds = _absolute_limits(cols, b, model, ranges)
    step = 2.0 / 2**options.latent_bits if options.latent_bits else None
    plan = Plan([])
    if options.latent_bits and (model is None or not model.manifest.latent_dim):
        plan.notes.append("--latent-bits has no effect: " + (
            "no model" if model is None else "this model's decoder takes no latents"))

    ent = Entropy(pcodec=pc, pcodec32=pc, exhaustive=exhaustive,
                  zstd_level=level, coded_exceptions=options.entropy != "zstd",
                  dictionary=options.entropy != "zstd", scaled=options.entropy != "zstd")

    def make(m: ModelBundle | None) -> AECoder:
        return AECoder(cols, index, dtypes, b, abs_bounds, m, latent_step=step, level=level,
                       device=options.device, threads=1, embed_model=options.embed_model,
                       entropy=ent)

    if model is not None and b is not None and not options.keep_model and probe is not None:
        note = _model_not_worth(make(model), make(None), probe, expected_rows, options)
        if note:
            plan.notes.append(note)
            model = None
    plan.ae, plan.model = make(model), model
    plan.coders.append(plan.ae)
    rest = [n for n in names if n not in cols]
    if rest and only is None:
        plan.coders.append(LosslessCoder(rest, index, dtypes, level, pc, exhaustive))
    return plan


def _model_not_worth(with_model: Any, without: Any, probe: Table, expected_rows: int | None,
                     options: CompressOptions) -> str | None:
    """A note when the model's bytes (decoder, header) would cost more than it saves on
    this table (measured on the probe rows, scaled to the table), else None."""
    rows = expected_rows or probe.n_rows
    cost = model_cost(with_model, without)
    raw = rows * probe.nbytes / max(probe.n_rows, 1)
    gain = model_gain(probe, rows, with_model, without, parallel=options.threads > 1) if (
        raw < AMORTIZED * cost) else np.inf  # a large table: chunks fall back themselves
    if gain > cost:
        return None
    what, hint = (("decoder and model header", "; with --no-embed-model a model shared "
                   "by many files costs only its header per file")
                  if options.embed_model else ("model header", ""))
    return (f"the model would save about {max(gain, 0):,.0f} bytes on this table but its "
            f"{what} cost {cost:,} bytes: stored without the model (plain "
            f"quantization){hint}")


def _floatless_note(schema: Mapping[str, np.dtype]) -> str | None:
    """A bound on a table without float columns: stored losslessly, said in a note."""
    if any(np.dtype(d).kind == "f" for d in schema.values()):
        return None
    kinds = ", ".join(sorted({str(np.dtype(d)) for d in schema.values()})) or "none"
    return (f"no float columns ({len(schema)} column(s) of {kinds}): stored losslessly, "
            f"which holds any bound (as a file of sections stores such a section)")


def lossless_coder(names: list[str], schema: Mapping[str, np.dtype],
                   options: CompressOptions) -> Any:
    """The lossless coder for `names` of this schema under `options` (entropy, effort)."""
    from .coders.lossless import LosslessCoder

    index = {n: i for i, n in enumerate(schema)}
    dtypes = {n: dtype_str(np.dtype(d)) for n, d in schema.items()}
    level = options.zstd_level if options.zstd_level is not None else 3
    return LosslessCoder(names, index, dtypes, level, options.use_pcodec(),
                         options.effort == "exhaustive")


def _lossy_columns(schema: Mapping[str, np.dtype], model: ModelBundle | None) -> list[str]:
    floats = [n for n, d in schema.items() if np.dtype(d).kind == "f"]
    if model is None:
        return floats
    which = f"the model {model.path}" if model.path else "the model"
    missing = [c for c in model.columns if c not in schema]
    if missing:
        raise InputError(f"{which} needs column(s) {missing[:8]} that the data lacks; the data "
                         f"has {list(schema)[:12]}")
    wrong = {c: str(np.dtype(schema[c])) for c in model.columns if c not in floats}
    if wrong:
        raise InputError(f"{which} needs float columns, but in the data these are not: "
                         f"{dict(list(wrong.items())[:8])}")
    return model.columns


def limit_rule(bound: Bound | None, model: ModelBundle | None) -> Bound | None:
    """The bound per-column limits follow: the user's, else (storing the autoencoder's
    reconstruction alone) the one the model was trained for, which its anchors keep."""
    if bound is None and model is not None:
        return Bound.parse(model.manifest.train_bound)
    return bound


def _absolute_limits(cols: list[str], bound: Bound | None, model: ModelBundle | None,
                     ranges: Ranges | None) -> list[float] | None:
    """Per-column absolute limits (None at pwrel), by `limit_rule`."""
    rule = limit_rule(bound, model)
    if rule is None or rule.pointwise:
        return None
    if not rule.needs_range:
        return [rule.absolute_from_range(0.0, 0.0) for _ in cols]
    known = {name: _declared_range(name, lo_hi) for name, lo_hi in (ranges or {}).items()}
    if model is not None:  # the training ranges, where the caller gave none
        for name, lo_hi in model.manifest.training_ranges().items():
            if name in cols:
                known.setdefault(name, lo_hi)
    missing = [c for c in cols if c not in known]
    if missing:
        raise InputError(
            f"a rel bound needs each column's range before the first chunk, and none is known "
            f"for {missing[:8]}: pass ranges={{name: (min, max)}}, use a model trained on this "
            f"data, or an abs or pwrel bound")
    return [rule.absolute_from_range(*map(float, known[c])) for c in cols]


def _declared_range(name: str, lo_hi: Any) -> tuple[float, float]:
    """A caller's (min, max) for a rel bound: two finite numbers, min <= max (an inverted
    range made a negative limit that the file's own reader refused), or (nan, nan) for a
    column with no finite value (what a pass over the data gives; E then acts as abs)."""
    try:
        lo, hi = (float(v) for v in lo_hi)
    except (TypeError, ValueError):
        raise InputError(f"ranges['{name}'] = {lo_hi!r}: give (min, max), two numbers") from None
    if math.isnan(lo) and math.isnan(hi):
        return lo, hi
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise InputError(f"ranges['{name}'] = ({lo!r}, {hi!r}): give the column's finite "
                         f"(min, max) with min <= max")
    return lo, hi


STREAM_ENTRY_BYTES = 30  # a stream's entry in its chunk descriptor: name, size, xxh64
# Tables of at least AMORTIZED x the model's cost in raw bytes keep the model unprobed: a
# chunk where it does not pay falls back to plain quantization by itself, so a useless
# model costs only its decoder, <= 0.01% of such a file (the probe costs ~12% of a compress).
AMORTIZED = 10_000
PROBE_ROWS = 32_768  # rows the model's gain is measured on (coded twice, before chunk 0);
# above packing.SMALL_TRIAL, so that its streams are chosen as a full chunk's are


def model_cost(with_model: Any, without: Any) -> int:
    """What a model costs once per file: the embedded decoder and the larger coder header
    (the model's normalization and hashes)."""
    from balerc.formats.container import record_size

    cost = sum(len(v) for v in with_model.attachments().values())
    return cost + max(0, record_size(with_model.describe()) - record_size(without.describe()))


def model_gain(probe: Table, rows: int, with_model: Any, without: Any,
               parallel: bool = False) -> float:
    """Bytes the model saves on `rows` rows, measured on the probe chunk (small tables
    cannot amortize a model's cost). The probe is cut to PROBE_ROWS: its two trial
    encodings run before the first chunk (an eighth of a 1M-row compress at 65,536 rows);
    with `parallel` they also run side by side."""
    probe = probe.slice(0, min(probe.n_rows, PROBE_ROWS))

    def size(coder: Any) -> int:  # streams + their descriptor entries
        return sum(len(v) + STREAM_ENTRY_BYTES for v in coder.encode(probe, 0)[0].values())

    if parallel:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            plain = pool.submit(size, without)
            gain = float(plain.result() - size(with_model))
    else:
        gain = float(size(without) - size(with_model))
    return gain * rows / probe.n_rows
