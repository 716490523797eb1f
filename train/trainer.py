"""`fit(table, config)`: choose anchors and latent size, train, measure. Returns TrainedModel."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from balerc.formats.errors import BalercError, InputError
from balerc.formats.table import Table

from .config import TrainConfig
from .estimate import Estimate, estimate_bytes
from .loop import LoopResult, codec_forward, make_batch, quantize_anchors, train_loop
from .models import Autoencoder, build_model, count_params
from .normalization import ColumnNorm
from .physics import build_physics, onnx_size
from .physics_search import PhysicsCandidate, physics_candidates, train_mlp
from .physics_search import predict as physics_predict
from .problem import build_problem, select_columns
from .progress import log
from .relations import candidate_plans, declared_groups, detect
from .relations import describe as describe_relations
from .search import PROXY_ROWS, Candidate, _sample, decoder_bytes, search

HOLDOUT_ROWS = 4096
SMALL_TABLE_ROWS = 50_000


class TrainingError(BalercError, RuntimeError):
    """Training diverged (non-finite loss); the message says what to change."""


@dataclass
class TrainedModel:
    """A fitted model: torch modules plus everything export() writes into the manifest."""

    config: TrainConfig
    columns: list[str]
    anchors: list[str]
    predicted: list[str]
    norms: list[ColumnNorm]
    latent_dim: int
    latent_bits: int
    latent_step: float
    net: Autoencoder
    history: list[dict]
    training: dict[str, Any]
    estimate: Estimate | None
    holdout_x: np.ndarray  # normalized held-out rows (float32) for the export parity check
    holdout_a: np.ndarray  # their anchors as the codec decodes them (normalized, float32)
    device: str = "cpu"
    candidates: list[dict] = field(default_factory=list)

    @property
    def per_column(self) -> dict[str, dict[str, float]]:
        return self.training["per_column"]

    def summary(self) -> str:
        """The human summary `balerc train` prints at the end."""
        t = self.training
        lines = [
            f"rows {t['rows']} (train {t['train_rows']}, validation {t['val_rows']}), "
            f"columns {len(self.columns)}, model {self.net.name} {list(self.net.widths)}",
            f"latent size {self.latent_dim} ({self.latent_bits} bits, step {self.latent_step:g}), "
            f"anchors {self.anchors or 'none'}",
            f"best validation loss {t['best_val_loss']:.4g} after {t['epochs_run']} epochs "
            f"({t['stopped']}), {t['seconds']:.1f} s",
            f"estimated ratio at {self.config.bound}: {t['estimated_ratio']:.3f} "
            f"(all-plain quantization: {t['plain_ratio']:.3f})",
        ]
        if t["estimated_ratio"] < t["plain_ratio"]:
            lines.append(
                f"note: plain quantization is estimated smaller on this table; the decoder's "
                f"{t['estimate']['model_bytes']} weight bytes and the anchors do not pay for "
                f"{t['rows']} rows (more rows, or a smaller --model/--widths, may)"
            )
        if self.candidates:
            lines.append("candidates (model | anchors | latent | proxy ratio | short-run ratio):")
            for c in self.candidates:
                mark = " <- chosen" if c["chosen"] else ""
                lines.append(
                    f"  {c.get('model', self.config.model)} | {','.join(c['anchors']) or '-'} | "
                    f"{c['latent']} | {_r(c['proxy_ratio'])} | {_r(c['short_ratio'])}{mark}"
                )
        lines.append("validation error per predicted column (units; relative to range):")
        w = max([len(n) for n in self.per_column] + [6])
        lines.append(f"  {'column':<{w}} {'rms':>11} {'max':>11} {'rms_rel':>9} {'max_rel':>9}")
        for n, m in self.per_column.items():
            lines.append(f"  {n:<{w}} {m['rms']:>11.4g} {m['max']:>11.4g} "
                         f"{m['rms_rel']:>9.2e} {m['max_rel']:>9.2e}")
        return "\n".join(lines)


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def relations_json(rel) -> dict | None:
    if not rel:
        return None
    return {
        "four_vectors": [g.to_json() for g in rel.groups],
        "pair_masses": [p.to_json() for p in rel.pairs],
        "linear": [r.to_json() for r in rel.linear],
    }


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when torch sees a GPU; cuda without one is an error, not a fallback."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was requested but torch sees no GPU; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _resolve_anchors(names: Sequence[str], anchors: Sequence[str] | None) -> list[int] | None:
    if anchors is None:
        return None
    missing = [a for a in anchors if a not in names]
    if missing:
        raise InputError(f"--anchors {missing} are not training columns; choose from {list(names)}")
    idx = sorted({names.index(a) for a in anchors})
    if len(idx) >= len(names):
        raise InputError(
            f"{len(idx)} anchors for {len(names)} columns leaves nothing to predict; "
            f"use fewer anchors or --anchors none"
        )
    return idx


def _resolve_latent(f: int, latent: int | None, ratio: float | None) -> int | None:
    if ratio is not None:
        latent = math.ceil(f / ratio)
    if latent is not None and latent >= f:
        how = f"--ratio {ratio} gives latent size {latent}" if ratio is not None else f"--latent {latent}"
        raise InputError(
            f"{how}, which is not smaller than the {f} columns: the latents would store as many "
            f"numbers as the columns they replace. Use a latent size below {f} (or --ratio > "
            f"{f / max(f - 1, 1):.3g})"
        )
    return latent


def fit(table: Table, config: TrainConfig | None = None) -> TrainedModel:
    """Train a model for the float columns of `table` according to `config`."""
    cfg = config or TrainConfig()
    cfg.validate()
    t_start = time.perf_counter()
    names = select_columns(table, cfg.columns)
    f = len(names)
    fixed_anchors = _resolve_anchors(names, cfg.anchors)
    declared_groups(cfg.four_vectors or [], names)  # refuse missing columns by name, early
    fixed_latent = _resolve_latent(f, cfg.latent, cfg.ratio)
    if f < 2:
        raise InputError(
            f"a model needs at least 2 float columns (got {names}): with one column there is "
            f"nothing to predict from; compress it with plain quantization instead"
        )
    if fixed_latent == 0 and fixed_anchors == []:
        raise InputError("--latent 0 with --anchors none leaves the decoder without inputs")
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif table.n_rows < SMALL_TABLE_ROWS:
        # Small batches gain nothing from intra-op threads and lose to their wake-ups
        # (measured: Zmumu 10.5 s on 1 thread, 33 s on 2).
        torch.set_num_threads(1)
    # CPU kernels used here are deterministic for a fixed thread count; CUDA needs the
    # switch (and costs 2 s of imports, so it is not flipped on CPU).
    if device.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _fit(table, cfg, names, fixed_anchors, fixed_latent, device, t_start)
    finally:
        torch.set_num_threads(old_threads)
        if device.type == "cuda":
            torch.use_deterministic_algorithms(old_det)


def _fit(table: Table, cfg: TrainConfig, names: list[str], fixed_anchors: list[int] | None,
         fixed_latent: int | None, device: torch.device, t_start: float) -> TrainedModel:
    def say(msg: str) -> None:
        log(cfg.progress, msg)

    problem = build_problem(table, names, cfg.norm, cfg.bound, cfg.val_fraction, cfg.seed)
    f = problem.n_features
    step = 2.0 / 2**cfg.latent_bits
    logs = [c.name for c in problem.norms if c.transform == "log"]
    say(f"balerc train: {table.n_rows} rows x {f} float columns on {device}; "
        f"log transform for {logs or 'no column'}")

    raw = problem.total_rows * f * 8
    rel = None
    forced = cfg.model == "physics"
    if forced or (cfg.physics == "auto" and not (fixed_anchors is not None and fixed_latent is not None)):
        rel = detect(names, problem.y_train, cfg.four_vectors or [], seed=cfg.seed)
        for line in describe_relations(rel):
            say(f"  relation: {line}")
        if forced and not candidate_plans(rel, names):
            raise InputError(
                "--model physics: no exact relation was found on the data (four-vectors by "
                "name, pair masses, linear identities); declare a group with --four-vector "
                "LABEL=E,px,py,pz or use another --model"
            )
    pcands: list[PhysicsCandidate] = []
    if rel:
        s_fit, s_eval = _sample(problem, cfg.seed + 1, cfg.search_rows, PROXY_ROWS)
        pcands = physics_candidates(problem, cfg, rel, s_fit, s_eval, device, say)
    cands: list = []
    chosen = None
    if not forced:
        if fixed_anchors is not None and fixed_latent is not None:
            chosen = Candidate(tuple(fixed_anchors), fixed_latent, chosen=True)
            cands = [chosen]
        else:
            say(f"choosing anchors and latent size by estimated bytes at {problem.bound} ...")
            chosen, cands, _ = search(problem, cfg, fixed_anchors, fixed_latent, step, device, say)
    best_p = min(pcands, key=lambda c: c.bytes) if pcands else None
    std_bytes = None if chosen is None else (chosen.short_bytes or chosen.proxy_bytes)
    use_physics = best_p is not None and (forced or std_bytes is None or best_p.bytes < std_bytes)
    if use_physics and chosen is not None:
        chosen.chosen = False
    # The all-plain baseline on the same rows as the final estimate (validation split).
    plain = estimate_bytes(problem.y_val, names, problem.e, [], None,
                           total_rows=problem.total_rows, pwrel=problem.pw).total_bytes
    x_tr, x_va = problem.normalize(problem.y_train), problem.normalize(problem.y_val)
    if use_physics:
        assert best_p is not None and best_p.net is not None
        best_p.chosen = True
        say(f"chose {best_p.label()}: derived {best_p.plan.derived}")
        torch.manual_seed(cfg.seed)
        net = build_physics(best_p.plan, names, problem.norms, best_p.mlp_columns, cfg.widths,
                            cfg.activation, half_weights=cfg.half_weights)
        anchors, latent = net.anchor_index, 0
        if best_p.mlp_columns:
            res = train_mlp(problem, cfg, net, problem.y_train, problem.y_val, device, None,
                            cfg.patience, cfg.epochs)
        else:
            res = LoopResult(best_val=0.0, stopped="no training (exact formulas)")
        pred = net.predicted_index
        a_va = quantize_anchors(problem.y_val, anchors, problem.e, problem.offset, problem.scale, problem.pw)
        final = best_p
    else:
        assert chosen is not None
        anchors = list(chosen.anchors)
        latent = chosen.latent
        say(f"chose anchors {[names[j] for j in anchors] or 'none'}, latent size {latent}")

        torch.manual_seed(cfg.seed)
        net = build_model(cfg.model, f, latent, anchors, [c.transform for c in problem.norms],
                          [c.log_k for c in problem.norms], cfg.widths, cfg.activation).to(device)
        pred = net.predicted_index
        a_tr = quantize_anchors(problem.y_train, anchors, problem.e, problem.offset, problem.scale, problem.pw)
        a_va = quantize_anchors(problem.y_val, anchors, problem.e, problem.offset, problem.scale, problem.pw)
        tr = make_batch(x_tr, a_tr, pred, device)
        va = make_batch(x_va, a_va, pred, device)
        w = torch.as_tensor(problem.weights(pred), dtype=torch.float32, device=device)
        noise = torch.as_tensor(problem.e_n[anchors], dtype=torch.float32, device=device)
        floor = torch.as_tensor(problem.e_n[pred] ** 2, dtype=torch.float32, device=device)
        res = train_loop(net, tr, va, anchor_noise=noise, weights=w, floor=floor, step=step, qat=cfg.qat,
                         epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                         patience=cfg.patience, min_delta=cfg.min_delta, seed=cfg.seed,
                         loss=cfg.loss, progress=cfg.progress)
        final = chosen
    if not math.isfinite(res.best_val):
        raise TrainingError(
            f"training diverged (non-finite loss in epoch {res.epochs_run + 1}); "
            f"try a smaller --lr (now {cfg.lr:g}) or --norm minmax"
        )
    net = net.cpu().eval()

    # Validation metrics exactly as the codec will see them.
    exact: list[int] = []
    if use_physics:
        y_hat, codes = physics_predict(problem, net, problem.y_val), None
        exact = [names.index(n) for n in net.decoder.exact_columns]
    else:
        va_cpu = make_batch(x_va, a_va, pred, torch.device("cpu"))
        y_hat_n, codes = codec_forward(net, va_cpu.x, va_cpu.a, step)
        y_hat = y_hat_n.double().numpy() * problem.scale[pred] + problem.offset[pred]
    per_column = {}
    for i, j in enumerate(pred):
        err = problem.y_val[:, j] - y_hat[:, i]
        rng = problem.norms[j].max - problem.norms[j].min
        denom = rng if rng > 0 else max(abs(problem.norms[j].min), 1.0)
        rms, mx = float(np.sqrt(np.mean(err**2))), float(np.max(np.abs(err)))
        per_column[names[j]] = {"rms_rel": rms / denom, "max_rel": mx / denom, "rms": rms, "max": mx}
    q = None if codes is None else codes.numpy().astype(np.int64)
    model_bytes = onnx_size(net) if use_physics else 4 * count_params(net.decoder)
    est = estimate_bytes(problem.y_val, names, problem.e, anchors, y_hat, q, model_bytes,
                         problem.total_rows, pwrel=problem.pw, exact=exact)
    if use_physics:
        final.bytes_final = est.total_bytes
    else:
        final.final_bytes = est.total_bytes
    seconds = time.perf_counter() - t_start
    training = {
        "rows": problem.total_rows,
        "train_rows": len(problem.y_train),
        "val_rows": len(problem.y_val),
        "data_sha256": problem.data_sha256,
        "epochs_run": res.epochs_run,
        "best_epoch": res.best_epoch,
        "best_val_loss": res.best_val,
        "stopped": res.stopped,
        "seed": cfg.seed,
        "seconds": round(seconds, 3),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "qat": cfg.qat,
        "per_column": per_column,
        "estimated_ratio": round(est.ratio, 4),
        "estimate": est.as_dict(),
        "plain_ratio": round(raw / plain, 4),
        "candidates": [c.to_json(names, raw) for c in cands]
        + [dict(c.to_json(names, raw), final_bytes=round(getattr(c, "bytes_final", 0)) or None)
           for c in pcands],
        "relations": relations_json(rel),
        "config": cfg.to_json(),
    }
    n_hold = min(HOLDOUT_ROWS, len(x_va))
    model = TrainedModel(
        config=cfg, columns=names, anchors=[names[j] for j in anchors],
        predicted=[names[j] for j in pred], norms=problem.norms, latent_dim=latent,
        latent_bits=cfg.latent_bits, latent_step=step, net=net, history=res.history,
        training=training, estimate=est,
        holdout_x=np.ascontiguousarray(x_va[:n_hold], dtype=np.float32),
        holdout_a=np.ascontiguousarray(a_va[:n_hold], dtype=np.float32),
        device=str(device), candidates=training["candidates"],
    )
    if cfg.progress:
        sys.stderr.flush()
    return model


__all__ = ["TrainedModel", "TrainingError", "fit", "resolve_device", "decoder_bytes"]
