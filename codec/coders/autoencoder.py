"""The lossy coder: anchors, quantized latents, and a residual that guarantees the bound.

Per chunk, for the float columns it covers (docs/FORMAT.md, "autoencoder coder"):

* anchor columns: codes round(y / 2e), decoded exactly to within e;
* latents: z = encoder(x), codes round(z / step), one stream;
* predicted columns: p = denorm(decoder(z', anchors')); residual codes round((y - p) / 2e')
  with e' = e - margin, where the margin absorbs the last-bit differences between ONNX
  Runtime providers and thread counts, so the bound holds wherever the file is decoded
  (a float64 decoder's formula columns need only a relative 2^-30: docs/FORMAT.md);
* per column and chunk the coder keeps whichever of "predicted" and "plain quantization"
  packs smaller, and drops the latents when no column gains: never worse than
  quantization + zstd, by construction;
* pwrel bounds quantize log2|y| with the sign folded into the code (mode g), or, for
  predicted columns, log2|y| - log2|p| with a finer step that leaves room for drift (r);
* small chunks pack all their code streams into one zstd frame (`qgroup`);
* every value whose reconstruction (after the cast to the column dtype) misses the bound,
  NaN and Inf included, is stored verbatim in an exception stream.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

import numpy as np

from balerc.formats import bounded
from balerc.formats.errors import ContainerError, InputError, SchemaError, UnsafeModelError
from balerc.formats.table import Table

from .. import lossless
from ..bounds import Bound
from ..logdomain import (
    alone_values,
    log2,
    log_codes,
    log_delta,
    relog,
    rescale,
    rint_log2,
    rint_log2_diff,
    sampled_log_entropy,
    scaled_codes,
)
from ..model import ModelBundle, lean_onnx, sha256
from ..packing import (
    SMALL_TRIAL,
    ZSTD_ONLY,
    CodeStats,
    Entropy,
    code_stats,
    decode_codes,
    encode_codes,
    finish_codes,
    pack_codes,
    pack_exceptions,
    row_entropies,
    unpack_codes,
    unpack_exceptions,
    unpack_group,
)
from ..runtime import session
from ..sandbox import decoder_spec, encoder_spec
from ..scratch import Scratch
from ..validate import check_ae_desc, check_ae_meta, require
from .grouping import Member, choose_grouping, group_members
from .stats import ColumnStats
from .wiremodes import (
    AUTOENCODER,
    DICTIONARY,
    LOG,
    MODEL_FREE,
    PREDICTED,
    PREDICTED_LOG,
    PREDICTED_SCALED,
    PREDICTING,
    QUANTIZED,
    WIRE_MODES,
    DecodeContext,
)

# Allowed drift of the decoder output between runtimes, in normalized units (x = (y-o)/s).
# Measured drift CPU 1 vs 2 threads vs CUDA (TF32 off) is < 1e-6; see docs/FORMAT.md.
MARGIN = 2.0**-18
# Decoders with float64 I/O compute their "exact" columns by float64 formulas: providers
# differ there by a few ulps (2^-52 relative), so a relative allowance far above that
# replaces the range-sized MARGIN for those columns (docs/FORMAT.md, drift).
EXACT_DRIFT = 2.0**-30
LazyPart = tuple[int, bytes] | Callable[[], tuple[int, bytes]]  # a raw part, or its maker
_MAX_CODE = 2.0**52  # codes beyond this lose integer exactness in float64: stored verbatim
DECODER_ATTACHMENT = "decoder.onnx.zst"  # files before lean decoders: the exported bytes
LEAN_ATTACHMENT = "decoder.lean.onnx.zst"  # feature lean-decoder: without doc string/metadata
GROUP_BYTES = 4 << 20  # chunks whose model-free codes fit this may pack them in one frame
MAX_MODEL_BYTES = 64 << 20  # an embedded decoder, compressed or not (docs/FORMAT.md)
MAX_DICTIONARY = 4096  # distinct values of a mode d column chunk


class AECoder:
    """Codes a group of float columns with an optional model and an optional bound."""

    codec_id: ClassVar[str] = "autoencoder"
    features: ClassVar[frozenset[str]] = frozenset({
        "autoencoder", "residual", "quantized", "decoder-float64", "lean-decoder",
        "grouped-residuals", "pcodec-codes", "pcodec-int32", "coded-exceptions", "dictionary",
        "scaled-pwrel"})

    def __init__(
        self,
        columns: list[str],
        index: dict[str, int],
        dtypes: dict[str, str],
        bound: Bound | None,
        abs_bounds: list[float] | None,
        model: ModelBundle | None,
        *,
        latent_step: float | None = None,
        margin: float = MARGIN,
        exact_drift: float = EXACT_DRIFT,
        level: int = 3,
        device: str = "cpu",
        threads: int = 1,
        embed_model: bool = True,
        source: str | None = None,
        entropy: Entropy = ZSTD_ONLY,
    ):
        self.source = source or (model.path if model is not None else "<model>")
        self.columns = columns
        self.index = index
        self.dtypes = dtypes
        self.bound = bound
        self.abs_bounds = np.asarray(abs_bounds, dtype=np.float64) if abs_bounds is not None else None
        self.model = model
        self.margin = margin
        self.exact_drift = exact_drift
        self.level = level
        self.device = device
        self.threads = threads
        self.embed_model = embed_model
        self.latent_step = latent_step
        self.entropy = entropy
        if model is not None:
            pos = {c: j for j, c in enumerate(columns)}
            self.anchor_idx = [pos[c] for c in model.anchors]
            self.pred_idx = [pos[c] for c in model.predicted]
            off, sc = model.norm()
            self.offset = np.asarray(off, dtype=np.float64)
            self.scale = np.asarray(sc, dtype=np.float64)
            if latent_step is None:
                self.latent_step = 2.0 / 2 ** model.latent_bits
            self.io64 = model.io64
            self.exact = {pos[c] for c in model.exact}
            try:  # what runs, on both sides, and what a file embeds
                self.lean = b"" if model.path == NOT_GIVEN else lean_onnx(model.decoder)
            except ValueError as exc:
                raise UnsafeModelError(
                    f"{self.source}: decoder: ONNX graph refused before it could run [protobuf]: "
                    f"not a valid ONNX model ({exc}); re-export the model") from None
        else:
            self.anchor_idx, self.pred_idx = [], []
            self.io64, self.exact = False, set()
            self.lean = b""
        self._stats = ColumnStats(len(columns))
        self._scratch = Scratch()  # chunk-sized work arrays, reused per thread
        self._recorded_hashes: dict[str, str] = {}
        self._deferred_model: str | None = None  # why the decoder is absent (from_header)

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": "autoencoder",
            "features": ["quantized", "residual"] + (["autoencoder"] if self.model else [])
            + (["decoder-float64"] if self.io64 else [])
            + (["lean-decoder"] if self.model is not None and self.embed_model else [])
            + (["grouped-residuals"] if self.model is not None and self.bound is not None else [])
            + (["pcodec-codes"] if self.entropy.pcodec else [])
            + (["pcodec-int32"] if self.entropy.pcodec and self.entropy.pcodec32 else [])
            + (["coded-exceptions"] if self.entropy.coded_exceptions else [])
            + (["dictionary"] if self._may_use_dictionary() else [])
            + (["scaled-pwrel"] if self._uses_scaled() else []),
            "columns": [self.index[c] for c in self.columns],
            "bound": {"mode": self.bound.mode, "value": self.bound.value} if self.bound else None,
            "abs_bounds": self.abs_bounds.tolist() if self.abs_bounds is not None else None,
            "margin": self.margin,
            "zstd_level": self.level,
        }

        if self.model is not None:
            d["latent_step"] = self.latent_step
            d["model"] = self.model.manifest.header_fields()
            if self.io64:
                d["exact_drift"] = self.exact_drift
            recorded = self._recorded_hashes  # rebuilt from a header: what it names
            d["decoder_sha256"] = recorded.get("decoder_sha256") or sha256(self.model.decoder)
            d["encoder_sha256"] = recorded.get("encoder_sha256") or (
                sha256(self.model.encoder) if self.model.encoder else None)
            d["decoder_attachment"] = LEAN_ATTACHMENT if self.embed_model else None
            if self.embed_model:
                d["decoder_attachment_sha256"] = sha256(self.lean)
        return d

    def get_config(self) -> dict[str, Any]:
        return self.describe()

    def _uses_scaled(self) -> bool:
        """Predicted pwrel columns are written as mode s (not r) unless the file must stay
        readable by balerc before it (--entropy zstd)."""
        return (self.entropy.scaled and self.model is not None and self.bound is not None
                and self.bound.mode == "pwrel")

    def _may_use_dictionary(self) -> bool:
        """Mode d needs an abs/rel bound and a column narrower than float64 (the cast that
        puts values off the grid); only then does the header list the feature."""
        return (self.entropy.dictionary and self.bound is not None and not self.bound.pointwise
                and any(self.dtypes[c] != "<f8" for c in self.columns))

    @classmethod
    def from_config(cls, config: dict[str, Any], index: dict[str, int], dtypes: dict[str, str],
                    **runtime: Any) -> AECoder:
        return cls.from_header(config, index, dtypes, **runtime)

    def attachments(self) -> dict[str, bytes]:
        """The lean decoder ONNX bytes, zstd-compressed, stored once right after the header."""
        if self.model is None or not self.embed_model:
            return {}
        import zstandard

        return {LEAN_ATTACHMENT: zstandard.ZstdCompressor(level=19).compress(self.lean)}

    @classmethod
    def from_header(
        cls,
        desc: dict[str, Any],
        index: dict[str, int],
        dtypes: dict[str, str],
        *,
        device: str = "cpu",
        model_dir: str | os.PathLike | None = None,
        threads: int = 1,
        attachment: Any = None,
        source: str = "<file>",
        **_: Any,
    ) -> AECoder:
        """The coder a file's header describes, with the model it decodes with."""
        check_ae_desc(desc, "header, autoencoder coder", desc["columns"], dtypes)
        deferred = None
        try:
            model = _header_model(desc, attachment, model_dir)
        except _NoModelGiven as exc:  # needed only by chunks that predict: said there
            model = ModelBundle(dict(desc["model"], format="balerc-model"), None, b"",
                                path=NOT_GIVEN)
            deferred = f"{source}: {exc}"
        b = desc.get("bound")
        features = desc.get("features", [])
        if not isinstance(features, list):
            raise ContainerError("header, autoencoder coder: 'features' must be a list")
        coder = cls(
            desc["columns"], index, dtypes, Bound(b["mode"], b["value"]) if b else None,
            desc.get("abs_bounds"), model, latent_step=desc.get("latent_step"),
            margin=desc.get("margin", MARGIN), exact_drift=desc.get("exact_drift", EXACT_DRIFT),
            level=desc.get("zstd_level", 3), device=device,
            entropy=Entropy(pcodec="pcodec-codes" in features,
                            pcodec32="pcodec-int32" in features,
                            coded_exceptions="coded-exceptions" in features,
                            dictionary="dictionary" in features,
                            scaled="scaled-pwrel" in features),
            threads=threads,
            source=f"{source}: embedded" if model and model.path == "<embedded>" else (
                str(model_dir) if model and model_dir is not None else source),
        )
        coder._deferred_model = deferred
        coder._recorded_hashes = {k: desc[k] for k in ("decoder_sha256", "encoder_sha256")
                                  if desc.get(k)}
        return coder

    # ------------------------------------------------------------------ helpers
    def _col_bound(self, j: int) -> float:
        assert self.abs_bounds is not None
        return float(self.abs_bounds[j])

    def _sid(self, role: str, j: int) -> str:
        return f"{role}/{self.index[self.columns[j]]}"

    def _predict(self, latents: np.ndarray | None, anchors: np.ndarray) -> np.ndarray:
        """Decoder output in column units (float64) for the predicted columns, one row per
        column (K, n): one transposing pass instead of a strided gather per column, which
        read the whole (n, K) output K times (4% of a model compress)."""
        assert self.model is not None
        dec = self._decoder_session(self.threads)
        inputs: dict[str, np.ndarray] = {}
        if latents is not None:
            inputs["z"] = latents
        if self.anchor_idx:  # float64 decoders take anchors in column units
            inputs["a"] = anchors if self.io64 else (
                (anchors - self.offset[self.anchor_idx]) / self.scale[self.anchor_idx]
            ).astype(np.float32)
        n, K = anchors.shape[0], len(self.pred_idx)
        p = np.empty((K, n))
        blocks = dec.run_blocks(**inputs)
        ends = [start for start, _ in blocks[1:]] + [n]
        for (start, out), end in zip(blocks, ends, strict=True):
            if out.shape != (end - start, K):  # the sandbox checked it too
                raise ContainerError(f"{self.source}: the decoder returned shape {out.shape}, "
                                     f"expected ({end - start}, {K})")
            np.copyto(p[:, start:end], out.T)  # float32 -> float64 is exact
        if not self.io64:  # the same two roundings per value as (out * scale + offset)
            p *= self.scale[self.pred_idx][:, None]
            p += self.offset[self.pred_idx][:, None]
        return p

    def _decoder_session(self, threads: int) -> Any:
        """The decoder's ONNX Runtime session, its graph checked by the sandbox first."""
        assert self.model is not None
        if self._deferred_model is not None:  # a --no-embed-model file read without -m
            raise InputError(self._deferred_model)
        spec = decoder_spec(self.model.latent_dim, len(self.anchor_idx), len(self.pred_idx),
                            self.io64)
        return session(self.lean, self.device, threads, spec=spec, source=f"{self.source}: decoder")

    def _pred_margin(self, j: int) -> float:
        """Absolute slack for runtime drift of column j's prediction: margin x scale, or for
        an exact column the relative allowance x the largest value of its range."""
        if j in self.exact:
            return self.exact_drift * (abs(float(self.offset[j])) + abs(float(self.scale[j])))
        return self.margin * float(self.scale[j])

    # ------------------------------------------------------------------ encode
    def encode(self, chunk: Table, index: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._encode(chunk)

    def _encode(self, chunk: Table) -> tuple[dict[str, bytes], dict[str, Any]]:
        n = chunk.n_rows
        F = len(self.columns)
        # column-major (F, n): every per-column operation below runs on contiguous memory
        ws = self._scratch
        Y = ws.array("Y", (F, n))
        finite = ws.array("finite", (F, n), bool)
        all_finite = np.empty(F, dtype=bool)
        for j, name in enumerate(self.columns):  # each column's passes while it is in cache
            Y[j] = chunk[name]
            all_finite[j] = np.isfinite(Y[j], out=finite[j]).all()
        recon = ws.array("recon", (F, n))
        streams: dict[str, bytes] = {}
        modes = [QUANTIZED.letter] * F
        offsets = [0] * F

        strict: dict[int, np.ndarray | float] = {}  # limits that leave room for decoder drift
        rel_eps: dict[int, float] = {}  # mode r: the finer relative bound its codes use
        plain: dict[int, bytes] = {}  # per column: the stream without any model
        parts: dict[int, tuple[int, bytes]] = {}  # the same, uncompressed (for grouping)
        mparts: dict[str, LazyPart] = {}  # model streams (res/sign), uncompressed
        if self.bound is not None and self.bound.pointwise:
            modes = [LOG.letter] * F

            def plain_of(j: int) -> bytes:
                """Column j's model-free stream, made on first use."""
                if j not in plain:
                    parts[j] = self._encode_log(j, Y[j], finite[j], recon, offsets)
                    plain[j] = finish_codes(parts[j], self.level)
                return plain[j]

            # predicted columns get their model-free stream only if the model's may not win
            lazy = set(self.pred_idx) if self.model is not None else set()
            self._encode_logs([j for j in range(F) if j not in lazy], Y, finite, recon,
                              offsets, parts, plain)
            if self.model is not None:
                self._encode_model_pwrel(Y, finite, recon, plain_of, modes, streams, strict, rel_eps,
                                         mparts)
                for j in range(F):
                    if modes[j] in MODEL_FREE:
                        plain_of(j)
        else:
            self._encode_abs(Y, finite, all_finite, recon, modes, offsets, streams, parts, plain,
                             strict, mparts)
        grouped = self._group(modes, parts, plain, mparts, streams)
        self._exceptions(Y, finite, all_finite, recon, strict, streams)
        self._stats.chunk_done(n, modes)
        meta: dict[str, Any] = {"modes": "".join(modes)}
        if grouped:
            meta["grouped"] = grouped
        if rel_eps:
            meta["rel_eps"] = [rel_eps.get(j, 0.0) for j in range(F)]
        kept = [o if WIRE_MODES[m].takes_offset else 0 for o, m in zip(offsets, modes, strict=True)]
        if any(kept):
            meta["offsets"] = kept
        return streams, meta

    def _exceptions(self, Y: np.ndarray, finite: np.ndarray, all_finite: np.ndarray,
                    recon: np.ndarray, strict: dict[int, np.ndarray | float],
                    streams: dict[str, bytes]) -> None:
        """Store verbatim every value the decoder would not reproduce within the bound
        (after the cast to the column's dtype; NaN and Inf included), and account errors.
        Column by column in reused work arrays: each column's cast, error and check run
        while its 0.5 MB stay in L2."""
        ws, n = self._scratch, Y.shape[1]
        err = ws.array("err", (n,))
        for j in range(len(self.columns)):
            dt = np.dtype(self.dtypes[self.columns[j]])
            cast = recon[j]
            if dt != np.float64:  # recon[j].astype(dt).astype(np.float64), in place
                narrow = ws.array(f"narrow {dt.str}", (n,), dt)
                np.copyto(narrow, recon[j], casting="unsafe")
                cast = ws.array("cast", (n,))
                np.copyto(cast, narrow)
            np.subtract(Y[j], cast, out=err)
            np.abs(err, out=err)
            limit = strict[j] if j in strict else self._limit(j, Y[j], ws.array("limit", (n,)))
            top = None  # err's max, when known
            if all_finite[j] and not isinstance(limit, np.ndarray):  # one reduction decides
                top = float(err.max())  # NaN (a non-finite decode) fails the test below
            if top is None or not top <= limit:
                ok = np.less_equal(err, limit, out=ws.array("ok", (n,), bool))  # NaN: not ok
                if not all_finite[j]:
                    ok &= finite[j]
                if not ok.all():
                    rows = np.flatnonzero(~ok)
                    streams[self._sid("exc", j)] = pack_exceptions(rows, Y[j, rows], self.level,
                                                                    self.entropy)
                    err[rows] = 0.0
                top = None
            rel = None
            if self.bound is not None and self.bound.pointwise:  # 0/0 is NaN: ignored
                rel = np.abs(Y[j], out=ws.array("rel", (n,)))
                with np.errstate(divide="ignore", invalid="ignore"):
                    np.divide(err, rel, out=rel)
            self._stats.account(j, err, rel, top,
                                None if all_finite[j] else int(np.count_nonzero(finite[j])))
            if self.bound is None:
                self._stats.account_values(j, Y[j], cast)

    def _group(self, modes: list[str], parts: dict[int, tuple[int, bytes]],
               plain: dict[int, bytes], mparts: dict[str, LazyPart],
               streams: dict[str, bytes]) -> int:
        """Pack the chunk's code streams into `qgroup` when smaller (codec/coders/grouping.py);
        returns the meta `grouped` version (0: separate streams)."""
        def member(j: int, role: str, with_part: bool) -> Member:
            sid = self._sid(role, j)
            if not WIRE_MODES[modes[j]].needs_prediction:
                return sid, parts[j], plain[j]
            part = mparts[sid]  # made by _encode_model(_pwrel); flags: on first use
            if with_part and callable(part):
                part = mparts[sid] = part()
            return sid, part if with_part else None, streams[sid]

        version, frame, members = choose_grouping(modes, member, self.level,
                                                  self.entropy.exhaustive)
        for sid, _, data in members:
            if frame is None:
                streams[sid] = data
            else:
                streams.pop(sid, None)
        if frame is not None:
            streams["qgroup"] = frame
        return version

    def _dictionary_suspects(self, Y: np.ndarray, recon: np.ndarray) -> set[int]:
        """The model-free columns narrower than float64 whose first 4,096 quantized values
        miss the bound after the cast to their dtype on over 1/64 of the rows: the only
        ones `_dictionary` looks at further. One set of passes per dtype over every such
        column's sample (per-column passes over 4,096 values queue two encoder threads on
        the GIL)."""
        if not self._may_use_dictionary():
            return set()
        by_dtype: dict[np.dtype, list[int]] = {}
        for j, name in enumerate(self.columns):
            dt = np.dtype(self.dtypes[name])
            if dt != np.float64 and j not in self.anchor_idx and j not in self.pred_idx:
                by_dtype.setdefault(dt, []).append(j)  # float64: no cast, no misses
        suspects: set[int] = set()
        for dt, cols in by_dtype.items():
            yp = Y[cols, :4096]
            cast = recon[cols, :4096].astype(dt).astype(np.float64)
            limits = np.array([self._limit(j, yp[k]) for k, j in enumerate(cols)])
            misses = np.count_nonzero(np.abs(yp - cast) > limits[:, None], axis=1)
            suspects.update(j for j, m in zip(cols, misses, strict=True)
                            if int(m) * 64 > yp.shape[1])
        return suspects

    def _dictionary(self, j: int, y: np.ndarray, finite: np.ndarray, r: np.ndarray
                    ) -> tuple[np.ndarray, bytes] | None:
        """Mode d for a suspect column (`_dictionary_suspects`) whose quantized values miss
        the bound after the cast to its dtype on over 1/64 of all rows (a float32 column of
        few distinct values on half steps) and that has at most MAX_DICTIONARY distinct
        values: (codes, stream `dict/<i>`), r set to the exact values; else None."""
        dt = np.dtype(self.dtypes[self.columns[j]])
        cast = r.astype(dt).astype(np.float64)
        if np.count_nonzero(np.abs(y - cast) > self._limit(j, y)) * 64 <= y.size:
            return None
        values, codes = np.unique(np.where(finite, y, 0.0), return_inverse=True)
        if values.size > MAX_DICTIONARY:
            return None
        r[:] = values[codes]
        stream = values.size.to_bytes(4, "little") + lossless.encode_column(values, self.level)
        return codes.astype(np.int64), stream

    def _limit(self, j: int, y: np.ndarray, out: np.ndarray | None = None
               ) -> np.ndarray | float:
        """Column j's per-value limit: the bound's own definition (codec/bounds.py), a
        per-value one written into `out` when given."""
        if self.bound is None:
            return np.inf if j in self.pred_idx else self._col_bound(j)
        return self.bound.limit(y, None if self.bound.pointwise else self._col_bound(j), out)

    def _encode_abs(self, Y: np.ndarray, finite: np.ndarray, all_finite: np.ndarray,
                    recon: np.ndarray, modes: list[str], offsets: list[int],
                    streams: dict[str, bytes], parts: dict[int, tuple[int, bytes]],
                    plain: dict[int, bytes], strict: dict[int, np.ndarray | float],
                    mparts: dict[str, LazyPart]) -> None:
        """abs/rel bounds: modes q (or d) for every column, then p where the model pays.
        A predicted column's model-free stream is only packed if the prediction may lose."""
        assert self.abs_bounds is not None
        qcodes: dict[int, np.ndarray] = {}
        all_codes, lows, highs = _quantize_all(Y, self.abs_bounds, finite, all_finite, recon,
                                               self._scratch)
        # sample statistics of every column at once (mode d columns compute their own)
        stats: list[CodeStats | None] = (code_stats(all_codes, lows, highs)
                                         if all_codes.shape[1] > SMALL_TRIAL
                                         else [None] * len(self.columns))
        suspects = self._dictionary_suspects(Y, recon)
        narrow = self._scratch.array("q32", all_codes.shape, np.int32)
        for j in range(len(self.columns)):
            codes = all_codes[j]
            offsets[j] = int(lows[j])  # non-negative codes pack narrower
            table = self._dictionary(j, Y[j], finite[j], recon[j]) if j in suspects else None
            if table is not None:  # mode d: codes index the chunk's distinct values
                codes, streams[self._sid("dict", j)] = table
                modes[j], offsets[j], stats[j] = DICTIONARY.letter, 0, None
            st = stats[j]
            if self.entropy.pcodec32 and st is not None and st.hi is not None and st.hi < 2**31:
                # 0 <= codes - low < 2^31: shifted straight into int32, the type pcodec takes
                qcodes[j] = narrow[j]
                np.subtract(codes, offsets[j], out=narrow[j], casting="unsafe")
            else:
                qcodes[j] = codes - offsets[j]

        def plain_of(j: int) -> bytes:
            if j not in plain:
                parts[j] = encode_codes(qcodes[j], self.entropy, stats[j])
                plain[j] = finish_codes(parts[j], self.level)
            return plain[j]

        lazy = set(self.pred_idx) if self.model is not None else set()
        for j in range(len(self.columns)):
            if j not in lazy:
                plain_of(j)
                if modes[j] == DICTIONARY.letter:
                    streams[self._sid("res", j)] = plain[j]
        if self.model is not None:
            ests: dict[int, float] = {}

            def estimate(j: int) -> float:  # every predicted column's at the first call
                if not ests:
                    ests.update(_entropy_bytes({k: qcodes[k] for k in self.pred_idx}))
                return ests[j]

            self._encode_model(Y, finite, all_finite, recon, plain_of, estimate, modes,
                               streams, strict, mparts)
            for j in lazy:
                if modes[j] in MODEL_FREE:
                    plain_of(j)

    def _encode_model(
        self,
        Y: np.ndarray,
        finite: np.ndarray,
        all_finite: np.ndarray,
        recon: np.ndarray,
        plain_of: Any,
        estimate: Any,
        modes: list[str],
        streams: dict[str, bytes],
        strict: dict[int, np.ndarray | float],
        mparts: dict[str, LazyPart],
    ) -> None:
        """Latents + predictions; keep a column's prediction only where it packs smaller
        than the column's model-free stream (estimated from its codes' histogram where the
        prediction clearly wins; packed and compared otherwise, or with --effort exhaustive)."""
        assert self.model is not None and self.abs_bounds is not None
        latents, lat_stream = self._latents(Y, finite)
        p = self._predict(latents, recon[self.anchor_idx].T)
        candidates: dict[int, tuple[bytes, np.ndarray]] = {}
        raw: dict[int, tuple[int, bytes]] = {}
        gain = 0.0
        quantized: dict[int, tuple[np.ndarray, np.ndarray, int, int]] = {}
        for k, j in enumerate(self.pred_idx):
            pk = p[k]
            if self.bound is None:
                candidates[j] = (b"", pk)
                continue
            e = self.abs_bounds[j] - self._pred_margin(j)
            if e <= 0.75 * self.abs_bounds[j]:  # bound too tight for the margin: no prediction
                continue
            pk[~np.isfinite(pk)] = 0.0
            quantized[j] = _quantize(Y[j], pk, e, finite[j], all_finite[j])
        stats = self._residual_stats(quantized)
        for j, (codes, r, _, _) in quantized.items():
            raw[j] = encode_codes(codes, self.entropy, stats.get(j))
            data = finish_codes(raw[j], self.level)
            est = 0.0 if self.entropy.exhaustive else estimate(j)
            base = est if len(data) < 0.8 * est else len(plain_of(j))
            if len(data) < base:
                candidates[j] = (data, r)
                gain += base - len(data)
        if self.bound is not None and gain <= len(lat_stream):
            return  # the model does not pay in this chunk: plain quantization everywhere
        if lat_stream:
            streams["latents"] = lat_stream
        for j, (data, r) in candidates.items():
            modes[j] = (AUTOENCODER if self.bound is None else PREDICTED).letter
            recon[j] = r
            if data:
                streams[self._sid("res", j)] = data
                mparts[self._sid("res", j)] = raw[j]
                strict[j] = self.abs_bounds[j] - self._pred_margin(j)

    @staticmethod
    def _residual_stats(quantized: dict[int, tuple[np.ndarray, np.ndarray, int, int]]
                        ) -> dict[int, CodeStats]:
        """CodeStats of the long residual code streams, in one code_stats call, with the
        extremes _quantize found."""
        stats = _long_stats({j: q[0] for j, q in quantized.items()})
        return {j: replace(st, lo=quantized[j][2], hi=quantized[j][3])
                for j, st in stats.items()}

    def _latents(self, Y: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray | None, bytes]:
        """Quantized latents as the decoder will see them, and their packed stream."""
        assert self.model is not None
        if self.model.latent_dim == 0:
            return None, b""
        assert self.model.encoder is not None and self.latent_step is not None
        x = (np.where(finite, Y, self.offset[:, None]).T - self.offset) / self.scale
        spec = encoder_spec(len(self.columns), self.model.latent_dim)
        enc = session(self.model.encoder, self.device, self.threads, spec=spec,
                      source=f"{self.source}: encoder")
        z = enc.run(x=x.astype(np.float32))
        qz = np.rint(np.clip(z, -4.0, 4.0) / self.latent_step).astype(np.int64)
        return (qz * self.latent_step).astype(np.float32), pack_codes(qz.T.ravel(), self.level, self.entropy)

    def _encode_model_pwrel(
        self,
        Y: np.ndarray,
        finite: np.ndarray,
        recon: np.ndarray,
        plain_of: Any,
        modes: list[str],
        streams: dict[str, bytes],
        strict: dict[int, np.ndarray | float],
        rel_eps: dict[int, float],
        mparts: dict[str, LazyPart],
    ) -> None:
        """Pointwise bound relative to the prediction, in the log domain.

        codes = round((log2|y| - log2|p|) / delta_r), plus a flag stream: y has p's sign (0),
        the other sign (1), is zero (2), or is coded alone as +/-2^(c delta) (3/4). A
        decoder on another runtime sees p' = p + drift and so scales |y'| by |p'|/|p|;
        delta_r comes from a bound E_r < E chosen so that 98% of the rows keep that room,
        the others are coded alone. The model-free stream of a column is only made when a
        sample says it could be smaller than the model's (it costs as much as the model path).
        """
        assert self.model is not None and self.bound is not None
        latents, lat_stream = self._latents(Y, finite)
        p = self._predict(latents, recon[self.anchor_idx].T)
        chosen: dict[int, tuple[dict[str, bytes], np.ndarray, np.ndarray]] = {}
        pw_eps: dict[int, float] = {}
        raw: dict[str, LazyPart] = {}
        gain = 0.0
        relogged = {}
        for k, j in enumerate(self.pred_idx):
            pk = p[k]
            pk[~np.isfinite(pk)] = 0.0
            relogged[j] = self._relog_column(j, Y[j], pk, finite[j])
        ests = self._plain_log_estimates(list(relogged), Y, finite)
        res = {j: q[0].astype(np.int64) for j, q in relogged.items()}
        stats = _long_stats(res)  # every residual stream's sample statistics at once
        for j, (_, flag, r, limit, eps_r) in relogged.items():
            rid, sid = self._sid("res", j), self._sid("sign", j)
            raw[rid] = encode_codes(res.pop(j), self.entropy, stats.get(j))
            raw[sid] = partial(_flag_part, flag, self.entropy)  # coded only for a group
            data = {rid: finish_codes(raw[rid], self.level),
                    sid: lossless.encode_column(flag, self.level)}
            size = sum(len(v) for v in data.values())
            est = ests[j]
            base = est if size < 0.6 * est else len(plain_of(j))
            if size < base:
                chosen[j] = (data, r, limit)
                pw_eps[j] = eps_r
                gain += base - size
        if gain <= len(lat_stream):
            return
        if lat_stream:
            streams["latents"] = lat_stream
        for j, (data, r, limit) in chosen.items():
            modes[j] = (PREDICTED_SCALED if self._uses_scaled() else PREDICTED_LOG).letter
            recon[j] = r
            streams.update(data)
            mparts.update({k: raw[k] for k in data})
            strict[j] = limit
            rel_eps[j] = pw_eps[j]

    def _drift_room(self, j: int, ap: np.ndarray, rel: np.ndarray
                    ) -> tuple[np.ndarray | float, float]:
        """Column j's drift allowance (relative to |p|) and the finer bound E_r that leaves
        room for it on 98% of the rows: |y - y''| <= (E_r + d/|p|)|y|."""
        assert self.bound is not None
        eps = self.bound.value
        if j in self.exact:  # float64 formulas: drift relative to |p|, tiny
            drift: np.ndarray | float = self.exact_drift
            kappa = float(np.clip(self.exact_drift * (1.0 + eps) / eps, 1 / 256, 0.5))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                drift = self._pred_margin(j) / ap
            need = drift[rel] * (1.0 + eps) / eps
            kappa = float(np.clip(np.quantile(need, 0.98), 1 / 256, 0.5)) if need.size else 0.5
        return drift, eps * (1.0 - kappa)

    def _relog_column(self, j: int, y: np.ndarray, pk: np.ndarray, finite: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Mode r for one column: codes, flags, reconstruction, per-row limits, E_r."""
        assert self.bound is not None
        eps = self.bound.value
        delta = log_delta(eps)
        ap, ay = np.abs(pk), np.abs(y)
        nonzero = finite & (ay > 0)
        rel = nonzero & (ap > 0)  # relative to the prediction where usable, else alone
        drift, eps_r = self._drift_room(j, ap, rel)
        delta_r = log_delta(eps_r)
        flag = (np.signbit(y) != np.signbit(pk)).view(np.uint8)
        if self._uses_scaled():  # mode s: |p| x 2^(c delta_r), no log2 of p on either side
            c, rel = scaled_codes(ay, ap, rel, delta_r)
            codes = np.where(rel, c, 0.0)
            r = rescale(pk, codes, flag, delta_r, delta)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                logp = log2(ap)  # exact: the decoder's reconstruction starts from it
            c = rint_log2_diff(ay, logp, delta_r)  # the exact path's codes, numpy's speed
            codes = np.where(rel, c, 0.0)
            r = relog(pk, codes, flag, delta_r, delta, logp)
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = eps * ay - np.abs(r) * drift
        alone = nonzero & ~(np.abs(y - r) <= limit)  # prediction too close to 0, or drift
        zero = finite & (y == 0)
        flag[zero] = 2
        r[zero] = 0.0
        if alone.any():  # the rows relog decodes as +/-2^(c delta)
            ca = rint_log2(ay[alone], delta)
            codes[alone] = ca
            flag[alone] = np.where(np.signbit(y[alone]), 4, 3)
            r[alone] = alone_values(ca, flag[alone], delta)
            limit = np.where(alone, eps * ay, limit)
        return codes, flag, r, limit, eps_r

    def _plain_log_estimates(self, cols: list[int], Y: np.ndarray, finite: np.ndarray
                             ) -> dict[int, float]:
        """Mode g bytes of each column in `cols` estimated from every k-th row (about 4096
        rows): the order-0 entropy of their codes, no trial compression (0 with --effort
        exhaustive: the stream itself is packed and compared). All columns' samples in one
        set of passes (small per-column calls cost GIL handoffs between encoder threads)."""
        assert self.bound is not None
        if self.entropy.exhaustive or not cols:
            return dict.fromkeys(cols, 0.0)
        n = Y.shape[1]
        step = max(1, n // 4096)
        bits = sampled_log_entropy(Y[cols, ::step], finite[cols, ::step], self.bound.value)
        s = -(-n // step)  # the sample's length
        return {j: (float(h) * s / 8 + 32 - 32) * (n / max(1, s)) + 32
                for j, h in zip(cols, bits, strict=True)}

    def _encode_logs(self, cols: list[int], Y: np.ndarray, finite: np.ndarray,
                     recon: np.ndarray, offsets: list[int], parts: dict[int, tuple[int, bytes]],
                     plain: dict[int, bytes]) -> None:
        """`_encode_log` for several columns, the sample statistics of their codes taken
        in one set of passes (code_stats: fewer GIL handoffs between encoder threads)."""
        assert self.bound is not None
        codes = {}
        for j in cols:
            codes[j], offsets[j], _ = log_codes(Y[j], self.bound.value, finite[j], out=recon[j])
        stats = _long_stats(codes)
        for j in cols:
            parts[j] = encode_codes(codes.pop(j), self.entropy, stats.get(j))
            plain[j] = finish_codes(parts[j], self.level)

    def _encode_log(
        self, j: int, y: np.ndarray, finite: np.ndarray, recon: np.ndarray, offsets: list[int]
    ) -> tuple[int, bytes]:
        """Mode g: c = sign(y) * (round(log2|y| / delta) - k + 1), 0 for zero (k = offset).

        The sign rides in the code (one stream, like the peers' log quantization); NaN/Inf
        get code 0 and are restored from the exception stream.
        """
        assert self.bound is not None
        codes, offsets[j], _ = log_codes(y, self.bound.value, finite, out=recon[j])
        return encode_codes(codes, self.entropy)

    # ------------------------------------------------------------------ decode
    def streams_for(self, names: list[str]) -> list[str]:
        idx = [self.index[c] for c in self.columns]
        roles = ("res", "exc", "sign", "dict")
        return [f"{r}/{i}" for i in idx for r in roles] + ["latents", "qgroup"]

    decodes_into = True  # decode() may write columns straight into the caller's arrays

    def decode(self, streams: dict[str, bytes], rows: int, meta: dict[str, Any],
               into: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The chunk's columns; those named in `into` (arrays of `rows` values of the
        column's dtype, e.g. the chunk's slice of the reader's output) are cast straight
        into them and returned as those arrays (one pass, no intermediate copy)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._decode(streams, rows, meta, into or {})

    def _decode(self, streams: dict[str, bytes], rows: int, meta: dict[str, Any],
                into: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model-free columns first (the anchors among them), then the predicted ones, each
        by its wire mode (codec/coders/wiremodes.py), then the verbatim exceptions."""
        F = len(self.columns)
        modes = check_ae_meta(meta, "chunk metadata", F, self.bound.mode if self.bound else None,
                              self.model is not None, set(self.pred_idx))
        ctx = self._context(streams, rows, meta, modes)
        # column-major, as in encode; a reused work array: every row is assigned below (the
        # modes cover every column, check_ae_meta), and each column leaves it as a copy
        recon = self._scratch.array("decoded", (F, rows))
        rows_of = list(recon)  # column j's row; a wire mode may write there itself
        ctx.out = rows_of.__getitem__

        def decode(j: int, m: str) -> None:
            got = WIRE_MODES[m].decode(ctx, j)
            if got is not rows_of[j]:
                rows_of[j][...] = got

        for j, m in enumerate(modes):
            if m in MODEL_FREE:
                decode(j, m)
        if any(m in PREDICTING for m in modes):
            predicted = self._decode_prediction(streams, rows, recon)
            ctx.prediction = predicted.__getitem__
            for j, m in enumerate(modes):
                if m in PREDICTING:
                    decode(j, m)
        out = {}
        for j, name in enumerate(self.columns):
            col = recon[j]
            sid = self._sid("exc", j)
            if sid in streams:
                r, v = unpack_exceptions(streams[sid], rows, self.entropy.coded_exceptions)
                col[r] = v
            if name in into:  # the same C cast as astype, into the caller's array
                np.copyto(into[name], col, casting="unsafe")
                out[name] = into[name]
            else:
                out[name] = col.astype(np.dtype(self.dtypes[name]))
        return out

    def _context(self, streams: dict[str, bytes], rows: int, meta: dict[str, Any],
                 modes: str) -> DecodeContext:
        """Stream access for the wire modes: grouped codes unpacked once, others on demand."""
        grouped: dict[str, tuple[int, bytes]] = {}
        version = meta.get("grouped", 0)
        if version:
            members = group_members(modes, version)
            unpacked = unpack_group(require(streams, "qgroup"), len(members), rows)
            grouped = {self._sid(r, j): part for (j, r), part in zip(members, unpacked, strict=True)}

        for j, m in enumerate(modes):  # every stream the modes read, before the decoder
            for role in WIRE_MODES[m].roles:  # runs (a damaged chunk of many rows had run
                sid = self._sid(role, j)  # the decoder for minutes, then failed on this)
                if sid not in grouped and sid not in streams:
                    raise SchemaError(f"stream '{sid}' is missing")

        def codes(j: int, stored: bool = False) -> np.ndarray:
            sid = self._sid("res", j)
            if sid in grouped:
                return decode_codes(*grouped[sid], rows)
            return unpack_codes(require(streams, sid), rows, f"stream '{sid}'", stored)

        def flags(j: int) -> np.ndarray:
            sid = self._sid("sign", j)
            if sid in grouped:
                return decode_codes(*grouped[sid], rows).astype(np.uint8)
            return lossless.decode_column(require(streams, sid), np.uint8, rows, f"stream '{sid}'")

        def table(j: int) -> np.ndarray:
            sid = self._sid("dict", j)
            data = require(streams, sid)
            k = int.from_bytes(data[:4], "little")
            if len(data) < 5 or not 0 < k <= max(rows, 1):
                raise ContainerError(f"stream '{sid}': {k:,} values for a chunk of {rows:,} rows")
            return lossless.decode_column(data[4:], "<f8", k, f"stream '{sid}'")

        def no_prediction(j: int) -> np.ndarray:
            raise AssertionError("a model-free wire mode asked for a prediction")

        F = len(self.columns)
        return DecodeContext(
            codes=codes, flags=flags, offsets=meta.get("offsets", [0] * F),
            prediction=no_prediction, abs_bound=self._col_bound, drift=self._pred_margin,
            eps=self.bound.value if self.bound is not None else None,
            rel_eps=meta.get("rel_eps"), table=table,
            stored_codes=lambda j: codes(j, stored=True))

    def _decode_prediction(self, streams: dict[str, bytes], rows: int, recon: np.ndarray
                           ) -> dict[int, np.ndarray]:
        """The decoder's output per predicted column, from the decoded anchors and latents."""
        assert self.model is not None
        latents = None
        if self.model.latent_dim > 0:
            assert self.latent_step is not None
            L = self.model.latent_dim
            data = require(streams, "latents")
            qz = unpack_codes(data, rows * L, "stream 'latents'").reshape(L, rows).T
            latents = (qz * self.latent_step).astype(np.float32)
        p = self._predict(latents, recon[self.anchor_idx].T)
        return {j: p[k] for k, j in enumerate(self.pred_idx)}

    # ------------------------------------------------------------------ report
    def error_report(self) -> list[dict[str, Any]]:
        """Per column: bound, max and RMS error measured at compression, how it was coded."""
        pw = self.bound.value if self.bound is not None and self.bound.pointwise else None
        out = []
        for j, name in enumerate(self.columns):
            b = self._col_bound(j) if self.bound is not None and pw is None else None
            plain = "log-quantized" if pw else "quantized"  # as `info` names them
            mode = ("autoencoder" if j in self.pred_idx and self.bound is None else
                    "predicted" if j in self.pred_idx else
                    "anchor" if j in self.anchor_idx and self.model is not None else plain)
            out.append(self._stats.row(j, name, b, pw, mode))
        return out


def _quantize(
    y: np.ndarray, p: np.ndarray | float, e: float, finite: np.ndarray, all_finite: bool = False,
    codes: np.ndarray | None = None, recon: np.ndarray | None = None,
    span: tuple[np.float64, np.float64] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """codes = round((y - p) / 2e), the reconstruction p + 2e*codes (non-finite -> 0), the
    lowest and highest code; `codes` and `recon`, when given, are filled, not new arrays.
    `span`: y's (min, max) when p is 0 and y finite; rint(y / 2e) is monotone in y, so the
    codes' extremes follow without two reductions over them."""
    step = 2.0 * e
    c = np.empty(len(y)) if recon is None else recon
    src = y if all_finite else np.where(finite, y, 0.0)
    if isinstance(p, np.ndarray) or p != 0.0:
        np.subtract(src, p, out=c)
        c /= step
    else:  # y - 0.0 is y bit for bit (-0.0 - 0.0 = -0.0): no subtraction pass
        np.divide(src, step, out=c)
    np.rint(c, out=c)
    if span is not None:
        lo, hi = (float(np.rint(v / step)) for v in span)
    else:
        lo, hi = (float(c.min()), float(c.max())) if len(c) else (0.0, 0.0)
    if not (-_MAX_CODE <= lo and hi <= _MAX_CODE):  # overflow and NaN: verbatim via exceptions
        np.copyto(c, 0.0, where=~(np.abs(c) <= _MAX_CODE))
        lo, hi = float(c.min()), float(c.max())
    if codes is None:
        codes = c.astype(np.int64)
    else:
        np.copyto(codes, c, casting="unsafe")  # c.astype(np.int64), in place
    c *= step
    c += p
    return codes, c, int(lo), int(hi)


def _long_stats(codes: dict[int, np.ndarray]) -> dict[int, CodeStats]:
    """CodeStats of the streams long enough for the cheap choice (over SMALL_TRIAL codes;
    shorter ones are coded every way), in one code_stats call."""
    long = [j for j, c in codes.items() if len(c) > SMALL_TRIAL]
    return dict(zip(long, code_stats([codes[j] for j in long]), strict=True))


def _header_model(desc: dict[str, Any], attachment: Any,
                  model_dir: str | os.PathLike | None) -> ModelBundle | None:
    """The model a file's coder decodes with: its embedded decoder (attachment, or base64
    in files written before attachments existed), or with --no-embed-model files the
    user's -m MODEL_DIR, each checked against the sha256 the header records."""
    if desc.get("model") is None:
        return None
    embedded = desc.get("decoder_attachment")
    if not (embedded or desc.get("decoder_onnx")):
        return _external_model(desc, model_dir)
    if embedded:
        decoder = attachment(embedded, MAX_MODEL_BYTES)
        if embedded.endswith(".zst"):
            decoder = bounded.decompress(decoder, f"attachment '{embedded}'",
                                         limit=MAX_MODEL_BYTES)
    else:
        try:
            decoder = base64.b64decode(desc["decoder_onnx"], validate=True)
        except ValueError:
            raise ContainerError("the embedded decoder is not valid base64") from None
    want = desc.get("decoder_attachment_sha256") or desc.get("decoder_sha256")
    if sha256(decoder) != want:
        raise ContainerError("the embedded decoder does not match its recorded sha256")
    return ModelBundle(dict(desc["model"], format="balerc-model"), None, decoder)


NOT_GIVEN = "<not given>"  # ModelBundle.path of a --no-embed-model model read without -m


class _NoModelGiven(InputError):
    """A --no-embed-model file opened without its model: only chunks that predict need it
    (a large table keeps its model unprobed, and chunks where it does not pay store
    plain quantization), so the coder is built and the chunk that predicts says so."""


def _external_model(desc: dict[str, Any], model_dir: str | os.PathLike | None) -> ModelBundle:
    """A --no-embed-model file's model from -m MODEL_DIR, refused unless its decoder is
    the one the file was compressed with."""
    if not desc.get("decoder_sha256"):  # checked first: the message below quotes it
        raise ContainerError("the header records neither a decoder nor its sha256")
    if model_dir is None:
        raise _NoModelGiven(
            "this file was written with --no-embed-model: pass -m MODEL_DIR (model_dir=) "
            f"with the model it was compressed with (decoder sha256 "
            f"{desc['decoder_sha256'][:16]}...)"
        )
    model = ModelBundle.load(model_dir)
    if sha256(model.decoder) != desc["decoder_sha256"]:
        raise InputError(
            f"{model_dir}: this model's decoder (sha256 {sha256(model.decoder)[:16]}...) is "
            f"not the one the file was compressed with ({desc['decoder_sha256'][:16]}...)"
        )
    return model


def _flag_part(flag: np.ndarray, ent: Entropy) -> tuple[int, bytes]:
    """A mode r/s column's flags as integer codes: how a `qgroup` frame holds them."""
    return encode_codes(flag.astype(np.int64), ent)


def _entropy_bytes(codes: dict[int, np.ndarray]) -> dict[int, float]:
    """Per stream (all of one length): the order-0 entropy of ~4096 evenly spaced codes,
    scaled to the stream: what pcodec packs noise-like codes to within a few percent
    (benchmarks/entropy_measure.py). Every stream's sample in one set of passes."""
    if not codes:
        return {}
    n = len(next(iter(codes.values())))
    if not n:
        return dict.fromkeys(codes, 0.0)
    bits = row_entropies(np.stack([c[:: max(1, n // 4096)] for c in codes.values()]))
    return {j: float(h) * n / 8 + 32 for j, h in zip(codes, bits, strict=True)}


def _quantize_all(Y: np.ndarray, e: np.ndarray, finite: np.ndarray, all_finite: np.ndarray,
                  recon: np.ndarray, ws: Scratch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_quantize(y, 0.0, e_j) for every column of the (F, n) chunk, each column's lowest and
    highest code; recon is filled in place, the codes live in ws (valid until the thread's next
    chunk). Column by column: a row of the chunk (~0.5 MB) stays in L2 through its passes,
    where whole-chunk passes streamed 8 MB arrays through L3 (~30% slower)."""
    F, n = Y.shape
    codes = ws.array("codes", (F, n), np.int64)
    lows, highs = np.zeros(F, dtype=np.int64), np.zeros(F, dtype=np.int64)
    ylo, yhi = (Y.min(axis=1), Y.max(axis=1)) if n else (None, None)  # 2 calls, not 2F
    for j in range(F):
        span = (ylo[j], yhi[j]) if n and all_finite[j] else None  # np.float64: v / 0 is inf
        lows[j], highs[j] = _quantize(Y[j], 0.0, float(e[j]), finite[j], bool(all_finite[j]),
                                      codes[j], recon[j], span)[2:]
    return codes, lows, highs
