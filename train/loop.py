"""The training loop and the codec-faithful forward pass.

Full tensors stay in memory and batches are index slices (no DataLoader): for small MLPs
the per-step Python overhead dominates, so this is what makes 100k rows train in seconds
per epoch. Training perturbs latents and anchors as the codec will quantize them; the
validation loss uses the codec's exact quantization, so early stopping tracks what the
residual coder will see.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .models import Autoencoder
from .progress import Progress

EVAL_CHUNK = 65536


@dataclass
class Batch:
    """Inputs of the codec-faithful forward: normalized rows and the decoded anchors."""

    x: torch.Tensor  # [N, F] affine-normalized, float32
    a: torch.Tensor  # [N, K] normalized values of the anchors as the codec decodes them
    target: torch.Tensor  # [N, F-K] normalized predicted columns


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    epochs_run: int = 0
    stopped: str = ""


def make_batch(
    x: np.ndarray, a: np.ndarray, predicted: Sequence[int], device: torch.device
) -> Batch:
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
    at = torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)
    return Batch(xt, at, xt[:, list(predicted)].contiguous())


@torch.no_grad()
def codec_forward(
    net: Autoencoder, x: torch.Tensor, a: torch.Tensor, step: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decoder output with latents quantized to `step` (as the codec does) and integer codes."""
    outs: list[torch.Tensor] = []
    codes: list[torch.Tensor] = []
    for s in range(0, x.shape[0], EVAL_CHUNK):
        xb, ab = x[s : s + EVAL_CHUNK], a[s : s + EVAL_CHUNK]
        inputs: list[torch.Tensor] = []
        if net.encoder is not None:
            q = torch.round(net.encoder(xb) / step)
            codes.append(q)
            inputs.append(q * step)
        if net.decoder.anchors:
            inputs.append(ab)
        outs.append(net.decoder(*inputs))
    y = torch.cat(outs) if outs else torch.zeros((0, len(net.predicted_index)))
    return y, (torch.cat(codes) if codes else None)


def _loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, floor: torch.Tensor,
          kind: str) -> torch.Tensor:
    """mse / smooth_l1: weighted mean over columns. bits: mean over columns of
    0.5 log2(1 + mse_j / floor_j), about the bits per value a residual stream spends above
    the bound's resolution (floor_j = e_j^2 in normalized units: residuals below the bound
    save nothing more), so columns are weighted as the byte count weighs them."""
    d = pred - target
    if kind == "bits":
        m = (d * d).mean(dim=0)
        return 0.5 * torch.log2(1.0 + m / floor).mean()
    if kind == "smooth_l1":
        beta = 1e-2
        ad = d.abs()
        per = torch.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    else:
        per = d * d
    return (per * weights).mean()


@dataclass
class _Run:
    """What one train_loop call threads through its epochs, so the helpers take one argument
    instead of a dozen settings, and share (never re-seed) the two RNG streams."""

    net: Autoencoder
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.ReduceLROnPlateau
    gen: torch.Generator  # CPU: the batch order
    noise_gen: torch.Generator  # on the data's device: latent and anchor noise
    has_anchor: bool
    anchor_idx: torch.Tensor
    anchor_noise: torch.Tensor
    weights: torch.Tensor
    floor: torch.Tensor
    step: float
    qat: bool
    loss: str
    bs: int
    max_steps: int | None
    patience: int
    min_delta: float
    bar: Progress
    t0: float
    best_state: dict[str, torch.Tensor]
    res: LoopResult = field(default_factory=LoopResult)
    bad: int = 0  # epochs since the last gain of at least min_delta
    steps: int = 0  # optimizer steps so far, over all epochs

    def out_of_steps(self) -> bool:
        """True once the max_steps budget (if any) is spent."""
        return self.max_steps is not None and self.steps >= self.max_steps


def _snapshot(net: Autoencoder) -> dict[str, torch.Tensor]:
    """A detached copy of the weights: the best epoch's are restored when training ends."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _optimizer(
    net: Autoencoder, lr: float, patience: int, min_delta: float
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """Adam with a plateau schedule whose patience is a third of early stopping's, so the
    rate is halved a few times (down to lr/1000) before training gives up."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=max(2, patience // 3),
        threshold=min_delta, threshold_mode="rel", min_lr=lr * 1e-3,
    )
    return opt, sched


def _epoch_count(n: int, bs: int, epochs: int, max_steps: int | None) -> int:
    """`epochs`, or under a step budget just enough epochs to spend it (at least one)."""
    steps_per_epoch = math.ceil(n / bs)
    if max_steps is not None:
        return max(1, math.ceil(max_steps / steps_per_epoch))
    return epochs


def _noisy_inputs(run: _Run, xb: torch.Tensor) -> list[torch.Tensor]:
    """Decoder inputs perturbed as the codec will quantize them: uniform noise of one latent
    step on z (when qat) and of +-anchor_noise on the anchors. The draw order (latents, then
    anchors) is part of what makes a seed reproducible."""
    inputs: list[torch.Tensor] = []
    if run.net.encoder is not None:
        z = run.net.encoder(xb)
        if run.qat:
            u = torch.rand(z.shape, generator=run.noise_gen, device=xb.device)
            z = z + (u - 0.5) * run.step
        inputs.append(z)
    if run.has_anchor:
        shape = (xb.shape[0], run.anchor_idx.numel())
        u = torch.rand(shape, generator=run.noise_gen, device=xb.device)
        inputs.append(xb.index_select(1, run.anchor_idx) + (2.0 * u - 1.0) * run.anchor_noise)
    return inputs


