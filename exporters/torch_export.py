"""torch module -> postfx model file, through torch.fx.

    model = postfx.export_torch(generator, "my_style.safetensors")

A deep copy of the module, in eval mode, is traced with torch.fx.symbolic_trace
and lowered node by node onto the layer graph of model_format.py:

- Conv2d / ConvTranspose2d become conv layers named by their module path, so the
  file's tensor ``enc1.weight`` is the module's ``enc1.weight`` (style.md 7);
- BatchNorm2d, as `batchnorm=` says (model_format.py, "Normalization"): "eval"
  folds it, right after a conv, into that conv; "frame" keeps it as an
  instance_norm layer normalizing each frame by its own statistics (the pix2pix
  paper's test-time behaviour); InstanceNorm2d is always such a layer;
- ReflectionPad2d / ZeroPad2d / F.pad read only by convs merge into them as the
  conv's padding (the CycleGAN ResNet's ReflectionPad2d(3) + 7x7 conv);
- an activation goes into its producer's epilogue when nothing else reads the
  producer's output and it has no activation yet, else into an ``activation`` layer;
- torch.cat along channels feeding a conv is fused (the conv reads the sources);
  a cat read by anything else becomes a ``concat`` layer;
- Dropout / Identity vanish (eval mode).

Anything else raises UnsupportedLayer naming the node. Then every export checks
itself (reliability D5): the built model, run by the numpy reference runtime on
a seeded probe frame whose size is not a multiple of the model's pad_multiple,
must reproduce the torch module run on the same frame padded the way the
runtime pads it (edge repeat at the bottom / right, run, crop). Only then is the
file written, atomically. Nothing is ever written when an export fails.
"""
from __future__ import annotations

import copy
import functools
import operator
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from postfx import __version__, reference
from postfx import model_format as fmt
from postfx.errors import ExportError, ExportVerificationError, NormSemanticsMismatch, UnsupportedLayer
from postfx.model import Model
from postfx.model_file import save_model

from .builder import build_model
from .common import (
    BATCHNORM_CHOICES,
    PROBE_SEED,
    VERIFY_ATOL,
    VERIFY_RTOL,
    checked_graph,
    default_probe_size,
    probe_frame,
)
from .common import divergence as _divergence
from .common import finite as _finite
from .common import is_raw as _is_raw
from .common import real_channels as _real_channels
from .common import torch_in_channels as _torch_in_channels
from .packing import fold_batchnorm

SUPPORTED = ("Conv2d (square kernel, groups=1, dilation=1, zeros or reflect padding), "
             "ConvTranspose2d (square kernel, groups=1, dilation=1), BatchNorm2d (batchnorm='eval': folded "
             "into the conv right before it; 'frame': per-frame statistics), InstanceNorm2d (without running "
             "statistics), ReflectionPad2d / ZeroPad2d / F.pad (equal on all sides) right before a conv, "
             "ReLU / LeakyReLU / Tanh / Sigmoid (modules, functions or Tensor methods), "
             "torch.cat along dim 1, tensor + tensor, 2x nn.Upsample / F.interpolate (nearest, or bilinear "
             "with align_corners=False), Dropout / Identity")

_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                     nn.AlphaDropout, nn.FeatureAlphaDropout)
_ACTIVATION_FUNCTIONS = {torch.relu: "relu", F.relu: "relu", torch.relu_: "relu_",
                         F.leaky_relu: "leaky_relu", F.leaky_relu_: "leaky_relu_",
                         torch.tanh: "tanh", torch.tanh_: "tanh_",
                         torch.sigmoid: "sigmoid", torch.sigmoid_: "sigmoid_"}
_ACTIVATION_METHODS = {"relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_"}
# fx records `x += y` as operator.add (a Proxy has no __iadd__); x.add_(y) is in place
_ADD_FUNCTIONS = (operator.add, torch.add)
_ADD_METHODS = {"add": False, "add_": True}     # -> in place
_CAT_FUNCTIONS = (torch.cat, torch.concat)
_PAD_MODULES = {nn.ReflectionPad2d: "reflect", nn.ZeroPad2d: "zeros"}


