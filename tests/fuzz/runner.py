"""Run one fuzz case: decode, classify the outcome, and isolate cases in worker processes.

A case is file bytes plus the table its seed decodes to. `run_case` decodes it with
`read_container` (and again with ``recover=True`` when the reader has that keyword) under
a per-case time limit and sorts each attempt into one outcome:

* ``identical``: the seed's table, bit for bit;
* ``typed``: a `BalercError` subclass (``detail`` names it);
* ``recovered``: a `RecoveryWarning` and a correct prefix of the rows (``rows`` of them);
* ``different``: decoded, no recovery warning, not the seed's table (with ``rows``);
* ``untyped``: any other exception (``detail`` = class, ``site`` = innermost balerc frame);
* ``hang``: over the time limit (``site`` = where it was interrupted);
* ``crash``: the worker process died (signal, OOM kill); only from `WorkerPool`.

`WorkerPool` runs cases in long-lived subprocesses with an address-space limit (RLIMIT_AS),
so a decompression bomb or a native crash costs one worker restart, not the machine.
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIME_LIMIT = 10.0  # seconds; a case over this is a hang
MEM_LIMIT = 4 << 30  # RLIMIT_AS of a worker process
_GRACE = 15.0  # extra seconds before the parent kills a worker stuck in native code
_SUBPACKAGES = ("formats", "codec", "train", "cli")


class CaseTimeout(BaseException):
    """Raised in the main thread by the interval timer when a case runs too long."""


@dataclass
class Attempt:
    """The outcome of one decode of a case."""

    outcome: str
    detail: str = ""
    site: str = ""
    raised_in: str = ""
    message: str = ""
    rows: int | None = None
    seconds: float = 0.0
    rss_growth: int = 0


@dataclass
class CaseResult:
    """Outcomes of a case without and with ``recover=True`` (None: reader lacks it)."""

    default: Attempt
    recover: Attempt | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def attempts(self) -> list[tuple[str, Attempt]]:
        out = [("default", self.default)]
        if self.recover is not None:
            out.append(("recover", self.recover))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseResult:
        rec = d.get("recover")
        return cls(Attempt(**d["default"]), Attempt(**rec) if rec else None, d.get("extra", {}))


# --------------------------------------------------------------------------- comparison
def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return a.dtype == b.dtype and a.shape == b.shape and list(a) == list(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(columns: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> tuple[str, int]:
    """("identical" | "prefix" | "different", rows) of a decoded table against the seed's."""
    names = list(columns)
    rows = len(next(iter(columns.values()))) if columns else 0
    if names != list(expected) or any(np.ndim(c) != 1 for c in columns.values()):
        return "different", rows
    if any(len(c) != rows for c in columns.values()):
        return "different", rows
    full = len(next(iter(expected.values()))) if expected else 0
    if rows > full:
        return "different", rows
    if all(_same(columns[n], expected[n][:rows]) for n in names):
        return ("identical" if rows == full else "prefix"), rows
    return "different", rows


def close_to(columns: dict[str, np.ndarray], expected: dict[str, np.ndarray],
             rtol: float = 1e-6) -> bool:
    """Same names, rows, non-float values and NaN/Inf pattern; floats within `rtol` (what
    a committed table means across CPUs: predicted columns drift in their last bits)."""
    if list(columns) != list(expected):
        return False
    for n, a in columns.items():
        b = expected[n]
        if a.shape != b.shape:
            return False
        if a.dtype.kind != "f":
            if not _same(a, b.astype(a.dtype) if a.dtype.kind == "O" else b):
                return False
            continue
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        if not (np.array_equal(np.isnan(fa), np.isnan(fb))
                and np.array_equal(fa[~np.isfinite(fa)], fb[~np.isfinite(fb)], equal_nan=True)):
            return False
        ok = np.isfinite(fa)
        if not np.allclose(fa[ok], fb[ok], rtol=rtol, atol=0.0):
            return False
    return True


