"""`balerc evaluate`: the report's figures, numbers recomputed independently, masses, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from balerc.cli.analysis import fourvec, peakfit
from balerc.cli.evaluate_cmd import evaluate_command
from balerc.cli.main import BalercGroup
from balerc.codec.ae import compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.formats import toy
from balerc.formats.table import Table
from balerc.formats.tableio import read_table, write_table

ZMUMU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "skhep_testdata_subset" / "uproot-Zmumu.root"
FLOATS = ["E1", "px1", "py1", "pz1", "pt1", "eta1", "phi1",
          "E2", "px2", "py2", "pz2", "pt2", "eta2", "phi2", "M"]


def invoke(*args: str) -> tuple[int, str]:
    """Run evaluate under the real error handling of the balerc group (one-line errors)."""
    @click.group(cls=BalercGroup)
    def group() -> None:
        pass

    group.add_command(evaluate_command)
    res = CliRunner().invoke(group, ["evaluate", *map(str, args)])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained model (few epochs): only its loss curve and decoder are needed."""
    pytest.importorskip("torch")
    from balerc.train import TrainConfig, export, fit

    cfg = TrainConfig(epochs=3, latent=2, anchors=["px1", "py1", "pz1", "px2", "py2", "pz2"],
                      threads=2)
    return export(fit(toy.dimuon(3000, seed=5), cfg), tmp_path_factory.mktemp("model"), force=True)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict:
    """20k generated dimuon events, compressed with the model at rel:1e-3, evaluated once."""
    d = tmp_path_factory.mktemp("toy")
    table = toy.dimuon(20_000, seed=1)
    data, blc, rep = d / "dimuon.root", d / "dimuon.balerc", d / "report"
    write_table(table, data)
    compress_with_model(table, blc, model_dir=model_dir, bound="rel:1e-3", keep_model=True)
    code, out = invoke(data, blc, "-o", rep, "--model", model_dir, "--mass-window", "75,107")
    assert code == 0, out
    return {"table": read_table(data), "file": blc, "report": rep, "model": model_dir,
            "summary": json.loads((rep / "summary.json").read_text())}


def test_another_models_directory_is_refused(toy_run: dict, tmp_path: Path) -> None:
    """evaluate --model with a model the file was not compressed with had reported that
    model's training curve as this file's (decompress -m checks the decoder's sha256)."""
    import hashlib
    import shutil

    other = tmp_path / "other"
    shutil.copytree(toy_run["model"], other)
    man = json.loads((other / "model.json").read_text())
    dec = other / man["decoder"]["file"]
    dec.write_bytes(dec.read_bytes() + b"\x00")  # another decoder, consistently recorded
    man["decoder"]["sha256"] = hashlib.sha256(dec.read_bytes()).hexdigest()
    (other / "model.json").write_text(json.dumps(man))
    data = toy_run["file"].parent / "dimuon.root"
    code, out = invoke(data, toy_run["file"], "-o", tmp_path / "rep", "--model", other)
    assert code == 2 and "is not the one" in out and "compressed with" in out, out


# ---------------------------------------------------------------- figures and files