def _arg(node: torch.fx.Node, index: int, name: str, default=None):
    """A call argument given by position or by keyword."""
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _square(pair):
    """The one value of an (h, w) pair with h == w, else None."""
    values = tuple(pair) if isinstance(pair, (tuple, list)) else (pair, pair)
    return values[0] if len(values) == 2 and values[0] == values[1] else None


def _class_name(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _function_name(f) -> str:
    module = {"_operator": "operator"}.get(getattr(f, "__module__", None), getattr(f, "__module__", None))
    return f"{module}.{getattr(f, '__name__', f)}" if module else repr(f)


def _numpy(tensor: torch.Tensor, what: str) -> np.ndarray:
    return _finite(tensor.detach().cpu().to(torch.float32).numpy(), what)


@dataclass(frozen=True)
class _Pad:
    """Padding not applied on its own: the conv reading it pads its input this way."""
    source: torch.fx.Node
    amount: int
    mode: str           # fmt.PADDING_MODES


@dataclass(frozen=True)
class _Cat:
    """A channel concatenation that is not written out: a conv reading it reads the sources."""
    node: torch.fx.Node
    sources: tuple[str, ...]


# --- tracing -------------------------------------------------------------------

def _is_identity(node: torch.fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _IDENTITY_MODULES)
    # F.dropout(x, p, self.training) traces with training=False once in eval mode
    return node.op == "call_function" and node.target is F.dropout and _arg(node, 2, "training", True) is False


class _Parent(nn.Module):
    """fx traces into the root module, which turns a bare nn.Conv2d into F.conv2d
    on raw parameters; as a child it stays one call (its layer named e.g. conv2d)."""

    def __init__(self, child: nn.Module):
        super().__init__()
        self.child_name = type(child).__name__.lower()
        self.add_module(self.child_name, child)

    def forward(self, x):
        return getattr(self, self.child_name)(x)


def trace(net: nn.Module) -> torch.fx.GraphModule:
    """fx trace of an eval-mode module, with the eval-mode identities (Dropout, Identity) removed."""
    try:
        gm = torch.fx.symbolic_trace(_Parent(net) if torch.fx.Tracer().is_leaf_module(net, "") else net)
    except Exception as e:
        raise ExportError(f"torch.fx cannot trace {_class_name(net)}: {type(e).__name__}: {e}. postfx exports "
                          "modules whose forward is a fixed graph of supported layers (no Python control flow "
                          "on tensor values). Nothing was written") from e
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if _is_identity(node, modules) and isinstance(_arg(node, 0, "input"), torch.fx.Node):
            node.replace_all_uses_with(_arg(node, 0, "input"))
            gm.graph.erase_node(node)
    return gm


# --- lowering fx nodes onto postfx layers ----------------------------------------

class Lowering:
    """Walks a traced graph in execution order and builds the postfx layers.

    Each fx node that yields a tensor is bound to a postfx tensor name (a layer,
    or "input") or to a pending _Cat. An in-place op (relu_, LeakyReLU(inplace=True),
    add_) rebinds every node aliasing its argument: later readers see the new
    value, as in torch (pix2pix's skip connections read the activated tensor).
    """

    def __init__(self, gm: torch.fx.GraphModule, batchnorm: str = "eval"):
        self.batchnorm = batchnorm
        self.pads: dict[torch.fx.Node, _Pad] = {}     # pad node -> what the conv reading it merges
        self.modules = dict(gm.named_modules())
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}
        self.values: dict[torch.fx.Node, str | _Cat] = {}
        self.alias_root: dict[torch.fx.Node, torch.fx.Node] = {}   # in-place result -> the tensor it mutated
        self.layers: dict[str, fmt.Layer] = {}                     # in execution order
        self.weights: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # torch layout, BatchNorm folded
        self.tails: dict[str, torch.fx.Node] = {}     # layer -> fx node whose torch value is its output
        self.concats: dict[torch.fx.Node, str] = {}   # cat node -> its materialized concat layer
        self.folded_norms: list[str] = []
        self.kept_batchnorms: list[str] = []         # batchnorm="frame": BatchNorm2d kept as instance_norm
        self.input_node: torch.fx.Node | None = None
        self.output: str | None = None
        for node in gm.graph.nodes:
            self._lower(node)
        if self.input_node is None:
            raise ExportError("the module's forward reads no tensor input; nothing to export")
        self._prune()

    # -- node kinds

    def _lower(self, node):
        padded = [arg for arg in node.all_input_nodes if arg in self.pads]
        if padded and not self._merges_pad(node):
            raise self._unsupported(node, f"it reads the padding {padded[0].name!r}; postfx merges padding only "
                                    "into a conv without padding of its own that reads it directly")
        if node.op == "placeholder":
            if node.users:
                if self.input_node is not None:
                    raise UnsupportedLayer(f"forward takes more than one tensor ({self.input_node.name!r}, "
                                           f"{node.name!r}); a postfx model has one input. Nothing was written")
                self.input_node = node
                self.values[node] = fmt.INPUT_TENSOR
        elif node.op == "get_attr":
            if node.users:
                raise self._unsupported(node, f"it reads parameter / buffer {node.target!r} directly in forward")
        elif node.op == "output":
            self._output(node)
        elif node.op == "call_module":
            self._call_module(node, self.modules[node.target])
        elif node.op == "call_function":
            self._call_function(node)
        else:
            self._call_method(node)

    def _call_module(self, node, module):
        if isinstance(module, nn.LeakyReLU):
            self._activation(node, "leaky_relu", module.negative_slope, module.inplace)
        elif isinstance(module, nn.ReLU):
            self._activation(node, "relu", 0.0, module.inplace)
        elif isinstance(module, (nn.Tanh, nn.Sigmoid)):
            self._activation(node, type(module).__name__.lower(), 0.0, False)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            self._conv(node, module)
        elif isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            if self.batchnorm == "frame":
                self._instance_norm(node, module, "BatchNorm2d")
            else:
                self._batchnorm(node, module)
        elif isinstance(module, nn.InstanceNorm2d):
            self._instance_norm(node, module, "InstanceNorm2d")
        elif type(module) in _PAD_MODULES:
            self._pad(node, module.padding, _PAD_MODULES[type(module)])
        elif isinstance(module, nn.Upsample):
            self._upsample(node, module.scale_factor, module.mode, module.align_corners, module.size)
        else:
            raise self._unsupported(node)

    def _call_function(self, node):
        f = node.target
        if f in _ACTIVATION_FUNCTIONS:
            self._named_activation(node, _ACTIVATION_FUNCTIONS[f])
        elif f in _ADD_FUNCTIONS:
            self._add(node, inplace=False)
        elif f in _CAT_FUNCTIONS:
            self._cat(node)
        elif f is F.pad:
            mode, value = _arg(node, 2, "mode", "constant"), _arg(node, 3, "value", None)
            if mode not in ("reflect", "constant") or (mode == "constant" and value not in (None, 0, 0.0)):
                raise self._unsupported(node, f"mode={mode!r} value={value!r} (reflect, or constant zero)")
            self._pad(node, _arg(node, 1, "pad"), "reflect" if mode == "reflect" else "zeros")
        elif f is F.interpolate:
            if _arg(node, 6, "antialias", False):
                raise self._unsupported(node, "antialias=True")
            self._upsample(node, _arg(node, 2, "scale_factor"), _arg(node, 3, "mode", "nearest"),
                           _arg(node, 4, "align_corners"), _arg(node, 1, "size"))
        else:
            raise self._unsupported(node)

    def _call_method(self, node):
        if node.target in _ACTIVATION_METHODS:
            self._named_activation(node, node.target)
        elif node.target in _ADD_METHODS:
            self._add(node, _ADD_METHODS[node.target])
        else:
            raise self._unsupported(node)

    def _output(self, node):
        result = node.args[0]
        if not isinstance(result, torch.fx.Node):
            raise UnsupportedLayer(f"forward returns a {type(result).__name__}; a postfx model has one output "
                                   "tensor. Nothing was written")
        self.output = self._tensor(result)
        if self.output == fmt.INPUT_TENSOR:
            raise ExportError("forward returns its input unchanged; there is no layer to export")

    # -- ops

    def _conv(self, node, module):
        transposed = isinstance(module, nn.ConvTranspose2d)
        problems = _conv_problems(module, transposed)
        if problems or len(node.args) != 1 or node.kwargs:
            raise self._unsupported(node, ", ".join(problems or ["extra call arguments (output_size?)"]))
        source, padding, padding_mode = node.args[0], _conv_padding(module), module.padding_mode
        if source in self.pads:
            pad = self.pads[source]
            source, padding, padding_mode = pad.source, pad.amount, pad.mode
        name = self._new_name(node)
        weight = _numpy(module.weight, f"parameter {node.target}.weight")
        bias = None if module.bias is None else _numpy(module.bias, f"parameter {node.target}.bias")
        layer = fmt.Layer(name, "conv_transpose2d" if transposed else "conv2d", self._sources(source),
                          out_channels=module.out_channels, kernel=_square(module.kernel_size),
                          stride=_square(module.stride), padding=padding, padding_mode=padding_mode,
                          output_padding=_square(module.output_padding) if transposed else 0)
        self._bind(node, self._add_layer(node, layer, (weight, bias)))

    def _batchnorm(self, node, module):
        src = node.args[0]
        value = self.values.get(src)
        layer = self.layers.get(value) if isinstance(value, str) else None
        if module.running_mean is None or module.running_var is None:
            raise NormSemanticsMismatch(
                f"BatchNorm {node.target} has no running statistics (track_running_stats=False): it normalizes "
                "each frame by its own statistics, which batchnorm='eval' cannot fold; export with "
                "batchnorm='frame'. Nothing was written")
        if layer is None or layer.op not in fmt.CONV_OPS:
            why = f"its input {src.name!r} is not the output of a conv / transposed conv"
        elif layer.activation != "none":
            why = f"an activation sits between conv {value!r} and the norm"
        elif self._read_elsewhere(value, node):
            why = f"the output of conv {value!r} is also read by another node"
        else:
            why = None
        if why:
            raise self._unsupported(node, f"it cannot be folded: {why}. postfx folds an eval-mode BatchNorm2d "
                                    "only directly after a conv whose output nothing else reads")
        where = f"BatchNorm {node.target}"
        n = module.num_features
        variance = _numpy(module.running_var, f"{where}.running_var")
        if not (variance + module.eps > 0).all():
            raise ExportError(f"{where}: running_var + eps <= 0 in channel(s) "
                              f"{np.flatnonzero(variance + module.eps <= 0).tolist()}; the statistics are corrupt "
                              "(folding would give NaN/Inf weights). Nothing was written")
        gamma = _numpy(module.weight, f"{where}.weight") if module.affine else np.ones(n, np.float32)
        beta = _numpy(module.bias, f"{where}.bias") if module.affine else np.zeros(n, np.float32)
        weight, bias = fold_batchnorm(*self.weights[value], gamma, beta,
                                      _numpy(module.running_mean, f"{where}.running_mean"),
                                      variance, module.eps,
                                      transposed=layer.op == "conv_transpose2d")
        _finite(weight, f"conv {value!r} with {where} folded in (running_var + eps <= 0?)")
        _finite(bias, f"the bias of conv {value!r} with {where} folded in")
        self.weights[value] = (weight, bias)
        self.tails[value] = node
        self.folded_norms.append(node.target)
        self._bind(node, value)

    def _instance_norm(self, node, module, origin):
        """InstanceNorm2d, or BatchNorm2d under batchnorm="frame": statistics of each frame."""
        where = f"{origin} {node.target}"
        if origin == "InstanceNorm2d" and module.track_running_stats:
            raise self._unsupported(node, "track_running_stats=True (eval mode then normalizes with running "
                                    "statistics); postfx runs InstanceNorm2d with each frame's own statistics")
        n = module.num_features
        gamma = _numpy(module.weight, f"{where}.weight") if module.affine else None
        beta = _numpy(module.bias, f"{where}.bias") if module.affine else None
        layer = fmt.Layer(self._new_name(node), "instance_norm", (self._tensor(node.args[0]),),
                          eps=float(module.eps), origin=origin)
        if gamma is not None and gamma.shape != (n,):
            raise self._unsupported(node, f"affine terms of shape {gamma.shape} for {n} features")
        if origin == "BatchNorm2d":
            self.kept_batchnorms.append(node.target)
        self._bind(node, self._add_layer(node, layer, (gamma, beta)))

    def _pad(self, node, padding, mode):
        amounts = set(padding) if isinstance(padding, (tuple, list)) else {padding}
        if len(amounts) != 1 or not isinstance(next(iter(amounts)), int):
            raise self._unsupported(node, f"padding {padding!r} (postfx pads all four sides equally)")
        src = _arg(node, 0, "input")
        if src in self.pads:      # zero pad of a zero pad: add them up (reflecting twice is no one reflection)
            inner = self.pads[src]
            if inner.mode != mode or mode == "reflect":
                raise self._unsupported(node, f"it is a {mode} pad of a {inner.mode} pad")
            src, amounts = inner.source, {inner.amount + next(iter(amounts))}
        self.pads[node] = _Pad(src, next(iter(amounts)), mode)

    def _merges_pad(self, node) -> bool:
        """Whether `node` can take the padding it reads as its own (a conv without padding)."""
        if node.op == "call_function" and node.target is F.pad:
            return True
        if node.op != "call_module":
            return False
        module = self.modules[node.target]
        if type(module) in _PAD_MODULES:
            return True
        return (isinstance(module, nn.Conv2d) and not isinstance(module, nn.ConvTranspose2d)
                and _conv_padding(module) == 0 and len(node.args) == 1 and not node.kwargs)

    def _named_activation(self, node, name):
        """torch.relu / F.leaky_relu / x.tanh_() ...: a trailing '_' means in place."""
        kind = name.rstrip("_")
        slope = float(_arg(node, 1, "negative_slope", 0.01)) if kind == "leaky_relu" else 0.0
        inplace = name.endswith("_") or bool(_arg(node, 2 if kind == "leaky_relu" else 1, "inplace", False))
        self._activation(node, kind, slope, inplace)

    def _activation(self, node, kind, slope, inplace):
        src = _arg(node, 0, "input")
        if not isinstance(src, torch.fx.Node):
            raise self._unsupported(node, "its input is not a tensor")
        target = self._fusion_target(src, node, inplace)
        if target is not None:
            self.layers[target] = replace(self.layers[target], activation=kind, negative_slope=slope)
            self.tails[target] = node
        else:
            layer = fmt.Layer(self._new_name(node), "activation", (self._tensor(src),), kind, slope)
            target = self._add_layer(node, layer)
        self._bind(node, target, inplace_of=src if inplace else None)

    def _add(self, node, inplace):
        a, b = _arg(node, 0, "input"), _arg(node, 1, "other")
        if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
            raise self._unsupported(node, "it adds a constant; only tensor + tensor is supported")
        if node.kwargs.get("alpha", 1) != 1:
            raise self._unsupported(node, f"alpha={node.kwargs['alpha']!r}")
        layer = fmt.Layer(self._new_name(node), "add", (self._tensor(a), self._tensor(b)))
        self._bind(node, self._add_layer(node, layer), inplace_of=a if inplace else None)

    def _cat(self, node):
        tensors, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
        if dim not in (1, -3):
            raise self._unsupported(node, f"dim={dim!r}; postfx concatenates channels only (dim 1)")
        if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.fx.Node) for t in tensors):
            raise self._unsupported(node, "its arguments are not a list of tensors")
        sources = tuple(name for t in tensors for name in self._sources(t))
        self._bind(node, sources[0] if len(sources) == 1 else _Cat(node, sources))

    def _upsample(self, node, scale, mode, align_corners, size):
        problems = []
        if size is not None:
            problems.append(f"a fixed output size {size!r}")
        elif _square(scale) != 2:
            problems.append(f"scale_factor={scale!r} (only 2 is supported)")
        if mode not in fmt.UPSAMPLE_MODES:
            problems.append(f"mode={mode!r}")
        if align_corners:
            problems.append("align_corners=True")
        if problems:
            raise self._unsupported(node, ", ".join(problems))
        layer = fmt.Layer(self._new_name(node), "upsample", (self._tensor(node.args[0]),), scale=2, mode=mode)
        self._bind(node, self._add_layer(node, layer))

    # -- bookkeeping

    def _new_name(self, node) -> str:
        """Module path for a module's layer (tensor names then match torch's), fx node name otherwise."""
        base = re.sub(r"[^0-9A-Za-z_.]", "_", node.target if node.op == "call_module" else node.name)[:120]
        name, n = base, 0
        while name in self.layers or name == fmt.INPUT_TENSOR:
            n += 1
            name = f"{base}_{n}"
        return name

    def _add_layer(self, node, layer, weights=None) -> str:
        self.layers[layer.name] = layer
        self.tails[layer.name] = node
        if weights is not None:
            self.weights[layer.name] = weights
        return layer.name

    def _root(self, node):
        return self.alias_root.get(node, node)

    def _bind(self, node, value, inplace_of=None):
        self.values[node] = value
        if inplace_of is not None:
            root = self._root(inplace_of)
            self.alias_root[node] = root
            for other in list(self.values):
                if self._root(other) is root:
                    self.values[other] = value

    def _sources(self, node) -> tuple[str, ...]:
        """The tensors a conv reads for this node: a pending cat's sources, read directly."""
        value = self.values[node]
        return value.sources if isinstance(value, _Cat) else (value,)

    def _tensor(self, node) -> str:
        """The tensor a non-conv reads for this node; a pending cat is materialized once."""
        value = self.values[node]
        if not isinstance(value, _Cat):
            return value
        if value.node not in self.concats:
            layer = fmt.Layer(self._new_name(value.node), "concat", value.sources)
            self.concats[value.node] = self._add_layer(value.node, layer)
        return self.concats[value.node]

    def _read_elsewhere(self, name, node, inplace_of=None) -> bool:
        """Whether anything but `node` reads tensor `name` as it is now: a layer built
        already, or a later fx node bound to it (the aliases of `inplace_of`, which an
        in-place `node` rebinds, see its result instead)."""
        if any(name in layer.inputs for layer in self.layers.values()):
            return True
        root = None if inplace_of is None else self._root(inplace_of)
        rebound = {n for n in self.values if self._root(n) is root}
        for bound, value in self.values.items():
            names = value.sources if isinstance(value, _Cat) else (value,)
            if bound not in rebound and name in names and any(
                    user is not node and self.order[user] > self.order[node] for user in bound.users):
                return True
        return False

    def _fusion_target(self, src, node, inplace) -> str | None:
        """The layer whose epilogue can take the activation `node` applied to `src`, or None."""
        value = self.values[src]
        if isinstance(value, _Cat):
            if len(src.users) != 1:
                return None
            value = self._tensor(src)
        layer = self.layers.get(value)
        if (layer is None or layer.activation != "none"
                or self._read_elsewhere(value, node, src if inplace else None)):
            return None
        return value

    def _prune(self):
        """Drop layers the output does not depend on (fx keeps unused calls)."""
        needed, pending = set(), [self.output]
        while pending:
            name = pending.pop()
            if name in self.layers and name not in needed:
                needed.add(name)
                pending.extend(self.layers[name].inputs)
        self.layers = {k: v for k, v in self.layers.items() if k in needed}

    def _unsupported(self, node, why: str = "") -> UnsupportedLayer:
        if node.op == "call_module":
            what = f"module {node.target!r} ({_class_name(self.modules[node.target])})"
        elif node.op == "call_method":
            what = f"method Tensor.{node.target} (fx node {node.name!r})"
        elif node.op == "call_function":
            what = f"function {_function_name(node.target)} (fx node {node.name!r})"
        else:
            what = f"fx node {node.name!r} ({node.op})"
        return UnsupportedLayer(f"{what} is not supported{': ' + why if why else ''}. "
                                f"postfx exports: {SUPPORTED}. Nothing was written")

    # -- results

    def input_channels(self) -> int | None:
        """From the first conv that reads the network input alone."""
        for layer in self.layers.values():
            if layer.op in fmt.CONV_OPS and set(layer.inputs) == {fmt.INPUT_TENSOR}:
                return _torch_in_channels(layer, self.weights[layer.name][0]) // len(layer.inputs)
        return None


