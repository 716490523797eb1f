"""Many files at once: one output per input, on Dask when it is there, else a process pool.

`compress_files(paths, ...)` expands globs and `file.root:tree` specs, derives one output
name per input (collisions refused before any work), runs one task per file (a local
process pool by default; a Dask cluster with `scheduler=ADDRESS`, `scheduler="local"`
or `client=`), and returns one result per file: a file that fails is reported by name
and does not stop the others. The model is loaded by each
task from its directory: with `embed_model=False` every file shares it at no cost.
"""

from __future__ import annotations

import glob
import os
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from balerc.formats.errors import BalercError, InputError

from . import params
from .options import CompressOptions


@dataclass
class FileResult:
    """One input's outcome (JSON-ready)."""

    input: str
    output: str
    ok: bool
    rows: int = 0
    raw_bytes: int = 0
    file_bytes: int = 0
    ratio: float | None = None
    worst_error_over_bound: float | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_spec(spec: str) -> tuple[str, str | None]:
    """'file.root:tree' -> ('file.root', 'tree') when the part before the last ':' is a
    file, or a glob matching files ('run*.root:Events'); the tree may sit in a directory
    ('file.root:dir/tree')."""
    head, sep, tail = spec.rpartition(":")
    if not (sep and head and tail) or os.path.isfile(spec):
        return spec, None
    if os.path.isfile(head) or (glob.has_magic(head) and glob.glob(head)):
        return head, tail
    return spec, None


def is_pattern(path: str) -> bool:
    """A glob, unless a file of that very name exists ('br[a].csv' had been read as a
    pattern matching nothing, and refused)."""
    return glob.has_magic(path) and not os.path.exists(path)


def several(specs: Iterable[str], output_dir: object = None) -> bool:
    """Whether a command's inputs mean many-file mode: several, a glob, or --output-dir."""
    specs = list(specs)
    return len(specs) > 1 or output_dir is not None or any(
        is_pattern(split_spec(s)[0]) for s in specs)


def expand_inputs(patterns: Iterable[str]) -> list[tuple[Path, str | None]]:
    """Globs and `file:tree` specs to (path, tree) pairs, in the order given."""
    if isinstance(patterns, (str, os.PathLike)):  # one path, not its characters
        patterns = [patterns]
    out: list[tuple[Path, str | None]] = []
    for pattern in patterns:
        path, tree = split_spec(str(pattern))
        matches = sorted(glob.glob(path)) if is_pattern(path) else [path]
        if not matches:
            raise InputError(f"no file matches {pattern}")
        for m in matches:
            if not os.path.isfile(m):
                raise InputError(f"no such file: {m}")
            out.append((Path(m), tree))
    return out


def plan_outputs(inputs: list[tuple[Path, str | None]], out_dir: Path, suffix: str,
                 force: bool = False) -> list[Path]:
    """OUT_DIR/<stem>[.<tree>]<suffix> per input, checked by `check_outputs`."""
    outputs = [out_dir / (p.stem + (f".{tree.replace('/', '_')}" if tree else "") + suffix)
               for p, tree in inputs]
    return check_outputs([p for p, _ in inputs], outputs, out_dir, force)


def check_outputs(inputs: list[Path], outputs: list[Path], out_dir: Path,
                  force: bool = False) -> list[Path]:
    """Refuse, before any work, two inputs with one output name and existing outputs; a
    missing OUT_DIR is then created (as `train -o` and `evaluate -o` create theirs)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--output-dir {out_dir} is not a directory")
    seen: dict[Path, Path] = {}
    for p, o in zip(inputs, outputs, strict=True):
        if o in seen and Path(seen[o]).resolve() == Path(p).resolve():
            raise InputError(f"{p} is given twice (as {seen[o]} too); give each input once")
        if o in seen:
            raise InputError(f"{seen[o]} and {p} would both be written to {o}; write them "
                             f"into different --output-dir folders")
        seen[o] = p
        if o.exists() and not force:
            raise InputError(f"{o} already exists; pass --force (force=True) to overwrite it")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output-dir {out_dir} cannot be created: {exc.strerror}") from None
    return outputs


def compress_one(path: str, tree: str | None, output: str, options: dict[str, Any]) -> FileResult:
    """One file (runs in a worker process): any BalercError becomes a failed result."""
    from balerc.formats.stream import open_input

    from . import api

    t0 = time.perf_counter()
    try:
        stream = open_input(path, tree=tree, columns=options.pop("columns", None),
                            allow_skip=options.pop("skip_unsupported", False))
        res = api.compress_file(stream, output, **options)
    except KeyboardInterrupt:
        _stop_worker()
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        return _failed(path, output, exc, t0)
    return FileResult(path, output, True, res.rows, res.raw_bytes, res.file_bytes,
                      round(res.ratio, 4), res.worst_over_bound,
                      round(time.perf_counter() - t0, 3))


def _stop_worker() -> None:
    """Ctrl-C reaches the pool's workers too: a worker stops there (its output's temporary
    file is gone already) instead of handing the interrupt back as a result and taking the
    next queued file, which had gone on writing files after 'interrupted after 1 of 8'."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a worker process, not the caller's
        os._exit(128 + signal.SIGINT)


