"""Whole trees: several sections in one file, back to ROOT with nothing dropped (issue 12)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from balerc.cli.main import cli
from balerc.codec.options import CompressOptions
from balerc.codec.precision import (
    column_bounds_from,
    mantissa_bits,
    nanoaod_bits,
)
from balerc.codec.sections import compress_sections, read_sections
from balerc.formats.container import ContainerReader
from balerc.formats.errors import InputError
from balerc.formats.root_sections import (
    SkippedBranchWarning,
    open_root_sections,
    write_root_sections,
)
from balerc.formats.sections import Sections, SectionStream
from balerc.formats.toy_nano import nanoaod_like, round_mantissa
from conftest import shared_file

NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
HZZ = "uproot-HZZ.root"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def tree_of(path: Path) -> tuple[str, ak.Array, dict[str, str], set[str]]:
    """Tree name, its arrays, branch typenames and the branches that count others."""
    f = uproot.open(path)
    name = next(k.rsplit(";", 1)[0] for k, c in f.classnames().items() if c == "TTree")
    t = f[name]
    count = {b.count_branch.name for b in t.values()
             if getattr(b, "count_branch", None) is not None}
    return name, t.arrays(library="ak"), {k: t[k].typename for k in t.keys()}, count


def assert_same_tree(src: Path, back: Path, bound_of=None, atol: float = 0.0) -> None:
    """Same branches in the same order, jagged structure and counters; floats within
    `bound_of(name)` (None: bit-exact), everything else bit-exact."""
    name, a, ta, count = tree_of(src)
    name_b, b, tb, _ = tree_of(back)
    assert name_b == name and list(ta) == list(tb)
    for k in ta:
        if k in count:  # uproot writes every counter as int32
            assert tb[k] in ("int32_t", ta[k])
        else:
            assert tb[k] == ta[k], k
        x, y = a[k], b[k]
        if ta[k].endswith("[]"):
            assert ak.all(ak.num(x) == ak.num(y)), k
            x, y = ak.flatten(x), ak.flatten(y)
        x, y = np.asarray(ak.to_numpy(x)), np.asarray(ak.to_numpy(y))
        bound = bound_of(k) if bound_of and x.dtype.kind == "f" else None
        if bound is None:
            assert x.tobytes() == y.astype(x.dtype).tobytes(), k
        else:
            ok = np.abs(x.astype(np.float64) - y) <= bound * np.abs(x.astype(np.float64)) + atol
            assert (ok | (x == y) | (np.isnan(x) & np.isnan(y))).all(), k


# -- whole files through the CLI ---------------------------------------------------------
@pytest.mark.parametrize("name", [NANO, HZZ])
def test_lossless_whole_file_round_trip_to_root(tmp_path: Path, name: str) -> None:
    src = shared_file(name)
    out = run("compress", src, "-o", tmp_path / "f.balerc", "--lossless", "-q")
    assert out == ""
    run("decompress", tmp_path / "f.balerc", "-o", tmp_path / "back.root", "-q")
    assert_same_tree(src, tmp_path / "back.root")
    with ContainerReader(tmp_path / "f.balerc") as r:
        assert r.format_version == (2, 2) and r.sections is not None
        assert "sections" in r.header["required_features"]
        n_cols = sum(len(s["schema"]["columns"]) for s in r.sections)
    assert n_cols == len(uproot.open(src)[tree_of(src)[0]].keys())


def test_pwrel_whole_file_holds_the_bound_on_every_float(tmp_path: Path) -> None:
    src = shared_file(NANO)
    run("compress", src, "-o", tmp_path / "f.balerc", "--error-bound", "pwrel:5e-4", "-q")
    run("decompress", tmp_path / "f.balerc", "-o", tmp_path / "back.root", "-q")
    assert_same_tree(src, tmp_path / "back.root", bound_of=lambda k: 5e-4)


@pytest.mark.parametrize("name", [NANO, HZZ])
def test_one_collection_through_the_cli(tmp_path: Path, name: str) -> None:
    src = shared_file(name)
    run("compress", src, "--columns", "Jet_*", "-o", tmp_path / "j.balerc",
        "--error-bound", "rel:1e-3", "-q")
    run("decompress", tmp_path / "j.balerc", "-o", tmp_path / "j.root", "-q")
    _, a, ta, _ = tree_of(src)
    _, b, tb, _ = tree_of(tmp_path / "j.root")
    jet = [k for k in ta if k.startswith("Jet_")]
    assert [k for k in tb if k.startswith("Jet_")] == jet
    assert len(b) == len(a) and ak.all(ak.num(b[jet[0]]) == ak.num(a[jet[0]]))
    run("decompress", tmp_path / "j.balerc", "-o", tmp_path / "j.csv", "--sections", "Jet", "-q")
    assert (tmp_path / "j.csv").read_text().splitlines()[0].split(",") == jet


def test_decompress_to_a_table_needs_one_section(tmp_path: Path) -> None:
    src = shared_file(HZZ)
    run("compress", src, "-o", tmp_path / "f.balerc", "--lossless", "-q")
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "f.balerc"), "-o",
                                   str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "sections (events, Jet, Muon" in res.output
    assert not (tmp_path / "f.csv").exists()


# -- what balerc cannot model is carried, or named ---------------------------------------
@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    """A tree with a uint32 counter, a fixed-size array, strings and a bool collection."""
    path = tmp_path / "crafted.root"
    counts = np.array([2, 0, 3, 1], np.uint32)
    pt = np.arange(6, dtype=np.float32) * 1.5
    with uproot.recreate(path) as f:
        t = f.mktree("Events", {"run": np.uint32, "nJet": np.uint32, "Jet_pt": "var * float32",
                                "Jet_id": "var * bool", "cov": np.dtype((np.float32, (2, 3))),
                                "label": "string", "w": np.float64},
                     title="crafted", counter_name=lambda b: "nJet")
        t.extend({"run": np.arange(4, dtype=np.uint32),
                  "Jet_pt": ak.unflatten(pt, counts), "Jet_id": ak.unflatten(pt > 3, counts),
                  "cov": np.arange(24, dtype=np.float32).reshape(4, 2, 3),
                  "label": ak.Array(["a", "bb", "", "dddd"]), "w": np.linspace(0, 1, 4)})
    return path


def test_arrays_and_strings_are_carried_losslessly(tmp_path: Path, crafted: Path) -> None:
    run("compress", crafted, "-o", tmp_path / "c.balerc", "--error-bound", "abs:1e-3", "-q")
    run("decompress", tmp_path / "c.balerc", "-o", tmp_path / "back.root", "-q")
    assert_same_tree(crafted, tmp_path / "back.root", atol=1e-3,
                     bound_of=lambda k: None if k == "cov" else 0.0)
    t = uproot.open(tmp_path / "back.root")["Events"]
    assert t.title == "crafted" and t["cov"].typename == "float[2][3]"


def test_unsupported_branch_fails_by_name_or_is_listed(tmp_path: Path) -> None:
    """Types balerc does not model (a struct, three levels of lists; two levels are
    carried: tests/test_nested.py) stop compress by name, or are listed when skipped."""
    path = tmp_path / "nested.root"
    with uproot.recreate(path) as f:
        f["t"] = {"x": np.arange(3.0),
                  "nested": ak.Array([[[[1.0]], [[2.0, 3.0]]], [], [[[4.0]]]]),
                  "obj": ak.zip({"a": np.arange(3), "b": np.arange(3.0)})}
        f["h"] = np.histogram(np.arange(10.0), bins=3)
    res = CliRunner().invoke(cli, ["compress", str(path), "-o", str(tmp_path / "n.balerc"),
                                   "--lossless"])
    assert res.exit_code == 2 and "nested" in res.output and "--skip-unsupported" in res.output
    assert "obj" in res.output
    with pytest.warns(SkippedBranchWarning, match=r"nested .*obj .*\bh \(TH1D\)"):
        stream = open_root_sections(path, allow_skip=True)
    assert isinstance(stream, SectionStream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedBranchWarning)
        run("compress", path, "-o", tmp_path / "n.balerc", "--lossless", "--skip-unsupported",
            "-q")
    info = run("info", tmp_path / "n.balerc")
    assert "branches NOT stored: nested" in info and "objects NOT stored: h (TH1D)" in info


# -- the container -----------------------------------------------------------------------
def small_tree(events: int = 3000, seed: int = 1) -> Sections:
    return nanoaod_like(events, seed)


def test_sections_round_trip_in_memory(tmp_path: Path) -> None:
    tree = small_tree()
    stream = SectionStream.of(tree)
    opts = CompressOptions(lossless=True, chunk_rows=1024, threads=2)
    res = compress_sections(stream, tmp_path / "t.balerc", opts)
    assert res.rows == tree.n_events
    back = read_sections(tmp_path / "t.balerc")
    assert back.names == tree.names and back.layouts == tree.layouts
    for n in tree.names:
        assert back[n].equals(tree[n]), n
    with ContainerReader(tmp_path / "t.balerc") as r:
        firsts: dict[int, int] = {}
        for c in r.chunks:  # chunks of sections interleave; rows count per section
            firsts[c.section] = firsts.get(c.section, 0) + c.rows
        assert [firsts[k] for k in range(len(tree))] == [tree[n].n_rows for n in tree.names]
        order = [c.section for c in r.chunks]
        assert order != sorted(order)  # written as the steps come, not section by section


def test_sections_api_edges(tmp_path: Path) -> None:
    """A collection cut short had been compressed into an unreadable file (and padded
    rows dropped, and a tree without 'events' written empty); write_root_sections had
    left a broken file on failure; a string selector had been read letter by letter;
    bad step sizes, progress and workers arguments had been bare Python errors."""
    from balerc.codec import many
    from balerc.codec.sections import iter_sections
    from balerc.formats.root_writers import write_root_sections

    tree = small_tree(400)
    opts = CompressOptions(lossless=True)
    jet = next(n for n in tree.names if n != "events" and tree[n].n_rows > 10)
    cut = Sections({n: (t.slice(0, 10) if n == jet else t) for n, t in tree.tables.items()},
                   tree.layouts, tree.source)
    for bad, match in ((cut, f"section '{jet}' holds 10 rows but its counter"),
                       (Sections({jet: tree[jet]}, {jet: tree.layouts[jet]}, tree.source),
                        "have no 'events' section")):
        with pytest.raises(InputError, match=match):
            compress_sections(SectionStream.of(bad), tmp_path / "c.balerc", opts)
        assert not (tmp_path / "c.balerc").exists()
        with pytest.raises(InputError, match=match):
            write_root_sections(bad, tmp_path / "c.root")
        assert not (tmp_path / "c.root").exists()
    with pytest.raises(InputError, match="must be an uproot codec"):
        write_root_sections(tree, tmp_path / "c.root", "zstd:5")
    with pytest.raises(InputError, match="takes Sections"):
        write_root_sections(tree[jet], tmp_path / "c.root")
    with pytest.raises(InputError, match="no section 'nope'"):
        tree["nope"]
    compress_sections(tree, tmp_path / "t.balerc", opts)  # Sections taken as they are
    from balerc.codec import open_reader

    with open_reader(tmp_path / "t.balerc", section=jet[:2] + "*") as r:  # a glob: one
        assert r.n_rows == tree[jet].n_rows
    one = read_sections(tmp_path / "t.balerc", columns=f"{jet}_pt")  # one pattern
    assert one[jet].names == [f"{jet}_pt"] and one[jet].n_rows == tree[jet].n_rows
    with pytest.raises(InputError, match="step_events must be at least 1"):
        next(iter_sections(tmp_path / "t.balerc", step_events=0))
    for kw, match in ((dict(progress=True), "progress must be a function"),
                      (dict(workers=-1), "workers must be at least 1")):
        with pytest.raises(InputError, match=match):
            many.compress_files([str(tmp_path / "t.balerc")], tmp_path / "o", lossless=True,
                                **kw)


def test_a_column_pattern_matching_no_section_is_refused(tmp_path: Path) -> None:
    """A typo among patterns that match was dropped silently from a file of sections (only
    a selection matching nothing at all was refused); one section to a table keeps the
    patterns' order, as a single table does."""
    from balerc.codec.api import decompress

    compress_sections(SectionStream.of(small_tree(500)), tmp_path / "t.balerc",
                      CompressOptions(lossless=True))
    with pytest.raises(InputError, match=r"no column matches \['Jet_nope'\]"):
        read_sections(tmp_path / "t.balerc", columns=["Jet_pt", "Jet_nope"])
    back = read_sections(tmp_path / "t.balerc", columns=["Jet_pt", "MET_*"])
    assert "Jet_pt" in back["Jet"].names and "Jet_eta" not in back["Jet"].names
    assert "MET_pt" in back["events"].names
    got = decompress(tmp_path / "t.balerc", sections=["Jet"], columns=["Jet_pt", "Jet_eta"])
    assert got.names == ["Jet_pt", "Jet_eta"]
    with pytest.raises(InputError, match=r"section 'Jet': no column matches \['MET_pt'\]"):
        decompress(tmp_path / "t.balerc", sections=["Jet"], columns=["Jet_pt", "MET_pt"])


