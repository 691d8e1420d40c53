"""Op kernel families: for one layer, pick the shader variant, its #defines and
its dispatch size. The network executor (network.py) owns the buffers and runs
the dispatches in order.

Kernel variants for conv / transposed conv form a ladder (style.md 8): "naive"
is the plain one-output-per-invocation kernel, the reference and the
benchmark's baseline; faster variants register themselves in CONV_VARIANTS /
CONV_TRANSPOSE_VARIANTS with the work each invocation does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import model_format as fmt

ACTIVATION_CODES = {"none": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}
ELEMENTWISE_CODES = {"copy": 0, "add": 1, "nearest": 2, "bilinear": 3}

# Binding points shared by every kernel (see shaders/*.comp).
BIND_SOURCE_A, BIND_SOURCE_B, BIND_DESTINATION, BIND_WEIGHTS, BIND_BIAS = 0, 1, 2, 3, 4


@dataclass
class Dispatch:
    """One compute dispatch: program + buffer bindings + uniforms + group counts."""
    layer: str
    shader: str
    defines: dict
    bindings: dict                     # binding point -> tensor name or ("weights"|"bias", layer)
    uniforms: dict
    groups: tuple[int, int, int]
    program: object = field(default=None, repr=False)


@dataclass(frozen=True)
class ConvVariant:
    """A conv kernel: its shader, and the output block one invocation computes."""
    shader: str
    local_size: tuple[int, int]        # invocations per work group in x, y (z = 1)
    block: tuple[int, int, int]        # output pixels in x, y and output slices per invocation
    extra_defines: tuple = ()          # ((name, value), ...) fixed for this variant

    def groups(self, out_w: int, out_h: int, out_slices: int) -> tuple[int, int, int]:
        bx, by, bs = self.block
        lx, ly = self.local_size
        return (-(-out_w // (bx * lx)), -(-out_h // (by * ly)), -(-out_slices // bs))

    def supports(self, layer: fmt.Layer) -> bool:
        return True


CONV_VARIANTS: dict[str, ConvVariant] = {
    "naive": ConvVariant("conv_naive.comp", (8, 8), (1, 1, 1)),
}
CONV_TRANSPOSE_VARIANTS: dict[str, ConvVariant] = {
    "naive": ConvVariant("conv_transpose_naive.comp", (8, 8), (1, 1, 1)),
}


def common_defines(layer: fmt.Layer, fp16: bool) -> dict:
    d = {"STORAGE_FP16": int(fp16), "ACTIVATION": ACTIVATION_CODES[layer.activation]}
    if layer.activation == "leaky_relu":
        d["NEGATIVE_SLOPE"] = float(layer.negative_slope)
    return d


def choose_variant(layer: fmt.Layer, kernels: str) -> ConvVariant:
    table = CONV_VARIANTS if layer.op == "conv2d" else CONV_TRANSPOSE_VARIANTS
    if kernels not in ("naive", "optimized") and kernels not in table:
        raise ValueError(f"kernels must be 'naive', 'optimized' or one of {sorted(table)}, got {kernels!r}")
    if kernels == "optimized":
        # The last registered variant that handles this layer is the fastest.
        candidates = [v for name, v in table.items() if name != "naive" and v.supports(layer)]
        return candidates[-1] if candidates else table["naive"]
    variant = table.get(kernels, table["naive"])
    return variant if variant.supports(layer) else table["naive"]


def conv_dispatch(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, kernels: str, fp16: bool) -> Dispatch:
    """sizes: tensor name -> (W, H) at the current run size."""
    variant = choose_variant(layer, kernels)
    source_slices = [graph.tensors[name].slices for name in layer.inputs]
    if len(source_slices) > 2:
        raise ValueError(f"layer {layer.name!r}: conv kernels read at most two sources "
                         "(the exporter materializes wider concats)")
    out_slices = fmt.slices(layer.out_channels)
    defines = dict(common_defines(layer, fp16), KERNEL=layer.kernel, STRIDE=layer.stride,
                   PADDING=layer.padding, SLICES_A=source_slices[0],
                   SLICES_B=source_slices[1] if len(source_slices) > 1 else 0, OUT_SLICES=out_slices)
    if layer.op == "conv2d":
        defines["PAD_REFLECT"] = int(layer.padding_mode == "reflect")
    defines.update(dict(variant.extra_defines))
    bindings = {BIND_SOURCE_A: layer.inputs[0], BIND_DESTINATION: layer.name,
                BIND_WEIGHTS: ("weights", layer.name), BIND_BIAS: ("bias", layer.name)}
    if len(layer.inputs) > 1:
        bindings[BIND_SOURCE_B] = layer.inputs[1]
    out_w, out_h = sizes[layer.name]
    return Dispatch(layer.name, variant.shader, defines, bindings,
                    {"in_size": sizes[layer.inputs[0]], "out_size": (out_w, out_h)},
                    variant.groups(out_w, out_h, out_slices))


def elementwise_dispatches(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, fp16: bool) -> list[Dispatch]:
    out_w, out_h = sizes[layer.name]
    base = common_defines(layer, fp16)

    def one(operation, sources, slices, offset):
        bindings = {BIND_SOURCE_A: sources[0], BIND_DESTINATION: layer.name}
        if len(sources) > 1:
            bindings[BIND_SOURCE_B] = sources[1]
        return Dispatch(layer.name, "elementwise.comp", dict(base, OPERATION=ELEMENTWISE_CODES[operation]),
                        bindings, {"in_size": sizes[sources[0]], "out_size": (out_w, out_h),
                                   "slices": slices, "out_slice_offset": offset},
                        (-(-out_w // 8), -(-out_h // 8), slices))

    if layer.op == "add":
        return [one("add", layer.inputs, graph.tensors[layer.name].slices, 0)]
    if layer.op == "upsample":
        return [one(layer.mode, layer.inputs, graph.tensors[layer.name].slices, 0)]
    if layer.op == "activation":
        return [one("copy", layer.inputs, graph.tensors[layer.name].slices, 0)]
    # concat: one copy per source into its slice range of the destination
    out, offset = [], 0
    for name in layer.inputs:
        slices = graph.tensors[name].slices
        out.append(one("copy", (name,), slices, offset))
        offset += slices
    return out


def layer_dispatches(layer, graph, sizes, kernels, fp16) -> list[Dispatch]:
    if layer.op in fmt.CONV_OPS:
        return [conv_dispatch(layer, graph, sizes, kernels, fp16)]
    return elementwise_dispatches(layer, graph, sizes, fp16)
