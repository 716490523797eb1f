"""The model zoo: a registry of encoder/decoder pairs by name.

Every model has the same interface, because the codec runs any of them the same way:
the encoder maps all F normalized columns to L latents in [-1, 1] (tanh), the decoder
maps (quantized latents, decoded anchor columns) to the F-K predicted columns in the
affine-normalized space. Adding a model is one class plus one registry line (see MODELS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from balerc.formats.errors import InputError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "leakyrelu": nn.LeakyReLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


class InputTransform(nn.Module):
    """The per-column input nonlinearity folded into the graphs: log1p(k max(x,0))/log1p(k).

    Columns with transform "none" pass through. With no log column this is the identity
    and adds no node to the exported graph.
    """

    def __init__(self, transforms: Sequence[str], log_k: Sequence[float | None]) -> None:
        super().__init__()
        mask = [t == "log" for t in transforms]
        self.active = any(mask)
        ks = [float(k) if (m and k) else 1.0 for m, k in zip(mask, log_k, strict=True)]
        self.register_buffer("mask", torch.tensor(mask, dtype=torch.bool))
        self.register_buffer("k", torch.tensor(ks, dtype=torch.float32))
        self.register_buffer(
            "inv_denom", torch.tensor([1.0 / math.log1p(k) for k in ks], dtype=torch.float32)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        t = torch.log1p(self.k * torch.relu(x)) * self.inv_denom
        return torch.where(self.mask, t, x)


def mlp(sizes: Sequence[int], activation: str, last: nn.Module | None) -> nn.Sequential:
    """Linear layers with `activation` between them and `last` (or nothing) at the end."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x [N, F] (affine-normalized) -> z [N, L] in [-1, 1]."""

    def __init__(self, transform: InputTransform, net: nn.Module) -> None:
        super().__init__()
        self.transform = transform
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(x))


class Decoder(nn.Module):
    """(z [N, L], a [N, K]) -> y [N, F-K]; either input may be absent (L or K is 0)."""

    IO = "normalized-float32"  # the manifest's decoder_io: what its ONNX graph takes and returns

    def __init__(self, transform: InputTransform, net: nn.Module, latent: int, anchors: int):
        super().__init__()
        self.transform = transform
        self.net = net
        self.latent = latent
        self.anchors = anchors

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.latent and self.anchors:
            z, a = inputs
            h = torch.cat([z, self.transform(a)], dim=1)
        elif self.latent:
            (h,) = inputs
        else:
            (a,) = inputs
            h = self.transform(a)
        return self.net(h)

    def input_names(self) -> list[str]:
        return (["z"] if self.latent else []) + (["a"] if self.anchors else [])


class Autoencoder(nn.Module):
    """Base of every registered model: an MLP encoder and a mirrored MLP decoder.

    Subclasses set `name`, `default_widths` (hidden sizes of the encoder, first to last;
    the decoder uses them reversed) and `activation`, or override `build_*`.
    """

    name = "base"
    default_widths: tuple[int, ...] = (64, 32)
    activation = "leakyrelu"

    def __init__(
        self,
        n_features: int,
        latent: int,
        anchor_index: Sequence[int],
        transforms: Sequence[str],
        log_k: Sequence[float | None],
        widths: Sequence[int] | None = None,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.latent = latent
        self.anchor_index = list(anchor_index)
        self.predicted_index = [j for j in range(n_features) if j not in set(anchor_index)]
        self.widths = tuple(int(w) for w in (widths or self.default_widths))
        self.act = activation or self.activation
        if self.act not in ACTIVATIONS:
            raise InputError(f"unknown activation '{self.act}'; use one of {sorted(ACTIVATIONS)}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise InputError(f"widths must be positive integers, got {list(self.widths)}")
        k = len(self.anchor_index)
        self.encoder = (
            Encoder(InputTransform(transforms, log_k), self.build_encoder(n_features, latent))
            if latent > 0
            else None
        )
        a_tr = [transforms[j] for j in self.anchor_index]
        a_k = [log_k[j] for j in self.anchor_index]
        self.decoder = Decoder(
            InputTransform(a_tr, a_k),
            self.build_decoder(latent + k, len(self.predicted_index)),
            latent,
            k,
        )

    def build_encoder(self, n_in: int, n_out: int) -> nn.Module:
        return mlp([n_in, *self.widths, n_out], self.act, nn.Tanh())

    def build_decoder(self, n_in: int, n_out: int) -> nn.Module:
        return mlp([n_in, *reversed(self.widths), n_out], self.act, None)

    def describe(self) -> dict:
        """The manifest's "model" entry."""
        return {
            "name": self.name,
            "widths": list(self.widths),
            "activation": self.act,
            "params": {
                "encoder": count_params(self.encoder),
                "decoder": count_params(self.decoder),
                "total": count_params(self.encoder) + count_params(self.decoder),
            },
        }


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class Dense(Autoencoder):
    """Default: small and fast. Encoder F -> 64 -> 32 -> L, decoder (L+K) -> 32 -> 64 -> F-K."""

    name = "dense"
    default_widths = (64, 32)
    activation = "leakyrelu"


class Baler(Autoencoder):
    """Baler's widths for comparison: F -> 200 -> 100 -> 50 -> L, LeakyReLU, mirrored."""

    name = "baler"
    default_widths = (200, 100, 50)
    activation = "leakyrelu"


class DenseWide(Autoencoder):
    """Configurable widths (--widths 128,64), default 128 -> 64, mirrored."""

    name = "dense-wide"
    default_widths = (128, 64)
    activation = "leakyrelu"


class PhysicsEntry(Autoencoder):
    """Registry entry of the physics-informed decoder (train/physics.py). It is built by
    `fit` from the relations found on the data, not from sizes alone."""

    name = "physics"
    default_widths = (16,)

    def __init__(self, *args, **kwargs) -> None:  # noqa: ARG002
        raise InputError("the physics model is built by fit() from relations found on the data; "
                         "use TrainConfig(model='physics') / balerc train --model physics")


# The registry: one line per model.
MODELS: dict[str, type[Autoencoder]] = {
    Dense.name: Dense,
    Baler.name: Baler,
    DenseWide.name: DenseWide,
    PhysicsEntry.name: PhysicsEntry,
}


def build_model(
    name: str,
    n_features: int,
    latent: int,
    anchor_index: Sequence[int],
    transforms: Sequence[str],
    log_k: Sequence[float | None],
    widths: Sequence[int] | None = None,
    activation: str | None = None,
) -> Autoencoder:
    """Instantiate a registered model (InputError listing the names for an unknown one)."""
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; available: {', '.join(MODELS)}")
    return MODELS[name](n_features, latent, anchor_index, transforms, log_k, widths, activation)
