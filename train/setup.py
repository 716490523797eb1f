"""The setup every training run shares: torch settings, seeded models, loop inputs, samples.

The final fit, the short runs of the candidate search and the physics MLP train the same
way on different rows; building their inputs here once keeps them measuring the same
thing (the codec's decoded anchors, the bound-weighted loss) and seeded the same way, so a
candidate's short-run bytes predict the final model's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from balerc.formats.errors import InputError

from .config import TrainConfig
from .loop import Batch, LoopResult, make_batch, train_loop
from .models import Autoencoder, build_model
from .physics import PhysicsModel, build_physics
from .problem import Problem
from .relations import Plan

# Below this many rows intra-op threads cost more than they give (measured: Zmumu 10.5 s on
# 1 thread, 33 s on 2), so an unset --threads means 1 thread.
SMALL_TABLE_ROWS = 50_000


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when torch sees a GPU; cuda without one is an error, not a fallback."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was requested but torch sees no GPU; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def torch_settings(cfg: TrainConfig, n_rows: int) -> Iterator[torch.device]:
    """The run's device, threads and determinism; torch's global settings are restored after.

    CPU kernels used here are deterministic for a fixed thread count; CUDA needs the switch
    (and costs 2 s of imports, so it is not flipped on CPU).
    """
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif n_rows < SMALL_TABLE_ROWS:
        torch.set_num_threads(1)
    if device.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield device
    finally:
        torch.set_num_threads(old_threads)
        if device.type == "cuda":
            torch.use_deterministic_algorithms(old_det)


def sample_rows(problem: Problem, seed: int, fit_n: int, eval_n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint fit/eval samples of the training split (2/3 and 1/3 of it when it is small)."""
    y = problem.y_train
    perm = np.random.default_rng(seed + 7).permutation(len(y))
    if len(y) >= fit_n + eval_n:
        return y[perm[:fit_n]], y[perm[fit_n : fit_n + eval_n]]
    cut = (2 * len(y)) // 3
    return y[perm[:cut]], y[perm[cut:]]


def dense_model(cfg: TrainConfig, problem: Problem, latent: int, anchors: Sequence[int],
                device: torch.device) -> Autoencoder:
    """A freshly seeded network of the configured model for this problem."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.arch, problem.n_features, latent, list(anchors),
                       [c.transform for c in problem.norms], [c.log_k for c in problem.norms],
                       cfg.widths, cfg.activation).to(device)


def physics_model(cfg: TrainConfig, problem: Problem, plan: Plan,
                  mlp_columns: Sequence[str] = ()) -> PhysicsModel:
    """A freshly seeded physics decoder for `plan` (its MLP, if any, untrained)."""
    torch.manual_seed(cfg.seed)
    return build_physics(plan, problem.names, problem.norms, list(mlp_columns), cfg.widths,
                         cfg.activation, half_weights=cfg.half_weights)


@dataclass
class LoopData:
    """Everything train_loop needs besides the network and the schedule."""

    train: Batch
    val: Batch
    anchor_noise: torch.Tensor  # the bound in normalized units, per anchor
    weights: torch.Tensor  # loss weight per predicted column
    floor: torch.Tensor  # e^2 in normalized units, per predicted column (the bits loss)


def loop_data(problem: Problem, anchors: Sequence[int], predicted: Sequence[int],
              y_fit: np.ndarray, y_eval: np.ndarray, device: torch.device) -> LoopData:
    """Batches of rows y_fit (training) and y_eval (validation) with the codec's anchors."""
    anchors, predicted = list(anchors), list(predicted)

    def batch(y: np.ndarray) -> Batch:
        return make_batch(problem.normalize(y), problem.anchor_inputs(y, anchors), predicted,
                          device)

    def tensor(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(v, dtype=torch.float32, device=device)

    e_n = np.minimum(problem.e_n, MAX_BOUND_NORMALIZED)
    return LoopData(batch(y_fit), batch(y_eval), tensor(e_n[anchors]),
                    tensor(problem.weights(predicted)), tensor(e_n[predicted] ** 2))


# A bound wider than this in normalized units (a 1e-30 column under abs:1e-3: 1e28) leaves
# the column nothing to carry: its anchor noise and loss floor are capped here, where they
# had overflowed float32 and made training diverge whatever the --lr or --norm.
MAX_BOUND_NORMALIZED = 4.0


def run_loop(net: torch.nn.Module, data: LoopData, cfg: TrainConfig, *, step: float, qat: bool,
             **schedule: Any) -> LoopResult:
    """train_loop with the configured schedule; `schedule` overrides single settings."""
    kw: dict[str, Any] = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                              patience=cfg.patience, min_delta=cfg.min_delta, seed=cfg.seed,
                              loss=cfg.loss)
    kw.update(schedule)
    return train_loop(net, data.train, data.val, anchor_noise=data.anchor_noise,
                      weights=data.weights, floor=data.floor, step=step, qat=qat, **kw)
