"""Toy tables feed the demo and the benchmarks: they must be reproducible and physical."""

from __future__ import annotations

import numpy as np
import pytest

from balerc.formats import InputError, Table
from balerc.formats.toy import (
    JET_FRACTIONS,
    KINDS_OF_TOY,
    MUON_MASS,
    Z_MASS,
    dimuon,
    gene,
    generate,
    invariant_mass,
    jets,
)

DIMUON_COLUMNS = [
    "Run", "Event",
    "E1", "px1", "py1", "pz1", "pt1", "eta1", "phi1", "Q1",
    "E2", "px2", "py2", "pz2", "pt2", "eta2", "phi2", "Q2",
    "M",
]  # fmt: skip
JET_COLUMNS = [
    "event", "pt", "eta", "phi", "mass",
    "chHEF", "neHEF", "chEmEF", "neEmEF", "muEF",
    "btagDeepB", "qgl", "area",
    "nConstituents", "nElectrons", "nMuons", "jetId", "hadronFlavour",
]  # fmt: skip


@pytest.fixture(scope="module")
def mu() -> Table:
    return dimuon(40_000, seed=3)


@pytest.fixture(scope="module")
def jet() -> Table:
    return jets(20_000, seed=3)


@pytest.mark.parametrize("kind", KINDS_OF_TOY)
def test_same_seed_is_bit_identical_and_seed_matters(kind: str) -> None:
    a, b, c = generate(kind, 500, 7), generate(kind, 500, 7), generate(kind, 500, 8)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.n_rows == 500
    assert a.source == {"format": "generated", "generator": kind, "rows": 500, "seed": 7}


def test_column_order_and_dtypes(mu: Table, jet: Table) -> None:
    assert mu.names == DIMUON_COLUMNS
    assert mu.names_of_kind("int") == ["Run", "Event", "Q1", "Q2"]
    assert all(mu[n].dtype == np.int64 for n in mu.names_of_kind("int"))
    assert all(mu[n].dtype == np.float64 for n in mu.names_of_kind("float"))
    assert len(mu.names_of_kind("float")) == 15

    assert jet.names == JET_COLUMNS
    assert jet["event"].dtype == np.int64
    assert all(jet[n].dtype == np.float32 for n in JET_COLUMNS[1:13])
    assert all(jet[n].dtype == np.int32 for n in JET_COLUMNS[13:])

    g = gene(30)
    assert g.names == [""] + [f"S{j:02d}" for j in range(1, 51)]


def test_dimuon_columns_are_mutually_consistent(mu: Table) -> None:
    for i in "12":
        px, py, pz = mu[f"px{i}"], mu[f"py{i}"], mu[f"pz{i}"]
        np.testing.assert_allclose(mu[f"pt{i}"], np.hypot(px, py), rtol=1e-9)
        np.testing.assert_allclose(mu[f"eta{i}"], np.arcsinh(pz / np.hypot(px, py)), rtol=1e-9)
        np.testing.assert_allclose(mu[f"phi{i}"], np.arctan2(py, px), rtol=1e-9)
        e = np.sqrt(px**2 + py**2 + pz**2 + MUON_MASS**2)
        np.testing.assert_allclose(mu[f"E{i}"], e, rtol=1e-9)
    # M is the invariant mass of the stored four-vectors, recomputed independently here.
    e, x = mu["E1"] + mu["E2"], mu["px1"] + mu["px2"]
    y, z = mu["py1"] + mu["py2"], mu["pz1"] + mu["pz2"]
    np.testing.assert_allclose(mu["M"], np.sqrt(e**2 - x**2 - y**2 - z**2), rtol=1e-9)
    cols = [mu[n] for n in ("E1", "px1", "py1", "pz1", "E2", "px2", "py2", "pz2")]
    np.testing.assert_allclose(mu["M"], invariant_mass(*cols), rtol=1e-12)


def test_dimuon_charges_acceptance_and_bookkeeping(mu: Table) -> None:
    assert set(np.unique(mu["Q1"])) == {-1, 1}
    assert np.array_equal(mu["Q1"], -mu["Q2"])
    for i in "12":
        assert mu[f"pt{i}"].min() > 3.0
        assert np.abs(mu[f"eta{i}"]).max() < 2.4
    assert np.all(np.isfinite(mu.to_numpy()))
    assert np.all(np.diff(mu["Run"]) >= 0) and 1 <= len(np.unique(mu["Run"])) <= 40
    assert len(np.unique(mu["Event"])) == mu.n_rows
    assert np.mean(np.diff(mu["Event"]) > 0) > 0.5  # increasing-ish


