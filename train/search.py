"""Choose the anchor columns and the latent size by the bytes the codec would write.

Cheap first: a random-feature ridge regression (an "extreme learning machine": one random
ReLU layer, a least-squares readout) stands in for the decoder, and PCA of its residual
stands in for the encoder. Anchors are added greedily while the estimated bytes fall;
every greedy prefix is paired with a few latent sizes. The best few candidates are then
trained for a short run and measured with the real network; the smallest wins.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from balerc.formats.errors import InputError

from .config import TrainConfig
from .estimate import estimate_bytes
from .loop import codec_forward
from .models import build_model, count_params
from .normalization import apply_transform
from .problem import Problem
from .setup import dense_model, loop_data, run_loop, sample_rows

PROXY_FEATURES = 256
PROXY_ROWS = 8192


@dataclass
class Candidate:
    anchors: tuple[int, ...]
    latent: int
    proxy_bytes: float | None = None
    short_bytes: float | None = None
    final_bytes: float | None = None
    chosen: bool = False

    def key(self) -> tuple[tuple[int, ...], int]:
        return (self.anchors, self.latent)

    def to_json(self, names: Sequence[str], raw_bytes: int) -> dict:
        def r(b: float | None) -> float | None:
            return None if b is None else round(raw_bytes / b, 4)

        return {
            "anchors": [names[j] for j in self.anchors],
            "latent": self.latent,
            "proxy_bytes": None if self.proxy_bytes is None else round(self.proxy_bytes),
            "proxy_ratio": r(self.proxy_bytes),
            "short_bytes": None if self.short_bytes is None else round(self.short_bytes),
            "short_ratio": r(self.short_bytes),
            "final_bytes": None if self.final_bytes is None else round(self.final_bytes),
            "final_ratio": r(self.final_bytes),
            "chosen": self.chosen,
        }


def latent_choices(n_features: int) -> list[int]:
    """Latent sizes tried by the search: 0, 1, 2 and ceil(F/4), all below F."""
    return sorted({v for v in (0, 1, 2, math.ceil(n_features / 4)) if 0 <= v < n_features})


def decoder_bytes(model: str, widths: Sequence[int] | None, activation: str | None,
                  n_features: int, latent: int, anchors: Sequence[int]) -> int:
    """float32 bytes of the decoder weights (the codec embeds the decoder in the file)."""
    net = build_model(model, n_features, latent, anchors, ["none"] * n_features,
                      [None] * n_features, widths, activation)
    return 4 * count_params(net.decoder)


class _Proxy:
    """Random-feature ridge regression from (anchors, latents) to the predicted columns."""

    def __init__(self, problem: Problem, fit_rows: np.ndarray, eval_rows: np.ndarray,
                 seed: int, step: float) -> None:
        self.p = problem
        self.y_fit, self.y_eval = fit_rows, eval_rows
        self.t_fit = problem.normalize(fit_rows)
        self.t_eval = problem.normalize(eval_rows)
        every = range(problem.n_features)
        self.xa_fit = apply_transform(problem.anchor_inputs(fit_rows, every), problem.norms)
        self.xa_eval = apply_transform(problem.anchor_inputs(eval_rows, every), problem.norms)
        self.rng_seed = seed
        self.step = step
        self.plain_cache: dict[int, int] = {}

    def _ridge(self, f_fit: np.ndarray, f_eval: np.ndarray, t_fit: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Fit targets from features with random ReLU features; predict fit and eval rows.

        Linear algebra runs in torch (float64) so it honours torch's thread setting: numpy's
        BLAS threads fight torch's OpenMP threads and made this 30x slower on 2 cores.
        """
        n, d = f_fit.shape
        if d == 0:
            mean = t_fit.mean(axis=0, keepdims=True)
            return np.repeat(mean, n, 0), np.repeat(mean, len(f_eval), 0)
        mu, sd = f_fit.mean(0), f_fit.std(0)
        sd[sd == 0] = 1.0
        a = torch.from_numpy((f_fit - mu) / sd)
        b = torch.from_numpy((f_eval - mu) / sd)
        rng = np.random.default_rng(self.rng_seed)
        h = min(PROXY_FEATURES, max(8, n // 8))
        w = torch.from_numpy(rng.standard_normal((d, h)) / math.sqrt(d))
        c = torch.from_numpy(rng.standard_normal(h) * 0.5)

        def feats(u: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.ones((len(u), 1), dtype=u.dtype), u, torch.relu(u @ w + c)], 1)

        pa, pb = feats(a), feats(b)
        g = pa.T @ pa
        lam = 1e-6 * float(torch.trace(g)) / g.shape[0]
        beta = torch.linalg.solve(g + lam * torch.eye(g.shape[0], dtype=g.dtype),
                                  pa.T @ torch.from_numpy(np.ascontiguousarray(t_fit)))
        return (pa @ beta).numpy(), (pb @ beta).numpy()

    def cost(self, anchors: Sequence[int], latent: int, model_bytes: int) -> float:
        p = self.p
        anchors = sorted(anchors)
        pred = [j for j in range(p.n_features) if j not in set(anchors)]
        t_fit, t_eval = self.t_fit[:, pred], self.t_eval[:, pred]
        f_fit, f_eval = self.xa_fit[:, anchors], self.xa_eval[:, anchors]
        h_fit, h_eval = self._ridge(f_fit, f_eval, t_fit)
        codes = None
        if latent > 0:
            # PCA of what the anchors leave unexplained, scaled into [-1, 1] and quantized.
            r_fit, r_eval = t_fit - h_fit, t_eval - h_eval
            mu = r_fit.mean(0)
            _, _, vt = torch.linalg.svd(torch.from_numpy(r_fit - mu), full_matrices=False)
            v = vt[:latent].T.numpy()
            l_fit, l_eval = (r_fit - mu) @ v, (r_eval - mu) @ v
            s = np.maximum(np.abs(l_fit).max(0), 1e-12)
            q_fit = np.rint(np.clip(l_fit / s, -1, 1) / self.step)
            q_eval = np.rint(np.clip(l_eval / s, -1, 1) / self.step)
            codes = q_eval.astype(np.int64)
            h_fit, h_eval = self._ridge(np.hstack([f_fit, q_fit * self.step]),
                                        np.hstack([f_eval, q_eval * self.step]), t_fit)
        y_hat = h_eval * p.scale[pred] + p.offset[pred]
        est = estimate_bytes(self.y_eval, p.names, p.e, anchors, y_hat, codes, model_bytes,
                             p.total_rows, self.plain_cache, pwrel=p.pw)
        return est.total_bytes

    def plain_bytes(self) -> float:
        est = estimate_bytes(self.y_eval, self.p.names, self.p.e, [], None, None, 0,
                             self.p.total_rows, self.plain_cache, pwrel=self.p.pw)
        return est.total_bytes


def search(
    problem: Problem,
    cfg: TrainConfig,
    fixed_anchors: list[int] | None,
    fixed_latent: int | None,
    step: float,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[Candidate, list[Candidate], float]:
    """Return the chosen candidate, every candidate evaluated, and the all-plain bytes."""
    f = problem.n_features
    model_b = {}

    def mbytes(anchors: Sequence[int], latent: int) -> int:
        key = (len(anchors), latent)
        if key not in model_b:
            model_b[key] = decoder_bytes(cfg.arch, cfg.widths, cfg.activation, f, latent,
                                         list(anchors))
        return model_b[key]

    fit_rows, eval_rows = sample_rows(problem, cfg.seed, min(cfg.search_rows, PROXY_ROWS),
                                      PROXY_ROWS // 2)
    proxy = _Proxy(problem, fit_rows, eval_rows, cfg.seed, step)
    plain = proxy.plain_bytes()
    greedy_cost: dict[tuple[int, ...], float] = {}

    # 1) anchor sets: fixed, or greedy prefixes by proxy bytes with L = 0.
    if fixed_anchors is not None:
        prefixes = [tuple(sorted(fixed_anchors))]
    else:
        prefixes = _greedy_anchors(problem, cfg, proxy, mbytes, greedy_cost, log)

    # 2) pair every prefix with the latent sizes.
    latents = [fixed_latent] if fixed_latent is not None else latent_choices(f)
    ranked = _paired(prefixes, latents, f, greedy_cost, proxy, mbytes)

    # 3) short runs of the real network for the best few; keep the smallest measured.
    top = _shortlist(ranked, cfg.search_top)
    if len(top) == 1:
        top[0].chosen = True
        return top[0], ranked, plain
    s_fit, s_eval = sample_rows(problem, cfg.seed + 1, cfg.search_rows, PROXY_ROWS)
    for c in top:
        c.short_bytes = short_run(problem, cfg, c, s_fit, s_eval, step, device,
                                  mbytes(c.anchors, c.latent))
        log(f"  search: anchors {[problem.names[k] for k in c.anchors]} latent {c.latent} -> "
            f"short-run ratio {problem.total_rows * f * 8 / c.short_bytes:.3f}")
    best = min(top, key=lambda c: (c.short_bytes, c.latent, c.anchors))
    best.chosen = True
    return best, ranked, plain


def _paired(prefixes: list[tuple[int, ...]], latents: list[int], f: int,
            greedy_cost: dict[tuple[int, ...], float], proxy: _Proxy,
            mbytes: Callable[[Sequence[int], int], int]) -> list[Candidate]:
    """Every (anchor prefix, latent size) candidate costed by the proxy (the greedy pass's
    cost reused where it already measured the pair), best first."""
    cands: dict[tuple, Candidate] = {}
    for a in prefixes:
        for lat in latents:
            if lat == 0 and not a:
                continue  # no model at all: that is the all-plain baseline
            if len(a) >= f:
                continue
            cost = greedy_cost.get(a) if lat == 0 else None
            if cost is None:
                cost = proxy.cost(a, lat, mbytes(a, lat))
            cands[(a, lat)] = Candidate(a, lat, proxy_bytes=cost)
    if not cands:
        raise InputError(
            "no model is possible here: every column is constant, so there is nothing to "
            "use as an anchor; give --latent 1 or more, or compress with plain quantization"
        )
    return sorted(cands.values(), key=lambda c: (c.proxy_bytes, c.latent, c.anchors))


def _shortlist(ranked: list[Candidate], top_n: int) -> list[Candidate]:
    """The best `top_n` by proxy bytes, plus the best of each family (with / without
    latents) when missing: the PCA proxy of an encoder is linear and can undersell what a
    trained one does."""
    top = ranked[: max(1, top_n)]
    for family in (lambda c: c.latent > 0, lambda c: c.latent == 0):
        if not any(family(c) for c in top):
            extra = next((c for c in ranked if family(c)), None)
            if extra is not None:
                top.append(extra)
    return top


def _greedy_anchors(problem: Problem, cfg: TrainConfig, proxy: _Proxy,
                    mbytes: Callable[[Sequence[int], int], int],
                    greedy_cost: dict[tuple[int, ...], float],
                    log: Callable[[str], None]) -> list[tuple[int, ...]]:
    """Greedy anchor prefixes by proxy bytes with L = 0, at bounded cost: each step tries
    at most cfg.anchor_trials columns (a seeded sample on wide tables) and no step starts
    after cfg.search_seconds; every step prints a progress line."""
    f = problem.n_features
    usable = [j for j in range(f) if problem.y_train[:, j].max() > problem.y_train[:, j].min()]
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    steps = min(f - 1, cfg.max_anchors)
    # Keep adding the best column even when bytes rise for a step: anchors work in
    # groups (pt needs px and py), and the decoder's weight bytes are paid once.
    prefixes: list[tuple[int, ...]] = [()]
    current: list[int] = []
    for step in range(steps):
        spent = time.perf_counter() - t0
        if step and spent > cfg.search_seconds:
            log(f"  search: stopped after {len(current)} anchor(s): the {cfg.search_seconds:g} s "
                f"search budget is spent ({spent:.0f} s)")
            break
        pool = [j for j in usable if j not in current]
        if len(pool) > cfg.anchor_trials:
            pool = sorted(rng.choice(pool, cfg.anchor_trials, replace=False).tolist())
        trial = {j: proxy.cost(sorted([*current, j]), 0, mbytes(sorted([*current, j]), 0))
                 for j in pool}
        if not trial:
            break
        j_best = min(trial, key=lambda j: (trial[j], j))
        current = sorted([*current, j_best])
        prefixes.append(tuple(current))
        greedy_cost[tuple(current)] = trial[j_best]
        sampled = f" (a sample of {len(pool)} of {len(usable)} columns)" \
            if len(usable) - len(current) + 1 > len(pool) else ""
        log(f"  search: anchor step {step + 1}/{steps}{sampled}, {time.perf_counter() - t0:.1f} s: "
            f"{[problem.names[k] for k in current][-6:]} -> proxy ratio "
            f"{problem.total_rows * f * 8 / trial[j_best]:.3f}")
    return prefixes


def short_run(problem: Problem, cfg: TrainConfig, cand: Candidate, y_fit: np.ndarray,
              y_eval: np.ndarray, step: float, device: torch.device, model_bytes: int) -> float:
    """Train a candidate briefly on a sample and measure its bytes on held-out rows."""
    anchors = list(cand.anchors)
    net = dense_model(cfg, problem, cand.latent, anchors, device)
    pred = net.predicted_index
    data = loop_data(problem, anchors, pred, y_fit, y_eval, device)
    run_loop(net, data, cfg, step=step, qat=cfg.qat, batch_size=min(cfg.batch_size, 512),
             patience=10**9, min_delta=0.0, max_steps=cfg.search_steps)
    y_hat_n, codes = codec_forward(net, data.val.x, data.val.a, step)
    y_hat = y_hat_n.cpu().double().numpy() * problem.scale[pred] + problem.offset[pred]
    q = None if codes is None else codes.cpu().numpy().astype(np.int64)
    est = estimate_bytes(y_eval, problem.names, problem.e, anchors, y_hat, q, model_bytes,
                         problem.total_rows, pwrel=problem.pw)
    return est.total_bytes
