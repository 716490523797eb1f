"""Safe output files: refuse to clobber, write to a temporary name, rename when complete.

A failed or interrupted run therefore never leaves a half-written output behind.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import BalercError, InputError


def check_output(path: str | os.PathLike, force: bool = False) -> Path:
    """Validate an output path before any work is done (exists without force, bad dir).
    A symlink is followed (the file it points to is written, the link stays); a device,
    FIFO or socket is refused: outputs are written beside and renamed into place, which
    had replaced /dev/null with a file under --force."""
    out = Path(path)
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    if out.exists() and not out.is_file() and not out.is_dir():
        raise InputError(f"{out} is not a regular file (a device, FIFO or socket): balerc "
                         f"writes a file and renames it into place; give a file name, or -o - "
                         f"for stdout")
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force (force=True) to overwrite it")
    if out.is_dir():
        raise InputError(f"{out} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {out}: the directory {parent} is not writable")
    return out


def check_writable_dir(path: str | os.PathLike, option: str) -> None:
    """Prove that the directory `path` (or, when it does not exist yet, its nearest existing
    parent) takes files, by writing one: os.access says yes to root on a read-only mount,
    and a training run had failed only after its work, with an internal error."""
    at = Path(path)
    while not at.exists() and at != at.parent:
        at = at.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".balerc-probe-", dir=at)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write {option} {path}: {exc.strerror or exc} in {at}; "
                         f"choose another place") from None


TMP_TAG = ".balerc-tmp-"  # .NAME.balerc-tmp-PID-RANDOM: recognisable as ours after a kill


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_temporaries(out: Path) -> list[tuple[Path, int]]:
    """Temporary files of earlier runs writing `out` whose process is gone (killed)."""
    found = []
    for p in out.parent.glob(f".{glob_escape(out.name)}{TMP_TAG}*"):
        pid_text = p.name[len(out.name) + 1 + len(TMP_TAG):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            found.append((p, int(pid_text)))
    return found


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def clean_stale(out: Path) -> None:
    """Remove what a killed balerc left while writing `out`, and say so."""
    for p, pid in stale_temporaries(out):
        try:
            size = p.stat().st_size
            p.unlink()
        except OSError as exc:
            warnings.warn(f"{p} was left by a balerc run (pid {pid}) that was killed; "
                          f"it could not be removed ({exc.strerror}): delete it by hand", stacklevel=3)
            continue
        warnings.warn(f"removed {p} ({size:,} bytes), left by a balerc run (pid {pid}) that was "
                      f"killed while writing {out.name}", stacklevel=3)


def open_locked(path: Path) -> BinaryIO:
    """`path` opened for writing and truncated, unless another writer holds it: an advisory
    lock (flock, POSIX; not checked where fcntl is missing). Two writers on one path had
    both closed without error and left a damaged footer. Locked before the truncation, so
    the other writer's file is left as it is."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(f"{path} is being written by another writer (it holds the "
                             f"file's lock): write to another path") from None
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "wb")


@contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success.

    The temporary is named `.NAME.balerc-tmp-PID-XXXX`: SIGINT and SIGTERM remove it (the
    CLI turns SIGTERM into an exception), and after a SIGKILL the next run writing the
    same target recognises it by the dead PID and removes it, with a warning.
    """
    out = check_output(path, force)
    clean_stale(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}{TMP_TAG}{os.getpid()}-", dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, out)
    except BalercError as exc:  # a writer's error names the file the user asked for
        exc.args = tuple(a.replace(str(tmp_path), str(out)).replace(tmp_path.name, out.name)
                         if isinstance(a, str) else a for a in exc.args)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