def test_chunk_bytes_identical_for_one_and_two_threads(tmp_path: Path) -> None:
    tree = small_tree(2000)
    outs = []
    for threads in (1, 2):
        stream = SectionStream.of(tree)
        opts = CompressOptions.make("pwrel:1e-3", threads=threads, chunk_rows=512)
        compress_sections(stream, tmp_path / f"{threads}.balerc", opts)
        with ContainerReader(tmp_path / f"{threads}.balerc") as r:
            outs.append([r.read_chunk(c.index) for c in r.chunks])
    assert outs[0] == outs[1]


def test_section_records_are_validated(tmp_path: Path) -> None:
    from tests.fuzz import fileparts as fp

    tree = small_tree(500)
    stream = SectionStream.of(tree)
    compress_sections(stream, tmp_path / "t.balerc", CompressOptions(lossless=True))
    data = (tmp_path / "t.balerc").read_bytes()
    cases = {"section": 99, "first_row": 7}
    for key, value in cases.items():
        parts = fp.parse(data)
        parts.chunks[1].desc.obj[key] = value
        with pytest.raises(Exception) as err:
            read_sections(fp.write(parts))
        assert type(err.value).__name__ in ("SchemaError", "ChunkOrderError"), key


# -- per-column precision ------------------------------------------------------------------
def test_nanoaod_preset_never_claims_more_precision_than_the_sample_holds() -> None:
    t = uproot.open(shared_file(NANO))["Events"]
    for name in t.keys():
        a = t[name].array(library="ak")
        values = np.asarray(ak.flatten(a) if a.ndim > 1 else a)
        if values.dtype != np.float32 or mantissa_bits(values) is None:
            continue
        bits = nanoaod_bits(name)
        assert mantissa_bits(values) <= (23 if bits is None else bits), name


