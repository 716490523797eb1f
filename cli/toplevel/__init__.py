"""balerc: error-bounded compression of scientific tables with autoencoders.

The package's own namespace holds only the everyday entry points (loaded on first use, so
`import balerc` stays light and never imports torch); the work lives in balerc.formats,
balerc.codec, balerc.train and balerc.cli.

    import balerc
    with balerc.open_writer("run.balerc", model="model/", bound="pwrel:5e-4") as w:
        w.append(batch)
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "open_writer": "balerc.codec.writer", "open_reader": "balerc.codec.reader",
    "read_container": "balerc.codec.reader", "Codec": "balerc.codec.codec",
    "Bound": "balerc.codec.bounds", "CompressOptions": "balerc.codec.options",
    "compress_files": "balerc.codec.many", "decompress_files": "balerc.codec.many",
    "BalercError": "balerc.formats.errors",
    "read_sections": "balerc.codec.sections", "compress_sections": "balerc.codec.sections",
    "open_root_sections": "balerc.formats.root_sections",
    "write_root_sections": "balerc.formats.root_sections",
}
__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("balerc")
    except Exception:  # pragma: no cover - a source tree without install
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'balerc' has no attribute '{name}'")
