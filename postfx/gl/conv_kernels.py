"""The conv / transposed-conv kernel ladder, from plainest to most elaborate:

- "naive": one output pixel x one output slice per invocation, every operand
  read from a storage buffer per multiply-add. The reference for parity tests,
  the tuner's check, and the benchmark's baseline.
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
- "cooperative": the groupshared-cache tiling GPUs are built for: the work
  group stages its input tile and the weights of its output slices in shared
  memory, each invocation keeps at most 16 vec4 accumulators (so a GPU keeps
  them in registers and holds many invocations), results go straight to the
  output buffer, no image view of the input is needed.

Each variant lists its tunables (the shader knobs a tuner may vary: pixels and
slices per invocation, work-group shape), its default first. A layer's kernel
is a KernelChoice: variant + tunables. kernels="optimized" takes a static
choice per layer (on a CPU renderer "blocked" first, elsewhere "cooperative"
first); kernels="auto" measures (postfx/gl/tuner.py); a variant name forces
that variant where it supports the layer, naive elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import model_format as fmt
from .dispatch import (
    BIND_BIAS,
    BIND_DESTINATION,
    BIND_SOURCE_A,
    BIND_SOURCE_B,
    BIND_WEIGHTS,
    IMAGE_SOURCE_A,
    IMAGE_SOURCE_B,
    IMAGE_WEIGHTS,
    WEIGHT_IMAGE_WIDTH,
    DeviceLimits,
    Dispatch,
    ceil_div,
    common_defines,
    flat_groups,
    largest_divisor,
)

TEXEL_BYTES = 16            # a vec4 in shared memory (fp32 whatever the storage)
MAT4_BYTES = 64
MAX_ACCUMULATORS = 16       # vec4 per invocation of the cooperative kernels: 64 scalars


@dataclass(frozen=True)
class KernelChoice:
    """The kernel of one conv layer: a variant of the ladder and its tunables
    (shader knobs, as sorted (name, value) pairs)."""
    variant: str
    tunables: tuple = ()

    @classmethod
    def of(cls, variant: str, tunables: dict | None = None) -> KernelChoice:
        return cls(variant, tuple(sorted((tunables or {}).items())))

    @property
    def knobs(self) -> dict:
        return dict(self.tunables)

    def __str__(self) -> str:
        if not self.tunables:
            return self.variant
        return f"{self.variant}({', '.join(f'{k.lower()}={v}' for k, v in self.tunables)})"


@dataclass(frozen=True)
class ConvShape:
    """What a conv kernel needs to know about one layer."""
    layer: fmt.Layer
    source_slices: tuple[int, ...]     # slices of each input tensor (1 or 2 sources)
    out_slices: int

    @classmethod
    def of(cls, layer: fmt.Layer, graph: fmt.Graph) -> ConvShape:
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


def weight_image_rows(layer: fmt.Layer, graph: fmt.Graph) -> int:
    """Rows of a layer's weight image (shaders/weight_image.glsl): 4 texels per mat4."""
    mat4s = math.prod(fmt.weight_shape(layer, graph.tensors)[:4])
    return ceil_div(4 * mat4s, WEIGHT_IMAGE_WIDTH)


def _deduplicated(tunables: list[dict]) -> list[dict]:
    out = []
    for t in tunables:
        if t not in out:
            out.append(t)
    return out


# --- the ladder ------------------------------------------------------------------

class ConvKernel:
    """Base of a conv kernel variant: supports() says whether it handles a layer,
    tunable_space() lists the knob settings a tuner may try (the default first),
    dispatches() plans it at one run size (sizes: tensor name -> (W, H))."""
    name = ""
    shader = ""
    reads_weight_image = False      # weights uploaded as an image (weight_image.glsl), not a storage buffer

    def supports(self, layer: fmt.Layer, graph: fmt.Graph, limits: DeviceLimits) -> bool:
        return True

    def tunable_space(self, layer: fmt.Layer, graph: fmt.Graph, limits: DeviceLimits) -> list[dict]:
        return [{}]

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables: dict | None = None) -> list[Dispatch]:
        raise NotImplementedError

    def view_border(self, layer: fmt.Layer) -> int:
        """Zero texels its image reads reach past an input's edge (0: reads no image views)."""
        return 0


class NaiveConv(ConvKernel):
    name = "naive"
    shader = "conv_naive.comp"

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
        shape = ConvShape.of(layer, graph)
        defines = dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                       PAD_REFLECT=int(layer.padding_mode == "reflect"))
        out_w, out_h = sizes[layer.name]
        groups = (ceil_div(out_w, 8), ceil_div(out_h, 8), shape.out_slices)
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": sizes[layer.inputs[0]], "out_size": (out_w, out_h)}, groups)]