def test_round_mantissa_and_mantissa_bits_agree() -> None:
    x = np.random.default_rng(3).normal(0, 100, 10_000).astype(np.float32)
    for bits in (6, 10, 12, 23):
        y = round_mantissa(x, bits)
        assert mantissa_bits(y) <= bits
        assert np.all(np.abs(y - x) <= 2.0 ** -(bits + 1) * np.abs(x))


def test_per_column_bounds_overrides_file_and_preset(tmp_path: Path) -> None:
    tree = small_tree(2000)
    bounds_file = tmp_path / "b.toml"
    bounds_file.write_text('[bounds]\n"Muon_*" = "lossless"\n"Jet_mass" = "abs:0.5"\n')
    default, cb = column_bounds_from(["pwrel:1e-3", "Jet_eta,Jet_phi=abs:1e-3"], bounds_file,
                                     "nanoaod")
    stream = SectionStream.of(tree)
    opts = CompressOptions.make(default, column_bounds=cb)
    compress_sections(stream, tmp_path / "p.balerc", opts)
    back = read_sections(tmp_path / "p.balerc")
    jet, mu = tree["Jet"], tree["Muon"]
    assert back["Muon"].equals(mu)
    assert np.abs(back["Jet"]["Jet_eta"] - jet["Jet_eta"]).max() <= 1e-3
    assert np.abs(back["Jet"]["Jet_mass"] - jet["Jet_mass"]).max() <= 0.5
    assert 1e-4 < np.abs(back["Jet"]["Jet_mass"] - jet["Jet_mass"]).max()
    qgl = jet["Jet_qgl"].astype(np.float64)  # the preset: 10 bits -> pwrel 2^-11
    assert np.all(np.abs(back["Jet"]["Jet_qgl"] - qgl) <= 2.0**-11 * np.abs(qgl))
    assert back["Jet"]["Jet_pt"].tobytes() == jet["Jet_pt"].tobytes()  # pt: full precision
    with ContainerReader(tmp_path / "p.balerc") as r:
        jets = r.section("Jet").header["schema"]["columns"]
        assert {c["name"]: c.get("bound") for c in jets}["Jet_eta"] == "abs:0.001"
        assert "stream-prefix" in r.header["required_features"]
    info = run("info", tmp_path / "p.balerc")
    assert "abs:0.001" in info and "pwrel:0.000488281" in info


