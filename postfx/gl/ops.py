"""Op kernel families: for one layer, pick the shader variant, its #defines and
its dispatches. The network executor (network.py) owns the buffers and runs
the dispatches in order.

Conv and transposed-conv kernels form a ladder (style.md 8), registered in
CONV_VARIANTS / CONV_TRANSPOSE_VARIANTS from plainest to fastest:

- "naive": one output pixel x one output slice per invocation, every operand
  read from a storage buffer per multiply-add. The reference for parity tests
  and the benchmark's baseline.
- "tiled": the work group's input tile (with halo) staged in shared memory,
  several output slices per invocation (transposed conv: a 2x2 output block,
  one pixel per parity). The classic GPU layout, weights still read from a
  storage buffer.
- "blocked": register-blocked (several pixels x several output slices per
  invocation), inputs read through image views of the activation buffers
  (2D-array textures refreshed from a tensor's buffer after its producer ran)
  and weights through an image made at upload. On Mesa llvmpipe storage-buffer
  and shared-memory loads are scalar loops over the SIMD lanes, ~20x an
  imageLoad, so this is the fast one there; on GPUs images go through the
  texture cache.

kernels="optimized" picks, per layer, the last registered variant that
supports it; a variant that does not (e.g. a transposed conv of stride 1, which
the blocked kernels do not cover) falls back to naive.

instance_norm has one kernel whatever `kernels` says (norm_dispatches): a
streaming reduction and an elementwise pass, nothing to block or tile; the
numpy reference is its plain counterpart.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from dataclasses import dataclass, field

from .. import model_format as fmt
from ..errors import DeviceLimitError

ACTIVATION_CODES = {"none": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}
ELEMENTWISE_CODES = {"copy": 0, "add": 1, "nearest": 2, "bilinear": 3}

# Storage-buffer binding points shared by every kernel (see shaders/*.comp).
BIND_SOURCE_A, BIND_SOURCE_B, BIND_DESTINATION, BIND_WEIGHTS, BIND_BIAS = 0, 1, 2, 3, 4
BIND_NORM_STATISTICS = 5        # what instance_norm's apply pass reads beside its source
# Image units of the image views read by the "blocked" variants
# (shaders/image_sources.glsl, shaders/weight_image.glsl).
IMAGE_SOURCE_A, IMAGE_SOURCE_B, IMAGE_WEIGHTS = 0, 1, 2
WEIGHT_IMAGE_WIDTH = 4096

GL_MAX_COMPUTE_SHARED_MEMORY_SIZE = 0x8262


# --- device limits --------------------------------------------------------------

@dataclass(frozen=True)
class DeviceLimits:
    """The limits kernels are planned against, checked before compiling or dispatching."""
    max_work_group_count: tuple = (65535, 65535, 65535)
    max_work_group_invocations: int = 1024
    max_shared_memory: int = 32768          # bytes
    max_texture_size: int = 16384
    max_array_layers: int = 2048
    max_storage_block_size: int = 1 << 24
    renderer: str = "OpenGL 4.3 minimums"

    @classmethod
    def of(cls, ctx) -> "DeviceLimits":
        info = ctx.info
        defaults = cls()
        return cls(
            max_work_group_count=tuple(info["GL_MAX_COMPUTE_WORK_GROUP_COUNT"]),
            max_work_group_invocations=info["GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS"],
            max_shared_memory=_query_shared_memory_size() or defaults.max_shared_memory,
            max_texture_size=info.get("GL_MAX_TEXTURE_SIZE", defaults.max_texture_size),
            max_array_layers=info.get("GL_MAX_ARRAY_TEXTURE_LAYERS", defaults.max_array_layers),
            max_storage_block_size=info["GL_MAX_SHADER_STORAGE_BLOCK_SIZE"],
            renderer=f"{info.get('GL_RENDERER', '?')} (OpenGL {info.get('GL_VERSION', '?')})")


def _query_shared_memory_size() -> int | None:
    """GL_MAX_COMPUTE_SHARED_MEMORY_SIZE of the current context. moderngl's
    ctx.info leaves it out, so ask the process's GL library directly; None
    when that is not possible (the caller then plans for the spec minimum)."""
    names = ("opengl32",) if sys.platform == "win32" else ("OpenGL", "GL")
    paths = [path for path in map(ctypes.util.find_library, names) if path]
    try:
        get_integer = ctypes.CDLL(paths[0]).glGetIntegerv
    except (IndexError, OSError, AttributeError):
        return None
    value = ctypes.c_int(0)
    get_integer(GL_MAX_COMPUTE_SHARED_MEMORY_SIZE, ctypes.byref(value))
    return value.value or None


# --- dispatches ------------------------------------------------------------------

@dataclass
class Dispatch:
    """One compute dispatch: program + resources + uniforms + group counts."""
    layer: str
    shader: str
    defines: dict
    bindings: dict                     # storage binding point -> tensor name (or scratch buffer name,
                                       # NORM_*) or ("weights"|"bias"|"scale"|"shift", layer)
    uniforms: dict
    groups: tuple[int, int, int]
    local_size: tuple[int, int] = (8, 8)
    shared_bytes: int = 0              # shared memory the program declares
    images: dict = field(default_factory=dict)          # image unit -> tensor name or ("weights", layer)
    view_border: int = 0               # zero texels it reads past its inputs' edges (image_sources.glsl)
    program: object = field(default=None, repr=False)


def check_limits(d: Dispatch, limits: DeviceLimits) -> None:
    """Raise DeviceLimitError, naming the layer and the limit, for a dispatch the
    device cannot run; called before compiling and before dispatching."""
    where = f"layer {d.layer!r} ({d.shader})"
    for axis, (count, limit) in enumerate(zip(d.groups, limits.max_work_group_count)):
        if count > limit:
            raise DeviceLimitError(f"{where}: {count} work groups along {'xyz'[axis]} exceed "
                                   f"GL_MAX_COMPUTE_WORK_GROUP_COUNT {limit} on {limits.renderer}; "
                                   "run at a smaller internal resolution")
    invocations = d.local_size[0] * d.local_size[1]
    if invocations > limits.max_work_group_invocations:
        raise DeviceLimitError(f"{where}: work groups of {invocations} invocations exceed "
                               f"GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS {limits.max_work_group_invocations} "
                               f"on {limits.renderer}")
    if d.shared_bytes > limits.max_shared_memory:
        raise DeviceLimitError(f"{where}: {d.shared_bytes} bytes of shared memory exceed "
                               f"GL_MAX_COMPUTE_SHARED_MEMORY_SIZE {limits.max_shared_memory} on "
                               f"{limits.renderer}; use kernels='naive' or 'blocked'")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def flat_groups(invocations: int, local_size: int, limits: DeviceLimits) -> tuple[int, int]:
    """Work groups (x, y) covering `invocations` numbered 1D (shaders/flat_grid.glsl),
    a long row split along y to stay under the work-group count limit."""
    groups = max(1, ceil_div(invocations, local_size))
    along_x = min(groups, limits.max_work_group_count[0])
    return along_x, ceil_div(groups, along_x)


def largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def common_defines(layer: fmt.Layer, fp16: bool) -> dict:
    d = {"STORAGE_FP16": int(fp16), "ACTIVATION": ACTIVATION_CODES[layer.activation]}
    if layer.activation == "leaky_relu":
        d["NEGATIVE_SLOPE"] = float(layer.negative_slope)
    return d


@dataclass(frozen=True)
class ConvShape:
    """What a conv kernel needs to know about one layer."""
    layer: fmt.Layer
    source_slices: tuple[int, ...]     # slices of each input tensor (1 or 2 sources)
    out_slices: int

    @classmethod
    def of(cls, layer: fmt.Layer, graph: fmt.Graph) -> "ConvShape":
        source_slices = tuple(graph.tensors[name].slices for name in layer.inputs)
        if len(source_slices) > 2:
            raise ValueError(f"layer {layer.name!r}: conv kernels read at most two sources "
                             "(the exporter materializes wider concats)")
        return cls(layer, source_slices, fmt.slices(layer.out_channels))

    @property
    def in_slices(self) -> int:
        return sum(self.source_slices)

    def defines(self, fp16: bool) -> dict:
        return dict(common_defines(self.layer, fp16), SLICES_A=self.source_slices[0],
                    SLICES_B=self.source_slices[1] if len(self.source_slices) > 1 else 0,
                    OUT_SLICES=self.out_slices)

    def storage_bindings(self) -> dict:
        layer = self.layer
        bindings = {BIND_SOURCE_A: layer.inputs[0], BIND_DESTINATION: layer.name,
                    BIND_WEIGHTS: ("weights", layer.name), BIND_BIAS: ("bias", layer.name)}
        if len(layer.inputs) > 1:
            bindings[BIND_SOURCE_B] = layer.inputs[1]
        return bindings


def transpose_tap_offsets(layer: fmt.Layer) -> tuple[int, int]:
    """(D_MIN, D_MAX): the input offsets a stride-2 transposed conv's taps reach from
    input row m for output rows 2m and 2m + 1 (shaders/conv_transpose_s2_blocked.comp)."""
    p, k = layer.padding, layer.kernel
    offsets = [(q + p - ky) // 2 for q in (0, 1) for ky in range(k) if (q + p - ky) % 2 == 0]
    return min(offsets), max(offsets)


def is_transpose_4x4_stride_2(layer: fmt.Layer) -> bool:
    """The pix2pix up layer: the only transposed conv with a 2x2-block kernel."""
    return (layer.op == "conv_transpose2d" and layer.kernel == 4 and layer.stride == 2
            and layer.padding == 1 and layer.output_padding == 0)


# --- the ladder ------------------------------------------------------------------

class ConvKernel:
    """Base of a conv kernel variant: supports() says whether it handles a layer,
    dispatches() plans it at one run size (sizes: tensor name -> (W, H))."""
    shader = ""
    local_size = (8, 8)
    reads_weight_image = False      # weights uploaded as an image (weight_image.glsl), not a storage buffer

    def supports(self, layer: fmt.Layer, graph: fmt.Graph, limits: DeviceLimits) -> bool:
        return True

    def dispatches(self, layer, graph, sizes, fp16, limits) -> list[Dispatch]:
        raise NotImplementedError


class NaiveConv(ConvKernel):
    shader = "conv_naive.comp"

    def dispatches(self, layer, graph, sizes, fp16, limits):
        shape = ConvShape.of(layer, graph)
        defines = dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                       PAD_REFLECT=int(layer.padding_mode == "reflect"))
        out_w, out_h = sizes[layer.name]
        groups = (ceil_div(out_w, 8), ceil_div(out_h, 8), shape.out_slices)
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": sizes[layer.inputs[0]], "out_size": (out_w, out_h)}, groups)]


class NaiveConvTranspose(NaiveConv):
    shader = "conv_transpose_naive.comp"

    def dispatches(self, layer, graph, sizes, fp16, limits):
        (d,) = super().dispatches(layer, graph, sizes, fp16, limits)
        del d.defines["PAD_REFLECT"]
        return [d]


class TiledConv(ConvKernel):
    """Shared-memory input tile per work group of 8x8 output pixels; each
    invocation computes BLOCK_SLICES output slices of its pixel. The classic
    GPU layout; on llvmpipe no faster than naive, since a shared-memory load is
    the same per-lane scalar loop as a storage-buffer load."""
    shader = "conv_tiled.comp"
    max_block_slices = 4
    max_chunk_slices = 8        # input slices staged per barrier pair

    def tile_texels(self, layer) -> int:
        side = (self.local_size[0] - 1) * layer.stride + layer.kernel
        return side * side

    def chunk_slices(self, layer, graph, limits) -> int:
        fit = limits.max_shared_memory // (16 * self.tile_texels(layer))
        return min(ConvShape.of(layer, graph).in_slices, self.max_chunk_slices, fit)

    def supports(self, layer, graph, limits):
        return self.chunk_slices(layer, graph, limits) >= 1

    def dispatches(self, layer, graph, sizes, fp16, limits):
        shape = ConvShape.of(layer, graph)
        chunk = self.chunk_slices(layer, graph, limits)
        block = largest_divisor(shape.out_slices, self.max_block_slices)
        defines = dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                       PAD_REFLECT=int(layer.padding_mode == "reflect"), CHUNK_SLICES=chunk,
                       BLOCK_SLICES=block)
        out_w, out_h = sizes[layer.name]
        groups = (ceil_div(out_w, 8), ceil_div(out_h, 8), shape.out_slices // block)
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": sizes[layer.inputs[0]], "out_size": (out_w, out_h)}, groups,
                         shared_bytes=16 * self.tile_texels(layer) * chunk)]


class TiledConvTranspose(TiledConv):
    """4x4 / stride 2 transposed conv: each invocation writes the 2x2 output block
    of one input pixel; the work group's 10x10 input tile sits in shared memory."""
    shader = "conv_transpose_tiled.comp"

    def tile_texels(self, layer) -> int:
        return (self.local_size[0] + 2) ** 2

    def supports(self, layer, graph, limits):
        return is_transpose_4x4_stride_2(layer) and super().supports(layer, graph, limits)

    def dispatches(self, layer, graph, sizes, fp16, limits):
        shape = ConvShape.of(layer, graph)
        chunk = self.chunk_slices(layer, graph, limits)
        block = largest_divisor(shape.out_slices, self.max_block_slices)
        defines = dict(shape.defines(fp16), CHUNK_SLICES=chunk, BLOCK_SLICES=block)
        in_w, in_h = sizes[layer.inputs[0]]
        groups = (ceil_div(in_w, 8), ceil_div(in_h, 8), shape.out_slices // block)
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": (in_w, in_h), "out_size": sizes[layer.name]}, groups,
                         shared_bytes=16 * self.tile_texels(layer) * chunk)]


