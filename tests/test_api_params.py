"""The Python API's edge: arguments of the wrong type or shape are InputErrors naming the
argument (never a TypeError or AttributeError from deep inside), numpy integers work,
and nothing is dropped silently (duplicate names, unknown keywords, ignored arguments)."""

from __future__ import annotations

import numpy as np
import pytest

import balerc
from balerc.codec import Codec, open_reader
from balerc.codec.pipeline import read_container
from balerc.codec.zarr_codec import BalercCodec
from balerc.formats.errors import InputError

X = np.random.default_rng(0).normal(size=(300, 3))


def blob() -> bytes:
    return Codec(threads=1).compress({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]},
                                     bound="abs:1e-3")


def test_numpy_integers_are_integers_and_other_types_are_named() -> None:
    """A numpy chunk_rows had reached the header's JSON as a TypeError."""
    back = Codec(chunk_rows=np.int64(100), threads=np.int32(1)).decompress(
        Codec(chunk_rows=np.int64(100)).compress(X, names=["a", "b", "c"], bound="abs:1e-3"))
    assert back.n_rows == 300
    for kw, match in ((dict(chunk_rows="100"), "chunk_rows must be an integer, got '100'"),
                      (dict(chunk_rows=100.0), "chunk_rows must be an integer, got 100.0"),
                      (dict(threads=-1), "threads must be at least 1"),
                      (dict(zstd_level=99), "zstd_level must be between"),
                      (dict(embed_model="no"), "embed_model must be True or False"),
                      (dict(device="tpu"), "device must be one of auto, cpu, cuda")):
        with pytest.raises(InputError, match=match):
            Codec(**kw)
    with pytest.raises(InputError, match="unknown option"):
        balerc.open_writer("x.balerc", bound="abs:1", bogus=1)
    with pytest.raises(InputError, match="chunk_rows.*must be an integer"):
        balerc.open_writer("x.balerc", bound="abs:1", chunk_rows="5")


def test_duplicate_names_are_refused_not_dropped(tmp_path) -> None:
    """names=['a', 'a'] and {1: x, '1': y} had kept one column; a zarr codec with
    duplicate names had written chunks that never read back."""
    with pytest.raises(InputError, match=r"duplicate column names \['a'\]"):
        Codec().compress(X[:, :2], names=["a", "a"], lossless=True)
    with pytest.raises(InputError, match=r"duplicate column names \['1'\]"):
        Codec().compress({1: X[:, 0], "1": X[:, 1]}, bound="abs:1e-3")
    with balerc.open_writer(tmp_path / "w.balerc", bound="abs:1e-3") as w:
        with pytest.raises(InputError, match="duplicate"):
            w.append({1: X[:, 0], "1": X[:, 1]})
        w.append({"1": X[:, 1]})
    with pytest.raises(InputError, match="duplicate"):
        BalercCodec(names=["a", "a", "b"])
    c = BalercCodec(bound="abs:1e-3")
    assert BalercCodec.from_config(c.get_config()).get_config() == c.get_config()  # 'id' too


def test_arguments_that_would_be_ignored_are_refused() -> None:
    with pytest.raises(InputError, match="names= applies to a plain 2-D array"):
        Codec().compress({"a": X[:, 0]}, names=["z"], bound="abs:1e-3")
    with pytest.raises(InputError, match="ranges sets the range a rel bound"):
        Codec().compress({"a": X[:, 0]}, bound="abs:1e-3", ranges={"a": (0, 1)})
    with pytest.raises(InputError, match=r"ranges must be a dict \{column: \(min, max\)\}"):
        Codec().compress({"a": X[:, 0]}, bound="rel:1e-3", ranges=[(0, 1)])
    with pytest.raises(InputError, match="unknown keyword argument"):
        read_container(blob(), colums=["a"])  # had read every column
    with pytest.raises(InputError, match="unknown keyword argument"):
        open_reader(blob(), thread=4)
    with pytest.raises(InputError, match="takes a path or the bytes"):
        Codec().decompress(np.frombuffer(blob(), np.uint8))
    for kw in ({"bound": "abs:0.5"}, {"bound": "rel:1e-3"}, {"bound": None},
               {"ranges": {"a": (0, 1)}}):  # lossless=True had ignored the bound
        with pytest.raises(InputError, match="lossless=True stores every value bit-exact"):
            Codec().compress({"a": X[:, 0]}, lossless=True, **kw)
    back = Codec().decompress(Codec().compress({"a": X[:, 0]}, lossless=True))
    assert np.array_equal(back["a"], X[:, 0])


def test_read_container_selects_like_the_reader() -> None:
    """read_container(columns='a') had been split into characters and globs refused."""
    data = blob()
    assert read_container(data, columns="a").names == ["a"]
    assert read_container(data, columns=["c", "a*"]).names == ["c", "a"]
    with pytest.raises(InputError, match=r"columns must hold strings"):
        read_container(data, columns=[1])
    with pytest.raises(InputError, match=r"chunks\[\] \(the file has 1\) must be between 0"):
        read_container(data, chunks=[5])
    with open_reader(data, threads=np.int64(2)) as r, \
            pytest.raises(InputError, match="columns must hold strings"):
        r.read(columns=[0])


def test_column_bounds_from_python(tmp_path) -> None:
    """column_bounds='a=abs:1' had failed as an AttributeError."""
    with balerc.open_writer(tmp_path / "c.balerc", bound="abs:1e-3",
                            column_bounds={"b": "abs:0.1"}) as w:
        w.append({"a": X[:, 0], "b": X[:, 1]})
    back = read_container(tmp_path / "c.balerc")
    assert np.abs(back["a"] - X[:, 0]).max() <= 1e-3
    assert 1e-3 < np.abs(back["b"] - X[:, 1]).max() <= 0.1
    with pytest.raises(InputError, match="names no columns"):
        balerc.open_writer(tmp_path / "d.balerc", bound="abs:1", column_bounds="abs:1")


def test_a_refused_first_batch_leaves_the_writer_usable(tmp_path) -> None:
    """It had stopped the writer ('stopped after an error') with nothing written."""
    with balerc.open_writer(tmp_path / "f.balerc", bound="abs:1e-3") as w:
        with pytest.raises(InputError, match="has 4 rows but earlier columns have 3"):
            w.append({"x": np.zeros(3), "y": np.zeros(4)})
        w.append({"x": np.ones(3), "y": np.ones(3)})
    assert read_container(tmp_path / "f.balerc")["y"].tolist() == [1.0, 1.0, 1.0]


def test_training_configuration_types() -> None:
    pytest.importorskip("torch")
    from balerc.train import TrainConfig, fit

    for kw, match in ((dict(columns="c*"), r"columns must be a list of names.*\['c\*'\]"),
                      (dict(latent="2"), "latent must be an integer"),
                      (dict(bound="x"), "cannot read the error bound 'x'")):
        with pytest.raises(InputError, match=match):
            TrainConfig(**kw).validate()
    cols = {"a": X[:, 0], "b": X[:, 0] * 2 + X[:, 1] * 0.01, "c": X[:, 2]}
    quick = dict(epochs=1, search_steps=5, search_rows=256, threads=1, latent=1, anchors=[])
    with pytest.raises(InputError, match=r"pattern\(s\) \['zzz'\] match no column"):
        fit(cols, TrainConfig(columns=["a", "b", "zzz"], **quick))  # had been skipped
    assert fit(cols, TrainConfig(**quick)).columns == ["a", "b", "c"]  # a dict is a table
