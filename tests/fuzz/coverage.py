"""Coverage-guided fuzzing of the reader with atheris (optional; ``pip install atheris``).

    python -m tests.fuzz.coverage -max_total_time=600 -timeout=10 -rss_limit_mb=3072

libFuzzer options pass through. The seed corpus is copied to --work (default
/tmp/balerc-atheris/corpus; libFuzzer adds the inputs that reach new code there) and crash
files go to /tmp/balerc-atheris/ (``crash-<sha1>``, ``timeout-...``, ``oom-...``). The
mutator alternates structural edits with fixed checksums (mutators.py, when the input
still parses) and libFuzzer's byte mutations, so coverage feedback steers both. A crash is
any exception of `read_container` (with and without recover=True) that is not a
BalercError; data comparisons are the campaign's job (this fuzzer has no expected table).
"""

from __future__ import annotations

import importlib
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

WORK = Path("/tmp/balerc-atheris")


def _setup(work: Path) -> tuple[Any, Any, Any]:
    """Import atheris, instrument balerc, and return (atheris, test_one, mutator)."""
    import atheris

    with atheris.instrument_imports(include=["balerc"]):
        from balerc.codec.pipeline import read_container
        from balerc.formats.errors import BalercError

        for name in ("ae", "packing", "logdomain", "lossless", "validate", "sandbox",
                     "exactmath", "runtime", "model"):  # imported lazily by the reader
            try:
                importlib.import_module(f"balerc.codec.{name}")
            except ImportError:
                pass
    from . import mutators as mu

    def test_one(data: bytes) -> None:
        for recover in (False, True):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read_container(data, recover=recover)
            except BalercError:
                pass

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            try:
                out = mu.structural_mutation(rng, mu.Target.of("input", data)).data
                if len(out) <= max_size:
                    return out
            except Exception:  # not parseable any more: libFuzzer's bytes instead
                pass
        return atheris.Mutate(data, max_size)

    return atheris, test_one, mutator


def main() -> None:
    """Copy the seeds, then hand over to libFuzzer (never returns)."""
    from .seeds import CORPUS

    corpus = WORK / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for f in CORPUS.glob("*.balerc"):
        shutil.copyfile(f, corpus / f.name)
    atheris, test_one, mutator = _setup(WORK)
    args = [sys.argv[0], f"-artifact_prefix={WORK}/", "-max_len=400000", *sys.argv[1:],
            str(corpus)]
    atheris.Setup(args, test_one, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
