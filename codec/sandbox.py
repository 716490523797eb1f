"""The decoder sandbox: refuse any ONNX graph balerc's exporter would never write.

A .balerc file embeds its decoder, and files come from anywhere, so the graph is hostile
input: ONNX Runtime would happily read local files named by external-data initializers,
run a Loop of 2^40 iterations, or allocate many GiB. `check_model` validates the model
from its protobuf bytes (a small wire-format walker: the codec needs no `onnx` package)
BEFORE any ONNX Runtime session exists, and raises UnsafeModelError naming the source,
the check and what it found. The checks, in the order they run (the name in brackets is
the one every message carries):

[size]         model bytes <= MAX_MODEL_BYTES; initializer plus Constant bytes
               <= MAX_CONSTANT_BYTES.
[protobuf]     well-formed wire format (nothing truncated), only the fields of onnx.proto
               the exporter writes, no singular field twice (protobuf would merge or
               override them behind our back), valid UTF-8 strings, at most MAX_FIELDS
               protobuf fields in all (bounds the walker's own time).
[ir_version]   MIN_IR_VERSION..MAX_IR_VERSION (the exporter writes 8).
[opset]        one opset_import, domain "" or "ai.onnx", version MIN_OPSET..MAX_OPSET (17).
[functions]    no model-local functions.     [training]  no training_info.
[nodes]        node count <= MAX_NODES.
[domain]       every node in domain "" or "ai.onnx" (no custom or contrib ops).
[op]           every op in ALLOWED_OPS: exactly what train/physics.py and the torch
               export of train/models.py emit (control flow such as Loop/If/Scan is not).
[attribute]    only the attributes the exporter writes, with their types; no graph,
               sparse-tensor or type-proto attributes, no attribute references.
[external data] no tensor (initializer or attribute) stored outside the model.
[data type]    tensors of ALLOWED_DTYPES only (no strings).
[tensor]       dims >= 0, rank <= MAX_RANK, stored element count equal to the dims,
               no segments, no sparse initializers, no duplicate names.
[inputs] / [outputs]  exactly the ModelSpec: names, float32/float64, shape [N, width] with
               a symbolic (or unnamed) batch axis N; one output.
[graph]        every name defined before use (topological order), each defined once.
[shape]        static shape inference over ALLOWED_OPS with the batch axis symbolic: N
               broadcasts only against N or 1 and may only be the leading axis; anything
               whose shape cannot be inferred is refused; the output must be [N, width].
[elements]     sum over all tensors of elements per row <= MAX_ELEMENTS_PER_ROW
               + ELEMENTS_PER_IO_COLUMN x (input widths + output width), and of
               row-independent elements <= MAX_FIXED_ELEMENTS (memory ~ rows x that x 8 B).
[flops]        Gemm/MatMul multiply-adds per row <= MAX_FLOPS_PER_ROW
               + FLOPS_PER_IO_COLUMN x (input widths + output width); row-independent
               ones <= MAX_FIXED_FLOPS.

The per-row budgets grow with the declared widths because a legitimate decoder of P
columns needs about P elements and (MLP) width x P multiply-adds per row; what they stop
is amplification beyond that.

The last three stop broadcast bombs ([N,1] + [1,M], [N,1,1] + [N,1] = [N,N,1]),
Concat-doubling chains and compute bombs (one weight reused by thousands of MatMul nodes).
"""

from __future__ import annotations

import math
import struct
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from balerc.formats.errors import UnsafeModelError

# ----------------------------------------------------------------------------- limits
MAX_CONSTANT_BYTES = 64 << 20
"""Initializers plus Constant values, bytes. The exporter's largest decoder (baler widths,
200-100-50) holds ~110 kB; dense-wide --widths 2048,1024 about 10 MB."""
MAX_MODEL_BYTES = MAX_CONSTANT_BYTES + (16 << 20)
"""Whole model, bytes: the constants plus room for the graph itself."""
MAX_NODES = 8192
"""Nodes in the graph; the exporter's largest (a physics decoder with MLP) has ~140."""
MAX_ELEMENTS_PER_ROW = 1 << 16
"""Sum over every tensor that has the batch axis of its elements per row (ONNX Runtime
needs at most rows x this x 8 bytes), plus ELEMENTS_PER_IO_COLUMN per input/output
column; the exporter's graphs need a few hundred (baler, 6 + 11 columns: ~750)."""
ELEMENTS_PER_IO_COLUMN = 4
"""Extra per-row elements allowed per declared input or output column (an MLP needs ~2)."""
MAX_FIXED_ELEMENTS = 1 << 24
"""Sum of the elements of every computed tensor without the batch axis (casts of weights,
shapes, scalars)."""
MAX_FLOPS_PER_ROW = 1 << 22
"""Gemm/MatMul multiply-adds per row, plus FLOPS_PER_IO_COLUMN per input/output column;
the baler decoder on 17 columns needs ~26 thousand."""
FLOPS_PER_IO_COLUMN = 256
"""Extra multiply-adds per row allowed per declared column: any exporter MLP layer of
width <= 256 (baler's widest is 200) fits for any number of columns."""
MAX_FIXED_FLOPS = 1 << 26
"""Gemm/MatMul multiply-adds on tensors without the batch axis (done once per run)."""
MAX_RANK = 4
"""Rank of any tensor; the exporter's are at most 2."""
MAX_DIM = 1 << 31
"""Any one dim, declared or inferred, a zero-element tensor's included."""
MAX_FIELDS = 1 << 18
"""Protobuf fields in the whole model (under 1 s of walking); a 140-node graph has ~1500,
a graph of MAX_NODES nodes ~80 thousand."""
MIN_IR_VERSION, MAX_IR_VERSION = 3, 10
MIN_OPSET, MAX_OPSET = 13, 21

