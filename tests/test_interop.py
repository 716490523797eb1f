"""pandas, Arrow and awkward in and out of balerc, always by column name."""

from __future__ import annotations

import numpy as np
import pytest

from balerc.codec import Codec
from balerc.formats.errors import InputError
from balerc.formats.interop import from_any, from_awkward
from balerc.formats.table import Table


def _codec() -> Codec:
    return Codec(threads=1)


def test_arrow_in_and_out():
    pa = pytest.importorskip("pyarrow")
    t = pa.table({"y": np.linspace(0, 1, 500), "n": np.arange(500), "s": [f"g{i}" for i in range(500)]})
    back = _codec().decompress(_codec().compress(t, bound="abs:1e-3"))
    assert back.names == ["y", "n", "s"]
    out = back.to_arrow()
    assert out.column_names == ["y", "n", "s"] and out.column("s").to_pylist()[:2] == ["g0", "g1"]
    assert np.all(np.abs(out.column("y").to_numpy() - t.column("y").to_numpy()) <= 1e-3)
    with pytest.raises(InputError, match="nulls"):
        _codec().compress(pa.table({"y": [1.0, None]}), bound="abs:1")


def test_awkward_flat_and_one_jagged_collection():
    ak = pytest.importorskip("awkward")
    flat = ak.zip({"pt": np.arange(10.0), "eta": np.linspace(-1, 1, 10)})
    back = _codec().decompress(_codec().compress(flat, bound="abs:1e-3")).to_awkward()
    assert ak.fields(back) == ["pt", "eta"] and len(back) == 10
    jets = ak.Array([[{"pt": 1.0, "eta": 0.1}, {"pt": 2.0, "eta": -0.2}], [],
                     [{"pt": 3.5, "eta": 1.0}]])
    table = from_awkward(jets)
    assert table.names == ["__event__", "pt", "eta"] and list(table["__event__"]) == [0, 0, 2]
    back = _codec().decompress(_codec().compress(jets, bound="abs:1e-3")).to_awkward()
    assert ak.to_list(ak.num(back, axis=1)) == [2, 0, 1]
    assert np.allclose(ak.to_numpy(ak.flatten(back.pt)), [1.0, 2.0, 3.5], atol=1e-3)
    mixed = ak.zip({"met": np.ones(3), "jet_pt": ak.Array([[1.0], [], [2.0, 3.0]])},
                   depth_limit=1)
    with pytest.raises(InputError, match="mixing per-event fields"):
        from_awkward(mixed)


def test_pandas_index_comes_back_as_the_index():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"expr": np.linspace(0, 5, 20)},
                         index=pd.Index([f"gene{i}" for i in range(20)], name="gene"))
    back = _codec().decompress(_codec().compress(frame, bound="abs:1e-3")).to_pandas()
    assert back.index.name == "gene" and list(back.index[:2]) == ["gene0", "gene1"]
    assert list(back.columns) == ["expr"]


def test_missing_values_are_refused_by_name_not_stored_as_sentinels():
    """An Int64 column with one pd.NA became lossy float64 (an exact event number came back
    off by ~1); an awkward None became INT64_MAX. Both are refused, naming the column."""
    pd = pytest.importorskip("pandas")
    ak = pytest.importorskip("awkward")
    ev = pd.array(np.arange(10**12, 10**12 + 200), dtype="Int64")
    ev[5] = pd.NA
    frame = pd.DataFrame({"x": np.linspace(0, 1, 200), "event": ev})
    with pytest.raises(InputError, match=r"column 'event' \(Int64\) has 1 missing value"):
        _codec().compress(frame, bound="abs:1e-3")
    with pytest.raises(InputError, match="awkward field 'i' has 1 missing value"):
        _codec().compress(ak.zip({"a": ak.Array([1.0, 2, 3]), "i": ak.Array([1, None, 3])}),
                          bound="abs:1e-3")
    with pytest.raises(InputError, match="awkward field 'pt' has 1 missing value"):
        from_awkward(ak.zip({"pt": ak.Array([[1.0, None], [], [2.0]])}))


def test_nullable_pandas_columns_without_missing_values_stay_exact():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": np.linspace(0, 1, 50),
                          "event": pd.array(np.arange(10**12, 10**12 + 50), dtype="Int64"),
                          "ok": pd.array([True, False] * 25, dtype="boolean"),
                          "name": pd.array([f"g{i}" for i in range(50)], dtype="string")})
    back = _codec().decompress(_codec().compress(frame, bound="abs:1e-3"))
    assert back["event"].dtype == np.int64 and np.array_equal(back["event"], frame["event"])
    assert back["ok"].dtype == bool and list(back["name"][:2]) == ["g0", "g1"]


