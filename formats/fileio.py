"""Safe output files: refuse to clobber, write to a temporary name, rename when complete.

A failed or interrupted run therefore never leaves a half-written output behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


def check_output(path: str | os.PathLike, force: bool = False) -> Path:
    """Validate an output path before any work is done (exists without force, bad dir)."""
    out = Path(path)
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to overwrite it")
    if out.is_dir():
        raise InputError(f"{out} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {out}: the directory {parent} is not writable")
    return out


@contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    out = check_output(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, out)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