# ONNX TensorProto.DataType codes balerc's graphs use: code -> (name, itemsize, field).
FLOAT, UINT8, INT8, INT32, INT64, BOOL, FLOAT16, DOUBLE = 1, 2, 3, 6, 7, 9, 10, 11
ALLOWED_DTYPES: dict[int, tuple[str, int, str]] = {
    FLOAT: ("float", 4, "float_data"), DOUBLE: ("double", 8, "double_data"),
    FLOAT16: ("float16", 2, "int32_data"), INT64: ("int64", 8, "int64_data"),
    INT32: ("int32", 4, "int32_data"), BOOL: ("bool", 1, "int32_data"),
    UINT8: ("uint8", 1, "int32_data"), INT8: ("int8", 1, "int32_data"),
}
_DTYPE_NAMES = {0: "undefined", 4: "uint16", 5: "int16", 8: "string", 12: "uint32",
                13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"}

_P = "train/physics.py"
_T = "torch.onnx.export of train/models.py"
ALLOWED_OPS: dict[str, str] = {
    "Add": f"{_P} OnnxOps.add, column offsets; {_T} (log1p, gelu)",
    "Sub": f"{_P} OnnxOps.sub, anchor normalization",
    "Mul": f"{_P} OnnxOps.mul, silu; {_T} (log transform, silu, gelu)",
    "Div": f"{_P} OnnxOps.div, anchor normalization; {_T} (gelu)",
    "Exp": f"{_P} OnnxOps.exp", "Log": f"{_P} OnnxOps.log, log transform; {_T} (log1p)",
    "Sqrt": f"{_P} OnnxOps.sqrt", "Abs": f"{_P} OnnxOps.abs", "Sign": f"{_P} OnnxOps.sign",
    "Sin": f"{_P} OnnxOps.sin", "Cos": f"{_P} OnnxOps.cos", "Atan": f"{_P} OnnxOps.atan32",
    "Max": f"{_P} OnnxOps.relu (Max with 0)",
    "Greater": f"{_P} where_gt0", "Less": f"{_P} where_lt0", "Equal": f"{_P} where_eq0",
    "Where": f"{_P} where_*, log transform; {_T} (InputTransform)",
    "Gather": f"{_P} anchor columns (scalar index, axis 1)",
    "Shape": f"{_P} zero column (Shape end=1)", "ConstantOfShape": f"{_P} zero column",
    "Unsqueeze": f"{_P} output columns", "Concat": f"{_P} columns, z+anchors; {_T} (cat)",
    "Identity": f"{_P} output y", "Cast": f"{_P} atan32, float16 weights, MLP I/O",
    "Gemm": f"{_P} MLP layers; {_T} (nn.Linear)", "MatMul": f"{_P} MLP output selection",
    "Relu": f"{_P} relu activation, log transform; {_T} (relu, log1p)",
    "LeakyRelu": f"{_P} and {_T} leakyrelu activation",
    "Tanh": f"{_P} tanh activation; {_T} (tanh, encoder output)",
    "Sigmoid": f"{_P} silu activation; {_T} (silu)",
    "Erf": f"{_T} (gelu)", "Constant": f"{_T} (scalar constants)",
}
_CONTROL_FLOW = {"Loop", "If", "Scan", "SequenceMap"}

_UNARY = {"Exp", "Log", "Sqrt", "Abs", "Sign", "Sin", "Cos", "Atan", "Relu", "LeakyRelu",
          "Tanh", "Sigmoid", "Erf", "Identity"}
_BINARY = {"Add", "Sub", "Mul", "Div"}
_COMPARE = {"Greater", "Less", "Equal"}
_ARITY: dict[str, tuple[int, int]] = {
    **{op: (1, 1) for op in _UNARY | {"Shape", "ConstantOfShape", "Cast"}},
    **{op: (2, 2) for op in _BINARY | _COMPARE | {"MatMul", "Gather", "Unsqueeze"}},
    "Max": (2, 2), "Where": (3, 3), "Gemm": (2, 3), "Concat": (1, MAX_NODES),
    "Constant": (0, 0),
}
# AttributeProto.AttributeType codes.
A_FLOAT, A_INT, A_TENSOR = 1, 2, 4
_ATTRS: dict[str, dict[str, int]] = {
    "Gemm": {"alpha": A_FLOAT, "beta": A_FLOAT, "transA": A_INT, "transB": A_INT},
    "LeakyRelu": {"alpha": A_FLOAT}, "Cast": {"to": A_INT}, "Concat": {"axis": A_INT},
    "Gather": {"axis": A_INT}, "Shape": {"start": A_INT, "end": A_INT},
    "Constant": {"value": A_TENSOR}, "ConstantOfShape": {"value": A_TENSOR},
}
_REQUIRED_ATTRS = {"Cast": "to", "Concat": "axis", "Constant": "value"}

N = "N"  # the symbolic batch axis in inferred shapes
Dim = int | str
Shape = tuple[Dim, ...]


# ----------------------------------------------------------------------------- API
@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, "float32" or "float64", shape [N, width]."""

    name: str
    dtype: str
    width: int

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"TensorSpec {self.name}: dtype must be float32 or float64, "
                             f"not {self.dtype!r}")
        if self.width < 1:
            raise ValueError(f"TensorSpec {self.name}: width must be >= 1, not {self.width}")


@dataclass(frozen=True)
class ModelSpec:
    """The signature balerc expects of a graph: its inputs, in order, and its one output."""

    inputs: tuple[TensorSpec, ...]
    output: TensorSpec


def decoder_spec(latent_dim: int, n_anchors: int, n_predicted: int, io64: bool) -> ModelSpec:
    """A decoder's spec from its coder record: z [N, L] float32, a [N, K], y [N, P]."""
    inputs = []
    if latent_dim > 0:
        inputs.append(TensorSpec("z", "float32", latent_dim))
    if n_anchors > 0:
        inputs.append(TensorSpec("a", "float64" if io64 else "float32", n_anchors))
    return ModelSpec(tuple(inputs), TensorSpec("y", "float64" if io64 else "float32", n_predicted))


def encoder_spec(n_features: int, latent_dim: int) -> ModelSpec:
    """An encoder's spec: x [N, F] float32 -> z [N, L] float32."""
    return ModelSpec((TensorSpec("x", "float32", n_features),),
                     TensorSpec("z", "float32", latent_dim))


@dataclass(frozen=True)
class GraphReport:
    """What check_model measured on a graph it accepted."""

    nodes: int
    ops: dict[str, int]
    constant_bytes: int
    elements_per_row: int
    fixed_elements: int
    flops_per_row: int
    fixed_flops: int
    ir_version: int
    opset: int
    elements_limit: int  # per row, for this spec's widths
    flops_limit: int  # per row, for this spec's widths


def check_model(model: bytes, spec: ModelSpec, source: str = "<decoder>") -> GraphReport:
    """Validate `model` (ONNX protobuf bytes) against `spec`; UnsafeModelError if refused."""
    _budget.left = MAX_FIELDS
    try:
        return _check(memoryview(model if isinstance(model, bytes) else bytes(model)), spec)
    except _Refusal as r:
        err = UnsafeModelError(
            f"{source}: ONNX graph refused before it could run [{r.check}]: {r.detail}; "
            f"balerc only runs graphs its own exporter writes (re-export the model with "
            f"`balerc train` if it is yours, otherwise do not trust this file)"
        )
        err.check = r.check  # type: ignore[attr-defined]
        raise err from None


class _Refusal(Exception):
    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail


# ----------------------------------------------------------------------------- wire format
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# Schema kinds: scalar varint "u", string "s", bytes "b", message "m", fixed32 "f";
# repeated ("r" prefix; numeric ones may be packed).
_WIRE = {"u": _VARINT, "s": _LEN, "b": _LEN, "m": _LEN, "f": _I32, "d": _I64}
Schema = dict[int, tuple[str, str]]

_MODEL: Schema = {1: ("ir_version", "u"), 2: ("producer_name", "s"),
                  3: ("producer_version", "s"), 4: ("domain", "s"), 5: ("model_version", "u"),
                  6: ("doc_string", "s"), 7: ("graph", "m"), 8: ("opset_import", "rm"),
                  14: ("metadata_props", "rm"), 20: ("training_info", "rm"),
                  25: ("functions", "rm")}
_OPSET: Schema = {1: ("domain", "s"), 2: ("version", "u")}
_ENTRY: Schema = {1: ("key", "s"), 2: ("value", "s")}
_GRAPH: Schema = {1: ("node", "rm"), 2: ("name", "s"), 5: ("initializer", "rm"),
                  10: ("doc_string", "s"), 11: ("input", "rm"), 12: ("output", "rm"),
                  13: ("value_info", "rm"), 15: ("sparse_initializer", "rm")}
_NODE: Schema = {1: ("input", "rs"), 2: ("output", "rs"), 3: ("name", "s"),
                 4: ("op_type", "s"), 5: ("attribute", "rm"), 6: ("doc_string", "s"),
                 7: ("domain", "s")}
_ATTR: Schema = {1: ("name", "s"), 20: ("type", "u"), 2: ("f", "f"), 3: ("i", "u"),
                 4: ("s", "b"), 5: ("t", "m"), 6: ("g", "m"), 7: ("floats", "rf"),
                 8: ("ints", "ru"), 9: ("strings", "rb"), 10: ("tensors", "rm"),
                 11: ("graphs", "rm"), 13: ("doc_string", "s"), 14: ("tp", "m"),
                 15: ("type_protos", "rm"), 21: ("ref_attr_name", "s"),
                 22: ("sparse_tensor", "m"), 23: ("sparse_tensors", "rm")}
_TENSOR: Schema = {1: ("dims", "ru"), 2: ("data_type", "u"), 3: ("segment", "m"),
                   4: ("float_data", "rf"), 5: ("int32_data", "ru"), 6: ("string_data", "rb"),
                   7: ("int64_data", "ru"), 8: ("name", "s"), 9: ("raw_data", "b"),
                   10: ("double_data", "rd"), 11: ("uint64_data", "ru"),
                   12: ("doc_string", "s"), 13: ("external_data", "rm"),
                   14: ("data_location", "u")}
_VALUE_INFO: Schema = {1: ("name", "s"), 2: ("type", "m"), 3: ("doc_string", "s")}
_TYPE: Schema = {1: ("tensor_type", "m"), 4: ("sequence_type", "m"), 5: ("map_type", "m"),
                 8: ("sparse_tensor_type", "m"), 9: ("optional_type", "m")}
_TENSOR_TYPE: Schema = {1: ("elem_type", "u"), 2: ("shape", "m")}
_SHAPE: Schema = {1: ("dim", "rm")}
_DIM: Schema = {1: ("dim_value", "u"), 2: ("dim_param", "s"), 3: ("denotation", "s")}

Fields = dict[str, list[Any]]
_budget = threading.local()  # fields left to parse in this thread's check_model call


def _varint(buf: memoryview, i: int, what: str) -> tuple[int, int]:
    """Decode one varint at i; refuse truncation and values past 64 bits."""
    v = shift = 0
    for k in range(i, min(i + 10, len(buf))):
        b = buf[k]
        v |= (b & 0x7F) << shift
        if b < 0x80:
            if v >> 64:
                break
            return v, k + 1
        shift += 7
    raise _Refusal("protobuf", f"{what} is truncated or holds a malformed varint")


def _parse(buf: memoryview, schema: Schema, what: str) -> Fields:
    """Fields of one message by schema name; unknown fields and repeated singulars refused."""
    out: Fields = {}
    i, n = 0, len(buf)
    while i < n:
        _budget.left -= 1
        if _budget.left < 0:
            raise _Refusal("protobuf", f"the model has over {MAX_FIELDS} protobuf fields")
        key, i = _varint(buf, i, what)
        num, wire = key >> 3, key & 7
        if num not in schema:
            raise _Refusal("protobuf", f"{what} has field number {num}, which is not one "
                                       f"balerc's exporter writes")
        name, kind = schema[num]
        base = kind.lstrip("r")
        if wire == _VARINT:
            v, i = _varint(buf, i, what)
        elif wire == _I64 or wire == _I32:
            size = 8 if wire == _I64 else 4
            if i + size > n:
                raise _Refusal("protobuf", f"{what} is truncated (field {name})")
            v, i = int.from_bytes(buf[i:i + size], "little"), i + size
        elif wire == _LEN:
            size, i = _varint(buf, i, what)
            if i + size > n:
                raise _Refusal("protobuf", f"{what} is truncated (field {name} needs {size} "
                                           f"bytes, {n - i} left)")
            v, i = buf[i:i + size], i + size
        else:
            raise _Refusal("protobuf", f"{what} has protobuf wire type {wire} (groups), "
                                       f"which ONNX never uses")
        packed = kind[0] == "r" and base in "ufd" and wire == _LEN
        if wire != _WIRE[base] and not packed:
            raise _Refusal("protobuf", f"{what} field {name} has wire type {wire}, "
                                       f"expected {_WIRE[base]}")
        if kind[0] != "r" and name in out:
            raise _Refusal("protobuf", f"{what} has its singular field {name} twice "
                                       f"(protobuf would merge or override it)")
        out.setdefault(name, []).append(v)
    return out


def _one(f: Fields, name: str, default: Any = None) -> Any:
    return f[name][0] if name in f else default


def _str(f: Fields, name: str, what: str, default: str = "") -> str:
    """A string field, strictly UTF-8."""
    if name not in f:
        return default
    try:
        return bytes(f[name][0]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Refusal("protobuf", f"{what} field {name} is not valid UTF-8") from None


def _strs(f: Fields, name: str, what: str) -> list[str]:
    try:
        return [bytes(v).decode("utf-8") for v in f.get(name, [])]
    except UnicodeDecodeError:
        raise _Refusal("protobuf", f"{what} field {name} is not valid UTF-8") from None


def _int64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _int32(v: int, what: str) -> int:
    """An int32/enum field: protobuf truncates to 32 bits, so refuse what it would change."""
    s = _int64(v)
    if not -(1 << 31) <= s < (1 << 31):
        raise _Refusal("protobuf", f"{what} holds {s}, outside the int32 range")
    return s


def _varints(values: list[Any], what: str) -> list[int]:
    """All values of a repeated varint field (packed chunks decoded), as int64."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int):
            out.append(_int64(v))
            continue
        i = 0
        while i < len(v):
            x, i = _varint(v, i, what)
            out.append(_int64(x))
    return out


def _count(values: list[Any], size: int, what: str) -> int:
    """Element count of a repeated numeric field; size 0 = varint, else fixed width."""
    total = 0
    for v in values:
        if isinstance(v, int):
            total += 1
        elif size:
            if len(v) % size:
                raise _Refusal("protobuf", f"{what} packed data is not a multiple of {size}")
            total += len(v) // size
        else:
            arr = np.frombuffer(v, dtype=np.uint8)
            if len(arr) and arr[-1] >= 0x80:
                raise _Refusal("protobuf", f"{what} packed varints are truncated")
            total += int(np.count_nonzero(arr < 0x80))
    return total


# ----------------------------------------------------------------------------- tensors
@dataclass
class _Tensor:
    name: str
    dtype: int
    dims: tuple[int, ...]
    nbytes: int
    ints: tuple[int, ...] | None  # contents of a small integer tensor


_SMALL = 64  # integer tensors up to this many elements are decoded (indices, axes)


def _tensor(buf: memoryview, what: str) -> _Tensor:
    """Parse and validate one TensorProto (initializer or attribute value)."""
    f = _parse(buf, _TENSOR, what)
    name = _str(f, "name", what)
    what = f"{what} '{name}'" if name else what
    if "external_data" in f or _one(f, "data_location", 0) != 0:
        entries = [_parse(e, _ENTRY, what) for e in f.get("external_data", [])]
        where = ", ".join(f"{_str(e, 'key', what)}={_str(e, 'value', what)!r}" for e in entries)
        raise _Refusal("external data", f"{what} is stored outside the model "
                                        f"({where or 'no location'}); balerc's exporter "
                                        f"writes self-contained graphs")
    dtype = _int32(_one(f, "data_type", 0), what)
    if dtype not in ALLOWED_DTYPES:
        raise _Refusal("data type", f"{what} has data type {_dtype_name(dtype)}; allowed: "
                                    f"{', '.join(v[0] for v in ALLOWED_DTYPES.values())}")
    if "segment" in f:
        raise _Refusal("tensor", f"{what} is segmented, which balerc's exporter never writes")
    if _count(f.get("dims", []), 0, what) > MAX_RANK:
        raise _Refusal("tensor", f"{what} has rank over {MAX_RANK}")
    dims = tuple(_varints(f.get("dims", []), what))
    if any(d < 0 or d > MAX_DIM for d in dims) or len(dims) > MAX_RANK:
        raise _Refusal("tensor", f"{what} has dims {list(dims)}: need rank <= {MAX_RANK} "
                                 f"and every dim in 0..{MAX_DIM} (zero-element tensors too: "
                                 f"a dim of 2^62 on an empty one reached MatMul)")
    count = math.prod(dims)
    _, size, data_field = ALLOWED_DTYPES[dtype]
    stored_in = [k for k in ("float_data", "int32_data", "string_data", "int64_data",
                             "double_data", "uint64_data", "raw_data") if k in f]
    if len(stored_in) > 1 or (stored_in and stored_in[0] not in (data_field, "raw_data")):
        raise _Refusal("tensor", f"{what} ({_dtype_name(dtype)}) stores data in "
                                 f"{stored_in}, expected raw_data or {data_field}")
    if "raw_data" in f:
        held = len(f["raw_data"][0]) / size
    else:
        width = {"float_data": 4, "double_data": 8}.get(data_field, 0)
        held = _count(f.get(data_field, []), width, what)
    if held != count:
        raise _Refusal("tensor", f"{what} has dims {list(dims)} ({count} elements) but "
                                 f"stores {held:g} elements")
    ints = None
    if dtype in (INT64, INT32) and count <= _SMALL:
        if "raw_data" in f:
            ints = tuple(int(x) for x in np.frombuffer(f["raw_data"][0],
                                                       "<i8" if dtype == INT64 else "<i4"))
        else:
            ints = tuple(_varints(f.get(data_field, []), what))
    return _Tensor(name, dtype, dims, count * size, ints)


def _dtype_name(code: int) -> str:
    if code in ALLOWED_DTYPES:
        return ALLOWED_DTYPES[code][0]
    return _DTYPE_NAMES.get(code, f"code {code}")


# ----------------------------------------------------------------------------- model level
@dataclass
class _Node:
    index: int
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"node {self.index} ({self.op} -> {', '.join(self.outputs)})"


def _check(buf: memoryview, spec: ModelSpec) -> GraphReport:
    if len(buf) > MAX_MODEL_BYTES:
        raise _Refusal("size", f"the model is {len(buf)} bytes, over the limit of "
                               f"{MAX_MODEL_BYTES}")
    model = _parse(buf, _MODEL, "ModelProto")
    ir = _int64(_one(model, "ir_version", 0))
    if not MIN_IR_VERSION <= ir <= MAX_IR_VERSION:
        raise _Refusal("ir_version", f"ir_version is {ir}; balerc accepts "
                                     f"{MIN_IR_VERSION}..{MAX_IR_VERSION} (its exporter writes 8)")
    if "functions" in model:
        raise _Refusal("functions", f"the model defines {len(model['functions'])} local "
                                    f"function(s), which balerc's exporter never writes")
    if "training_info" in model:
        raise _Refusal("training", "the model carries training_info, which balerc's "
                                   "exporter never writes")
    opset = _opset(model)
    for entry in model.get("metadata_props", []):
        _parse(entry, _ENTRY, "metadata_props entry")
    _str(model, "doc_string", "ModelProto")
    if "graph" not in model:
        raise _Refusal("protobuf", "the model has no graph")
    graph = _parse(model["graph"][0], _GRAPH, "GraphProto")
    if "sparse_initializer" in graph:
        raise _Refusal("tensor", "the graph has sparse initializers, which balerc's exporter "
                                 "never writes")
    n_nodes = len(graph.get("node", []))
    if n_nodes > MAX_NODES:
        raise _Refusal("nodes", f"the graph has {n_nodes} nodes, over the limit of {MAX_NODES}")
    inits = [_tensor(t, "initializer") for t in graph.get("initializer", [])]
    nodes = [_node(i, b, opset) for i, b in enumerate(graph.get("node", []))]
    const_bytes = sum(t.nbytes for t in inits) + sum(
        n.attrs["value"].nbytes for n in nodes if isinstance(n.attrs.get("value"), _Tensor))
    if const_bytes > MAX_CONSTANT_BYTES:
        raise _Refusal("size", f"initializers and constants hold {const_bytes} bytes, over "
                               f"the limit of {MAX_CONSTANT_BYTES}")
    inputs = [_value_info(b, "graph input") for b in graph.get("input", [])]
    outputs = [_value_info(b, "graph output") for b in graph.get("output", [])]
    for b in graph.get("value_info", []):
        _value_info(b, "value_info")
    _check_signature(inputs, outputs, spec)
    acc = _Accounting(spec)
    _infer(inputs, inits, nodes, spec.output, acc)
    return GraphReport(n_nodes, dict(Counter(n.op for n in nodes)), const_bytes, acc.per_row,
                       acc.fixed, acc.flops, acc.fixed_flops, ir, opset, acc.max_per_row,
                       acc.max_flops)


def _opset(model: Fields) -> int:
    entries = [_parse(b, _OPSET, "opset_import") for b in model.get("opset_import", [])]
    found = [(_str(e, "domain", "opset_import"), _int64(_one(e, "version", 0))) for e in entries]
    if len(found) != 1 or found[0][0] not in ("", "ai.onnx"):
        raise _Refusal("opset", f"opset_import is {found}; balerc's exporter imports only the "
                                f"default domain")
    version = found[0][1]
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise _Refusal("opset", f"opset version is {version}; balerc accepts "
                                f"{MIN_OPSET}..{MAX_OPSET} (its exporter writes 17)")
    return version


def _node(index: int, buf: memoryview, opset: int) -> _Node:
    """Parse a NodeProto: domain, op allowlist, arity, attributes."""
    what = f"node {index}"
    f = _parse(buf, _NODE, what)
    op = _str(f, "op_type", what)
    domain = _str(f, "domain", what)
    if domain not in ("", "ai.onnx"):
        raise _Refusal("domain", f"{what} uses op '{op}' from domain '{domain}' (a custom or "
                                 f"contrib op), which balerc's exporter never writes")
    if op not in ALLOWED_OPS:
        kind = " (control flow)" if op in _CONTROL_FLOW else ""
        raise _Refusal("op", f"{what} uses op '{op}'{kind}, which balerc's exporter never "
                             f"writes")
    node = _Node(index, op, _strs(f, "input", what), _strs(f, "output", what))
    lo, hi = _ARITY[op]
    if not lo <= len(node.inputs) <= hi or len(node.outputs) != 1:
        raise _Refusal("graph", f"{node.label()} has {len(node.inputs)} inputs and "
                                f"{len(node.outputs)} outputs; {op} takes {lo}..{hi} and "
                                f"balerc's graphs use one output")
    if "" in node.inputs or "" in node.outputs:
        raise _Refusal("graph", f"{node.label()} has an empty tensor name")
    for b in f.get("attribute", []):
        name, value = _attribute(b, op, what)
        if name in node.attrs:
            raise _Refusal("attribute", f"{what} has attribute '{name}' twice")
        node.attrs[name] = value
    if op in _REQUIRED_ATTRS and _REQUIRED_ATTRS[op] not in node.attrs:
        raise _Refusal("attribute", f"{what} ({op}) lacks attribute '{_REQUIRED_ATTRS[op]}'")
    if op == "Shape" and node.attrs and opset < 15:
        raise _Refusal("attribute", f"{what}: Shape start/end need opset 15, the model "
                                    f"imports {opset}")
    return node


_FORBIDDEN_ATTRS = {"g": "a graph (subgraph)", "graphs": "graphs (subgraphs)",
                    "sparse_tensor": "a sparse tensor", "sparse_tensors": "sparse tensors",
                    "tp": "a type proto", "type_protos": "type protos",
                    "ref_attr_name": "a function attribute reference"}


def _attribute(buf: memoryview, op: str, what: str) -> tuple[str, Any]:
    """One attribute of an allowed op: its name and decoded value (float, int or _Tensor)."""
    f = _parse(buf, _ATTR, f"{what} attribute")
    name = _str(f, "name", f"{what} attribute")
    for key, desc in _FORBIDDEN_ATTRS.items():
        if key in f:
            raise _Refusal("attribute", f"{what} ({op}) attribute '{name}' holds {desc}, "
                                        f"which balerc's exporter never writes")
    allowed = _ATTRS.get(op, {})
    if name not in allowed:
        raise _Refusal("attribute", f"{what} ({op}) has attribute '{name}'; balerc's exporter "
                                    f"writes {sorted(allowed) or 'none'} for {op}")
    kind = allowed[name]
    field_of = {A_FLOAT: "f", A_INT: "i", A_TENSOR: "t"}[kind]
    values = {k for k in ("f", "i", "s", "t", "floats", "ints", "strings", "tensors") if k in f}
    atype = _int32(_one(f, "type", 0), f"{what} attribute '{name}' type")
    if atype != kind or values != {field_of}:
        raise _Refusal("attribute", f"{what} ({op}) attribute '{name}' has type {atype} and "
                                    f"values {sorted(values)}; expected type {kind} "
                                    f"with '{field_of}'")
    raw = f[field_of][0]
    if kind == A_FLOAT:
        return name, struct.unpack("<f", raw.to_bytes(4, "little"))[0]
    if kind == A_INT:
        return name, _int64(raw)
    return name, _tensor(raw, f"{what} ({op}) attribute '{name}' tensor")


@dataclass
class _Info:
    name: str
    elem_type: int
    dims: list[int | str | None]  # dim_value, dim_param, or None (unknown)
    has_shape: bool


def _value_info(buf: memoryview, what: str) -> _Info:
    f = _parse(buf, _VALUE_INFO, what)
    name = _str(f, "name", what)
    what = f"{what} '{name}'"
    if "type" not in f:
        raise _Refusal("protobuf", f"{what} has no type")
    t = _parse(f["type"][0], _TYPE, what)
    if "tensor_type" not in t:
        raise _Refusal("data type", f"{what} is a {', '.join(t) or 'untyped'} value, not a "
                                    f"tensor")
    if len(t) != 1 or len(t["tensor_type"]) != 1:  # protobuf keeps the last oneof member:
        raise _Refusal("protobuf", f"{what}'s type sets {sorted(t)} (a oneof holds one; "
                                   f"protobuf would read the last, this check the first)")
    tt = _parse(t["tensor_type"][0], _TENSOR_TYPE, what)
    elem = _int32(_one(tt, "elem_type", 0), what)
    dims: list[int | str | None] = []
    if "shape" in tt:
        for d in _parse(tt["shape"][0], _SHAPE, what).get("dim", []):
            df = _parse(d, _DIM, what)
            if len(df.get("dim_value", [])) + len(df.get("dim_param", [])) > 1:
                raise _Refusal("protobuf", f"{what} has a dim set twice (a oneof)")
            if "dim_value" in df:
                dims.append(_int64(df["dim_value"][0]))
            else:
                dims.append(_str(df, "dim_param", what) or None)
    return _Info(name, elem, dims, "shape" in tt)


_SPEC_DTYPES = {"float32": FLOAT, "float64": DOUBLE}


def _describe(info: _Info) -> str:
    dims = [d if d is not None else "?" for d in info.dims] if info.has_shape else "unknown"
    return f"'{info.name}' {_dtype_name(info.elem_type)} {dims}"


def _matches(info: _Info, t: TensorSpec, need_shape: bool) -> bool:
    if info.name != t.name or info.elem_type != _SPEC_DTYPES[t.dtype]:
        return False
    if not info.has_shape:
        return not need_shape
    return (len(info.dims) == 2 and not isinstance(info.dims[0], int)
            and info.dims[1] == t.width)


def _check_signature(inputs: list[_Info], outputs: list[_Info], spec: ModelSpec) -> None:
    """Graph inputs and the one output must be exactly the spec's."""
    want = ", ".join(f"'{t.name}' {t.dtype} [N, {t.width}]" for t in spec.inputs)
    if len(inputs) != len(spec.inputs) or not all(
            _matches(i, t, True) for i, t in zip(inputs, spec.inputs, strict=False)):
        got = ", ".join(_describe(i) for i in inputs) or "none"
        raise _Refusal("inputs", f"graph inputs are {got}; expected {want}")
    o = spec.output
    if len(outputs) != 1 or not _matches(outputs[0], o, False):
        got = ", ".join(_describe(i) for i in outputs) or "none"
        raise _Refusal("outputs", f"graph outputs are {got}; expected one, "
                                  f"'{o.name}' {o.dtype} [N, {o.width}]")


# ----------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class _Value:
    shape: Shape
    dtype: int
    ints: tuple[int, ...] | None = None  # a small constant integer tensor's contents
    dims_of: Shape | None = None  # a Shape node's output: the dims it holds


class _Unverifiable(Exception):
    pass


def _infer(inputs: list[_Info], inits: list[_Tensor], nodes: list[_Node],
           output: TensorSpec, acc: _Accounting) -> None:
    """Run shape inference node by node, adding every tensor and product to `acc`."""
    env: dict[str, _Value] = {}

    def define(name: str, value: _Value, what: str) -> None:
        if name in env:
            raise _Refusal("graph", f"{what} defines '{name}', which is already defined")
        env[name] = value

    for i in inputs:
        define(i.name, _Value((N, int(i.dims[1])), i.elem_type), "graph input")
        acc.add(env[i.name].shape, f"graph input '{i.name}'")
    for t in inits:
        define(t.name, _Value(t.dims, t.dtype, t.ints), f"initializer '{t.name}'")
    for node in nodes:
        missing = [n for n in node.inputs if n not in env]
        if missing:
            raise _Refusal("graph", f"{node.label()} reads {missing}, not defined before it "
                                    f"(graph inputs, initializers or earlier nodes)")
        try:
            value = _INFER[node.op](node, [env[n] for n in node.inputs])
            _check_dims(value.shape)
        except _Unverifiable as exc:
            raise _Refusal("shape", f"cannot verify the shape of {node.label()}: {exc}") from None
        define(node.outputs[0], value, node.label())
        acc.add(value.shape, node.label())
        acc.add_flops(node, [env[n].shape for n in node.inputs])
    _shape_feeds_only_zeros(nodes)
    got = env.get(output.name)
    want = (N, output.width)
    if got is None or got.shape != want or got.dtype != _SPEC_DTYPES[output.dtype]:
        shown = "undefined" if got is None else f"{_dtype_name(got.dtype)} {list(got.shape)}"
        raise _Refusal("shape", f"the output '{output.name}' is computed as {shown}; expected "
                                f"{output.dtype} {list(want)}")


def _shape_feeds_only_zeros(nodes: list[_Node]) -> None:
    """A Shape node's output may only size a ConstantOfShape (the exporter's zero column):
    anything else turns the row count N into a value, and a decoder whose rows depend on
    the batch decodes differently per block size (CPU blocks vs one block on CUDA)."""
    shapes = {n.outputs[0] for n in nodes if n.op == "Shape"}
    for node in nodes:
        used = [i for i in node.inputs if i in shapes]
        if used and node.op != "ConstantOfShape":
            raise _Refusal("shape", f"{node.label()} reads the Shape output(s) {used}; "
                                    f"balerc's exporter only sizes ConstantOfShape with them")


def _check_dims(shape: Shape) -> None:
    if len(shape) > MAX_RANK:
        raise _Unverifiable(f"rank {len(shape)} is over {MAX_RANK}")
    if any(d is not N and int(d) > MAX_DIM for d in shape):
        raise _Unverifiable(f"shape {list(shape)} has a dim over {MAX_DIM}")
    if N in shape[1:]:
        raise _Unverifiable(f"shape {list(shape)} has the batch axis N at position "
                            f"{shape.index(N, 1)}; only the leading axis may depend on rows")


class _Accounting:
    """Running totals of elements and multiply-adds, refused as soon as one is over."""

    def __init__(self, spec: ModelSpec) -> None:
        self.per_row = self.fixed = self.flops = self.fixed_flops = 0
        io = sum(t.width for t in spec.inputs) + spec.output.width
        self.max_per_row = MAX_ELEMENTS_PER_ROW + ELEMENTS_PER_IO_COLUMN * io
        self.max_flops = MAX_FLOPS_PER_ROW + FLOPS_PER_IO_COLUMN * io

    def add(self, shape: Shape, what: str) -> None:
        if shape and shape[0] == N:
            self.per_row += math.prod(int(d) for d in shape[1:])
        else:
            self.fixed += math.prod(int(d) for d in shape)
        if self.per_row > self.max_per_row:
            raise _Refusal("elements", f"at {what} (shape {list(shape)}) the graph's tensors "
                                       f"hold {self.per_row} elements per row, over the limit "
                                       f"of {self.max_per_row} for its input/output widths")
        if self.fixed > MAX_FIXED_ELEMENTS:
            raise _Refusal("elements", f"at {what} (shape {list(shape)}) the graph's "
                                       f"row-independent tensors hold {self.fixed} elements, "
                                       f"over the limit of {MAX_FIXED_ELEMENTS}")

    def add_flops(self, node: _Node, shapes: list[Shape]) -> None:
        if node.op not in ("Gemm", "MatMul"):
            return
        a, b = shapes[0], shapes[1]
        if node.op == "Gemm" and node.attrs.get("transA", 0):
            a = a[::-1]
        k, cols = (b[1], b[0]) if node.op == "Gemm" and node.attrs.get("transB", 0) else b
        work = int(k) * int(cols)
        if a[0] == N:
            self.flops += work
        else:
            self.fixed_flops += work * int(a[0])
        if self.flops > self.max_flops or self.fixed_flops > MAX_FIXED_FLOPS:
            raise _Refusal("flops", f"at {node.label()} the graph needs {self.flops} "
                                    f"multiply-adds per row and {self.fixed_flops} fixed; "
                                    f"limits {self.max_flops} (for its input/output widths) "
                                    f"and {MAX_FIXED_FLOPS}")


_FLOATS = {FLOAT, DOUBLE, FLOAT16}
_ARITHMETIC = _BINARY | {"Max"}


def _same_dtype(node: _Node, ins: Sequence[_Value]) -> int:
    kinds = {v.dtype for v in ins}
    if len(kinds) != 1:
        raise _Unverifiable(f"inputs mix data types {sorted(_dtype_name(k) for k in kinds)}")
    return kinds.pop()


def _broadcast(shapes: Sequence[Shape]) -> Shape:
    """numpy broadcasting where N matches only N or 1."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise _Unverifiable(f"shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _unary(node: _Node, ins: list[_Value]) -> _Value:
    return _Value(ins[0].shape, ins[0].dtype)


def _elementwise(node: _Node, ins: list[_Value]) -> _Value:
    if node.op in _ARITHMETIC and ins[0].dtype not in _FLOATS:
        raise _Unverifiable(f"it does arithmetic on {_dtype_name(ins[0].dtype)} tensors; "
                            f"balerc's exporter computes on floats only (integer Div of "
                            f"INT64_MIN by -1 kills ONNX Runtime's process)")
    dtype = _same_dtype(node, ins)
    return _Value(_broadcast([v.shape for v in ins]), BOOL if node.op in _COMPARE else dtype)


def _where(node: _Node, ins: list[_Value]) -> _Value:
    if ins[0].dtype != BOOL:
        raise _Unverifiable("the condition is not bool")
    return _Value(_broadcast([v.shape for v in ins]), _same_dtype(node, ins[1:]))


def _matrix(node: _Node, ins: list[_Value]) -> _Value:
    """Gemm and 2-D MatMul: [M, K] x [K, P] -> [M, P] (Gemm: transA/transB, bias C)."""
    a, b = ins[0].shape, ins[1].shape
    dtype = _same_dtype(node, ins)
    if len(a) != 2 or len(b) != 2 or dtype not in _FLOATS:
        raise _Unverifiable(f"needs two 2-D float matrices, got {list(a)} and {list(b)}")
    if node.attrs.get("transA", 0):
        a = a[::-1]
    if node.attrs.get("transB", 0):
        b = b[::-1]
    if a[1] != b[0] or a[1] == N or N in b:
        raise _Unverifiable(f"inner dims of {list(a)} x {list(b)} do not match")
    out = (a[0], b[1])
    if len(ins) == 3 and _broadcast([out, ins[2].shape]) != out:
        raise _Unverifiable(f"bias {list(ins[2].shape)} does not broadcast to {list(out)}")
    return _Value(out, dtype)


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _Unverifiable(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _concat(node: _Node, ins: list[_Value]) -> _Value:
    dtype = _same_dtype(node, ins)
    rank = len(ins[0].shape)
    axis = _axis(node.attrs["axis"], max(rank, 1))
    if any(len(v.shape) != rank for v in ins) or rank == 0:
        raise _Unverifiable("inputs differ in rank or are scalars")
    rest = {v.shape[:axis] + v.shape[axis + 1:] for v in ins}
    sizes = [v.shape[axis] for v in ins]
    if len(rest) != 1 or N in sizes:
        raise _Unverifiable(f"inputs {[list(v.shape) for v in ins]} do not concatenate "
                            f"on axis {axis}")
    shape = ins[0].shape
    return _Value(shape[:axis] + (sum(int(s) for s in sizes),) + shape[axis + 1:], dtype)


def _gather(node: _Node, ins: list[_Value]) -> _Value:
    data, idx = ins
    rank = len(data.shape)
    axis = _axis(node.attrs.get("axis", 0), max(rank, 1))
    if rank == 0 or idx.ints is None or idx.dtype not in (INT64, INT32):
        raise _Unverifiable("needs a tensor and constant integer indices")
    size = data.shape[axis]
    if size == N or any(not -size <= i < size for i in idx.ints):
        raise _Unverifiable(f"indices {list(idx.ints)} on axis {axis} of {list(data.shape)}")
    return _Value(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)


def _unsqueeze(node: _Node, ins: list[_Value]) -> _Value:
    data, axes = ins
    if axes.ints is None or axes.dtype != INT64 or len(axes.shape) != 1:
        raise _Unverifiable("needs constant int64 axes")
    rank = len(data.shape) + len(axes.ints)
    where = sorted(_axis(a, rank) for a in axes.ints)
    if len(set(where)) != len(where):
        raise _Unverifiable(f"repeated axes {list(axes.ints)}")
    rest = iter(data.shape)
    return _Value(tuple(1 if i in where else next(rest) for i in range(rank)), data.dtype)


def _shape(node: _Node, ins: list[_Value]) -> _Value:
    dims = ins[0].shape[node.attrs.get("start", 0):node.attrs.get("end", None)]
    return _Value((len(dims),), INT64, dims_of=dims)


def _constant_of_shape(node: _Node, ins: list[_Value]) -> _Value:
    if ins[0].dims_of is None:
        raise _Unverifiable("its shape input is not the output of a Shape node (balerc's "
                            "exporter sizes it from an existing tensor only)")
    value = node.attrs.get("value")
    if value is not None and math.prod(value.dims) != 1:
        raise _Unverifiable("its value is not a single element")
    return _Value(ins[0].dims_of, FLOAT if value is None else value.dtype)


def _cast(node: _Node, ins: list[_Value]) -> _Value:
    to = node.attrs["to"]
    if to not in ALLOWED_DTYPES:
        raise _Unverifiable(f"casts to data type {_dtype_name(to)}")
    return _Value(ins[0].shape, to)


def _constant(node: _Node, ins: list[_Value]) -> _Value:
    t = node.attrs["value"]
    return _Value(t.dims, t.dtype, t.ints)


_INFER: dict[str, Callable[[_Node, list[_Value]], _Value]] = {
    **{op: _unary for op in _UNARY},
    **{op: _elementwise for op in _BINARY | _COMPARE | {"Max"}},
    "Where": _where, "Gemm": _matrix, "MatMul": _matrix, "Concat": _concat,
    "Gather": _gather, "Unsqueeze": _unsqueeze, "Shape": _shape,
    "ConstantOfShape": _constant_of_shape, "Cast": _cast, "Constant": _constant,
}
assert set(_INFER) == set(ALLOWED_OPS) == set(_ARITY)

__all__ = ["ALLOWED_DTYPES", "ALLOWED_OPS", "ELEMENTS_PER_IO_COLUMN", "FLOPS_PER_IO_COLUMN",
           "GraphReport", "MAX_CONSTANT_BYTES",
           "MAX_ELEMENTS_PER_ROW", "MAX_FIXED_ELEMENTS", "MAX_FIXED_FLOPS",
           "MAX_FLOPS_PER_ROW", "MAX_MODEL_BYTES", "MAX_NODES", "MAX_RANK", "ModelSpec",
           "TensorSpec", "check_model", "decoder_spec", "encoder_spec"]
