"""Does conditional prediction order pay? (issue 6) A measurement, one run, markdown table.

    python benchmarks/conditional_order.py [--bound rel:1e-3]

Per dataset, with the training search's stand-in decoder (random-feature ridge regression,
`balerc.train.search._Proxy`) and its byte estimate (the codec's packer, no model cost):

* fixed: every predicted column from the anchors only (what balerc's decoders do);
* conditional: columns in order of increasing fixed-anchor cost, each predicted from the
  anchors plus every column decoded before it (decoded values are within the bound, so
  the quantized values stand in for them).

Anchors: greedy by the same estimate, up to 6 (the search's rule). Physics relations are
switched off (with them the dimuon columns cost nothing either way).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from balerc.formats import toy
from balerc.formats.table import Table
from balerc.formats.tableio import read_table
from balerc.train.estimate import estimate_bytes
from balerc.train.problem import build_problem
from balerc.train.search import _Proxy
from balerc.train.setup import sample_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "skhep_testdata_subset"


def datasets() -> list[tuple[str, Table]]:
    out = []
    if DATA.is_dir():
        out += [("Zmumu", read_table(DATA / "uproot-Zmumu.root")),
                ("HZZ jets", read_table(DATA / "uproot-HZZ.root", columns=["Jet_*"])),
                ("NanoAOD jets", read_table(DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root",
                                           columns=["Jet_*"]))]
    out += [("toy gene 20k", toy.gene(20000)), ("dimuon 200k", toy.dimuon(200_000, seed=0))]
    return [(n, Table({c: np.asarray(t[c], dtype=np.float64) for c in t.names_of_kind("float")}))
            for n, t in out]


def column_bytes(proxy: _Proxy, sources: list[int], target: int) -> float:
    """Estimated bytes of one predicted column from the given decoded source columns."""
    p = proxy.p
    h_fit, h_eval = proxy._ridge(proxy.xa_fit[:, sources], proxy.xa_eval[:, sources],
                                 proxy.t_fit[:, [target]])
    y_hat = h_eval * p.scale[target] + p.offset[target]
    y = proxy.y_eval[:, [target]]
    est = estimate_bytes(y, [p.names[target]], p.e[[target]], [], y_hat, None, 0, p.total_rows)
    return est.total_bytes


def run(name: str, t: Table, bound: str) -> dict:
    p = build_problem(t, t.names, "auto", bound, 0.2, 0)
    fit_rows, eval_rows = sample_rows(p, 0, 16384, 8192)
    proxy = _Proxy(p, fit_rows, eval_rows, 0, 2.0 / 64)
    f = p.n_features
    usable = [j for j in range(f) if np.ptp(p.y_train[:, j]) > 0]
    anchors: list[int] = []
    best = proxy.plain_bytes()
    plain = best
    for _ in range(min(f - 1, 6)):
        trial = {j: proxy.cost(anchors + [j], 0, 0) for j in usable if j not in anchors}
        j, c = min(trial.items(), key=lambda kv: kv[1])
        if c >= best:
            break
        anchors.append(j)
        best = c
    fixed = best
    anchor_bytes = sum(estimate_bytes(proxy.y_eval[:, [j]], [p.names[j]], p.e[[j]], [], None, None, 0,
                                      p.total_rows).total_bytes for j in anchors)
    pred = [j for j in range(f) if j not in anchors]
    alone = {j: column_bytes(proxy, anchors, j) for j in pred}
    order = sorted(pred, key=alone.__getitem__)
    cond = anchor_bytes
    seen = list(anchors)
    for j in order:
        cond += column_bytes(proxy, seen, j)
        seen.append(j)
    raw = p.total_rows * f * 8
    return {"data": name, "rows": p.total_rows, "cols": f, "anchors": len(anchors),
            "plain": raw / plain, "fixed": raw / fixed, "cond": raw / cond,
            "gain": fixed / cond - 1.0, "saved": fixed - cond}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bound", default="rel:1e-3")
    args = ap.parse_args()
    print(f"bound {args.bound}; ratios exclude the decoder (the conditional decoder is no smaller "
          f"than the fixed one)\n")
    print("| data | rows x cols | anchors | plain | fixed anchors | conditional order | gain | bytes saved |")
    print("|---|---|---|---|---|---|---|---|")
    for name, t in datasets():
        r = run(name, t, args.bound)
        print(f"| {r['data']} | {r['rows']} x {r['cols']} | {r['anchors']} | {r['plain']:.2f} | "
              f"{r['fixed']:.2f} | {r['cond']:.2f} | {100 * r['gain']:+.1f}% | {r['saved']:,.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
