"""ONNX Runtime sessions: created once per worker thread, provider chosen explicitly.

Sessions are cached per (model bytes, device, threads) and per thread, so a pipeline that
compresses many chunks pays the session start once. The decoder runs with TF32 disabled
on CUDA: its output feeds the error-bound arithmetic (see docs/FORMAT.md, determinism).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import numpy as np

from balerc.formats.errors import InputError

log = logging.getLogger("balerc.codec")
_local = threading.local()


def _ort() -> Any:
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def providers_for(device: str) -> list[Any]:
    """Explicit provider list: CUDA (TF32 off) then CPU for auto/cuda; CPU for cpu."""
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
        return [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
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


_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class Session:
    """A thin wrapper: run named inputs (cast to the graph's input type), get the first output."""

    def __init__(self, model: bytes, device: str = "cpu", threads: int = 1):
        ort = _ort()
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(model, sess_options=so, providers=providers_for(device))
        self.provider = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_types = {i.name: _DTYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        feed = {k: np.ascontiguousarray(v, dtype=self.input_types[k])
                for k, v in inputs.items() if k in self.input_types}
        return self.session.run([self.output_name], feed)[0]


def session(model: bytes, device: str = "cpu", threads: int = 1) -> Session:
    """The calling thread's session for this model (created on first use)."""
    cache = getattr(_local, "sessions", None)
    if cache is None:
        cache = _local.sessions = {}
    key = (hashlib.sha256(model).hexdigest(), device, threads)
    if key not in cache:
        cache[key] = Session(model, device, threads)
        log.info("ONNX Runtime session on %s", cache[key].provider)
    return cache[key]
