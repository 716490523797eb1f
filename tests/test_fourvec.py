"""One `--four-vector` grammar and one name detector for train, evaluate and compare."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from balerc.cli.analysis import fourvec as analysis
from balerc.formats import toy
from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.train import fourvec, relations

CART = {"E": "E1", "px": "px1", "py": "py1", "pz": "pz1"}
ALL1 = {**CART, "pt": "pt1", "eta": "eta1", "phi": "phi1"}
# every syntax either side accepted before they were merged, with the group it means
SPECS = [
    ("mu=E1,px1,py1,pz1", "mu", CART),
    ("E1,px1,py1,pz1", "obj1", CART),
    ("mu=cart:E1,px1,py1,pz1", "mu", CART),
    ("mu=cartesian:E1,px1,py1,pz1", "mu", CART),
    ("cart:E1,px1,py1,pz1", "obj1", CART),
    (" mu = E1 , px1 ,py1, pz1 ", "mu", CART),
    ("mu=px1,py1,pz1", "mu", {"px": "px1", "py": "py1", "pz": "pz1"}),
    ("mu=polar:pt1,eta1,phi1", "mu", {"pt": "pt1", "eta": "eta1", "phi": "phi1"}),
    ("mu=POLAR:pt1,eta1,phi1,E1", "mu", {"pt": "pt1", "eta": "eta1", "phi": "phi1", "m": "E1"}),
    ("polar:pt1,eta1,phi1,E1", "obj1", {"pt": "pt1", "eta": "eta1", "phi": "phi1", "m": "E1"}),
]


@pytest.fixture(scope="module")
def dimuon() -> Table:
    return toy.dimuon(3000, seed=5)


@pytest.mark.parametrize(("spec", "label", "cols"), SPECS)
def test_grammar(spec: str, label: str, cols: dict[str, str]) -> None:
    g = fourvec.parse_spec(spec)
    assert (g.label, g.cols, g.declared) == (label, cols, True)


@pytest.mark.parametrize(("spec", "label", "cols"), SPECS)
def test_train_evaluate_compare_read_the_same_groups(dimuon: Table, spec: str, label: str,
                                                     cols: dict[str, str]) -> None:
    """train (relations.detect, the only reader of TrainConfig.four_vectors) and evaluate /
    compare (analysis.resolve, the only reader of their options) give the same group."""
    names = dimuon.names_of_kind("float")
    y = dimuon.to_numpy(names, dtype=np.float64)
    trained = relations.detect(names, y, declared=[spec], linear=False).groups[0]
    assert (trained.label, trained.declared) == (label, True)
    assert list(trained.cols.items())[:len(cols)] == list(cols.items())
    if "m" not in cols:  # the object's other columns, found by name, complete the group
        assert trained.cols == {**cols, **ALL1}
    if len(cols) == 4:
        (shown,), _ = analysis.resolve(dimuon, [spec])
        assert (shown.label, shown.cols) == (label, cols)
    else:  # a mass needs the fourth column: said by name, not guessed
        with pytest.raises(InputError, match="fourth column"):
            analysis.resolve(dimuon, [spec])


def test_one_help_text_for_the_three_commands() -> None:
    from balerc.cli.main import cli

    helps = {name: next(p.help for p in cli.commands[name].params if p.name == "four_vectors")
             for name in ("train", "evaluate", "compare")}
    assert len(set(helps.values())) == 1 and fourvec.SPEC_HELP in helps["train"]


@pytest.mark.parametrize(("spec", "match"), [
    ("mu=E1,px1", "give 3 or 4 columns"),
    ("mu=E1,px1,py1,pz1,M", "LABEL="),
    ("mu=E1,px1,py1,nope", r"\['nope'\]"),
    ("mu=lorentz:E1,px1,py1,pz1", "kinds are cart, cartesian, polar"),
])
def test_one_message_per_mistake(dimuon: Table, spec: str, match: str) -> None:
    names = dimuon.names_of_kind("float")
    y = dimuon.to_numpy(names, dtype=np.float64)
    for read in (lambda: relations.detect(names, y, declared=[spec]),
                 lambda: analysis.resolve(dimuon, [spec])):
        with pytest.raises(InputError, match=match):
            read()


def test_labels_must_differ(dimuon: Table) -> None:
    with pytest.raises(InputError, match="must differ"):
        fourvec.declared(["a=E1,px1,py1,pz1", "a=E2,px2,py2,pz2"], dimuon.names)


@pytest.mark.parametrize(("name", "parsed"), [
    ("px1", ("px", "", "1")), ("Muon_Px", ("px", "Muon_", "")), ("Jet_pt", ("pt", "Jet_", "")),
    ("E2", ("E", "", "2")), ("jet_mass", ("m", "jet_", "")), ("pt_lead", ("pt", "", "_lead")),
    ("Muon_Eta", ("eta", "Muon_", "")), ("Event", None), ("ptcone20", None), ("nMuon", None),
])
def test_names(name: str, parsed: tuple[str, str, str] | None) -> None:
    assert fourvec.parse_name(name) == parsed


@pytest.mark.parametrize("spec", ["px1,py1,pz1", "polar:pt1,eta1,phi1", "mu=E1,px1,py1,pz1"])
def test_a_declared_group_keeps_its_objects_relations(dimuon: Table, spec: str) -> None:
    """A declared three-column group had swallowed the name group it belongs to, so the
    object's E, pt, eta, phi and the pair mass M were derived from nothing."""
    names = dimuon.names_of_kind("float")
    y = dimuon.to_numpy(names, dtype=np.float64)
    rel = relations.detect(names, y, declared=[spec], linear=False)
    assert set(rel.groups[0].cols.values()) == set(ALL1.values())
    assert [p.name for p in rel.pairs] == ["M"]
    assert relations.detect(names, y, declared=["px1,py1,E1"], linear=False).groups[0].cols == {
        "px": "px1", "py": "py1", "pz": "E1"}  # roles that disagree: left as declared


def test_train_and_analysis_detect_the_same_groups_from_names(dimuon: Table) -> None:
    names = dimuon.names_of_kind("float")
    y = dimuon.to_numpy(names, dtype=np.float64)
    trained = relations.detect(names, y, linear=False).groups
    shown, notes = analysis.detect(dimuon)
    assert [g.label for g in trained] == [g.label for g in shown] == ["1", "2"] and not notes
    for t, s in zip(trained, shown, strict=True):
        assert s.cols.items() <= t.cols.items() and s.kind == "cartesian"
    jets = Table({"pt": np.array([30.0]), "eta": np.array([0.5]), "phi": np.array([1.0]),
                  "mass": np.array([5.0]), "Mu_pt": np.array([1.0]), "mu_ETA": np.array([0.1]),
                  "Mu_phi": np.array([0.2]), "Mu_E": np.array([2.0])})
    found = fourvec.from_names(jets.names)
    assert [(g.label, g.cols) for g in found] == [
        ("obj", {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass"}),
        ("Mu", {"pt": "Mu_pt", "eta": "mu_ETA", "phi": "Mu_phi", "E": "Mu_E"}),
    ]
    assert [g.label for g in analysis.detect(jets)[0]] == ["obj"]  # Mu has no complete set


def test_grammar_and_analysis_need_no_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import balerc.train.fourvec, "
            "balerc.train.relations, balerc.cli.analysis.fourvec, balerc.cli.options; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
