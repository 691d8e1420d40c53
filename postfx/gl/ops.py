"""Which dispatches run one layer: conv layers through the kernel ladder
(conv_kernels.py) with the layer's KernelChoice, instance_norm through its
reduction kernel (norm_kernels.py), avg_pool2d through shaders/avg_pool.comp,
and the other weightless ops (add, upsample,
activation, a materialized concat) through shaders/elementwise.comp. The
network executor (network.py) owns the buffers and runs the dispatches in order.
"""
from __future__ import annotations

from .. import model_format as fmt
from .conv_kernels import KernelChoice, conv_dispatches
from .dispatch import BIND_DESTINATION, BIND_SOURCE_A, BIND_SOURCE_B, DeviceLimits, Dispatch, ceil_div, common_defines
from .norm_kernels import norm_dispatches

ELEMENTWISE_CODES = {"copy": 0, "add": 1, "nearest": 2, "bilinear": 3}


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
                        (ceil_div(out_w, 8), ceil_div(out_h, 8), slices))

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


def avg_pool_dispatches(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, fp16: bool) -> list[Dispatch]:
    out_w, out_h = sizes[layer.name]
    slices = graph.tensors[layer.name].slices
    defines = dict(common_defines(layer, fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                   COUNT_INCLUDE_PAD=int(layer.count_include_pad))
    bindings = {BIND_SOURCE_A: layer.inputs[0], BIND_DESTINATION: layer.name}
    return [Dispatch(layer.name, "avg_pool.comp", defines, bindings,
                     {"in_size": sizes[layer.inputs[0]], "out_size": (out_w, out_h), "slices": slices},
                     (ceil_div(out_w, 8), ceil_div(out_h, 8), slices))]


def layer_dispatches(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, choice: KernelChoice | None, fp16: bool,
                     limits: DeviceLimits | None = None) -> list[Dispatch]:
    """The dispatches of one layer at one run size; `choice` is the kernel of a conv layer.
    limits: the device's (default: the OpenGL 4.3 minimums)."""
    limits = limits or DeviceLimits()
    if layer.op in fmt.CONV_OPS:
        return conv_dispatches(layer, graph, sizes, choice, fp16, limits)
    if layer.op == "instance_norm":
        return norm_dispatches(layer, graph, sizes, fp16, limits)
    if layer.op == "avg_pool2d":
        return avg_pool_dispatches(layer, graph, sizes, fp16)
    return elementwise_dispatches(layer, graph, sizes, fp16)