def test_info_shows_each_sections_coders_and_shared_streams(tmp_path: Path) -> None:
    """Grouped codes live in a section's shared stream: info lists it (and the coders)
    under the section and marks its columns 'shared', and a model-free column reads
    'quantized' (it showed 'autoencoder' with 0 bytes and hid the shared stream)."""
    from balerc.codec.inspect import describe_file

    stream = SectionStream.of(small_tree(2000))
    compress_sections(stream, tmp_path / "q.balerc", CompressOptions.make("rel:1e-3"))
    d = describe_file(tmp_path / "q.balerc")
    jet = next(s for s in d["sections"] if s["name"] == "Jet")
    assert jet["shared_streams"], "expected grouped codes in the Jet section"
    pt = next(c for c in jet["columns"] if c["name"] == "Jet_pt")
    assert (pt["codec"], pt["method"], pt["stored_bytes"]) == ("autoencoder", "quantized", 0)
    assert jet["stored_bytes"] == sum(c["stored_bytes"] for c in jet["columns"]) + sum(
        jet["shared_streams"].values())
    text = run("info", tmp_path / "q.balerc")
    block = text[text.index("section Jet:"):]
    block = block[:block.index("\n  section ", 1)] if "\n  section " in block else block
    assert "coder autoencoder (no model: quantized)" in block
    assert re.search(r"Jet_pt +float +<f4 +quantized +shared", block), block
    name, size = next(iter(jet["shared_streams"].items()))
    assert re.search(rf"\[{name}\] +shared stream +{size:,}", block), block


