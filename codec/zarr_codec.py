"""balerc as a numcodecs codec (`BalercCodec`, zarr v2) and a zarr v3 codec (`BalercZarrCodec`).

Each chunk becomes one self-describing .balerc blob (schema, bound, coders). numcodecs and
zarr stay optional: this module imports them when it is imported, and `balerc.codec`
never imports this module, so the runtime does not need them.

Model choice: zarr chunks are many small blobs, so embedding the decoder (tens of kB) in
each one would cost more than the chunk saves. With a model the blobs only reference it:
the config records the decoder's sha256 next to the model directory, and decoding loads
that directory and refuses a decoder with another hash (the blob records the hash too).
`embed_model=True` embeds the decoder anyway, for arrays that must travel without it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from balerc.formats.errors import InputError
from balerc.formats.optional import require

from . import params
from .bounds import Bound
from .pipeline import DEFAULT_CHUNK_ROWS

numcodecs = require("numcodecs", "the balerc numcodecs/zarr codec")
_abc = require("numcodecs.abc", "the balerc numcodecs/zarr codec")
_compat = require("numcodecs.compat", "the balerc numcodecs/zarr codec")

CODEC_ID = "balerc"
FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))


def _check_dtype(dtype: Any) -> np.dtype:
    """Only float32/float64 have an error bound; anything else is refused by name."""
    dt = np.dtype(dtype)
    if dt.newbyteorder("=") not in FLOAT_DTYPES:
        raise InputError(f"the balerc codec stores float32 or float64 arrays, not {dt}; "
                         f"use a lossless codec (e.g. zstd) for this array")
    return dt


def _check_ranges(ranges: Any, bound: Bound) -> list[list[float]] | None:
    """`ranges`: [lo, hi] for every column or a list of them, one per column; only with a
    rel bound, finite, lo <= hi."""
    if ranges is None:
        return None
    if bound.mode != "rel":
        raise InputError(f"ranges apply to a rel bound, not {bound.mode}")
    pairs = [ranges] if len(ranges) == 2 and all(isinstance(v, numbers.Real)
                                                 for v in ranges) else list(ranges)
    out = []
    for pair in pairs:
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise InputError(f"ranges: {pair!r} is not a [lo, hi] pair") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise InputError(f"ranges: [{lo}, {hi}] must be finite with lo <= hi")
        out.append([lo, hi])
    if not out:
        raise InputError("ranges is empty; give [lo, hi] or one pair per column")
    return out


def _refuse_unknown(unknown: dict[str, Any]) -> None:
    """Config keys this version does not know (a typo, or metadata written by a newer
    balerc) are refused by name rather than by a TypeError."""
    if unknown:
        raise InputError(f"the balerc codec config has unknown key(s) {sorted(unknown)}; it "
                         f"takes bound, model, model_sha256, chunk_rows, names, embed_model, ranges "
                         f"(metadata from a newer balerc: upgrade it)")


LAYOUT_KEY = "numcodecs_layout"  # source key: the chunk's byte order / memory order


def _layout_of(buf: Any) -> dict[str, str]:
    """What decode must restore beyond the values: a byte order other than the machine's
    and Fortran order of a 2-D chunk (empty for the usual native C-order chunk, whose
    blobs stay as they were)."""
    if not isinstance(buf, np.ndarray):
        return {}
    out = {}
    if buf.dtype.byteorder not in ("=", "|") and not buf.dtype.isnative:
        out["byteorder"] = buf.dtype.byteorder
    if buf.ndim == 2 and buf.flags.f_contiguous and not buf.flags.c_contiguous:
        out["order"] = "F"
    if buf.ndim == 2 and buf.shape[1] == 1:  # one column: decode would give (n,)
        out["ndim"] = 2
    return out


def _as_table_array(buf: Any) -> np.ndarray:
    """A 1-D or 2-D float array in native byte order from whatever numcodecs passes."""
    if not isinstance(buf, np.ndarray):
        raise InputError("the balerc codec needs a numpy float array (a raw buffer has no "
                         "dtype or shape); pass np.asarray(...) with dtype float32/float64")
    arr = buf
    dt = _check_dtype(arr.dtype)
    if arr.ndim not in (1, 2):
        raise InputError(f"the balerc codec takes a 1-D column or a 2-D (rows x columns) "
                         f"array, got shape {arr.shape}; reshape it to (-1, columns)")
    if arr.size == 0:
        raise InputError(f"the balerc codec cannot encode an empty array (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=dt.newbyteorder("="))


class BalercCodec(_abc.Codec):
    """An error-bounded float codec: encode gives the bytes of a .balerc file.

    >>> codec = BalercCodec(bound="abs:1e-3")
    >>> back = codec.decode(codec.encode(array))      # |array - back| <= 1e-3, same dtype
    """

    codec_id = CODEC_ID

    def __init__(self, bound: str = "abs:1e-3", model: str | None = None,
                 model_sha256: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 names: list[str] | None = None, embed_model: bool = False,
                 ranges: Any = None, **unknown: Any):
        if unknown.get("id", CODEC_ID) == CODEC_ID:  # from_config(get_config()) carries it
            unknown.pop("id", None)
        _refuse_unknown(unknown)
        if isinstance(names, str):  # a string is not a list of names ('abc' -> a, b, c)
            raise InputError(f"names must be a list of column names, got the string {names!r}")
        if names is not None:  # duplicates had written chunks that never read back
            params.unique_names([str(n) for n in names], "the codec config's names")
        parsed = Bound.parse(bound)
        self.bound = f"{parsed.mode}:{parsed.value!r}"  # repr: no digits lost, unlike :g
        self.model = None if model is None else str(model)
        self.model_sha256 = model_sha256
        self.chunk_rows = params.integer(chunk_rows, "chunk_rows", 1)
        self.names = None if names is None else [str(n) for n in names]
        self.embed_model = params.flag(embed_model, "embed_model")
        self.ranges = _check_ranges(ranges, parsed)
        self._codec: Any = None
        if self.model is not None and self.model_sha256 is None:
            # The writer side: the model must exist to encode, so pin its hash now.
            self._codec, self.model_sha256 = _load_core(self.model, None, self.chunk_rows,
                                                        self.embed_model)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "bound": self.bound, "model": self.model,
                "model_sha256": self.model_sha256, "chunk_rows": self.chunk_rows,
                "names": self.names, "embed_model": self.embed_model,
                **({"ranges": self.ranges} if self.ranges is not None else {})}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({args})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the config only (dask/multiprocessing); the model reloads on first use."""
        return {**self.__dict__, "_codec": None}

    def _core(self) -> Any:
        """The balerc `Codec`, built once (model loaded and its hash checked once)."""
        if self._codec is None:
            self._codec, _ = _load_core(self.model, self.model_sha256, self.chunk_rows,
                                        self.embed_model)
        return self._codec

    def encode(self, buf: Any) -> bytes:
        layout = _layout_of(buf)
        arr = _as_table_array(buf)
        names = self.names
        if names is not None and len(names) != (1 if arr.ndim == 1 else arr.shape[1]):
            raise InputError(f"the codec config names {len(names)} columns but the chunk has "
                             f"{1 if arr.ndim == 1 else arr.shape[1]}; fix 'names' or the chunks")
        core = self._core()
        table = core._table(arr, names)
        if layout:
            table.source[LAYOUT_KEY] = layout
        return core.compress(table, bound=self.bound, ranges=self._chunk_ranges(table))

    def _chunk_ranges(self, table: Any) -> dict[str, tuple[float, float]] | None:
        """The declared range of each column: with `ranges`, a rel bound is the absolute
        E x (hi - lo) of each column, the same for every chunk, so a chunk zarr re-encodes
        after a partial write keeps its values (codes on a fixed grid encode again to
        themselves); without, None (rel: per chunk's own range)."""
        if self.ranges is None:
            return None
        floats = table.names_of_kind("float")
        if len(self.ranges) not in (1, len(floats)):
            raise InputError(f"the codec config declares {len(self.ranges)} ranges for a "
                             f"chunk of {len(floats)} columns; give one, or one per column")
        pairs = self.ranges * len(floats) if len(self.ranges) == 1 else self.ranges
        return {n: (float(lo), float(hi)) for n, (lo, hi) in zip(floats, pairs, strict=True)}

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """The chunk in the memory layout encode was given (numcodecs' contract: zarr v2
        reinterprets the bytes in the array's byte order and memory order)."""
        blob = _compat.ensure_bytes(buf)
        table = self._core().decompress(blob, as_array=False)
        cols = [table[n] for n in table.names_of_kind("float")]
        if not cols:
            raise InputError("this .balerc blob holds no float columns: not written by the "
                             "balerc zarr/numcodecs codec")
        dtype = cols[0].dtype
        arr = cols[0].copy() if len(cols) == 1 else np.stack(cols, axis=1).astype(dtype)
        layout = table.source.get(LAYOUT_KEY)
        if isinstance(layout, dict) and layout.get("ndim") == 2 and arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if isinstance(layout, dict):
            order = "F" if layout.get("order") == "F" else "C"
            swap = layout.get("byteorder") in ("<", ">")
            arr = arr.astype(dtype.newbyteorder(layout["byteorder"]) if swap else dtype,
                             order=order)
        return _compat.ndarray_copy(arr, out) if out is not None else arr


