"""Committed fixtures written by earlier balerc versions must decode to the same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from balerc.codec.pipeline import read_container

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = sorted(FIXTURES.glob("*.balerc"))


def test_fixtures_exist():
    assert len(GOLDEN) >= 3


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_decodes_exactly(path: Path):
    expected = np.load(path.with_suffix(".expected.npz"), allow_pickle=False)
    table = read_container(path)
    assert table.names == list(expected["__names__"])
    for i, name in enumerate(table.names):
        got, want = table[name], expected[f"c{i}"]
        if table.kind(name) == "string":
            assert list(got) == list(want)
        else:
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
