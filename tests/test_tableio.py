"""Table readers and writers: real files round-trip bit-exactly; bad input says what to fix.

Real data lives outside the repository in ../shared/data (see PROVENANCE.md there); tests
that need it skip when it is absent. Outputs go to tmp_path.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from balerc.formats.errors import InputError
from balerc.formats.root_writers import SkippedBranchWarning
from balerc.formats.table import Table
from balerc.formats.tableio import SUPPORTED_INPUT, SUPPORTED_OUTPUT, read_table, write_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SKHEP = DATA / "skhep_testdata_subset"
BALER = DATA / "baler_examples"
RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"


def shared(folder: Path, name: str) -> Path:
    """Path of a shared data file, or skip the test when the shared data are not here."""
    path = folder / name
    if not path.exists():
        pytest.skip(f"shared data file {path} is absent")
    return path


def roundtrip(table: Table, path: Path, **read_kw) -> Table:
    write_table(table, path)
    return read_table(path, **read_kw)


def dtypes(table: Table) -> dict[str, str]:
    return {n: str(a.dtype) for n, a in table.columns.items()}


# -- ROOT ------------------------------------------------------------------------------


def test_root_flat_zmumu_roundtrip(tmp_path: Path) -> None:
    table = read_table(shared(SKHEP, "uproot-Zmumu.root"))
    assert table.n_rows == 2304
    # every branch of one value per entry, the char* branch too (a whole-file compress
    # once dropped it silently)
    assert table.kind("Type") == "string" and set(table["Type"]) == {"GG", "GT", "TT"}
    assert table.n_columns == 20
    types = dtypes(table)
    assert types["Run"] == "int32" and types["Q1"] == "int32" and types["M"] == "float64"
    assert table.source["format"] == "root" and table.source["tree"] == "events"
    assert table.source["size"] == (SKHEP / "uproot-Zmumu.root").stat().st_size
    back = roundtrip(table, tmp_path / "z.root")
    assert back.equals(table)
    assert back.source["tree"] == "events"


def test_root_string_branch_selected_explicitly() -> None:
    table = read_table(shared(SKHEP, "uproot-Zmumu.root"), columns=["Type", "M"])
    assert table.names == ["Type", "M"]
    assert table.kind("Type") == "string" and set(table["Type"]) == {"GG", "GT", "TT"}


def test_root_jagged_hzz_jets_roundtrip(tmp_path: Path) -> None:
    src = shared(SKHEP, "uproot-HZZ.root")
    table = read_table(src, columns=["Jet_*"])
    assert table.names == ["__event__", "Jet_Px", "Jet_Py", "Jet_Pz", "Jet_E", "Jet_btag", "Jet_ID"]
    assert table.n_rows == 2773
    assert dtypes(table)["Jet_Px"] == "float32" and dtypes(table)["Jet_ID"] == "bool"
    assert dtypes(table)["__event__"] == "int64"
    assert table.source["jagged"] == {"counter": "NJet", "n_events": 2421, "collection": "Jet"}
    assert np.unique(table["__event__"]).size < 2421  # there are events without jets

    out = tmp_path / "jets.root"
    back = roundtrip(table, out, columns=["Jet_*"])
    assert back.equals(table)
    assert back.source["jagged"]["counter"] == "NJet"
    # the per-event counts, zero-jet events included, are rebuilt exactly
    njet = read_table(src, columns=["NJet"])["NJet"]
    assert np.array_equal(read_table(out, columns=["NJet"])["NJet"], njet)
    assert (njet == 0).any()



def test_root_default_selection_says_what_it_leaves_out() -> None:
    """Without a selection a tree's flat branches are read; its collections are not left
    out in silence (a SkippedBranchWarning names them and how to select one), and a flat
    tree reads without one."""
    import warnings

    from balerc.formats.root_writers import SkippedBranchWarning

    with pytest.warns(SkippedBranchWarning, match=r"23 branch\(es\).*Jet \(6 branches\).*'Jet_\*'"):
        table = read_table(shared(SKHEP, "uproot-HZZ.root"))
    assert "Jet_Px" not in table and "MET_px" in table
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedBranchWarning)
        read_table(shared(SKHEP, "uproot-Zmumu.root"))

def test_root_jagged_entry_range_is_those_events() -> None:
    """An entry range of a jagged collection holds exactly those events' objects, its
    event index counted from the range's start; a range whose events hold no objects is
    an empty table, not an error (the stream opener reads event 0 first: no jets in HZZ)."""
    src = shared(SKHEP, "uproot-HZZ.root")
    whole = read_table(src, columns=["Jet_*"])
    part = read_table(src, columns=["Jet_*"], entries=(5, 50))
    keep = (whole["__event__"] >= 5) & (whole["__event__"] < 50)
    assert part.source["jagged"] == {"counter": "NJet", "n_events": 45, "collection": "Jet"}
    assert np.array_equal(part["__event__"], whole["__event__"][keep] - 5)
    for name in whole.names[1:]:
        assert np.array_equal(part[name], whole[name][keep])
    assert read_table(src, columns=["Jet_*"], entries=(0, 1)).n_rows == 0
    from balerc.formats.stream import open_stream

    assert open_stream(src, columns=["Jet_*"]).n_rows == whole.n_rows


def test_root_jagged_nanoaod_jets_roundtrip(tmp_path: Path) -> None:
    table = read_table(shared(SKHEP, NANO), columns=["Jet_*"])
    assert table.n_rows == 537 and table.n_columns == 41
    assert table.source["jagged"] == {"counter": "nJet", "n_events": 200, "collection": "Jet"}
    assert dtypes(table)["Jet_nConstituents"] == "uint8"
    assert dtypes(table)["Jet_jetId"] == "int32"
    back = roundtrip(table, tmp_path / "nano.root", columns=["Jet_*"])
    assert back.equals(table)
    assert back.source["tree"] == "Events"


def test_root_rntuple_read_and_written_back_as_its_kind(tmp_path: Path) -> None:
    src = shared(SKHEP, RNTUPLE)
    with pytest.warns(SkippedBranchWarning, match=r"collections: Muon \(5 branches\)"):
        flat = read_table(src)  # the flat table names what it left out
    assert flat.names == ["nMuon"] and flat.n_rows == 1000
    muons = read_table(src, columns=["Muon_*"])
    assert muons.n_rows == 2372
    assert muons.names == [
        "__event__",
        "Muon_pt",
        "Muon_eta",
        "Muon_phi",
        "Muon_mass",
        "Muon_charge",
    ]
    assert muons.source["tree_class"] == "RNTuple"
    assert muons.source["jagged"] == {"counter": "nMuon", "n_events": 1000, "collection": "Muon"}

    out = tmp_path / "muons.root"
    back = roundtrip(muons, out, columns=["Muon_*"])
    assert back.equals(muons)
    assert back.source["tree_class"] == "RNTuple"  # the source's kind (a TTree until 2026-12)
    assert np.array_equal(read_table(out, columns=["nMuon"])["nMuon"], flat["nMuon"])
    assert roundtrip(flat, tmp_path / "flat.root").equals(flat)
    as_ttree = tmp_path / "muons_ttree.root"
    write_table(muons, as_ttree, root=(None, "ttree"))
    back = read_table(as_ttree, columns=["Muon_*"])
    assert back.equals(muons) and back.source["tree_class"] == "TTree"


def test_root_selection_errors() -> None:
    src = shared(SKHEP, "uproot-HZZ.root")
    with pytest.raises(InputError, match=r"no tree 'nope'; trees: \['events'\]"):
        read_table(src, tree="nope")
    with pytest.raises(InputError, match=r"different numbers of objects.*'Jet_\*'"):
        read_table(src, columns=["Jet_*", "Muon_*"])
    with pytest.raises(InputError, match=r"mixes flat branches \['MET_px'\].*'Jet_\*'"):
        read_table(src, columns=["Jet_*", "MET_px"])
    with pytest.raises(InputError, match=r"no column matches \['jet_\*'\].*'Jet_Px'"):
        read_table(src, columns=["jet_*"])  # patterns are case-sensitive


def test_root_tree_choice_with_histograms_and_several_trees(tmp_path: Path) -> None:
    # one TTree next to TH1Ds: it is picked without naming it
    table = read_table(shared(SKHEP, "uproot-issue-750.root"))
    assert table.source["tree"] == "tout" and table.n_rows == 312

    uproot = pytest.importorskip("uproot")
    two = tmp_path / "two.root"
    with uproot.recreate(two) as f:
        f.mktree("a", {"x": "f8"}).extend({"x": np.arange(3.0)})
        f.mktree("b", {"y": "i4"}).extend({"y": np.arange(3, dtype=np.int32)})
    with pytest.raises(InputError, match=r"has 2 trees.*\['a', 'b'\]"):
        read_table(two)
    assert read_table(two, tree="b").names == ["y"]


def test_root_only_jagged_fields_needs_a_collection(tmp_path: Path) -> None:
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    src = tmp_path / "jagged_only.root"
    with uproot.recreate(src) as f:  # uproot >= 5.7 writes a dict as an RNTuple
        f["ntuple"] = {
            "Jet_pt": ak.Array([[1.0, 2.0], [], [3.0]]),
            "Jet_eta": ak.Array([[0.1, 0.2], [], [0.3]]),
        }
    if "RNTuple" not in uproot.open(src).classnames()["ntuple;1"]:
        pytest.skip("this uproot writes TTrees with a counter branch here")
    with pytest.raises(InputError, match=r"no flat numeric branches.*'Jet_\*'.*Jet \(2 branches\)"):
        read_table(src)
    table = read_table(src, columns=["Jet_*"])
    assert list(table["__event__"]) == [0, 0, 2]
    assert table.source["jagged"] == {"counter": None, "n_events": 3, "collection": "Jet"}
    back = roundtrip(table, tmp_path / "as_ttree.root", columns=["Jet_*"])
    assert back.equals(table) and back.source["jagged"]["counter"] == "nJet"


def test_root_strings_are_string_branches_and_refused_in_a_collection(tmp_path: Path) -> None:
    """A flat string column is a ROOT string branch (read back equal, non-ASCII included);
    strings inside a jagged collection (vectors of strings) are refused by name."""
    table = Table({"x": np.arange(3.0), "label": np.array(["a", "", "ü"], dtype=object)})
    back = roundtrip(table, tmp_path / "s.root")
    assert back.kind("label") == "string" and list(back["label"]) == ["a", "", "ü"]
    assert np.array_equal(back["x"], table["x"])
    jag = Table({"__event__": np.array([0, 0, 1]), "Jet_pt": np.arange(3.0),
                 "Jet_tag": np.array(["a", "b", "c"], dtype=object)},
                {"format": "root", "jagged": {"counter": None, "n_events": 2, "collection": "Jet"}})
    with pytest.raises(InputError, match=r"\['Jet_tag'\].*vectors of strings.*csv.*parquet"):
        write_table(jag, tmp_path / "j.root")


def test_root_jagged_unsorted_and_trailing_empty_events(tmp_path: Path) -> None:
    table = Table(
        {
            "__event__": np.array([0, 0, 2, 5], dtype=np.int64),
            "Jet_pt": np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
        },
        {
            "format": "root",
            "tree": "t",
            "jagged": {"counter": None, "n_events": 8, "collection": "Jet"},
        },
    )
    back = roundtrip(table, tmp_path / "j.root", columns=["Jet_*"])
    assert back.equals(table)
    assert back.source["jagged"] == {"counter": "nJet", "n_events": 8, "collection": "Jet"}


# -- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["zmumu_2304.csv", "hzz_jets.csv", "nano_ttbar_jets.csv"])
def test_csv_real_files_roundtrip(tmp_path: Path, name: str) -> None:
    src = shared(SKHEP, name)
    table = read_table(src)
    out = tmp_path / name
    back = roundtrip(table, out)
    assert back.equals(table)
    assert back.source["header_text"] == table.source["header_text"]
    assert back.source["newline"] == table.source["newline"]
    # these exports were written with repr(), so even the bytes come back
    assert out.read_bytes() == src.read_bytes()


def test_csv_zmumu_matches_root() -> None:
    csv_table = read_table(shared(SKHEP, "zmumu_2304.csv"), columns=["E1", "M", "Q1"])
    root_table = read_table(shared(SKHEP, "uproot-Zmumu.root"), columns=["E1", "M", "Q1"])
    assert csv_table.kind("Q1") == "int" and csv_table.kind("M") == "float"
    for n in ("E1", "M", "Q1"):
        assert np.array_equal(csv_table[n], root_table[n])


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_csv_quoted_fields_and_types(tmp_path: Path) -> None:
    src = write_text(
        tmp_path / "q.csv",
        'name,n,x,flag\n"a,b",1,1.5,True\n"c ""q""",2,2,False\n"multi\nline",-3,1e300,True\n',
    )
    table = read_table(src)
    assert list(table["name"]) == ["a,b", 'c "q"', "multi\nline"]
    assert dtypes(table) == {"name": "object", "n": "int64", "x": "float64", "flag": "bool"}
    back = roundtrip(table, tmp_path / "q2.csv")
    assert back.equals(table) and back.source["header_text"] == "name,n,x,flag"


