"""Everything that says how to compress, in one record passed down instead of long
argument chains (CLI -> api -> writer -> coders)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from balerc.formats.errors import InputError
from balerc.formats.records import MAX_CHUNK_ROWS

from . import params
from .bounds import Bound

DEFAULT_CHUNK_ROWS = 65536
SMALL_TABLE_BYTES = 16 << 20
EFFORTS = ("cheap", "exhaustive")  # below this, zstd's strongest level costs well under a second


def default_threads() -> int:
    """The cores this process may use (its CPU affinity: a batch slot, a container), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


@dataclass(frozen=True)
class CompressOptions:
    """How to compress. `bound` None with a model stores the autoencoder's reconstruction
    alone (Baler's behaviour); `lossless` stores every column bit-exact."""

    bound: Bound | None = None
    lossless: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    threads: int = 1
    device: str = "auto"
    zstd_level: int | None = None  # None: chosen by table size (choose_level)
    embed_model: bool = True
    keep_model: bool = False  # keep a model even where its decoder costs more than it saves
    latent_bits: int | None = None
    progress: bool = False
    force: bool = False
    effort: str = "cheap"  # packings chosen from statistics; "exhaustive": every candidate tried
    entropy: str = "auto"  # integer code streams: "auto" (pcodec where installed) or "zstd"
    column_bounds: Any = None  # codec/precision.py ColumnBounds: per-column overrides

    def __post_init__(self) -> None:
        """Types and ranges checked, numpy integers taken as ints (a numpy chunk_rows had
        reached the header's JSON as a TypeError)."""
        set_ = object.__setattr__  # frozen: normalized once, here
        set_(self, "chunk_rows", params.integer(self.chunk_rows, "--chunk-rows (chunk_rows)",
                                                1, MAX_CHUNK_ROWS))
        set_(self, "threads", params.integer(self.threads, "--threads (threads)", 1))
        if self.zstd_level is not None:
            set_(self, "zstd_level", params.integer(self.zstd_level, "--zstd-level (zstd_level)",
                                                    *params.ZSTD_LEVELS))
        if self.latent_bits is not None:
            set_(self, "latent_bits", params.integer(self.latent_bits,
                                                     "--latent-bits (latent_bits)", 1, 16))
        for key in ("lossless", "embed_model", "keep_model", "progress", "force"):
            set_(self, key, params.flag(getattr(self, key), key))
        set_(self, "device", params.device(self.device, "--device (device)"))
        if self.column_bounds is not None:
            set_(self, "column_bounds", _column_bounds(self.column_bounds))
        if self.effort not in EFFORTS:
            raise InputError(f"--effort must be one of {', '.join(EFFORTS)}, got {self.effort!r}")
        if self.entropy not in ("auto", "zstd", "pcodec"):
            raise InputError(f"entropy must be auto, zstd or pcodec, got {self.entropy!r}")
        if self.lossless and self.bound is not None:
            raise InputError("--lossless (lossless=True) cannot be combined with --error-bound "
                             "(bound=)")

    @classmethod
    def make(cls, bound: str | Bound | None = None, threads: int | None = None,
             **kw: Any) -> CompressOptions:
        """From user-level values: a bound string, threads None or 0 meaning 'all cores'."""
        unknown = sorted(set(kw) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"unknown option(s) {unknown}; the options are "
                             f"{', '.join(f.name for f in fields(cls))}")
        return cls(bound=Bound.parse(bound) if bound is not None else None,
                   threads=params.count_or_default(threads, "--threads (threads)",
                                                   default_threads), **kw)

    def use_pcodec(self) -> bool:
        """Whether integer code streams may be pcodec (feature pcodec-codes)."""
        if self.entropy == "zstd":
            return False
        try:
            import pcodec  # noqa: F401
        except ImportError:
            if self.entropy == "pcodec":
                raise InputError("entropy 'pcodec' needs the pcodec package: pip install pcodec"
                                 ) from None
            return False
        return True

    def with_(self, **changes: Any) -> CompressOptions:
        return replace(self, **changes)

    def level_for(self, raw_bytes: float) -> int:
        """The zstd level: the user's, else 19 for small tables (where every byte of the
        entropy stage shows in the ratio and time is negligible) and 3 for large ones."""
        if self.zstd_level is not None:
            return self.zstd_level
        return 19 if raw_bytes <= SMALL_TABLE_BYTES else 3


def _column_bounds(value: Any) -> Any:
    """ColumnBounds, or from Python: {glob: bound} or ['GLOB=BOUND', ...] as --error-bound
    takes them (a string had failed deep inside as an AttributeError)."""
    from .precision import ColumnBounds, split_bound_specs

    if isinstance(value, ColumnBounds):
        return value
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        value = [f"{g}={b}" for g, b in value.items()]
    if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
        raise InputError(f"column_bounds must be {{glob: bound}} or ['GLOB=BOUND', ...], got "
                         f"{type(value).__name__}")
    default, rules = split_bound_specs(value)
    if default is not None:
        raise InputError(f"column_bounds '{default}' names no columns: write 'GLOB=BOUND' "
                         f"(the bound for the other columns is bound=)")
    return rules