class NaiveConvTranspose(NaiveConv):
    shader = "conv_transpose_naive.comp"

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
        (d,) = super().dispatches(layer, graph, sizes, fp16, limits)
        del d.defines["PAD_REFLECT"]
        return [d]


class TiledConv(ConvKernel):
    """Shared-memory input tile per work group of 8x8 output pixels; each
    invocation computes BLOCK_SLICES output slices of its pixel. The classic
    GPU layout; on llvmpipe no faster than naive, since a shared-memory load is
    the same per-lane scalar loop as a storage-buffer load."""
    name = "tiled"
    shader = "conv_tiled.comp"
    local_size = (8, 8)
    max_block_slices = 4
    max_chunk_slices = 8        # input slices staged per barrier pair

    def tile_texels(self, layer) -> int:
        side = (self.local_size[0] - 1) * layer.stride + layer.kernel
        return side * side

    def chunk_slices(self, layer, graph, limits) -> int:
        fit = limits.max_shared_memory // (TEXEL_BYTES * self.tile_texels(layer))
        return min(ConvShape.of(layer, graph).in_slices, self.max_chunk_slices, fit)

    def supports(self, layer, graph, limits):
        return self.chunk_slices(layer, graph, limits) >= 1

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
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
                         shared_bytes=TEXEL_BYTES * self.tile_texels(layer) * chunk)]


class TiledConvTranspose(TiledConv):
    """4x4 / stride 2 transposed conv: each invocation writes the 2x2 output block
    of one input pixel; the work group's 10x10 input tile sits in shared memory."""
    shader = "conv_transpose_tiled.comp"

    def tile_texels(self, layer) -> int:
        return (self.local_size[0] + 2) ** 2

    def supports(self, layer, graph, limits):
        return is_transpose_4x4_stride_2(layer) and super().supports(layer, graph, limits)

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
        shape = ConvShape.of(layer, graph)
        chunk = self.chunk_slices(layer, graph, limits)
        block = largest_divisor(shape.out_slices, self.max_block_slices)
        defines = dict(shape.defines(fp16), CHUNK_SLICES=chunk, BLOCK_SLICES=block)
        in_w, in_h = sizes[layer.inputs[0]]
        groups = (ceil_div(in_w, 8), ceil_div(in_h, 8), shape.out_slices // block)
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": (in_w, in_h), "out_size": sizes[layer.name]}, groups,
                         shared_bytes=TEXEL_BYTES * self.tile_texels(layer) * chunk)]


