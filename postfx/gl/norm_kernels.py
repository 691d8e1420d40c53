"""instance_norm on the GPU (shaders/instance_norm.comp): one kernel whatever
`kernels` says -- a streaming reduction and an elementwise pass, nothing to
block or tile; the numpy reference is its plain counterpart."""
from __future__ import annotations

from .. import model_format as fmt
from .dispatch import (
    BIND_BIAS,
    BIND_DESTINATION,
    BIND_NORM_STATISTICS,
    BIND_SOURCE_A,
    BIND_SOURCE_B,
    BIND_WEIGHTS,
    DeviceLimits,
    Dispatch,
    ceil_div,
    common_defines,
    flat_groups,
)

# Scratch buffers of the instance_norm layers, shared by all of them (they run one
# after another), held by the executor beside the activations. Layer names are
# [A-Za-z0-9_.], so these names never collide with a tensor's.
NORM_PARTIALS = "#norm.partials"            # (slices, G) Moments, fp32 whatever the storage
NORM_STATISTICS = "#norm.statistics"        # (slices) Statistics, fp32
NORM_MOMENTS_BYTES = 48                     # struct Moments (shaders/instance_norm.comp), std430
NORM_STATISTICS_BYTES = 48                  # struct Statistics
NORM_SHARED_BYTES = 16 + 16 + 4             # per reducing invocation: shared_mean, shared_m2, shared_count
NORM_REDUCE_LOCAL_SIZE = 256                # invocations of a partial work group (a power of two)
NORM_FINAL_LOCAL_SIZE = 64                  # each merges G / 64 <= 4 partials before the tree
NORM_APPLY_LOCAL_SIZE = 64
NORM_APPLY_PIXELS = 16                      # texels per apply invocation (see the shader)
NORM_MAX_PARTIAL_GROUPS = 256
# G per slice: at least 64 pixels per invocation, so the pass stays a streaming
# read and the merges a small share of it (on llvmpipe 16 pixels per invocation
# made the pass 25 % slower than 64). At 1280x720 that is 57 work groups per
# slice, 912 for a 64-channel tensor: about what an H100 holds at once (132 SMs
# x 8 groups of 256). Capped where many slices already give that many.
NORM_TARGET_GROUPS = 2048
NORM_MIN_PIXELS_PER_INVOCATION = 64


def norm_partial_groups(pixels: int, slices: int) -> int:
    """G: the work groups that reduce one slice of `pixels` texels."""
    by_work = ceil_div(pixels, NORM_REDUCE_LOCAL_SIZE * NORM_MIN_PIXELS_PER_INVOCATION)
    return max(1, min(NORM_MAX_PARTIAL_GROUPS, by_work, ceil_div(NORM_TARGET_GROUPS, slices)))


def norm_scratch_bytes(graph: fmt.Graph, sizes: dict) -> dict:
    """Bytes of the norm scratch buffers at one run size ({} for a model without norms):
    each as large as the largest norm layer needs."""
    partials = statistics = 0
    for layer in graph.layers:
        if layer.op == "instance_norm":
            (w, h), slices = sizes[layer.name], graph.tensors[layer.name].slices
            partials = max(partials, NORM_MOMENTS_BYTES * slices * norm_partial_groups(w * h, slices))
            statistics = max(statistics, NORM_STATISTICS_BYTES * slices)
    return {NORM_PARTIALS: partials, NORM_STATISTICS: statistics} if partials else {}


def norm_dispatches(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, fp16: bool,
                    limits: DeviceLimits) -> list[Dispatch]:
    """Partial moments per (slice, work group), their merge into per-slice statistics,
    then the elementwise normalize + activation (shaders/instance_norm.comp). Reads
    its input as a storage buffer: a norm is one streaming pass, and an image view
    would cost a copy of the whole tensor first."""
    (w, h), slices = sizes[layer.name], graph.tensors[layer.name].slices
    source = layer.inputs[0]
    groups = norm_partial_groups(w * h, slices)
    partial = Dispatch(layer.name, "instance_norm.comp",
                       {"PASS": 0, "STORAGE_FP16": int(fp16), "LOCAL_SIZE": NORM_REDUCE_LOCAL_SIZE},
                       {BIND_SOURCE_A: source, BIND_DESTINATION: NORM_PARTIALS},
                       {"pixels": w * h}, (groups, slices, 1), (NORM_REDUCE_LOCAL_SIZE, 1),
                       shared_bytes=NORM_SHARED_BYTES * NORM_REDUCE_LOCAL_SIZE)
    final = Dispatch(layer.name, "instance_norm.comp",
                     {"PASS": 1, "STORAGE_FP16": int(fp16), "EPS": float(layer.eps),
                      "LOCAL_SIZE": NORM_FINAL_LOCAL_SIZE},
                     {BIND_SOURCE_A: NORM_PARTIALS, BIND_SOURCE_B: source, BIND_WEIGHTS: ("scale", layer.name),
                      BIND_BIAS: ("shift", layer.name), BIND_DESTINATION: NORM_STATISTICS},
                     {"pixels": w * h, "partial_groups": groups}, (slices, 1, 1), (NORM_FINAL_LOCAL_SIZE, 1),
                     shared_bytes=NORM_SHARED_BYTES * NORM_FINAL_LOCAL_SIZE)
    apply = Dispatch(layer.name, "instance_norm.comp",
                     dict(common_defines(layer, fp16), PASS=2, LOCAL_SIZE=NORM_APPLY_LOCAL_SIZE,
                          APPLY_PIXELS=NORM_APPLY_PIXELS),
                     {BIND_SOURCE_A: source, BIND_NORM_STATISTICS: NORM_STATISTICS, BIND_DESTINATION: layer.name},
                     {"pixels": w * h},
                     (*flat_groups(ceil_div(w * h, NORM_APPLY_PIXELS), NORM_APPLY_LOCAL_SIZE, limits), slices),
                     (NORM_APPLY_LOCAL_SIZE, 1))
    return [partial, final, apply]