def reference(data: bytes, fallback: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What this reader decodes from an untouched seed: the table mutations are compared
    with (bit for bit: same process, same arithmetic). The committed table if it fails."""
    from balerc.codec.pipeline import read_container

    try:
        t = read_container(data)
    except Exception:
        return fallback
    return {n: t[n] for n in t.names}


# --------------------------------------------------------------------------- sites
def _package_dirs() -> dict[str, str]:
    """Directory of each imported balerc subpackage -> its short name ("codec")."""
    import importlib

    out = {}
    for name in _SUBPACKAGES:
        try:
            mod = importlib.import_module(f"balerc.{name}")
        except ImportError:
            continue
        if getattr(mod, "__file__", None):
            out[os.path.dirname(os.path.abspath(mod.__file__)) + os.sep] = name
    return out


def balerc_site(tb: Any) -> tuple[str, str]:
    """(innermost balerc frame, innermost frame) of a traceback as ``path:line (func)``."""
    dirs = _package_dirs()
    site = raised = ""
    for fr in traceback.extract_tb(tb):
        path = os.path.abspath(fr.filename)
        pkg = next((short for d, short in dirs.items() if path.startswith(d)), None)
        short = f"{pkg}/{path[len(next(d for d in dirs if dirs[d] == pkg)):]}" if pkg else \
            _short(path)
        where = f"{short}:{fr.lineno} ({fr.name})"
        if pkg:
            site = where
        raised = where
    return site or "<outside balerc>", raised


def _short(path: str) -> str:
    marker = "site-packages" + os.sep
    return path.split(marker, 1)[1] if marker in path else os.path.basename(path)


# --------------------------------------------------------------------------- memory
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMeter:
    """Peak RSS growth of a block: VmHWM after a reset on Linux, else ru_maxrss deltas."""

    def __enter__(self) -> PeakMeter:
        self.exact = _reset_peak()
        self.base = (_status_kb("VmRSS:") or 0) if self.exact else _maxrss_kb()
        self.growth = 0
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_kb("VmHWM:") if self.exact else _maxrss_kb()
        self.growth = max(0, ((peak or 0) - self.base)) * 1024


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------- one decode
def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def supports_recover() -> bool:
    """Whether this balerc's read_container takes ``recover``."""
    from balerc.codec.pipeline import read_container

    return "recover" in inspect.signature(read_container).parameters


def decode_once(source: bytes | str, expected: dict[str, np.ndarray], *, recover: bool = False,
                time_limit: float = TIME_LIMIT) -> Attempt:
    """Decode once and classify (see the module docstring)."""
    from balerc.codec.pipeline import read_container
    from balerc.formats.container import RecoveryWarning
    from balerc.formats.errors import BalercError

    kwargs = {"recover": True} if recover else {}
    use_timer = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_timer else None
    t0 = time.perf_counter()
    table = None
    att: Attempt | None = None
    with warnings.catch_warnings(record=True) as caught, PeakMeter() as meter:
        warnings.simplefilter("always")
        try:
            if use_timer:
                signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                table = read_container(source, **kwargs)
            finally:
                if use_timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except CaseTimeout as exc:
            site, raised = balerc_site(exc.__traceback__)
            att = Attempt("hang", "CaseTimeout", site, raised)
        except BalercError as exc:
            att = Attempt("typed", type(exc).__name__, message=str(exc)[:300])
        except Exception as exc:
            site, raised = balerc_site(exc.__traceback__)
            att = Attempt("untyped", type(exc).__name__, site, raised, str(exc)[:300])
        finally:
            if use_timer:
                signal.signal(signal.SIGALRM, old)
    if att is None:
        att = _classify_table(table, expected, caught, RecoveryWarning)
    att.seconds = time.perf_counter() - t0
    att.rss_growth = meter.growth
    return att


def _classify_table(table: Any, expected: dict[str, np.ndarray], caught: list[Any],
                    warning_cls: type) -> Attempt:
    warned = any(issubclass(w.category, warning_cls) for w in caught)
    try:
        columns = {n: table[n] for n in table.names}
    except Exception as exc:  # a Table that cannot even be read back: untyped by definition
        site, raised = balerc_site(exc.__traceback__)
        return Attempt("untyped", type(exc).__name__, site, raised, str(exc)[:300])
    kind, rows = compare(columns, expected)
    if warned and kind in ("identical", "prefix"):
        return Attempt("recovered", rows=rows)
    if kind == "identical":
        return Attempt("identical", rows=rows)
    return Attempt("different", "warned" if warned else "", rows=rows)


def run_case(source: bytes | str, expected: dict[str, np.ndarray], *,
             time_limit: float = TIME_LIMIT, with_recover: bool | None = None) -> CaseResult:
    """Decode without and (if supported) with ``recover=True``; classify both."""
    if with_recover is None:
        with_recover = supports_recover()
    res = CaseResult(decode_once(source, expected, time_limit=time_limit))
    if with_recover:
        res.recover = decode_once(source, expected, recover=True, time_limit=time_limit)
    return res


# --------------------------------------------------------------------------- workers
def _limit_memory(limit: int) -> None:
    if limit > 0:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _read_exact(f: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = f.read(n - len(buf))
        if not part:
            raise EOFError("pipe closed")
        buf += part
    return buf


def _send(f: Any, head: dict[str, Any], data: bytes = b"") -> None:
    blob = json.dumps(head).encode()
    f.write(struct.pack("<II", len(blob), len(data)) + blob + data)
    f.flush()


def _recv(f: Any) -> tuple[dict[str, Any], bytes]:
    hlen, dlen = struct.unpack("<II", _read_exact(f, 8))
    head = json.loads(_read_exact(f, hlen))
    return head, _read_exact(f, dlen)


def worker_main(corpus_dir: str, mem_limit: int, time_limit: float) -> None:
    """Worker loop on stdin/stdout: (seed, bytes, as_path) in, a CaseResult dict out."""
    from .seeds import load_corpus

    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    expected = {s.name: reference(s.data, s.expected) for s in load_corpus(Path(corpus_dir))}
    _limit_memory(mem_limit)
    fd, tmp = tempfile.mkstemp(suffix=".balerc", prefix="balerc-fuzz-")
    os.close(fd)
    with_recover = supports_recover()
    try:
        while True:
            try:
                head, data = _recv(proto_in)
            except EOFError:
                return
            source: bytes | str = data
            if head["as_path"]:
                with open(tmp, "wb") as f:
                    f.write(data)
                source = tmp
            res = run_case(source, expected[head["seed"]], time_limit=time_limit,
                           with_recover=with_recover)
            _drop_sessions()
            _send(proto_out, res.to_dict())
    finally:
        os.unlink(tmp)


def _drop_sessions() -> None:
    """Forget cached ONNX Runtime sessions when mutated decoders pile up."""
    from balerc.codec import runtime

    cache = getattr(runtime._local, "sessions", None)
    if cache is not None and len(cache) > 4:
        cache.clear()


def _package_root() -> tuple[str, str]:
    """(sys.path entry, package name) under which this module was imported."""
    pkg = __package__ or "tests.fuzz"
    return str(Path(__file__).resolve().parents[len(pkg.split("."))]), pkg


class Worker:
    """One long-lived decoding subprocess; restarted after a crash or a native hang."""

    def __init__(self, corpus_dir: Path, mem_limit: int = MEM_LIMIT,
                 time_limit: float = TIME_LIMIT, log: str | None = None):
        self.args = (str(corpus_dir), mem_limit, time_limit)
        self.time_limit = time_limit
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        root, pkg = _package_root()
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                f"from {pkg}.runner import worker_main; worker_main(*{self.args!r})")
        err = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err)
        if self.log:
            err.close()

    def run(self, seed: str, data: bytes, as_path: bool = False) -> CaseResult:
        """One case; a dead or stuck worker is reported as crash/hang and restarted."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        t0 = time.perf_counter()
        try:
            _send(self.proc.stdin, {"seed": seed, "as_path": as_path}, data)
            budget = 2 * self.time_limit + _GRACE  # two decodes per case
            ready, _, _ = select.select([self.proc.stdout], [], [], budget)
            if ready:
                return CaseResult.from_dict(_recv(self.proc.stdout)[0])
            self.stop(kill=True)
            att = Attempt("hang", "killed", "<native code>", seconds=time.perf_counter() - t0)
        except (EOFError, OSError):
            try:
                code: int | None = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                code = None
            self.stop(kill=True)
            att = Attempt("crash", _exit_text(code), "<worker died>",
                          seconds=time.perf_counter() - t0)
        return CaseResult(att)

    def stop(self, kill: bool = False) -> None:
        """End the worker (closing its pipes; killed when `kill` or stuck)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if kill and proc.poll() is None:
            proc.kill()
        for f in (proc.stdin, proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit ?"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"
