"""The torch front end: a module traced by torch.fx, lowered node by node onto
the layer graph of model_format.py through the shared lowering (lowering.py):

- Conv2d / ConvTranspose2d become conv layers named by their module path, so the
  file's tensor ``enc1.weight`` is the module's ``enc1.weight``;
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

Anything else raises UnsupportedLayer naming the node. What is torch's own:
reading modules and call arguments, and in-place ops (see Lowering).
"""
from __future__ import annotations

import operator
import re

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from postfx import model_format as fmt
from postfx.errors import ExportError, NormSemanticsMismatch, UnsupportedLayer

from .common import finite
from .lowering import Concat, GraphBuilder, Padding, Words, tensors_of

SUPPORTED = ("Conv2d (square kernel, groups=1, dilation=1, zeros or reflect padding), "
             "ConvTranspose2d (square kernel, groups=1, dilation=1), BatchNorm2d (batchnorm='eval': folded "
             "into the conv right before it; 'frame': per-frame statistics), InstanceNorm2d (without running "
             "statistics), ReflectionPad2d / ZeroPad2d / F.pad (equal on all sides) right before a conv, "
             "ReLU / LeakyReLU / Tanh / Sigmoid (modules, functions or Tensor methods), "
             "torch.cat along dim 1, tensor + tensor, 2x nn.Upsample / F.interpolate (nearest, or bilinear "
             "with align_corners=False), AvgPool2d / F.avg_pool2d (square, ceil_mode=False, output 1 / stride "
             "of the size), Dropout / Identity")
WORDS = Words(conv="conv", conv_ops="conv / transposed conv", batchnorm="BatchNorm2d", variance="running_var + eps")

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


