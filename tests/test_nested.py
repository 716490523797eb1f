"""Nested vectors and vectors of strings: carried in chained sections, back to ROOT
(issue 12: every branch of the tree is in the file, never dropped)."""

from __future__ import annotations

import types
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from balerc.cli.main import cli
from balerc.codec.options import CompressOptions
from balerc.codec.sections import compress_sections, iter_sections, read_sections
from balerc.formats import container
from balerc.formats.container import CHAINED_FEATURE, ContainerReader
from balerc.formats.errors import InputError, UnsupportedFeatureError
from balerc.formats.io_root import _classify_ttree
from balerc.formats.root_sections import SkippedBranchWarning, open_root_sections
from balerc.formats.root_writers import write_root_sections
from balerc.formats.sections import Sections, SectionStream
from balerc.formats.table import Table, concat
from conftest import shared_file

EVENTS = 300
NESTED = ("hits", "hit_ids")
MUONS = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"


def run(*args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def crafted_arrays(n: int = EVENTS, seed: int = 3) -> dict[str, ak.Array]:
    """Flat, fixed-size array, jagged, nested (float32 and int32) and string-vector
    fields, with empty
    events, events without inner lists and empty inner lists."""
    rng = np.random.default_rng(seed)
    jets = rng.integers(0, 4, n)
    jets[:3] = 0
    outer = rng.integers(0, 4, n)
    outer[[0, 5, n - 1]] = 0
    inner = rng.integers(0, 5, int(outer.sum()))
    inner[:2] = 0
    values = rng.normal(0, 50, int(inner.sum())).astype(np.float32)
    ids = rng.integers(-1000, 1000, int(inner.sum())).astype(np.int32)
    words = rng.integers(0, 3, n)
    text = np.array([("é" if i % 5 == 0 else "w") * (i % 4) for i in range(int(words.sum()))])
    return {"run": np.arange(n, dtype=np.int64), "x": rng.normal(size=n).astype(np.float32),
            "cov": rng.normal(size=(n, 2, 3)).astype(np.float32),
            "Jet_pt": ak.unflatten(rng.exponential(30, int(jets.sum())).astype(np.float32),
                                   jets),
            "Jet_id": ak.unflatten(rng.integers(0, 9, int(jets.sum())).astype(np.int32), jets),
            "hits": ak.unflatten(ak.unflatten(values, inner), outer),
            "hit_ids": ak.unflatten(ak.unflatten(ids, inner), outer),
            "tags": ak.unflatten(text, words)}


@pytest.fixture
def nested_root(tmp_path: Path) -> Path:
    path = tmp_path / "nested.root"
    with uproot.recreate(path) as f:  # uproot cannot write nested vectors into a TTree
        f.mkrntuple("Events", ak.zip(crafted_arrays(), depth_limit=1))
    return path


def ntuple(path: Path) -> ak.Array:
    f = uproot.open(path)
    assert f.classnames() == {"Events;1": "ROOT::RNTuple"}
    return f["Events"].arrays()


def within(a: ak.Array, b: ak.Array, bound: float) -> bool:
    """Same structure at every level, values within `bound` (absolute)."""
    depth = a.ndim
    for axis in range(1, depth):
        flat_a = ak.flatten(a, axis=axis - 1) if axis > 1 else a
        flat_b = ak.flatten(b, axis=axis - 1) if axis > 1 else b
        if not ak.all(ak.num(flat_a, axis=1) == ak.num(flat_b, axis=1)):
            return False
    x = np.asarray(ak.flatten(a, axis=None), dtype=np.float64)
    y = np.asarray(ak.flatten(b, axis=None), dtype=np.float64)
    return bool(np.all(np.abs(x - y) <= bound))


# -- through the CLI -------------------------------------------------------------------------
def test_lossless_round_trip_through_the_cli(tmp_path: Path, nested_root: Path) -> None:
    run("compress", nested_root, "-o", tmp_path / "x.balerc", "--lossless", "-q")
    run("decompress", tmp_path / "x.balerc", "-o", tmp_path / "back.root", "-q")
    a, b = ntuple(nested_root), ntuple(tmp_path / "back.root")
    assert b.fields == a.fields and str(b.type) == str(a.type)
    assert ak.array_equal(a, b)
    for name in NESTED:
        assert ak.to_numpy(ak.flatten(b[name], axis=None)).tobytes() == \
            ak.to_numpy(ak.flatten(a[name], axis=None)).tobytes()
    with ContainerReader(tmp_path / "x.balerc") as r:
        assert CHAINED_FEATURE in r.header["required_features"]
        names = [s["name"] for s in r.sections]
    assert names == ["events", "Jet", "__lists__/hits", "__values__/hits",
                     "__lists__/hit_ids", "__values__/hit_ids", "__values__/tags"]


def test_float_bound_holds_on_nested_values(tmp_path: Path, nested_root: Path) -> None:
    run("compress", nested_root, "-o", tmp_path / "x.balerc", "--error-bound", "abs:0.05",
        "--error-bound", "hits=abs:1e-3", "-q")
    run("decompress", tmp_path / "x.balerc", "-o", tmp_path / "back.root", "-q")
    a, b = ntuple(nested_root), ntuple(tmp_path / "back.root")
    assert b.fields == a.fields and str(b.type) == str(a.type)
    assert within(a["hits"], b["hits"], 1e-3)
    assert not ak.array_equal(a["hits"], b["hits"])  # lossy indeed
    assert within(a["x"], b["x"], 0.05) and within(a["Jet_pt"], b["Jet_pt"], 0.05)
    assert within(a["cov"], b["cov"], 0.05)
    for exact in ("run", "Jet_id", "hit_ids", "tags"):
        assert ak.array_equal(a[exact], b[exact]), exact
    with ContainerReader(tmp_path / "x.balerc") as r:
        column = r.section("__values__/hits").header["schema"]["columns"][0]
    assert column["name"] == "hits" and column["bound"] == "abs:0.001"


def test_info_lists_the_nested_branches(tmp_path: Path, nested_root: Path) -> None:
    run("compress", nested_root, "-o", tmp_path / "x.balerc", "--lossless", "-q")
    info = run("info", tmp_path / "x.balerc")
    assert ("nested branches in chained sections: hits (nested: events -> __lists__/hits -> "
            "__values__/hits)") in info
    assert "tags (jagged-string: events -> __values__/tags)" in info
    assert "counted by __values__/hits of section __lists__/hits" in info


def test_ttree_output_names_what_it_leaves_out(tmp_path: Path, nested_root: Path) -> None:
    run("compress", nested_root, "-o", tmp_path / "x.balerc", "--lossless", "-q")
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "x.balerc"), "-o",
                                   str(tmp_path / "t.root"), "--root-format", "ttree", "-q"])
    assert res.exit_code == 0
    assert "warning" in res.output and "hits, hit_ids, tags" in res.output
    assert "--root-format rntuple" in res.output and ".to_awkward('hits')" in res.output
    t = uproot.open(tmp_path / "t.root")["Events"]
    assert t.keys() == ["run", "x", "cov", "nJet", "Jet_pt", "Jet_id"]
    assert t["cov"].typename == "float[2][3]"
    back = read_sections(tmp_path / "x.balerc")
    a = ntuple(nested_root)
    for name in ("hits", "hit_ids", "tags", "Jet_pt", "x"):
        assert ak.array_equal(back.to_awkward(name), a[name]), name


