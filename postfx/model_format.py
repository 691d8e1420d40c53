"""The postfx model format, version 1: what a file's JSON metadata says and how
its tensors are laid out. The exporter (exporters/) writes it, the loader
(model_file.py) reads it; this module is the one place both agree on.

A model file is a safetensors file. Its ``__metadata__`` holds one key,
``"postfx"``, whose value is a JSON document::

    {"format": "postfx.model", "format_version": 1,
     "name": "ink", "input": {...}, "output": {...},
     "layers": [ {layer}, ... ], "pad_multiple": 16,
     "provenance": {...}, "training": {...} | null, "quality": {...} | null,
     "checksum": {"algorithm": "sha256", "value": "<64 hex digits>"}}

The checksum covers this document, the tensor table and the tensor data:
sha256 over the canonical JSON of the document without its "checksum" entry
-- ``json.dumps(doc, sort_keys=True, allow_nan=False)`` (default separators,
ASCII), UTF-8 -- then the canonical JSON, made the same way, of the tensor
table (the safetensors header without ``__metadata__``: ``{name: {"data_offsets":
[begin, end], "dtype": "F32", "shape": [...]}}``), then the data region (every
byte after the safetensors header). A flipped byte anywhere in the weights, or
in JSON that still parses, is caught, and so are two same-shape tensors whose
offsets trade places. Only bytes that change no parsed value (JSON whitespace,
``1.0`` spelled ``1e0``) go unhashed, and they load the identical model. JSON in
the file is strict: no duplicate keys, no NaN / Infinity, no number that
overflows a float.

Normalization, declared in ``provenance.norm = {"semantics": S,
"folded_batchnorm": [module names]}``. BatchNorm has two meanings at inference
and the file says which one its weights compute:

- S = "eval": BatchNorm uses its running statistics, so the exporter folds it
  into the conv before it (listed in folded_batchnorm);
- S = "frame": BatchNorm normalizes each frame by the frame's own per-channel
  statistics (torch train mode with a batch of one: the pix2pix paper's
  test-time behaviour), so it stays a layer, ``instance_norm`` with origin
  "BatchNorm2d", and nothing is folded.

A BatchNorm2d-origin instance_norm under "eval" (or with no declaration), or a
"frame" file that lists folded BatchNorms, is refused at load with
NormSemanticsMismatch; any other S with UnsupportedNormSemantics. InstanceNorm2d
means the same under both. A file with no ``provenance.norm`` folded nothing.

Tensors ("activations") flow between layers by name. The network input is
called ``"input"``. Every tensor is stored on the GPU as vec4 channel slices;
a tensor made by concatenation keeps each source padded to 4 on its own, so a
tensor's channel layout is a list of *segments* (real channel counts), each
occupying ceil(c / 4) slices. Conv-like layers have one segment.

Layer ops and their fields (all layers: "name", "op", "inputs", "activation"
and, for leaky_relu, "negative_slope"):

- ``conv2d``: inputs 1 or more tensors, read as their channel concatenation
  (the U-Net skip is fused this way: the concatenated tensor is never written);
  "out_channels", "kernel", "stride", "padding", "padding_mode" ("zeros" or
  "reflect"). Tensors ``<name>.weight`` (out_slices, K, K, in_slices, 4, 4)
  float32 and ``<name>.bias`` (out_slices, 4). Weight element
  [os, ky, kx, is, i, o] multiplies input lane i of input slice is into output
  channel 4*os + o: each [os, ky, kx, is] block is one GLSL column-major mat4.
  BatchNorm (eval-mode) is folded in by the exporter.
- ``conv_transpose2d``: same fields plus "output_padding"; same tensor layout,
  with element [os, ky, kx, is, i, o] = torch_weight[in, out, ky, kx].
  Output size (H - 1) * stride - 2 * padding + kernel + output_padding.
- ``add``: two inputs with equal segments (residual connections).
- ``upsample``: one input, "scale" 2, "mode" "nearest" or "bilinear"
  (align_corners=False).
- ``concat``: two or more inputs, materialized (only where a consumer cannot
  read the sources directly).
- ``activation``: one input, the activation alone.
- ``avg_pool2d``: one input; the mean of each "kernel" x "kernel" window
  stepped by "stride" over the input zero-padded by "padding" (at most
  kernel // 2), torch's AvgPool2d with ceil_mode=False. "count_include_pad"
  true divides by kernel^2, false by the taps inside the input (pix2pixHD's
  downsampler). Same size rule as conv2d; keeps its input's segments.
- ``instance_norm``: one input; each channel normalized by its own mean and
  (biased) variance over the whole tensor at run size (padding included, as
  torch sees the padded frame): y = (x - mean) / sqrt(var + eps) * scale + shift,
  then the activation. "eps", "origin" ("InstanceNorm2d" or "BatchNorm2d", see
  above). Tensors ``<name>.scale`` and ``<name>.shift`` (slices, 4) float32 in
  the tensor's lane layout, padding lanes 0 (a norm without affine terms
  stores ones and zeros).

Activations: "none", "relu", "leaky_relu", "tanh", "sigmoid".

Input contract: "channels" names the input channels. For the PostFX pass and
stylize() they must be RGB (3 channels) or RGBD (4): sRGB-encoded
colour in [0, 1] mapped linearly onto ``input.range``; depth is linear view
distance normalized as (z - near) / (far - near), clamped to [0, 1] and mapped
onto the same range. (Other channel names are allowed for raw networks run
with postfx.run, e.g. in op tests.) Output contract: ``output.tensor`` holds the
channels ``output.channels`` (RGB for a style) in ``output.range``; its size is
the input size times the tensor's scale (1 for a style).

Frames whose size is not a multiple of ``pad_multiple`` are padded at the
bottom / right by repeating the edge pixels, run, and cropped back.
"""
from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass, field