def _train_epoch(run: _Run, train: Batch) -> float:
    """One pass over a fresh permutation of the rows (cut short when the step budget runs
    out); returns the mean training loss per row."""
    run.net.train()
    n = train.x.shape[0]
    perm = torch.randperm(n, generator=run.gen).to(train.x.device)
    total, count = 0.0, 0
    for s in range(0, n, run.bs):
        idx = perm[s : s + run.bs]
        xb = train.x[idx]
        pred = run.net.decoder(*_noisy_inputs(run, xb))
        lval = _loss(pred, train.target[idx], run.weights, run.floor, run.loss)
        run.opt.zero_grad(set_to_none=True)
        lval.backward()
        run.opt.step()
        total += float(lval.detach()) * xb.shape[0]
        count += xb.shape[0]
        run.steps += 1
        if run.out_of_steps():
            break
    return total / max(count, 1)


def _validate(run: _Run, val: Batch) -> float:
    """Validation loss through the codec's exact quantization, so early stopping tracks what
    the residual coder will see rather than the noisy training surrogate."""
    run.net.eval()
    y, _ = codec_forward(run.net, val.x, val.a, run.step)
    return float(_loss(y, val.target, run.weights, run.floor, run.loss))


def _record_epoch(run: _Run, epoch: int, tloss: float, vloss: float) -> float:
    """Step the LR schedule on the validation loss and append the epoch to the history;
    returns the learning rate now in effect (for the progress bar)."""
    run.sched.step(vloss)
    lr_now = run.opt.param_groups[0]["lr"]
    run.res.history.append({
        "epoch": epoch, "train_loss": tloss, "val_loss": vloss, "lr": lr_now,
        "seconds": time.perf_counter() - run.t0,
    })
    run.res.epochs_run = epoch
    return lr_now


def _track_best(run: _Run, epoch: int, vloss: float) -> None:
    """Keep the weights of the lowest validation loss. Only a relative gain of min_delta
    resets patience: a smaller gain keeps the weights but still counts as a bad epoch."""
    res = run.res
    if vloss < res.best_val * (1.0 - run.min_delta) or not math.isfinite(res.best_val):
        res.best_val, res.best_epoch, run.bad = vloss, epoch, 0
        run.best_state = _snapshot(run.net)
    else:
        if vloss < res.best_val:
            res.best_val, res.best_epoch = vloss, epoch
            run.best_state = _snapshot(run.net)
        run.bad += 1


def _stop_reason(run: _Run) -> str:
    """Why training ends after this epoch ("" to go on); the step budget is checked first."""
    if run.out_of_steps():
        return "step budget"
    if run.bad >= run.patience:
        return f"early stop (no {run.min_delta:g} relative gain in {run.patience} epochs)"
    return ""


def _fit(run: _Run, train: Batch, val: Batch, epochs: int) -> str:
    """Train epoch by epoch until a stop condition; returns it as LoopResult.stopped."""
    for epoch in range(1, epochs + 1):
        tloss = _train_epoch(run, train)
        vloss = _validate(run, val)
        if not math.isfinite(vloss) or not math.isfinite(tloss):
            return "non-finite loss"
        lr_now = _record_epoch(run, epoch, tloss, vloss)
        _track_best(run, epoch, vloss)
        run.bar.update(train=tloss, val=vloss, best=run.res.best_val, lr=lr_now)
        reason = _stop_reason(run)
        if reason:
            return reason
    return "epoch limit"


def train_loop(
    net: Autoencoder,
    train: Batch,
    val: Batch,
    *,
    anchor_noise: torch.Tensor,
    weights: torch.Tensor,
    floor: torch.Tensor,
    step: float,
    qat: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    min_delta: float,
    seed: int,
    loss: str = "mse",
    max_steps: int | None = None,
    progress: bool = False,
    desc: str = "train",
) -> LoopResult:
    """Adam + ReduceLROnPlateau + early stopping; leaves `net` at its best validation epoch.

    anchor_noise: per-anchor half-width of the uniform noise added to the anchors (the
    bound in normalized units). max_steps caps optimizer steps (used by the short search
    runs); the epoch count is then derived from it.
    """
    device = train.x.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    opt, sched = _optimizer(net, lr, patience, min_delta)
    n = train.x.shape[0]
    bs = max(1, min(batch_size, n))
    epochs = _epoch_count(n, bs, epochs, max_steps)
    best_state = _snapshot(net)
    bar = Progress(epochs, progress, desc)
    t0 = time.perf_counter()
    run = _Run(
        net=net, opt=opt, sched=sched, gen=gen, noise_gen=noise_gen,
        has_anchor=bool(net.anchor_index),
        anchor_idx=torch.tensor(net.anchor_index, dtype=torch.long, device=device),
        anchor_noise=anchor_noise, weights=weights, floor=floor, step=step, qat=qat,
        loss=loss, bs=bs, max_steps=max_steps, patience=patience, min_delta=min_delta,
        bar=bar, t0=t0, best_state=best_state,
    )
    try:
        run.res.stopped = _fit(run, train, val, epochs)
    finally:
        bar.close()
    net.load_state_dict(run.best_state)
    net.eval()
    return run.res
