"""Column coders by id: the registry a file's header names its coders from.

A coder codes some columns of every chunk into named streams and back, and describes
itself in the header (`get_config`) so that a reader can rebuild it (`from_config`).
Third-party coders register through the entry point group ``balerc.coders`` (the value
is the class); the container is handed the features the registered coders declare.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

import numpy as np

from balerc.formats import container
from balerc.formats.errors import UnsupportedFeatureError
from balerc.formats.table import Table

ENTRY_POINT_GROUP = "balerc.coders"
_REGISTRY: dict[str, type[ColumnCoder]] = {}


class ColumnCoder(Protocol):
    """What every coder provides (docs/FORMAT.md, sections 4 and 5)."""

    codec_id: ClassVar[str]
    features: ClassVar[frozenset[str]]  # container features files using it may require
    columns: list[str]

    def get_config(self) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: dict[str, Any], index: dict[str, int],
                    dtypes: dict[str, str], **runtime: Any) -> ColumnCoder: ...

    def attachments(self) -> dict[str, bytes]: ...

    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]: ...

    def decode(self, streams: dict[str, bytes], rows: int,
               meta: dict[str, Any]) -> dict[str, np.ndarray]: ...
    # Optional: a coder whose class sets `decodes_into = True` also takes
    # `decode(..., into={name: array})` and casts those columns straight into the given
    # arrays (the reader's output slices), returning them; others are copied there.

    def streams_for(self, names: list[str]) -> list[str]: ...


def register_coder(cls: type[ColumnCoder]) -> type[ColumnCoder]:
    """Make a coder class known by its `codec_id` (usable as a class decorator)."""
    _REGISTRY[cls.codec_id] = cls
    container.accept_features(cls.features)
    return cls


def get_coder(codec_id: str) -> type[ColumnCoder]:
    """The class for a header's coder id; entry points are looked up on first miss."""
    if codec_id not in _REGISTRY:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == codec_id:
                register_coder(ep.load())
    if codec_id not in _REGISTRY:
        raise UnsupportedFeatureError(
            f"unknown column coder '{codec_id[:40]}' in the file header (known: "
            f"{', '.join(sorted(_REGISTRY))}); upgrade balerc or install the package that "
            f"provides it")
    return _REGISTRY[codec_id]


def registered() -> dict[str, type[ColumnCoder]]:
    return dict(_REGISTRY)


def _builtin() -> None:
    from .autoencoder import AECoder
    from .lossless import LosslessCoder

    register_coder(LosslessCoder)
    register_coder(AECoder)


_builtin()