from .errors import ModelGraphError

FORMAT_NAME = "postfx.model"
FORMAT_VERSION = 1
METADATA_KEY = "postfx"
INPUT_TENSOR = "input"

OPS = ("conv2d", "conv_transpose2d", "add", "upsample", "concat", "activation", "instance_norm", "avg_pool2d")
MODEL_SUFFIX = ".safetensors"
CONV_OPS = ("conv2d", "conv_transpose2d")
NORM_ORIGINS = ("InstanceNorm2d", "BatchNorm2d")   # the torch module an instance_norm layer computes
ACTIVATIONS = ("none", "relu", "leaky_relu", "tanh", "sigmoid")
PADDING_MODES = ("zeros", "reflect")
UPSAMPLE_MODES = ("nearest", "bilinear")
RGB, RGBD = ("r", "g", "b"), ("r", "g", "b", "depth")
MAX_IO_CHANNELS = 64     # the raw-network API accepts any channel names; PostFX needs RGB / RGBD
DEPTH_ENCODINGS = ("linear",)
NORM_SEMANTICS = ("eval", "frame")   # provenance.norm.semantics the runtime implements (reliability B6)
MAX_EPS = 1.0

# Sanity bounds checked at load, before any GL object exists (reliability A8).
MAX_CHANNELS = 4096
MAX_KERNEL = 15
MAX_STRIDE = 8
MAX_LAYERS = 1024
MAX_PAD_MULTIPLE = 1 << 12
MAX_UPSCALE = 1 << 4        # a tensor's size over the frame's, per axis


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 80
_BRIEF.maxlist = _BRIEF.maxtuple = 12


def brief(value) -> str:
    """repr() cut to a readable length: values in error messages come from the file."""
    return _BRIEF.repr(value)


def slices(channels: int) -> int:
    """vec4 slices needed for `channels` channels."""
    return (channels + 3) // 4


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    inputs: tuple[str, ...]
    activation: str = "none"
    negative_slope: float = 0.0
    out_channels: int = 0          # conv ops
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    padding_mode: str = "zeros"
    output_padding: int = 0       # conv_transpose2d
    scale: int = 2                # upsample
    mode: str = "nearest"
    eps: float = 1e-5             # instance_norm
    origin: str = "InstanceNorm2d"
    count_include_pad: bool = True    # avg_pool2d: divide by kernel^2 (True) or by the taps inside (False)

    def to_json(self) -> dict:
        d = {"name": self.name, "op": self.op, "inputs": list(self.inputs),
             "activation": self.activation}
        if self.activation == "leaky_relu":
            d["negative_slope"] = self.negative_slope
        if self.op in CONV_OPS:
            d.update(out_channels=self.out_channels, kernel=self.kernel, stride=self.stride,
                     padding=self.padding, padding_mode=self.padding_mode)
            if self.op == "conv_transpose2d":
                d["output_padding"] = self.output_padding
        if self.op == "upsample":
            d.update(scale=self.scale, mode=self.mode)
        if self.op == "instance_norm":
            d.update(eps=self.eps, origin=self.origin)
        if self.op == "avg_pool2d":
            d.update(kernel=self.kernel, stride=self.stride, padding=self.padding,
                     count_include_pad=self.count_include_pad)
        return d