@pytest.mark.parametrize("specs, message", [
    (["pwrel:1e-3", "Nope_*=abs:1"], "match(es) no column; the columns are: run"),
    (["pwrel:1e-3", "Jet_eta=foo:1"], "unknown bound mode 'foo'"),
    (["pwrel:1e-3", "Jet_eta=abs:x"], "cannot read the error bound"),
    (["pwrel:1e-3", "=abs:1"], "no column glob before '='"),
    (["pwrel:1e-3", "rel:1e-3"], "given twice without a column glob"),
])
def test_malformed_or_unknown_bounds_are_refused(tmp_path: Path, specs: list[str],
                                                 message: str) -> None:
    src = tmp_path / "t.root"
    write_root_sections(small_tree(200), src)
    args = ["compress", str(src), "-o", str(tmp_path / "x.balerc")]
    for s in specs:
        args += ["--error-bound", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and message in res.output, res.output


def test_bounds_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "b.toml"
    bad.write_text('"Jet_*" = 3\n')
    with pytest.raises(InputError, match=r"b.toml: the bound of 'Jet_\*' must be a string"):
        column_bounds_from([], bad, None)
    with pytest.raises(InputError, match="neither a preset"):
        column_bounds_from([], None, "nanoaodx")


# -- golden files: every later version decodes them to the same bits ----------------------
GOLDEN_SECTIONS = sorted((Path(__file__).parent / "fixtures" / "sections").glob("*.balerc"))


@pytest.mark.parametrize("path", GOLDEN_SECTIONS, ids=lambda p: p.stem)
def test_golden_sections_decode_bit_identically(path: Path) -> None:
    expected = np.load(path.with_suffix("").with_suffix(".expected.npz"))
    back = read_sections(path)
    got = {f"{s}/{c}": back[s][c] for s in back.names for c in back[s].names}
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        if got[key].dtype == object:  # strings: stored as unicode in the .npz (no pickle)
            assert got[key].astype(str).tolist() == expected[key].tolist(), key
        else:
            assert got[key].tobytes() == expected[key].tobytes(), key


def test_golden_sections_exist() -> None:
    assert len(GOLDEN_SECTIONS) == 4
    for path in GOLDEN_SECTIONS:  # the nested-vector files freeze feature chained-sections
        with ContainerReader(path) as r:
            chained = "chained-sections" in r.header["required_features"]
        assert chained == path.name.startswith("v22c_"), path.name


# -- training per section ---------------------------------------------------------------------
def test_train_per_section_and_compress_with_them(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from balerc.train.config import TrainConfig
    from balerc.train.sections import train_sections

    src = tmp_path / "t.root"
    write_root_sections(nanoaod_like(1500, 4), src)
    record = train_sections(src, tmp_path / "m", TrainConfig(epochs=2), log=lambda s: None)
    assert "Jet" in record["sections"] and "only 5" in record["skipped"]["Tau"]  # 0.4/event
    assert (tmp_path / "m" / "Jet" / "decoder.onnx").exists()
    out = run("compress", src, "-m", tmp_path / "m", "-o", tmp_path / "t.balerc",
              "--error-bound", "pwrel:1e-3", "--keep-model")
    assert "wrote" in out
    back = read_sections(tmp_path / "t.balerc")
    jet = nanoaod_like(1500, 4)["Jet"]
    x = jet["Jet_pt"].astype(np.float64)
    assert np.all(np.abs(back["Jet"]["Jet_pt"] - x) <= 1e-3 * np.abs(x))
    with ContainerReader(tmp_path / "t.balerc") as r:
        assert "decoder.lean.onnx.zst" in "".join(r.attachments)
        assert any(a.startswith(f"{[s['name'] for s in r.sections].index('Jet')}/")
                   for a in r.attachments)
    # --no-embed-model: -m DIR of section models gives each section its model on the way
    # back too (the file could not be read by any command: each section got DIR itself)
    run("compress", src, "-m", tmp_path / "m", "-o", tmp_path / "ne.balerc",
        "--error-bound", "pwrel:1e-3", "--keep-model", "--no-embed-model")
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "ne.balerc"), "-o",
                                   str(tmp_path / "ne.root")])
    assert res.exit_code == 2 and "--no-embed-model" in res.output
    run("decompress", tmp_path / "ne.balerc", "-m", tmp_path / "m", "-o", tmp_path / "ne.root")
    back = read_sections(tmp_path / "ne.balerc", model_dir=tmp_path / "m")
    assert np.all(np.abs(back["Jet"]["Jet_pt"] - x) <= 1e-3 * np.abs(x))
    out = run("evaluate", src, tmp_path / "ne.balerc", "--section", "Jet", "-m", tmp_path / "m",
              "-o", tmp_path / "ev", "--max-column-plots", "0")
    assert "every value within its bound: yes" in out
    res = CliRunner().invoke(cli, ["compare", str(src), "-m", str(tmp_path / "m"), "--bound",
                                   "rel:1e-3", "-o", str(tmp_path / "cmp")])
    assert res.exit_code == 2 and "holds the models of sections" in res.output
    from balerc.formats.tableio import write_table

    flat = tmp_path / "flat.csv"  # a single table with the directory of section models
    write_table(jet.select(["Jet_pt", "Jet_eta"]), flat)
    res = CliRunner().invoke(cli, ["compress", str(flat), "-m", str(tmp_path / "m"),
                                   "--error-bound", "rel:1e-3", "-o", str(tmp_path / "f.b")])
    assert res.exit_code == 2 and "holds one model per section of a whole tree" in res.output
    # no bound: the sections train skipped are named ('without a model an error bound is
    # needed' had been the message, with -m given)
    res = CliRunner().invoke(cli, ["compress", str(src), "-m", str(tmp_path / "m"), "-o",
                                   str(tmp_path / "nb.balerc")])
    assert res.exit_code == 2 and re.search(r"section\(s\) (\w+, )*Tau have no model", res.output)
    # a subset of the tree: the models of the sections it has apply (it had been refused)
    res = CliRunner().invoke(cli, ["compress", str(src), "-m", str(tmp_path / "m"),
                                   "--columns", "Jet_*", "--error-bound", "rel:1e-3",
                                   "--keep-model", "-o", str(tmp_path / "jet.balerc")])
    assert res.exit_code == 0, res.output
    assert re.search(r"the models of section\(s\) Muon, .* are not used", res.output)
    with ContainerReader(tmp_path / "jet.balerc") as r:
        assert [s["name"] for s in r.sections] == ["events", "Jet"]
        assert any(a.startswith("1/") for a in r.attachments)  # the Jet model's decoder


