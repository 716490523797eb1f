"""Optional dependencies, imported in one place with an install hint (uproot's pattern)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

_HINTS = {
    "pyarrow": "pip install 'balerc[parquet]'",
    "matplotlib": "pip install 'balerc[plot]'",
    "scipy": "pip install 'balerc[plot]'",
    "iminuit": "pip install 'balerc[plot]'",
    "boost_histogram": "pip install 'balerc[plot]'",
    "mplhep": "pip install 'balerc[style]'",
    "torch": "pip install torch==2.13.0 'balerc[train]'",
    "onnx": "pip install 'balerc[train]'",
    "pysz": "pip install 'balerc[bench]'",
    "zfpy": "pip install 'balerc[bench]'",
    "pcodec": "pip install 'balerc[bench]'",
    "uproot": "pip install uproot",
    "awkward": "pip install awkward",
    "numcodecs": "pip install 'balerc[zarr]'",
    "pandas": "pip install pandas",
    "zarr": "pip install 'balerc[zarr]'",
}


def require(name: str, why: str = "") -> ModuleType:
    """Import `name` or raise MissingDependencyError with the command that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = _HINTS.get(name, f"pip install {name}")
        what = f" ({why})" if why else ""
        raise MissingDependencyError(
            f"the optional package '{name}' is needed{what}; install it with: {hint}"
        ) from exc


def available(name: str) -> bool:
    """True when `name` imports; never raises."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def hint(name: str) -> str:
    """The pip command that installs optional package `name`."""
    return _HINTS.get(name, f"pip install {name}")