def test_a_ttree_source_with_nested_branches(tmp_path: Path) -> None:
    """uproot cannot write such a TTree, so the Sections are made as a TTree would give
    them: written back as a TTree the nested branches are named in a warning; as an
    RNTuple everything is there."""
    stream = open_root_sections(_write_ntuple(tmp_path / "n.root"))
    whole = next(stream.steps(EVENTS))
    tree = Sections(whole.tables, whole.layouts, dict(whole.source, tree_class="TTree"))
    with pytest.warns(SkippedBranchWarning, match=r"hits, hit_ids, tags .*rntuple"):
        write_root_sections(tree, tmp_path / "t.root")
    assert uproot.open(tmp_path / "t.root")["Events"].keys()[-1] == "Jet_id"
    write_root_sections(tree, tmp_path / "r.root", root_format="rntuple")
    assert ak.array_equal(ntuple(tmp_path / "r.root"), ntuple(tmp_path / "n.root"))


def _write_ntuple(path: Path) -> Path:
    with uproot.recreate(path) as f:
        f.mkrntuple("Events", ak.zip(crafted_arrays(), depth_limit=1))
    return path


def test_ttree_nested_vectors_are_classified_as_carried() -> None:
    from uproot.containers import AsString, AsVector

    def branch(model: object, typename: str) -> types.SimpleNamespace:
        b = types.SimpleNamespace(file=None, typename=typename)
        b.interpretation = uproot.AsObjects(model, b)
        return b

    tree = {"vv": branch(AsVector(True, AsVector(False, np.dtype(">f4"))),
                         "std::vector<std::vector<float>>"),
            "vs": branch(AsVector(True, AsString(False)), "std::vector<std::string>"),
            "vvv": branch(AsVector(True, AsVector(False, AsVector(False, np.dtype(">i4")))),
                          "std::vector<std::vector<std::vector<int>>>")}
    fields = {f.name: f for f in _classify_ttree(types.SimpleNamespace(items=tree.items),
                                                 uproot)}
    assert fields["vv"].kind == "nested" and fields["vv"].dtype == np.float32
    assert fields["vs"].kind == "jagged-string"
    assert fields["vvv"].kind == "other" and "vector<int>" in fields["vvv"].detail