def test_reader_api_opens_one_section(tmp_path: Path) -> None:
    import balerc

    tree = small_tree(1000)
    stream = SectionStream.of(tree)
    balerc.compress_sections(stream, tmp_path / "t.balerc",
                             CompressOptions(lossless=True, chunk_rows=256))
    with pytest.raises(InputError, match="holds 6 sections"):
        balerc.open_reader(tmp_path / "t.balerc")
    with balerc.open_reader(tmp_path / "t.balerc", section="Muon") as r:
        assert r.n_rows == tree["Muon"].n_rows
        parts = list(r.iter_chunks(columns=["Muon_pt"]))
        assert np.concatenate([p["Muon_pt"] for p in parts]).tobytes() == \
            tree["Muon"]["Muon_pt"].tobytes()
        assert r.read(rows=slice(5, 9))["Muon_eta"].tobytes() == \
            tree["Muon"]["Muon_eta"][5:9].tobytes()


def test_recover_a_cut_file_keeps_whole_events(tmp_path: Path) -> None:
    tree = small_tree(3000)
    stream = SectionStream.of(tree)
    compress_sections(stream, tmp_path / "t.balerc", CompressOptions(lossless=True,
                                                                      chunk_rows=256))
    data = (tmp_path / "t.balerc").read_bytes()
    (tmp_path / "cut.balerc").write_bytes(data[: len(data) * 2 // 3])
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "cut.balerc"), "-o",
                                   str(tmp_path / "x.root")])
    assert res.exit_code == 2 and "--recover" in res.output
    with pytest.warns(UserWarning) as seen:
        back = read_sections(tmp_path / "cut.balerc", recover=True)
    n = back.n_events
    assert 0 < n < tree.n_events
    # the warnings count events, not rows summed over sections, and say why events drop
    with pytest.warns(UserWarning), ContainerReader(tmp_path / "cut.balerc", recover=True) as r:
        events = sum(c.rows for c in r.chunks if c.section == 0)
    assert (f"{events:,} rows of section 'events': of those events, the ones whose objects "
            f"all survived (balerc info says how many)") in " ".join(res.output.split())
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "cut.balerc")])
    assert f"decompress --recover reads {n:,} complete events" in info.output  # the same n
    said = [str(w.message) for w in seen]
    assert f"recovered the first {events:,} rows of section 'events'" in said[0]
    assert events > n and said[1].startswith(
        f"{tmp_path / 'cut.balerc'}: kept the first {n:,} of {events:,} recovered events")
    back.check()  # every collection holds exactly the objects its counters say
    for name in tree.names:
        assert back[name].equals(tree.event_slice(0, n)[name]), name


