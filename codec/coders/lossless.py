"""The lossless coder: every column in its own stream `col/<i>` (i = schema index)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from balerc.formats.table import Table

from .. import lossless
from ..validate import check_lossless_desc


@dataclass
class LosslessCoder:
    """Bit-exact floats, identical strings; a filter per column and chunk, then zstd."""

    codec_id: ClassVar[str] = "lossless"
    features: ClassVar[frozenset[str]] = frozenset({"lossless"})
    columns: list[str]
    index: dict[str, int]
    dtypes: dict[str, str]
    level: int = 3

    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        return (
            {f"col/{self.index[n]}": lossless.encode_column(chunk[n], self.level) for n in self.columns},
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
        return {"id": "lossless", "columns": [self.index[n] for n in self.columns],
                "zstd_level": self.level}

    describe = get_config

    @classmethod
    def from_config(cls, config: dict[str, Any], index: dict[str, int], dtypes: dict[str, str],
                    **runtime: Any) -> LosslessCoder:
        """`config["columns"]` as names (the reader resolves the stored indices)."""
        check_lossless_desc(config, "header, lossless coder")
        return cls(list(config["columns"]), index, dtypes, config.get("zstd_level", 3))
