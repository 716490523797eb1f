"""ONNX Runtime sessions: created once per worker thread, provider chosen explicitly.

Sessions are cached per (model bytes, device, threads, spec) and per thread, so a pipeline
that compresses many chunks pays the session start once. The decoder runs with TF32
disabled on CUDA: its output feeds the error-bound arithmetic (see docs/FORMAT.md,
determinism).

Graphs come from files, so they are hostile input. With a `spec`, the sandbox
(codec/sandbox.py) validates the bytes before ONNX Runtime sees them; every session is
also created with the options that forbid what ONNX Runtime lets us forbid (see
SESSION_CONFIG) and draws its CPU memory from one process-wide arena capped at
BALERC_ORT_MAX_MEMORY bytes (default 4 GiB; read once, when the first session is made;
on CUDA the same cap is the provider's gpu_mem_limit). ONNX Runtime failures come out as
balerc errors: UnsafeModelError when it refuses a graph or fails running it, LimitError
when a run needs more memory than the cap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any

import numpy as np

from balerc.formats.errors import InputError, LimitError, MissingDependencyError, UnsafeModelError

from . import deadline
from .sandbox import MAX_CONSTANT_BYTES, ModelSpec, check_model

log = logging.getLogger("balerc.codec")
_local = threading.local()

MAX_MEMORY_ENV = "BALERC_ORT_MAX_MEMORY"
DEFAULT_MAX_MEMORY = 4 << 30

# Session config entries (onnxruntime_session_options_config_keys.h). No custom-op
# library is ever registered; ONNX Runtime has no switch that turns external data off,
# so the sandbox refuses it and relative paths resolve under a device file (never a
# directory); recent ONNX Runtime (1.31 here) also refuses absolute and escaping paths.
SESSION_CONFIG = {
    "session.load_model_format": "ONNX",  # never the ORT flatbuffer format
    "session.model_external_initializers_file_folder_path": os.devnull,
    "session.allow_released_opsets_only": "1",
    "session.strict_shape_type_inference": "1",  # shape/type inference errors fail the load
    "optimization.constant_folding_max_output_size_in_bytes": str(MAX_CONSTANT_BYTES),
}

_arena_lock = threading.Lock()
_arena_cap: int | None = None  # bytes, once the process-wide arena is registered
_arena_failed = False


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "running a model needs ONNX Runtime: pip install 'balerc[cpu]' (or 'balerc[gpu]' "
            "for CUDA; never both). Lossless and model-free files need neither.") from None

    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def max_memory() -> int:
    """BALERC_ORT_MAX_MEMORY in bytes (default 4 GiB): ONNX Runtime's memory cap."""
    text = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MEMORY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < (1 << 20):
        raise InputError(f"{MAX_MEMORY_ENV}={text!r} is not a byte count of at least 1 MiB "
                         f"(e.g. {DEFAULT_MAX_MEMORY} for 4 GiB); fix or unset it")
    return value


def _register_arena(ort: Any) -> int | None:
    """Register the capped CPU arena once per process; its cap, or None if unavailable."""
    global _arena_cap, _arena_failed
    with _arena_lock:
        if _arena_cap is None and not _arena_failed:
            cap = max_memory()
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     ort.OrtMemType.DEFAULT)
            try:
                try:
                    cfg = ort.OrtArenaCfg({"max_mem": cap, "arena_extend_strategy": 1})
                except TypeError:  # older onnxruntime: positional form only
                    cfg = ort.OrtArenaCfg(cap, 1, -1, -1)
                ort.create_and_register_allocator(info, cfg)
                _arena_cap = cap
            except Exception as exc:  # onnxruntime's errors share no base class
                _arena_failed = True
                log.warning("ONNX Runtime memory cap not applied (%s): sessions use their "
                            "own uncapped arenas", exc)
        return _arena_cap