def test_csv_odd_header_whitespace(tmp_path: Path) -> None:
    header = '  pt ,"eta\t", phi ,"a,b"'
    src = write_text(tmp_path / "h.csv", header + "\n1,2,3,4\n5,6,7,8\n")
    table = read_table(src)
    assert table.names == ["  pt ", "eta\t", " phi ", "a,b"]
    assert table.source["header_text"] == header
    back = roundtrip(table, tmp_path / "h2.csv")
    assert back.equals(table) and back.source["header_text"] == header
    # through TSV the header is rebuilt with quoting and the names survive
    tsv = roundtrip(table, tmp_path / "h.tsv")
    assert tsv.names == table.names and tsv.source["format"] == "tsv"


def test_csv_leading_label_column(tmp_path: Path) -> None:
    src = write_text(tmp_path / "genes.csv", ",S1,S2\n0,1.5,2\nGENE2,0,3\n1,nan,4\n")
    table = read_table(src)
    assert table.names == ["", "S1", "S2"]
    assert table.kind("") == "string" and list(table[""]) == ["0", "GENE2", "1"]
    assert dtypes(table)["S2"] == "int64"
    back = roundtrip(table, tmp_path / "genes2.csv")
    assert back.equals(table) and back.source["header_text"] == ",S1,S2"


