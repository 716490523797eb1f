"""The public streaming writer and reader: what a data-taking loop relies on."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from balerc.codec import open_reader, open_writer
from balerc.codec.ae import compress_with_model
from balerc.codec.bounds import Bound, bound_modes, get_bound_mode
from balerc.codec.coders import get_coder, registered
from balerc.codec.pipeline import coder_column_names, read_container
from balerc.formats import toy
from balerc.formats.container import ContainerReader
from balerc.formats.errors import BalercError, InputError
from balerc.formats.table import Table

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def table() -> Table:
    return toy.dimuon(2500, seed=4)


def _streams(data: bytes) -> list[dict[str, bytes]]:
    with ContainerReader(data) as r:
        return [r.read_chunk(i) for i in range(r.n_chunks)]


def _ranges(t: Table) -> dict[str, tuple[float, float]]:
    return {n: (float(t[n].min()), float(t[n].max())) for n in t.names_of_kind("float")}


@pytest.mark.parametrize("batch", [1, 7, 1000])
@pytest.mark.parametrize("bound", ["pwrel:5e-4", "rel:1e-3", "abs:0.01"])
def test_appending_batches_writes_what_compress_writes(table, batch, bound):
    """Same chunks, same bytes: any batch size gives compress's chunk streams."""
    whole = io.BytesIO()
    compress_with_model(table, whole, model_dir=None, bound=bound, chunk_rows=400, zstd_level=3)
    streamed = io.BytesIO()
    ranges = _ranges(table) if bound.startswith("rel") else None
    with open_writer(streamed, bound=bound, chunk_rows=400, zstd_level=3, ranges=ranges,
                     threads=2) as w:
        for start in range(0, table.n_rows, batch):
            w.append(table.slice(start, start + batch))
    assert w.result.rows == table.n_rows and w.result.chunks == 7
    assert _streams(streamed.getvalue()) == _streams(whole.getvalue())
    back = read_container(streamed.getvalue())
    b = Bound.parse(bound)
    for n in table.names_of_kind("float"):
        assert b.allowed(table[n], back[n], None if b.pointwise else
                         b.absolute_from_range(*ranges[n]) if ranges else None).all(), n


def test_batches_as_dicts_structured_arrays_and_flush(tmp_path, table):
    path = tmp_path / "s.balerc"
    rec = np.zeros(10, dtype=[(n, table[n].dtype) for n in table.names])
    for n in table.names:
        rec[n] = table[n][:10]
    with open_writer(path, bound="pwrel:1e-3", chunk_rows=1000) as w:
        w.append(rec)  # the first batch fixes the schema (names in its order)
        w.append({n: table[n][10:20] for n in reversed(table.names)})  # matched by name
        w.flush()  # a partial chunk now: the file holds 20 rows already
        with pytest.warns(UserWarning, match="recovered the first 20 rows"):
            assert read_container(path, recover=True).n_rows == 20
        w.append(table.slice(20, 25))
    back = read_container(path)
    assert back.n_rows == 25 and back.names == table.names
    assert np.array_equal(back["Run"][10:20], table["Run"][10:20])


def test_wrong_batches_are_refused_by_name(tmp_path, table):
    with open_writer(tmp_path / "w.balerc", bound="abs:0.1") as w:
        w.append(table.slice(0, 5))
        with pytest.raises(InputError, match=r"missing \['M'\]"):
            w.append({n: table[n][:5] for n in table.names if n != "M"})
        with pytest.raises(InputError, match=r"unexpected \['extra'\].*allow_extra"):
            w.append({**table.slice(0, 5).columns, "extra": np.zeros(5)})
        with pytest.raises(InputError, match=r"'E1': 'float32 \(the file has float64\)'"):
            w.append({**table.slice(0, 5).columns, "E1": table["E1"][:5].astype(np.float32)})
    with open_writer(tmp_path / "x.balerc", bound="abs:0.1", allow_extra=True,
                     schema={n: table[n].dtype for n in table.names}) as w:
        w.append({**table.slice(0, 5).columns, "extra": np.zeros(5)})
    assert "extra" not in read_container(tmp_path / "x.balerc").names


