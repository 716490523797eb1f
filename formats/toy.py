"""Realistic toy tables, generated with numpy alone, for demos, tests and benchmarks.

The real open-data samples we ship are a few thousand rows; benchmarks and the demo need
tables of any size with the same structure, so the compressor faces the same redundancy it
meets in practice: derived columns (pt, eta, phi, E, M computed from momenta), integer
bookkeeping columns, float32 fractions that sum to one, low-rank correlated matrices.

Every generator is vectorised (Python loops run over chunks, mixture components or
rejection rounds, never over rows) and seeded with ``np.random.default_rng(seed)``, so the
same ``(kind, rows, seed)`` always gives a bit-identical `Table`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from .errors import InputError
from .table import Table

__all__ = ["KINDS_OF_TOY", "MAX_ROWS", "dimuon", "gene", "generate", "jets"]

KINDS_OF_TOY = ("dimuon", "jets", "gene")
MAX_ROWS = 10_000_000

MUON_MASS = 0.1056583755  # GeV (PDG 2022)

# Rows are generated in chunks so 1e7-row tables do not need 1e7-row temporaries.
_CHUNK = 1 << 18
# Rejection rounds before giving up (acceptance is >10%, so ~30 rounds empty any chunk).
_MAX_ROUNDS = 500


# -- argument checks --------------------------------------------------------------------
def _check(rows: object, seed: object) -> tuple[int, int]:
    """Validate rows/seed up front so a bad request fails with a message, not a numpy trace."""
    if isinstance(rows, bool) or not isinstance(rows, numbers.Integral):
        raise InputError(f"rows must be an integer, got {rows!r}")
    if not 1 <= int(rows) <= MAX_ROWS:
        raise InputError(f"rows must be between 1 and {MAX_ROWS:,}, got {rows}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(rows), int(seed)


def _source(kind: str, rows: int, seed: int) -> dict[str, object]:
    return {"format": "generated", "generator": kind, "rows": rows, "seed": seed}


# -- dimuon ------------------------------------------------------------------------------
# Mixture of the dimuon mass spectrum: (name, weight). Weights are the fractions of the
# *final* table: rejected rows are redrawn from their own component, so acceptance does
# not reshape the mixture (it only sculpts the spectrum inside a component).
_DIMUON_COMPONENTS: tuple[tuple[str, float], ...] = (
    ("continuum", 0.35),
    ("J/psi", 0.25),
    ("psi(2S)", 0.03),
    ("Upsilon(1S)", 0.06),
    ("Upsilon(2S)", 0.025),
    ("Upsilon(3S)", 0.015),
    ("Z", 0.27),
)
# Narrow resonances: PDG mass (GeV) and relative detector resolution.
_NARROW = {
    "J/psi": (3.0969, 0.010),
    "psi(2S)": (3.6861, 0.010),
    "Upsilon(1S)": (9.4603, 0.010),
    "Upsilon(2S)": (10.0233, 0.010),
    "Upsilon(3S)": (10.3552, 0.010),
}
Z_MASS, Z_WIDTH, Z_RESOLUTION = 91.1876, 2.4952, 0.015
_Z_RANGE = (60.0, 120.0)
_CONTINUUM = (2.0, 150.0, 1.7)  # m_min, m_max, power-law index of dN/dm ~ m^-n
_MU_PT_MIN, _MU_ETA_MAX, _PAIR_Y_MAX = 3.0, 2.4, 2.4


def _sample_mass(rng: np.random.Generator, comp: np.ndarray) -> np.ndarray:
    """Draw one pair mass per row from that row's mixture component (vectorised per component)."""
    m = np.empty(comp.size)
    for k, (name, _) in enumerate(_DIMUON_COMPONENTS):
        sel = np.flatnonzero(comp == k)
        if sel.size == 0:
            continue
        if name == "continuum":
            lo, hi, n = _CONTINUUM
            u = rng.random(sel.size)
            a, b = lo ** (1.0 - n), hi ** (1.0 - n)
            m[sel] = (a + u * (b - a)) ** (1.0 / (1.0 - n))
        elif name == "Z":
            # Breit-Wigner truncated to the Z window by inverse CDF, then detector smearing.
            lo, hi = (np.arctan((x - Z_MASS) / (Z_WIDTH / 2)) for x in _Z_RANGE)
            bw = Z_MASS + Z_WIDTH / 2 * np.tan(rng.uniform(lo, hi, sel.size))
            m[sel] = bw * (1.0 + Z_RESOLUTION * rng.standard_normal(sel.size))
        else:
            mass, res = _NARROW[name]
            m[sel] = mass * (1.0 + res * rng.standard_normal(sel.size))
    return m