def class_name(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _function_name(f) -> str:
    module = {"_operator": "operator"}.get(getattr(f, "__module__", None), getattr(f, "__module__", None))
    return f"{module}.{getattr(f, '__name__', f)}" if module else repr(f)


def _numpy(tensor: torch.Tensor, what: str) -> np.ndarray:
    return finite(tensor.detach().cpu().to(torch.float32).numpy(), what)


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
        raise ExportError(f"torch.fx cannot trace {class_name(net)}: {type(e).__name__}: {e}. postfx exports "
                          "modules whose forward is a fixed graph of supported layers (no Python control flow "
                          "on tensor values). Nothing was written") from e
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if _is_identity(node, modules) and isinstance(_arg(node, 0, "input"), torch.fx.Node):
            node.replace_all_uses_with(_arg(node, 0, "input"))
            gm.graph.erase_node(node)
    return gm


# --- lowering fx nodes onto postfx layers ----------------------------------------

class Lowering(GraphBuilder):
    """Walks a traced graph in execution order and builds the postfx layers.

    Each fx node that yields a tensor is bound to a postfx tensor name (a layer,
    or "input"), a pending Concat or a pending Padding. An in-place op (relu_,
    LeakyReLU(inplace=True), add_) rebinds every node aliasing its argument: later
    readers see the new value, as in torch (pix2pix's skip connections read the
    activated tensor). Whether an output is read elsewhere is asked of the fx graph
    for the same reason: a reader of an alias reads the mutated tensor.
    """

    def __init__(self, gm: torch.fx.GraphModule, batchnorm: str = "eval"):
        super().__init__(WORDS)
        self.batchnorm = batchnorm
        self.modules = dict(gm.named_modules())
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}
        self.alias_root: dict[torch.fx.Node, torch.fx.Node] = {}   # in-place result -> the tensor it mutated
        self.input_node: torch.fx.Node | None = None
        for node in gm.graph.nodes:
            self._lower(node)
        if self.input_node is None:
            raise ExportError("the module's forward reads no tensor input; nothing to export")
        self.prune()        # fx keeps unused calls

    # -- what the shared lowering asks of a front end

    def key_of(self, node: torch.fx.Node) -> torch.fx.Node:
        return node

    def base_name(self, node: torch.fx.Node) -> str:
        """Module path for a module's layer (tensor names then match torch's), fx node name otherwise."""
        return re.sub(r"[^0-9A-Za-z_.]", "_", node.target if node.op == "call_module" else node.name)[:120]

    def label(self, key: torch.fx.Node) -> str:
        return key.name

    def unsupported(self, node, why: str = "") -> UnsupportedLayer:
        if node.op == "call_module":
            what = f"module {node.target!r} ({class_name(self.modules[node.target])})"
        elif node.op == "call_method":
            what = f"method Tensor.{node.target} (fx node {node.name!r})"
        elif node.op == "call_function":
            what = f"function {_function_name(node.target)} (fx node {node.name!r})"
        else:
            what = f"fx node {node.name!r} ({node.op})"
        return UnsupportedLayer(f"{what} is not supported{': ' + why if why else ''}. "
                                f"postfx exports: {SUPPORTED}. Nothing was written")

    # -- node kinds

    def _lower(self, node):
        padded = [arg for arg in node.all_input_nodes if isinstance(self.values.get(arg), Padding)]
        if padded and not self._merges_pad(node):
            raise self.reads_padding(node, padded[0])
        if node.op == "placeholder":
            if node.users:
                if self.input_node is not None:
                    raise UnsupportedLayer(f"forward takes more than one tensor ({self.input_node.name!r}, "
                                           f"{node.name!r}); a postfx model has one input. Nothing was written")
                self.input_node = node
                self.bind_input(node)
        elif node.op == "get_attr":
            if node.users:
                raise self.unsupported(node, f"it reads parameter / buffer {node.target!r} directly in forward")
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
        elif isinstance(module, nn.AvgPool2d):
            self._avg_pool(node, module.kernel_size, module.stride, module.padding, module.ceil_mode,
                           module.count_include_pad, module.divisor_override)
        else:
            raise self.unsupported(node)

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
                raise self.unsupported(node, f"mode={mode!r} value={value!r} (reflect, or constant zero)")
            self._pad(node, _arg(node, 1, "pad"), "reflect" if mode == "reflect" else "zeros")
        elif f is F.interpolate:
            if _arg(node, 6, "antialias", False):
                raise self.unsupported(node, "antialias=True")
            self._upsample(node, _arg(node, 2, "scale_factor"), _arg(node, 3, "mode", "nearest"),
                           _arg(node, 4, "align_corners"), _arg(node, 1, "size"))
        elif f is F.avg_pool2d:
            self._avg_pool(node, _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                           _arg(node, 4, "ceil_mode", False), _arg(node, 5, "count_include_pad", True),
                           _arg(node, 6, "divisor_override"))
        else:
            raise self.unsupported(node)

    def _call_method(self, node):
        if node.target in _ACTIVATION_METHODS:
            self._named_activation(node, node.target)
        elif node.target in _ADD_METHODS:
            self._add(node, _ADD_METHODS[node.target])
        else:
            raise self.unsupported(node)

    def _output(self, node):
        result = node.args[0]
        if not isinstance(result, torch.fx.Node):
            raise UnsupportedLayer(f"forward returns a {type(result).__name__}; a postfx model has one output "
                                   "tensor. Nothing was written")
        self.output = self.tensor(node, result)
        if self.output == fmt.INPUT_TENSOR:
            raise ExportError("forward returns its input unchanged; there is no layer to export")

    # -- ops

    def _conv(self, node, module):
        transposed = isinstance(module, nn.ConvTranspose2d)
        problems = _conv_problems(module, transposed)
        if problems or len(node.args) != 1 or node.kwargs:
            raise self.unsupported(node, ", ".join(problems or ["extra call arguments (output_size?)"]))
        weight = _numpy(module.weight, f"parameter {node.target}.weight")
        bias = None if module.bias is None else _numpy(module.bias, f"parameter {node.target}.bias")
        self.conv(node, node.args[0], (weight, bias), op="conv_transpose2d" if transposed else "conv2d",
                  out_channels=module.out_channels, kernel=_square(module.kernel_size),
                  stride=_square(module.stride), padding=_conv_padding(module), padding_mode=module.padding_mode,
                  output_padding=_square(module.output_padding) if transposed else 0)

    def _batchnorm(self, node, module):
        if module.running_mean is None or module.running_var is None:
            raise NormSemanticsMismatch(
                f"BatchNorm {node.target} has no running statistics (track_running_stats=False): it normalizes "
                "each frame by its own statistics, which batchnorm='eval' cannot fold; export with "
                "batchnorm='frame'. Nothing was written")
        conv = self.foldable_conv(node, node.args[0], lambda name: not self._read_elsewhere(name, node))
        where = f"BatchNorm {node.target}"
        n = module.num_features
        variance = _numpy(module.running_var, f"{where}.running_var")
        gamma = _numpy(module.weight, f"{where}.weight") if module.affine else np.ones(n, np.float32)
        beta = _numpy(module.bias, f"{where}.bias") if module.affine else np.zeros(n, np.float32)
        mean = _numpy(module.running_mean, f"{where}.running_mean")
        self.fold_batchnorm(node, conv, gamma, beta, mean, variance, module.eps, where=where, norm=node.target)

    def _instance_norm(self, node, module, origin):
        """InstanceNorm2d, or BatchNorm2d under batchnorm="frame": statistics of each frame."""
        where = f"{origin} {node.target}"
        if origin == "InstanceNorm2d" and module.track_running_stats:
            raise self.unsupported(node, "track_running_stats=True (eval mode then normalizes with running "
                                   "statistics); postfx runs InstanceNorm2d with each frame's own statistics")
        n = module.num_features
        gamma = _numpy(module.weight, f"{where}.weight") if module.affine else None
        beta = _numpy(module.bias, f"{where}.bias") if module.affine else None
        if gamma is not None and gamma.shape != (n,):
            raise self.unsupported(node, f"affine terms of shape {gamma.shape} for {n} features")
        if origin == "BatchNorm2d":
            self.frame_batchnorm(node, node.args[0], float(module.eps), gamma, beta, norm=node.target)
        else:
            self.instance_norm(node, node.args[0], float(module.eps), gamma, beta)

    def _pad(self, node, padding, mode):
        amounts = set(padding) if isinstance(padding, (tuple, list)) else {padding}
        if len(amounts) != 1 or not isinstance(next(iter(amounts)), int):
            raise self.unsupported(node, f"padding {padding!r} (postfx pads all four sides equally)")
        self.pad(node, _arg(node, 0, "input"), amounts.pop(), mode)

    def _merges_pad(self, node) -> bool:
        """Whether `node` may take the padding it reads as its own (a conv without padding; a pool
        decides in GraphBuilder.avg_pool)."""
        if node.op == "call_function" and node.target in (F.pad, F.avg_pool2d):
            return True
        if node.op != "call_module":
            return False
        module = self.modules[node.target]
        if type(module) in _PAD_MODULES or isinstance(module, nn.AvgPool2d):
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
            raise self.unsupported(node, "its input is not a tensor")
        # a cat's concat layer is what all its readers read, so it stays unactivated unless this is the only one
        shared_cat = isinstance(self.values[src], Concat) and len(src.users) != 1
        inplace_of = src if inplace else None
        self.activation(node, src, kind, slope,
                        lambda name: not shared_cat and not self._read_elsewhere(name, node, inplace_of))
        if inplace:
            self._mutated(node, src)

    def _add(self, node, inplace):
        a, b = _arg(node, 0, "input"), _arg(node, 1, "other")
        if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
            raise self.unsupported(node, "it adds a constant; only tensor + tensor is supported")
        if node.kwargs.get("alpha", 1) != 1:
            raise self.unsupported(node, f"alpha={node.kwargs['alpha']!r}")
        self.add(node, a, b)
        if inplace:
            self._mutated(node, a)

    def _cat(self, node):
        tensors, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
        if dim not in (1, -3):
            raise self.unsupported(node, f"dim={dim!r}; postfx concatenates channels only (dim 1)")
        if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.fx.Node) for t in tensors):
            raise self.unsupported(node, "its arguments are not a list of tensors")
        self.concat(node, tensors)

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
            raise self.unsupported(node, ", ".join(problems))
        self.upsample(node, node.args[0], mode)

    def _avg_pool(self, node, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        stride = kernel if stride is None or stride == [] else stride       # torch: stride defaults to kernel
        k, s, p = _square(kernel), _square(stride), _square(padding)
        problems = [f"{what}={value!r} (postfx needs it square)"
                    for what, value, one in (("kernel_size", kernel, k), ("stride", stride, s), ("padding", padding, p))
                    if one is None]
        if ceil_mode:
            problems.append("ceil_mode=True")
        if divisor_override is not None:
            problems.append(f"divisor_override={divisor_override!r}")
        if problems:
            raise self.unsupported(node, ", ".join(problems))
        self.avg_pool(node, node.args[0], int(k), int(s), int(p), bool(count_include_pad))

    # -- in-place ops

    def _root(self, node):
        return self.alias_root.get(node, node)

    def _mutated(self, node, arg):
        """`node` wrote its result into `arg`'s tensor: every alias of that tensor now holds the result."""
        root = self._root(arg)
        self.alias_root[node] = root
        for other in list(self.values):
            if self._root(other) is root:
                self.values[other] = self.values[node]

    def _read_elsewhere(self, name, node, inplace_of=None) -> bool:
        """Whether anything but `node` reads tensor `name` as it is now: a layer built
        already, or a later fx node bound to it (the aliases of `inplace_of`, which an
        in-place `node` rebinds, see its result instead)."""
        if any(name in layer.inputs for layer in self.layers.values()):
            return True
        root = None if inplace_of is None else self._root(inplace_of)
        rebound = {n for n in self.values if self._root(n) is root}
        for bound, value in self.values.items():
            if bound not in rebound and name in tensors_of(value) and any(
                    user is not node and self.order[user] > self.order[node] for user in bound.users):
                return True
        return False


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
