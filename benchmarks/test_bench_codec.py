"""pytest-benchmark suite for the codec hot paths (not part of `make test`).

    .venv/bin/pytest benchmarks/test_bench_codec.py --benchmark-columns=mean,ops

Throughput in MB/s = raw float bytes / mean time; chunks of 65,536 generated dimuon rows.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from balerc.codec.ae import AECoder, compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.codec.lossless import encode_column
from balerc.codec.packing import pack_codes, unpack_codes
from balerc.formats import toy

pytest.importorskip("pytest_benchmark")

TABLE = toy.dimuon(65536, seed=9)
FLOATS = TABLE.names_of_kind("float")


def _coder(bound: str) -> AECoder:
    b = Bound.parse(bound)
    index = {n: i for i, n in enumerate(TABLE.names)}
    dtypes = {n: TABLE[n].dtype.str for n in TABLE.names}
    abs_b = None if b.mode == "pwrel" else [b.absolute(TABLE[c]) for c in FLOATS]
    return AECoder(FLOATS, index, dtypes, b, abs_b, None)


@pytest.mark.parametrize("bound", ["rel:1e-3", "pwrel:1e-3"])
def test_encode_chunk_model_free(benchmark, bound):
    coder = _coder(bound)
    benchmark(coder.encode, TABLE, 0)


def test_pack_codes(benchmark):
    codes = np.random.default_rng(0).integers(-300, 300, 65536)
    data = benchmark(pack_codes, codes)
    assert np.array_equal(unpack_codes(data, codes.size), codes)


def test_lossless_column(benchmark):
    benchmark(encode_column, TABLE["E1"])


def test_file_roundtrip_model_free(benchmark):
    def run() -> None:
        buf = io.BytesIO()
        compress_with_model(TABLE, buf, model_dir=None, bound="rel:1e-3")
        decompress(buf.getvalue())

    benchmark(run)
