"""ONNX graph -> postfx model file, with the `onnx` package alone (no onnxruntime).

    model = postfx.export_onnx("generator.onnx", "my_style.safetensors")
    $ postfx export generator.onnx my_style.safetensors

The same op set as the torch exporter (torch_export.py), lowered the same way
onto the layer graph of model_format.py. First the graph is read as data:

- constants: initializers, Constant nodes and every node computed from them
  alone (the TorchScript exporter builds Pad's pads with ConstantOfShape /
  Concat / Reshape / Slice / Transpose / Cast chains) are evaluated once, by
  onnx.reference;
- live nodes: only what the output depends on is lowered; a weight-like input
  (a Conv weight, Pad pads, Resize scales, BatchNormalization statistics) does
  not make its producer live, so a pad computed from the input's shape is named
  as such rather than as an unsupported Shape op.

Then the live nodes, in graph order:

- Conv / ConvTranspose become conv layers named after their weight initializer
  (``enc1.weight`` -> layer ``enc1``), else after the node;
- BatchNormalization, as `batchnorm=` says (model_format.py, "Normalization"):
  "eval" folds its running statistics into the Conv / ConvTranspose right before
  it; "frame" keeps it as an instance_norm layer (origin BatchNorm2d);
  InstanceNormalization is always such a layer;
- Pad (reflect, or constant 0; equal on the four spatial sides) merges into the
  Conv reading it as the conv's padding;
- Relu / LeakyRelu / Tanh / Sigmoid go into the producer's epilogue when nothing
  else reads the producer's output, else into an ``activation`` layer;
- Concat along channels feeding convs is fused (the conv reads the sources);
  read by anything else it becomes a ``concat`` layer;
- Resize / Upsample by 2 (nearest, or linear with half-pixel coordinates)
  becomes ``upsample``; Identity and Dropout (inference) vanish.

Anything else raises UnsupportedLayer naming the op, the node and why. Then the
import checks itself (reliability D5, onnx_verify.py) against the ONNX graph run
by onnx.reference, and only then is the file written, atomically.
"""
from __future__ import annotations

import functools
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from postfx import __version__
from postfx import model_format as fmt
from postfx.errors import ExportError, NormSemanticsMismatch, UnsupportedLayer
from postfx.model import Model
from postfx.model_file import save_model

from . import onnx_verify
from .builder import build_model
from .common import BATCHNORM_CHOICES, checked_graph, finite, is_raw
from .packing import fold_batchnorm

SUPPORTED = ("Conv (2-D, square kernel, group 1, dilation 1, equal padding on all sides), ConvTranspose "
             "(the same, output_padding allowed, no output_shape), BatchNormalization (batchnorm='eval': folded "
             "into the Conv / ConvTranspose right before it; 'frame': per-frame statistics), "
             "InstanceNormalization, Pad (reflect or constant 0, equal on the four spatial sides) right before a "
             "Conv, Relu / LeakyRelu / Tanh / Sigmoid, Add of two tensors, Concat along axis 1, 2x Resize / "
             "Upsample (nearest, or linear with half_pixel / pytorch_half_pixel coordinates), Identity, "
             "Dropout (inference), Constant and anything computed from constants alone")

_ACTIVATIONS = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
_ALIASES = ("Identity", "Dropout")        # the output is the input (Dropout at inference)
# Input positions that must be constants (weights, pads, scales, statistics): their
# producers are not lowered, and a value computed at run time there is named as such.
_PARAMETER_INPUTS = {"Conv": {1, 2}, "ConvTranspose": {1, 2}, "BatchNormalization": {1, 2, 3, 4},
                     "InstanceNormalization": {1, 2}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3}, "Upsample": {1},
                     "Dropout": {1, 2}}
# Never evaluated ahead of time: random, or holding subgraphs that read outer values.
_NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli", "Dropout", "If", "Loop", "Scan"}
_MAIN_DOMAINS = ("", "ai.onnx")
# Initializer names the exporters make up (TorchScript 'onnx::Conv_35', dynamo 'val_4'): no module path
_MADE_UP_NAME = re.compile(r"::|^val_\d+$")
_FLOAT = onnx.TensorProto.FLOAT


