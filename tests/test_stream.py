"""Chunked reading: the stream yields exactly the table, and compression from it matches."""

from __future__ import annotations

import io

import numpy as np

from balerc.codec.ae import compress_with_model
from balerc.codec.pipeline import compress_lossless, read_container
from balerc.formats import toy
from balerc.formats.stream import TableStream, open_stream
from balerc.formats.table import Table, concat
from balerc.formats.tableio import read_table, write_table


def test_root_stream_equals_whole_read(tmp_path):
    t = toy.dimuon(5000, seed=3)
    path = tmp_path / "mu.root"
    write_table(t, path)
    whole = read_table(path)
    s = open_stream(path)
    assert s.n_rows == 5000 and s._reader is not None
    parts = list(s.chunks(1234))
    assert [p.n_rows for p in parts] == [1234, 1234, 1234, 1234, 64]
    assert concat(parts).equals(whole)
    lo, hi = s.column_ranges(["E1"], chunk_rows=999)["E1"]
    assert (lo, hi) == (whole["E1"].min(), whole["E1"].max())


def test_npy_stream_is_memory_mapped(tmp_path):
    a = np.random.default_rng(0).normal(size=(3000, 4))
    np.save(tmp_path / "a.npy", a)
    s = open_stream(tmp_path / "a.npy")
    assert s.n_rows == 3000
    assert np.array_equal(concat(list(s.chunks(1000))).to_numpy(), a)


def test_compress_from_stream_equals_from_table(tmp_path):
    t = toy.dimuon(4000, seed=5)
    path = tmp_path / "mu.root"
    write_table(t, path)
    whole = read_table(path)
    for job in (
        lambda src, out: compress_lossless(src, out, chunk_rows=1000),
        lambda src, out: compress_with_model(src, out, model_dir=None, bound="rel:1e-3", chunk_rows=1000),
    ):
        a, b = io.BytesIO(), io.BytesIO()
        job(open_stream(path), a)
        job(TableStream.from_table(whole), b)
        ta, tb = read_container(a.getvalue()), read_container(b.getvalue())
        assert ta.equals(tb)


def test_column_ranges_are_the_finite_ones_across_chunks():
    """min/max over the finite values only (NaN and Inf in some chunks, none finite in a
    column: NaN, NaN), whichever chunk holds the extremes."""
    x = np.array([1.0, np.nan, -np.inf, 5.0, 3.0, -2.0])
    t = Table({"x": x, "nan": np.full(6, np.nan), "inf": np.array([np.inf, -np.inf, 2, 7, 2, 2.0]),
               "plain": np.arange(6.0)})
    for rows in (1, 2, 4, 6):
        r = TableStream.from_table(t).column_ranges(["x", "nan", "inf", "plain"], rows)
        assert r["x"] == (-2.0, 5.0) and r["inf"] == (2.0, 7.0) and r["plain"] == (0.0, 5.0)
        assert np.isnan(r["nan"]).all()
