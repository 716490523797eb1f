"""Shared fixtures: where ../shared/data is, and small generated tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from balerc.formats.table import Table

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SKHEP = SHARED_DATA / "skhep_testdata_subset"
FIXTURES = REPO / "tests" / "fixtures"


def shared_file(name: str) -> Path:
    """Path of a file in ../shared/data, or skip the test with the reason."""
    path = SKHEP / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data not available)")
    return path


@pytest.fixture
def mixed_table() -> Table:
    rng = np.random.default_rng(7)
    n = 3000
    return Table(
        {
            "x": rng.normal(size=n),
            "y32": rng.normal(100, 5, size=n).astype(np.float32),
            "idx": np.arange(n, dtype=np.int64),
            "q": rng.integers(-1, 2, size=n).astype(np.int32),
            "ok": rng.random(n) > 0.3,
            "label": np.array([f"gene-{i % 97}" for i in range(n)], dtype=object),
        },
        {"format": "generated"},
    )