# -- reading by events -----------------------------------------------------------------------
@pytest.fixture
def small_chunks(tmp_path: Path, nested_root: Path) -> tuple[Path, Sections]:
    """The crafted tree in chunks of 64 rows: chains cross chunk boundaries."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream = open_root_sections(nested_root)
    whole = next(stream.steps(EVENTS))
    path = tmp_path / "small.balerc"
    compress_sections(SectionStream.of(whole), path,
                      CompressOptions(lossless=True, chunk_rows=64, threads=2))
    return path, whole


@pytest.mark.parametrize("step", [1, 7, 64, 1000])
def test_iter_sections_by_events_matches_the_one_shot_read(small_chunks: tuple[Path, Sections],
                                                           step: int) -> None:
    path, whole = small_chunks
    once = read_sections(path)
    for name in whole.names:
        assert once[name].equals(whole[name]), name
    steps = list(iter_sections(path, step_events=step))
    assert len(steps) == -(-EVENTS // step)
    for k, part in enumerate(steps):
        part.check()
        expected = once.event_slice(k * step, (k + 1) * step)
        for name in once.names:
            assert part[name].equals(expected[name]), (k, name)
    for name in once.names:
        assert concat([p[name] for p in steps]).equals(once[name]), name
    for branch in ("hits", "hit_ids", "tags"):
        joined = ak.concatenate([p.to_awkward(branch) for p in steps])
        assert ak.array_equal(joined, once.to_awkward(branch)), branch


def test_selecting_a_nested_branch_brings_its_chain(small_chunks: tuple[Path, Sections]) -> None:
    path, whole = small_chunks
    part = read_sections(path, columns=["hits"])
    assert part.names == ["events", "__lists__/hits", "__values__/hits"]
    assert part["events"].names == ["__lists__/hits"]
    assert ak.array_equal(part.to_awkward("hits"), whole.to_awkward("hits"))
    steps = list(iter_sections(path, sections=["__values__/hits"], step_events=50))
    assert ak.array_equal(ak.concatenate([s.to_awkward("hits") for s in steps]),
                          whole.to_awkward("hits"))


def test_a_damaged_values_chunk_keeps_whole_events(tmp_path: Path,
                                                   small_chunks: tuple[Path, Sections]) -> None:
    path, whole = small_chunks
    with ContainerReader(path) as r:
        k = [s["name"] for s in r.sections].index("__values__/hits")
        chunk = [c for c in r.chunks if c.section == k][3]
    data = bytearray(path.read_bytes())
    data[chunk.end - 5] ^= 0xFF  # inside its last stream's payload
    (tmp_path / "bad.balerc").write_bytes(bytes(data))
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "bad.balerc"), "-o",
                                   str(tmp_path / "x.root")])
    assert res.exit_code == 2
    with pytest.warns(UserWarning, match="recovered"):
        back = read_sections(tmp_path / "bad.balerc", recover=True)
    n = back.n_events
    assert 0 < n < EVENTS
    assert back["__values__/hits"].n_rows <= 3 * 64
    back.check()
    cut = whole.event_slice(0, n)
    for name in whole.names:
        assert back[name].equals(cut[name]), name
    # the next event's values were (partly) lost: keeping it would misalign the tree
    assert whole.event_slice(0, n + 1)["__values__/hits"].n_rows > back["__values__/hits"].n_rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run("decompress", tmp_path / "bad.balerc", "-o", tmp_path / "x.root", "--recover", "-q")
    assert ak.array_equal(ntuple(tmp_path / "x.root")["hits"],
                          ntuple(path.parent / "nested.root")["hits"][:n])


# -- the format ------------------------------------------------------------------------------
def test_readers_without_chains_refuse_by_feature_name(small_chunks: tuple[Path, Sections]
                                                       ) -> None:
    path, _ = small_chunks
    container._KNOWN_FEATURES.discard(CHAINED_FEATURE)
    try:
        with pytest.raises(UnsupportedFeatureError, match=CHAINED_FEATURE):
            read_sections(path)
    finally:
        container.accept_features([CHAINED_FEATURE])


def test_files_without_nested_branches_do_not_require_the_feature(tmp_path: Path) -> None:
    from balerc.formats.toy_nano import nanoaod_like

    compress_sections(SectionStream.of(nanoaod_like(200, 2)), tmp_path / "t.balerc",
                      CompressOptions(lossless=True))
    with ContainerReader(tmp_path / "t.balerc") as r:
        assert CHAINED_FEATURE not in r.header["required_features"]


def test_counter_chains_that_loop_or_dangle_are_refused() -> None:
    t = Table({"c": np.array([1], dtype=np.int32)})
    events = Table({"n": np.array([1], dtype=np.int32)})
    loop = Sections({"events": events, "a": t, "b": t},
                    {"events": {"kind": "events"},
                     "a": {"kind": "collection", "counter": "c", "counter_section": "b"},
                     "b": {"kind": "collection", "counter": "c", "counter_section": "a"}})
    with pytest.raises(InputError, match="loop"):
        loop.event_slice(0, 1)
    dangling = Sections({"events": events, "a": t},
                        {"events": {"kind": "events"},
                         "a": {"kind": "collection", "counter": "c", "counter_section": "zz"}})
    with pytest.raises(InputError, match="'zz', which is neither"):
        dangling.check()


def test_in_memory_chain_slices_and_checks() -> None:
    events = Table({"__lists__/x": np.array([2, 0, 1], dtype=np.int32)})
    lists = Table({"__values__/x": np.array([1, 0, 3], dtype=np.int32)})
    values = Table({"x": np.arange(4, dtype=np.float32)})
    s = Sections({"events": events, "__lists__/x": lists, "__values__/x": values},
                 {"events": {"kind": "events"},
                  "__lists__/x": {"kind": "collection", "counter": "__lists__/x",
                                  "counter_section": "events"},
                  "__values__/x": {"kind": "collection", "counter": "__values__/x",
                                   "counter_section": "__lists__/x"}})
    s.check()
    assert s.to_awkward("x").tolist() == [[[0.0], []], [], [[1.0, 2.0, 3.0]]]
    tail = s.event_slice(1, 3)
    assert tail.to_awkward("x").tolist() == [[], [[1.0, 2.0, 3.0]]]
    bad = Sections({**s.tables, "__values__/x": Table({"x": np.arange(5.0)})}, s.layouts)
    with pytest.raises(InputError, match=r"holds 5 rows but its counter '__values__/x' adds"):
        bad.check()


# -- the RNTuple sample ----------------------------------------------------------------------
def test_rntuple_sample_goes_back_as_an_rntuple_or_a_ttree(tmp_path: Path) -> None:
    src = shared_file(MUONS)
    run("compress", src, "-o", tmp_path / "m.balerc", "--lossless", "-q")
    run("decompress", tmp_path / "m.balerc", "-o", tmp_path / "r.root", "-q")
    a = uproot.open(src)["Events"].arrays()
    b = ntuple(tmp_path / "r.root")
    assert b.fields == [f for f in a.fields if f != "_collection0"]  # a view of Muon_*
    assert str(b.type).replace(" ", "") in str(a.type).replace(" ", "").replace(
        "_collection0:var*{Muon_pt:float32,Muon_eta:float32,Muon_phi:float32,Muon_mass:"
        "float32,Muon_charge:int32},", "")
    for name in b.fields:
        assert ak.array_equal(a[name], b[name]), name
    run("decompress", tmp_path / "m.balerc", "-o", tmp_path / "t.root", "-q",
        "--root-format", "ttree")
    t = uproot.open(tmp_path / "t.root")["Events"]
    assert t.keys() == ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"]
    assert t["nMuon"].typename == "int32_t" and t["Muon_pt"].typename == "float[]"
    assert ak.array_equal(t["Muon_pt"].array(), a["Muon_pt"])


def test_an_empty_ntuple_and_one_chain_section_as_a_table(tmp_path: Path,
                                                          nested_root: Path) -> None:
    empty = tmp_path / "empty.root"
    with uproot.recreate(empty) as f:
        f.mkrntuple("Events", ak.zip(crafted_arrays(), depth_limit=1).layout.form)
    run("compress", empty, "-o", tmp_path / "e.balerc", "--lossless", "-q")
    run("decompress", tmp_path / "e.balerc", "-o", tmp_path / "e.root", "-q")
    assert str(ntuple(tmp_path / "e.root").type) == str(ntuple(empty).type)
    run("compress", nested_root, "-o", tmp_path / "x.balerc", "--lossless", "-q")
    run("decompress", tmp_path / "x.balerc", "-o", tmp_path / "v.csv", "-q",
        "--sections", "__values__/tags")
    assert (tmp_path / "v.csv").read_text(encoding="utf-8").splitlines()[0] == "tags"
    with pytest.raises(InputError, match=r"no branch 'nope'.*'hits'"):
        read_sections(tmp_path / "x.balerc").to_awkward("nope")