@pytest.mark.parametrize(("mass", "sigma"), [(3.0969, 0.031), (Z_MASS, 2.5)])
def test_dimuon_mass_peaks(mu: Table, mass: float, sigma: float) -> None:
    m = mu["M"]
    peak = np.count_nonzero(np.abs(m - mass) < 3 * sigma)
    # Sidebands of the same total width, just outside the peak window.
    side = np.count_nonzero((np.abs(m - mass) >= 3 * sigma) & (np.abs(m - mass) < 6 * sigma))
    assert peak > 0.1 * m.size
    assert peak > 5 * side


def test_dimuon_mass_spectrum_has_all_components(mu: Table) -> None:
    m = mu["M"]
    assert m.min() > 2 * MUON_MASS
    for lo, hi in [(3.6, 3.8), (9.3, 9.6), (9.9, 10.5)]:  # psi(2S), Upsilons
        assert np.count_nonzero((m > lo) & (m < hi)) > 0.005 * m.size
    assert np.count_nonzero((m > 12) & (m < 60)) > 0  # continuum


def test_jets_fractions_and_ranges(jet: Table) -> None:
    f = np.stack([jet[n].astype(np.float64) for n in JET_FRACTIONS])
    assert f.min() >= 0.0 and f.max() <= 1.0
    np.testing.assert_allclose(f.sum(axis=0), 1.0, atol=1e-5)
    assert jet["pt"].min() > 15.0
    assert np.abs(jet["eta"]).max() < 4.7
    assert np.abs(jet["phi"]).max() <= np.float32(np.pi)
    for n in ("btagDeepB", "qgl"):
        assert 0.0 <= jet[n].min() and jet[n].max() <= 1.0
    assert np.median(jet["btagDeepB"]) < 0.1 and np.mean(jet["btagDeepB"] > 0.8) > 0.02
    assert 0.4 < np.median(jet["area"]) < 0.6
    assert set(np.unique(jet["jetId"])) <= {0, 2, 6}
    assert set(np.unique(jet["hadronFlavour"])) <= {0, 4, 5}
    assert jet["nElectrons"].min() >= 0 and jet["nMuons"].min() >= 0


def test_jets_structure(jet: Table) -> None:
    event, pt = jet["event"], jet["pt"]
    assert np.all(np.diff(event) >= 0)
    assert len(np.unique(event)) < jet.n_rows / 2  # several jets per event
    same = np.diff(event) == 0
    assert np.all(np.diff(pt)[same] <= 0)  # pt-ordered within an event
    assert np.corrcoef(pt, jet["mass"])[0, 1] > 0.5
    assert np.corrcoef(np.log(pt), jet["nConstituents"])[0, 1] > 0.3


def test_gene_matrix() -> None:
    g = gene(2_000, seed=1)
    assert g.kind("") == "string"
    assert g[""][0] == "GENE00001" and g[""][-1] == "GENE02000"
    x = g.to_numpy()
    assert x.shape == (2_000, 50)
    assert x.min() >= 0.0 and np.all(np.isfinite(x))
    assert 0.01 < np.mean(x == 0) < 0.6  # dropouts
    corr = np.corrcoef(np.log1p(x).T)[np.triu_indices(50, 1)]
    assert np.abs(corr).mean() > 0.3  # latent programs correlate the samples

    t = gene(20, seed=1, genes_as_rows=False)
    assert t.n_rows == 50 and t.names[:2] == ["", "GENE00001"] and t[""][0] == "S01"
    np.testing.assert_array_equal(t.to_numpy(), gene(20, seed=1).to_numpy().T)


@pytest.mark.parametrize("rows", [0, -1, 10_000_001, 2.5, True])
def test_bad_rows_raise(rows: object) -> None:
    with pytest.raises(InputError, match="rows"):
        generate("dimuon", rows)  # type: ignore[arg-type]


def test_bad_kind_lists_kinds() -> None:
    with pytest.raises(InputError, match="dimuon, jets, gene"):
        generate("higgs", 10)
    with pytest.raises(InputError):
        gene(10, seed=-1)