def test_rel_needs_declared_ranges(tmp_path, table):
    with pytest.raises(InputError, match=r"rel bound needs each column's range.*ranges="):
        with open_writer(tmp_path / "r.balerc", bound="rel:1e-3") as w:
            w.append(table.slice(0, 100))
    assert not (tmp_path / "r.balerc").exists()  # nothing was written: nothing left behind
    ranges = _ranges(table.slice(0, 100))  # declared from a first look; later values exceed it
    with open_writer(tmp_path / "r2.balerc", bound="rel:1e-3", ranges=ranges, force=True) as w:
        w.append(table)
    back = read_container(tmp_path / "r2.balerc")
    for n, (lo, hi) in ranges.items():  # held against the declared range's absolute limit
        assert Bound("rel", 1e-3).allowed(table[n], back[n], 1e-3 * (hi - lo) or 1e-3).all(), n


def test_writer_refuses_to_clobber(tmp_path, table):
    (tmp_path / "e.balerc").write_bytes(b"x")
    with pytest.raises(InputError, match="already exists"):
        open_writer(tmp_path / "e.balerc", bound="abs:1")


def test_killed_writer_leaves_every_flushed_chunk(tmp_path):
    """SIGKILL mid-stream: --recover reads every chunk written before the kill."""
    path = tmp_path / "k.balerc"
    script = textwrap.dedent(f"""
        import sys
        from balerc.codec import open_writer
        from balerc.formats import toy
        t = toy.dimuon(500, seed=1)
        w = open_writer({str(path)!r}, bound="pwrel:1e-3", chunk_rows=500)
        for i in range(10_000):
            w.append(t)
            if i == 5:
                print("six", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "six"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with pytest.warns(UserWarning, match="recovered"):
        back = read_container(path, recover=True)
    assert back.n_rows >= 3000 and back.n_rows % 500 == 0
    t = toy.dimuon(500, seed=1)
    assert np.array_equal(back["Event"][-500:], t["Event"])


def test_a_waiting_loop_on_threads_leaves_every_full_chunk_on_disk(tmp_path):
    """threads=2: encoded chunks had been written only by the next append, so a loop
    waiting for data (then killed) lost up to 2 x threads - 1 of them (README example:
    4 full chunks appended, 2 recovered). Each chunk's done-callback now writes it."""
    path = tmp_path / "w.balerc"
    script = textwrap.dedent(f"""
        import time
        from balerc.codec import open_writer
        from balerc.formats import toy
        t = toy.dimuon(1000, seed=1)
        w = open_writer({str(path)!r}, bound="pwrel:1e-3", chunk_rows=1000, threads=2)
        for _ in range(4):
            w.append(t)
        print("appended", flush=True)
        time.sleep(600)  # waiting for the next batch
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "appended"
        for _ in range(300):  # the 4 chunks reach the disk without another call
            time.sleep(0.1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    if read_container(path, recover=True).n_rows == 4000:
                        break
                except BalercError:
                    pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with pytest.warns(UserWarning, match="recovered"):
        back = read_container(path, recover=True)
    assert back.n_rows == 4000


class _FailsOnce(io.RawIOBase):
    """A file whose write of the `at`-th chunk record fails once (nothing written), as a
    full disk that frees up or a Ctrl-C in the middle of a write."""

    def __init__(self, path, at: int, error: BaseException):
        self.f, self.at, self.error = open(path, "wb"), at, error
        self.chunks, self.fired = 0, False

    def writable(self):
        return True

    def write(self, b):
        b = bytes(b)
        if b[:4] == b"BCHK":
            if self.chunks == self.at and not self.fired:
                self.fired = True
                raise self.error
            self.chunks += 1
        return self.f.write(b)

    def flush(self):
        self.f.flush()


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("error", [OSError(28, "No space left"), KeyboardInterrupt()])
def test_no_chunk_is_written_after_a_failed_write(tmp_path, threads, error):
    """Found by a red team: on threads, a failed (or interrupted) write of chunk 5 let
    chunk 6 be written in its place, labelled as chunk 5, so recover=True read rows
    0..499 then 600.. with no warning (5 of 20 real Ctrl-Cs)."""
    f = _FailsOnce(tmp_path / "f.balerc", 5, error)  # whichever thread writes chunk 5
    y = np.arange(3000)
    with pytest.raises(type(error)):
        with open_writer(f, bound="abs:1e-3", chunk_rows=100, threads=threads) as w:
            for i in range(0, 3000, 100):
                w.append({"x": np.cos(y[i:i + 100]), "y": y[i:i + 100]})
    f.f.close()
    assert f.fired
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = read_container(tmp_path / "f.balerc", recover=True)["y"]
    assert got.size == 500 and np.array_equal(got, np.arange(500))


def test_reader_iterates_chunks_and_reads_row_ranges(tmp_path, table):
    path = tmp_path / "rd.balerc"
    compress_with_model(table, path, model_dir=None, bound="abs:0.01", chunk_rows=300)
    whole = read_container(path)
    with open_reader(path, threads=2) as r:
        assert r.n_rows == table.n_rows and r.n_chunks == 9 and r.columns == table.names
        parts = list(r.iter_chunks(columns=["M", "Run"]))
        assert [p.n_rows for p in parts] == [300] * 8 + [100]
        assert np.array_equal(np.concatenate([p["M"] for p in parts]), whole["M"])
        got = r.read(rows=slice(250, 1234), columns=["E1"])
        assert got.names == ["E1"] and np.array_equal(got["E1"], whole["E1"][250:1234])
        assert r.read(rows=slice(5, 5)).n_rows == 0
        assert r.info()["rows"] == table.n_rows


# ------------------------------------------------------------------ registries
@pytest.mark.parametrize("path", sorted(FIXTURES.glob("v21_*.balerc")), ids=lambda p: p.stem)
def test_every_coder_config_round_trips(path):
    """The header's coder records rebuild coders whose get_config() is that record, and
    from_config(get_config()) again gives it, for every coder of every golden file of the
    current format (older files decode through the same classes: tests/test_golden.py)."""
    from balerc.codec.reader import coders_from_header

    with ContainerReader(path) as r:
        coders = coders_from_header(r.header, attachment=r.read_attachment, source=str(path))
        schema = r.header["schema"]["columns"]
        index = {c["name"]: i for i, c in enumerate(schema)}
        dtypes = {c["name"]: c["dtype"] for c in schema}
        for desc, coder in zip(r.header["coders"], coders, strict=True):
            assert type(coder) is get_coder(desc["id"])
            config = coder.get_config()
            assert config == desc
            again = type(coder).from_config(dict(config, columns=coder_column_names(
                r.header, config)), index, dtypes, attachment=r.read_attachment)
            assert again.get_config() == config


def test_registries_list_the_builtins():
    assert set(registered()) >= {"lossless", "autoencoder"}
    assert bound_modes() == ["abs", "rel", "pwrel"]
    for name in bound_modes():
        b = Bound(name, 1e-3)
        assert Bound.parse(str(b)) == b and get_bound_mode(name).name == name
        y = np.array([1.0, -2.0, 0.5, np.nan])
        ok = b.allowed(y, y + np.array([2.5e-4, 0.0, 2e-4, 0.0]), 1e-3)
        assert ok.tolist() == [True, True, True, True]
        assert not b.allowed(y, y + 1.0, 1e-3)[:3].any()
    with pytest.raises(InputError, match="unknown bound mode 'foo'"):
        Bound.parse("foo:1")


def test_codec_matches_columns_by_name_with_a_model(tmp_path):
    """A column-reversed frame must not land in the model's columns by position."""
    from balerc.codec import Codec
    from tests.test_exact_predictor import exact_model

    model = exact_model(tmp_path, [-100.0, -200.0], [200.0, 400.0])
    rng = np.random.default_rng(2)
    a = rng.uniform(-100, 100, 3000)
    reversed_cols = {"b": 2 * a, "a": a}  # the model's order is a, b
    codec = Codec(model, threads=1, keep_model=True)
    back = codec.decompress(codec.compress(reversed_cols, bound="abs:0.01"))
    assert back.names == ["b", "a"]
    assert np.all(np.abs(back["a"] - a) <= 0.01) and np.all(np.abs(back["b"] - 2 * a) <= 0.01)
    plain = codec.decompress(codec.compress(np.stack([a, 2 * a], 1), bound="abs:0.01"))
    assert plain.names == ["a", "b"]  # a bare array takes the model's names by position
    with pytest.raises(InputError, match="3 names for an array of 2 columns"):
        codec.compress(np.stack([a, a], 1), names=["x", "y", "z"])


def test_codec_takes_dataframes_by_name(tmp_path):
    pd = pytest.importorskip("pandas")
    from balerc.codec import Codec

    frame = pd.DataFrame({"y": np.arange(50.0), "x": np.arange(50.0) * 3})
    back = Codec(threads=1).decompress(Codec(threads=1).compress(frame, bound="abs:0.1"))
    assert back.names == ["y", "x"] and np.all(np.abs(back["x"] - frame["x"].to_numpy()) <= 0.1)


def test_reordered_dataframe_with_a_model_lands_by_name(tmp_path):
    pd = pytest.importorskip("pandas")
    from balerc.codec import Codec
    from tests.test_exact_predictor import exact_model

    codec = Codec(exact_model(tmp_path, [-100.0, -200.0], [200.0, 400.0]), threads=1,
                  keep_model=True)
    a = np.random.default_rng(4).uniform(-100, 100, 2000)
    frame = pd.DataFrame({"b": 2 * a, "a": a})  # the model's order is a, b
    back = codec.decompress(codec.compress(frame, bound="abs:0.01")).to_pandas()
    assert list(back.columns) == ["b", "a"]
    assert np.all(np.abs(back["a"].to_numpy() - a) <= 0.01)
    assert np.all(np.abs(back["b"].to_numpy() - 2 * a) <= 0.01)


def test_dataframe_chunks_and_their_index_go_through_the_writer(tmp_path):
    """The README's loop with pandas: read_csv chunks (RangeIndex 1000.. on the second)
    were refused for an unexpected '__index__' column, and a kept index came back as a
    plain column (the writer dropped `pandas_index`)."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.linspace(0, 1, 3000), "n": np.arange(3000)})
    with open_writer(tmp_path / "c.balerc", bound="abs:1e-3") as w:
        for start in range(0, 3000, 1000):
            w.append(frame.iloc[start:start + 1000])
    back = open_reader(tmp_path / "c.balerc").read().to_pandas()
    assert list(back.columns) == ["a", "n"] and np.array_equal(back["n"], frame["n"])
    genes = frame.set_index(pd.Index([f"g{i}" for i in range(3000)], name="gene"))
    with open_writer(tmp_path / "g.balerc", bound="abs:1e-3") as w:
        w.append(genes.iloc[:1500])
        w.append(genes.iloc[1500:])
    back = open_reader(tmp_path / "g.balerc").read().to_pandas()
    assert back.index.name == "gene" and list(back.index) == list(genes.index)
    assert list(back.columns) == ["a", "n"]


@pytest.mark.parametrize("cuts", [[], [4], [1, 3, 6]])
def test_jagged_awkward_batches_keep_every_event(tmp_path, cuts):
    """Events are numbered across batches and trailing empty events are kept: one batch
    lost its trailing empty events, two made an unsorted '__event__' that cannot rebuild."""
    ak = pytest.importorskip("awkward")
    counts = np.array([0, 2, 1, 0, 3, 0, 0])
    arr = ak.zip({"pt": ak.unflatten(np.arange(counts.sum(), dtype=float), counts)})
    with open_writer(tmp_path / "j.balerc", bound="abs:1e-3") as w:
        for a, b in zip([0, *cuts], [*cuts, len(arr)], strict=True):
            w.append(arr[a:b])
    back = open_reader(tmp_path / "j.balerc").read().to_awkward()
    assert ak.to_list(ak.num(back.pt)) == counts.tolist()
    assert np.abs(ak.to_numpy(ak.flatten(back.pt)) - np.arange(6.0)).max() <= 1e-3


def test_a_closed_or_failed_writer_refuses_more_rows(tmp_path):
    """append after close() was accepted and the rows silently lost."""
    w = open_writer(tmp_path / "a.balerc", bound="abs:1e-3")
    w.append({"a": np.zeros(50)})
    assert w.close().rows == 50
    with pytest.raises(InputError, match="cannot append: the writer is closed"):
        w.append({"a": np.ones(10)})
    assert w.close().rows == 50  # closing again returns the result
    with pytest.raises(RuntimeError):
        with open_writer(tmp_path / "b.balerc", bound="abs:1e-3") as w2:
            w2.append({"a": np.zeros(50)})
            raise RuntimeError("the loop failed")
    with pytest.raises(InputError, match="stopped after an error"):
        w2.close()
    with pytest.raises(InputError, match="must be 1-D"):
        open_writer(tmp_path / "c.balerc", bound="abs:1e-3").append({"a": 1.0})


@pytest.mark.parametrize("bad, message", [
    ((5.0, -5.0), r"\(5.0, -5.0\): give the column's finite \(min, max\) with min <= max"),
    ((-np.inf, np.inf), "give the column's finite"),
    ((0.0, np.nan), "give the column's finite"),
    ((1.0,), "give \\(min, max\\), two numbers"),
    ((-5, 5, 7), "give \\(min, max\\), two numbers"),
])
def test_declared_ranges_are_checked_before_anything_is_written(tmp_path, bad, message):
    """An inverted range wrote a file its own reader refused (negative limit); infinite
    ones failed in JSON, short or long ones with a bare TypeError."""
    out = tmp_path / "r.balerc"
    with pytest.raises(InputError, match=message):
        with open_writer(out, bound="rel:1e-3", ranges={"a": bad}) as w:
            w.append({"a": np.linspace(-5, 5, 100)})
    assert not out.exists()


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize == 8, reason="long double is float64 here")
def test_long_double_columns_are_refused_by_name(tmp_path):
    """A long double column was written (as '<f16') and then refused by the file's own
    reader (a masked array's hidden values were stored as data: the test below)."""
    x = np.linspace(0, 1, 100)
    with pytest.raises(InputError, match="column 'a': unsupported dtype float(96|128) \\(long double\\)"):
        with open_writer(tmp_path / "l.balerc", bound="abs:1e-3") as w:
            w.append({"a": x.astype(np.longdouble)})
    assert not (tmp_path / "l.balerc").exists()


def test_every_decode_path_selects_columns_alike(tmp_path, table):
    """decompress, the Reader and a file of sections took column globs three ways
    (file order or the patterns' order; a pattern matching nothing refused, or dropped
    when another matched): now the patterns' order everywhere, and a typo is refused."""
    from balerc.codec.api import decompress

    path = tmp_path / "s.balerc"
    compress_with_model(table, path, model_dir=None, bound="abs:0.01", chunk_rows=1000)
    want = ["M", "E1", "px1", "px2"]
    assert decompress(path, columns=["M", "E1", "px*", "px1"]).names == want
    with open_reader(path) as r:
        assert r.read(columns=["M", "E1", "px*", "px1"]).names == want
    for pats in (["M", "nope*"], []):
        with pytest.raises(InputError, match=r"no column matches \['nope\*'\]|selection is empty"):
            decompress(path, columns=pats)


def test_masked_and_mixed_object_columns_are_refused_by_name(tmp_path):
    """Masked values are refused on every way in: a dict of arrays, a 2-D or structured
    masked array and a writer batch had reached np.asarray, which drops the mask, so the
    hidden values were stored as data."""
    from balerc.codec import Codec

    x = np.linspace(0, 1, 100)
    with pytest.raises(InputError, match="column 'm' has 2 masked"):
        Table({"m": np.ma.masked_array(x, mask=x > 0.98)})
    m = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    two = np.ma.masked_array(np.ones((3, 2)), mask=[[0, 1], [0, 0], [0, 0]])
    rec = np.ma.masked_array(np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]),
                             mask=[(0, 1), (0, 0)])
    for data, what in (({"x": m}, "column 'x'"), (two, "the array"), (rec, "column 'b'")):
        with pytest.raises(InputError, match=f"{what} has 1 masked"):
            Codec().compress(data, bound="abs:1e-3")
    with pytest.raises(InputError, match="column 'x' has 1 masked"):
        with open_writer(tmp_path / "w.balerc", bound="abs:1e-3") as w:
            w.append({"x": m})
    assert not (tmp_path / "w.balerc").exists()
    unmasked = np.ma.masked_array([1.0, 2.0], mask=[0, 0])  # nothing hidden: accepted
    assert Codec().compress({"x": unmasked}, bound="abs:1e-3")
    with pytest.raises(InputError, match="column 's': object columns must hold str"):
        Table({"s": np.array(["a", None], dtype=object)})


def test_reader_arguments_and_a_closed_reader_give_typed_errors(tmp_path, table):
    """read(rows=5) raised AttributeError, read after close a released-memoryview
    ValueError; columns take globs as decompress does, in the order given."""
    path = tmp_path / "r.balerc"
    compress_with_model(table, path, model_dir=None, bound="abs:0.01", chunk_rows=1000)
    r = open_reader(path)
    assert r.read(rows=range(10, 20), columns=["px*"]).names == ["px1", "px2"]
    assert r.read(rows=slice(0, 3), columns=["M", "E1"]).names == ["M", "E1"]
    with pytest.raises(InputError, match=r"read\(rows=5\): give a slice"):
        r.read(rows=5)
    with pytest.raises(InputError, match=r"no column matches \['nope\*'\]"):
        r.read(columns=["nope*"])
    with pytest.raises(InputError, match=r"columns=\[\] selects nothing"):
        r.read(columns=[])
    r.close()
    with pytest.raises(InputError, match="the reader is closed"):
        r.read()
    with pytest.raises(InputError, match="the reader is closed"):
        next(r.iter_chunks())


@pytest.mark.parametrize("threads", [1, 2])
def test_a_loop_refilling_one_buffer_writes_every_batch(tmp_path, threads):
    """The writer kept references to the caller's arrays (buffered batches, and with
    threads a full-chunk batch handed to a worker), so a loop refilling one buffer wrote
    its last batch over every row."""
    buf = {"x": np.empty(100), "i": np.empty(100, dtype=np.int64)}
    with open_writer(tmp_path / "b.balerc", lossless=True, threads=threads, chunk_rows=250) as w:
        for k in range(20):
            buf["x"][:] = k
            buf["i"][:] = np.arange(100) + 100 * k
            w.append(buf)
    full = {"x": np.empty(1000)}
    with open_writer(tmp_path / "c.balerc", lossless=True, threads=threads, chunk_rows=1000) as w:
        for k in range(6):  # batches of exactly one chunk: the no-copy path
            full["x"][:] = k
            w.append(full)
    back = open_reader(tmp_path / "b.balerc").read()
    assert np.array_equal(back["x"], np.repeat(np.arange(20.0), 100))
    assert np.array_equal(back["i"], np.arange(2000))
    assert np.array_equal(open_reader(tmp_path / "c.balerc").read()["x"],
                          np.repeat(np.arange(6.0), 1000))


def test_many_tiny_batches_are_merged_and_decode_exactly(tmp_path):
    """20,000 appends of 3 rows kept 20,000 dicts of views until their chunk filled (RSS
    grew ~5x the data): buffered batches are merged every MERGE_PIECES appends."""
    from balerc.codec.writer import MERGE_PIECES

    rng = np.random.default_rng(1)
    parts = [rng.normal(size=3) for _ in range(3 * MERGE_PIECES + 7)]
    with open_writer(tmp_path / "t.balerc", lossless=True, threads=1, chunk_rows=4000) as w:
        for p in parts:
            w.append({"x": p})
            assert len(w._pending) <= MERGE_PIECES + 4000 // (3 * MERGE_PIECES) + 2
    assert np.array_equal(open_reader(tmp_path / "t.balerc").read()["x"], np.concatenate(parts))


def test_bytes_after_str_batches_are_refused_and_nothing_buffered_is_lost(tmp_path):
    """A bytes batch after str ones was accepted, then failed (UnicodeDecodeError) while a
    later chunk was assembled, after the buffered rows had been taken off: the file kept
    only the rows appended after it, and close() said nothing."""
    path = tmp_path / "s.balerc"
    w = open_writer(path, lossless=True, threads=1, chunk_rows=4)
    w.append({"s": np.array(["r0", "r1"])})
    with pytest.raises(InputError, match="column 's': object columns must hold str values, "
                                         "found bytes"):
        w.append({"s": np.array(["é".encode()])})
    w.append({"s": np.array(["r3"])})
    w.append({"s": np.array(["r4", "r5"])})
    assert w.close().rows == 5
    assert open_reader(path).read()["s"].tolist() == ["r0", "r1", "r3", "r4", "r5"]


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_encoded_chunks_reach_the_disk_and_survive_an_interrupt(tmp_path, threads):
    """With threads, encoded chunks waited until 2 x threads were in flight and an
    exception in the `with` block discarded them (8 threads: a 0-byte file after 15 full
    chunks): chunks are written as soon as they are done, and an interrupt writes those
    finished before it stops."""
    import warnings

    path = tmp_path / "k.balerc"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(path, lossless=True, threads=threads, chunk_rows=1000) as w:
            for k in range(15):
                w.append({"i": np.arange(k * 1000, (k + 1) * 1000)})
            raise KeyboardInterrupt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = read_container(path.read_bytes(), recover=True)
    assert np.array_equal(back["i"], np.arange(15_000))
    with pytest.raises(InputError, match="cannot flush: the writer stopped after an error"):
        w.flush()


def test_more_writer_and_reader_misuse_gives_typed_errors(tmp_path):
    import pandas as pd

    with pytest.raises(InputError, match="duplicate column names \\['a'\\]"):
        with open_writer(tmp_path / "d.balerc", lossless=True) as w:
            w.append(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))
    with pytest.raises(InputError, match="column 'x' has type 'floaty', which is not a numpy"):
        open_writer(tmp_path / "e.balerc", lossless=True, schema={"x": "floaty"})
    with open_writer(tmp_path / "f.balerc", lossless=True, chunk_rows=10) as w:
        w.append({"x": np.arange(30.0)})
    r = open_reader(tmp_path / "f.balerc")
    with pytest.raises(InputError, match="slice bounds must be integers"):
        r.read(rows=slice(1.5, 3))
    chunks = r.iter_chunks()
    next(chunks)
    r.close()
    with pytest.raises(InputError, match="the reader is closed"):
        next(chunks)


