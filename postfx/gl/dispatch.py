"""What every kernel family plans with: the device limits, the Dispatch record
(program + resources + uniforms + work groups), the binding points shared by
the host and the shaders, and small grid helpers."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

from .. import model_format as fmt
from ..errors import DeviceLimitError
from .query import gl_library

ACTIVATION_CODES = {"none": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}

# Storage-buffer binding points shared by every kernel (see shaders/*.comp).
BIND_SOURCE_A, BIND_SOURCE_B, BIND_DESTINATION, BIND_WEIGHTS, BIND_BIAS = 0, 1, 2, 3, 4
BIND_NORM_STATISTICS = 5        # what instance_norm's apply pass reads beside its source
# Image units of the image views read by the "blocked" variants
# (shaders/image_sources.glsl, shaders/weight_image.glsl).
IMAGE_SOURCE_A, IMAGE_SOURCE_B, IMAGE_WEIGHTS = 0, 1, 2
WEIGHT_IMAGE_WIDTH = 4096

GL_MAX_COMPUTE_SHARED_MEMORY_SIZE = 0x8262

# Substrings of GL_RENDERER that mark a CPU implementation of OpenGL.
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "lavapipe", "swiftshader", "software rasterizer")


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

    @property
    def software(self) -> bool:
        """True on a CPU renderer (Mesa llvmpipe, ...): the static kernel choice differs there."""
        return any(name in self.renderer.lower() for name in SOFTWARE_RENDERERS)

    @classmethod
    def of(cls, ctx) -> DeviceLimits:
        info = ctx.info
        defaults = cls()
        return cls(
            max_work_group_count=tuple(info["GL_MAX_COMPUTE_WORK_GROUP_COUNT"]),
            max_work_group_invocations=info["GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS"],
            max_shared_memory=query_shared_memory_size() or defaults.max_shared_memory,
            max_texture_size=info.get("GL_MAX_TEXTURE_SIZE", defaults.max_texture_size),
            max_array_layers=info.get("GL_MAX_ARRAY_TEXTURE_LAYERS", defaults.max_array_layers),
            max_storage_block_size=info["GL_MAX_SHADER_STORAGE_BLOCK_SIZE"],
            renderer=f"{info.get('GL_RENDERER', '?')} (OpenGL {info.get('GL_VERSION', '?')})")


def query_shared_memory_size() -> int | None:
    """GL_MAX_COMPUTE_SHARED_MEMORY_SIZE of the current context. moderngl's
    ctx.info leaves it out, so ask the process's GL library directly; None
    when that is not possible (the caller then plans for the spec minimum)."""
    try:
        get_integer = gl_library().glGetIntegerv
    except AttributeError:          # no library (None), or no such export
        return None
    value = ctypes.c_int(0)
    get_integer(GL_MAX_COMPUTE_SHARED_MEMORY_SIZE, ctypes.byref(value))
    return value.value or None


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
    for axis, (count, limit) in enumerate(zip(d.groups, limits.max_work_group_count, strict=True)):
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


def tensor_sizes(graph: fmt.Graph, run_h: int, run_w: int) -> dict:
    """Tensor name -> (W, H) at a run size."""
    return {name: (run_w * info.scale[0] // info.scale[1], run_h * info.scale[0] // info.scale[1])
            for name, info in graph.tensors.items()}


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