def test_csv_crlf_newlines(tmp_path: Path) -> None:
    src = write_text(tmp_path / "crlf.csv", "a,b\r\n1,x y\r\n2,z\r\n")
    table = read_table(src)
    assert table.source["newline"] == "\r\n" and table.source["header_text"] == "a,b"
    out = tmp_path / "crlf2.csv"
    assert roundtrip(table, out).equals(table)
    assert out.read_bytes() == src.read_bytes()


def test_csv_fast_writer_matches_csv_module(tmp_path: Path) -> None:
    import csv
    import io

    table = generated()
    plain = table.select(["f64", "i64", "flag"])
    plain = Table(
        {**plain.columns, "word": np.array([f"w {i}" for i in range(table.n_rows)], dtype=object)}
    )
    for t in (plain, table):  # joined fast path, then csv.writer (the label column needs quotes)
        out = tmp_path / "w.csv"
        write_table(t, out)
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(t.names)
        cols = [  # float32: the shortest text of the float32 itself (numpy's str)
            t[n].astype(str).tolist() if t[n].dtype == np.float32 else
            [repr(v) if isinstance(v, float) else str(v) for v in t[n].tolist()] for n in t.names
        ]
        writer.writerows(zip(*cols, strict=True))
        assert out.read_bytes().decode("utf-8") == buf.getvalue()