def _decay(rng: np.random.Generator, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Produce pairs of mass m and decay them isotropically; returns lab 3-momenta (3, n) x 2."""
    n = m.size
    pt = rng.gamma(1.6, 6.0, n)  # pair pT: falling, a few GeV to tens
    y = rng.uniform(-_PAIR_Y_MAX, _PAIR_Y_MAX, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    # Boost vector B = P/m (= gamma*beta) and gamma = E/m of the pair.
    inv_m = 1.0 / m
    mt_m = np.sqrt(1.0 + (pt * inv_m) ** 2)
    b = np.empty((3, n))
    b[0] = pt * inv_m * np.cos(phi)
    b[1] = pt * inv_m * np.sin(phi)
    b[2] = mt_m * np.sinh(y)
    gamma = mt_m * np.cosh(y)
    # Isotropic decay in the rest frame: back-to-back muons of momentum p*.
    cos_t = rng.uniform(-1.0, 1.0, n)
    az = rng.uniform(-np.pi, np.pi, n)
    p_star = np.sqrt(np.maximum(0.25 * m * m - MUON_MASS**2, 0.0))
    q = np.empty((3, n))
    q[2] = p_star * cos_t
    p_t = p_star * np.sqrt(1.0 - cos_t * cos_t)
    q[0] = p_t * np.cos(az)
    q[1] = p_t * np.sin(az)
    bq = (b[0] * q[0] + b[1] * q[1] + b[2] * q[2]) / (gamma + 1.0)
    # Lorentz boost of (e*, +-q) with e* = m/2: p' = p + B (e* + B.p/(gamma+1)).
    e_star = 0.5 * m
    p1 = q + b * (e_star + bq)
    p2 = b * (e_star - bq) - q
    return p1, p2


_SINH_ETA_MAX = float(np.sinh(_MU_ETA_MAX))


def _accepted(p: np.ndarray) -> np.ndarray:
    """Loose muon acceptance: pt > 3 GeV and |eta| < 2.4 (as |pz| < pt sinh 2.4, no asinh)."""
    pt2 = p[0] * p[0] + p[1] * p[1]
    return (pt2 > _MU_PT_MIN**2) & (p[2] * p[2] < pt2 * _SINH_ETA_MAX**2)


def _dimuon_momenta(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n accepted muon pairs; rejected rows are redrawn (same component) until all pass."""
    weights = np.array([w for _, w in _DIMUON_COMPONENTS])
    cdf = np.cumsum(weights / weights.sum())
    comp = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weights) - 1)
    p1 = np.empty((3, n))
    p2 = np.empty((3, n))
    todo = np.arange(n)
    for _ in range(_MAX_ROUNDS):
        a, b = _decay(rng, _sample_mass(rng, comp[todo]))
        ok = _accepted(a) & _accepted(b)
        p1[:, todo[ok]] = a[:, ok]
        p2[:, todo[ok]] = b[:, ok]
        todo = todo[~ok]
        if todo.size == 0:
            return p1, p2
    raise RuntimeError("dimuon acceptance loop did not converge")  # pragma: no cover