def _conv_problems(module, transposed) -> list[str]:
    problems = []
    if module.groups != 1:
        problems.append(f"groups={module.groups}")
    if any(d != 1 for d in module.dilation):
        problems.append(f"dilation={module.dilation}")
    if _square(module.kernel_size) is None:
        problems.append(f"non-square kernel {module.kernel_size}")
    if _square(module.stride) is None:
        problems.append(f"unequal strides {module.stride}")
    if not transposed and _conv_padding(module) is None:
        problems.append(f"padding={module.padding!r} (needs equal padding on all sides)")
    if transposed and (_square(module.padding) is None or _square(module.output_padding) is None):
        problems.append(f"unequal padding {module.padding} / output_padding {module.output_padding}")
    if module.padding_mode not in fmt.PADDING_MODES:
        problems.append(f"padding_mode={module.padding_mode!r} (zeros or reflect)")
    return problems


def _conv_padding(module) -> int | None:
    if module.padding == "valid":
        return 0
    if module.padding == "same":       # torch pads an even kernel unevenly
        k = _square(module.kernel_size)
        return None if k is None or k % 2 == 0 else (k - 1) // 2
    return _square(module.padding)


# --- verification --------------------------------------------------------------

class _Recorder(torch.fx.Interpreter):
    """Runs the traced graph and keeps a copy of the chosen nodes' values (copied,
    because a later in-place op may overwrite the tensor)."""

    def __init__(self, gm, wanted):
        super().__init__(gm)
        self.wanted, self.seen = set(wanted), {}

    def run_node(self, n):
        result = super().run_node(n)
        if n in self.wanted and isinstance(result, torch.Tensor):
            self.seen[n] = result.detach().clone()
        return result


