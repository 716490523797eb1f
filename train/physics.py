"""The physics-informed decoder ("physics" in the model registry).

Anchors are the minimal independent columns (px, py, pz per object, or pt, eta, phi, plus
the mass source when the mass is not constant, plus the sources of linear relations, plus
every column no relation covers unless a small MLP predicts it). The decoder graph

1. takes the decoded anchors in column units as float64 (manifest `decoder_io: float64`:
   no float32 rounding of the inputs, which alone costs ~1e-7 of a column's range and
   so dominates a pointwise-relative bound near zero),
2. computes the derived columns with the exact formulas of `relations.py` in float64 and
   outputs them in column units as float64: they drift between runtimes by ulps only,
   so the codec needs no range-sized drift allowance for them (they are "exact"),
3. adds an optional small learned MLP (float32, on the normalized transformed anchors and
   latents): it predicts the columns no formula covers and, with `correction`, adds a
   correction to the derived ones (its last layer starts at zero, so training starts from
   the exact formulas); those columns get the codec's normal drift allowance.

The ONNX graph is built node by node from the same formula code (`relations.Ops`), with
short tensor names, so it stays a few kB; ONNX Runtime has no double Atan/Asinh on CPU, so
eta uses log and atan2 a float32 atan refined by one float64 Newton step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from balerc.codec.model.manifest import OPSET

from .models import ACTIVATIONS, InputTransform, count_params, mlp
from .relations import Ops, Plan, evaluate

IR_VERSION = 8


class TorchOps(Ops):
    def const(self, v):
        return torch.tensor(float(v), dtype=torch.float64)

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def div(self, a, b):
        return a / b

    def sqrt(self, a):
        return torch.sqrt(a)

    def log(self, a):
        return torch.log(a)

    def exp(self, a):
        return torch.exp(a)

    def abs(self, a):
        return torch.abs(a)

    def sign(self, a):
        return torch.sign(a)

    def sin(self, a):
        return torch.sin(a)

    def cos(self, a):
        return torch.cos(a)

    def relu(self, a):
        return torch.clamp_min(a, 0.0)

    def atan32(self, a):
        return torch.atan(a.float()).double()

    def where_gt0(self, c, a, b):
        return torch.where(c > 0, a, b)

    def where_lt0(self, c, a, b):
        return torch.where(c < 0, a, b)

    def where_eq0(self, c, a, b):
        return torch.where(c == 0, a, b)


class PhysicsDecoder(nn.Module):
    """Formulas for derived columns, an MLP for the rest.

    forward: (z, a normalized float32) -> y normalized float32, for training the MLP;
    predict_raw and the ONNX graph: (z, a float64 column units) -> y float64 column units.
    """

    IO = "float64"  # the manifest's decoder_io

    def __init__(self, plan: Plan, names: Sequence[str], anchor_index: Sequence[int],
                 predicted_index: Sequence[int], offset: np.ndarray, scale: np.ndarray,
                 transforms: Sequence[str], log_k: Sequence[float | None], latent: int = 0,
                 mlp_columns: Sequence[str] = (), widths: Sequence[int] = (16,),
                 activation: str = "leakyrelu", correction: bool = False,
                 half_weights: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.names = list(names)
        self.anchor_names = [self.names[j] for j in anchor_index]
        self.pred_names = [self.names[j] for j in predicted_index]
        self.latent = int(latent)
        self.anchors = len(self.anchor_names)
        derived = set(plan.derived)
        self.formula_out = [k for k, n in enumerate(self.pred_names) if n in derived]
        self.mlp_columns = [n for n in self.pred_names if n in set(mlp_columns)]
        uncovered = [n for n in self.pred_names if n not in derived and n not in self.mlp_columns]
        if uncovered:
            raise ValueError(f"predicted columns {uncovered} have neither a formula nor the MLP")
        self.correction = bool(correction)
        self.half_weights = bool(half_weights)
        self.widths = tuple(int(w) for w in widths)
        self.act = activation
        self.register_buffer("a_off", torch.tensor([offset[j] for j in anchor_index], dtype=torch.float64))
        self.register_buffer("a_sc", torch.tensor([scale[j] for j in anchor_index], dtype=torch.float64))
        self.out_off = [float(offset[j]) for j in predicted_index]
        self.out_sc = [float(scale[j]) for j in predicted_index]
        # MLP outputs: the learned columns, then (with correction) one per derived column.
        targets = [self.pred_names.index(n) for n in self.mlp_columns]
        if self.correction:
            targets += self.formula_out
        self.mlp_targets = targets
        self.transform = InputTransform([transforms[j] for j in anchor_index],
                                        [log_k[j] for j in anchor_index])
        if targets:
            self.net = mlp([self.latent + self.anchors, *self.widths, len(targets)], activation, None)
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            sel = torch.zeros(len(targets), len(self.pred_names))
            for i, k in enumerate(targets):
                sel[i, k] = 1.0
            self.register_buffer("select", sel)
        else:
            self.net = None

    def input_names(self) -> list[str]:
        return (["z"] if self.latent else []) + (["a"] if self.anchors else [])

    @property
    def exact_columns(self) -> list[str]:
        """Predicted columns computed by float64 formulas only (no learned part)."""
        learned = set(self.mlp_targets)
        return [self.pred_names[k] for k in self.formula_out if k not in learned]

    def formulas_raw(self, ya: torch.Tensor) -> torch.Tensor:
        """Formula outputs [N, P] in column units, float64 (the column offset where none)."""
        vals = {n: ya[:, i] for i, n in enumerate(self.anchor_names)}
        d = evaluate(TorchOps(), self.plan, vals)
        zero = torch.zeros(ya.shape[0], dtype=torch.float64)
        cols = []
        for k, name in enumerate(self.pred_names):
            v = d.get(name)
            cols.append(zero + self.out_off[k] if v is None else (zero + v if v.dim() == 0 else v))
        return torch.stack(cols, dim=1)

    def formulas(self, a: torch.Tensor) -> torch.Tensor:
        """Normalized formula outputs [N, P] in float64 (0 where no formula)."""
        raw = self.formulas_raw(a.double() * self.a_sc + self.a_off)
        off = torch.tensor(self.out_off, dtype=torch.float64)
        sc = torch.tensor(self.out_sc, dtype=torch.float64)
        return (raw - off) / sc

    @torch.no_grad()
    def predict_raw(self, a: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """What the exported graph computes: float64 anchors in column units -> float64 y."""
        a = a.double()
        y = self.formulas_raw(a)
        if self.net is not None:
            an = ((a - self.a_off) / self.a_sc).float()
            h = self.transform(an) if z is None else torch.cat([z, self.transform(an)], dim=1)
            sc = torch.tensor(self.out_sc, dtype=torch.float64)
            y = y + (self.net(h) @ self.select).double() * sc
        return y

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.latent and self.anchors:
            z, a = inputs
        elif self.latent:
            (z,), a = inputs, None
        else:
            (a,), z = inputs, None
        if a is None:
            raise ValueError("the physics decoder needs anchors")
        y = self.formulas(a).float()
        if self.net is not None:
            h = self.transform(a) if z is None else torch.cat([z, self.transform(a)], dim=1)
            y = y + self.net(h) @ self.select
        return y

    def round_weights_half(self) -> None:
        """Round the MLP weights to float16 values (what the float16 export stores)."""
        if self.net is None:
            return
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(p.half().float())

    def param_count(self) -> int:
        return count_params(self.net)

    # ------------------------------------------------------------------ ONNX
    def onnx_model(self):
        """The decoder as an onnx ModelProto (no metadata), mirroring predict_raw() op by op."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        b = _GraphBuilder()
        o = OnnxOps(b)
        inputs = []
        if self.latent:
            inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", self.latent]))
        inputs.append(helper.make_tensor_value_info("a", TensorProto.DOUBLE, ["N", self.anchors]))
        vals = {n: b.node("Gather", ["a", b.array(np.array(i, dtype=np.int64))], axis=1)
                for i, n in enumerate(self.anchor_names)
                if n in self.plan.anchors_needed}
        d = evaluate(o, self.plan, vals)
        zero = b.node("ConstantOfShape", [b.node("Shape", ["a"], end=1)],
                      value=helper.make_tensor("v", TensorProto.DOUBLE, [1], [0.0]))
        cols = []
        axis = b.array(np.array([1], dtype=np.int64))
        for k, name in enumerate(self.pred_names):
            v = d.get(name)
            if v is None:
                v = b.node("Add", [zero, o.const(self.out_off[k])])
            elif v in b.scalars:
                v = b.node("Add", [zero, v])
            cols.append(b.node("Unsqueeze", [v, axis]))
        y = b.node("Concat", cols, axis=1) if len(cols) > 1 else cols[0]
        if self.net is not None:
            an = b.node("Div", [b.node("Sub", ["a", b.array(self.a_off.numpy())]), b.array(self.a_sc.numpy())])
            h = self._onnx_transform(b, b.node("Cast", [an], to=TensorProto.FLOAT))
            if self.latent:
                h = b.node("Concat", ["z", h], axis=1)
            layers = [m for m in self.net if isinstance(m, nn.Linear)]
            for i, lin in enumerate(layers):
                w = lin.weight.detach().numpy()
                bias = lin.bias.detach().numpy()
                if self.half_weights:
                    wn = b.node("Cast", [b.array(w.astype(np.float16))], to=TensorProto.FLOAT)
                    bn = b.node("Cast", [b.array(bias.astype(np.float16))], to=TensorProto.FLOAT)
                else:
                    wn, bn = b.array(w.astype(np.float32)), b.array(bias.astype(np.float32))
                h = b.node("Gemm", [h, wn, bn], transB=1)
                if i < len(layers) - 1:
                    h = _activation(b, self.act, h)
            corr = b.node("Cast", [b.node("MatMul", [h, b.array(self.select.numpy())])], to=TensorProto.DOUBLE)
            y = b.node("Add", [y, b.node("Mul", [corr, b.array(np.asarray(self.out_sc, dtype=np.float64))])])
        b.nodes.append(helper.make_node("Identity", [y], ["y"]))
        used = {i for nd in b.nodes for i in nd.input}
        graph = helper.make_graph(
            b.nodes, "balerc_physics_decoder", inputs,
            [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", len(self.pred_names)])],
            [numpy_helper.from_array(v, k) for k, v in b.inits.items() if k in used],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  ir_version=IR_VERSION, producer_name="balerc")
        onnx.checker.check_model(model)
        return model

    def _onnx_transform(self, b: _GraphBuilder, a: str) -> str:
        tr = self.transform
        if not tr.active:
            return a
        k = b.array(tr.k.numpy().astype(np.float32))
        inv = b.array(tr.inv_denom.numpy().astype(np.float32))
        one = b.array(np.array(1.0, dtype=np.float32))
        t = b.node("Mul", [b.node("Log", [b.node("Add", [one, b.node("Mul", [k, b.node("Relu", [a])])])]), inv])
        return b.node("Where", [b.array(tr.mask.numpy()), t, a])


def _activation(b: _GraphBuilder, name: str, h: str) -> str:
    if name == "leakyrelu":
        return b.node("LeakyRelu", [h], alpha=0.01)
    if name == "relu":
        return b.node("Relu", [h])
    if name == "tanh":
        return b.node("Tanh", [h])
    if name == "silu":
        return b.node("Mul", [h, b.node("Sigmoid", [h])])
    raise ValueError(f"activation {name} is not supported by the physics decoder; "
                     f"use one of leakyrelu, relu, tanh, silu (not {sorted(ACTIVATIONS)})")


class _GraphBuilder:
    """Nodes with short tensor names and deduplicated initializers."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: dict[str, np.ndarray] = {}
        self._consts: dict[tuple, str] = {}
        self.scalars: set[str] = set()
        self._n = 0

    def name(self) -> str:
        self._n += 1
        return f"t{self._n}"

    def array(self, v: np.ndarray) -> str:
        v = np.asarray(v)
        key = (v.dtype.str, v.shape, v.tobytes())
        if key not in self._consts:
            name = f"c{len(self._consts)}"
            self._consts[key] = name
            self.inits[name] = v
            if v.ndim == 0:
                self.scalars.add(name)
        return self._consts[key]

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name()
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


class OnnxOps(Ops):
    def __init__(self, b: _GraphBuilder) -> None:
        self.b = b
        self.zero = None

    def const(self, v):
        return self.b.array(np.array(float(v), dtype=np.float64))

    def _n(self, op, *args, **kw):
        return self.b.node(op, list(args), **kw)

    def add(self, a, b):
        return self._n("Add", a, b)

    def sub(self, a, b):
        return self._n("Sub", a, b)

    def mul(self, a, b):
        return self._n("Mul", a, b)

    def div(self, a, b):
        return self._n("Div", a, b)

    def sqrt(self, a):
        return self._n("Sqrt", a)

    def log(self, a):
        return self._n("Log", a)

    def exp(self, a):
        return self._n("Exp", a)

    def abs(self, a):
        return self._n("Abs", a)

    def sign(self, a):
        return self._n("Sign", a)

    def sin(self, a):
        return self._n("Sin", a)

    def cos(self, a):
        return self._n("Cos", a)

    def relu(self, a):
        return self._n("Max", a, self.const(0.0))

    def atan32(self, a):
        from onnx import TensorProto

        f = self._n("Cast", a, to=TensorProto.FLOAT)
        return self._n("Cast", self._n("Atan", f), to=TensorProto.DOUBLE)

    def _where(self, cmp, c, a, b):
        return self._n("Where", self._n(cmp, c, self.const(0.0)), a, b)

    def where_gt0(self, c, a, b):
        return self._where("Greater", c, a, b)

    def where_lt0(self, c, a, b):
        return self._where("Less", c, a, b)

    def where_eq0(self, c, a, b):
        return self._where("Equal", c, a, b)


class PhysicsModel(nn.Module):
    """Registry-shaped wrapper: encoder (None: L = 0), decoder, anchor/predicted indices."""

    name = "physics"
    default_widths: tuple[int, ...] = (16,)
    activation = "leakyrelu"

    def __init__(self, decoder: PhysicsDecoder, anchor_index: Sequence[int],
                 predicted_index: Sequence[int], n_features: int) -> None:
        super().__init__()
        self.n_features = n_features
        self.latent = 0
        self.encoder = None
        self.decoder = decoder
        self.anchor_index = list(anchor_index)
        self.predicted_index = list(predicted_index)
        self.widths = decoder.widths if decoder.net is not None else ()
        self.act = decoder.act

    def describe(self) -> dict:
        d = self.decoder
        return {
            "name": self.name,
            "widths": list(self.widths),
            "activation": self.act,
            "params": {"encoder": 0, "decoder": d.param_count(), "total": d.param_count()},
            "relations": d.plan.to_json(),
            "mlp_columns": list(d.mlp_columns),
            "correction": d.correction,
            "weights_dtype": "float16" if d.half_weights else "float32",
        }


def build_physics(plan: Plan, names: Sequence[str], norms, mlp_columns: Sequence[str] = (),
                  widths: Sequence[int] | None = None, activation: str | None = None,
                  correction: bool = False, half_weights: bool = False) -> PhysicsModel:
    """Anchors = every column that is neither derived by a formula nor predicted by the MLP."""
    names = list(names)
    predicted = set(plan.derived) | set(mlp_columns)
    anchor_index = [j for j, n in enumerate(names) if n not in predicted]
    pred_index = [j for j, n in enumerate(names) if n in predicted]
    off = np.array([c.offset for c in norms], dtype=np.float64)
    sc = np.array([c.scale for c in norms], dtype=np.float64)
    dec = PhysicsDecoder(plan, names, anchor_index, pred_index, off, sc,
                         [c.transform for c in norms], [c.log_k for c in norms],
                         mlp_columns=mlp_columns, widths=widths or PhysicsModel.default_widths,
                         activation=activation or PhysicsModel.activation, correction=correction,
                         half_weights=half_weights)
    return PhysicsModel(dec, anchor_index, pred_index, len(names))


def onnx_size(model: PhysicsModel) -> int:
    return len(model.decoder.onnx_model().SerializeToString())


__all__ = ["PhysicsDecoder", "PhysicsModel", "build_physics", "onnx_size"]
