"""Non-ROOT tables from a format sweep (2026-12-02): nothing is altered or dropped
silently. Integers stay integers (or the column is refused by name), text that only
looks like a number to Python stays text, a broken quote or another separator is an
error naming the file, Arrow types and metadata come back, .npz extras are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from balerc.cli.main import cli
from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.formats.tableio import read_table, write_table


def csv_file(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_integer_column_with_empty_cells_is_refused_by_name(tmp_path: Path) -> None:
    """It had become float64 and been quantized under a bound (1000001 -> 1000000.998)."""
    path = csv_file(tmp_path, "event,x\n1000001,0.5\n1000002,0.7\n,0.9\n1000004,1.1\n")
    with pytest.raises(InputError, match=r"column 'event' holds integers with 1 empty "
                                         r"cell\(s\) \(first in data row 3\)"):
        read_table(path)
    assert read_table(path, columns=["x"]).names == ["x"]  # the way out it names
    floats = read_table(csv_file(tmp_path, "x,y\n1.5,1\n,2\n", "f.csv"))
    assert floats["x"].dtype == np.float64 and np.isnan(floats["x"][1])  # floats: NaN


def test_text_python_would_read_as_a_number_stays_text(tmp_path: Path) -> None:
    text = ("id,code,pad,arabic,big\n"
            "007,1_000, 3 ,\u0661\u0662\u0663,123456789012345678901234567890\n"
            "012,2_000,4,7,18446744073709551616\n")
    t = read_table(csv_file(tmp_path, text))
    assert t["id"].tolist() == [7, 12]  # ASCII digits: a number, as pandas reads it
    for name in ("code", "pad", "arabic", "big"):
        assert t[name].dtype == object, name  # int() would take them; kept as written
    out = tmp_path / "back.csv"
    write_table(t, out)
    assert out.read_text().splitlines()[1:] == [
        "7,1_000, 3 ,\u0661\u0662\u0663,123456789012345678901234567890",
        "12,2_000,4,7,18446744073709551616"]


@pytest.mark.parametrize("text, match", [
    ('x,s\n1.0,"abc\n2.0,def\n', r"line 3: unexpected end of data \(RFC 4180 quoting"),
    ('x,s\n1.0,"a"b\n', r"line 2: .* expected after '\"'"),
    ("x y z\n1.0 2.0 3.0\n4.0 5.0 6.0\n", r"every line holds 2 ' ': a space-separated table"),
    ("x;y\n1;2\n3;4\n", r"every line holds 1 ';': a semicolon-separated table"),
])
def test_broken_quoting_and_other_separators_are_refused(tmp_path: Path, text: str,
                                                         match: str) -> None:
    """An open quote had swallowed the rest of the file into one cell; a ';' file had
    become one text column."""
    with pytest.raises(InputError, match=match):
        read_table(csv_file(tmp_path, text))


def test_one_text_column_with_spaces_and_long_cells_are_read(tmp_path: Path) -> None:
    t = read_table(csv_file(tmp_path, "full name\nJohn Smith\nJane Doe\n"))
    assert t["full name"].tolist() == ["John Smith", "Jane Doe"]
    seq = "ACGT" * 60_000  # 240,000 characters: over Python's csv default of 131,072
    assert read_table(csv_file(tmp_path, f"a,seq\n1,{seq}\n", "l.csv"))["seq"][0] == seq


def test_float32_columns_are_written_as_their_shortest_text(tmp_path: Path) -> None:
    values = np.array([0.12, np.nan, -np.inf, 1e-40, -0.0], np.float32)
    out = tmp_path / "f.csv"
    write_table(Table({"f": values}), out)
    assert out.read_text().split() == ["f", "0.12", "nan", "-inf", "1e-40", "-0.0"]


def test_parquet_integer_nulls_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"evt": pa.array([1, 2, None, 4], pa.int64()),
                             "x": [0.1, 0.2, 0.3, 0.4]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"integer column 'evt' has 1 nulls"):
        read_table(tmp_path / "n.parquet")
    pq.write_table(pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["a", "a"]),
                   tmp_path / "d.parquet")
    with pytest.raises(InputError, match=r"duplicate column names \['a'\]"):
        read_table(tmp_path / "d.parquet")


def test_parquet_types_metadata_and_pandas_index_come_back(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    t = pa.table({"s": pa.array(["x", "y"], pa.large_string()),
                  "d": pa.array(["u", "v"]).dictionary_encode(), "f": [1.0, 2.0]})
    pq.write_table(t.replace_schema_metadata({"experiment": "CMS"}), tmp_path / "t.parquet")
    write_table(read_table(tmp_path / "t.parquet"), tmp_path / "back.parquet")
    schema = pq.read_schema(tmp_path / "back.parquet")
    assert str(schema.field("s").type) == "large_string"
    assert pa.types.is_dictionary(schema.field("d").type)
    assert schema.metadata == {b"experiment": b"CMS"}
    df = pd.DataFrame({"gene": ["g1", "g2"], "v": [1.0, 2.0],
                       "n": pd.array([1, 2], dtype="Int64")}).set_index("gene")
    df.to_parquet(tmp_path / "p.parquet")
    write_table(read_table(tmp_path / "p.parquet"), tmp_path / "p2.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p2.parquet"), df)
    part = read_table(tmp_path / "p.parquet", columns=["v"])  # metadata no longer fits
    write_table(part, tmp_path / "p3.parquet")
    assert pq.read_schema(tmp_path / "p3.parquet").metadata is None


def test_npz_extras_refused_and_string_npy_round_trips(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", data=np.ones((4, 2)), names=np.array(["a", "b"]),
             weights=np.ones(4))
    with pytest.raises(InputError, match=r"besides 'data' and 'names' .* holds \['weights'\]"):
        read_table(tmp_path / "x.npz")
    for arr in (np.array(["a", "bc", "d\u00e9f"]), np.array([["a", "b"], ["cc", "d"]])):
        np.save(tmp_path / "s.npy", arr)
        write_table(read_table(tmp_path / "s.npy"), tmp_path / "back.npy")
        back = np.load(tmp_path / "back.npy")
        assert back.shape == arr.shape and back.dtype.kind == "U" and (back == arr).all()


def test_compress_output_names_a_container(tmp_path: Path) -> None:
    src = csv_file(tmp_path, "a,b\n1,2.5\n")
    for out, match in ((tmp_path / "out.csv", "compress writes a .balerc container, not a "
                        ".csv table"), (src, "is the input file")):
        res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--lossless",
                                       "-f"])
        assert res.exit_code == 2 and match in res.output, res.output
    assert src.read_text() == "a,b\n1,2.5\n"
    res = CliRunner().invoke(cli, ["compress", "-", "--lossless"], input="a,b\n1,2\n")
    assert res.exit_code == 2 and "not from stdin" in res.output


def test_default_output_keeps_the_sources_extension(tmp_path: Path) -> None:
    """A .txt source came back as .csv by default."""
    from balerc.codec.api import default_output

    for name, text in (("t.txt", "a\tb\n1\t2.5\n"), ("c.txt", "a,b\n1,2.5\n"),
                       ("x.tab", "a\tb\n1\t2.5\n")):
        src = csv_file(tmp_path, text, name)
        out = tmp_path / (src.stem + ".balerc")
        res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--lossless",
                                       "-q"])
        assert res.exit_code == 0, res.output
        assert default_output(out, out) == out.with_suffix(src.suffix)


def test_npy_byte_order_and_memory_order_come_back(tmp_path: Path) -> None:
    """Values were equal, but a big-endian or Fortran-order .npy came back native C-order."""
    arrays = {"be": np.arange(12, dtype=">f8").reshape(4, 3),
              "fo": np.asfortranarray(np.arange(12.0).reshape(4, 3))}
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
        out = tmp_path / f"{name}.balerc"
        res = CliRunner().invoke(cli, ["compress", str(tmp_path / f"{name}.npy"), "-o",
                                       str(out), "--lossless", "-q"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(cli, ["decompress", str(out), "-o",
                                       str(tmp_path / f"{name}.out.npy"), "-q"])
        assert res.exit_code == 0, res.output
        back = np.load(tmp_path / f"{name}.out.npy")
        assert back.dtype == arr.dtype and np.isfortran(back) == np.isfortran(arr)
        np.testing.assert_array_equal(back, arr)


def test_a_column_name_with_a_comma_can_be_selected(tmp_path: Path) -> None:
    from balerc.cli.options import split_patterns

    assert split_patterns(("a*,b", "c")) == ["a*", "b", "c"]
    assert split_patterns(("x\\,y,z",)) == ["x,y", "z"]
    src = csv_file(tmp_path, '"x,y",z\n1.5,2\n')
    out = tmp_path / "c.balerc"
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--lossless", "-q"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["decompress", str(out), "--columns", "x\\,y", "-o", "-",
                                   "-q"])
    assert res.exit_code == 0 and res.output.splitlines() == ['"x,y"', "1.5"], res.output


def test_empty_float_cells_come_back_empty(tmp_path: Path) -> None:
    """They had come back as 'nan'; a column that wrote NaN as text keeps 'nan'."""
    text = "a,b,c\n1.5,2.5,nan\n,3.5,1.0\n2.5,,\n"
    t = read_table(csv_file(tmp_path, text))
    assert t.source["empty_nan"] == ["a", "b"]
    write_table(t, tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text() == "a,b,c\n1.5,2.5,nan\n,3.5,1.0\n2.5,,nan\n"


def test_parquet_metadata_that_cannot_be_stored_is_said(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    t = pa.table({"f": [1.0, 2.0]}).replace_schema_metadata({b"blob": b"\xff\xfe", b"ok": b"1"})
    pq.write_table(t, tmp_path / "m.parquet")
    with pytest.warns(UserWarning, match=r"metadata \['blob'\] is not stored"):
        back = read_table(tmp_path / "m.parquet")
    assert back.source["arrow_metadata"] == {"ok": "1"}


@pytest.mark.parametrize("arrays", [
    {"data": np.arange(8.0).reshape(4, 2), "names": np.array([b"px", b"py"])},
    {"label": np.array([b"mu", b"e", b"tau", b"mu"]), "pt": np.arange(4.0)},
])
def test_npz_bytes_arrays_come_back_as_bytes(tmp_path: Path, arrays: dict) -> None:
    """Names or a string column saved as bytes (|S) had come back as unicode (<U)."""
    np.savez(tmp_path / "b.npz", **arrays)
    out = tmp_path / "b.balerc"
    for args in (["compress", str(tmp_path / "b.npz"), "-o", str(out), "--lossless", "-q"],
                 ["decompress", str(out), "-o", str(tmp_path / "back.npz"), "-q"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
    with np.load(tmp_path / "back.npz") as back:
        assert sorted(back.files) == sorted(arrays)
        for k, a in arrays.items():
            assert back[k].dtype == a.dtype, k
            np.testing.assert_array_equal(back[k], a)