def test_an_unnamed_range_index_is_not_stored_whatever_its_start():
    """read_csv(chunksize=...) and df.iloc[a:b] chunks have RangeIndex(a, b): they were
    stored as an '__index__' column, so a writer refused the second chunk."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": np.linspace(0, 1, 100)})
    assert from_any(frame.iloc[40:60]).names == ["x"]
    named = frame.rename_axis("evt")  # a named index is data: kept, and its name
    back = _codec().decompress(_codec().compress(named, bound="abs:1e-3")).to_pandas()
    assert back.index.name == "evt" and list(back.index[:3]) == [0, 1, 2]


def test_to_awkward_keeps_string_columns():
    ak = pytest.importorskip("awkward")
    t = Table({"a": np.array([1.0, 2.0]), "s": np.array(["x", "yy"], dtype=object)})
    arr = t.to_awkward()
    assert ak.to_list(arr.s) == ["x", "yy"] and str(ak.type(arr.s).content) == "string"


def test_codec_stores_an_integer_table_losslessly():
    """A table without float columns is stored bit-exact, with a bound or lossless=True."""
    t = {"run": np.full(300, 7), "event": np.arange(10**12, 10**12 + 300)}
    for kw in ({"bound": "abs:1"}, {"lossless": True}):
        back = _codec().decompress(_codec().compress(t, **kw))
        assert all(np.array_equal(back[n], t[n]) and back[n].dtype == t[n].dtype for n in t)


def test_awkward_and_arrow_shapes_balerc_cannot_store_are_refused_by_name():
    """A flat field named __event__ came back as a jagged collection (the user's column
    gone), fixed-size lists were regrouped into variable ones, nested records and unions
    raised TypeError, an Arrow table with duplicate names KeyError."""
    ak = pytest.importorskip("awkward")
    pa = pytest.importorskip("pyarrow")
    x = np.linspace(0, 1, 5)
    cases = [
        (ak.zip({"__event__": np.arange(5), "a": x}), "'__event__' is reserved"),
        (ak.zip({"a": ak.to_regular(ak.Array([[1.0, 2.0]] * 5))}, depth_limit=1),
         "field 'a' has type 2 \\* float64"),
        (ak.zip({"a": x, "r": ak.zip({"x": x, "y": x})}, depth_limit=1), "field 'r' has type"),
        (ak.Array([{"a": 1.0}, {"a": "x"}]), "field 'a' has type union"),
        (pa.Table.from_arrays([pa.array(x), pa.array(x)], names=["a", "a"]),
         "duplicate column names \\['a'\\]"),
    ]
    for data, message in cases:
        with pytest.raises(InputError, match=message):
            _codec().compress(data, bound="abs:1e-3")
    jagged = ak.Array([{"pt": [1.0, 2.0]}, {"pt": []}, {"pt": [3.0]}])
    back = _codec().decompress(_codec().compress(jagged, lossless=True)).to_awkward()
    assert ak.to_list(back.pt) == [[1.0, 2.0], [], [3.0]]


def test_pandas_extension_dtypes_come_back():
    """Categorical, Int64, boolean and string columns (and an Int64 index) came back as
    plain numpy/str columns: their pandas dtypes are recorded and restored (a category's
    values are kept; its unused categories and order are not)."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"cat": pd.Categorical(["a", "b", "a", "c"]),
                       "i": pd.array([1, 2, 3, 4], dtype="Int64"),
                       "b": pd.array([True, False, True, True], dtype="boolean"),
                       "s": pd.array(["x", "y", "z", "w"], dtype="string"),
                       "f": np.array([1.5, 2.5, 3.5, 4.5])},
                      index=pd.Index(pd.array([10, 11, 12, 13], dtype="Int64"), name="evt"))
    back = _codec().decompress(_codec().compress(df, lossless=True)).to_pandas()
    pd.testing.assert_frame_equal(back, df)


def test_numeric_column_labels_and_the_columns_name_come_back():
    """Column labels 0 and 1.5 came back as the strings '0' and '1.5', and columns.name
    was lost; numeric labels and the name are recorded and restored."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({0: [1.0, 2.0], 1.5: [3, 4], "s": ["a", "b"]})
    df.columns.name = "feature"
    back = _codec().decompress(_codec().compress(df, lossless=True)).to_pandas()
    pd.testing.assert_frame_equal(back, df)


def test_dates_and_a_multiindex_are_refused_by_what_they_are():
    """A tz-aware column was refused as 'object columns must hold str values, found
    Timestamp', a MultiIndex as 'found tuple': say what the value is and what to do."""
    pd = pytest.importorskip("pandas")
    x = [1.0, 2.0, 3.0]
    cases = [
        (pd.DataFrame({"t": pd.date_range("2026-01-01", periods=3, tz="UTC"), "x": x}),
         r"column 't' holds datetime64\[.*UTC\] values.*astype\('int64'\)"),
        (pd.DataFrame({"t": pd.to_timedelta([1, 2, 3], unit="s"), "x": x}),
         r"column 't' holds timedelta64"),
        (pd.DataFrame({"x": x}, index=pd.date_range("2026-01-01", periods=3)),
         r"the index holds datetime64"),
        (pd.DataFrame({"x": x[:2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])),
         r"MultiIndex \(2 levels\).*reset_index\(\)"),
    ]
    for df, message in cases:
        with pytest.raises(InputError, match=message):
            _codec().compress(df, bound="abs:1e-3")
