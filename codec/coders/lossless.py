"""The lossless coder: every column in its own stream `col/<i>` (i = schema index)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from balerc.formats.errors import ContainerError
from balerc.formats.table import Table

from .. import lossless
from ..validate import check_lossless_desc


@dataclass
class LosslessCoder:
    """Bit-exact floats, identical strings; a filter per column and chunk, then zstd."""

    codec_id: ClassVar[str] = "lossless"
    features: ClassVar[frozenset[str]] = frozenset({"lossless", "pcodec-lossless"})
    columns: list[str]
    index: dict[str, int]
    dtypes: dict[str, str]
    level: int = 3
    pcodec: bool = False  # numeric columns may be pcodec streams (feature pcodec-lossless)
    exhaustive: bool = False

    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        return (
            {f"col/{self.index[n]}": lossless.encode_column(chunk[n], self.level, self.pcodec,
                                                            self.exhaustive)
             for n in self.columns},
            {},
        )

    def decode(self, streams: dict[str, bytes], rows: int, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for n in self.columns:
            key = f"col/{self.index[n]}"
            if key in streams:
                dt = object if self.dtypes[n] == "str" else self.dtypes[n]
                out[n] = lossless.decode_column(streams[key], dt, rows, f"stream '{key}'")
        return out

    def streams_for(self, names: list[str]) -> list[str]:
        return [f"col/{self.index[n]}" for n in names if n in self.index]

    def attachments(self) -> dict[str, bytes]:
        return {}

    def get_config(self) -> dict[str, Any]:
        out = {"id": "lossless", "columns": [self.index[n] for n in self.columns],
               "zstd_level": self.level}
        if self.pcodec:
            out["features"] = ["lossless", "pcodec-lossless"]
        return out

    describe = get_config

    @classmethod
    def from_config(cls, config: dict[str, Any], index: dict[str, int], dtypes: dict[str, str],
                    **runtime: Any) -> LosslessCoder:
        """`config["columns"]` as names (the reader resolves the stored indices)."""
        check_lossless_desc(config, "header, lossless coder")
        features = config.get("features", [])
        if not isinstance(features, list):
            raise ContainerError("header, lossless coder: 'features' must be a list")
        return cls(list(config["columns"]), index, dtypes, config.get("zstd_level", 3),
                   pcodec="pcodec-lossless" in features)