def _attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes as Python values, strings decoded."""
    out = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        out[attribute.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def _float32(value) -> float:
    """A float attribute (stored as float32) as the shortest decimal that rounds to it: alpha
    0.2 arrives as 0.20000000298023224 and is recorded as 0.2, as torch wrote it."""
    return float(str(np.float32(value)))


def _display(node: onnx.NodeProto) -> str:
    return f"ONNX node {node.name!r} ({node.op_type})" if node.name else \
        f"ONNX {node.op_type} node making {list(node.output)[:1]}"


def _equal(values, what: str, problems: list[str]) -> int | None:
    """The one value of a list whose entries are all equal, else a problem noted."""
    values = [int(v) for v in values]
    if not values or any(v != values[0] for v in values):
        problems.append(f"{what} {values} (postfx needs them equal)")
        return None
    return values[0]


@dataclass(frozen=True)
class _Pad:
    """Padding not applied on its own: the conv reading it pads its input this way."""
    source: str         # the ONNX tensor padded
    amount: int
    mode: str           # fmt.PADDING_MODES


@dataclass(frozen=True)
class _Cat:
    """A channel concatenation that is not written out: a conv reading it reads the sources."""
    name: str                   # the Concat's ONNX output
    node: onnx.NodeProto
    sources: tuple[str, ...]    # postfx tensors


# --- reading the file ----------------------------------------------------------

def _load(source) -> tuple[onnx.ModelProto, str | None]:
    """The ModelProto, its external data loaded relative to the file; and the file's path."""
    if isinstance(source, onnx.ModelProto):
        for tensor in source.graph.initializer:
            if uses_external_data(tensor):
                raise ExportError(f"initializer {tensor.name!r} keeps its data in an external file; pass the .onnx "
                                  "file's path so that file is found beside it (or onnx.load() it first). "
                                  "Nothing was written")
        return source, None
    path = os.fspath(source)
    if os.path.isdir(path):
        raise ExportError(f"{path}: is a folder; pass the .onnx file. Nothing was written")
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such ONNX file (or not a regular file). Nothing was written")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path}: cannot read it as an ONNX model ({type(e).__name__}: {e}). "
                          "Nothing was written") from None
    # External data lives beside the model file, wherever the working directory is.
    folder = os.path.dirname(os.path.abspath(path))
    locations = {entry.value for tensor in model.graph.initializer if uses_external_data(tensor)
                 for entry in tensor.external_data if entry.key == "location"}
    missing = sorted(name for name in locations if not os.path.isfile(os.path.join(folder, name)))
    if missing:
        raise ExportError(f"{path}: the external data file(s) {missing} are missing from {folder} (tensors saved "
                          "outside the model are read from the model's folder). Nothing was written")
    try:
        load_external_data_for_model(model, folder)
    except Exception as e:
        raise ExportError(f"{path}: cannot read its external data ({type(e).__name__}: {e}). "
                          "Nothing was written") from None
    return model, path


def _check(model: onnx.ModelProto, where: str) -> int:
    """onnx's own validity check; returns the default-domain opset."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:
        raise ExportError(f"{where} is not a valid ONNX model: {str(e).strip().splitlines()[0]}. "
                          "Nothing was written") from None
    opsets = [o.version for o in model.opset_import if o.domain in _MAIN_DOMAINS]
    if not opsets:
        raise ExportError(f"{where} imports no default-domain (ai.onnx) opset. Nothing was written")
    return int(opsets[0])


def _graph_input(graph: onnx.GraphProto, initializers: set[str]) -> tuple[str, int | None]:
    """The one real graph input (NCHW float32) and its channel count when declared."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedLayer(f"the graph has {len(inputs)} inputs {[i.name for i in inputs]}; a postfx model has "
                               "one (an NCHW float32 frame). Nothing was written")
    tensor_type = inputs[0].type.tensor_type
    if inputs[0].type.WhichOneof("value") != "tensor_type" or tensor_type.elem_type != _FLOAT:
        raise UnsupportedLayer(f"graph input {inputs[0].name!r} is not a float32 tensor; postfx runs float32 frames. "
                               "Nothing was written")
    channels = None
    if tensor_type.HasField("shape"):
        dims = tensor_type.shape.dim
        if len(dims) != 4:
            raise UnsupportedLayer(f"graph input {inputs[0].name!r} has {len(dims)} dimensions; postfx takes one "
                                   "NCHW frame (4 dimensions). Nothing was written")
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise UnsupportedLayer(f"graph input {inputs[0].name!r} has a fixed batch of {dims[0].dim_value}; "
                                   "postfx runs one frame at a time (batch 1). Nothing was written")
        if dims[1].HasField("dim_value"):
            channels = int(dims[1].dim_value)
    return inputs[0].name, channels


def _fold_constants(model: onnx.ModelProto, constants: dict[str, np.ndarray], needed: list[onnx.NodeProto]) -> None:
    """Evaluate the constant-only nodes `needed` (in graph order) with onnx.reference, once."""
    if not needed:
        return
    from onnx.reference import ReferenceEvaluator
    produced = {name for node in needed for name in node.output}
    fed = sorted({name for node in needed for name in node.input if name and name not in produced})
    graph = helper.make_graph(needed, "postfx_constants", [helper.make_empty_tensor_value_info(n) for n in fed],
                              [helper.make_empty_tensor_value_info(n) for n in sorted(produced)])
    sub = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        results = ReferenceEvaluator(sub).run(None, {n: constants[n] for n in fed}, intermediate=True)
    except Exception as e:
        raise ExportError(f"onnx.reference could not evaluate the graph's constant nodes "
                          f"({', '.join(sorted({n.op_type for n in needed}))}): {type(e).__name__}: {e}. "
                          "Nothing was written") from None
    constants.update({name: np.asarray(results[name]) for name in produced if name in results})


