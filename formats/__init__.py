"""balerc.formats: bytes on disk. The .balerc container and table I/O; no ML imports."""

from .errors import (
    BalercError,
    ChecksumError,
    ContainerError,
    FormatVersionError,
    InputError,
    MissingDependencyError,
    UnsupportedFeatureError,
)
from .table import KINDS, Table, concat, kind_of

__all__ = [
    "BalercError",
    "ChecksumError",
    "ContainerError",
    "FormatVersionError",
    "InputError",
    "KINDS",
    "MissingDependencyError",
    "Table",
    "UnsupportedFeatureError",
    "concat",
    "kind_of",
]