def _failed(path: str, output: str, exc: Exception, t0: float) -> FileResult:
    """A failed file's result: a BalercError's own message, anything else named as the bug
    it is (with the file, so the rest of the run still reports)."""
    error = str(exc) if isinstance(exc, BalercError) else (
        f"{path}: internal error: {type(exc).__name__}: {exc} (a bug in balerc; please "
        f"report it)")
    return FileResult(path, output, False, seconds=time.perf_counter() - t0, error=error)


def _check_options(fn: Callable[..., Any], options: dict[str, Any], allowed: set[str]) -> None:
    """Misspelt keywords are refused before any worker starts (they failed in every
    worker with a bare TypeError); `allowed`: what `fn` takes through **options."""
    import inspect

    params = inspect.signature(fn).parameters
    known = {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY} | allowed
    wrong = sorted(set(options) - known)
    if wrong:
        raise InputError(f"unknown option(s) {wrong}; the options are {sorted(known)}")


def compress_files(paths: Iterable[str], out_dir: str | os.PathLike, *,
                   client: Any = None, scheduler: str | None = None, workers: int | None = None,
                   progress: Callable[[FileResult], None] | None = None,
                   **options: Any) -> list[FileResult]:
    """Compress every input into OUT_DIR, one task per file; see the module docstring.

    `options` are `api.compress_file` keywords (model_dir, bound, lossless, embed_model,
    chunk_rows, zstd_level, ...) plus `columns`; `progress` is called once per finished file.
    """
    from .api import compress_file, compress_options

    _check_options(compress_file, options, {"columns", "skip_unsupported", "tree"}
                   | {f.name for f in fields(CompressOptions)})
    tree = options.pop("tree", None)  # every input's tree unless its FILE:TREE names one
    own = {"columns", "skip_unsupported", "model_dir", "lossless", "bound", "threads"}
    compress_options(options.get("model_dir"), options.get("lossless", False),  # once, not
                     options.get("bound"), 1,  # once per file
                     {k: v for k, v in options.items() if k not in own})
    inputs = [(p, t or tree) for p, t in expand_inputs(paths)]
    if not inputs:
        return []
    outputs = plan_outputs(inputs, Path(out_dir), ".balerc", options.get("force", False))
    options = {**options, "threads": 1, "progress": False}  # parallel across files
    return _run_in_order(compress_one, inputs, outputs, options, client, scheduler, workers,
                         progress)


def decompress_one(path: str, tree: str | None, output: str, options: dict[str, Any]
                   ) -> FileResult:
    """One .balerc back to a table file (runs in a worker process)."""
    from . import api

    t0 = time.perf_counter()
    if tree:  # FILE.balerc:SECTION picks that section, as --sections does
        options = {**options, "sections": [tree]}
    try:
        table = api.decompress_file(path, output, **options)
    except KeyboardInterrupt:
        _stop_worker()
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        return _failed(path, output, exc, t0)
    stored = os.path.getsize(path)
    whole = not (options.get("columns") or options.get("sections"))  # a part is no ratio
    return FileResult(path, output, True, table.n_rows, table.nbytes, stored,
                      round(table.nbytes / max(stored, 1), 4) if whole else None, None,
                      round(time.perf_counter() - t0, 3))


def decompress_files(paths: Iterable[str], out_dir: str | os.PathLike, *, client: Any = None,
                     scheduler: str | None = None, workers: int | None = None,
                     progress: Callable[[FileResult], None] | None = None,
                     **options: Any) -> list[FileResult]:
    """Every .balerc back to OUT_DIR/<stem>.<the format it was compressed from>."""
    from .api import decompress_file, default_output

    _check_options(decompress_file, options, set())
    _check_root_options(options)
    inputs = expand_inputs(paths)
    if not inputs:
        return []
    if options.get("sections") and any(tree for _, tree in inputs):
        raise InputError("give the section either as FILE.balerc:SECTION or with --sections "
                         "(sections=), not both")
    out = Path(out_dir)
    named, unreadable = [], []
    for p, tree in inputs:  # the output's name comes from each file's header
        try:
            name = default_output(str(p), p)
            if tree:  # one file's sections to files of their own, as compress names them
                name = name.with_name(f"{p.stem}.{tree.replace('/', '_')}{name.suffix}")
            named.append(((p, tree), out / name.name))
        except BalercError as exc:  # fails alone: one bad input had stopped every file
            unreadable.append(FileResult(str(p), "", False, error=str(exc)))
    outputs = check_outputs([p for (p, _), _ in named], [o for _, o in named], out,
                            options.get("force", False))
    options = {**options, "threads": 1, "show_progress": False}
    done = _run_in_order(decompress_one, [i for i, _ in named], outputs, options, client,
                         scheduler, workers, progress) if named else []
    for r in unreadable:
        if callable(progress):
            progress(r)
    order = {str(p): k for k, (p, _) in enumerate(inputs)}
    return sorted(done + unreadable, key=lambda r: order.get(r.input, 0))