class BlockedConv(ConvKernel):
    """Register-blocked, inputs and weights read through image views (see the
    module doc). BLOCK_SLICES output slices x BLOCK_PIXELS pixels per
    invocation. Many pixels amortise the weight reads (on llvmpipe a
    work-group-uniform mat4 is still gathered per lane, the largest remaining
    cost), several slices amortise the input loads. The default, 4 x 16 (64
    vec4 accumulators), is what measured fastest on llvmpipe; a GPU thread
    cannot hold that many registers (NVIDIA: 255), so smaller blocks are
    tunables. Invocations are numbered row by row (shaders/flat_grid.glsl), so
    narrow deep levels still fill whole work groups."""
    name = "blocked"
    shader = "conv_blocked.comp"
    local_size = (64, 1)
    reads_weight_image = True

    def block_sizes(self, shape: ConvShape) -> list[tuple[int, int]]:
        """(BLOCK_SLICES, BLOCK_PIXELS) to try, the default first. A layer reading
        one input slice (the RGBD input) does too little per tap to pay for 64
        accumulators, and runs fastest at 2 x 8 on llvmpipe."""
        if shape.in_slices == 1:
            return [(2, 8), (4, 8), (1, 8), (2, 4), (2, 16)]
        return [(4, 16), (4, 8), (2, 16), (2, 8), (1, 16), (1, 8)]

    def tunable_space(self, layer, graph, limits):
        shape = ConvShape.of(layer, graph)
        return _deduplicated([{"BLOCK_SLICES": largest_divisor(shape.out_slices, slices), "BLOCK_PIXELS": pixels}
                              for slices, pixels in self.block_sizes(shape)])

    def supports(self, layer, graph, limits):
        return weight_image_rows(layer, graph) <= limits.max_texture_size

    def layer_defines(self, layer, shape, fp16) -> dict:
        return dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                    PAD_REFLECT=int(layer.padding_mode == "reflect"))

    def grid(self, layer, sizes, pixels) -> tuple[int, int]:
        """Invocations along x and y at this run size."""
        out_w, out_h = sizes[layer.name]
        return ceil_div(out_w, pixels), out_h

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
        shape = ConvShape.of(layer, graph)
        knobs = tunables or self.tunable_space(layer, graph, limits)[0]
        slices, pixels = knobs["BLOCK_SLICES"], knobs["BLOCK_PIXELS"]
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
    reference U-Net on llvmpipe (2 slices x 8 blocks: 5-10 % slower).
    The pix2pix 4x4 / padding 1 case has a hand-scheduled shader; any other
    kernel (the CycleGAN ResNet's 3x3, output_padding 1) the general one."""
    shader = "conv_transpose_blocked.comp"
    general_shader = "conv_transpose_s2_blocked.comp"

    def block_sizes(self, shape):
        return [(1, 8), (1, 4), (2, 4), (1, 16), (2, 8)]

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


class CooperativeConv(ConvKernel):
    """Shared-memory input tile and weights, a small register block per
    invocation, straight to the output buffer (shaders/conv_cooperative.comp).
    Tunables: the work group's shape (GROUP_X x GROUP_Y invocations, one output
    row each along y) and each invocation's BLOCK_SLICES x BLOCK_PIXELS block;
    the slices a chunk stages (CHUNK_SLICES) follow from shared memory."""
    name = "cooperative"
    shader = "conv_cooperative.comp"
    max_chunk_slices = 4
    # (GROUP_X, GROUP_Y, BLOCK_SLICES, BLOCK_PIXELS), the default first
    shapes = [(8, 8, 4, 2), (16, 8, 4, 1), (8, 8, 4, 4), (16, 8, 2, 2), (16, 4, 2, 4), (8, 8, 1, 4)]
    accumulators_per_block = 1              # vec4 per (slice, pixel)

    def tile(self, layer, knobs) -> tuple[int, int]:
        """(TILE_W, TILE_H): input texels a work group reads."""
        span = knobs["GROUP_X"] * knobs["BLOCK_PIXELS"]
        return (span - 1) * layer.stride + layer.kernel, (knobs["GROUP_Y"] - 1) * layer.stride + layer.kernel

    def chunk_bytes(self, layer, knobs) -> int:
        """Shared memory per input slice staged: its tile + its weights for the block's slices."""
        tile_w, tile_h = self.tile(layer, knobs)
        return TEXEL_BYTES * tile_w * tile_h + MAT4_BYTES * knobs["BLOCK_SLICES"] * layer.kernel ** 2

    def chunk_slices(self, layer, graph, limits, knobs) -> int:
        fit = limits.max_shared_memory // self.chunk_bytes(layer, knobs)
        return min(ConvShape.of(layer, graph).in_slices, self.max_chunk_slices, fit)

    def tunable_space(self, layer, graph, limits):
        shape = ConvShape.of(layer, graph)
        space = []
        for group_x, group_y, slices, pixels in self.shapes:
            knobs = {"GROUP_X": group_x, "GROUP_Y": group_y, "BLOCK_PIXELS": pixels,
                     "BLOCK_SLICES": largest_divisor(shape.out_slices, slices)}
            accumulators = self.accumulators_per_block * knobs["BLOCK_SLICES"] * pixels
            if (group_x * group_y <= limits.max_work_group_invocations and accumulators <= MAX_ACCUMULATORS
                    and self.chunk_slices(layer, graph, limits, knobs) >= 1):
                space.append(knobs)
        return _deduplicated(space)

    def supports(self, layer, graph, limits):
        return bool(self.tunable_space(layer, graph, limits))

    def layer_defines(self, layer, shape, fp16) -> dict:
        return dict(shape.defines(fp16), KERNEL=layer.kernel, STRIDE=layer.stride, PADDING=layer.padding,
                    PAD_REFLECT=int(layer.padding_mode == "reflect"))

    def covered(self, layer, sizes) -> tuple[int, int]:
        """(W, H) the work groups tile: the output for a conv."""
        return sizes[layer.name]

    def dispatches(self, layer, graph, sizes, fp16, limits, tunables=None):
        shape = ConvShape.of(layer, graph)
        knobs = tunables or self.tunable_space(layer, graph, limits)[0]
        chunk = self.chunk_slices(layer, graph, limits, knobs)
        defines = dict(self.layer_defines(layer, shape, fp16), CHUNK_SLICES=chunk, **knobs)
        width, height = self.covered(layer, sizes)
        groups = (ceil_div(width, knobs["GROUP_X"] * knobs["BLOCK_PIXELS"]), ceil_div(height, knobs["GROUP_Y"]),
                  shape.out_slices // knobs["BLOCK_SLICES"])
        return [Dispatch(layer.name, self.shader, defines, shape.storage_bindings(),
                         {"in_size": sizes[layer.inputs[0]], "out_size": sizes[layer.name]}, groups,
                         (knobs["GROUP_X"], knobs["GROUP_Y"]), shared_bytes=chunk * self.chunk_bytes(layer, knobs))]


class CooperativeConvTranspose(CooperativeConv):
    """Stride-2 transposed conv, any kernel, gather form: each invocation writes
    the 2x2 output blocks of BLOCK_PIXELS input columns for BLOCK_SLICES output
    slices, 4 x BLOCK_PIXELS x BLOCK_SLICES <= 16 accumulators
    (shaders/conv_transpose_cooperative.comp)."""
    shader = "conv_transpose_cooperative.comp"
    shapes = [(8, 8, 2, 2), (8, 8, 1, 4), (8, 8, 4, 1), (16, 8, 1, 2), (16, 8, 2, 1), (16, 16, 1, 1)]
    accumulators_per_block = 4

    def tile(self, layer, knobs):
        d_min, d_max = transpose_tap_offsets(layer)
        return knobs["GROUP_X"] * knobs["BLOCK_PIXELS"] + d_max - d_min, knobs["GROUP_Y"] + d_max - d_min

    def supports(self, layer, graph, limits):
        return layer.stride == 2 and super().supports(layer, graph, limits)

    def layer_defines(self, layer, shape, fp16):
        d_min, d_max = transpose_tap_offsets(layer)
        return dict(shape.defines(fp16), KERNEL=layer.kernel, PADDING=layer.padding, D_MIN=d_min, D_MAX=d_max)

    def covered(self, layer, sizes):
        return sizes[layer.inputs[0]]


CONV_VARIANTS: dict[str, ConvKernel] = {v.name: v for v in (NaiveConv(), TiledConv(), BlockedConv(),
                                                             CooperativeConv())}
CONV_TRANSPOSE_VARIANTS: dict[str, ConvKernel] = {"naive": NaiveConvTranspose(), "tiled": TiledConvTranspose(),
                                                  "blocked": BlockedConvTranspose(),
                                                  "cooperative": CooperativeConvTranspose()}
VARIANT_NAMES = tuple(CONV_VARIANTS)
KERNEL_CHOICES = ("auto", "optimized", *VARIANT_NAMES)


def variants_of(layer: fmt.Layer) -> dict[str, ConvKernel]:
    return CONV_VARIANTS if layer.op == "conv2d" else CONV_TRANSPOSE_VARIANTS


def preference(limits: DeviceLimits) -> tuple[str, ...]:
    """The variants in the order a static choice takes them: "blocked" measured
    fastest on llvmpipe (its image loads dodge the per-lane load loops there);
    "cooperative" is the layout GPUs are built for."""
    if limits.software:
        return ("blocked", "cooperative", "tiled")
    return ("cooperative", "blocked", "tiled")


def static_choice(layer: fmt.Layer, graph: fmt.Graph, kernels: str, limits: DeviceLimits) -> KernelChoice:
    """The kernel of a layer without measuring: "optimized" takes the first supporting
    variant in preference order; a variant name that variant (naive where it does
    not support the layer). Either with its default tunables."""
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {list(KERNEL_CHOICES)}, got {kernels!r}")
    table = variants_of(layer)
    names = preference(limits) if kernels in ("auto", "optimized") else (kernels,)
    for name in names:
        variant = table[name]
        if variant.supports(layer, graph, limits):
            return KernelChoice.of(name, variant.tunable_space(layer, graph, limits)[0])
    return KernelChoice.of("naive")


def candidates(layer: fmt.Layer, graph: fmt.Graph, limits: DeviceLimits) -> list[KernelChoice]:
    """Every choice a tuner may time for a layer, the static choice first; naive,
    the reference, is not a candidate."""
    table = variants_of(layer)
    out = []
    for name in preference(limits):
        if table[name].supports(layer, graph, limits):
            out += [KernelChoice.of(name, knobs) for knobs in table[name].tunable_space(layer, graph, limits)]
    return out or [KernelChoice.of("naive")]


def is_valid_choice(choice: KernelChoice, layer: fmt.Layer, graph: fmt.Graph, limits: DeviceLimits) -> bool:
    """Whether a choice (from a cache file, say) is one this layer can run here."""
    table = variants_of(layer)
    if choice.variant == "naive":
        return not choice.tunables
    variant = table.get(choice.variant)
    return (variant is not None and variant.supports(layer, graph, limits)
            and choice.knobs in variant.tunable_space(layer, graph, limits))


def conv_dispatches(layer: fmt.Layer, graph: fmt.Graph, sizes: dict, choice: KernelChoice, fp16: bool,
                    limits: DeviceLimits) -> list[Dispatch]:
    return variants_of(layer)[choice.variant].dispatches(layer, graph, sizes, fp16, limits, choice.knobs or None)