# --- lowering ----------------------------------------------------------------------

class Lowering:
    """Walks the live nodes of an ONNX graph in order and builds the postfx layers.

    Each ONNX tensor a node makes is bound to a postfx tensor name (a layer, or
    "input"), a pending _Cat or a pending _Pad. ONNX graphs are in SSA form, so
    an in-place torch op (pix2pix's LeakyReLU on a skip tensor) arrives as an
    ordinary node whose output the later readers name.
    """

    def __init__(self, model: onnx.ModelProto, opset: int, batchnorm: str):
        self.batchnorm, self.opset = batchnorm, opset
        graph = model.graph
        self.initializers = {t.name for t in graph.initializer}
        self.input_name, self.declared_channels = _graph_input(graph, self.initializers)
        if len(graph.output) != 1:
            raise UnsupportedLayer(f"the graph has {len(graph.output)} outputs {[o.name for o in graph.output]}; a "
                                   "postfx model has one output tensor. Nothing was written")
        self.output_name = graph.output[0].name
        self.constants: dict[str, np.ndarray] = {}
        for tensor in graph.initializer:
            self.constants[tensor.name] = numpy_helper.to_array(tensor)
        self.nodes = self._live_nodes(model)     # live, not constant, in graph order
        self.readers = self._readers()
        self.values: dict[str, str | _Cat | _Pad] = {self.input_name: fmt.INPUT_TENSOR}
        self.layers: dict[str, fmt.Layer] = {}                       # in execution order
        self.weights: dict[str, tuple] = {}                          # torch layout, BatchNorm folded
        self.tails: dict[str, str] = {}      # layer -> ONNX tensor holding its output (activation / norm included)
        self.concats: dict[str, str] = {}    # Concat output -> its materialized concat layer
        self.folded_norms: list[str] = []
        self.kept_batchnorms: list[str] = []                         # batchnorm="frame"
        self.per_frame: list[onnx.NodeProto] = []                    # the BatchNormalization nodes kept
        self.names: set[str] = {fmt.INPUT_TENSOR}
        lower = {"Conv": self._conv, "ConvTranspose": self._conv, "BatchNormalization": self._batchnorm,
                 "InstanceNormalization": self._instance_norm, "Pad": self._pad, "Add": self._add,
                 "Concat": self._concat, "Resize": self._upsample, "Upsample": self._upsample,
                 "Identity": self._alias, "Dropout": self._alias}
        for node in self.nodes:
            if node.domain not in _MAIN_DOMAINS:
                raise self._unsupported(node, f"domain {node.domain!r} (postfx reads the default ai.onnx domain)")
            if node.op_type in _ACTIVATIONS:
                self._activation(node)
            elif node.op_type in lower:
                lower[node.op_type](node)
            else:
                raise self._unsupported(node)
        self.output = self._output()

    # -- what to lower

    def _live_nodes(self, model: onnx.ModelProto) -> list[onnx.NodeProto]:
        """Marks constant-only nodes (structurally), walks back from the output, evaluates the
        constants the live nodes need and returns the live non-constant nodes in order."""
        nodes = list(model.graph.node)
        constant_names = set(self.constants)
        folded = set()                       # node indices
        producer = {}
        for i, node in enumerate(nodes):
            for name in node.output:
                if name:
                    producer[name] = i
            if (node.domain in _MAIN_DOMAINS and node.op_type not in _NOT_FOLDED
                    and (node.input or node.op_type == "Constant")
                    and all(not n or n in constant_names for n in node.input)):
                folded.add(i)
                constant_names.update(n for n in node.output if n)
        live, pending = set(), [self.output_name]
        while pending:
            name = pending.pop()
            i = producer.get(name)
            if i is None or i in live:
                continue
            live.add(i)
            node = nodes[i]
            parameters = _PARAMETER_INPUTS.get(node.op_type, ())
            pending.extend(n for k, n in enumerate(node.input)
                           if n and (k not in parameters or n in constant_names))
        undefined = [n for i in live for n in nodes[i].input
                     if n and n not in producer and n not in self.constants and n != self.input_name]
        if undefined:
            raise ExportError(f"the graph reads tensor(s) {undefined[:3]} that nothing defines. Nothing was written")
        _fold_constants(model, self.constants, [nodes[i] for i in sorted(live & folded)])
        return [nodes[i] for i in sorted(live - folded)]

    def _readers(self) -> dict[str, int]:
        """How many readers each ONNX tensor has among the live nodes (the graph output counts
        as one), reading through Identity / Dropout: an alias's readers are its input's."""
        readers = {self.output_name: 1}
        for node in reversed(self.nodes):
            parameters = _PARAMETER_INPUTS.get(node.op_type, ())
            for k, name in enumerate(node.input):
                if not name or k in parameters:
                    continue
                weight = readers.get(node.output[0], 0) if node.op_type in _ALIASES else 1
                readers[name] = readers.get(name, 0) + weight
        return readers

    # -- ops

    def _conv(self, node):
        transposed = node.op_type == "ConvTranspose"
        a = _attributes(node)
        weight = self._weight(node, 1, "weight")
        bias = self._weight(node, 2, "bias", required=False)
        if weight.ndim != 4:
            raise self._unsupported(node, f"a weight of shape {weight.shape}; postfx runs 2-D convolutions")
        k = weight.shape[2]
        out_channels = weight.shape[1] if transposed else weight.shape[0]
        problems = []
        if a.get("group", 1) != 1:
            problems.append(f"group={a['group']}")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            problems.append(f"dilations={a['dilations']}")
        kernel_shape = [int(n) for n in a.get("kernel_shape", weight.shape[2:])]
        if weight.shape[2] != weight.shape[3] or kernel_shape != list(weight.shape[2:]):
            problems.append(f"kernel {kernel_shape} (weight {list(weight.shape)}; postfx needs a square kernel)")
        stride = _equal(a.get("strides", [1, 1]), "strides", problems)
        if bias is not None and bias.shape != (out_channels,):
            problems.append(f"a bias of shape {bias.shape} for {out_channels} output channels")
        auto_pad = a.get("auto_pad", "NOTSET")
        output_padding = 0
        if transposed:
            if "output_shape" in a:
                problems.append(f"output_shape={a['output_shape']} (a fixed output size)")
            output_padding = _equal(a.get("output_padding", [0, 0]), "output_padding", problems)
        if auto_pad == "VALID":
            padding = 0
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and not transposed and stride is not None:
            # With the input a multiple of the stride (the runtime pads frames so), SAME pads
            # k - s in all; symmetric only when that is even.
            total = max(k - stride, 0)
            padding = total // 2
            if total % 2:
                problems.append(f"auto_pad={auto_pad} with kernel {k} stride {stride} (pads unevenly)")
        elif auto_pad == "NOTSET":
            padding = _equal(a.get("pads", [0, 0, 0, 0]), "pads", problems)
        else:
            padding = None
            problems.append(f"auto_pad={auto_pad}")
        if problems:
            raise self._unsupported(node, ", ".join(problems))
        source, padding_mode = node.input[0], "zeros"
        value = self._value(node, source)
        if isinstance(value, _Pad):
            if transposed or padding != 0:
                why = "is transposed" if transposed else "pads itself"
                raise self._unsupported(node, f"it reads the padding {source!r} and {why}; postfx merges padding "
                                        "only into a Conv without padding of its own")
            source, padding, padding_mode = value.source, value.amount, value.mode
        layer = fmt.Layer(self._new_name(node, 1), "conv_transpose2d" if transposed else "conv2d",
                          self._sources(node, source), out_channels=int(out_channels), kernel=int(k),
                          stride=int(stride), padding=int(padding), padding_mode=padding_mode,
                          output_padding=int(output_padding))
        self._add_layer(node, layer, (weight, bias))

    def _batchnorm(self, node):
        a = _attributes(node)
        where = f"BatchNormalization {self._base_name(node, 1)!r}"
        if a.get("spatial", 1) != 1:
            raise self._unsupported(node, "spatial=0 (per-pixel statistics)")
        if any(self.readers.get(name, 0) for name in node.output[1:] if name):
            raise self._unsupported(node, "another node reads its running mean / variance outputs")
        scale = self._weight(node, 1, "scale")
        shift = self._weight(node, 2, "bias")
        eps = _float32(a.get("epsilon", 1e-5))
        if self.batchnorm == "frame":
            layer = fmt.Layer(self._new_name(node, 1), "instance_norm", (self._tensor(node, node.input[0]),),
                              eps=eps, origin="BatchNorm2d")
            self.kept_batchnorms.append(self._base_name(node, 1))
            self.per_frame.append(node)
            self._add_layer(node, layer, (scale, shift))
            return
        if _batchnorm_trains(node, a, self.opset):
            raise NormSemanticsMismatch(
                f"{where} ({_display(node)}) is in training mode: it normalizes each frame by its own statistics, "
                "which batchnorm='eval' cannot fold; import with batchnorm='frame' (`postfx export ... --batchnorm "
                "frame`). Nothing was written")
        mean, variance = (self.constants.get(node.input[k]) if len(node.input) > k and node.input[k] else None
                          for k in (3, 4))
        if mean is None or variance is None:
            raise NormSemanticsMismatch(
                f"{where} ({_display(node)}) has no running statistics (its mean / variance are computed from "
                "the tensor at run time): it normalizes each frame by its own statistics, which batchnorm='eval' "
                "cannot fold; import with batchnorm='frame'. Nothing was written")
        mean = finite(np.asarray(mean, np.float32), f"the mean {node.input[3]!r} of {where}")
        variance = finite(np.asarray(variance, np.float32), f"the variance {node.input[4]!r} of {where}")
        value = self._value(node, node.input[0])
        layer = self.layers.get(value) if isinstance(value, str) else None
        if layer is None or layer.op not in fmt.CONV_OPS:
            why = f"its input {node.input[0]!r} is not the output of a Conv / ConvTranspose"
        elif layer.activation != "none":
            why = f"an activation sits between conv {value!r} and the norm"
        elif self.readers.get(self.tails[value], 0) != 1:
            why = f"the output of conv {value!r} is also read by another node"
        elif {np.shape(term) for term in (scale, shift, mean, variance)} != {(layer.out_channels,)}:
            why = (f"its terms have shapes {[np.shape(t) for t in (scale, shift, mean, variance)]} for conv "
                   f"{value!r} of {layer.out_channels} channels")
        else:
            why = None
        if why:
            raise self._unsupported(node, f"it cannot be folded: {why}. postfx folds an eval-mode "
                                    "BatchNormalization only directly after a conv whose output nothing else reads")
        if not (variance + eps > 0).all():
            raise ExportError(f"{where}: variance + epsilon <= 0 in channel(s) "
                              f"{np.flatnonzero(variance + eps <= 0).tolist()}; the statistics are corrupt "
                              "(folding would give NaN/Inf weights). Nothing was written")
        weight, bias = fold_batchnorm(*self.weights[value], scale, shift, mean, variance, eps,
                                      transposed=layer.op == "conv_transpose2d")
        finite(weight, f"conv {value!r} with {where} folded in")
        finite(bias, f"the bias of conv {value!r} with {where} folded in")
        self.weights[value] = (weight, bias)
        self.tails[value] = node.output[0]
        self.folded_norms.append(self._base_name(node, 1))
        self._bind(node.output[0], value)

    def _instance_norm(self, node):
        a = _attributes(node)
        layer = fmt.Layer(self._new_name(node, 1), "instance_norm", (self._tensor(node, node.input[0]),),
                          eps=_float32(a.get("epsilon", 1e-5)), origin="InstanceNorm2d")
        self._add_layer(node, layer, (self._weight(node, 1, "scale"), self._weight(node, 2, "bias")))

    def _pad(self, node):
        a = _attributes(node)
        mode = a.get("mode", "constant")
        if "pads" in a:                                      # opset < 11: attributes
            pads, value, axes = a["pads"], a.get("value", 0.0), None
        else:
            pads = self._constant(node, 1, "pads")
            value = self._constant(node, 2, "constant_value", required=False)
            axes = self._constant(node, 3, "axes", required=False)
        value = 0.0 if value is None or np.size(value) == 0 else float(np.asarray(value).reshape(-1)[0])
        if mode not in ("constant", "reflect") or (mode == "constant" and value != 0):
            raise self._unsupported(node, f"mode={mode!r} value={value!r} (reflect, or constant zero)")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        axes = [0, 1, 2, 3] if axes is None else [int(x) % 4 for x in np.asarray(axes).reshape(-1)]
        if len(pads) != 2 * len(axes):
            raise self._unsupported(node, f"{len(pads)} pads for axes {axes}")
        begin = dict(zip(axes, pads[:len(axes)], strict=False))
        end = dict(zip(axes, pads[len(axes):], strict=False))
        if any(begin.get(x, 0) or end.get(x, 0) for x in (0, 1)):
            raise self._unsupported(node, f"pads {pads} pad the batch or channel axis")
        sides = {begin.get(2, 0), begin.get(3, 0), end.get(2, 0), end.get(3, 0)}
        if len(sides) != 1 or min(sides) < 0:
            raise self._unsupported(node, f"pads {pads} (postfx pads all four sides equally, and never crops)")
        amount, source = sides.pop(), node.input[0]
        inner = self._value(node, source)
        mode = "reflect" if mode == "reflect" else "zeros"
        if amount == 0:
            self._bind(node.output[0], inner)
            return
        if isinstance(inner, _Pad):      # zero pad of a zero pad: add them up (reflecting twice is no one reflection)
            if inner.mode != mode or mode == "reflect":
                raise self._unsupported(node, f"it is a {mode} pad of a {inner.mode} pad")
            source, amount = inner.source, inner.amount + amount
        self._bind(node.output[0], _Pad(source, amount, mode))

    def _activation(self, node):
        a = _attributes(node)
        kind = _ACTIVATIONS[node.op_type]
        slope = _float32(a.get("alpha", 0.01)) if kind == "leaky_relu" else 0.0
        source = node.input[0]
        value = self._value(node, source)
        target = None
        if self.readers.get(source, 0) == 1 and not isinstance(value, _Pad):
            name = self._tensor(node, source)
            layer = self.layers.get(name)
            if layer is not None and layer.activation == "none" and self.readers.get(self.tails[name], 0) == 1:
                target = name
        if target is not None:
            self.layers[target] = replace(self.layers[target], activation=kind, negative_slope=slope)
            self.tails[target] = node.output[0]
            self._bind(node.output[0], target)
        else:
            layer = fmt.Layer(self._new_name(node), "activation", (self._tensor(node, source),), kind, slope)
            self._add_layer(node, layer)

    def _add(self, node):
        if len(node.input) != 2:
            raise self._unsupported(node, f"{len(node.input)} inputs")
        layer = fmt.Layer(self._new_name(node), "add", tuple(self._tensor(node, name) for name in node.input))
        self._add_layer(node, layer)

    def _concat(self, node):
        axis = _attributes(node).get("axis")
        if axis not in (1, -3):
            raise self._unsupported(node, f"axis={axis!r}; postfx concatenates channels only (axis 1)")
        sources = tuple(name for source in node.input for name in self._sources(node, source))
        self._bind(node.output[0], sources[0] if len(sources) == 1 else _Cat(node.output[0], node, sources))

    def _upsample(self, node):
        a = _attributes(node)
        mode, problems = a.get("mode", "nearest"), []
        if node.op_type == "Upsample":
            scales = a.get("scales") if "scales" in a else self._constant(node, 1, "scales")
            coordinates, nearest_mode = "asymmetric", "floor"
        else:
            if len(node.input) > 3 and node.input[3]:
                sizes = self._constant(node, 3, "sizes")
                if np.size(sizes):
                    problems.append(f"a fixed output size {np.asarray(sizes).tolist()}")
            scales = self._constant(node, 2 if self.opset >= 11 else 1, "scales", required=not problems)
            # Resize-10 samples as Upsample does; 11 and later say how, with these defaults
            coordinates = a.get("coordinate_transformation_mode", "half_pixel" if self.opset >= 11 else "asymmetric")
            nearest_mode = a.get("nearest_mode", "round_prefer_floor" if self.opset >= 11 else "floor")
            if a.get("antialias", 0):
                problems.append("antialias=1")
        scales = [] if scales is None else [float(s) for s in np.asarray(scales).reshape(-1)]
        axes = [int(x) % 4 for x in a.get("axes", range(len(scales)))]
        by_axis = {**{0: 1.0, 1: 1.0}, **dict(zip(axes, scales, strict=False))}
        if not problems and [by_axis.get(x) for x in range(4)] != [1.0, 1.0, 2.0, 2.0]:
            problems.append(f"scales {scales} (only 2x along height and width is supported)")
        if mode == "nearest":
            if not _nearest_is_repeat(coordinates, nearest_mode):
                problems.append(f"coordinate_transformation_mode={coordinates!r} with nearest_mode={nearest_mode!r} "
                                "(not a pixel repeat)")
        elif mode in ("linear", "bilinear"):
            mode = "bilinear"
            if coordinates not in ("half_pixel", "pytorch_half_pixel"):
                problems.append(f"linear with coordinate_transformation_mode={coordinates!r} (postfx's bilinear is "
                                "torch's align_corners=False: half_pixel)")
        else:
            problems.append(f"mode={mode!r}")
        if problems:
            raise self._unsupported(node, ", ".join(problems))
        layer = fmt.Layer(self._new_name(node), "upsample", (self._tensor(node, node.input[0]),), scale=2, mode=mode)
        self._add_layer(node, layer)

    def _alias(self, node):
        """Identity, and Dropout at inference: the output is the input."""
        if node.op_type == "Dropout":
            training = self._constant(node, 2, "training_mode", required=False)
            if (training is not None and bool(np.asarray(training).reshape(-1)[0])) or \
                    (self.opset < 7 and not _attributes(node).get("is_test", 0)):
                raise self._unsupported(node, "it is in training mode (random at every run); export the network "
                                        "with its Dropout modules in eval mode")
            if len(node.output) > 1 and self.readers.get(node.output[1], 0):
                raise self._unsupported(node, "another node reads its mask output")
        self._bind(node.output[0], self._value(node, node.input[0]))

    def _output(self) -> str:
        value = self.values.get(self.output_name)
        if value is None:
            raise ExportError(f"the graph output {self.output_name!r} is a constant or is not computed from the "
                              "input; there is no network to import. Nothing was written")
        if isinstance(value, _Pad):
            raise UnsupportedLayer(f"the graph output {self.output_name!r} is a Pad; postfx merges padding only into "
                                   f"a Conv reading it. postfx imports: {SUPPORTED}. Nothing was written")
        if isinstance(value, _Cat):
            value = self._tensor(value.node, self.output_name)
        if value == fmt.INPUT_TENSOR:
            raise ExportError("the graph returns its input unchanged; there is no layer to import. Nothing was written")
        return value

    # -- inputs

    def _weight(self, node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        """A float weight input as float32, finite."""
        value = self._constant(node, index, what, required)
        if value is None:
            return None
        if value.dtype.kind != "f" and value.dtype.name != "bfloat16":
            raise self._unsupported(node, f"its {what} {node.input[index]!r} is {value.dtype}, not floating point")
        return finite(np.asarray(value, np.float32), f"the {what} {node.input[index]!r} of {_display(node)}")

    def _constant(self, node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[index] if len(node.input) > index else ""
        if not name:
            if required:
                raise self._unsupported(node, f"it has no {what} input")
            return None
        if name not in self.constants:
            raise self._unsupported(node, f"its {what} input ({name!r}) is computed at run time; postfx "
                                    "needs it constant (an initializer, a Constant node, or computed from those)")
        return self.constants[name]

    def _value(self, node, name: str):
        """What an ONNX tensor read as data is bound to."""
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            raise self._unsupported(node, f"it reads the constant {name!r} as data; postfx layers read tensors "
                                    "computed from the network input (tensor + tensor, no constant operands)")
        raise ExportError(f"{_display(node)} reads {name!r} before anything defines it (the graph is not in "
                          "topological order). Nothing was written")

    def _sources(self, node, name: str) -> tuple[str, ...]:
        """The tensors a conv (or a Concat) reads for ONNX tensor `name`: a pending concat's sources."""
        value = self._value(node, name)
        if isinstance(value, _Pad):
            raise self._unsupported(node, f"it reads the padding {name!r}; postfx merges padding only into a Conv "
                                    "without padding of its own that reads it directly")
        return value.sources if isinstance(value, _Cat) else (value,)

    def _tensor(self, node, name: str) -> str:
        """The tensor a non-conv reads for ONNX tensor `name`; a pending concat is materialized once."""
        value = self._value(node, name)
        if isinstance(value, _Pad):
            self._sources(node, name)            # raises, naming the padding
        if not isinstance(value, _Cat):
            return value
        if value.name not in self.concats:
            layer = fmt.Layer(self._new_name(value.node), "concat", value.sources)
            self.layers[layer.name] = layer
            self.tails[layer.name] = value.name
            self.concats[value.name] = layer.name
        return self.concats[value.name]

    # -- bookkeeping

    def _base_name(self, node, weight_index: int | None = None) -> str:
        """The weight initializer's name less '.weight' (torch's module path), else the node's scope
        ('/model/enc/Conv' -> 'model.enc'), else the op; sanitized to the format's characters."""
        base = ""
        weight = node.input[weight_index] if weight_index is not None and len(node.input) > weight_index else ""
        if weight in self.initializers and not _MADE_UP_NAME.search(weight):
            base = re.sub(r"[._](weight|scale)$", "", weight)
        if not base and node.name:
            parts = [part for part in node.name.split("/") if part]
            if len(parts) > 1 and parts[-1].startswith(node.op_type):     # '/enc/Conv_1': the scope names it
                parts.pop()
            base = ".".join(parts)
        base = re.sub(r"[^0-9A-Za-z_.]", "_", base or node.op_type.lower())
        return base[-120:]       # the end of a long scope path tells layers apart

    def _new_name(self, node, weight_index: int | None = None) -> str:
        base = self._base_name(node, weight_index)
        name, n = base, 0
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def _add_layer(self, node, layer: fmt.Layer, weights=None):
        self.layers[layer.name] = layer
        if weights is not None:
            self.weights[layer.name] = weights
        self.tails[layer.name] = node.output[0]
        self._bind(node.output[0], layer.name)

    def _bind(self, onnx_name: str, value):
        self.values[onnx_name] = value

    def _unsupported(self, node, why: str = "") -> UnsupportedLayer:
        return UnsupportedLayer(f"{_display(node)} is not supported{': ' + why if why else ''}. "
                                f"postfx imports: {SUPPORTED}. Nothing was written")

    # -- results

    def input_channels(self) -> int | None:
        if self.declared_channels:
            return self.declared_channels
        for layer in self.layers.values():       # else from the first conv that reads the input alone
            if layer.op in fmt.CONV_OPS and set(layer.inputs) == {fmt.INPUT_TENSOR}:
                weight = self.weights[layer.name][0]
                return (weight.shape[1] if layer.op == "conv2d" else weight.shape[0]) // len(layer.inputs)
        return None


def _batchnorm_trains(node: onnx.NodeProto, attributes: dict, opset: int) -> bool:
    """Whether a BatchNormalization normalizes by the batch's statistics: training_mode=1 from
    opset 14; before that, in opsets 7-13, when it has the training outputs (running and saved
    statistics); in opset 6 unless is_test=1."""
    if opset >= 14:
        return bool(attributes.get("training_mode", 0))
    if opset >= 7:
        return sum(1 for name in node.output if name) > 1
    return not attributes.get("is_test", 0)


def _nearest_is_repeat(coordinates: str, nearest_mode: str) -> bool:
    """Whether ONNX nearest resizing by 2 with these modes repeats each pixel (out[i] = in[i // 2]):
    the spec's coordinate formula and rounding, simulated on an 8-pixel row."""
    n = 8
    x = np.arange(2 * n, dtype=np.float64)
    original = {"half_pixel": (x + 0.5) / 2 - 0.5, "pytorch_half_pixel": (x + 0.5) / 2 - 0.5,
                "half_pixel_symmetric": (x + 0.5) / 2 - 0.5,    # at an exact integer scale
                "asymmetric": x / 2, "tf_half_pixel_for_nn": (x + 0.5) / 2}.get(coordinates)
    rounding = {"round_prefer_floor": lambda v: np.ceil(v - 0.5), "round_prefer_ceil": lambda v: np.floor(v + 0.5),
                "floor": np.floor, "ceil": np.ceil}.get(nearest_mode)
    if original is None or rounding is None:
        return False
    return bool((np.clip(rounding(original), 0, n - 1) == x // 2).all())


# --- the entry point -------------------------------------------------------------

def import_onnx(source, path: str | os.PathLike | None = None, *, batchnorm: str = "eval", name: str | None = None,
                raw: bool | None = None, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0),
                probe_size: tuple[int, int] | None = None) -> Model:
    """Import an ONNX graph as a verified postfx Model, and write it to `path` if given.

    source: a .onnx path (external data files are found relative to it) or an
    onnx.ModelProto. batchnorm: what BatchNormalization means at inference,
    recorded in the file: "eval" (running statistics, folded into the conv before
    it) or "frame" (each frame's own statistics, the pix2pix paper's test time;
    torch.onnx.export folds BatchNorm into convs unless given
    training=TrainingMode.PRESERVE, so export for "frame" that way). raw: None
    picks a style (RGB / RGBD in, RGB out at the frame size) when the network has
    that shape, a raw network (channels c0, c1, ...) otherwise; False insists on a
    style. probe_size: (H, W) of the verification frame. The default (at least 40 px
    a side, not a multiple of pad_multiple) runs a U-Net 8 / ngf 64 (pad_multiple
    256) at 768x1024: about 8 s in onnx.reference and 8 s in the numpy reference on
    two busy cores; (200, 150) runs it at 256x256, about 3 s for both. ResNet-9
    (pad_multiple 4) is checked at 44x64 by default, about 1 s.
    Raises UnsupportedLayer, NormSemanticsMismatch, ExportVerificationError or
    ExportError; then nothing is written.
    """
    if batchnorm not in BATCHNORM_CHOICES:
        raise ExportError(f"batchnorm must be one of {list(BATCHNORM_CHOICES)}, got {batchnorm!r}. "
                          "Nothing was written")
    model_proto, file = _load(source)
    opset = _check(model_proto, file or "the ONNX model")
    lowering = Lowering(model_proto, opset, batchnorm)
    channels = lowering.input_channels()
    if channels is None:
        raise ExportError("cannot tell the input channel count: the graph input does not declare it and no conv "
                          "reads the input alone. Nothing was written")
    graph = checked_graph(list(lowering.layers.values()), channels, lowering.output, lowering.weights,
                          hint="the graph's weights disagree with the channels its tensors carry")
    producer = f"{model_proto.producer_name} {model_proto.producer_version}".strip()
    facts = {"exporter": f"postfx {__version__} onnx_import", "source": "onnx", "opset": opset,
             "producer": producer or None, "onnx": onnx.__version__,
             "norm": {"semantics": batchnorm, "folded_batchnorm": lowering.folded_norms}}
    if file is not None:
        facts["file"] = os.path.basename(file)
    if batchnorm == "frame":
        facts["norm"]["frame_batchnorm"] = lowering.kept_batchnorms
        if not lowering.kept_batchnorms:
            # ONNX exporters fold eval-mode BatchNorm into the conv themselves; the
            # running statistics are then baked in and "frame" cannot be honoured.
            warnings.warn("batchnorm='frame' found no BatchNormalization node to keep: if the network has "
                          "BatchNorm, the ONNX exporter folded it (export with training=TrainingMode.PRESERVE "
                          "and the BatchNorms in train mode), so this file computes eval-mode statistics",
                          stacklevel=2)
    default_name = Path(path).stem if path is not None else Path(file).stem if file else "model"
    build = functools.partial(build_model, graph.layers, lowering.weights, input_channels=graph.input_channels,
                              output=graph.output, name=name or default_name, raw=is_raw(graph, raw),
                              input_range=input_range, output_range=output_range)
    check = onnx_verify.verify(lowering, model_proto, build(provenance=facts), probe_size, input_range)
    # Built again with the check recorded: the file then holds exactly the bytes the loader accepted.
    model = build(provenance={**facts, "verification": check})
    if path is not None:
        save_model(model, path)
        model.path = os.fspath(path)
    return model