def weight_image_rows(layer: fmt.Layer, graph: fmt.Graph) -> int:
    """Rows of a layer's weight image (shaders/weight_image.glsl): 4 texels per mat4."""
    mat4s = math.prod(fmt.weight_shape(layer, graph.tensors)[:4])
    return ceil_div(4 * mat4s, WEIGHT_IMAGE_WIDTH)


class BlockedConv(ConvKernel):
    """Register-blocked, inputs and weights read through image views (see the
    module doc). Per-layer rule: BLOCK_SLICES output slices x BLOCK_PIXELS
    pixels per invocation. Many pixels amortise the weight reads (on llvmpipe a
    work-group-uniform mat4 is still gathered per lane, the largest remaining
    cost), several slices amortise the input loads; beyond 64 accumulators
    (vec4) the register spills and the compile time cost more than they save.
    Invocations are numbered row by row (shaders/flat_grid.glsl), so narrow
    deep levels still fill whole work groups: one rule serves big shallow and
    small deep levels alike."""
    shader = "conv_blocked.comp"
    local_size = (64, 1)
    reads_weight_image = True

    def block(self, shape: ConvShape) -> tuple[int, int]:
        """(BLOCK_SLICES, BLOCK_PIXELS) for a layer: 4 x 16 in general; a layer
        reading one input slice (the RGBD input) does too little per tap to pay
        for 64 spilled accumulators, and runs fastest at 2 x 8."""
        if shape.in_slices == 1:
            return largest_divisor(shape.out_slices, 2), 8
        return largest_divisor(shape.out_slices, 4), 16

    def supports(self, layer, graph, limits):
        return weight_image_rows(layer, graph) <= limits.max_texture_size

    def layer_defines(self, layer, shape, fp16) -> dict:
        return dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                    PAD_REFLECT=int(layer.padding_mode == "reflect"))

    def grid(self, layer, sizes, pixels) -> tuple[int, int]:
        """Invocations along x and y at this run size."""
        out_w, out_h = sizes[layer.name]
        return ceil_div(out_w, pixels), out_h

    def dispatches(self, layer, graph, sizes, fp16, limits):
        shape = ConvShape.of(layer, graph)
        slices, pixels = self.block(shape)
        defines = dict(self.layer_defines(layer, shape, fp16), BLOCK_SLICES=slices, BLOCK_PIXELS=pixels,
                       LOCAL_SIZE=self.local_size[0])
        images = {IMAGE_SOURCE_A: layer.inputs[0], IMAGE_WEIGHTS: ("weights", layer.name)}
        if len(layer.inputs) > 1:
            images[IMAGE_SOURCE_B] = layer.inputs[1]
        grid_x, grid_y = self.grid(layer, sizes, pixels)
        uniforms = {"in_size": sizes[layer.inputs[0]], "out_size": sizes[layer.name], "grid_width": grid_x}
        groups = (*flat_groups(grid_x * grid_y, self.local_size[0], limits), shape.out_slices // slices)
        return [Dispatch(layer.name, self.shader_for(layer), defines,
                         {BIND_DESTINATION: layer.name, BIND_BIAS: ("bias", layer.name)},
                         uniforms, groups, self.local_size, images=images, view_border=self.view_border(layer))]

    def shader_for(self, layer) -> str:
        return self.shader

    def view_border(self, layer) -> int:
        """Zero padding reaches `padding` texels past every edge (a stored pixel
        reads at most (Wo - 1) * stride - padding + kernel - 1 <= W - 1 + padding)."""
        return layer.padding if layer.padding_mode == "zeros" else 0


class BlockedConvTranspose(BlockedConv):
    """Stride-2 transposed conv (output exactly 2x), gather form, 2x2 output block
    per input pixel: each weight mat4 serves one pixel of each block, so blocks
    along x (BLOCK_PIXELS) amortise the weight reads. With 4 accumulators per
    block, 8 blocks of one slice measured fastest on every decoder shape of the
    reference U-Net (2 slices x 8 blocks: 5-10 % slower, and twice the code).
    The pix2pix 4x4 / padding 1 case has a hand-scheduled shader; any other
    kernel (the CycleGAN ResNet's 3x3, output_padding 1) the general one."""
    shader = "conv_transpose_blocked.comp"
    general_shader = "conv_transpose_s2_blocked.comp"

    def block(self, shape):
        return 1, 8

    def supports(self, layer, graph, limits):
        return layer.stride == 2 and super().supports(layer, graph, limits)

    def shader_for(self, layer):
        return self.shader if is_transpose_4x4_stride_2(layer) else self.general_shader

    def layer_defines(self, layer, shape, fp16):
        if is_transpose_4x4_stride_2(layer):
            return shape.defines(fp16)
        d_min, d_max = transpose_tap_offsets(layer)
        return dict(shape.defines(fp16), KERNEL=layer.kernel, PADDING=layer.padding, D_MIN=d_min, D_MAX=d_max)

    def view_border(self, layer):
        """Input rows / columns m + D_MIN ... m + D_MAX (4x4: m - 1 ... m + 1)."""
        d_min, d_max = transpose_tap_offsets(layer)
        return max(1, -d_min, d_max)

    def grid(self, layer, sizes, pixels):
        in_w, in_h = sizes[layer.inputs[0]]
        return ceil_div(in_w, pixels), in_h


CONV_VARIANTS: dict[str, ConvKernel] = {
    "naive": NaiveConv(),
    "tiled": TiledConv(),
    "blocked": BlockedConv(),
}
CONV_TRANSPOSE_VARIANTS: dict[str, ConvKernel] = {
    "naive": NaiveConvTranspose(),
    "tiled": TiledConvTranspose(),
    "blocked": BlockedConvTranspose(),
}
KERNEL_CHOICES = ("naive", "optimized", *sorted(set(CONV_VARIANTS) - {"naive"}))


def choose_variant(layer: fmt.Layer, graph: fmt.Graph, kernels: str,
                   limits: DeviceLimits = DeviceLimits()) -> ConvKernel:
    table = CONV_VARIANTS if layer.op == "conv2d" else CONV_TRANSPOSE_VARIANTS
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {list(KERNEL_CHOICES)}, got {kernels!r}")
    if kernels == "optimized":
        # The last registered variant that handles this layer is the fastest.
        candidates = [v for name, v in table.items() if name != "naive" and v.supports(layer, graph, limits)]
        return candidates[-1] if candidates else table["naive"]
    variant = table[kernels]
    return variant if variant.supports(layer, graph, limits) else table["naive"]


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


# --- instance norm -------------------------------------------------------------------

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


def layer_dispatches(layer, graph, sizes, kernels, fp16, limits: DeviceLimits = DeviceLimits()) -> list[Dispatch]:
    if layer.op in fmt.CONV_OPS:
        return choose_variant(layer, graph, kernels, limits).dispatches(layer, graph, sizes, fp16, limits)
    if layer.op == "instance_norm":
        return norm_dispatches(layer, graph, sizes, fp16, limits)
    return elementwise_dispatches(layer, graph, sizes, fp16)