def _runs_and_events(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A few sorted run numbers in contiguous blocks; unique, locally shuffled event numbers."""
    n_runs = int(min(rows // 25_000 + 1, 40))
    runs = np.sort(rng.choice(np.arange(146_000, 149_500), size=n_runs, replace=False))
    counts = rng.multinomial(rows, rng.dirichlet(np.full(n_runs, 2.0)))
    run = np.repeat(runs.astype(np.int64), counts)
    event = 1_000_000 + np.cumsum(rng.geometric(1.0 / 400.0, rows).astype(np.int64))
    # Events come out of the DAQ nearly, not exactly, in order: shuffle within ~16 rows.
    event = event[np.argsort(np.arange(rows) + rng.uniform(0.0, 16.0, rows), kind="stable")]
    return run, event


def dimuon(rows: int, seed: int = 0) -> Table:
    """Dimuon events shaped like the CMS 2010 open data (uproot-Zmumu.root schema, no Type).

    15 float64 columns carry only 6 degrees of freedom (two 3-momenta; the muon mass is
    fixed): E, pt, eta, phi and M are derived exactly from px/py/pz in float64, which is the
    redundancy an autoencoder should find. The mass spectrum mixes a power-law continuum with
    J/psi, psi(2S), the three Upsilons and the Z, all smeared by detector resolution.
    The same seed gives the same events everywhere up to the last bits of the derived
    columns: numpy's sin/cosh/arcsinh/arctan2 kernels differ by CPU (AVX-512 or not).
    """
    rows, seed = _check(rows, seed)
    rng = np.random.default_rng(seed)
    px1, py1, pz1, px2, py2, pz2 = (np.empty(rows) for _ in range(6))
    for start in range(0, rows, _CHUNK):
        stop = min(start + _CHUNK, rows)
        a, b = _dimuon_momenta(rng, stop - start)
        px1[start:stop], py1[start:stop], pz1[start:stop] = a
        px2[start:stop], py2[start:stop], pz2[start:stop] = b
    q1 = np.where(rng.random(rows) < 0.5, 1, -1).astype(np.int64)
    run, event = _runs_and_events(rng, rows)

    def muon(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> dict[str, np.ndarray]:
        pt = np.hypot(px, py)
        e = np.sqrt(px * px + py * py + pz * pz + MUON_MASS**2)
        return {"E": e, "px": px, "py": py, "pz": pz, "pt": pt,
                "eta": np.arcsinh(pz / pt), "phi": np.arctan2(py, px)}  # fmt: skip

    mu1, mu2 = muon(px1, py1, pz1), muon(px2, py2, pz2)
    columns: dict[str, np.ndarray] = {"Run": run, "Event": event}
    columns.update({f"{k}1": v for k, v in mu1.items()})
    columns["Q1"] = q1
    columns.update({f"{k}2": v for k, v in mu2.items()})
    columns["Q2"] = -q1
    columns["M"] = invariant_mass(mu1["E"], px1, py1, pz1, mu2["E"], px2, py2, pz2)
    return Table(columns, _source("dimuon", rows, seed))


def invariant_mass(
    e1: np.ndarray, px1: np.ndarray, py1: np.ndarray, pz1: np.ndarray,
    e2: np.ndarray, px2: np.ndarray, py2: np.ndarray, pz2: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Invariant mass of two four-vectors: the exact formula the dimuon M column obeys."""
    e, x, y, z = e1 + e2, px1 + px2, py1 + py2, pz1 + pz2
    return np.sqrt(np.maximum(e * e - (x * x + y * y + z * z), 0.0))


# -- jets ----------------------------------------------------------------------------------
JET_FRACTIONS = ("chHEF", "neHEF", "chEmEF", "neEmEF", "muEF")
_JET_PT_MIN, _JET_PT_MAX, _JET_PT_INDEX = 15.0, 6500.0, 2.0
_JET_ETA_MAX, _TRACKER_ETA = 4.7, 2.5
_GHOST_AREA = 0.019947  # jet areas come in multiples of the ghost-particle area


def _truncated_eta(rng: np.random.Generator, n: int) -> np.ndarray:
    """Jet eta peaked centrally with forward (pile-up-like) tails, cut at |eta| < 4.7."""
    eta = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        wide = rng.random(todo.size) < 0.3
        draw = rng.standard_normal(todo.size) * np.where(wide, 3.0, 1.3)
        ok = np.abs(draw) < _JET_ETA_MAX
        eta[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return eta


def _jet_events(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Event number per jet: 1 + Poisson(3) jets per event, event numbers increasing."""
    mult = np.empty(0, dtype=np.int64)
    while mult.sum() < rows:
        mult = np.concatenate([mult, 1 + rng.poisson(3.0, rows // 2 + 16)])
    event_ids = 227_000_000 + np.cumsum(rng.geometric(1.0 / 3.0, mult.size).astype(np.int64))
    return np.repeat(event_ids, mult)[:rows]


def jets(rows: int, seed: int = 0) -> Table:
    """One row per jet, NanoAOD-like (float32 kinematics, int32 counters and IDs).

    Correlations mirror real jets so a compressor has structure to exploit: pt falls as a
    power law and is sorted within each event, mass and constituent count grow with pt,
    energy fractions sum to one and lose their charged parts outside the tracker, b-tag
    and quark/gluon scores depend on the hadron flavour.
    """
    rows, seed = _check(rows, seed)
    rng = np.random.default_rng(seed)
    f32, i32 = np.float32, np.int32
    event = _jet_events(rng, rows)

    # pt: truncated Pareto, then sorted descending within each event as NanoAOD does.
    tail = 1.0 - (_JET_PT_MIN / _JET_PT_MAX) ** _JET_PT_INDEX
    pt = _JET_PT_MIN * (1.0 - rng.random(rows) * tail) ** (-1.0 / _JET_PT_INDEX)
    pt = pt[np.lexsort((-pt, event))]
    eta = _truncated_eta(rng, rows)
    phi = rng.uniform(-np.pi, np.pi, rows)
    mass = pt * np.minimum(np.exp(np.log(0.14) + 0.4 * rng.standard_normal(rows)), 0.8)
    central = np.abs(eta) < _TRACKER_ETA

    n_ele = np.where(central, np.minimum(rng.poisson(0.06, rows), 2), 0)
    n_mu = np.where(central, np.minimum(rng.poisson(0.05, rows), 2), 0)

    fractions = _jet_fractions(rng, rows, central, n_ele, n_mu)
    flavour, btag, qgl = _jet_flavour(rng, rows, central)
    area = np.maximum(np.rint(rng.normal(25.3, 1.6, rows)), 8.0) * _GHOST_AREA

    lam = (2.0 + 7.0 * np.sqrt(pt / _JET_PT_MIN)) * np.where(central, 1.0, 0.6)
    n_const = np.maximum(rng.poisson(lam) + n_ele + n_mu, 1)

    # jetId: tight+lepton-veto (6) by default, tight only (2) sometimes, 0 when the
    # neutral fractions fail the tight cuts inside |eta| < 2.7 or at random (noise jets).
    fail = (np.abs(eta) < 2.7) & ((fractions["neHEF"] >= 0.9) | (fractions["neEmEF"] >= 0.9))
    v = rng.random(rows)
    jet_id = np.where(fail | (v < 0.02), 0, np.where(v < 0.05, 2, 6))

    columns: dict[str, np.ndarray] = {
        "event": event,
        "pt": pt.astype(f32),
        "eta": eta.astype(f32),
        "phi": phi.astype(f32),
        "mass": mass.astype(f32),
        **fractions,
        "btagDeepB": btag.astype(f32),
        "qgl": qgl.astype(f32),
        "area": area.astype(f32),
        "nConstituents": n_const.astype(i32),
        "nElectrons": n_ele.astype(i32),
        "nMuons": n_mu.astype(i32),
        "jetId": jet_id.astype(i32),
        "hadronFlavour": flavour.astype(i32),
    }
    return Table(columns, _source("jets", rows, seed))


def _jet_fractions(rng: np.random.Generator, rows: int, central: np.ndarray,
                   n_ele: np.ndarray, n_mu: np.ndarray) -> dict[str, np.ndarray]:
    """Energy fractions: Dirichlet via normalised gammas; absent components are exact
    zeros (no charged parts outside the tracker, no electron or muon part without one)."""
    g = rng.standard_gamma(np.array([2.0, 0.8, 0.8, 1.0, 0.8])[:, None], size=(5, rows))
    g[0] *= central
    g[2] *= central & ((n_ele > 0) | (rng.random(rows) < 0.25))
    g[4] *= n_mu > 0
    g /= g.sum(axis=0)
    return {name: g[k].astype(np.float32) for k, name in enumerate(JET_FRACTIONS)}


def _jet_flavour(rng: np.random.Generator, rows: int, central: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hadron flavour (b, c or light; heavy flavour mostly central) and the b-tag and
    quark/gluon scores that depend on it."""
    u = rng.random(rows)
    p_b, p_c = np.where(central, 0.10, 0.02), np.where(central, 0.08, 0.02)
    flavour = np.where(u < p_b, 5, np.where(u < p_b + p_c, 4, 0))
    btag = np.where(
        flavour == 5,
        rng.beta(4.0, 1.0, rows),
        np.where(flavour == 4, rng.beta(1.2, 3.0, rows), rng.beta(0.5, 12.0, rows)),
    )
    quarky = (flavour > 0) | (rng.random(rows) < 0.5)
    qgl = np.where(quarky, rng.beta(2.5, 1.2, rows), rng.beta(1.2, 2.5, rows))
    return flavour, btag, qgl


# -- gene expression -------------------------------------------------------------------------
GENE_SAMPLES = 50
_GENE_PROGRAMS = 6
_GENES_AS_COLUMNS_MAX = 100_000


def _labels(prefix: str, n: int, width: int) -> np.ndarray:
    """'PREFIX00001'-style labels built from digit arithmetic (no per-row formatting)."""
    width = max(width, len(str(n)))
    number = np.arange(1, n + 1)
    fixed = np.empty((n, len(prefix) + width), dtype=np.uint8)
    fixed[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    for i in range(width):  # one digit position at a time keeps temporaries at one column
        fixed[:, len(prefix) + width - 1 - i] = ord("0") + (number // 10**i) % 10
    return fixed.view(f"S{fixed.shape[1]}").ravel().astype(str).astype(object)


def gene(rows: int, seed: int = 0, genes_as_rows: bool = True) -> Table:
    """A gene-expression matrix: `rows` genes x 50 samples, label column named "".

    Expression is exp(gene baseline + sample size factor + low-rank programs + noise), with
    expression-dependent dropouts to exact zero and 3-decimal rounding as in TPM tables:
    the strongly correlated, non-negative, zero-inflated shape of real omics tables.
    With ``genes_as_rows=False`` the matrix is transposed (one row per sample "S01".., one
    column per gene), as scikit-learn-style tools store it; `rows` still counts genes.
    """
    rows, seed = _check(rows, seed)
    if not genes_as_rows and rows > _GENES_AS_COLUMNS_MAX:
        raise InputError(
            f"genes_as_rows=False makes one column per gene; at most "
            f"{_GENES_AS_COLUMNS_MAX:,} genes, got {rows:,}"
        )
    rng = np.random.default_rng(seed)
    k, s = _GENE_PROGRAMS, GENE_SAMPLES
    scores = rng.standard_normal((k, s))  # program activity per sample
    size_factor = 0.2 * rng.standard_normal(s)
    expr = np.empty((s, rows))  # row j = sample j, so each sample column is contiguous
    for start in range(0, rows, _CHUNK):
        stop = min(start + _CHUNK, rows)
        n = stop - start
        baseline = rng.normal(1.5, 1.6, n)
        loadings = 0.4 * rng.standard_normal((n, k))
        log_e = baseline[None, :] + size_factor[:, None] + (loadings @ scores).T
        log_e += 0.3 * rng.standard_normal((s, n))
        # Soft ceiling near exp(11) ~ 6e4: real TPM-like values stay below ~1e6.
        high = log_e > 11.0
        log_e[high] = 11.0 + np.log1p(log_e[high] - 11.0)
        dropout = rng.random((s, n)) < 1.0 / (1.0 + np.exp(2.0 * (log_e - 0.5)))
        block = np.round(np.exp(log_e), 3)
        block[dropout] = 0.0
        expr[:, start:stop] = block
    samples = [f"S{j + 1:02d}" for j in range(s)]
    genes = _labels("GENE", rows, 5)
    if genes_as_rows:
        columns = {"": genes, **dict(zip(samples, expr, strict=True))}
    else:
        columns = {"": np.array(samples, dtype=object)}
        columns.update(zip(genes, np.ascontiguousarray(expr.T), strict=True))
    return Table(columns, _source("gene", rows, seed))


# -- dispatch -------------------------------------------------------------------------------
_GENERATORS: dict[str, Callable[[int, int], Table]] = {
    "dimuon": dimuon,
    "jets": jets,
    "gene": gene,
}


def generate(kind: str, rows: int, seed: int = 0) -> Table:
    """Generate a toy table by name; the CLI and benchmarks call this with user input."""
    if not isinstance(kind, str) or kind not in _GENERATORS:
        raise InputError(f"unknown toy kind {kind!r}; choose one of {', '.join(KINDS_OF_TOY)}")
    return _GENERATORS[kind](rows, seed)
