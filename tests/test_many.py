"""Many files at once: globs, file:tree, output names, failures by name, Dask and a pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from balerc.codec import many
from balerc.codec.pipeline import read_container
from balerc.formats import toy
from balerc.formats.errors import InputError
from balerc.formats.tableio import read_table, write_table


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("many")
    for i in range(3):
        write_table(toy.dimuon(3000, seed=i), d / f"run{i}.npz")
    write_table(toy.dimuon(2000, seed=9), d / "tree.root")
    (d / "broken.npz").write_bytes(b"not a zip")
    return d


def test_specs_globs_and_names(inputs, tmp_path):
    got = many.expand_inputs([str(inputs / "run*.npz"), f"{inputs / 'tree.root'}:events"])
    assert [(p.name, t) for p, t in got] == [("run0.npz", None), ("run1.npz", None),
                                             ("run2.npz", None), ("tree.root", "events")]
    outs = many.plan_outputs(got, tmp_path, ".balerc")
    assert [o.name for o in outs] == ["run0.balerc", "run1.balerc", "run2.balerc",
                                      "tree.events.balerc"]
    with pytest.raises(InputError, match="is given twice"):
        many.plan_outputs([(inputs / "run0.npz", None), (inputs / "run0.npz", None)], tmp_path,
                          ".balerc")
    other = tmp_path / "other"
    other.mkdir()
    (other / "run0.npz").write_bytes((inputs / "run0.npz").read_bytes())
    with pytest.raises(InputError, match="would both be written to"):
        many.plan_outputs([(inputs / "run0.npz", None), (other / "run0.npz", None)], tmp_path,
                          ".balerc")
    with pytest.raises(InputError, match="no file matches"):
        many.expand_inputs([str(inputs / "nothing*.root")])


def test_process_pool_by_default(inputs, tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    seen = []
    res = many.compress_files([str(inputs / "run*.npz"), str(inputs / "broken.npz")], tmp_path,
                              bound="rel:1e-3", workers=2, progress=seen.append)
    assert [r.ok for r in res] == [True, True, True, False] and len(seen) == 4
    assert "broken.npz" in res[3].error and res[0].worst_error_over_bound <= 1.0
    assert read_container(tmp_path / "run1.balerc").n_rows == 3000


def test_local_dask_cluster_and_a_scheduler_address(inputs, tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    res = many.compress_files([str(inputs / "run*.npz")], tmp_path, bound="pwrel:1e-3",
                              workers=2, scheduler="local")
    assert all(r.ok for r in res) and len(res) == 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        out = tmp_path / "sched"
        out.mkdir()
        res = many.compress_files([f"{inputs / 'tree.root'}:events"], out, bound="abs:0.01",
                                  scheduler=cluster.scheduler_address)
    assert res[0].ok and (out / "tree.events.balerc").exists()


def test_cli_many_inputs(inputs, tmp_path):
    r = subprocess.run([sys.executable, "-m", "balerc.cli", "compress", str(inputs / "run*.npz"),
                        str(inputs / "broken.npz"), "--output-dir", str(tmp_path),
                        "--error-bound", "rel:1e-3", "--json"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2 and "1 file(s) failed" in r.stderr and "broken.npz" in r.stderr
    rows = json.loads(r.stdout)
    assert [x["ok"] for x in rows] == [True, True, True, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run0.balerc", "run1.balerc",
                                                           "run2.balerc"]


def test_decompress_many_back_to_their_formats(inputs, tmp_path):
    packed = tmp_path / "packed"
    packed.mkdir()
    assert all(r.ok for r in many.compress_files([str(inputs / "run*.npz")], packed,
                                                 bound="abs:0.01"))
    back = tmp_path / "back"
    back.mkdir()
    r = subprocess.run([sys.executable, "-m", "balerc.cli", "decompress",
                        str(packed / "*.balerc"), "--output-dir", str(back), "-q"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in back.iterdir()) == ["run0.npz", "run1.npz", "run2.npz"]
    with pytest.raises(InputError, match="already exists"):
        many.decompress_files([str(packed / "run0.balerc")], back)
    res, = many.decompress_files([str(packed / "run0.balerc")], tmp_path / "new" / "dir")
    assert [p.name for p in (tmp_path / "new" / "dir").iterdir()] == ["run0.npz"]  # created
    assert res.ratio is not None
    first = read_table(back / "run0.npz").names[0]
    part, = many.decompress_files([str(packed / "run0.balerc")], tmp_path / "part",
                                  columns=[first])
    assert part.ok and part.ratio is None  # a column's bytes over the file's: no ratio
    with pytest.raises(InputError, match="is not a directory"):
        many.decompress_files([str(packed / "run0.balerc")], packed / "run0.balerc")
    with pytest.raises(InputError, match="cannot be created: Not a directory"):
        many.decompress_files([str(packed / "run0.balerc")], packed / "run0.balerc" / "sub")



def test_decompress_many_whole_trees_reports_each(tmp_path):
    """Whole trees (sections) back to .root through --output-dir: each file's summary
    with its events and decoded bytes (the streamed ROOT writer returns no table, and the
    summary once failed on it after writing every file)."""
    pytest.importorskip("uproot")
    from balerc.formats.root_writers import write_root_sections
    from balerc.formats.toy_nano import nanoaod_like

    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        write_root_sections(nanoaod_like(150, i), src / f"nano{i}.root")
    packed, back = tmp_path / "packed", tmp_path / "back"
    packed.mkdir()
    back.mkdir()
    assert all(r.ok for r in many.compress_files([str(src / "*.root")], packed, lossless=True))
    r = subprocess.run([sys.executable, "-m", "balerc.cli", "decompress",
                        str(packed / "*.balerc"), "--output-dir", str(back), "--json"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["ok"] for x in rows] == [True, True]
    assert all(x["rows"] == 150 and x["raw_bytes"] > 0 for x in rows), rows
    assert sorted(p.name for p in back.iterdir()) == ["nano0.root", "nano1.root"]

    # FILE.balerc:SECTION picks that section, as --sections does (the ':Jet' had been
    # dropped and the whole tree written); with --sections too it is refused
    one = tmp_path / "one"
    got = many.decompress_files([f"{packed / 'nano0.balerc'}:Jet"], one, workers=1)
    assert [(r.ok, Path(r.output).name) for r in got] == [(True, "nano0.Jet.root")], got
    import uproot

    with uproot.open(one / "nano0.Jet.root") as f:
        names = f[f.keys(cycle=False)[0]].keys()
    assert any(n.startswith("Jet_") for n in names), names
    assert not any(n.startswith("Muon_") for n in names), names
    with pytest.raises(InputError, match="not both"):
        many.decompress_files([f"{packed / 'nano0.balerc'}:Jet"], one, sections=["Muon"])

def test_train_on_rows_sampled_across_files(inputs, tmp_path):
    pytest.importorskip("torch")
    from balerc.train import TrainConfig, train_files

    cfg = TrainConfig(epochs=2, progress=False, threads=1, physics="off", latent=2,
                      anchors=[])
    model, path = train_files([str(inputs / "run*.npz")], tmp_path / "m", cfg, max_rows=3000)
    manifest = json.loads((path / "model.json").read_text())
    assert manifest["training"]["rows"] == 3000  # 1,000 from each of the three files
    with pytest.raises(InputError, match="no file matches"):
        train_files([str(inputs / "none*.npz")], tmp_path / "m2", cfg)


def test_training_files_of_one_schema_in_any_order_but_not_of_other_kinds(tmp_path):
    """An int column in one file and float in another had been trained as a float column
    (the model then refused the int file); the same columns in another order had been
    refused though compress accepts that."""
    pytest.importorskip("torch")
    import numpy as np

    from balerc.formats.table import Table
    from balerc.formats.tableio import write_table
    from balerc.train import TrainConfig, train_files

    rng = np.random.default_rng(0)
    cols = {n: rng.normal(size=400) for n in ("a", "b", "c")}
    write_table(Table(cols), tmp_path / "x.npz")
    write_table(Table({n: cols[n] for n in ("c", "a", "b")}), tmp_path / "y.npz")
    write_table(Table(dict(cols, a=np.arange(400))), tmp_path / "z.npz")
    cfg = TrainConfig(epochs=1, progress=False, threads=1, physics="off", latent=1,
                      anchors=[])
    _, path = train_files([str(tmp_path / "x.npz"), str(tmp_path / "y.npz")], tmp_path / "m",
                          cfg)
    assert json.loads((path / "model.json").read_text())["columns"] == ["a", "b", "c"]
    with pytest.raises(InputError, match=r"z.npz: column kinds differ from the first file .*"
                       r"'a': \('float64', 'int64'\)"):
        train_files([str(tmp_path / "x.npz"), str(tmp_path / "z.npz")], tmp_path / "m2", cfg)


def test_a_bad_npy_fails_alone_and_the_call_is_checked_first(tmp_path):
    """A garbage or truncated .npy aborted the whole run with a bare ValueError that named
    no file; a misspelt option failed in every worker; [] and a plain string crashed."""
    import numpy as np

    d = tmp_path / "in"
    d.mkdir()
    np.save(d / "good.npy", np.random.default_rng(0).normal(size=(500, 3)))
    (d / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    np.save(d / "cut.npy", np.zeros((1000, 3)))
    (d / "cut.npy").write_bytes((d / "cut.npy").read_bytes()[:5000])
    out = tmp_path / "out"
    out.mkdir()
    res = many.compress_files([str(d / "*.npy")], out, bound="abs:1e-3", workers=1)
    by = {Path(r.input).name: r for r in res}
    assert by["good.npy"].ok and not by["bad.npy"].ok and not by["cut.npy"].ok
    assert "bad.npy: not a valid .npy file" in by["bad.npy"].error
    assert "cut.npy: truncated .npy file: its header says 1,000 x 3" in by["cut.npy"].error
    assert many.compress_files([], out, bound="abs:1e-3") == []
    with pytest.raises(InputError, match=r"unknown option\(s\) \['chunkrows'\]"):
        many.compress_files([str(d / "good.npy")], out, bound="abs:1e-3", chunkrows=5)
    one = many.compress_files(str(d / "good.npy"), out, bound="abs:1e-3", force=True)
    assert [r.ok for r in one] == [True]


def _dies_on_run1(path, tree, output, options):
    """compress_one, except that the worker handling run1 dies (an OOM kill)."""
    import os

    if "run1" in path:
        os._exit(137)
    return many.compress_one(path, tree, output, options)


def test_a_worker_that_dies_fails_its_file_alone(inputs, tmp_path):
    """A killed worker broke the process pool: BrokenProcessPool ended the whole run with
    no result (the CLI: 'internal error'); now that file fails by name, the rest finish."""
    files = [inputs / f"run{i}.npz" for i in range(3)]
    outs = [tmp_path / f"run{i}.balerc" for i in range(3)]
    res = many._run_in_order(_dies_on_run1, [(p, None) for p in files], outs,
                             {"bound": "rel:1e-3"}, None, None, 2, None)
    assert [r.ok for r in res] == [True, False, True]
    assert "run1.npz: its worker process died" in res[1].error
    assert read_container(outs[2]).n_rows == 3000


def test_an_unreachable_scheduler_is_an_input_error(inputs, tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(InputError, match="cannot reach the Dask scheduler 'locl'"):
        many.compress_files([str(inputs / "run0.npz")], tmp_path, bound="rel:1e-3",
                            scheduler="locl")


@pytest.mark.parametrize(("kw", "match"), [
    ({"bound": "bogus:1"}, "unknown bound mode 'bogus'"),
    ({"bound": "rel:1e-3", "chunk_rows": 0}, "chunk_rows"),  # these had failed once per file
    ({"bound": "rel:1e-3", "zstd_level": 99}, "zstd_level"),
    ({"bound": "rel:1e-3", "lossless": True}, "cannot be combined"),
    ({}, "say how to compress"),
])
def test_a_bad_option_is_refused_before_any_file(inputs, tmp_path, kw, match):
    with pytest.raises(InputError, match=match):
        many.compress_files([str(inputs / "run*.npz")], tmp_path, **kw)
    assert not list(tmp_path.iterdir())


def test_a_bad_root_option_is_refused_once_before_any_file(inputs, tmp_path):
    packed = tmp_path / "packed"
    assert all(r.ok for r in many.compress_files([str(inputs / "run*.npz")], packed,
                                                  lossless=True))
    for bad, match in (({"root_compression": "lzma:99"}, "lzma:99"),
                       ({"root_format": "hdf5"}, "use one of")):
        with pytest.raises(InputError, match=match):
            many.decompress_files([str(packed / "*.balerc")], tmp_path / "back", **bad)
        assert not (tmp_path / "back").exists()


def _interrupt(*a, **k):
    raise KeyboardInterrupt


def _interrupted_compress(path: str) -> None:
    """In a child process: compress_one with a Ctrl-C in the middle of the file."""
    from balerc.codec import api

    api.compress_file = _interrupt  # this child's own copy of the module
    many.compress_one(path, None, path + ".balerc", {"lossless": True})


def test_ctrl_c_stops_a_pool_worker_instead_of_its_next_file(tmp_path, monkeypatch):
    """Workers had handed Ctrl-C back as a result and taken the next queued file (a run
    'interrupted after 1 of 8' went on to write 6 more); a worker now exits, and the
    caller's own process still gets the KeyboardInterrupt."""
    import multiprocessing

    src = tmp_path / "t.npz"
    write_table(toy.dimuon(50, seed=0), src)
    child = multiprocessing.get_context("spawn").Process(target=_interrupted_compress,
                                                        args=(str(src),))
    child.start()
    child.join(120)  # spawn: no fork of a process with threads (Dask tests start some)
    assert child.exitcode == 130
    from balerc.codec import api

    monkeypatch.setattr(api, "compress_file", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        many.compress_one(str(src), None, str(src) + ".balerc", {"lossless": True})


def test_one_unreadable_input_fails_alone_and_a_file_given_twice_is_named(inputs, tmp_path):
    """decompress_files had stopped every file for one input that is not a .balerc (it
    reads each header to name the outputs); a file given twice was told to use different
    output folders."""
    packed = tmp_path / "packed"
    packed.mkdir()
    assert all(r.ok for r in many.compress_files([str(inputs / "run0.npz")], packed,
                                                 bound="abs:0.01"))
    (packed / "junk.balerc").write_bytes(b"not a container")
    res = many.decompress_files([str(packed / "junk.balerc"), str(packed / "run0.balerc")],
                                tmp_path / "back")
    assert [r.ok for r in res] == [False, True] and "junk.balerc" in res[0].error
    assert (tmp_path / "back" / "run0.npz").is_file()
    with pytest.raises(InputError, match=r"run0.npz is given twice"):
        many.compress_files([str(inputs / "run0.npz"), str(inputs / "run0.npz")],
                            tmp_path / "o", lossless=True)