def test_report_holds_expected_figures(toy_run: dict) -> None:
    rep = toy_run["report"]
    expected = {f"column_{n}.png" for n in FLOATS} | {
        "residuals_boxplot.png", "correlation.png", "mass_1_2.png", "loss_curve.png"}
    pngs = {p.name for p in rep.glob("*.png")}
    assert pngs == expected  # no single-muon masses: not an analysis quantity
    assert len(pngs) == 19
    assert [f["file"] for f in toy_run["summary"]["figures"]] == sorted(
        expected, key=[f["file"] for f in toy_run["summary"]["figures"]].index)
    html = (rep / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 19  # every figure inlined
    assert "http://" not in html and "https://" not in html  # readable offline
    md = (rep / "summary.md").read_text()
    assert all(f"| {n} |" in md for n in FLOATS)


# ---------------------------------------------------------------- numbers


def test_summary_numbers_equal_independent_recomputation(toy_run: dict) -> None:
    s, data = toy_run["summary"], toy_run["table"]
    back = decompress(toy_run["file"])
    bound = Bound.parse("rel:1e-3")
    for n in FLOATS:
        y, y2 = data[n].astype(np.float64), back[n].astype(np.float64)
        r = y2 - y
        c = s["columns"][n]
        assert c["residual"]["mean"] == pytest.approx(r.mean(), rel=1e-9, abs=1e-15)
        assert c["residual"]["rms"] == pytest.approx(math.sqrt(np.mean(r**2)), rel=1e-9)
        assert c["residual"]["max_abs"] == pytest.approx(np.abs(r).max(), rel=1e-12)
        assert c["response"]["rms"] == pytest.approx(math.sqrt(np.mean((r / y) ** 2)), rel=1e-9)
        e = bound.absolute(y)
        assert c["bound"] == pytest.approx(e, rel=1e-12)
        assert c["max_over_bound"] == pytest.approx(np.abs(r).max() / e, rel=1e-9)
        assert c["held"] is True and c["max_over_bound"] <= 1.0
    assert s["all_held"] is True
    x0, x1 = data.to_numpy(FLOATS), back.to_numpy(FLOATS)
    d = np.abs(np.corrcoef(x1, rowvar=False) - np.corrcoef(x0, rowvar=False))
    assert s["correlation"]["max_abs_diff"] == pytest.approx(d.max(), rel=1e-6)
    # pair mass by hand: sum the two four-vectors, then sqrt(E^2 - p^2)
    def pair(t: Table) -> np.ndarray:
        e, px, py, pz = (t[f"{c}1"] + t[f"{c}2"] for c in ("E", "px", "py", "pz"))
        return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
    m0, m1 = pair(data), pair(back)
    rel = (m1 - m0) / m0
    mass = s["masses"]["m(1+2)"]
    assert mass["rel_diff_rms"] == pytest.approx(math.sqrt(np.mean(rel**2)), rel=1e-9)
    assert mass["rel_diff_mean"] == pytest.approx(rel.mean(), rel=1e-9, abs=1e-15)
    fb, fa = mass["fit_before"], mass["fit_after"]
    assert s["relative_mass_difference"] == pytest.approx((fa["mean"] - fb["mean"]) / fb["mean"])
    assert s["file"]["bytes"] == toy_run["file"].stat().st_size
    assert s["file"]["ratio"] == pytest.approx(data.nbytes / toy_run["file"].stat().st_size)
    lines = (toy_run["model"] / "loss_curve.csv").read_text().strip().splitlines()
    assert s["loss_curve"]["epochs"] == len(lines) - 1


def test_fitted_z_peak_at_generated_mass(toy_run: dict) -> None:
    mass = toy_run["summary"]["masses"]["m(1+2)"]
    assert mass["window"] == [75.0, 107.0]
    fb, fa = mass["fit_before"], mass["fit_after"]
    # the generated Z (Breit-Wigner at Z_MASS smeared by a symmetric resolution): within
    # 3 standard errors of the fitted mean, before and after compression at rel:1e-3
    assert abs(fb["mean"] - toy.Z_MASS) < 3 * fb["mean_err"], fb
    assert abs(fa["mean"] - toy.Z_MASS) < 3 * fa["mean_err"], fa
    assert fb["mean_err"] < 0.1


def test_automatic_window_finds_the_highest_peak() -> None:
    """Generated events: J/psi (narrowest, most events per log-mass bin) is the highest peak."""
    t = toy.dimuon(20_000, seed=3)
    m = fourvec.mass_quantities(t, fourvec.detect(t)[0])["m(1+2)"]
    lo, hi = peakfit.find_window(m)
    assert lo < 3.0969 < hi and hi - lo < 1.0
    fit, why = peakfit.fit_peak(m, (lo, hi), peakfit.default_bins(m, (lo, hi)))
    assert fit is not None, why
    assert abs(fit.mean - 3.0969) < 3 * fit.mean_err + 1e-3


def test_invariant_mass_of_known_rows() -> None:
    """Back-to-back muons of energy E along x: the pair mass is 2E exactly; one muon's mass
    is sqrt(E^2 - p^2); the polar form (pt, eta, phi, mass) gives the same numbers."""
    e, p = 45.0, 44.0
    m_mu = math.sqrt(e * e - p * p)
    t = Table({
        "E1": np.array([e, 10.0]), "px1": np.array([p, 3.0]), "py1": np.array([0.0, 4.0]),
        "pz1": np.array([0.0, 5.0]),
        "E2": np.array([e, 20.0]), "px2": np.array([-p, -1.0]), "py2": np.array([0.0, 2.0]),
        "pz2": np.array([0.0, 12.0]),
    })
    fvs, notes = fourvec.detect(t)
    assert [f.columns for f in fvs] == [("E1", "px1", "py1", "pz1"), ("E2", "px2", "py2", "pz2")]
    q = fourvec.mass_quantities(t, fvs)
    assert q["m(1+2)"][0] == pytest.approx(2 * e, rel=1e-15)
    assert list(q) == ["m(1+2)"]  # no single-object masses
    assert fourvec.invariant_mass(fourvec.cartesian(t, fvs[0]))[0] == pytest.approx(m_mu, rel=1e-14)
    hand = math.sqrt((10 + 20) ** 2 - (3 - 1) ** 2 - (4 + 2) ** 2 - (5 + 12) ** 2)
    assert q["m(1+2)"][1] == pytest.approx(hand, rel=1e-14)
    # the same two muons in polar form with a prefix naming (Muon_...)
    px, py, pz = np.array([p, 3.0]), np.array([0.0, 4.0]), np.array([0.0, 5.0])
    pt = np.hypot(px, py)
    polar = Table({"Mu_pt": pt, "Mu_eta": np.arcsinh(pz / pt), "Mu_phi": np.arctan2(py, px),
                   "Mu_mass": np.sqrt(np.maximum(np.array([e, 10.0]) ** 2 - px**2 - py**2 - pz**2, 0))})
    (fv,), _ = fourvec.detect(polar)
    assert fv.kind == "polar" and fv.label == "Mu"
    assert fourvec.mass_quantities(polar, [fv]) == {}
    assert fourvec.invariant_mass(fourvec.cartesian(polar, fv))[0] == pytest.approx(m_mu, rel=1e-9)


def test_names_alone_are_not_enough() -> None:
    rng = np.random.default_rng(0)
    t = Table({c: rng.normal(size=200) for c in ("E1", "px1", "py1", "pz1")})  # E < |p| often
    fvs, notes = fourvec.detect(t)
    assert fvs == [] and "not used" in notes[0]


# ---------------------------------------------------------------- real data (Zmumu)


@pytest.fixture(scope="module")
def zmumu_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not ZMUMU.exists():
        pytest.skip(f"{ZMUMU} is absent (../shared/data not available)")
    d = tmp_path_factory.mktemp("zmumu")
    blc, rep = d / "z.balerc", d / "report"
    compress_with_model(read_table(ZMUMU), blc, model_dir=None, bound="rel:1e-3")
    code, out = invoke(ZMUMU, blc, "-o", rep, "--format", "pdf", "--max-column-plots", "4")
    assert code == 0, out
    return {"file": blc, "report": rep, "summary": json.loads((rep / "summary.json").read_text())}


def test_zmumu_pdf_report(zmumu_run: dict) -> None:
    rep, s = zmumu_run["report"], zmumu_run["summary"]
    assert sorted(p.name for p in rep.iterdir()) == ["report.html", "report.pdf", "summary.json",
                                                     "summary.md"]
    names = [f["name"] for f in s["figures"]]
    assert names == ["mass_1_2", "residuals_boxplot", "correlation", "column_E1", "column_px1",
                     "column_py1", "column_pz1"]  # the headline mass first
    pdf = (rep / "report.pdf").read_bytes()
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page>") + pdf.count(b"/Type /Page ") == 7
    assert any("first 4 of 15" in n for n in s["notes"])  # the cap is stated
    assert len(s["columns"]) == 15  # ... and every column is still in the numbers


def test_zmumu_masses(zmumu_run: dict) -> None:
    data, s = read_table(ZMUMU), zmumu_run["summary"]
    fvs, _ = fourvec.detect(data)
    m = fourvec.mass_quantities(data, fvs)["m(1+2)"]
    # the file's own M column was computed from the same four-vectors by CMS software
    assert np.allclose(m, data["M"], rtol=1e-6)
    row = [float(data[c][0]) for c in ("E1", "px1", "py1", "pz1", "E2", "px2", "py2", "pz2")]
    hand = math.sqrt((row[0] + row[4]) ** 2 - (row[1] + row[5]) ** 2 - (row[2] + row[6]) ** 2
                     - (row[3] + row[7]) ** 2)
    assert m[0] == pytest.approx(hand, rel=1e-12)
    fb = s["masses"]["m(1+2)"]["fit_before"]
    assert abs(fb["mean"] - toy.Z_MASS) < 1.0  # the real Z peak (detector scale within 1%)
    back = decompress(zmumu_run["file"])
    m2 = fourvec.mass_quantities(back, fvs)["m(1+2)"]
    rel = (m2 - m) / m
    assert s["masses"]["m(1+2)"]["rel_diff_rms"] == pytest.approx(math.sqrt(np.mean(rel**2)), rel=1e-9)
    assert abs(s["relative_mass_difference"]) < 1e-2


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("small")
    table = toy.dimuon(400, seed=2)
    data = d / "data.npz"
    write_table(table, data)
    good = d / "good.balerc"
    compress_with_model(table, good, model_dir=None, bound="rel:1e-3")
    short = d / "short.balerc"
    compress_with_model(table.slice(0, 300), short, model_dir=None, bound="rel:1e-3")
    renamed = d / "renamed.balerc"
    cols = dict(table.columns)
    cols["E1_other"] = cols.pop("E1")
    compress_with_model(Table(cols), renamed, model_dir=None, bound="rel:1e-3")
    return {"dir": d, "data": data, "good": good, "short": short, "renamed": renamed}


def test_file_with_other_rows_is_refused(small: dict) -> None:
    code, out = invoke(small["data"], small["short"], "-o", small["dir"] / "r1")
    assert code == 2
    assert "does not belong" in out and "300 rows" in out and "400" in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert not (small["dir"] / "r1").exists()  # a refused run leaves nothing behind


def test_file_with_other_columns_is_refused(small: dict) -> None:
    code, out = invoke(small["data"], small["renamed"], "-o", small["dir"] / "r2")
    assert code == 2
    assert "does not belong" in out and "'E1_other'" in out
    assert len(out.strip().splitlines()) == 1



def test_columns_select_the_same_columns_of_data_and_file(small: dict) -> None:
    """--columns applies to DATA and FILE alike (it once selected DATA only, so every use
    was refused as 'does not belong'); the report covers just those columns."""
    out_dir = small["dir"] / "r_cols"
    code, out = invoke(small["data"], small["good"], "-o", out_dir, "--columns",
                       "E1,px1,py1,pz1")
    assert code == 0, out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert sorted(summary["columns"]) == ["E1", "px1", "py1", "pz1"] and summary["all_held"]
    # the ratio is the whole file's (its bytes against all its columns), not the file's
    # bytes against the four picked columns' raw bytes (which read ~4x too low)
    from balerc.formats.tableio import read_table

    f = summary["file"]
    assert f["raw_bytes"] == read_table(small["data"]).nbytes
    assert f["ratio"] == pytest.approx(f["raw_bytes"] / small["good"].stat().st_size)
    assert "ratio" in out and "(whole file)" in out

def test_four_vector_naming_missing_columns(small: dict) -> None:
    code, out = invoke(small["data"], small["good"], "-o", small["dir"] / "r3",
                       "--four-vector", "mu=E1,px1,py1,nope")
    assert code == 2
    assert "--four-vector" in out and "'nope'" in out
    assert len(out.strip().splitlines()) == 1


def test_unwritable_output_directory(small: dict) -> None:
    blocker = small["dir"] / "a_file"
    blocker.write_text("not a directory")
    code, out = invoke(small["data"], small["good"], "-o", blocker / "report")
    assert code == 2 and "cannot write the report" in out
    code, out = invoke(small["data"], small["good"], "-o", blocker)
    assert code == 2 and "not a directory" in out


def test_existing_report_needs_force(small: dict) -> None:
    rep = small["dir"] / "r5"
    rep.mkdir()
    (rep / "summary.json").write_text("{}")
    code, out = invoke(small["data"], small["good"], "-o", rep)
    assert code == 2 and "--force" in out


def test_report_headline_first_contents_and_relative_paths(toy_run: dict) -> None:
    rep, s = toy_run["report"], toy_run["summary"]
    html = (rep / "report.html").read_text()
    assert html.index("class='headline'") < html.index("Contents") < html.index("<table>")
    assert "fitted peak shift" in html and "worst column" in html
    assert str(rep.parent) not in html  # no absolute path embedded
    assert s["data"]["path"] == "../dimuon.root" and s["file"]["path"] == "../dimuon.balerc"
    assert "<td class='num'>" in html and "td,th{" in html and "text-align:left" in html
    assert s["units"]["E1"] == "GeV" and s["units"]["pt2"] == "GeV" and s["units"]["phi1"] == "rad"
    assert "eta1" not in s["units"]
    h = s["headline"]
    assert h["held"] is True and h["mass"]["quantity"] == "m(1+2)"
    assert h["worst_column"] in FLOATS and h["mass"]["shift_err"] > 0
    md = (rep / "summary.md").read_text()
    assert md.index("- ratio") < md.index("## Invariant masses") < md.index("## Overview")
    for col in s["columns"].values():
        assert {"became_zero", "sign_changed", "left_range", "at_bound"} <= set(col)


def test_no_training_section_for_a_model_compress_dropped(toy_run: dict, tmp_path: Path) -> None:
    table = toy.dimuon(500, seed=4)
    data, blc = tmp_path / "d.npz", tmp_path / "d.balerc"
    write_table(table, data)
    compress_with_model(table, blc, model_dir=toy_run["model"], bound="rel:1e-3")  # dropped
    code, out = invoke(data, blc, "-o", tmp_path / "r", "--model", toy_run["model"])
    assert code == 0, out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["loss_curve"] is None and "loss_curve" not in [f["name"] for f in s["figures"]]
    assert any("does not use a model" in n for n in s["notes"])
    assert "## Training" not in (tmp_path / "r" / "summary.md").read_text()


def test_one_four_vector_gets_one_note_not_two() -> None:
    """One object per row forms no mass: the note says why, and only that (it also said
    'no four-vector columns found' beside it); none found says so alone."""
    from balerc.cli.analysis.evaluate import EvaluateOptions, _masses

    t = toy.dimuon(300, seed=1)
    one = Table({n: t[n] for n in ["E1", "px1", "py1", "pz1"]})
    fvs, _ = fourvec.resolve(one, None)
    assert len(fvs) == 1
    notes: list[str] = []
    masses, _, primary = _masses(one, one, fvs, EvaluateOptions(), notes)
    assert notes == [fourvec.single_object_note(fvs[0])] and not masses and primary is None
    notes = []
    _masses(one, one, [], EvaluateOptions(), notes)
    assert len(notes) == 1 and notes[0].startswith("no four-vector columns found")


def test_headline_names_the_worst_unbounded_column_too():
    """In Baler's mode (no bound on the predicted columns) the headline showed only the
    anchors' 'max error 0.997 of its bound' while a predicted column was off by 4.5%."""
    from balerc.cli.analysis.evaluate import headline

    def col(over, rel):
        return {"max_over_bound": over, "max_err_rel": rel, "became_zero": 0,
                "sign_changed": 0, "left_range": 0}

    summary = {"columns": {"a": col(0.997, 1e-3), "b": col(None, 0.0454), "c": col(None, 0.01)},
               "file": {"ratio": 2.0, "bound": None}, "all_held": True, "primary_mass": None}
    text = headline(summary)["worst_text"]
    assert text == ("a: max error 0.997 of its bound; unbounded column b: max error 0.0454 "
                    "of its range")
    from balerc.cli.analysis.evaluate import headline_lines

    summary.update(unbounded=["b", "c"], mass=None)  # 'yes' had spoken for b and c too
    summary["headline"] = dict(headline(summary), mass=None)
    assert headline_lines(summary)[0].endswith(
        "every value within its bound: yes (2 column(s) without a bound: b, c)")


def test_a_file_from_other_data_is_pointed_out(tmp_path):
    """Same rows and columns, other values: the bounds follow the file's source, so 'NO'
    alone looked like a codec failure; the report now says FILE records another source."""
    from balerc.cli.main import cli

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path, seed in ((a, 1), (b, 2)):  # float columns only (lossless ones would differ)
        t = toy.dimuon(300, seed=seed)
        write_table(t.select(t.names_of_kind("float")), path)
    res = CliRunner().invoke(cli, ["compress", str(b), "--error-bound", "rel:1e-3", "-q",
                                   "-o", str(tmp_path / "b.balerc")])
    assert res.exit_code == 0, res.output
    few = ("--max-column-plots", "0")  # the figures are not what this checks (~1 s each)
    code, out = invoke(a, tmp_path / "b.balerc", "-o", tmp_path / "r", *few)
    assert code == 0, out
    assert "note: " in out and "was compressed from b.csv" in out and "is FILE from this DATA?" in out
    code, out = invoke(b, tmp_path / "b.balerc", "-o", tmp_path / "r2", *few)
    assert code == 0 and "is FILE from this DATA?" not in out


def test_a_file_of_other_data_is_refused_naming_both_as_given(tmp_path):
    """The message had shown paths relative to the report folder (../x.balerc)."""
    import numpy as np
    from click.testing import CliRunner

    from balerc.cli.main import cli
    from balerc.formats.table import Table
    from balerc.formats.tableio import write_table

    rng = np.random.default_rng(0)
    write_table(Table({"a": rng.normal(size=300)}), tmp_path / "data.csv")
    write_table(Table({"a": rng.normal(size=200)}), tmp_path / "other.csv")
    res = CliRunner().invoke(cli, ["compress", str(tmp_path / "other.csv"), "-o",
                                   str(tmp_path / "other.balerc"), "--error-bound", "rel:1e-3"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "data.csv"),
                                   str(tmp_path / "other.balerc"), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 2
    assert (f"{tmp_path / 'other.balerc'} does not belong to {tmp_path / 'data.csv'}: it has "
            f"200 rows, DATA has 300") in " ".join(res.output.split()), res.output


def test_a_file_of_several_bounds_says_each() -> None:
    """Only the first coder's bound had been reported ('at bound abs:0.01' for a file with
    E1 at abs:0.5)."""
    from balerc.cli.analysis.evaluate import column_bounds
    from balerc.formats.table import Table

    t = Table({"a": np.zeros(3), "b": np.zeros(3), "c": np.zeros(3)})
    header = {"schema": {"columns": [{"name": n} for n in "abc"]}, "coders": [
        {"id": "autoencoder", "columns": [0, 1], "bound": {"mode": "abs", "value": 0.01},
         "abs_bounds": [0.01, 0.01]},
        {"id": "autoencoder", "columns": [2], "bound": {"mode": "abs", "value": 0.5},
         "abs_bounds": [0.5]}]}
    bounds, text = column_bounds(header, t)
    assert text == "abs:0.01 (2 columns), abs:0.5 (1 column)"
    assert bounds["c"].value == 0.5
