"""The command line: round trips through every output format, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from balerc.cli.main import cli
from balerc.formats.tableio import read_table


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output


@pytest.fixture
def dimuon_csv(tmp_path: Path) -> Path:
    out = tmp_path / "mu.csv"
    code, text = run("generate", "--kind", "dimuon", "--rows", "2000", "-o", str(out))
    assert code == 0, text
    return out


@pytest.mark.parametrize("ext", ["csv", "tsv", "npz", "parquet", "root"])
def test_lossless_roundtrip_every_output_format(tmp_path, dimuon_csv, ext):
    blc = tmp_path / "mu.balerc"
    assert run("compress", str(dimuon_csv), "-o", str(blc), "--lossless", "-q")[0] == 0
    out = tmp_path / f"back.{ext}"
    code, text = run("decompress", str(blc), "-o", str(out), "-q")
    assert code == 0, text
    orig, back = read_table(dimuon_csv), read_table(out)
    assert back.names == orig.names
    for n in orig.names:
        assert np.array_equal(orig[n], back[n]), n
    if ext == "csv":
        assert out.read_bytes() == dimuon_csv.read_bytes()  # header and values identical


def test_info_text_and_json(tmp_path, dimuon_csv):
    blc = tmp_path / "mu.balerc"
    run("compress", str(dimuon_csv), "-o", str(blc), "--error-bound", "rel:1e-3", "-q")
    code, text = run("info", str(blc))
    assert code == 0 and "checksums ok" in text and "ratio" in text and "E1" in text
    code, text = run("info", str(blc), "--json")
    d = json.loads(text)
    assert d["rows"] == 2000 and d["checksums"] == "ok" and d["format_version"] == "2.1"
    by_name = {c["name"]: c for c in d["columns"]}
    e1 = read_table(dimuon_csv)["E1"]
    assert 0 < by_name["E1"]["max_error"] <= 1e-3 * (e1.max() - e1.min())  # recorded at compression
    assert {c["name"] for c in d["columns"]} >= {"E1", "M", "Q1"}


def test_compress_report_lists_every_column_and_says_what_info_says(tmp_path):
    """compress -v and --json had left out the lossless columns (and reordered the rest),
    --json had no ratio against the source, no MB/s and no sections, and a pwrel column was
    'pwrel' there but 'quantized' in info; info gave a NaN column's exception bytes as its
    stored bytes (its codes are in the shared stream) and no raw bytes for text."""
    rng = np.random.default_rng(0)
    b = rng.normal(size=3000)
    b[::50] = np.nan
    src = tmp_path / "t.csv"
    lines = ["label,a,b,k"] + [f"x{i % 7},{a:.6f},{v:.6f},{i}" for i, (a, v) in
                               enumerate(zip(rng.normal(size=3000), b, strict=True))]
    src.write_text("\n".join(lines).replace("nan", "") + "\n")
    blc = tmp_path / "t.balerc"
    code, text = run("compress", str(src), "-o", str(blc), "--error-bound", "pwrel:1e-3",
                     "--json", "-T", "1")
    assert code == 0, text
    d = json.loads(text)
    assert [r["name"] for r in d["errors"]] == ["label", "a", "b", "k"]  # the table's order
    modes = {r["name"]: r["mode"] for r in d["errors"]}
    assert modes == {"label": "lossless", "a": "log-quantized", "b": "log-quantized",
                     "k": "lossless"}
    assert d["ratio_vs_source"] == pytest.approx(src.stat().st_size / d["file_bytes"], rel=1e-3)
    assert d["mb_per_s"] > 0
    code, text = run("info", str(blc), "--json")
    info = {c["name"]: c for c in json.loads(text)["columns"]}
    assert info["a"]["method"] == info["b"]["method"] == "log-quantized"
    assert info["b"]["in_shared_streams"] and info["b"]["stored_bytes"] > 0  # exceptions
    assert info["label"]["raw_bytes"] == sum(len(f"x{i % 7}") for i in range(3000))
    assert json.loads(text)["raw_bytes"] == sum(c["raw_bytes"] for c in info.values())
    code, text = run("info", str(blc))
    assert "+shared" in text and "log-quantized" in text


def test_info_reports_damage(tmp_path, dimuon_csv):
    blc = tmp_path / "mu.balerc"
    run("compress", str(dimuon_csv), "-o", str(blc), "--lossless", "-q", "--chunk-rows", "500")
    data = bytearray(blc.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blc.write_bytes(bytes(data))
    code, text = run("info", str(blc))
    assert code == 1 and "damaged" in text and "chunk" in text


def test_refuses_to_overwrite_and_leaves_nothing(tmp_path, dimuon_csv):
    blc = tmp_path / "mu.balerc"
    blc.write_text("keep me")
    code, text = run("compress", str(dimuon_csv), "-o", str(blc), "--lossless")
    assert code == 2 and "already exists" in text and "--force" in text
    assert blc.read_text() == "keep me"
    code, text = run("compress", str(dimuon_csv), "-o", str(blc), "--lossless", "--force", "-q")
    assert code == 0
    # a failing run (bad bound) leaves no temporary file behind
    bad = tmp_path / "bad.balerc"
    code, text = run("compress", str(dimuon_csv), "-o", str(bad), "--error-bound", "rel:-1")
    assert code == 2 and not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mu.balerc", "mu.csv"]


def test_a_writers_error_names_the_output_not_its_temporary(tmp_path):
    """Output is written to a hidden temporary renamed on success; an error of the writer
    named that temporary ('.out.npy.balerc-tmp-8155-...') instead of the user's path."""
    code, text = run("generate", "--kind", "dimuon", "--rows", "50", "-o", str(tmp_path / "g.npy"))
    assert code == 2 and f"cannot write {tmp_path / 'g.npy'}: one array needs one" in text
    assert "balerc-tmp" not in text and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["compress", "nope.root", "-o", "x.balerc", "--lossless"], "no such file"),
        (["compress", "{csv}", "-o", "x.balerc"], "--lossless"),
        (["compress", "{csv}", "-o", "x.balerc", "--error-bound", "rel:0"], "positive"),
        (["compress", "{csv}", "-o", "x.balerc", "--error-bound", "wat:1"], "unknown bound mode"),
        (["compress", "{csv}", "-o", "x.balerc", "--lossless", "--columns", "zzz*"], "E1"),
        (["compress", "{txt}", "-o", "x.balerc", "--lossless"], "unsupported"),
        (["decompress", "{csv}", "-o", "x.csv"], "not a .balerc file"),
        (["decompress", "{blc}", "-o", "x.xlsx"], "unsupported extension"),
        (["compress", "{ragged}", "-o", "x.balerc", "--lossless"], "line 3"),
        (["compress", "{empty}", "-o", "x.balerc", "--lossless"], "empty"),
    ],
)
def test_bad_input_one_line(tmp_path, dimuon_csv, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt2").write_text("a\n1\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "empty.csv").write_text("a,b\n")
    blc = tmp_path / "ok.balerc"
    run("compress", str(dimuon_csv), "-o", str(blc), "--lossless", "-q")
    subs = {"{csv}": str(dimuon_csv), "{txt}": "t.txt2", "{blc}": str(blc),
            "{ragged}": "ragged.csv", "{empty}": "empty.csv"}
    code, text = run(*[subs.get(a, a) for a in args])
    assert code == 2, text
    assert "Traceback" not in text
    lines = [ln for ln in text.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("balerc: error:"), text
    assert message in text


def test_root_tree_errors(tmp_path):
    from conftest import shared_file

    f = shared_file("uproot-Zmumu.root")
    code, text = run("compress", str(f), "--tree", "nope", "-o", str(tmp_path / "x.balerc"), "--lossless")
    assert code == 2 and "events" in text


def test_whole_flat_tree_keeps_its_string_branch(tmp_path):
    """`compress` of a flat tree keeps every branch, Zmumu's char* `Type` included (it was
    once dropped without a word), and `decompress -o .root` writes it back as strings."""
    uproot = pytest.importorskip("uproot")
    from conftest import shared_file

    f = shared_file("uproot-Zmumu.root")
    out, back = tmp_path / "z.balerc", tmp_path / "z.root"
    assert run("compress", str(f), "--error-bound", "rel:1e-3", "-o", str(out))[0] == 0
    assert run("decompress", str(out), "-o", str(back))[0] == 0
    a, b = uproot.open(f)["events"], uproot.open(back)["events"]
    assert set(a.keys()) == set(b.keys())
    assert list(a["Type"].array(library="np")) == list(b["Type"].array(library="np"))


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "balerc.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "compress" in out.stdout


def test_train_without_torch_prints_the_install_hint(tmp_path):
    """`balerc --help` needs no torch; `balerc train` without it says how to install it."""
    data = tmp_path / "t.csv"
    data.write_text("a,b\n1.0,2.0\n")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from click.testing import CliRunner\n"
        "from balerc.cli.main import cli\n"
        "print(CliRunner().invoke(cli, ['--help']).exit_code)\n"
        "r = CliRunner().invoke(cli, ['train', sys.argv[1], '-o', sys.argv[2]])\n"
        "print(r.exit_code); print(r.output)\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data), str(tmp_path / "m")],
                         capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert lines[:2] == ["0", "2"], out.stdout + out.stderr
    assert "pip install torch" in out.stdout and "balerc[train]" in out.stdout
    assert lines[-1] == "False" and not (tmp_path / "m").exists()


def test_top_level_package_is_light_and_runs_the_cli():
    code = ("import sys, balerc; "
            "assert balerc.__version__ and callable(balerc.open_writer); "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
    out = subprocess.run([sys.executable, "-m", "balerc", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "version" in out.stdout


@pytest.mark.parametrize("args", [
    ["decompress", "{blc}", "-o", "{out}", "--columns", ""],
    ["decompress", "{blc}", "-o", "{out}", "--columns", " , "],
    ["compress", "{csv}", "-o", "{out2}", "--lossless", "--columns", ""],
])
def test_empty_columns_is_refused_not_read_as_every_column(tmp_path, dimuon_csv, args):
    """`--columns "$COLS"` with COLS unset used to keep every column silently."""
    blc = tmp_path / "mu.balerc"
    run("compress", str(dimuon_csv), "-o", str(blc), "--lossless", "-q")
    paths = {"blc": blc, "out": tmp_path / "x.csv", "csv": dimuon_csv,
             "out2": tmp_path / "y.balerc"}
    code, text = run(*[a.format(**paths) for a in args])
    assert code == 2 and "names no column" in text and "leave the option out" in text
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.balerc").exists()


def test_tiny_chunks_are_warned_about(tmp_path, dimuon_csv):
    """--chunk-rows 1 made Zmumu 0.46x (larger than its input) and 40x slower, silently."""
    code, text = run("compress", str(dimuon_csv), "-o", str(tmp_path / "a.balerc"),
                     "--lossless", "-q", "--chunk-rows", "100")
    assert code == 0 and "--chunk-rows 100: every chunk stores" in text
    code, text = run("compress", str(dimuon_csv), "-o", str(tmp_path / "b.balerc"),
                     "--lossless", "-q", "--chunk-rows", "1024")
    assert code == 0 and "warning" not in text


def test_demo_replaces_only_its_own_files(tmp_path):
    """`balerc demo -o DIR` deleted DIR whole before writing (`-o .` would have emptied the
    working folder); then it replaced any dimuon.root there: now only files of a folder the
    demo wrote (its marker) are replaced."""
    from balerc.cli.demo import DEMO_FILES, MARKER, _replace_previous
    from balerc.formats.errors import InputError

    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    for name in DEMO_FILES:
        (tmp_path / name).write_text("someone's own file")
    with pytest.raises(InputError, match="holds dimuon.root, dimuon.balerc, not written by"):
        _replace_previous(tmp_path)
    assert (tmp_path / "dimuon.root").read_text() == "someone's own file"
    (tmp_path / MARKER).touch()  # a previous demo's folder
    _replace_previous(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]
    assert keep.read_text() == "mine"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "thesis.tex").write_text("x")
    with pytest.raises(InputError, match="is not the demo's model"):
        _replace_previous(tmp_path)
    assert (tmp_path / "model" / "thesis.tex").exists()
    _replace_previous(tmp_path / "new" / "out")
    assert (tmp_path / "new" / "out" / MARKER).is_file()


def test_outputs_that_are_not_files_and_literal_names(tmp_path, dimuon_csv):
    """-f had renamed a file over a FIFO (and over /dev/null), and over a symlink instead
    of writing its target; a file named 'br[a].csv' had been taken for a pattern."""
    import os

    fifo = tmp_path / "f.balerc"
    os.mkfifo(fifo)
    code, text = run("compress", str(dimuon_csv), "-o", str(fifo), "--lossless", "-f", "-q")
    assert code == 2 and "is not a regular file" in text and fifo.is_fifo()
    real, link = tmp_path / "real.balerc", tmp_path / "link.balerc"
    real.write_text("x")
    link.symlink_to(real.name)
    assert run("compress", str(dimuon_csv), "-o", str(link), "--lossless", "-f", "-q")[0] == 0
    assert link.is_symlink() and real.read_bytes()[:4] != b"x"
    odd = tmp_path / "br[a].csv"
    odd.write_bytes(dimuon_csv.read_bytes())
    code, text = run("compress", str(odd), "--lossless", "-q")
    assert code == 0, text
    assert (tmp_path / "br[a].balerc").is_file()


def test_debug_keeps_the_exit_status_and_reports_go_to_new_folders(tmp_path, dimuon_csv):
    """--debug had turned exit 2 into Python's 1 (info's 'damaged'); evaluate and compare
    had overwritten a user's summary.md or results.md in an existing folder."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "balerc.cli", "--debug", "compress",
                        str(tmp_path / "none.csv"), "--lossless"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" in r.stderr
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.md").write_text("important")
    code, text = run("compare", str(dimuon_csv), "--bound", "rel:1e-3", "-o", str(folder),
                     "--methods", "zstd", "--sweep", "none")
    assert code == 2 and "is not empty" in text
    assert (folder / "results.md").read_text() == "important"


def test_a_read_only_place_is_refused_before_training(tmp_path, monkeypatch):
    """Training to a read-only mount had failed after its work with an internal error
    (exit 3); the place is now proven writable first (os.access says yes to root)."""
    import tempfile

    from balerc.formats.errors import InputError
    from balerc.formats.fileio import check_writable_dir

    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(InputError, match=r"cannot write the model to .*Read-only file system"):
        check_writable_dir(tmp_path / "m", "the model to")
