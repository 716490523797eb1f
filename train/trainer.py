"""`fit(table, config)`: choose anchors and latent size, train, measure. Returns TrainedModel."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from balerc.formats.errors import BalercError, InputError
from balerc.formats.table import Table

from . import fourvec
from .config import TrainConfig
from .estimate import Estimate, estimate_bytes
from .loop import LoopResult, codec_forward, make_batch
from .models import Autoencoder, count_params
from .normalization import ColumnNorm
from .physics import onnx_size
from .physics_search import PhysicsCandidate, physics_candidates, train_mlp
from .physics_search import predict as physics_predict
from .problem import Problem, build_problem, select_columns
from .progress import log
from .relations import Relations, candidate_plans, detect
from .relations import describe as describe_relations
from .search import PROXY_ROWS, Candidate, search
from .setup import dense_model, loop_data, physics_model, run_loop, sample_rows, torch_settings

HOLDOUT_ROWS = 4096


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
                    f"  {c.get('model', self.config.arch)} | {','.join(c['anchors']) or '-'} | "
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


def relations_json(rel: Relations | None) -> dict | None:
    if not rel:
        return None
    return {
        "four_vectors": [g.to_json() for g in rel.groups],
        "pair_masses": [p.to_json() for p in rel.pairs],
        "linear": [r.to_json() for r in rel.linear],
    }


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


def _as_table(data: Any) -> Table:
    """Any batch the codec takes, as a Table (a dict had failed as an AttributeError)."""
    if isinstance(data, Table):
        return data
    if isinstance(data, np.ndarray) and not data.dtype.names:
        raise InputError("fit takes named columns (a Table, DataFrame, dict of arrays or "
                         "structured array), not a plain array: name its columns")
    from balerc.codec.writer import batch_of

    return Table(batch_of(data)[0])


def fit(table: Any, config: TrainConfig | None = None) -> TrainedModel:
    """Train a model for the float columns of `table` (a Table, pandas DataFrame, Arrow
    table, dict of arrays or numpy structured array) according to `config`."""
    cfg = config or TrainConfig()
    cfg.validate()
    table = _as_table(table)
    t_start = time.perf_counter()
    names = select_columns(table, cfg.columns)
    f = len(names)
    fixed_anchors = _resolve_anchors(names, cfg.resolved_anchors())
    fourvec.declared(cfg.four_vectors or [], names)  # refuse missing columns by name, early
    fixed_latent = _resolve_latent(f, cfg.latent, cfg.ratio)
    if f < 2:
        raise InputError(
            f"a model needs at least 2 float columns (got {names}): with one column there is "
            f"nothing to predict from; compress it with plain quantization instead"
        )
    if fixed_latent == 0 and fixed_anchors == []:
        raise InputError("--latent 0 with --anchors none leaves the decoder without inputs")
    with torch_settings(cfg, table.n_rows) as device:
        return _fit(table, cfg, names, fixed_anchors, fixed_latent, device, t_start)


@dataclass
class _Run:
    """The final training, whichever family (dense or physics) won the search."""

    net: Any  # Autoencoder | PhysicsModel
    anchors: list[int]
    latent: int
    result: LoopResult
    a_val: np.ndarray  # normalized anchors of the validation rows, as the codec decodes them
    final: Candidate | PhysicsCandidate  # the chosen candidate; gets the final bytes


def _fit(table: Table, cfg: TrainConfig, names: list[str], fixed_anchors: list[int] | None,
         fixed_latent: int | None, device: torch.device, t_start: float) -> TrainedModel:
    say = partial(log, cfg.progress)
    problem = build_problem(table, names, cfg.norm, cfg.bound, cfg.val_fraction, cfg.seed,
                            cfg.norm_columns)
    step = 2.0 / 2**cfg.latent_bits
    logs = [c.name for c in problem.norms if c.transform == "log"]
    say(f"balerc train: {table.n_rows} rows x {problem.n_features} float columns on {device}; "
        f"log transform for {logs or 'no column'}")
    forced = cfg.model == "physics"
    fixed = fixed_anchors is not None and fixed_latent is not None
    rel = None
    if forced or (cfg.physics == "auto" and cfg.search_open):
        rel = _relations(problem, cfg, forced, say)
    pcands: list[PhysicsCandidate] = []
    if rel:
        s_fit, s_eval = sample_rows(problem, cfg.seed + 1, cfg.search_rows, PROXY_ROWS)
        pcands = physics_candidates(problem, cfg, rel, s_fit, s_eval, device, say)
    cands: list[Candidate] = []
    if not forced and fixed:
        assert fixed_anchors is not None and fixed_latent is not None
        cands = [Candidate(tuple(fixed_anchors), fixed_latent, chosen=True)]
    elif not forced:
        say(f"choosing anchors and latent size by estimated bytes at {problem.bound} ...")
        _, cands, _ = search(problem, cfg, fixed_anchors, fixed_latent, step, device, say)
    chosen = next((c for c in cands if c.chosen), None)
    run = _train_best(problem, cfg, chosen, pcands, step, device, say)
    per_column, est = _measure(problem, run, step)
    run.final.final_bytes = est.total_bytes
    training = _record(problem, cfg, run, est, per_column, [*cands, *pcands], rel, device,
                       t_start)
    x_val = problem.normalize(problem.y_val)
    n_hold = min(HOLDOUT_ROWS, len(x_val))
    model = TrainedModel(
        config=cfg, columns=names, anchors=[names[j] for j in run.anchors],
        predicted=[names[j] for j in run.net.predicted_index], norms=problem.norms,
        latent_dim=run.latent, latent_bits=cfg.latent_bits, latent_step=step, net=run.net,
        history=run.result.history, training=training, estimate=est,
        holdout_x=np.ascontiguousarray(x_val[:n_hold], dtype=np.float32),
        holdout_a=np.ascontiguousarray(run.a_val[:n_hold], dtype=np.float32),
        device=str(device), candidates=training["candidates"],
    )
    if cfg.progress:
        sys.stderr.flush()
    return model


def _train_best(problem: Problem, cfg: TrainConfig, chosen: Candidate | None,
                pcands: list[PhysicsCandidate], step: float, device: torch.device,
                say: Callable[[str], None]) -> _Run:
    """Train whichever family writes fewer bytes (physics when forced); refuse divergence."""
    best_p = min(pcands, key=lambda c: c.bytes) if pcands else None
    std_bytes = None if chosen is None else (chosen.short_bytes or chosen.proxy_bytes)
    if best_p is not None and (std_bytes is None or best_p.bytes < std_bytes):
        if chosen is not None:
            chosen.chosen = False
        run = _train_physics(problem, cfg, best_p, device, say)
    else:
        assert chosen is not None
        run = _train_dense(problem, cfg, chosen, step, device, say)
    if not math.isfinite(run.result.best_val):
        raise TrainingError(
            f"training diverged (non-finite loss in epoch {run.result.epochs_run + 1}); "
            f"try a smaller --lr (now {cfg.lr:g}) or --norm minmax"
        )
    run.net = run.net.cpu().eval()
    return run


def _record(problem: Problem, cfg: TrainConfig, run: _Run, est: Estimate,
            per_column: dict[str, dict[str, float]], candidates: list, rel: Relations | None,
            device: torch.device, t_start: float) -> dict[str, Any]:
    """The training section of the manifest: data, run, estimate and every candidate."""
    raw = problem.total_rows * problem.n_features * 8
    # The all-plain baseline on the same rows as the final estimate (validation split).
    plain = estimate_bytes(problem.y_val, problem.names, problem.e, [], None,
                           total_rows=problem.total_rows, pwrel=problem.pw).total_bytes
    res = run.result
    return {
        "rows": problem.total_rows, "train_rows": len(problem.y_train),
        "val_rows": len(problem.y_val), "data_sha256": problem.data_sha256,
        "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
        "best_val_loss": res.best_val, "stopped": res.stopped, "seed": cfg.seed,
        "seconds": round(time.perf_counter() - t_start, 3), "device": str(device),
        "threads": torch.get_num_threads(), "qat": cfg.qat,
        "per_column": per_column, "estimated_ratio": round(est.ratio, 4),
        "estimate": est.as_dict(), "plain_ratio": round(raw / plain, 4),
        "candidates": [c.to_json(problem.names, raw) for c in candidates],
        "relations": relations_json(rel), "config": cfg.to_json(),
    }


def _relations(problem: Problem, cfg: TrainConfig, forced: bool,
               say: Callable[[str], None]) -> Relations:
    """Relations on the training split; --model physics without one is refused."""
    rel = detect(problem.names, problem.y_train, cfg.four_vectors or [], seed=cfg.seed)
    for line in describe_relations(rel):
        say(f"  relation: {line}")
    if forced and not candidate_plans(rel, problem.names):
        raise InputError(
            "--model physics: no exact relation was found on the data (four-vectors by "
            "name, pair masses, linear identities); declare a group with --four-vector "
            "LABEL=E,px,py,pz or use another --model"
        )
    return rel


def _train_physics(problem: Problem, cfg: TrainConfig, best: PhysicsCandidate,
                   device: torch.device, say: Callable[[str], None]) -> _Run:
    """The chosen physics plan: exact formulas, plus its MLP trained in full if it has one."""
    assert best.net is not None
    best.chosen = True
    say(f"chose {best.label()}: derived {best.plan.derived}")
    net = physics_model(cfg, problem, best.plan, best.mlp_columns)
    if best.mlp_columns:
        res = train_mlp(problem, cfg, net, problem.y_train, problem.y_val, device, None,
                        cfg.patience, cfg.epochs)
    else:
        res = LoopResult(best_val=0.0, stopped="no training (exact formulas)")
    a_val = problem.anchor_inputs(problem.y_val, net.anchor_index)
    return _Run(net, net.anchor_index, 0, res, a_val, best)


def _train_dense(problem: Problem, cfg: TrainConfig, chosen: Candidate, step: float,
                 device: torch.device, say: Callable[[str], None]) -> _Run:
    """The chosen anchors and latent size, trained in full on the whole training split."""
    anchors = list(chosen.anchors)
    say(f"chose anchors {[problem.names[j] for j in anchors] or 'none'}, latent size "
        f"{chosen.latent}")
    net = dense_model(cfg, problem, chosen.latent, anchors, device)
    data = loop_data(problem, anchors, net.predicted_index, problem.y_train, problem.y_val,
                     device)
    res = run_loop(net, data, cfg, step=step, qat=cfg.qat, progress=cfg.progress)
    a_val = problem.anchor_inputs(problem.y_val, anchors)
    return _Run(net, anchors, chosen.latent, res, a_val, chosen)


def _measure(problem: Problem, run: _Run, step: float
             ) -> tuple[dict[str, dict[str, float]], Estimate]:
    """Validation errors per predicted column and the byte estimate, as the codec sees them."""
    names, pred = problem.names, run.net.predicted_index
    exact: list[int] = []
    if isinstance(run.final, PhysicsCandidate):
        y_hat, codes = physics_predict(problem, run.net, problem.y_val), None
        exact = [names.index(n) for n in run.net.decoder.exact_columns]
        model_bytes = onnx_size(run.net)
    else:
        va = make_batch(problem.normalize(problem.y_val), run.a_val, pred, torch.device("cpu"))
        y_hat_n, codes = codec_forward(run.net, va.x, va.a, step)
        y_hat = y_hat_n.double().numpy() * problem.scale[pred] + problem.offset[pred]
        model_bytes = 4 * count_params(run.net.decoder)
    per_column = {}
    for i, j in enumerate(pred):
        err = problem.y_val[:, j] - y_hat[:, i]
        rng = problem.norms[j].max - problem.norms[j].min
        denom = rng if rng > 0 else max(abs(problem.norms[j].min), 1.0)
        rms, mx = float(np.sqrt(np.mean(err**2))), float(np.max(np.abs(err)))
        per_column[names[j]] = {"rms_rel": rms / denom, "max_rel": mx / denom, "rms": rms,
                                "max": mx}
    q = None if codes is None else codes.numpy().astype(np.int64)
    est = estimate_bytes(problem.y_val, names, problem.e, run.anchors, y_hat, q, model_bytes,
                         problem.total_rows, pwrel=problem.pw, exact=exact)
    return per_column, est


__all__ = ["TrainedModel", "TrainingError", "fit"]