def test_csv_utf8_bom_kept(tmp_path: Path) -> None:
    src = tmp_path / "bom.csv"
    src.write_bytes("\ufeffä,b\n1,2\n".encode())
    table = read_table(src)
    assert table.names == ["ä", "b"]
    out = tmp_path / "bom2.csv"
    assert roundtrip(table, out).equals(table) and out.read_bytes() == src.read_bytes()


def test_csv_nan_inf_and_empty_cells(tmp_path: Path) -> None:
    # c: floats with an empty cell (integers with one are refused: test_table_sweep.py)
    src = write_text(tmp_path / "nan.csv", "a,b,c\n1.5,nan,1.0\ninf,-inf,\n,2,3.0\n-0.0,NaN,4\n")
    table = read_table(src)
    assert dtypes(table) == {"a": "float64", "b": "float64", "c": "float64"}
    assert np.isnan(table["a"][2]) and np.isinf(table["a"][1]) and np.isnan(table["c"][1])
    assert np.signbit(table["a"][3])
    assert roundtrip(table, tmp_path / "nan2.csv").equals(table)


def test_csv_ragged_row_names_the_line(tmp_path: Path) -> None:
    src = write_text(tmp_path / "r.csv", "a,b\n1,2\n3\n4,5\n")
    with pytest.raises(InputError, match=r"line 3 .*expected 2, found 1"):
        read_table(src)
    # a quoted field spanning two lines shifts the physical line number
    src = write_text(tmp_path / "r2.csv", 'a,b\n"x\ny",2\n1,2,3\n')
    with pytest.raises(InputError, match=r"line 4 .*expected 2, found 3"):
        read_table(src)


