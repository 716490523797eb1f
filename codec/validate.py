"""Validation of the codec's own records: coder descriptions and chunk metadata.

The container checks its records (formats/records.py); this module checks what the
autoencoder coder stores in the header and in each chunk, with the same `Check` helper,
before anything is decoded, so the decoding code may index and allocate from them.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from balerc.formats.errors import BalercError, InputError, SchemaError
from balerc.formats.records import MAX_NAME_LEN, Check

from .bounds import get_bound_mode

MODES_KNOWN = frozenset("qgparlds")
MAX_LATENT = 4096
MAX_OFFSET = 1 << 53  # mode q/g code offsets stay exact in float64
_FLOAT = sys.float_info.max


def check_lossless_desc(desc: dict[str, Any], where: str) -> None:
    Check(desc, where).int("zstd_level", -(1 << 17), 22, None)


def check_ae_desc(desc: dict[str, Any], where: str, names: list[str], dtypes: dict[str, str]) -> None:
    """The autoencoder coder's header record (docs/FORMAT.md, section 5)."""
    c = Check(desc, where)
    F = len(names)
    bad = [n for n in names if not dtypes[n].startswith("<f")]
    if bad:
        c.fail(f"lossy coding of non-float column(s) {bad[:5]}")
    bound = c.get("bound", dict, None)
    mode = None
    if bound is not None:
        b = Check(bound, f"{where}, 'bound'")
        mode = b.get("mode", str)
        value = b.num("value", 0.0, _FLOAT, open_low=True)
        try:
            get_bound_mode(mode).check(value)
        except InputError as exc:
            b.fail(str(exc))
    abs_bounds = c.list("abs_bounds", lambda x, w: c.typed(x, float, w), max_len=F, default=None)
    if abs_bounds is not None:
        if len(abs_bounds) != F:
            c.fail(f"'abs_bounds' has {len(abs_bounds)} entries for {F} columns")
        for i, v in enumerate(abs_bounds):
            c.in_range(v, 0.0, _FLOAT, f"'abs_bounds'[{i}]", open_low=True)
    elif not (mode and get_bound_mode(mode).pointwise):
        c.fail("'abs_bounds' is missing (needed by every bound but pwrel)")
    c.num("margin", 0.0, 0.25, None)
    c.num("exact_drift", 0.0, 2.0**-10, None)
    c.int("zstd_level", -(1 << 17), 22, None)
    if c.has("model"):
        _check_model(c, names)


def _check_model(c: Check, names: list[str]) -> None:
    m = c.sub("model")
    cols = m.list("columns", lambda x, w: m.typed(x, str, w), max_len=len(names))
    if cols != names:
        m.fail("'columns' differ from the coder's columns")

    def subset(key: str, within: list[str], default: Any = ...) -> list[str]:
        v = m.list(key, lambda x, w: m.typed(x, str, w), max_len=len(names), default=default)
        v = [] if v is None else v
        m.unique(v, f"'{key}' entry")
        extra = [x[:40] for x in v if x not in within]
        if extra:
            m.fail(f"'{key}' names {extra[:5]}, not among {within[:8]}")
        return v

    anchors = subset("anchors", cols, [])
    predicted = subset("predicted", cols)
    if set(anchors) & set(predicted):
        m.fail("a column is both an anchor and predicted")
    subset("exact", predicted, None)
    latent = m.int("latent_dim", 0, MAX_LATENT, 0)
    m.int("latent_bits", 1, 16, None)
    if m.get("decoder_io", str, None) not in (None, "float32", "float64"):
        m.fail("'decoder_io' must be float32 or float64")
    c.num("latent_step", 0.0, 1e3, ... if latent else None, open_low=True)
    if not latent and not anchors:
        m.fail("a decoder needs latents or anchors as input")

    def norm(x: Any, w: str) -> tuple[str, float, float]:
        e = Check(x, f"{m.where}, normalization {w}")
        name = e.get("name", str)
        if len(name) > MAX_NAME_LEN:
            e.fail("name too long")
        off = e.num("offset", -_FLOAT, _FLOAT)
        scale = e.get("scale", float)
        if not (math.isfinite(scale) and scale != 0.0 and abs(scale) <= _FLOAT):
            e.fail(f"'scale' = {scale} must be finite and non-zero")
        return name, off, scale

    have = {n for n, _, _ in m.list("normalization", norm, max_len=4 * len(names))}
    missing = [n for n in names if n not in have]
    if missing:
        m.fail(f"'normalization' lacks column(s) {missing[:5]}")
    for key in ("decoder_sha256", "decoder_attachment", "decoder_attachment_sha256",
                "encoder_sha256", "decoder_onnx"):
        c.get(key, str, None)