_FIELDS_BY_OP = {
    "conv2d": {"out_channels", "kernel", "stride", "padding", "padding_mode"},
    "conv_transpose2d": {"out_channels", "kernel", "stride", "padding", "padding_mode",
                         "output_padding"},
    "upsample": {"scale", "mode"},
    "add": set(), "concat": set(), "activation": set(),
    "instance_norm": {"eps", "origin"},
    "avg_pool2d": {"kernel", "stride", "padding", "count_include_pad"},
}
_COMMON_FIELDS = {"name", "op", "inputs", "activation", "negative_slope"}


def _int_field(d: dict, key: str, where: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ModelGraphError(f"{where}: field {key!r} must be an integer, got {brief(v)}")
    if not lo <= v <= hi:
        raise ModelGraphError(f"{where}: field {key!r} = {brief(v)} is outside [{lo}, {hi}]")
    return v


def _choice(d: dict, key: str, where: str, allowed, default=None):
    v = d.get(key, default)
    if v not in allowed:
        raise ModelGraphError(f"{where}: field {key!r} = {brief(v)}; expected one of {list(allowed)}")
    return v


def parse_layer(d, index: int) -> Layer:
    """Validate one layer's JSON. Strings are only ever compared with known
    values here; none of them reaches GLSL (reliability A8)."""
    where = f"layer #{index}"
    if not isinstance(d, dict):
        raise ModelGraphError(f"{where}: expected a JSON object, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.]{1,128}", name):
        raise ModelGraphError(f"{where}: layer name {brief(name)} must be 1-128 ASCII letters, digits, '_' or '.'")
    where = f"layer #{index} {name!r}"
    op = _choice(d, "op", where, OPS)
    unknown = set(d) - _COMMON_FIELDS - _FIELDS_BY_OP[op]
    if unknown:
        raise ModelGraphError(f"{where}: unknown field(s) {brief(sorted(unknown))} for op {op!r}")
    inputs = d.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
        raise ModelGraphError(f"{where}: 'inputs' must be a non-empty list of tensor names, got {brief(inputs)}")
    activation = _choice(d, "activation", where, ACTIVATIONS, "none")
    slope = 0.0
    if activation == "leaky_relu":
        slope = d.get("negative_slope")
        # abs() first: math.isfinite raises OverflowError on a huge JSON integer.
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not abs(slope) <= 1e3:
            raise ModelGraphError(f"{where}: negative_slope must be a number in [-1000, 1000], got {brief(slope)}")
        slope = float(slope)
    n_inputs = {"add": (2, 2), "upsample": (1, 1), "activation": (1, 1), "instance_norm": (1, 1),
                "avg_pool2d": (1, 1), "concat": (2, 64)}.get(op, (1, 64))
    if not n_inputs[0] <= len(inputs) <= n_inputs[1]:
        raise ModelGraphError(f"{where}: op {op!r} takes {n_inputs[0]}..{n_inputs[1]} inputs, got {len(inputs)}")
    kw = {}
    if op in CONV_OPS:
        kw["out_channels"] = _int_field(d, "out_channels", where, 1, MAX_CHANNELS)
        kw["kernel"] = _int_field(d, "kernel", where, 1, MAX_KERNEL)
        kw["stride"] = _int_field(d, "stride", where, 1, MAX_STRIDE)
        most = kw["kernel"] - 1 if op == "conv_transpose2d" else kw["kernel"]
        kw["padding"] = _int_field(d, "padding", where, 0, most)
        kw["padding_mode"] = _choice(d, "padding_mode", where, PADDING_MODES, "zeros")
        if op == "conv_transpose2d":
            kw["output_padding"] = _int_field(d, "output_padding", where, 0, kw["stride"] - 1)
            if kw["padding_mode"] != "zeros":
                raise ModelGraphError(f"{where}: conv_transpose2d supports only zero padding")
    if op == "avg_pool2d":
        kw["kernel"] = _int_field(d, "kernel", where, 1, MAX_KERNEL)
        kw["stride"] = _int_field(d, "stride", where, 1, MAX_STRIDE)
        kw["padding"] = _int_field(d, "padding", where, 0, kw["kernel"] // 2)     # torch's own bound
        include = d.get("count_include_pad")
        if not isinstance(include, bool):
            raise ModelGraphError(f"{where}: field 'count_include_pad' must be true or false, got {brief(include)}")
        kw["count_include_pad"] = include
    if op == "upsample":
        kw["scale"] = _int_field(d, "scale", where, 2, 2)
        kw["mode"] = _choice(d, "mode", where, UPSAMPLE_MODES)
    if op == "instance_norm":
        eps = d.get("eps")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= MAX_EPS:
            raise ModelGraphError(f"{where}: eps must be a number in (0, {MAX_EPS}], got {brief(eps)}")
        kw["eps"] = float(eps)
        kw["origin"] = _choice(d, "origin", where, NORM_ORIGINS)
    return Layer(name=name, op=op, inputs=tuple(inputs), activation=activation,
                 negative_slope=slope, **kw)


@dataclass
class TensorInfo:
    """What the graph says about one activation tensor."""
    segments: tuple[int, ...]          # real channel count of each concatenated source
    scale: tuple[int, int] = (1, 1)    # size = input size * num / den along each axis, as (num, den)

    @property
    def channels(self) -> int:
        return sum(self.segments)

    @property
    def slices(self) -> int:
        return sum(slices(c) for c in self.segments)


@dataclass
class Graph:
    layers: list[Layer]
    input_channels: int
    output: str
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    pad_multiple: int = 1
    min_size: int = 1        # smallest run size (reflect padding needs padding < size)


def in_segments(layer: Layer, tensors: dict[str, TensorInfo]) -> tuple[int, ...]:
    """Channel segments a layer reads, in order (its inputs concatenated)."""
    return tuple(s for name in layer.inputs for s in tensors[name].segments)


def weight_shape(layer: Layer, tensors: dict[str, TensorInfo]) -> tuple[int, ...]:
    in_slices = sum(slices(c) for c in in_segments(layer, tensors))
    k = layer.kernel
    return (slices(layer.out_channels), k, k, in_slices, 4, 4)


def layer_tensor_kinds(layer: Layer) -> tuple[str, str] | tuple[()]:
    """The suffixes of the tensors a layer stores: <name>.weight / .bias, or .scale / .shift."""
    if layer.op in CONV_OPS:
        return ("weight", "bias")
    if layer.op == "instance_norm":
        return ("scale", "shift")
    return ()


def expected_tensors(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every stored tensor's name and shape, derived from the graph."""
    out = {}
    for layer in graph.layers:
        if layer.op in CONV_OPS:
            out[f"{layer.name}.weight"] = weight_shape(layer, graph.tensors)
            out[f"{layer.name}.bias"] = (slices(layer.out_channels), 4)
        elif layer.op == "instance_norm":
            shape = (graph.tensors[layer.name].slices, 4)
            out[f"{layer.name}.scale"] = out[f"{layer.name}.shift"] = shape
    return out


def build_graph(layers: list[Layer], input_channels: int, output: str) -> Graph:
    """Check the graph is a well-formed DAG in execution order and infer each
    tensor's channel segments and the frame-size multiple it needs."""
    if not layers:
        raise ModelGraphError("the model has no layers")
    if len(layers) > MAX_LAYERS:
        raise ModelGraphError(f"the model has {len(layers)} layers; the limit is {MAX_LAYERS}")
    # Sizes are tracked as exact fractions of the input size: a tensor at
    # (num, den) has size input * num / den, so the input must be a multiple of
    # den for every layer to see integer sizes.
    tensors = {INPUT_TENSOR: TensorInfo((input_channels,), (1, 1))}
    pad_multiple = 1
    min_size = 1
    for layer in layers:
        where = f"layer {layer.name!r}"
        if layer.name in tensors:
            raise ModelGraphError(f"{where}: name used twice (tensor names must be unique)")
        for src in layer.inputs:
            if src not in tensors:
                raise ModelGraphError(f"{where}: input {brief(src)} is not the network input or an earlier layer")
        srcs = [tensors[s] for s in layer.inputs]
        scale = srcs[0].scale
        if any(s.scale != scale for s in srcs):
            raise ModelGraphError(f"{where}: inputs have different spatial sizes "
                                  f"({[s.scale for s in srcs]} as fractions of the frame)")
        num, den = scale
        if layer.op in ("conv2d", "avg_pool2d"):
            # With the input a multiple of the stride, the output is exactly
            # input / stride when kernel - stride <= 2 * padding <= kernel - 1.
            k, s, p = layer.kernel, layer.stride, layer.padding
            if not k - s <= 2 * p <= k - 1:
                raise ModelGraphError(f"{where}: {layer.op} kernel {k} stride {s} padding {p} does not map "
                                      f"sizes by an exact factor (need kernel - stride <= 2*padding <= kernel - 1)")
            if layer.padding_mode == "reflect" and p > 0:
                # reflect padding needs padding < size: frames are padded up to this.
                min_size = max(min_size, -(-(p + 1) * den // num))
            den *= s
            segs = (layer.out_channels,) if layer.op == "conv2d" else srcs[0].segments
        elif layer.op == "conv_transpose2d":
            k, s, p, op = layer.kernel, layer.stride, layer.padding, layer.output_padding
            # (H - 1) s - 2p + k + op == H s  <=>  k + op - 2p == s
            if k + op - 2 * p != s:
                raise ModelGraphError(f"{where}: transposed conv kernel {k} stride {s} padding {p} "
                                      f"output_padding {op} does not scale sizes by exactly {s}")
            num *= s
            segs = (layer.out_channels,)
        elif layer.op == "upsample":
            num *= layer.scale
            segs = srcs[0].segments
        elif layer.op == "add":
            if srcs[0].segments != srcs[1].segments:
                raise ModelGraphError(f"{where}: add of tensors with channels {srcs[0].segments} and "
                                      f"{srcs[1].segments}")
            segs = srcs[0].segments
        elif layer.op == "concat":
            segs = tuple(c for s in srcs for c in s.segments)
        else:  # activation, instance_norm
            segs = srcs[0].segments
        if layer.op in CONV_OPS and sum(slices(c) for c in in_segments(layer, tensors)) * 4 > MAX_CHANNELS:
            raise ModelGraphError(f"{where}: reads more than {MAX_CHANNELS} channels")
        # Every tensor, not only what convs read: nested concats would otherwise
        # grow the segment lists 64-fold per layer (a few kB of JSON, gigabytes here).
        lanes = sum(slices(c) for c in segs) * 4
        if lanes > MAX_CHANNELS:
            raise ModelGraphError(f"{where}: makes a tensor of {lanes} channels (each source padded to a "
                                  f"multiple of 4); the limit is {MAX_CHANNELS}")
        g = math.gcd(num, den)
        num, den = num // g, den // g
        pad_multiple = pad_multiple * den // math.gcd(pad_multiple, den)
        if pad_multiple > MAX_PAD_MULTIPLE:
            raise ModelGraphError(f"{where}: frames would need padding to a multiple of {pad_multiple}")
        if num > MAX_UPSCALE:
            raise ModelGraphError(f"{where}: makes a tensor {num}/{den} times the frame size; the limit is "
                                  f"{MAX_UPSCALE} times")
        tensors[layer.name] = TensorInfo(segs, (num, den))
    if output not in tensors or output == INPUT_TENSOR:
        raise ModelGraphError(f"output tensor {brief(output)} is not a layer of the model")
    if output in tensors and len(tensors[output].segments) > 1:
        # Readers take the output's first lanes as its channels: a concatenation's
        # padding lanes would sit between them. End the network with a conv.
        raise ModelGraphError(f"output tensor {output!r} is a concatenation {tensors[output].segments}; "
                              "the output must be a single layer's result (end the network with a conv)")
    return Graph(list(layers), input_channels, output, tensors, pad_multiple, min_size)


def run_size(graph: Graph, height: int, width: int) -> tuple[int, int]:
    """The size a frame is run at: padded up to the graph's multiple (and its
    minimum), cropped back afterwards. Raises FrameTooSmall for an empty frame."""
    from .errors import FrameTooSmall
    if height < 1 or width < 1:
        raise FrameTooSmall(f"frame {width}x{height} is empty; skip the pass while the window is minimized")
    m = graph.pad_multiple
    lo = -(-graph.min_size // m) * m

    def up(n):
        return max(lo, -(-n // m) * m)
    return up(height), up(width)


def output_size(graph: Graph, height: int, width: int) -> tuple[int, int]:
    """Size of the cropped output for a frame of height x width."""
    num, den = graph.tensors[graph.output].scale
    return -(-height * num // den), -(-width * num // den)


def macs_per_pixel(graph: Graph) -> float:
    """Multiply-adds per input pixel (real channels, no padding lanes)."""
    total = 0.0
    for layer in graph.layers:
        if layer.op not in CONV_OPS:
            continue
        num, den = graph.tensors[layer.name].scale
        cin = sum(in_segments(layer, graph.tensors))
        out_pixels = (num / den) ** 2
        if layer.op == "conv2d":
            total += out_pixels * layer.out_channels * cin * layer.kernel ** 2
        else:
            # Gather form: each output pixel sees (kernel / stride)^2 taps.
            total += out_pixels * layer.out_channels * cin * (layer.kernel / layer.stride) ** 2
    return total


def parameter_count(graph: Graph) -> int:
    """Real parameters (no padding lanes): weights + biases of the conv layers."""
    n = 0
    for layer in graph.layers:
        if layer.op in CONV_OPS:
            cin = sum(in_segments(layer, graph.tensors))
            n += layer.out_channels * cin * layer.kernel ** 2 + layer.out_channels
        elif layer.op == "instance_norm":
            n += 2 * graph.tensors[layer.name].channels
    return n