def _load_core(model: str | None, want_sha: str | None, chunk_rows: int,
               embed: bool) -> tuple[Any, str | None]:
    """Load the model directory (when any) and refuse one whose decoder is not `want_sha`."""
    from .codec import Codec
    from .model import sha256

    if model is None:
        if want_sha is not None:
            raise InputError(f"the codec config pins model_sha256={want_sha[:16]}... but names "
                             f"no model directory; set 'model' to the model directory")
        # zstd 3: a zarr chunk is one small table, where the default small-table level 19
        # would cost ~8x the time for ~10% (Zmumu-sized chunks)
        return Codec(None, threads=1, chunk_rows=chunk_rows, zstd_level=3), None
    try:
        codec = Codec(model, threads=1, chunk_rows=chunk_rows, embed_model=embed, zstd_level=3)
    except InputError as exc:
        raise InputError(f"the balerc codec config names the model '{model}', which cannot "
                         f"be loaded: {exc}; set 'model' to the directory the data was "
                         f"written with") from None
    got = sha256(codec.model.decoder)
    if want_sha is not None and got != want_sha:
        raise InputError(f"the model '{model}' has decoder sha256 {got[:16]}... but the data "
                         f"was written with {want_sha[:16]}...; point 'model' at the model "
                         f"directory it was written with")
    return codec, got


numcodecs.registry.register_codec(BalercCodec, CODEC_ID)


# -- zarr v3 ---------------------------------------------------------------------------------

try:  # zarr (v3) is optional: its codec lives in a module that imports zarr at the top
    import zarr.abc.codec  # noqa: F401
except ImportError:  # pragma: no cover - zarr absent

    class BalercZarrCodec:  # type: ignore[no-redef]
        """Stand-in that says how to get zarr."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            require("zarr", "the balerc zarr v3 codec")

else:
    from .zarr_v3 import BalercZarrCodec


__all__ = ["CODEC_ID", "BalercCodec", "BalercZarrCodec"]