def test_csv_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"the table is empty"):
        read_table(write_text(tmp_path / "header_only.csv", "a,b,c\n"))
    with pytest.raises(InputError, match=r"the table is empty"):
        read_table(write_text(tmp_path / "nothing.csv", ""))


def test_csv_columns_glob_keeps_file_order(tmp_path: Path) -> None:
    src = write_text(tmp_path / "g.csv", "E1,px1,py1,M\n1,2,3,4\n")
    assert read_table(src, columns=["M", "p?1"]).names == ["px1", "py1", "M"]
    with pytest.raises(InputError, match=r"no column matches \['zz'\].*'px1'"):
        read_table(src, columns=["zz"])


def test_txt_and_tab_extensions(tmp_path: Path) -> None:
    txt = read_table(write_text(tmp_path / "t.txt", "a\tb\n1\t2.5\n"))
    assert txt.source["format"] == "tsv" and txt.names == ["a", "b"]
    comma = read_table(write_text(tmp_path / "c.txt", "a,b\n1,2.5\n"))
    assert comma.source["format"] == "csv"
    out = tmp_path / "c2.txt"
    assert roundtrip(comma, out).equals(comma) and out.read_text() == "a,b\n1,2.5\n"
    assert read_table(write_text(tmp_path / "t.tab", "a\tb\n1\t2\n")).names == ["a", "b"]


# -- NumPy -----------------------------------------------------------------------------


def baler_files() -> list[Path]:
    return sorted(BALER.glob("*.npz")) if BALER.is_dir() else []


@pytest.mark.skipif(not baler_files(), reason=f"Baler example files absent from {BALER}")
@pytest.mark.parametrize("src", baler_files(), ids=lambda p: p.name)
def test_baler_npz_roundtrip_bit_exact(tmp_path: Path, src: Path) -> None:
    table = read_table(src)
    original = np.load(src, allow_pickle=False)
    assert table.n_rows == original["data"].shape[0]
    assert table.names[:2] == ["c0", "c1"]
    out = tmp_path / src.name
    back = roundtrip(table, out)
    assert back.equals(table)
    written = np.load(out, allow_pickle=False)
    assert written.files == original.files
    for key in original.files:
        a, b = original[key], written[key]
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert written["names"].size == 0
    # .npy keeps the original N-D shape too
    npy = tmp_path / "data.npy"
    write_table(table, npy)
    assert np.load(npy).shape == original["data"].shape
    assert np.load(npy).tobytes() == original["data"].tobytes()


