"""A NanoAOD-like tree of any size: event-level branches plus jagged collections.

Real NanoAOD samples we ship hold 200 events; a whole-file benchmark needs 1e5+ events
with the same shape: run/lumi/event counters, MET, vertices and trigger bits per event,
and Jet, Muon, Electron, Photon and Tau collections with realistic multiplicities (jets
from `toy.jets`, leptons Poisson), four-vectors, MVA scores, IDs and flags, counted by
uint32 ``nJet``-style branches. Floats are rounded to NanoAOD's mantissa bits
(codec/precision.py's table), as CMS stores them, so a precision-aware compressor meets
what it meets in real files.
"""

from __future__ import annotations

import numpy as np

from .sections import EVENTS, Sections
from .table import Table
from .toy import _check, jets

_MULTIPLICITY = {"Muon": 0.7, "Electron": 0.6, "Photon": 0.9, "Tau": 0.4}
_HLT = ("IsoMu24", "IsoMu27", "Ele32_WPTight_Gsf", "PFMET120_PFMHT120_IDTight",
        "PFHT1050", "DoubleEle33_CaloIdL_MW", "Mu50", "PFJet500")


def round_mantissa(x: np.ndarray, bits: int | None) -> np.ndarray:
    """float32 values rounded to `bits` mantissa bits (NanoAOD's MiniFloatConverter
    rounding); None keeps full precision."""
    x = np.asarray(x, dtype=np.float32)
    if bits is None or bits >= 23:
        return x
    shift = 23 - bits
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + (1 << (shift - 1))) >> shift) << shift
    return u.astype(np.uint32).view(np.float32)


def _bits_for(name: str) -> int | None:
    from balerc.codec.precision import nanoaod_bits

    return nanoaod_bits(name)


def _truncate(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: round_mantissa(a, _bits_for(n)) if a.dtype == np.float32 else a
            for n, a in cols.items()}


def _leptons(rng: np.random.Generator, name: str, n: int) -> dict[str, np.ndarray]:
    pt = 5.0 + rng.pareto(2.2, n) * 12.0
    eta = rng.uniform(-2.4, 2.4, n)
    cols = {
        f"{name}_pt": pt, f"{name}_eta": eta, f"{name}_phi": rng.uniform(-np.pi, np.pi, n),
        f"{name}_mass": {"Muon": np.full(n, 0.10566), "Electron": np.full(n, 0.000511),
                         "Photon": np.zeros(n), "Tau": 0.5 + 1.2 * rng.random(n)}[name],
        f"{name}_dxy": rng.laplace(0, 0.003, n), f"{name}_dz": rng.laplace(0, 0.01, n),
        f"{name}_pfRelIso03_all": rng.exponential(0.08, n),
        f"{name}_mvaID": rng.beta(5, 1.5, n),
        f"{name}_ptErr": pt * (0.01 + 0.02 * rng.random(n)),
    }
    out = {k: v.astype(np.float32) for k, v in cols.items()}
    out[f"{name}_charge"] = np.where(rng.random(n) < 0.5, -1, 1).astype(np.int32)
    out[f"{name}_tightId"] = rng.random(n) < 0.8
    out[f"{name}_genPartFlav"] = rng.choice([0, 1, 15, 22], n, p=[0.1, 0.8, 0.05, 0.05]
                                            ).astype(np.uint8)
    return out


def nanoaod_like(events: int, seed: int = 0) -> Sections:
    """`events` NanoAOD-like events as Sections (write with root_sections)."""
    events, seed = _check(events, seed)
    rng = np.random.default_rng(seed)
    ev: dict[str, np.ndarray] = {
        "run": np.full(events, 316187, np.uint32),
        "luminosityBlock": (1 + np.arange(events) // 2000).astype(np.uint32),
        "event": (1_000_000 + np.arange(events) * 3).astype(np.uint64),
    }
    jt = jets(max(1, int(events * 3.2)), seed)  # ~4 jets in ~80% of the events
    rank = np.unique(jt["event"], return_inverse=True)[1].astype(np.int64)
    jet_event = np.minimum(rank * events // max(int(rank[-1]) + 1, events), events - 1)
    counts = {"Jet": np.bincount(jet_event, minlength=events)}
    tables: dict[str, Table] = {"Jet": Table(_truncate({f"Jet_{n}": jt[n] for n in jt.names
                                                        if n != "event"}))}
    for name, mean in _MULTIPLICITY.items():
        c = np.minimum(rng.poisson(mean, events), 8)
        counts[name] = c
        tables[name] = Table(_truncate(_leptons(rng, name, int(c.sum()))))
    met = rng.rayleigh(25.0, events)
    ev.update({
        "MET_pt": met.astype(np.float32), "MET_phi": rng.uniform(-np.pi, np.pi, events).astype(np.float32),
        "MET_sumEt": (300 + met * 8 + rng.gamma(4, 60, events)).astype(np.float32),
        "PV_npvs": rng.poisson(30, events).astype(np.int32),
        "PV_z": rng.normal(0, 3.5, events).astype(np.float32),
        "Pileup_nTrueInt": rng.gamma(30, 1.0, events).astype(np.float32),
        "fixedGridRhoFastjetAll": rng.gamma(8, 2.5, events).astype(np.float32),
        "genWeight": np.where(rng.random(events) < 0.02, -1.0, 1.0).astype(np.float32) * 3021.7,
    })
    for name, c in counts.items():
        ev[f"n{name}"] = c.astype(np.uint32)
    for k, hlt in enumerate(_HLT):
        ev[f"HLT_{hlt}"] = rng.random(events) < 0.05 + 0.1 * k / len(_HLT)
    ev["Flag_goodVertices"] = rng.random(events) < 0.999
    layouts = {EVENTS: {"kind": "events"}}
    layouts.update({n: {"kind": "collection", "counter": f"n{n}", "counter_section": EVENTS}
                    for n in tables})
    source = {"format": "generated", "generator": "nanoaod", "rows": events, "seed": seed,
              "tree": "Events", "title": "Events"}
    return Sections({EVENTS: Table(_truncate(ev)), **tables}, layouts, source)