def _check_root_options(options: dict[str, Any]) -> None:
    """A malformed --root-compression / --root-format, once before any work (it had
    failed once per file)."""
    from balerc.formats.root_writers import ROOT_FORMATS, root_compression

    if options.get("root_compression") is not None:
        root_compression(options["root_compression"])
    fmt = options.get("root_format", "auto")
    if fmt not in ROOT_FORMATS:
        raise InputError(f"--root-format '{fmt}': use one of {', '.join(ROOT_FORMATS)}")


def _run_in_order(task: Callable[..., FileResult], inputs: list[tuple[Path, str | None]],
                  outputs: list[Path], options: dict[str, Any], client: Any,
                  scheduler: str | None, workers: int | None,
                  progress: Callable[[FileResult], None] | None) -> list[FileResult]:
    """One job per input (each with its own copy of the options); results in input order."""
    jobs = [(str(p), tree, str(o), dict(options))
            for (p, tree), o in zip(inputs, outputs, strict=True)]
    results = _run(task, jobs, client, scheduler, workers, progress)
    order = {str(o): i for i, o in enumerate(outputs)}
    return sorted(results, key=lambda r: order[r.output])


def _run(task: Callable[..., FileResult], jobs: list[tuple], client: Any,
         scheduler: str | None, workers: int | None,
         progress: Callable[[FileResult], None] | None) -> list[FileResult]:
    """On `client`, on the Dask scheduler at `scheduler` ("local": a local Dask cluster),
    else in a local process pool: on one machine the pool was measured 1.45x faster than
    a local Dask cluster (benchmarks/many_files.py), whose scheduler and nannies share the
    cores."""
    from .options import default_threads

    if progress is not None and not callable(progress):  # progress=True had failed mid-run
        raise InputError(f"progress must be a function called with each file's result, not "
                         f"{progress!r}")
    workers = params.count_or_default(workers, "workers",
                                      lambda: min(len(jobs), default_threads()))
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if client is not None:
        return _on_dask(task, client, jobs, progress)
    if scheduler:
        if not _has_dask():
            raise InputError("a Dask scheduler was given but Dask is not installed: "
                             "pip install 'balerc[dask]'")
        from distributed import Client, LocalCluster

        if scheduler != "local":
            try:
                c = Client(scheduler, timeout=30)
            except (OSError, ValueError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler {scheduler!r}: {exc} (give "
                                 f"tcp://HOST:PORT, or 'local' for a cluster here)") from None
            with c:
                return _on_dask(task, c, jobs, progress)
        import dask

        # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which hands every
        # freed chunk buffer back to the OS: measured 1.6x slower per file here
        trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1 << 28}
        with dask.config.set(trim), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None) as cluster, Client(cluster) as c:
            return _on_dask(task, c, jobs, progress)
    return _in_processes(task, jobs, workers, progress)


def _in_processes(task: Callable[..., FileResult], jobs: list[tuple], workers: int,
                  progress: Callable[[FileResult], None] | None) -> list[FileResult]:
    """A local process pool. A worker that dies (killed for memory) breaks the pool: the
    files it left unfinished fail by name and the run goes on in a new pool, one at a time
    (so one file that kills its worker cannot take others with it). Ctrl-C cancels the
    files not started and says how many were written."""
    results: list[FileResult] = []
    todo = list(jobs)
    while todo:
        pool = ProcessPoolExecutor(max_workers=workers)
        futures = {pool.submit(task, *j): i for i, j in enumerate(todo)}
        finished: set[int] = set()
        try:
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    continue
                results.append(res)
                finished.add(futures[fut])
                if progress:
                    progress(res)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            done = sum(r.ok for r in results)
            raise KeyboardInterrupt(f"interrupted after {done} of {len(jobs)} file(s) were "
                                    f"written") from None
        pool.shutdown(wait=True)
        todo = [j for i, j in enumerate(todo) if i not in finished]
        if todo and workers == 1:  # a file that kills its worker on its own: fails alone
            path, _, output, _ = todo.pop(0)
            res = FileResult(path, output, False, error=f"{path}: its worker process died "
                             f"(killed, e.g. for memory: try --chunk-rows smaller)")
            results.append(res)
            if progress:
                progress(res)
        workers = 1
    return results


def _on_dask(task: Callable[..., FileResult], client: Any, jobs: list[tuple],
             progress: Callable[[FileResult], None] | None) -> list[FileResult]:
    from distributed import as_completed as dask_completed

    futures = [client.submit(task, *j, pure=False) for j in jobs]
    results = []
    for fut in dask_completed(futures):
        results.append(fut.result())
        if progress:
            progress(results[-1])
    return results


def _has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True
