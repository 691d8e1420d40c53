"""The ONNX front end: the live nodes of an ONNX graph (onnx_graph.py), in graph
order, lowered onto the layer graph of model_format.py through the shared
lowering (lowering.py), the same op set as the torch front end:

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

Anything else raises UnsupportedLayer naming the op, the node and why. What is
ONNX's own: attributes and constant inputs, what each opset means by them, and
counting a tensor's readers.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import numpy_helper

from postfx import model_format as fmt
from postfx.errors import ExportError, NormSemanticsMismatch, UnsupportedLayer

from .common import finite
from .lowering import GraphBuilder, Padding, Value, Words
from .onnx_graph import MAIN_DOMAINS, attributes, display, graph_input, graph_output, live_nodes, reader_counts

SUPPORTED = ("Conv (2-D, square kernel, group 1, dilation 1, equal padding on all sides), ConvTranspose "
             "(the same, output_padding allowed, no output_shape), BatchNormalization (batchnorm='eval': folded "
             "into the Conv / ConvTranspose right before it; 'frame': per-frame statistics), "
             "InstanceNormalization, Pad (reflect or constant 0, equal on the four spatial sides) right before a "
             "Conv, Relu / LeakyRelu / Tanh / Sigmoid, Add of two tensors, Concat along axis 1, 2x Resize / "
             "Upsample (nearest, or linear with half_pixel / pytorch_half_pixel coordinates), AveragePool (2-D, "
             "square, equal pads, ceil_mode 0, output 1 / strides of the size), Identity, "
             "Dropout (inference), Constant and anything computed from constants alone")
WORDS = Words(conv="Conv", conv_ops="Conv / ConvTranspose", batchnorm="BatchNormalization",
              variance="variance + epsilon")

_ACTIVATIONS = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
# ops whose layer is named after their weight, input 1
_NAMED_BY_WEIGHT = ("Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization")
# Initializer names the exporters make up (TorchScript 'onnx::Conv_35', dynamo 'val_4'): no module path
_MADE_UP_NAME = re.compile(r"::|^val_\d+$")


def _float32(value) -> float:
    """A float attribute (stored as float32) as the shortest decimal that rounds to it: alpha
    0.2 arrives as 0.20000000298023224 and is recorded as 0.2, as torch wrote it."""
    return float(str(np.float32(value)))


def _equal(values, what: str, problems: list[str]) -> int | None:
    """The one value of a list whose entries are all equal, else a problem noted."""
    values = [int(v) for v in values]
    if not values or any(v != values[0] for v in values):
        problems.append(f"{what} {values} (postfx needs them equal)")
        return None
    return values[0]


class Lowering(GraphBuilder):
    """Walks the live nodes of an ONNX graph in order and builds the postfx layers.

    Each ONNX tensor a node makes is bound to a postfx tensor name (a layer, or
    "input"), a pending Concat or a pending Padding. ONNX graphs are in SSA form,
    so an in-place torch op (pix2pix's LeakyReLU on a skip tensor) arrives as an
    ordinary node whose output the later readers name; whether an output is read
    elsewhere is a count of its readers.
    """

    def __init__(self, model: onnx.ModelProto, opset: int, batchnorm: str):
        super().__init__(WORDS)
        self.batchnorm, self.opset = batchnorm, opset
        graph = model.graph
        self.initializers = {t.name for t in graph.initializer}
        self.input_name, self.declared_channels = graph_input(graph, self.initializers)
        self.output_name = graph_output(graph)
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = live_nodes(model, self.constants, self.input_name, self.output_name)   # not constant, in order
        self.readers = reader_counts(self.nodes, self.output_name)
        self.per_frame: list[onnx.NodeProto] = []                    # the BatchNormalization nodes kept
        self.bind_input(self.input_name)
        lower = {"Conv": self._conv, "ConvTranspose": self._conv, "BatchNormalization": self._batchnorm,
                 "InstanceNormalization": self._instance_norm, "Pad": self._pad, "Add": self._add,
                 "Concat": self._concat, "Resize": self._upsample, "Upsample": self._upsample,
                 "AveragePool": self._avg_pool, "Identity": self._alias, "Dropout": self._alias}
        for node in self.nodes:
            if node.domain not in MAIN_DOMAINS:
                raise self.unsupported(node, f"domain {node.domain!r} (postfx reads the default ai.onnx domain)")
            if node.op_type in _ACTIVATIONS:
                self._activation(node)
            elif node.op_type in lower:
                lower[node.op_type](node)
            else:
                raise self.unsupported(node)
        self.output = self._output()

    # -- what the shared lowering asks of a front end

    def key_of(self, node: onnx.NodeProto) -> str:
        return node.output[0]

    def base_name(self, node: onnx.NodeProto) -> str:
        """The weight initializer's name less '.weight' (torch's module path), else the node's scope
        ('/model/enc/Conv' -> 'model.enc'), else the op; sanitized to the format's characters."""
        base = ""
        weight = node.input[1] if node.op_type in _NAMED_BY_WEIGHT and len(node.input) > 1 else ""
        if weight in self.initializers and not _MADE_UP_NAME.search(weight):
            base = re.sub(r"[._](weight|scale)$", "", weight)
        if not base and node.name:
            parts = [part for part in node.name.split("/") if part]
            if len(parts) > 1 and parts[-1].startswith(node.op_type):     # '/enc/Conv_1': the scope names it
                parts.pop()
            base = ".".join(parts)
        base = re.sub(r"[^0-9A-Za-z_.]", "_", base or node.op_type.lower())
        return base[-120:]       # the end of a long scope path tells layers apart

    def label(self, key: str) -> str:
        return key

    def unsupported(self, node, why: str = "") -> UnsupportedLayer:
        return UnsupportedLayer(f"{display(node)} is not supported{': ' + why if why else ''}. "
                                f"postfx imports: {SUPPORTED}. Nothing was written")

    def value(self, node, key: str) -> Value:
        if key in self.values:
            return self.values[key]
        if key in self.constants:
            raise self.unsupported(node, f"it reads the constant {key!r} as data; postfx layers read tensors "
                                   "computed from the network input (tensor + tensor, no constant operands)")
        raise ExportError(f"{display(node)} reads {key!r} before anything defines it (the graph is not in "
                          "topological order). Nothing was written")

    def input_channels(self) -> int | None:
        """As the graph input declares, else from the first conv that reads the input alone."""
        return self.declared_channels or super().input_channels()

    # -- ops

    def _conv(self, node):
        transposed = node.op_type == "ConvTranspose"
        a = attributes(node)
        weight = self._weight(node, 1, "weight")
        bias = self._weight(node, 2, "bias", required=False)
        if weight.ndim != 4:
            raise self.unsupported(node, f"a weight of shape {weight.shape}; postfx runs 2-D convolutions")
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
            raise self.unsupported(node, ", ".join(problems))
        self.conv(node, node.input[0], (weight, bias), op="conv_transpose2d" if transposed else "conv2d",
                  out_channels=int(out_channels), kernel=int(k), stride=int(stride), padding=int(padding),
                  padding_mode="zeros", output_padding=int(output_padding))

    def _batchnorm(self, node):
        a = attributes(node)
        norm = self.base_name(node)
        where = f"BatchNormalization {norm!r}"
        if a.get("spatial", 1) != 1:
            raise self.unsupported(node, "spatial=0 (per-pixel statistics)")
        if any(self.readers.get(name, 0) for name in node.output[1:] if name):
            raise self.unsupported(node, "another node reads its running mean / variance outputs")
        scale = self._weight(node, 1, "scale")
        shift = self._weight(node, 2, "bias")
        eps = _float32(a.get("epsilon", 1e-5))
        if self.batchnorm == "frame":
            self.frame_batchnorm(node, node.input[0], eps, scale, shift, norm=norm)
            self.per_frame.append(node)
            return
        if _batchnorm_trains(node, a, self.opset):
            raise NormSemanticsMismatch(
                f"{where} ({display(node)}) is in training mode: it normalizes each frame by its own statistics, "
                "which batchnorm='eval' cannot fold; import with batchnorm='frame' (`postfx export ... --batchnorm "
                "frame`). Nothing was written")
        mean, variance = (self.constants.get(node.input[k]) if len(node.input) > k and node.input[k] else None
                          for k in (3, 4))
        if mean is None or variance is None:
            raise NormSemanticsMismatch(
                f"{where} ({display(node)}) has no running statistics (its mean / variance are computed from "
                "the tensor at run time): it normalizes each frame by its own statistics, which batchnorm='eval' "
                "cannot fold; import with batchnorm='frame'. Nothing was written")
        mean = finite(np.asarray(mean, np.float32), f"the mean {node.input[3]!r} of {where}")
        variance = finite(np.asarray(variance, np.float32), f"the variance {node.input[4]!r} of {where}")
        conv = self.foldable_conv(node, node.input[0], lambda name: self.readers.get(self.tails[name], 0) == 1)
        self.fold_batchnorm(node, conv, scale, shift, mean, variance, eps, where=where, norm=norm)

    def _instance_norm(self, node):
        eps = _float32(attributes(node).get("epsilon", 1e-5))
        self.instance_norm(node, node.input[0], eps, self._weight(node, 1, "scale"), self._weight(node, 2, "bias"))

    def _pad(self, node):
        a = attributes(node)
        mode = a.get("mode", "constant")
        if "pads" in a:                                      # opset < 11: attributes
            pads, value, axes = a["pads"], a.get("value", 0.0), None
        else:
            pads = self._constant(node, 1, "pads")
            value = self._constant(node, 2, "constant_value", required=False)
            axes = self._constant(node, 3, "axes", required=False)
        value = 0.0 if value is None or np.size(value) == 0 else float(np.asarray(value).reshape(-1)[0])
        if mode not in ("constant", "reflect") or (mode == "constant" and value != 0):
            raise self.unsupported(node, f"mode={mode!r} value={value!r} (reflect, or constant zero)")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        axes = [0, 1, 2, 3] if axes is None else [int(x) % 4 for x in np.asarray(axes).reshape(-1)]
        if len(pads) != 2 * len(axes):
            raise self.unsupported(node, f"{len(pads)} pads for axes {axes}")
        begin = dict(zip(axes, pads[:len(axes)], strict=False))
        end = dict(zip(axes, pads[len(axes):], strict=False))
        if any(begin.get(x, 0) or end.get(x, 0) for x in (0, 1)):
            raise self.unsupported(node, f"pads {pads} pad the batch or channel axis")
        sides = {begin.get(2, 0), begin.get(3, 0), end.get(2, 0), end.get(3, 0)}
        if len(sides) != 1 or min(sides) < 0:
            raise self.unsupported(node, f"pads {pads} (postfx pads all four sides equally, and never crops)")
        self.pad(node, node.input[0], sides.pop(), "reflect" if mode == "reflect" else "zeros")

    def _activation(self, node):
        kind = _ACTIVATIONS[node.op_type]
        slope = _float32(attributes(node).get("alpha", 0.01)) if kind == "leaky_relu" else 0.0
        source = node.input[0]
        self.activation(node, source, kind, slope,
                        lambda name: self.readers.get(source, 0) == 1 and self.readers.get(self.tails[name], 0) == 1)

    def _add(self, node):
        if len(node.input) != 2:
            raise self.unsupported(node, f"{len(node.input)} inputs")
        self.add(node, *node.input)

    def _concat(self, node):
        axis = attributes(node).get("axis")
        if axis not in (1, -3):
            raise self.unsupported(node, f"axis={axis!r}; postfx concatenates channels only (axis 1)")
        self.concat(node, node.input)

    def _upsample(self, node):
        a = attributes(node)
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
            raise self.unsupported(node, ", ".join(problems))
        self.upsample(node, node.input[0], mode)

    def _avg_pool(self, node):
        a = attributes(node)
        problems = []
        kernel = None
        if len(a.get("kernel_shape", [])) != 2:
            problems.append(f"kernel_shape={a.get('kernel_shape')} (postfx pools 2-D)")
        else:
            kernel = _equal(a["kernel_shape"], "kernel_shape", problems)
        stride = _equal(a.get("strides", [1, 1]), "strides", problems)
        padding = _equal(a.get("pads", [0, 0, 0, 0]), "pads", problems)
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            problems.append(f"dilations={a['dilations']}")
        if a.get("ceil_mode", 0):
            problems.append("ceil_mode=1")
        auto_pad = a.get("auto_pad", "NOTSET")
        if auto_pad == "VALID":
            padding = 0
        elif auto_pad != "NOTSET":
            problems.append(f"auto_pad={auto_pad}")
        if problems:
            raise self.unsupported(node, ", ".join(problems))
        # ONNX's count_include_pad defaults to 0, torch's to True
        self.avg_pool(node, node.input[0], kernel, stride, padding, bool(a.get("count_include_pad", 0)))

    def _alias(self, node):
        """Identity, and Dropout at inference: the output is the input."""
        if node.op_type == "Dropout":
            training = self._constant(node, 2, "training_mode", required=False)
            if (training is not None and bool(np.asarray(training).reshape(-1)[0])) or \
                    (self.opset < 7 and not attributes(node).get("is_test", 0)):
                raise self.unsupported(node, "it is in training mode (random at every run); export the network "
                                       "with its Dropout modules in eval mode")
            if len(node.output) > 1 and self.readers.get(node.output[1], 0):
                raise self.unsupported(node, "another node reads its mask output")
        self.alias(node, node.input[0])

    def _output(self) -> str:
        value = self.values.get(self.output_name)
        if value is None:
            raise ExportError(f"the graph output {self.output_name!r} is a constant or is not computed from the "
                              "input; there is no network to import. Nothing was written")
        if isinstance(value, Padding):
            raise UnsupportedLayer(f"the graph output {self.output_name!r} is a Pad; postfx merges padding only into "
                                   f"a Conv reading it. postfx imports: {SUPPORTED}. Nothing was written")
        output = self.materialize(value)
        if output == fmt.INPUT_TENSOR:
            raise ExportError("the graph returns its input unchanged; there is no layer to import. Nothing was written")
        return output

    # -- constant inputs

    def _weight(self, node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        """A float weight input as float32, finite."""
        value = self._constant(node, index, what, required)
        if value is None:
            return None
        if value.dtype.kind != "f" and value.dtype.name != "bfloat16":
            raise self.unsupported(node, f"its {what} {node.input[index]!r} is {value.dtype}, not floating point")
        return finite(np.asarray(value, np.float32), f"the {what} {node.input[index]!r} of {display(node)}")

    def _constant(self, node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[index] if len(node.input) > index else ""
        if not name:
            if required:
                raise self.unsupported(node, f"it has no {what} input")
            return None
        if name not in self.constants:
            raise self.unsupported(node, f"its {what} input ({name!r}) is computed at run time; postfx "
                                   "needs it constant (an initializer, a Constant node, or computed from those)")
        return self.constants[name]


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
