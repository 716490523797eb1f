"""Committed fixtures written by earlier balerc versions must decode to the same values.

What "the same" means depends on how a column was coded (docs/FORMAT.md, "Bit-stable and
bound-stable outputs"):

* bit-stable: lossless columns and columns decoded by integer arithmetic and IEEE basic
  operations (modes q, and g/l from format 2.1 on, whose exp2 is codec/exactmath.py):
  the same bits on every CPU and numpy build. `make test` reruns this file with numpy's
  AVX-512 and AVX2 paths disabled.
* log-domain columns of files written before 2.1 (modes g/l): the writer used numpy's
  exp2, whose last bit depends on the CPU; they decode within 1 ulp of the recorded
  values (the bound has a 1e-9 relative headroom for exactly this).
* predicted columns (modes p, a, r, s): computed by the embedded ONNX decoder, whose
  float32 kernels and transcendental functions differ between CPUs and providers in the
  last bits; they decode within the file's own drift allowance of the recorded values,
  which keeps every value within the bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from balerc.codec.coders.wiremodes import PREDICTING
from balerc.codec.pipeline import coder_column_names, read_container
from balerc.formats.container import ContainerReader

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = sorted(FIXTURES.glob("*.balerc"))


def test_fixtures_exist():
    assert len(GOLDEN) >= 24


def column_classes(path: Path) -> tuple[dict[str, str], dict[str, float], str | None]:
    """Per column: 'bits', 'ulp' or 'drift'; the allowed drift per column; the bound mode."""
    classes: dict[str, str] = {}
    allowance: dict[str, float] = {}
    mode = None
    with ContainerReader(path) as r:
        for k, desc in enumerate(r.header["coders"]):
            if desc["id"] != "autoencoder":
                continue
            names = coder_column_names(r.header, desc)
            mode = (desc.get("bound") or {}).get("mode")
            letters = [set() for _ in names]
            for c in r.chunks:
                for j, m in enumerate(c.meta.get(str(k), {}).get("modes", "q" * len(names))):
                    letters[j].add(m)
            old = r.format_version < (2, 1)
            for j, n in enumerate(names):
                if letters[j] & PREDICTING:
                    classes[n] = "drift"
                    allowance[n] = (desc["bound"]["value"] if mode == "pwrel"
                                    else desc["abs_bounds"][j]) if desc.get("bound") else np.inf
                elif letters[j] & set("gl") and old:
                    classes[n] = "ulp"
    return classes, allowance, mode


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_decodes_to_the_recorded_values(path: Path):
    expected = np.load(path.with_suffix(".expected.npz"), allow_pickle=False)
    table = read_container(path)
    classes, allowance, mode = column_classes(path)
    assert table.names == list(expected["__names__"])
    for i, name in enumerate(table.names):
        got, want = table[name], expected[f"c{i}"]
        if table.kind(name) == "string":
            assert list(got) == list(want)
            continue
        assert got.dtype == want.dtype, name
        how = classes.get(name, "bits")
        if how == "bits":
            assert got.tobytes() == want.tobytes(), f"{name}: not bit-identical"
        elif how == "ulp":
            assert np.all((got == want) | (np.abs(got - want) <= np.spacing(np.abs(want)))), name
        else:  # predicted: both decodings hold the bound, so they differ by less than it
            limit = allowance[name] * (np.abs(want) if mode == "pwrel" else 1.0)
            assert np.all((got == want) | (np.abs(got - want) <= limit)), name


def test_files_since_2_1_have_bit_stable_log_columns():
    """The 2.1 pwrel fixtures exist and their model-free columns are classed bit-stable."""
    classes, _, mode = column_classes(FIXTURES / "v21_pwrel5e-4.balerc")
    assert mode == "pwrel" and classes == {}
    classes, _, _ = column_classes(FIXTURES / "v21_phys64_pwrel5e-4.balerc")
    assert set(classes.values()) == {"drift"} and 0 < len(classes) < 15


@pytest.mark.parametrize("name, features, letters", [
    ("v21e_lossless", {"pcodec-lossless"}, set()),
    ("v21e_abs1e-2", {"pcodec-codes", "dictionary", "coded-exceptions"}, {"d", "q"}),
    ("v21e_pwrel5e-4", {"pcodec-codes", "coded-exceptions"}, {"g"}),
    ("v21e_model_pwrel1e-3", {"pcodec-codes", "scaled-pwrel"}, {"s"}),
    ("v21e_phys64_pwrel5e-4", {"scaled-pwrel", "decoder-float64"}, {"s", "g"}),
    ("v21f_rel1e-4", {"pcodec-int32"}, {"q"}),
    ("v21f_pwrel5e-4", {"pcodec-int32"}, {"g"}),
])
def test_entropy_stage_fixtures_hold_what_they_freeze(name, features, letters):
    """The 2026-12 fixtures exercise the entropy stage's features and modes (d, s)."""
    with ContainerReader(FIXTURES / f"{name}.balerc") as r:
        assert features <= set(r.header["required_features"])
        used = {m for c in r.chunks for v in c.meta.values() for m in v.get("modes", "")}
    assert letters <= used