def test_npy_shapes(tmp_path: Path) -> None:
    cube = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    np.save(tmp_path / "cube.npy", cube)
    table = read_table(tmp_path / "cube.npy")
    assert table.n_rows == 4 and table.n_columns == 6 and table.source["shape"] == [4, 3, 2]
    write_table(table, tmp_path / "cube2.npy")
    assert np.array_equal(np.load(tmp_path / "cube2.npy"), cube)

    np.save(tmp_path / "vec.npy", np.linspace(0, 1, 5))
    vec = read_table(tmp_path / "vec.npy")
    assert vec.names == ["c0"]
    write_table(vec, tmp_path / "vec2.npy")
    assert np.load(tmp_path / "vec2.npy").shape == (5,)


def test_npz_named_and_per_column_layouts(tmp_path: Path) -> None:
    np.savez(tmp_path / "named.npz", data=np.eye(3), names=np.array(["x", "y", "z"]))
    named = read_table(tmp_path / "named.npz")
    assert named.names == ["x", "y", "z"]
    assert roundtrip(named, tmp_path / "named2.npz").equals(named)
    assert np.load(tmp_path / "named2.npz")["names"].dtype.kind == "U"

    np.savez(tmp_path / "cols.npz", a=np.arange(3), b=np.array([0.5, 1, 2], dtype=np.float32))
    cols = read_table(tmp_path / "cols.npz")
    assert dtypes(cols) == {"a": "int64", "b": "float32"}
    assert roundtrip(cols, tmp_path / "cols2.npz").equals(cols)

    np.savez(tmp_path / "bad.npz", a=np.arange(3), b=np.arange(4))
    with pytest.raises(InputError, match=r"different lengths"):
        read_table(tmp_path / "bad.npz")


def _object_npy_bytes() -> bytes:
    """An .npy whose header declares an object array (the payload a pickle would follow).

    Built by hand so the test itself never pickles anything.
    """
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (2,)}
    )
    return buf.getvalue() + b"\x80\x04not-a-real-pickle."


def test_npy_npz_refuse_pickles(tmp_path: Path) -> None:
    import zipfile

    (tmp_path / "obj.npy").write_bytes(_object_npy_bytes())
    with pytest.raises(InputError, match=r"obj\.npy.*pickled object array"):
        read_table(tmp_path / "obj.npy")
    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as z:
        buf = _np_bytes(np.eye(2))
        z.writestr("data.npy", buf)
        z.writestr("names.npy", _object_npy_bytes())
    with pytest.raises(InputError, match=r"'names' holds a pickled object array"):
        read_table(tmp_path / "obj.npz")


def _np_bytes(arr: np.ndarray) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def test_npy_write_needs_one_dtype(tmp_path: Path) -> None:
    table = Table({"a": np.arange(3), "b": np.arange(3.0)})
    with pytest.raises(InputError, match=r"mixed dtypes.*npz"):
        write_table(table, tmp_path / "m.npy")


# -- Parquet ---------------------------------------------------------------------------