def test_every_section_cut_short_is_named_the_first_one_first() -> None:
    """Recovery named only the section that ends the kept events first: with Muon at 0
    events, a Jet section that had lost every chunk went unnamed (info and the warning),
    while the error of an empty recovery named it."""
    from balerc.codec.sections import _whole_events

    ends = {"Jet": np.array([0, 0, 0, 2, 5]), "Muon": np.array([0, 1, 2, 3, 4]),
            "Photon": np.array([0, 0, 0, 0, 0])}
    keep, short = _whole_events(ends, {"Jet": 0, "Muon": 0, "Photon": 0}, 4)
    assert keep == 0 and short == ["Muon", "Jet"]  # Jet: 2 events (no jets), Photon: all 4
    keep, short = _whole_events(ends, {"Jet": 5, "Muon": 4, "Photon": 0}, 4)
    assert keep == 4 and short == []


# -- hostile multi-section files --------------------------------------------------------------
def test_mutated_section_files_end_in_typed_errors(tmp_path: Path) -> None:
    """Byte-level and structural mutations of a 2.2 file (checksums fixed for the latter):
    every read gives the data, or a BalercError; never another exception."""
    import random

    from balerc.formats.errors import BalercError
    from tests.fuzz import mutators as mu

    tree = small_tree(120, seed=9)
    stream = SectionStream.of(tree)
    compress_sections(stream, tmp_path / "s.balerc",
                      CompressOptions.make("pwrel:1e-3", chunk_rows=32, zstd_level=3))
    target = mu.Target.of("sections", (tmp_path / "s.balerc").read_bytes())
    rng = random.Random(12)
    outcomes: dict[str, int] = {}
    for k in range(600):
        try:
            m = (mu.random_mutation(rng, target, []) if k % 3 else
                 mu.structural_mutation(rng, target))
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a structural edit written for one-table headers
        for recover in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    read_sections(m.data, recover=recover, threads=1)
                    key = "decoded"
                except BalercError as exc:
                    key = type(exc).__name__
            outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes.get("decoded", 0) > 0 and sum(outcomes.values()) > 700, outcomes
    assert "ChecksumError" in outcomes and "SchemaError" in outcomes, outcomes


