"""balerc as a numcodecs codec and a zarr v3 codec: registry, numcodecs' own checks, zarr
round trips with the bound held on every value, and clear errors for a wrong model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from balerc.codec.bounds import Bound
from balerc.formats import toy
from balerc.formats.errors import InputError

numcodecs = pytest.importorskip("numcodecs")
zarr = pytest.importorskip("zarr")
common = pytest.importorskip("numcodecs.tests.common")

from balerc.codec.zarr_codec import BalercCodec, BalercZarrCodec  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "zarr"


def dimuon_array(n: int, seed: int = 3) -> np.ndarray:
    t = toy.dimuon(n, seed)
    return np.stack([t[c] for c in t.names_of_kind("float")], 1)


def assert_bound(orig: np.ndarray, back: np.ndarray, bound: str) -> None:
    """Every value within the bound, column by column (rel: against the column's range)."""
    b = Bound.parse(bound)
    o2, d2 = orig.reshape(len(orig), -1), back.reshape(len(back), -1)
    assert o2.shape == d2.shape and back.dtype == orig.dtype
    for j in range(o2.shape[1]):
        col, dec = np.ascontiguousarray(o2[:, j]), np.ascontiguousarray(d2[:, j])
        assert b.allowed(col, dec).all(), f"column {j} breaks {bound}"


def test_bench_and_zarr_packages_import_together():
    """The [bench] extra once pinned a zfpy that made `import numcodecs` raise."""
    code = "import numcodecs, zarr, pysz, zfpy, pcodec; from numcodecs import ZFPY; print('ok')"
    for mod in ("pysz", "zfpy", "pcodec"):
        pytest.importorskip(mod)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_get_codec_and_config(monkeypatch):
    codec = numcodecs.get_codec({"id": "balerc", "bound": "abs:1e-3"})
    assert isinstance(codec, BalercCodec)
    assert codec.get_config()["bound"] == "abs:0.001"
    common.check_config(codec)
    common.check_config(BalercCodec(bound="rel:1e-4", chunk_rows=1000, names=["a", "b"]))
    monkeypatch.setattr(common, "BalercCodec", BalercCodec, raising=False)  # eval's namespace
    common.check_repr("BalercCodec(bound='pwrel:0.0005', model=None, model_sha256=None, "
                      "chunk_rows=65536, names=None, embed_model=False)")
    assert BalercZarrCodec.from_dict(BalercZarrCodec(bound="rel:1e-3").to_dict()) == \
        BalercZarrCodec(bound="rel:1e-3")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bound", ["abs:1e-3", "rel:1e-3", "pwrel:1e-3"])
def test_numcodecs_round_trip(dtype, bound):
    codec = BalercCodec(bound=bound, chunk_rows=700)
    for arr in (dimuon_array(2000).astype(dtype), dimuon_array(1500)[:, 3].astype(dtype)):
        enc = codec.encode(arr)
        for blob in (enc, bytearray(enc), np.frombuffer(enc, "u1")):
            back = codec.decode(blob)
            assert back.shape == arr.shape
            assert_bound(arr, back, bound)
        out = np.empty_like(arr)
        codec.decode(enc, out=out)
        assert_bound(arr, out, bound)
        if bound.startswith("abs"):  # numcodecs' lossy check: |d| < 1.5 x 10^-2
            common.compare_arrays(arr, codec.decode(enc), precision=2)


def test_numcodecs_backwards_compatibility(monkeypatch):
    """Committed blobs (tests/fixtures/zarr) still decode within the bound."""
    monkeypatch.chdir(FIXTURES)
    assert Path("fixture/balerc/codec.00/encoded.00.dat").is_file(), "committed fixtures missing"
    arrays = [dimuon_array(400, seed=5), dimuon_array(800, seed=6)[:, 0].astype("float32")]
    codecs = [BalercCodec(bound="abs:1e-3"), BalercCodec(bound="abs:1e-4", chunk_rows=300)]
    common.check_backwards_compatibility("balerc", arrays, codecs, precision=[2, 3])


def test_refuses_what_it_cannot_store():
    codec = BalercCodec()
    with pytest.raises(InputError, match="float32 or float64"):
        codec.encode(np.arange(10))
    with pytest.raises(InputError, match="reshape"):
        codec.encode(np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="raw buffer"):
        codec.encode(b"\0" * 16)
    with pytest.raises(InputError, match="positive"):
        BalercCodec(bound="abs:-1")


def test_zarr_v2_array_round_trip():
    x = dimuon_array(5000)
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(store, shape=x.shape, chunks=(2048, 15), dtype="float64",
                          zarr_format=2, compressors=BalercCodec(bound="abs:1e-3"))
    z[:] = x
    back = zarr.open_array(store, mode="r")[:]
    assert_bound(x, back, "abs:1e-3")


def test_one_column_chunks_keep_their_shape_and_numpy_ints_are_accepted():
    codec = BalercCodec(bound="abs:1e-3", chunk_rows=np.int64(100))
    assert codec.get_config()["chunk_rows"] == 100
    x = np.linspace(0, 1, 300).reshape(-1, 1)
    back = codec.decode(codec.encode(x))
    assert back.shape == (300, 1) and np.abs(back - x).max() <= 1e-3
    assert codec.decode(codec.encode(x[:, 0])).shape == (300,)


@pytest.mark.parametrize("dtype", ["<f8", ">f8", ">f4"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr_v2_big_endian_and_fortran_arrays(dtype, order):
    """zarr v2 reads a compressor's output as bytes in the array's byte order and memory
    order: decode returns the layout encode was given (big-endian chunks came back
    byte-swapped and Fortran chunks transposed, silently)."""
    x = dimuon_array(700)[:, :4]
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(store, shape=x.shape, chunks=(256, 4), dtype=dtype, order=order,
                          zarr_format=2, compressors=BalercCodec(bound="abs:1e-3"))
    z[:] = x
    back = zarr.open_array(store, mode="r")[:]
    assert back.dtype == np.dtype(dtype)
    assert_bound(x.astype(dtype), back, "abs:1e-3")
    codec = BalercCodec(bound="abs:1e-3")  # the codec alone: same bytes, same layout
    chunk = np.asarray(x[:256], dtype=dtype, order=order)
    got = codec.decode(codec.encode(chunk))
    assert got.dtype == chunk.dtype and got.flags.f_contiguous == (order == "F")
    assert np.abs(got - chunk).max() <= 1e-3


@pytest.mark.parametrize("bound", ["abs:1e-3", "rel:1e-3"])
def test_zarr_v3_array_round_trip(bound):
    x = dimuon_array(4096 + 1000)
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(store, shape=x.shape, chunks=(2048, 15), dtype="float64",
                          serializer=BalercZarrCodec(bound=bound), compressors=None)
    z[:] = x
    back = zarr.open_array(store, mode="r")[:]
    if bound.startswith("abs"):
        assert_bound(x, back, bound)
    else:  # rel: each chunk is its own blob, so the range is the chunk's (padding included)
        for s in range(0, len(x), 2048):
            chunk = np.zeros((2048, 15))
            part = x[s:s + 2048]
            chunk[:len(part)] = part
            b = Bound.parse(bound)
            for j in range(15):
                lim = b.absolute(chunk[:, j])
                assert (np.abs(part[:, j] - back[s:s + 2048, j]) <= lim).all()
    meta = json.loads(store._store_dict["zarr.json"].to_bytes())
    assert meta["codecs"][0]["name"] == "balerc"
    assert meta["codecs"][0]["configuration"]["bound"] == str(BalercCodec(bound).bound)


def test_zarr_v3_refuses_integer_arrays():
    with pytest.raises(InputError, match="float32 or float64"):
        zarr.create_array(zarr.storage.MemoryStore(), shape=(10,), dtype="int32",
                          serializer=BalercZarrCodec())


def test_missing_model_is_reported(tmp_path):
    with pytest.raises(InputError, match="cannot be loaded.*does not exist"):
        BalercCodec(model=str(tmp_path / "nope"))
    codec = BalercCodec(model=str(tmp_path / "nope"), model_sha256="ab" * 32)
    with pytest.raises(InputError, match="set 'model' to the directory"):
        codec.decode(BalercCodec().encode(np.ones(3)))
    with pytest.raises(InputError, match="names no model directory"):
        BalercCodec(model_sha256="ab" * 32).encode(np.ones(3))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from balerc.train import TrainConfig, export, fit

    d = tmp_path_factory.mktemp("zmodel") / "m"
    cfg = TrainConfig(epochs=2, search_steps=10, search_rows=1024, threads=1, seed=1)
    return Path(export(fit(toy.dimuon(3000, seed=21), cfg), d, force=True))


def test_model_is_referenced_and_checked(tmp_path, model_dir):
    x = dimuon_array(3000, seed=8)
    codec = BalercCodec(bound="rel:1e-3", model=str(model_dir))
    assert codec.model_sha256 and len(codec.model_sha256) == 64
    blob = codec.encode(x)
    back = numcodecs.get_codec(json.loads(json.dumps(codec.get_config()))).decode(blob)
    assert_bound(x, back, "rel:1e-3")
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    wrong = BalercCodec(bound="rel:1e-3", model=str(other), model_sha256="0" * 64)
    with pytest.raises(InputError, match="point 'model' at the model directory"):
        wrong.decode(blob)


@pytest.mark.parametrize("bound, limit", [("abs:1e-3", lambda a: 1e-3),
                                          ("pwrel:5e-4", lambda a: 5e-4 * np.abs(a))])
def test_chunks_written_in_parts_hold_abs_and_pwrel_bounds(tmp_path, bound, limit):
    """zarr re-encodes a chunk's decoded values on every partial write; abs and pwrel codes
    encode again to themselves, so the bound holds however a chunk is written (rel does
    not: README, zarr)."""
    a = np.random.default_rng(0).uniform(1000, 1001, 900)
    z = zarr.create_array(tmp_path / "p.zarr", shape=a.shape, chunks=(900,), dtype="f8",
                          fill_value=0.0, compressors=None, serializer=BalercZarrCodec(bound=bound))
    for s in range(0, 900, 100):
        z[s:s + 100] = a[s:s + 100]
    for _ in range(5):
        z[450:451] = a[450:451]  # rewrites of one element re-encode the whole chunk
    assert (np.abs(z[...] - a) <= limit(a)).all()


def test_unknown_config_keys_and_a_string_of_names_are_refused_by_name():
    """Unknown keys (a typo, or metadata from a newer balerc) raised TypeError in both
    registries; names='abc' was taken as ['a', 'b', 'c']."""
    with pytest.raises(InputError, match=r"unknown key\(s\) \['bogus'\]"):
        numcodecs.get_codec({"id": "balerc", "bogus": 1})
    with pytest.raises(InputError, match=r"unknown key\(s\) \['bnd'\]"):
        BalercZarrCodec.from_dict({"name": "balerc", "configuration": {"bnd": "abs:1"}})
    with pytest.raises(InputError, match="names must be a list"):
        BalercCodec(names="abc")


def test_rel_with_declared_ranges_holds_under_partial_writes(tmp_path):
    """A rel bound taken from each chunk's range ended 1,000x past the final data's bound
    when zarr wrote a chunk in parts (fill values in the range; re-encoding per part).
    With declared ranges it is an absolute E x (hi - lo), the same for every encode."""
    a = np.random.default_rng(0).uniform(1000, 1001, 900)
    for fill in (0.0, np.nan):
        z = zarr.create_array(tmp_path / f"r{fill}.zarr", shape=a.shape, chunks=(900,),
                              dtype="f8", fill_value=fill, compressors=None,
                              serializer=BalercZarrCodec(bound="rel:1e-3", ranges=[1000, 1001]))
        for s in range(0, 900, 100):
            z[s:s + 100] = a[s:s + 100]
        for _ in range(5):
            z[450:451] = a[450:451]
        assert np.abs(z[...] - a).max() <= 1e-3
    meta = zarr.open_array(tmp_path / "r0.0.zarr").metadata.to_dict()["codecs"][0]
    assert meta["configuration"]["ranges"] == [[1000.0, 1001.0]]
    two = BalercCodec(bound="rel:1e-3", ranges=[[0, 1], [0, 10]])  # each column its own
    x = np.random.default_rng(1).random((500, 2)) * [1, 10]
    err = np.abs(two.decode(two.encode(x)) - x).max(axis=0)
    assert err[0] <= 1e-3 and 1e-3 < err[1] <= 1e-2  # (it had been the narrowest's, 1e-3)
    narrow = BalercCodec(bound="rel:1e-3", ranges=[[0, 1], [0, 1]])
    assert len(two.encode(x)) < len(narrow.encode(x))
    assert "ranges" not in BalercCodec(bound="rel:1e-3").get_config()  # old configs as were
    for bad, message in ((dict(bound="abs:1", ranges=[0, 1]), "apply to a rel bound"),
                         (dict(bound="rel:1e-3", ranges=[1, 0]), "lo <= hi"),
                         (dict(bound="rel:1e-3", ranges=[]), "empty")):
        with pytest.raises(InputError, match=message):
            BalercCodec(**bad)
    with pytest.raises(InputError, match="3 ranges for a chunk of 2 columns"):
        BalercCodec(bound="rel:1e-3", ranges=[[0, 1]] * 3).encode(x)