def test_parquet_refuses_nested(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    nested = pa.table({"x": [1.0, 2.0], "hits": [[1, 2], [3]]})
    pq.write_table(nested, tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"'hits' is nested"):
        read_table(tmp_path / "n.parquet")
    assert read_table(tmp_path / "n.parquet", columns=["x"]).names == ["x"]


# -- every format ----------------------------------------------------------------------


def generated() -> Table:
    rng = np.random.default_rng(7)
    n = 50
    f64 = rng.normal(size=n) * 1e3
    f64[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return Table(
        {
            "f64": f64,
            "f32": rng.normal(size=n).astype(np.float32),
            "i64": rng.integers(-(2**40), 2**40, size=n),
            "i32": rng.integers(-1000, 1000, size=n).astype(np.int32),
            "u8": rng.integers(0, 255, size=n).astype(np.uint8),
            "flag": rng.random(n) < 0.5,
            "label": np.array([f"s{i}" if i % 3 else f'q,"{i}"\t' for i in range(n)], dtype=object),
        },
        {"format": "generated"},
    )


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".npy", ".npz", ".parquet", ".root"])
def test_generated_table_through_every_format(tmp_path: Path, ext: str) -> None:
    if ext == ".parquet":
        pytest.importorskip("pyarrow")
    table = generated()
    if ext == ".root":
        table = table.select([n for n in table.names if n != "label"])
    if ext == ".npy":
        table = table.select(["f64"])
        table = Table({"a": table["f64"], "b": table["f64"][::-1].copy()})
    out = tmp_path / f"gen{ext}"
    back = roundtrip(table, out)
    if ext in (".npz", ".parquet", ".root"):
        assert back.equals(table)
    elif ext == ".npy":  # names are not stored in .npy
        assert back.names == ["c0", "c1"]
        assert back.equals(Table({"c0": table["a"], "c1": table["b"]}))
    else:  # text widens small ints -> int64 and floats -> float64, values unchanged; a
        # float32 is written as its own shortest text (0.12), the same float32 again
        assert back["f32"].dtype == np.float64
        np.testing.assert_array_equal(back["f32"].astype(np.float32), table["f32"])
        widened = {
            n: back[n] if n == "f32" else
            a.astype(np.float64 if a.dtype.kind == "f" else np.int64)
            if a.dtype.kind in "fiu"
            else a
            for n, a in table.columns.items()
        }
        assert back.equals(Table(widened))
        again = tmp_path / f"again{ext}"
        write_table(back, again)
        assert again.read_bytes() == out.read_bytes()


# -- dispatcher ------------------------------------------------------------------------


def test_bad_paths_and_extensions(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(InputError, match=r"no such file: .*missing\.csv"):
        read_table(missing)
    odd = write_text(tmp_path / "table.xlsx", "a\n1\n")
    with pytest.raises(InputError, match=r"unsupported file extension \.xlsx; tables are read from .*\.csv"):
        read_table(odd)
    with pytest.raises(InputError, match=r"\.xlsx"):
        write_table(Table({"a": np.arange(2)}), tmp_path / "out.xlsx")
    assert read_table(odd, fmt="csv").names == ["a"]
    with pytest.raises(InputError, match=r"tree name only applies to ROOT"):
        read_table(write_text(tmp_path / "x.csv", "a\n1\n"), tree="events")
    assert ".root" in SUPPORTED_INPUT and ".parquet" in SUPPORTED_OUTPUT


def test_no_pickle_in_sources() -> None:
    from balerc.formats import tableio

    root = Path(tableio.__file__).parent
    for name in ("io_csv.py", "io_root.py", "io_numpy.py", "io_parquet.py", "tableio.py"):
        text = (root / name).read_text()
        assert "allow_pickle=True" not in text and "import pickle" not in text


def test_npz_layout_follows_dtypes(tmp_path: Path) -> None:
    # one shared dtype: Baler's data + names; mixed dtypes: one array per column
    write_table(Table({"a": np.arange(3), "b": np.arange(3)}), tmp_path / "one.npz")
    with zipfile.ZipFile(tmp_path / "one.npz") as zf:
        assert zf.namelist() == ["data.npy", "names.npy"]
    write_table(Table({"a": np.arange(3), "file": np.arange(3.0)}), tmp_path / "mixed.npz")
    with zipfile.ZipFile(tmp_path / "mixed.npz") as zf:
        assert zf.namelist() == ["a.npy", "file.npy"]
