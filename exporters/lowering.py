"""The lowering both front ends share: postfx layers built from a source graph.

torch_lowering.py (torch.fx) and onnx_lowering.py (ONNX) walk their own graphs
and translate each node into a call of a GraphBuilder, which they subclass. The
builder owns the postfx side: what each front-end value (an fx node, an ONNX
tensor name) is bound to, the layers in execution order, their weights in
torch layout, and the bookkeeping verification reads (`tails`, the norms folded
or kept). What it decides once for both:

- a channel concatenation stays pending (Concat): a conv reading it reads the
  sources, anything else has a ``concat`` layer written out, once;
- padding stays pending (Padding): the conv reading it takes it as its own when
  it has none; a zero pad of a zero pad adds up, a reflect pad of a reflect pad
  is refused (reflecting twice is no one reflection);
- an activation goes into its producer's epilogue when the front end says
  nothing else reads the producer's output, else into an ``activation`` layer;
- an eval-mode BatchNorm folds into the conv right before it (packing.py does
  the arithmetic), refused when that conv is missing, already activated or read
  elsewhere; a per-frame one becomes an instance_norm of origin BatchNorm2d.

A front end supplies, by overriding: the key its values are bound to, a node's
base layer name, a value's name in messages, and the error refusing a node;
`words` puts its own vocabulary into the refusals worded here. A new op is a
method here plus, in each front end, the translation of its node into that call.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import numpy as np

from postfx import model_format as fmt
from postfx.errors import ExportError, UnsupportedLayer

from . import packing
from .common import finite, torch_in_channels


@dataclass(frozen=True)
class Concat:
    """A channel concatenation not written out: a conv reading it reads the sources."""
    node: object                # the front-end node concatenating: names the concat layer, once written
    sources: tuple[str, ...]    # postfx tensors


@dataclass(frozen=True)
class Padding:
    """Padding not applied on its own: the conv reading it pads its input this way."""
    source: str | Concat        # what is padded, as bound when the pad ran (torch's pad is a copy)
    amount: int
    mode: str                   # fmt.PADDING_MODES


Value = str | Concat | Padding     # what a front-end value is bound to; str: a postfx tensor


def tensors_of(value: Value) -> tuple[str, ...]:
    """The postfx tensors a bound value reads: itself, or a pending concat's / padding's sources."""
    if isinstance(value, Padding):
        return tensors_of(value.source)
    return value.sources if isinstance(value, Concat) else (value,)


@dataclass(frozen=True)
class Words:
    """A front end's names for what the refusals worded here mention (its users' vocabulary)."""
    conv: str           # a conv that takes padding over: "conv" / "Conv"
    conv_ops: str       # what a BatchNorm folds into: "conv / transposed conv" / "Conv / ConvTranspose"
    batchnorm: str      # "BatchNorm2d" / "BatchNormalization"
    variance: str       # the statistic that must stay positive: "running_var + eps" / "variance + epsilon"


class GraphBuilder(abc.ABC):
    """The postfx layers of a graph, built by one call per source node in execution order.

    `node` arguments are the front end's nodes, used for keys, names and errors;
    `source` arguments are front-end keys of the values a node reads.
    """

    def __init__(self, words: Words):
        self.words = words
        self.values: dict[Hashable, Value] = {}
        self.layers: dict[str, fmt.Layer] = {}                      # in execution order
        self.weights: dict[str, tuple] = {}                         # torch layout, BatchNorm folded
        self.tails: dict[str, Hashable] = {}        # layer -> front-end key holding its output (verification)
        self.concats: dict[Hashable, str] = {}      # Concat key -> its written-out concat layer
        self.folded_norms: list[str] = []
        self.kept_batchnorms: list[str] = []        # batchnorm="frame": BatchNorm kept as instance_norm
        self.names: set[str] = {fmt.INPUT_TENSOR}
        self.output: str | None = None

    # -- what a front end supplies

    @abc.abstractmethod
    def key_of(self, node) -> Hashable:
        """The key the value `node` makes is bound to."""

    @abc.abstractmethod
    def base_name(self, node) -> str:
        """The name of `node`'s layer before it is made unique (format characters only)."""

    @abc.abstractmethod
    def label(self, key: Hashable) -> str:
        """A front-end value as messages name it."""

    @abc.abstractmethod
    def unsupported(self, node, why: str = "") -> UnsupportedLayer:
        """The error refusing `node` for `why`, naming the node as the front end does."""

    def value(self, node, key: Hashable) -> Value:
        """What `key`, read as data by `node`, is bound to (a front end refuses here what it
        knows is no tensor)."""
        return self.values[key]

    # -- values and layers

    def bind(self, node, value: Value) -> None:
        self.values[self.key_of(node)] = value

    def bind_input(self, key: Hashable) -> None:
        self.values[key] = fmt.INPUT_TENSOR

    def new_name(self, node) -> str:
        base = self.base_name(node)
        name, n = base, 0
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def add_layer(self, node, layer: fmt.Layer, weights: tuple | None = None) -> str:
        self.layers[layer.name] = layer
        self.tails[layer.name] = self.key_of(node)
        if weights is not None:
            self.weights[layer.name] = weights
        return layer.name

    def reads_padding(self, node, key: Hashable) -> UnsupportedLayer:
        return self.unsupported(node, f"it reads the padding {self.label(key)!r}; postfx merges padding only into a "
                                f"{self.words.conv} without padding of its own that reads it directly")

    def sources(self, node, key: Hashable) -> tuple[str, ...]:
        """The tensors a conv or a concatenation reads for `key`: a pending concat's sources, read directly."""
        value = self.value(node, key)
        if isinstance(value, Padding):
            raise self.reads_padding(node, key)
        return tensors_of(value)

    def tensor(self, node, key: Hashable) -> str:
        """The tensor any other layer reads for `key`; a pending concat is written out once."""
        value = self.value(node, key)
        if isinstance(value, Padding):
            raise self.reads_padding(node, key)
        return self.materialize(value)

    def materialize(self, value: str | Concat) -> str:
        if not isinstance(value, Concat):
            return value
        key = self.key_of(value.node)
        if key not in self.concats:
            layer = fmt.Layer(self.new_name(value.node), "concat", value.sources)
            self.concats[key] = self.add_layer(value.node, layer)
        return self.concats[key]

    # -- ops

    def conv(self, node, source: Hashable, weights: tuple, **fields) -> None:
        """A conv2d / conv_transpose2d layer of fmt.Layer `fields` (op, out_channels, kernel, ...)
        reading `source`; a pending padding there becomes the conv's own."""
        value = self.value(node, source)
        if isinstance(value, Padding):
            if fields["op"] != "conv2d" or fields["padding"]:
                why = "pads itself" if fields["op"] == "conv2d" else "is transposed"
                raise self.unsupported(node, f"it reads the padding {self.label(source)!r} and {why}; postfx merges "
                                       f"padding only into a {self.words.conv} without padding of its own")
            fields.update(padding=value.amount, padding_mode=value.mode)
            value = value.source
        layer = fmt.Layer(self.new_name(node), inputs=tensors_of(value), **fields)
        self.bind(node, self.add_layer(node, layer, weights))

    def pad(self, node, source: Hashable, amount: int, mode: str) -> None:
        """Padding left pending for the conv that reads it; none at all is the value itself."""
        inner = self.value(node, source)
        if amount == 0:
            self.bind(node, inner)
            return
        if isinstance(inner, Padding):
            if inner.mode != mode or mode == "reflect":
                raise self.unsupported(node, f"it is a {mode} pad of a {inner.mode} pad")
            inner, amount = inner.source, inner.amount + amount
        self.bind(node, Padding(inner, amount, mode))

    def foldable_conv(self, node, source: Hashable, sole_reader: Callable[[str], bool]) -> str:
        """The conv layer a BatchNorm reading `source` folds into; `sole_reader(conv)`: whether the
        norm is all that reads the conv's output."""
        value = self.value(node, source)
        layer = self.layers.get(value) if isinstance(value, str) else None
        if layer is None or layer.op not in fmt.CONV_OPS:
            raise self._fold_refused(node, f"its input {self.label(source)!r} is not the output of a "
                                     f"{self.words.conv_ops}")
        if layer.activation != "none":
            raise self._fold_refused(node, f"an activation sits between conv {value!r} and the norm")
        if not sole_reader(value):
            raise self._fold_refused(node, f"the output of conv {value!r} is also read by another node")
        return value

    def fold_batchnorm(self, node, conv: str, gamma, beta, mean, variance, eps: float, *, where: str,
                       norm: str) -> None:
        """The eval-mode BatchNorm `norm` (`where` in messages) folded into `conv` (from foldable_conv)."""
        layer = self.layers[conv]
        shapes = [np.shape(term) for term in (gamma, beta, mean, variance)]
        if set(shapes) != {(layer.out_channels,)}:
            raise self._fold_refused(node, f"its terms have shapes {shapes} for conv {conv!r} of "
                                     f"{layer.out_channels} channels")
        if not (variance + eps > 0).all():
            raise ExportError(f"{where}: {self.words.variance} <= 0 in channel(s) "
                              f"{np.flatnonzero(variance + eps <= 0).tolist()}; the statistics are corrupt "
                              "(folding would give NaN/Inf weights). Nothing was written")
        weight, bias = packing.fold_batchnorm(*self.weights[conv], gamma, beta, mean, variance, eps,
                                              transposed=layer.op == "conv_transpose2d")
        finite(weight, f"conv {conv!r} with {where} folded in")
        finite(bias, f"the bias of conv {conv!r} with {where} folded in")
        self.weights[conv] = (weight, bias)
        self.tails[conv] = self.key_of(node)
        self.folded_norms.append(norm)
        self.bind(node, conv)

    def _fold_refused(self, node, why: str) -> UnsupportedLayer:
        return self.unsupported(node, f"it cannot be folded: {why}. postfx folds an eval-mode {self.words.batchnorm} "
                                "only directly after a conv whose output nothing else reads")

    def instance_norm(self, node, source: Hashable, eps: float, gamma, beta, origin: str = "InstanceNorm2d") -> None:
        """Each frame normalized by its own statistics; gamma / beta None without affine terms."""
        layer = fmt.Layer(self.new_name(node), "instance_norm", (self.tensor(node, source),), eps=eps, origin=origin)
        self.bind(node, self.add_layer(node, layer, (gamma, beta)))

    def frame_batchnorm(self, node, source: Hashable, eps: float, gamma, beta, *, norm: str) -> None:
        """The BatchNorm `norm` under batchnorm="frame": an instance_norm that records where it came from."""
        self.kept_batchnorms.append(norm)
        self.instance_norm(node, source, eps, gamma, beta, origin="BatchNorm2d")

    def activation(self, node, source: Hashable, kind: str, slope: float,
                   sole_reader: Callable[[str], bool]) -> None:
        """`kind` applied to `source`: into the epilogue of the layer making it when that layer has no
        activation yet and `sole_reader(layer)` says nothing else reads its output."""
        name = self.tensor(node, source)
        layer = self.layers.get(name)
        if layer is not None and layer.activation == "none" and sole_reader(name):
            self.layers[name] = replace(layer, activation=kind, negative_slope=slope)
            self.tails[name] = self.key_of(node)
            self.bind(node, name)
        else:
            layer = fmt.Layer(self.new_name(node), "activation", (name,), kind, slope)
            self.bind(node, self.add_layer(node, layer))

    def add(self, node, a: Hashable, b: Hashable) -> None:
        layer = fmt.Layer(self.new_name(node), "add", (self.tensor(node, a), self.tensor(node, b)))
        self.bind(node, self.add_layer(node, layer))

    def concat(self, node, sources: list) -> None:
        """Channel concatenation, left pending (a concat of concats reads all their sources)."""
        tensors = tuple(name for source in sources for name in self.sources(node, source))
        self.bind(node, tensors[0] if len(tensors) == 1 else Concat(node, tensors))

    def upsample(self, node, source: Hashable, mode: str) -> None:
        """2x, fmt.UPSAMPLE_MODES."""
        layer = fmt.Layer(self.new_name(node), "upsample", (self.tensor(node, source),), scale=2, mode=mode)
        self.bind(node, self.add_layer(node, layer))

    def avg_pool(self, node, source: Hashable, kernel: int, stride: int, padding: int,
                 count_include_pad: bool) -> None:
        """The mean of each kernel x kernel window stepped by `stride` (fmt avg_pool2d). A pending
        zero padding with none of the pool's own becomes its padding, counted in the divisor:
        zeros padded first are ordinary taps of every window."""
        value = self.value(node, source)
        if isinstance(value, Padding) and value.mode == "zeros" and padding == 0:
            padding, count_include_pad, value = value.amount, True, value.source
        elif isinstance(value, Padding):
            raise self.unsupported(node, f"it reads the {value.mode} padding {self.label(source)!r}; postfx merges "
                                   "only zero padding into a pool, one without padding of its own")
        if not kernel - stride <= 2 * padding <= kernel - 1:
            raise self.unsupported(node, f"kernel {kernel} stride {stride} padding {padding}: postfx pools to exactly "
                                   "1 / stride of the size, which needs kernel - stride <= 2 * padding <= kernel - 1")
        layer = fmt.Layer(self.new_name(node), "avg_pool2d", (self.materialize(value),), kernel=kernel,
                          stride=stride, padding=padding, count_include_pad=bool(count_include_pad))
        self.bind(node, self.add_layer(node, layer))

    def alias(self, node, source: Hashable) -> None:
        """The value `node` makes is `source`'s (Identity, Dropout at inference)."""
        self.bind(node, self.value(node, source))

    # -- results

    def prune(self) -> None:
        """Drop layers the output does not depend on."""
        needed, pending = set(), [self.output]
        while pending:
            name = pending.pop()
            if name in self.layers and name not in needed:
                needed.add(name)
                pending.extend(self.layers[name].inputs)
        self.layers = {k: v for k, v in self.layers.items() if k in needed}

    def input_channels(self) -> int | None:
        """From the first conv that reads the network input alone."""
        for layer in self.layers.values():
            if layer.op in fmt.CONV_OPS and set(layer.inputs) == {fmt.INPUT_TENSOR}:
                return torch_in_channels(layer, self.weights[layer.name][0]) // len(layer.inputs)
        return None