def providers_for(device: str) -> list[Any]:
    """Explicit provider list: CUDA (TF32 off, memory capped) then CPU for auto/cuda."""
    ort = _ort()
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in available and _cuda_usable()
    if device == "cuda" and not has_cuda:
        raise InputError(
            "--device cuda was requested but ONNX Runtime has no usable CUDA provider here "
            f"(available: {', '.join(available)}); use --device cpu or auto"
        )
    if has_cuda:
        cuda = {"use_tf32": "0", "gpu_mem_limit": str(max_memory()),
                "arena_extend_strategy": "kSameAsRequested"}
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _cuda_usable() -> bool:
    """onnxruntime-gpu lists CUDA even without a GPU; check a driver answers."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except OSError:
        return False


def _options(ort: Any, threads: int) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 4  # failures come back as balerc errors, not stderr noise
    for key, value in SESSION_CONFIG.items():
        so.add_session_config_entry(key, value)
    if _register_arena(ort) is not None:
        so.add_session_config_entry("session.use_env_allocators", "1")
    return so


_MEMORY_SIGNS = ("Available memory of", "Failed to allocate", "bad_alloc", "out of memory",
                 "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED")


def _ort_error(exc: BaseException, source: str, doing: str) -> Exception:
    """The balerc error for an ONNX Runtime failure: LimitError for memory, else unsafe."""
    text = str(exc).replace("[ONNXRuntimeError] : ", "").strip().splitlines()
    first = (text[0] if text else type(exc).__name__)[:400]
    if isinstance(exc, MemoryError) or any(s in str(exc) for s in _MEMORY_SIGNS):
        cap = _arena_cap or max_memory()
        return LimitError(
            f"{source}: the ONNX graph needed more memory than {MAX_MEMORY_ENV}={cap} bytes "
            f"allows while {doing} ({first}); decode with fewer rows per chunk or raise "
            f"{MAX_MEMORY_ENV} (bytes)")
    return UnsafeModelError(f"{source}: ONNX Runtime failed {doing} ({first}); the graph "
                            f"is not one balerc's exporter writes, or the file is damaged")


ROW_BLOCK = 8192  # rows per ONNX Runtime run on the CPU (Session.run_blocks)
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class Session:
    """A thin wrapper: run named inputs (cast to the graph's input type), get the first output.

    With `spec`, the sandbox checks the model first (UnsafeModelError naming `source`).
    """

    def __init__(self, model: bytes, device: str = "cpu", threads: int = 1, *,
                 spec: ModelSpec | None = None, source: str = "<decoder>"):
        self.source = source
        self.report = check_model(model, spec, source) if spec is not None else None
        ort = _ort()
        so = _options(ort, threads)
        providers = providers_for(device)
        try:
            self.session = ort.InferenceSession(model, sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime's errors share no base class
            raise _ort_error(exc, source, "to load the graph") from None
        self.provider = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_types = {i.name: _DTYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        """The output for every row (the blocks of `run_blocks`, joined when several)."""
        parts = [out for _, out in self.run_blocks(**inputs)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def run_blocks(self, **inputs: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(first row, output) per block of rows. On the CPU the rows go through in blocks
        of ROW_BLOCK: the graph's intermediate tensors then stay in cache (the physics
        decoder runs 25% faster, and scales 1.7x instead of 1.6x on two threads). Every
        graph the sandbox admits computes each row on its own (the batch axis is only
        ever the leading one), so blocks change at most the last bits of a row, as
        thread counts and providers do: within the decoder margin (docs/FORMAT.md)."""
        feed = {k: np.ascontiguousarray(v, dtype=self.input_types[k])
                for k, v in inputs.items() if k in self.input_types}
        rows = _rows(feed)
        step = ROW_BLOCK if self.provider == "CPUExecutionProvider" and rows > ROW_BLOCK else (
            max(rows, 1))
        return [(i, self._run_block({k: v[i:i + step] for k, v in feed.items()}, i, rows))
                for i in range(0, max(rows, 1), step)]

    def _run_block(self, feed: dict[str, np.ndarray], first: int, rows: int) -> np.ndarray:
        """One ONNX Runtime run, after the decode's time limit is checked (the sandbox
        bounds work per row, not per file: codec/deadline.py)."""
        work = f", {self.report.flops_per_row:,} multiply-adds per row" if self.report else ""
        deadline.check(f"running the graph on rows {first:,} of {rows:,}{work}")
        try:
            return self.session.run([self.output_name], feed)[0]
        except Exception as exc:  # onnxruntime's errors share no base class
            raise _ort_error(exc, self.source, f"running the graph on {rows} rows") from None


def _rows(feed: dict[str, np.ndarray]) -> int:
    return max((len(v) for v in feed.values() if v.ndim), default=0)


def session(model: bytes, device: str = "cpu", threads: int = 1, *,
            spec: ModelSpec | None = None, source: str = "<decoder>") -> Session:
    """The calling thread's session for this model (created, and with `spec` checked by
    the sandbox, on first use)."""
    cache = getattr(_local, "sessions", None)
    if cache is None:
        cache = _local.sessions = {}
    key = (hashlib.sha256(model).hexdigest(), device, threads, spec)
    if key not in cache:
        cache[key] = Session(model, device, threads, spec=spec, source=source)
        log.info("ONNX Runtime session on %s", cache[key].provider)
    return cache[key]