def check_own_coders(header: dict[str, Any]) -> None:
    """Run the readers' coder checks on a header about to be written: a coder record every
    reader refuses (e.g. from a hand-edited model.json: latent_bits 17, a column both anchor
    and predicted) is refused before the first byte, not found unreadable after a
    compress that said it succeeded."""
    from .reader import coder_column_names  # (reader imports the coders, which import this)

    dtypes = {c["name"]: c["dtype"] for c in header["schema"]["columns"]}
    try:
        for desc in header["coders"]:
            names = coder_column_names(header, desc)
            if desc.get("id") == "autoencoder":
                check_ae_desc(dict(desc, columns=names), "autoencoder coder", names, dtypes)
            elif desc.get("id") == "lossless":
                check_lossless_desc(desc, "lossless coder")
    except BalercError as exc:
        raise InputError(f"cannot write this file: readers would refuse its {exc}; if that "
                         f"names the model, re-export it with `balerc train`") from None


def check_ae_meta(meta: Any, where: str, F: int, mode: str | None, has_model: bool,
                  predicted: set[int]) -> str:
    """A chunk's metadata for the autoencoder coder; returns its mode string."""
    c = Check(meta, where)
    modes = c.get("modes", str, "q" * F)
    if len(modes) != F:
        c.fail(f"'modes' has {len(modes)} letters for {F} columns")
    kind = get_bound_mode(mode) if mode else None
    allowed = kind.wire_modes - set(kind.model_mode) if kind else {"q"}
    if "q" in allowed and mode:  # abs/rel: a low-cardinality column may be a dictionary
        allowed = allowed | {"d"}
    model_mode = kind.model_mode if kind else "a"
    for j, m in enumerate(modes):
        if m in allowed:
            continue
        if not (has_model and m in model_mode and j in predicted):
            known = "known" if m in MODES_KNOWN else "unknown"
            c.fail(f"mode letter '{m}' ({known}) is not valid for column {j} of a "
                   f"{mode or 'bound-free'} {'model' if has_model else 'model-free'} coder")
    c.int("grouped", 0, 2, 0)
    offsets = c.list("offsets", lambda x, w: c.typed(x, int, w), max_len=F, default=None)
    if offsets is not None:
        if len(offsets) != F or any(abs(o) > MAX_OFFSET for o in offsets):
            c.fail("'offsets' must hold one integer of at most 2^53 per column")
    rel = c.list("rel_eps", lambda x, w: c.typed(x, float, w), max_len=F, default=None)
    if rel is not None:
        if len(rel) != F:
            c.fail(f"'rel_eps' has {len(rel)} entries for {F} columns")
        for j, v in enumerate(rel):
            if modes[j] in "rs":
                c.in_range(v, 0.0, 0.5, f"'rel_eps'[{j}]", open_low=True)
    return modes


def require(streams: dict[str, bytes], sid: str) -> bytes:
    """A stream the chunk's metadata says is there."""
    data = streams.get(sid)
    if data is None:
        raise SchemaError(f"stream '{sid}' is missing")
    return data
