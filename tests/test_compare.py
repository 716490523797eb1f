"""`balerc compare`: one row per method and bound, bounds held, missing peers skipped."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from balerc.cli.analysis import peers
from balerc.cli.analysis.compare import BALERC, BALERC_MODEL, CompareOptions, run_compare
from balerc.cli.compare_cmd import compare_command
from balerc.cli.main import BalercGroup
from balerc.codec.bounds import Bound
from balerc.formats import toy
from balerc.formats.errors import InputError
from balerc.formats.tableio import write_table

BOUNDS = ["rel:1e-3", "abs:0.01", "pwrel:1e-3"]


def invoke(*args: object) -> tuple[int, str]:
    """Run compare under the real error handling of the balerc group (one-line errors)."""
    @click.group(cls=BalercGroup)
    def group() -> None:
        pass

    group.add_command(compare_command)
    res = CliRunner().invoke(group, ["compare", *map(str, args)])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("torch")
    from balerc.train import TrainConfig, export, fit

    d = tmp_path_factory.mktemp("compare")
    table = toy.dimuon(4000, seed=4)
    data = d / "dimuon.npz"
    write_table(table, data)
    cfg = TrainConfig(epochs=3, latent=2, anchors=["px1", "py1", "pz1", "px2", "py2", "pz2"],
                      threads=2)
    model = export(fit(table, cfg), d / "model", force=True)
    out = d / "out"
    args: list[object] = [data, "-o", out, "--model", model, "--sweep", "1e-3,1e-2",
                          "--mass-window", "75,107"]
    for b in BOUNDS:
        args += ["--bound", b]
    code, text = invoke(*args)
    assert code == 0, text
    return {"table": table, "out": out, "text": text,
            "results": json.loads((out / "results.json").read_text())}


def test_one_row_per_method_and_bound(run: dict) -> None:
    res = run["results"]
    methods = [BALERC, BALERC_MODEL, *peers.PEERS]
    assert res["methods"] == methods
    keys = [(r["method"], r["bound"]) for r in res["rows"]]
    assert keys == [(m, str(Bound.parse(b))) for b in BOUNDS for m in methods]
    raw = run["table"].select(run["table"].names_of_kind("float")).nbytes
    for r in res["rows"]:
        if r["skipped"]:
            # only the peers without a pointwise-relative mode may be absent here
            assert r["bound"] == "pwrel:0.001" and "no pwrel mode" in r["skipped"], r
            continue
        assert r["raw_bytes"] == raw
        assert r["ratio"] == pytest.approx(raw / r["compressed_bytes"])
        assert r["compress_mbps"] > 0 and r["decompress_mbps"] > 0
        if r["lossless"]:
            assert r["max_err_rel"] == 0 and r["held"] is True
        else:  # every error-bounded method keeps its bound
            assert r["held"] is True, r
            if r["bound"].startswith("rel:"):
                assert r["max_err_rel"] <= 1e-3 * (1 + 1e-9)
    assert {r["method"] for r in res["rows"] if not r["skipped"]} == set(methods)


def test_mass_difference_and_outputs(run: dict) -> None:
    res, out = run["results"], run["out"]
    assert res["mass"]["quantity"] == "m(1+2)" and res["mass"]["window"] == [75.0, 107.0]
    for r in res["rows"]:
        if r["skipped"]:
            continue
        if r["lossless"]:
            assert r["relative_mass_difference"] == 0.0
        else:
            assert abs(r["relative_mass_difference"]) < 5e-3, r
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "rate_distortion.png",
                                               "throughput.png"}
    sweep = res["sweep"]
    assert sweep["bounds"] == ["rel:0.001", "rel:0.01"]
    assert len(sweep["rows"]) == 2 * len(res["methods"])
    md = (out / "results.md").read_text()
    assert all(f"## bound {Bound.parse(b)}" in md for b in BOUNDS)
    assert md.count("| balerc+model |") == len(BOUNDS)
    assert "skipped (no pwrel mode)" in run["text"]


def test_missing_peer_is_reported_as_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "available", lambda name: name != "pysz")
    table = toy.dimuon(500, seed=6)
    res = run_compare(table, [Bound.parse("rel:1e-2")],
                      CompareOptions(methods=["sz3", "quant-zstd"], sweep=[]))
    sz3, quant = res["rows"]
    assert sz3["skipped"] == "skipped (pip install 'balerc[bench]')"
    assert quant["skipped"] is None and quant["held"] is True


def test_bad_compare_input(tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    write_table(toy.dimuon(200, seed=0), data)
    code, out = invoke(data, "--bound", "rel:1e-3", "--methods", "gzip", "-o", tmp_path / "o")
    assert code == 2 and "unknown method" in out and "gzip" in out
    assert "balerc+model (with --model)" in out  # the list names every method
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.json").write_text("{}")  # -m with --methods that leave it out: refused
    code, out = invoke(data, "--bound", "rel:1e-3", "--methods", "balerc", "-m", model,
                       "-o", tmp_path / "o")
    assert code == 2 and "--methods leaves out balerc+model" in out
    blocker = tmp_path / "f"
    blocker.write_text("x")
    code, out = invoke(data, "--bound", "rel:1e-3", "-o", blocker / "o")
    assert code == 2 and "cannot write the report" in out
    with pytest.raises(InputError, match="no float columns"):
        from balerc.formats.table import Table

        run_compare(Table({"i": np.arange(5)}), [Bound.parse("rel:1e-3")], CompareOptions())


def test_one_object_per_row_compares_without_a_mass() -> None:
    """One four-vector (a single jet collection, one jet per row) forms no pair mass: a
    note says so and the comparison runs (it once stopped on an assertion)."""
    t = toy.dimuon(600, seed=2)
    from balerc.formats.table import Table

    one = Table({n: t[n] for n in ["E1", "px1", "py1", "pz1"]})
    res = run_compare(one, [Bound.parse("rel:1e-3")],
                      CompareOptions(methods=[BALERC], sweep=[]))
    assert [r["held"] for r in res["rows"]] == [True]
    assert any("single object's mass" in n for n in res["notes"]), res["notes"]