def test_evaluate_one_section_of_a_whole_tree(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    src = tmp_path / "t.root"
    write_root_sections(small_tree(1500), src)
    run("compress", src, "-o", tmp_path / "t.balerc", "--error-bound", "pwrel:1e-3", "-q")
    res = CliRunner().invoke(cli, ["evaluate", str(src), str(tmp_path / "t.balerc"), "-o",
                                   str(tmp_path / "rep")])
    assert res.exit_code == 2 and "evaluate one with --section NAME" in res.output
    out = run("evaluate", src, tmp_path / "t.balerc", "-o", tmp_path / "rep", "--section", "Jet",
              "--max-column-plots", "2")
    assert "every value within its bound: yes" in out
    assert (tmp_path / "rep" / "report.html").exists()
    assert "| section Jet's bytes |" in (tmp_path / "rep" / "summary.md").read_text()


def test_tree_written_back_with_the_source_compression_or_the_asked_one(tmp_path: Path) -> None:
    src = tmp_path / "t.root"
    write_root_sections(small_tree(400), src, compression=uproot.LZMA(2))
    run("compress", src, "-o", tmp_path / "t.balerc", "--lossless", "-q")
    run("decompress", tmp_path / "t.balerc", "-o", tmp_path / "a.root", "-q")
    assert uproot.open(tmp_path / "a.root").file.fCompress == 202  # LZMA 2, as the source
    run("decompress", tmp_path / "t.balerc", "-o", tmp_path / "b.root", "-q",
        "--root-compression", "zstd:3")
    assert uproot.open(tmp_path / "b.root").file.fCompress == 503
    res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "t.balerc"), "-o",
                                   str(tmp_path / "c.root"), "--root-compression", "gzip:3"])
    assert res.exit_code == 2 and "ALGO[:LEVEL]" in res.output
    for bad, why in [("zstd:99", "between 0 and 22"), ("lz4:99", "between 0 and 12"),
                     ("999", "algorithm code")]:  # uproot's range errors, typed
        res = CliRunner().invoke(cli, ["decompress", str(tmp_path / "t.balerc"), "-o",
                                       str(tmp_path / "c.root"), "--root-compression", bad])
        assert res.exit_code == 2 and why in res.output and "ALGO[:LEVEL]" in res.output
        assert not (tmp_path / "c.root").exists()


def test_recover_names_the_lost_sections_and_what_survives(tmp_path: Path) -> None:
    """A file cut after its events chunk: no complete event can go to .root, and the error
    names the sections that lost every chunk and the --sections that still writes (it
    said only 'no complete event', after a warning promising rows)."""
    from balerc.formats.container import ContainerReader

    src = tmp_path / "t.root"
    write_root_sections(small_tree(400), src)
    run("compress", src, "-o", tmp_path / "t.balerc", "--lossless", "-q")
    data = (tmp_path / "t.balerc").read_bytes()
    with ContainerReader(data) as r:
        names = [s["name"] for s in r.sections]
        first_other = next(c for c in r.chunks if c.section != r.chunks[0].section)
        assert r.chunks[0].section == names.index("events")
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(data[: first_other.offset])
    res = CliRunner().invoke(cli, ["decompress", str(cut), "--recover", "-o",
                                   str(tmp_path / "x.root")])
    assert res.exit_code == 2, res.output
    lost = [n for n in names if n != "events"]
    assert f"section(s) {', '.join(lost[:8])}" in res.output
    assert "--recover --sections events writes what survived" in res.output
    assert not (tmp_path / "x.root").exists()
    run("decompress", cut, "--recover", "--sections", "events", "-o", tmp_path / "e.root")
    assert uproot.open(tmp_path / "e.root")["Events"].num_entries == 400


def test_a_failed_tree_compress_shuts_its_thread_pool(tmp_path: Path, monkeypatch) -> None:
    """The shared pool of a file of sections had lived on after an error (4-6 threads per
    failed compress with -T 4, until garbage collection)."""
    import threading

    from balerc.codec.coders.autoencoder import AECoder

    real = AECoder.encode

    def failing(self, chunk, index):
        if index == 2:
            raise RuntimeError("encoder failed on purpose")
        return real(self, chunk, index)

    monkeypatch.setattr(AECoder, "encode", failing)
    pool_threads = lambda: sum(t.name.startswith("ThreadPoolExecutor")  # noqa: E731
                               for t in threading.enumerate())
    before = pool_threads()
    for _ in range(3):
        with pytest.raises(RuntimeError, match="on purpose"):
            compress_sections(SectionStream.of(small_tree(3000)), tmp_path / "f.balerc",
                              CompressOptions.make("pwrel:1e-3", threads=4, chunk_rows=200,
                                                   force=True))
    assert pool_threads() == before
    assert not (tmp_path / "f.balerc").exists()
