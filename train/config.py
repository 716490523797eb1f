"""Every training option in one dataclass, shared by the Python API and `balerc train`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from balerc.formats.errors import InputError

from .normalization import NORMS

DEVICES = ("auto", "cpu", "cuda")
LOSSES = ("mse", "smooth_l1", "bits")
PHYSICS = ("auto", "off")
# train/models.py's registry, named here without importing torch (a test keeps them equal)
MODEL_NAMES = ("dense", "baler", "dense-wide", "physics")


@dataclass
class TrainConfig:
    """Options of `fit`. None means "choose by measurement" where the field says so.

    columns: glob patterns selecting float columns (None: every float column).
    latent / ratio: latent size L, or L = ceil(F / ratio); both None: searched.
    model: None lets the search choose (dense, or a physics decoder when it writes fewer
        bytes); a name fixes that architecture. What the user fixes (model, latent size,
        anchors) is never overridden: physics decoders are scored only when all are open.
    anchors: None searches the anchor set; [] means no anchors; else column names.
        `model="baler"` without anchors means none (Baler's plain autoencoder).
    norm_columns: per-column normalization overrides {column or glob: method}.
    bound: the target error bound the search optimizes bytes for (abs:E, rel:E or pwrel:E).
    min_delta: relative improvement of the validation loss that resets patience.
    threads: torch intra-op threads (None: 1 below 50k rows, else torch's default).
    physics: "auto" also scores physics-informed candidates (exact relations found on the
        data) and keeps whichever writes fewest bytes; "off" never does. model="physics"
        forces a physics-informed decoder.
    four_vectors: declared groups in the --four-vector grammar of fourvec.py, e.g.
        "mu=E1,px1,py1,pz1" or "jet=polar:pt,eta,phi,mass".
    half_weights: store the physics decoder's learned MLP weights in float16.
    anchor_trials / search_seconds: the cost bound of the anchor search on wide tables:
        each greedy step tries at most this many columns (a seeded sample), and no new
        step starts after this many seconds.
    """

    columns: list[str] | None = None
    latent: int | None = None
    ratio: float | None = None
    model: str | None = None
    widths: list[int] | None = None
    activation: str | None = None
    norm: str = "auto"
    norm_columns: dict[str, str] | None = None
    epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-2
    patience: int = 20
    min_delta: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    qat: bool = True
    latent_bits: int = 6
    anchors: list[str] | None = None
    bound: str = "rel:1e-3"
    loss: str = "mse"
    max_anchors: int = 6
    search_rows: int = 16384
    search_steps: int = 600
    search_top: int = 3
    anchor_trials: int = 64
    search_seconds: float = 120.0
    progress: bool = False
    physics: str = "auto"
    four_vectors: list[str] | None = None
    half_weights: bool = False

    @property
    def arch(self) -> str:
        """The registered architecture dense models are built from (dense when open)."""
        return self.model or "dense"

    @property
    def search_open(self) -> bool:
        """Physics decoders compete only when model, latent size and anchors are all open."""
        return self.model is None and self.latent is None and self.ratio is None \
            and self.anchors is None

    def resolved_anchors(self) -> list[str] | None:
        """The anchors the user fixed; Baler's model has none unless named."""
        if self.anchors is None and self.model == "baler":
            return []
        return self.anchors

    def validate(self) -> None:
        """Reject impossible option values early, naming the option and the fix."""
        self._check_types()
        if self.latent is not None and self.ratio is not None:
            raise InputError("give either --latent or --ratio, not both")
        if self.latent is not None and self.latent < 0:
            raise InputError(f"--latent must be >= 0, got {self.latent}")
        if self.ratio is not None and not self.ratio > 1:
            raise InputError(f"--ratio must be > 1 (latent size = ceil(columns / ratio)), got {self.ratio}")
        if self.norm not in NORMS:
            raise InputError(f"unknown --norm '{self.norm}'; use one of {', '.join(NORMS)}")
        for col, method in (self.norm_columns or {}).items():
            if method not in NORMS:
                raise InputError(f"normalization '{method}' for column '{col}' is unknown; "
                                 f"use one of {', '.join(NORMS)}")
        if self.model is not None and self.model not in MODEL_NAMES:
            raise InputError(f"unknown --model '{self.model}'; use one of "
                             f"{', '.join(MODEL_NAMES)}")
        if self.model == "physics" and (self.latent is not None or self.ratio is not None):
            raise InputError("--model physics has no latents (exact formulas on anchors); "
                             "drop --latent/--ratio, or choose --model dense or baler")
        if self.device not in DEVICES:
            raise InputError(f"unknown --device '{self.device}'; use one of {', '.join(DEVICES)}")
        if self.physics not in PHYSICS:
            raise InputError(f"unknown physics mode '{self.physics}'; use one of {', '.join(PHYSICS)}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss '{self.loss}'; use one of {', '.join(LOSSES)}")
        for name, value, lo in (
            ("--epochs", self.epochs, 1),
            ("--batch-size", self.batch_size, 1),
            ("--patience", self.patience, 1),
            ("latent_bits", self.latent_bits, 1),
        ):
            if int(value) < lo:
                raise InputError(f"{name} must be >= {lo}, got {value}")
        if self.latent_bits > 16:
            raise InputError(f"latent_bits must be <= 16, got {self.latent_bits}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not self.lr > 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if self.min_delta < 0:
            raise InputError(f"--min-delta must be >= 0, got {self.min_delta}")
        if self.anchor_trials < 1 or not self.search_seconds > 0:
            raise InputError(f"anchor_trials must be >= 1 and --search-seconds > 0, got "
                             f"{self.anchor_trials} and {self.search_seconds}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")

    def _check_types(self) -> None:
        """Wrong types from Python (latent='2' had failed as a TypeError deep in training,
        columns='c*' had been read as the patterns 'c' and '*', a bad bound passed)."""
        from balerc.codec import params
        from balerc.codec.bounds import Bound

        for name in ("epochs", "batch_size", "patience", "latent_bits", "seed", "max_anchors",
                     "search_rows", "search_steps", "search_top", "anchor_trials"):
            params.integer(getattr(self, name), name, -(1 << 62))
        for name in ("latent", "threads"):
            if getattr(self, name) is not None:
                params.integer(getattr(self, name), name, -(1 << 62))
        for name in ("columns", "anchors", "four_vectors"):
            params.names(getattr(self, name), name)
        for name in ("lr", "min_delta", "val_fraction", "search_seconds") + (
                ("ratio",) if self.ratio is not None else ()):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise InputError(f"{name} must be a number, got {v!r}")
        Bound.parse(self.bound)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("progress", None)
        return d