def test_a_second_writer_on_a_path_and_a_flat_batch_after_jagged_ones_are_refused(tmp_path):
    """Two writers on one path both closed without error and left a damaged footer; a
    dict carrying its own __event__ after jagged awkward batches was written and then
    could not be rebuilt ('__event__' is not sorted)."""
    import awkward as ak

    path = tmp_path / "l.balerc"
    w1 = open_writer(path, lossless=True)
    w1.append({"x": np.arange(10.0)})
    with pytest.raises(InputError, match="is being written by another writer"):
        open_writer(path, lossless=True, force=True)
    assert w1.close().rows == 10
    assert open_reader(path).read()["x"].tolist() == list(range(10))
    jets = ak.Array([[{"pt": 1.0}], [], [{"pt": 2.0}, {"pt": 3.0}]])
    with pytest.raises(InputError, match="after jagged awkward batches"):
        with open_writer(tmp_path / "j.balerc", lossless=True) as w:
            w.append(jets)
            w.append({"__event__": np.array([0, 1]), "pt": np.array([4.0, 5.0])})


def test_any_batch_sizes_decode_to_their_concatenation(tmp_path):
    """Batches of any sizes (empty ones, splits across chunks, merges of many small ones)
    come back as their concatenation, bit for bit, on 1 and 2 threads."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from balerc.codec import writer as writer_mod

    @settings(max_examples=80, deadline=None)
    @given(sizes=st.lists(st.integers(0, 90), min_size=1, max_size=40),
           chunk=st.integers(1, 120), threads=st.sampled_from([1, 2]),
           merge=st.sampled_from([2, 3, 512]))
    def check(sizes, chunk, threads, merge):
        rng = np.random.default_rng(len(sizes) * 1000 + chunk)
        parts = [rng.normal(size=n) for n in sizes]
        if not sum(sizes):
            return
        old, writer_mod.MERGE_PIECES = writer_mod.MERGE_PIECES, merge
        try:
            path = tmp_path / "h.balerc"
            buf = {"x": np.empty(0), "k": np.empty(0, dtype=np.int64)}
            with open_writer(path, lossless=True, threads=threads, chunk_rows=chunk,
                             force=True) as w:
                start = 0
                for p in parts:
                    buf["x"], buf["k"] = p.copy(), np.arange(start, start + len(p))
                    w.append(buf)
                    buf["x"][...] = np.nan  # refilled: what was appended must not change
                    start += len(p)
        finally:
            writer_mod.MERGE_PIECES = old
        back = open_reader(path).read()
        assert back["x"].tobytes() == np.concatenate(parts).tobytes()
        assert np.array_equal(back["k"], np.arange(sum(sizes)))

    check()
