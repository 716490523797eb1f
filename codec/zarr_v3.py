"""The zarr v3 codec: balerc as an array-to-bytes codec (each chunk one .balerc blob).

Imported by codec/zarr_codec.py only when zarr imports (an ImportError here means zarr
is absent); the numcodecs codec it wraps, `BalercCodec`, lives there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from balerc.formats.errors import InputError

from .pipeline import DEFAULT_CHUNK_ROWS
from .zarr_codec import CODEC_ID, BalercCodec, _check_dtype, _refuse_unknown


@dataclass(frozen=True)
class BalercZarrCodec(ArrayBytesCodec):
    """zarr v3 array-to-bytes codec: each chunk is one .balerc blob (lossy floats must
    be array-to-bytes in v3, since the bytes codec would fix their exact layout)."""

    is_fixed_size = False
    inner: BalercCodec

    def __init__(self, *, bound: str = "abs:1e-3", model: str | None = None,
                 model_sha256: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 names: list[str] | None = None, embed_model: bool = False,
                 ranges: Any = None, **unknown: Any) -> None:
        _refuse_unknown(unknown)
        inner = BalercCodec(bound=bound, model=model, model_sha256=model_sha256,
                            chunk_rows=chunk_rows, names=names, embed_model=embed_model,
                            ranges=ranges)
        object.__setattr__(self, "inner", inner)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BalercZarrCodec:
        _, config = parse_named_configuration(data, CODEC_ID, require_configuration=False)
        return cls(**(config or {}))

    def to_dict(self) -> dict[str, Any]:
        config = {k: v for k, v in self.inner.get_config().items() if k != "id"}
        return {"name": CODEC_ID, "configuration": config}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BalercZarrCodec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        _check_dtype(dtype.to_native_dtype())
        if len(shape) not in (1, 2):
            raise InputError(f"the balerc zarr codec stores 1-D or 2-D (rows x columns) "
                             f"arrays, got {len(shape)}-D shape {shape}")

    async def _encode_single(self, chunk_array: Any, chunk_spec: Any) -> Any:
        arr = chunk_array.as_numpy_array()
        blob = await asyncio.to_thread(self.inner.encode, arr)
        return chunk_spec.prototype.buffer.from_bytes(blob)

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        arr = await asyncio.to_thread(self.inner.decode, chunk_bytes.to_bytes())
        arr = arr.astype(chunk_spec.dtype.to_native_dtype(), copy=False)
        arr = arr.reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    def compute_encoded_size(self, _input_byte_length: int, _chunk_spec: Any) -> int:
        raise NotImplementedError  # variable size, like every compressor


BalercZarrCodec.__module__ = "balerc.codec.zarr_codec"  # where users import it from
register_codec(CODEC_ID, BalercZarrCodec)