def _to_nchw(x_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_hwc.transpose(2, 0, 1)))[None]


def _numpy_or_empty(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.zeros(0)


def _diagnose(gm, lowering, model, padded, module_output) -> str:
    """Where the model and the module part ways, as a sentence."""
    values = reference.run_layers(model, reference.to_lanes(padded))
    recorder = _Recorder(gm, lowering.tails.values())
    with torch.no_grad():
        traced_output = recorder.run(_to_nchw(padded))
    for layer in model.graph.layers:
        tail = lowering.tails[layer.name]
        err, tol = _divergence(_real_channels(values[layer.name], model.graph.tensors[layer.name].segments),
                               recorder.seen[tail][0].numpy())
        if not err <= tol:
            return f"first diverging layer: {layer.name!r} ({layer.op}, torch node {tail.name!r}), " \
                   f"max |delta| {err:.3g} > {tol:.3g}"
    err, tol = _divergence(_numpy_or_empty(traced_output), _numpy_or_empty(module_output))
    if not err <= tol:
        return ("every layer matches the traced graph, but the module's forward computes something else: "
                "something torch.fx does not record (Python control flow, a non-traced side effect, "
                "an in-place '+=' on a tensor read elsewhere)")
    return "every layer matches the module at run size, so the runtime's crop or output read-out differs"


def verify(net, gm, lowering, model: Model, size=None, value_range=(-1.0, 1.0)) -> dict:
    """Run the model (numpy reference) and the module on one seeded probe frame;
    raise ExportVerificationError naming where they part ways."""
    h, w = size or default_probe_size(model.pad_multiple)
    x = probe_frame((h, w), model.input_channels, value_range)
    got = reference.run(model, x)                                       # (H, W, C_out)
    padded = reference.pad_to_run_size(model, x)                        # edge repeat, as the runtime pads
    try:
        with torch.no_grad():
            out = net(_to_nchw(padded))                                 # (1, C_out, H', W') at run size
    except Exception as e:
        raise ExportError(f"running {_class_name(net)} on the {w}x{h} probe failed: {type(e).__name__}: {e}. "
                          "Nothing was written") from e
    oh, ow = fmt.output_size(model.graph, h, w)
    is_image = isinstance(out, torch.Tensor) and out.ndim == 4
    want = _numpy_or_empty(out[0, :, :oh, :ow].permute(1, 2, 0) if is_image else None)
    err, tol = _divergence(got, want)
    if not err <= tol:
        raise ExportVerificationError(
            f"the exported model does not reproduce {_class_name(net)} on a {w}x{h} probe: output max |delta| "
            f"{err:.3g} > tolerance {tol:.3g} ({VERIFY_ATOL} + {VERIFY_RTOL} * max|torch|); "
            f"{_diagnose(gm, lowering, model, padded, out)}. Nothing was written")
    return {"probe": [h, w], "seed": PROBE_SEED, "max_abs_error": err,
            "tolerance": f"max|delta| <= {VERIFY_ATOL} + {VERIFY_RTOL} * max|torch|"}


# --- the entry point -------------------------------------------------------------

def _frame_statistics(net: nn.Module) -> None:
    """BatchNorms of `net` (a private copy) normalize by each frame's own statistics, as the
    runtime will, so the verification compares like with like; nothing else changes."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None


def _checked_graph(lowering: Lowering, input_channels: int | None) -> fmt.Graph:
    """The lowered layers as a format graph, with what the format alone cannot check."""
    channels = input_channels or lowering.input_channels()
    if channels is None:
        raise ExportError("cannot tell the input channel count (no conv reads the input alone); "
                          "pass input_channels=. Nothing was written")
    return checked_graph(list(lowering.layers.values()), channels, lowering.output, lowering.weights,
                         hint="check input_channels=")


def export_torch(module: nn.Module, path: str | os.PathLike | None = None, *, name: str | None = None,
                 input_channels: int | None = None, raw: bool | None = None,
                 probe_size: tuple[int, int] | None = None, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0),
                 batchnorm: str = "eval", training: dict | None = None, quality: dict | None = None,
                 provenance: dict | None = None) -> Model:
    """Export `module` to a verified postfx Model, and write it to `path` if given.

    input_channels: the input's channel count, when no conv reads the input alone.
    raw: None picks a style (RGB / RGBD in, RGB out at the frame size) when the
    network has that shape and a raw network (channels c0, c1, ...) otherwise;
    False insists on a style. probe_size: (H, W) of the verification frame.
    batchnorm: what BatchNorm2d means at inference, recorded in the file: "eval"
    (running statistics, folded into the conv before it) or "frame" (each frame's
    own statistics, as torch in train mode with a batch of one: the pix2pix paper's
    test-time behaviour). Dropout is always off.
    training / quality / provenance: dicts recorded in the file's metadata.
    Raises UnsupportedLayer, ExportVerificationError or ExportError; then nothing
    is written.
    """
    if batchnorm not in BATCHNORM_CHOICES:
        raise ExportError(f"batchnorm must be one of {list(BATCHNORM_CHOICES)}, got {batchnorm!r}. "
                          "Nothing was written")
    net = copy.deepcopy(module).to(device="cpu", dtype=torch.float32).eval()   # the caller's stays as it was
    if batchnorm == "frame":
        _frame_statistics(net)
    gm = trace(net)
    lowering = Lowering(gm, batchnorm)
    graph = _checked_graph(lowering, input_channels)
    cls = type(module)
    facts = {"exporter": f"postfx {__version__} torch_export", "source": "torch.fx",
             "module": f"{cls.__module__}.{cls.__qualname__}", "torch": torch.__version__,
             "norm": {"semantics": batchnorm, "folded_batchnorm": lowering.folded_norms}}
    if batchnorm == "frame":
        facts["norm"]["frame_batchnorm"] = lowering.kept_batchnorms
    build = functools.partial(build_model, graph.layers, lowering.weights, input_channels=graph.input_channels,
                              output=graph.output, name=name or (Path(path).stem if path is not None else cls.__name__),
                              raw=_is_raw(graph, raw), input_range=input_range, output_range=output_range,
                              training=training, quality=quality)
    provenance = {**(provenance or {}), **facts}
    check = verify(net, gm, lowering, build(provenance=provenance), probe_size, input_range)
    # Built again with the check recorded: the file then holds exactly the bytes the loader accepted.
    model = build(provenance={**provenance, "verification": check})
    if path is not None:
        save_model(model, path)
        model.path = os.fspath(path)
    return model
