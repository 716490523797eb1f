"""Analysis behind `balerc evaluate` and `balerc compare`: metrics, fits, figures, reports.

Kept out of the codec on purpose: it needs scipy and matplotlib, which a deployed codec
does not, and the peer compressors (`peers`: SZ3, ZFP, pcodec, mantissa truncation,
quantization + zstd) are evaluation tools, not runtime. Modules import their heavy
dependencies on first use.
"""

from __future__ import annotations

__all__ = ["compare", "evaluate", "figures", "fourvec", "metrics", "peakfit", "peers", "report"]
