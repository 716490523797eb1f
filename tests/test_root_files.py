"""Whole ROOT files through `balerc compress` / `decompress`: what a ROOT sweep found
(2026-12-02). Nothing is dropped or overwritten silently, damaged input is a one-line
error naming the file, and a tree of flat branches comes back like any other tree: its
title, kind and compression, with --root-compression and --root-format honoured."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from balerc.cli.main import cli
from balerc.codec.api import compress_file, decompress_file
from balerc.codec.pipeline import read_container
from balerc.formats.errors import InputError
from balerc.formats.root_writers import SkippedBranchWarning
from balerc.formats.stream import open_input
from balerc.formats.table import Table
from balerc.formats.tableio import pattern_matches, read_table, write_table


def run(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


def _flat_tree(path: Path, n: int = 2000, **file_kw: object) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    cols = {"x": rng.normal(size=n), "k": rng.integers(0, 9, n).astype(np.int32),
            "f": rng.normal(size=n).astype(np.float32)}
    with uproot.recreate(path, **file_kw) as f:
        f.mktree("t", {c: a.dtype for c, a in cols.items()}, title="flat tree title")
        f["t"].extend(cols)
        f["h"] = np.histogram(cols["x"])
    return cols


def test_array_element_names_that_clash_are_refused(tmp_path: Path) -> None:
    """`arr[0]` next to the array `arr` had been overwritten by it (lossless, exit 0)."""
    rng = np.random.default_rng(3)
    clash, nested = tmp_path / "clash.root", tmp_path / "nested.root"
    with uproot.recreate(clash) as f:
        f.mktree("t", {"arr": (np.float64, (2,)), "arr[0]": "f8"})
        f["t"].extend({"arr": rng.normal(size=(20, 2)), "arr[0]": np.full(20, 42.0)})
    with uproot.recreate(nested) as f:
        f.mktree("t", {"a": (np.float64, (2, 2)), "a[0]": (np.float64, (2,))})
        f["t"].extend({"a": rng.normal(size=(20, 2, 2)), "a[0]": rng.normal(size=(20, 2))})
    with pytest.raises(InputError, match=r"branch 'arr\[0\]' has the name of an element of "
                                         r"the fixed-size array 'arr'"):
        open_input(clash)
    with pytest.raises(InputError, match=r"array branch 'a\[0\]' ends in an index"):
        open_input(nested)
    stream = open_input(clash, columns=["arr"])  # one of them, as the message says
    out = tmp_path / "a.balerc"
    compress_file(stream, out, lossless=True)
    back = decompress_file(out, tmp_path / "a.root")
    assert back.n_rows == 20
    with uproot.open(tmp_path / "a.root") as f:
        np.testing.assert_array_equal(f["t"]["arr"].array(library="np"),
                                      uproot.open(clash)["t"]["arr"].array(library="np"))


def test_selectors_take_names_as_they_are_and_arrays_by_name() -> None:
    names = ["x[1]", "x1", "arr", "arr[0]", "v[0]", "v[1]", "w[0][1]", "Jet_pt", "jet_pt"]
    assert pattern_matches(names, "x[1]") == ["x[1]"]  # as it is, not also x1
    assert pattern_matches(names, "x?") == ["x1"] and pattern_matches(names, "x[2]") == []
    assert pattern_matches(names, "arr") == ["arr"]  # the branch where it exists
    assert pattern_matches(names, "v") == ["v[0]", "v[1]"]  # else the array's elements
    assert pattern_matches(names, "w*") == ["w[0][1]"]
    assert pattern_matches(names, "Jet_*") == ["Jet_pt"]
    assert pattern_matches(names, "v[*]") == ["v[0]", "v[1]"]  # brackets literal, not a class
    assert pattern_matches(names, "w[0]*") == ["w[0][1]"]
    assert pattern_matches(["x", "e"], "x[1]") == ["x"]  # only branches: the array itself


def test_array_bounds_and_columns_by_the_array_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    src = tmp_path / "arr.root"
    with uproot.recreate(src) as f:
        f.mktree("t", {"x": "f8", "v": (np.float32, (3,)), "J": "var * float32"})
        f["t"].extend({"x": rng.normal(size=50), "v": rng.normal(size=(50, 3)).astype("f4"),
                       "J": ak.unflatten(rng.normal(size=50).astype("f4"), np.ones(50, int))})
    code, out = run("compress", src, "-o", tmp_path / "a.balerc", "--error-bound", "rel:1e-3",
                    "--error-bound", "v=lossless", "-q")
    assert code == 0, out
    code, out = run("decompress", tmp_path / "a.balerc", "--sections", "events", "--columns",
                    "v[1]", "-o", tmp_path / "v1.npz", "-q")
    assert code == 0, out
    with uproot.open(src) as f:
        v = f["t"]["v"].array(library="np")
    back = read_table(tmp_path / "v1.npz")
    assert back.names == ["v[1]"]
    np.testing.assert_array_equal(back["v[1]"], v[:, 1])  # lossless, as the rule says


def test_a_header_no_reader_accepts_is_refused_before_writing(tmp_path: Path) -> None:
    """A 4,097-character column name had made a file that info and decompress refused."""
    out = tmp_path / "long.balerc"
    with pytest.raises(InputError, match=r"readers would refuse its header .*4,097 characters"):
        compress_file(Table({"L" * 4097: np.arange(5.0)}), out, lossless=True)
    assert not out.exists()


def _damaged(src: Path, dst: Path, at: float) -> Path:
    data = bytearray(src.read_bytes())
    start = int(len(data) * at)
    data[start:start + len(data) // 10] = bytes(len(data) // 10)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("jagged", [False, True])
def test_damaged_or_truncated_root_files_are_one_line_input_errors(tmp_path: Path,
                                                                   jagged: bool) -> None:
    """A zeroed basket had been 'internal error ... this is a bug in balerc' (exit 3); a
    flat TTree (streamed as a table) and an RNTuple with a collection (sections)."""
    rng = np.random.default_rng(6)
    src = tmp_path / "src.root"
    n = 20_000
    branches = {"x": rng.normal(size=n), "y": rng.normal(size=n)}
    if jagged:
        branches["J"] = ak.unflatten(rng.normal(size=2 * n), np.full(n, 2))
    with uproot.recreate(src) as f:
        if jagged:
            f["t"] = branches  # uproot 5.7: an RNTuple
        else:
            f.mktree("t", {k: v.dtype for k, v in branches.items()}).extend(branches)
    bad = _damaged(src, tmp_path / "bad.root", 0.5)
    short = tmp_path / "short.root"
    short.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    text = tmp_path / "text.root"
    text.write_text("a,b\n1,2\n")
    for path in (bad, short, text):
        code, out = run("compress", path, "-o", tmp_path / "o.balerc", "--lossless", "-q")
        assert code == 2, (path.name, out)
        line = out.strip()
        assert "\n" not in line and str(path) in line and "Traceback" not in line, line
        assert "damaged, truncated or not ROOT" in line, line


def test_a_flat_tree_keeps_title_kind_compression_and_other_objects(tmp_path: Path) -> None:
    src = tmp_path / "flat.root"
    cols = _flat_tree(src, compression=uproot.LZMA(2))
    with pytest.warns(SkippedBranchWarning, match=r"other objects not stored: h \(TH1D\)"):
        stream = open_input(src)
    compress_file(stream, tmp_path / "f.balerc", lossless=True)
    source = read_container(tmp_path / "f.balerc").source
    assert source["other_objects"] == [{"name": "h", "class": "TH1D"}]
    assert source["path"] == "flat.root"  # the name, not the writer's directory
    outs = {"same": {}, "none": {"root_compression": "none"},
            "zstd": {"root_compression": "zstd:5"}, "rntuple": {"root_format": "rntuple"}}
    for name, kw in outs.items():
        decompress_file(tmp_path / "f.balerc", tmp_path / f"{name}.root", **kw)
    for name in outs:
        with uproot.open(tmp_path / f"{name}.root") as f:
            kind = f.classnames()["t;1"]
            tree = f["t"]
            assert kind == ("ROOT::RNTuple" if name == "rntuple" else "TTree"), name
            title = tree.description if name == "rntuple" else tree.title
            assert title == "flat tree title", name
            for c, a in cols.items():
                np.testing.assert_array_equal(tree[c].array(library="np"), a)
            expect = {"same": uproot.LZMA(2), "none": None, "zstd": uproot.ZSTD(5),
                      "rntuple": uproot.LZMA(2)}[name]
            assert repr(f.file.compression) == repr(expect), name


def test_root_options_on_another_output_are_said_not_ignored(tmp_path: Path) -> None:
    src = tmp_path / "flat.root"
    _flat_tree(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedBranchWarning)
        compress_file(open_input(src), tmp_path / "f.balerc", lossless=True)
    with pytest.warns(UserWarning, match=r"apply to .root outputs only"):
        decompress_file(tmp_path / "f.balerc", tmp_path / "f.csv", root_compression="zstd:5")
    with pytest.raises(InputError, match=r"--root-compression 'zip:5'"):
        decompress_file(tmp_path / "f.balerc", tmp_path / "g.root", root_compression="zip:5")
    assert not (tmp_path / "g.root").exists()


def test_directories_are_not_other_objects_and_empty_flat_trees_round_trip(
        tmp_path: Path) -> None:
    src = tmp_path / "dir.root"
    with uproot.recreate(src) as f:
        f["d1/sub/t"] = {"a": np.arange(3.0)}
        f.mktree("empty", {"a": "f8", "b": "i4"})
    with pytest.warns(SkippedBranchWarning) as said:
        stream = open_input(src, tree="d1/sub/t")
    assert [str(w.message).split(": ", 1)[1] for w in said] == [
        "other objects not stored: empty (TTree)"]  # d1, d1/sub held the tree: not objects
    assert stream.source["other_objects"] == [{"name": "empty", "class": "TTree"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedBranchWarning)
        empty = open_input(src, tree="empty")
    compress_file(empty, tmp_path / "e.balerc", lossless=True)
    back = decompress_file(tmp_path / "e.balerc", tmp_path / "e.root")
    assert back.n_rows == 0
    with uproot.open(tmp_path / "e.root") as f:
        assert f["empty"].num_entries == 0 and set(f["empty"].keys()) == {"a", "b"}


def _fixed(path: Path, n: int = 300) -> None:
    rng = np.random.default_rng(3)
    with uproot.recreate(path) as f:
        f.mktree("t", {"x": ("f4", (3,)), "e": np.int64})
        f["t"].extend({"x": rng.normal(size=(n, 3)).astype("f4"), "e": np.arange(n)})
        f["h"] = np.histogram(rng.normal(size=10))


def test_part_of_an_array_is_not_written_to_root(tmp_path: Path) -> None:
    """--columns 'x[1]' to .root had packed three events' x[1] into one row of x[3]
    (100 entries for 300 events), or failed to reshape (exit 3)."""
    src = tmp_path / "fixed.root"
    _fixed(src)
    out = tmp_path / "f.balerc"
    assert run("compress", src, "-o", out, "--lossless", "-q")[0] == 0
    code, text = run("decompress", out, "-o", tmp_path / "x1.root", "--columns", "x[1]")
    assert code == 2 and "'x' [3] is only partly selected (x[1])" in text, text
    assert not (tmp_path / "x1.root").exists()
    assert run("decompress", out, "-o", tmp_path / "x1.csv", "--columns", "x[1]", "-q")[0] == 0
    code, text = run("decompress", out, "-o", tmp_path / "x.root", "--columns", "x", "-q")
    assert code == 0, text
    with uproot.open(src) as a, uproot.open(tmp_path / "x.root") as b:
        np.testing.assert_array_equal(a["t"]["x"].array(library="np"),
                                      b["t"]["x"].array(library="np"))
    code, text = run("info", out)
    assert "objects NOT stored: h (TH1D)" in text  # a flat tree's, too
    from balerc.cli.analysis.evaluate import _only_section

    assert _only_section(out) == "events"  # evaluate needs no --section for it
    code, text = run("decompress", out, "-o", "-", "--columns", "e", "-q")
    assert code == 0 and text.split()[:3] == ["e", "0", "1"], text  # the section with e


def test_tree_option_and_specs_reach_every_input(tmp_path: Path) -> None:
    """--tree had been ignored with several inputs or --output-dir; FILE:dir/tree and
    GLOB:TREE had not been understood."""
    from balerc.codec.many import split_spec

    for name in ("two.root", "two2.root"):
        with uproot.recreate(tmp_path / name) as f:
            f.mktree("a", {"u": np.float64}).extend({"u": np.arange(300.0)})
            f.mktree("d/b", {"w": np.float32}).extend({"w": np.ones(50, "f4")})
    code, text = run("compress", tmp_path / "two.root", tmp_path / "two2.root", "--tree", "a",
                     "--output-dir", tmp_path / "od", "--lossless")
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "od").iterdir()) == ["two.a.balerc",
                                                                    "two2.a.balerc"]
    assert split_spec(f"{tmp_path}/two.root:d/b") == (f"{tmp_path}/two.root", "d/b")
    assert split_spec(f"{tmp_path}/two*.root:a") == (f"{tmp_path}/two*.root", "a")
    assert split_spec(f"{tmp_path}/nothing*.root:a") == (f"{tmp_path}/nothing*.root:a", None)
    code, text = run("compress", f"{tmp_path}/two*.root:d/b", "--output-dir",
                     tmp_path / "od2", "--lossless")
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "od2").iterdir()) == ["two.d_b.balerc",
                                                                     "two2.d_b.balerc"]


def test_ratio_against_the_source_only_for_the_whole_file(tmp_path: Path) -> None:
    src = tmp_path / "flat.root"
    _flat_tree(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedBranchWarning)
        whole = open_input(src)  # a histogram besides the tree: not the whole file either
        part = open_input(src, columns=["x"])
    assert "size" not in whole.source and "size" not in part.source
    lone = tmp_path / "lone.root"
    with uproot.recreate(lone) as f:
        f.mktree("t", {"x": "f8"}).extend({"x": np.arange(10.0)})
    assert open_input(lone).source["size"] == lone.stat().st_size
    assert "size" not in open_input(lone, columns=["x"]).source


def test_a_flat_table_reads_and_writes_fixed_size_arrays(tmp_path: Path) -> None:
    """read_table (compare, train, evaluate's DATA) had refused fixed-size arrays that
    compress stores as x[0], x[1], ...; a table of them goes back as the array branch."""
    src = tmp_path / "fixed.root"
    _fixed(src)
    t = read_table(src)
    assert t.names == ["x[0]", "x[1]", "x[2]", "e"]
    write_table(t, tmp_path / "back.root")
    with uproot.open(src) as a, uproot.open(tmp_path / "back.root") as b:
        assert b["t"]["x"].typename == "float[3]"
        np.testing.assert_array_equal(a["t"]["x"].array(library="np"),
                                      b["t"]["x"].array(library="np"))


def test_an_empty_tree_reports_no_ratio(tmp_path: Path) -> None:
    """It said '0.00x vs raw (65.30x vs the input file), 0 MB/s'."""
    src = tmp_path / "empty.root"
    with uproot.recreate(src) as f:
        f.mktree("t", {"a": "f8"})
    code, text = run("compress", src, "-o", tmp_path / "e.balerc", "--lossless")
    assert code == 0 and "wrote" in text and "0 events in 1 sections" in text, text
    assert "x vs" not in text and "MB/s" not in text, text
