"""Everything that says how to compress, in one record passed down instead of long
argument chains (CLI -> api -> writer -> coders)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from balerc.formats.errors import InputError
from balerc.formats.records import MAX_CHUNK_ROWS

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
        if not 1 <= self.chunk_rows <= MAX_CHUNK_ROWS:
            raise InputError(f"--chunk-rows (chunk_rows) must be between 1 and {MAX_CHUNK_ROWS:,}, got "
                             f"{self.chunk_rows:,}")
        if self.threads < 1:
            raise InputError(f"--threads (threads) must be positive, got {self.threads}")
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
        """From user-level values: a bound string, threads None meaning 'all cores'."""
        return cls(bound=Bound.parse(bound) if bound is not None else None,
                   threads=threads or default_threads(), **kw)

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
