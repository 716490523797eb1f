"""Physics-informed candidates for the model search, scored by the bytes the codec writes.

Formulas need no training: a plan's bytes are measured directly (anchors plain, derived
columns as residuals against the exact formulas, the decoder's ONNX bytes). Columns no
relation covers are anchors, or, in the "+mlp" variant, predicted by a small MLP trained
for a short run; the variant is kept only if it writes fewer bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import TrainConfig
from .estimate import estimate_bytes
from .loop import LoopResult
from .physics import PhysicsModel, onnx_size
from .problem import Problem, decoded_anchors
from .relations import Plan, Relations, candidate_plans
from .setup import loop_data, physics_model, run_loop


@dataclass
class PhysicsCandidate:
    plan: Plan
    mlp_columns: list[str] = field(default_factory=list)
    half_weights: bool = False
    bytes: float = float("inf")
    model_bytes: int = 0
    chosen: bool = False
    net: PhysicsModel | None = None
    final_bytes: float | None = None  # measured after the full training, when chosen

    def label(self) -> str:
        basis = ",".join(sorted(set(self.plan.basis.values()))) or "linear"
        extra = f"+mlp({len(self.mlp_columns)})" if self.mlp_columns else ""
        return f"physics[{basis}]{extra}"

    def to_json(self, names: Sequence[str], raw_bytes: int) -> dict:
        anchors = [n for n in names if n not in set(self.plan.derived) | set(self.mlp_columns)]
        return {
            "model": self.label(), "anchors": anchors, "latent": 0,
            "derived": list(self.plan.derived), "mlp_columns": list(self.mlp_columns),
            "model_bytes": self.model_bytes, "proxy_bytes": None, "proxy_ratio": None,
            "short_bytes": round(self.bytes), "short_ratio": round(raw_bytes / self.bytes, 4),
            "final_bytes": None if self.final_bytes is None else round(self.final_bytes),
            "final_ratio": None, "chosen": self.chosen,
        }


def predict(problem: Problem, net: PhysicsModel, y: np.ndarray) -> np.ndarray:
    """Predictions in column units (float64) from the anchors as the codec decodes them,
    computed as the exported graph does (float64 in and out)."""
    a = decoded_anchors(y, net.anchor_index, problem.e, problem.pw)
    return net.decoder.predict_raw(torch.from_numpy(np.ascontiguousarray(a))).numpy()


def measure(problem: Problem, net: PhysicsModel, y: np.ndarray) -> tuple[float, int]:
    """(estimated total bytes scaled to all rows, decoder ONNX bytes) on rows y."""
    y_hat = predict(problem, net, y)
    mb = onnx_size(net)
    exact = [problem.names.index(n) for n in net.decoder.exact_columns]
    est = estimate_bytes(y, problem.names, problem.e, net.anchor_index, y_hat, None, mb,
                         problem.total_rows, pwrel=problem.pw, exact=exact)
    return est.total_bytes, mb


def train_mlp(problem: Problem, cfg: TrainConfig, net: PhysicsModel, y_fit: np.ndarray,
              y_eval: np.ndarray, device: torch.device, max_steps: int | None, patience: int,
              epochs: int) -> LoopResult:
    """Train the MLP of a physics decoder (formulas stay exact); weights rounded to float16
    afterwards when the decoder stores them so."""
    data = loop_data(problem, net.anchor_index, net.predicted_index, y_fit, y_eval, device)
    net.to(device)
    res = run_loop(net, data, cfg, step=1.0, qat=False, epochs=epochs, patience=patience,
                   max_steps=max_steps, progress=cfg.progress and max_steps is None,
                   desc="physics mlp")
    net.cpu().eval()
    if net.decoder.half_weights:
        net.decoder.round_weights_half()
    return res


def physics_candidates(problem: Problem, cfg: TrainConfig, rel: Relations, y_fit: np.ndarray,
                       y_eval: np.ndarray, device: torch.device,
                       log: Callable[[str], None]) -> list[PhysicsCandidate]:
    """Every physics plan, with the uncovered columns as anchors and (if any) via an MLP."""
    out: list[PhysicsCandidate] = []
    raw = problem.total_rows * problem.n_features * 8
    for plan in candidate_plans(rel, problem.names):
        variants: list[list[str]] = [[]]
        others = [n for n in problem.names if n not in plan.derived and n not in plan.anchors_needed]
        if others and cfg.search_steps > 0:
            variants.append(others)
        for mlp_cols in variants:
            net = physics_model(cfg, problem, plan, mlp_cols)
            if mlp_cols:
                train_mlp(problem, cfg, net, y_fit, y_eval, device, cfg.search_steps, 10**9,
                          cfg.epochs)
            c = PhysicsCandidate(plan, list(mlp_cols), cfg.half_weights)
            c.bytes, c.model_bytes = measure(problem, net, y_eval)
            c.net = net
            out.append(c)
            log(f"  search: {c.label()} derived {plan.derived} -> ratio {raw / c.bytes:.3f} "
                f"(decoder {c.model_bytes} bytes)")
    return out
