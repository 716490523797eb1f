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
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=max(2, patience // 3),
        threshold=min_delta, threshold_mode="rel", min_lr=lr * 1e-3,
    )
    n = train.x.shape[0]
    bs = max(1, min(batch_size, n))
    steps_per_epoch = math.ceil(n / bs)
    if max_steps is not None:
        epochs = max(1, math.ceil(max_steps / steps_per_epoch))
    res = LoopResult()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    bad = 0
    bar = Progress(epochs, progress, desc)
    t0 = time.perf_counter()
    has_anchor = bool(net.anchor_index)
    anchor_idx = torch.tensor(net.anchor_index, dtype=torch.long, device=device)
    steps = 0
    try:
        for epoch in range(1, epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen).to(device)
            total, count = 0.0, 0
            for s in range(0, n, bs):
                idx = perm[s : s + bs]
                xb = train.x[idx]
                inputs: list[torch.Tensor] = []
                if net.encoder is not None:
                    z = net.encoder(xb)
                    if qat:
                        u = torch.rand(z.shape, generator=noise_gen, device=device)
                        z = z + (u - 0.5) * step
                    inputs.append(z)
                if has_anchor:
                    u = torch.rand((xb.shape[0], anchor_idx.numel()), generator=noise_gen, device=device)
                    inputs.append(xb.index_select(1, anchor_idx) + (2.0 * u - 1.0) * anchor_noise)
                pred = net.decoder(*inputs)
                lval = _loss(pred, train.target[idx], weights, floor, loss)
                opt.zero_grad(set_to_none=True)
                lval.backward()
                opt.step()
                total += float(lval.detach()) * xb.shape[0]
                count += xb.shape[0]
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            net.eval()
            y, _ = codec_forward(net, val.x, val.a, step)
            vloss = float(_loss(y, val.target, weights, floor, loss))
            tloss = total / max(count, 1)
            if not math.isfinite(vloss) or not math.isfinite(tloss):
                res.stopped = "non-finite loss"
                break
            sched.step(vloss)
            lr_now = opt.param_groups[0]["lr"]
            res.history.append({
                "epoch": epoch, "train_loss": tloss, "val_loss": vloss, "lr": lr_now,
                "seconds": time.perf_counter() - t0,
            })
            res.epochs_run = epoch
            if vloss < res.best_val * (1.0 - min_delta) or not math.isfinite(res.best_val):
                res.best_val, res.best_epoch, bad = vloss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                if vloss < res.best_val:  # small gain: keep the weights, still count patience
                    res.best_val, res.best_epoch = vloss, epoch
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                bad += 1
            bar.update(train=tloss, val=vloss, best=res.best_val, lr=lr_now)
            if max_steps is not None and steps >= max_steps:
                res.stopped = "step budget"
                break
            if bad >= patience:
                res.stopped = f"early stop (no {min_delta:g} relative gain in {patience} epochs)"
                break
        else:
            res.stopped = "epoch limit"
    finally:
        bar.close()
    net.load_state_dict(best_state)
    net.eval()
    return res
