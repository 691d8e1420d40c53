"""The checks PostFX.apply makes of the caller's textures before any GL work: colour
(which formats, and whether fetching gives linear values), depth (format, size, clip
planes), a target, and in temporal mode the motion texture. Each refusal is an
InputError (or FrameTooLarge) naming the texture and what to pass instead."""
from __future__ import annotations

import math

import moderngl

from .errors import FrameTooLarge, InputError
from .gl.context import renderer
from .gl.dispatch import DeviceLimits
from .gl.query import DEPTH_FORMATS, SRGB_FORMATS, texture_internal_format
from .model import Model

COLOR_DTYPES = ("f1", "f2", "f4")       # moderngl dtypes of RGBA8 / SRGB8_ALPHA8, RGBA16F, RGBA32F
MOTION_DTYPES = ("f2", "f4")            # RG / RGB / RGBA 16F or 32F


def color_is_linear(ctx, color_tex, limits: DeviceLimits) -> bool:
    """Whether fetching the colour texture gives linear values (shaders/frame_io.glsl)."""
    if not isinstance(color_tex, moderngl.Texture):
        raise InputError(f"color_tex must be a moderngl.Texture, got {type(color_tex).__name__}")
    check_texture(ctx, color_tex, "color_tex", limits)
    if color_tex.components != 4 or color_tex.dtype not in COLOR_DTYPES or color_tex.samples:
        raise InputError(f"color_tex must be a single-sample RGBA texture (RGBA8, SRGB8_ALPHA8, RGBA16F or "
                         f"RGBA32F); got {color_tex.components} components of {color_tex.dtype!r}"
                         f"{', multisampled: resolve it first' if color_tex.samples else ''}")
    return color_tex.dtype != "f1" or texture_internal_format(ctx, color_tex) in SRGB_FORMATS


def check_texture(ctx, texture: moderngl.Texture, what: str, limits: DeviceLimits) -> None:
    """Refuse, before it is bound, a texture that was released or never got storage
    (a size beyond GL_MAX_TEXTURE_SIZE makes moderngl's texture without one)."""
    if type(texture.mglo).__name__ == "InvalidObject":
        raise InputError(f"{what} was released; pass a live texture")
    limit = limits.max_texture_size
    width, height = texture.size
    if width > limit or height > limit:
        raise FrameTooLarge(f"{what} is {width}x{height}, beyond GL_MAX_TEXTURE_SIZE {limit} on "
                            f"{renderer(ctx)}: the texture holds no image (its creation failed); render "
                            "at a smaller size")
    if texture_internal_format(ctx, texture) == 0:
        raise InputError(f"{what} has no storage (its creation failed, or it was deleted outside moderngl)")


def depth_defines(ctx, model: Model, limits: DeviceLimits, depth_tex, color_size, near, far, reversed_z) -> dict:
    """USE_DEPTH / REVERSED_Z for pack (and the resolve), after checking depth_tex against the
    model's contract, the colour's size and the clip planes."""
    if depth_tex is None and (near is not None or far is not None):
        raise InputError("near= / far= were given without depth_tex: they linearize a depth texture; pass "
                         "depth_tex, or drop them")
    if not model.uses_depth:
        return {"USE_DEPTH": 0}
    if depth_tex is None:
        raise InputError(f"model {model.name!r} reads depth: pass depth_tex (and near=, far=)")
    if not isinstance(depth_tex, moderngl.Texture):
        raise InputError(f"depth_tex must be a moderngl.Texture, got {type(depth_tex).__name__}")
    check_texture(ctx, depth_tex, "depth_tex", limits)
    internal = texture_internal_format(ctx, depth_tex)
    if internal is not None and internal not in DEPTH_FORMATS:
        raise InputError(f"depth_tex has internal format 0x{internal:04X}, not a depth format "
                         f"({', '.join(sorted(set(DEPTH_FORMATS.values())))})")
    if depth_tex.size != color_size:
        raise InputError(f"depth texture is {depth_tex.size[0]}x{depth_tex.size[1]}, colour is "
                         f"{color_size[0]}x{color_size[1]}; they must match")
    if near is None or far is None:
        raise InputError("near= and far= (the camera's clip planes) are needed to linearize depth")
    near, far = float(near), float(far)
    if not (math.isfinite(near) and near > 0):
        raise InputError(f"near must be a finite value > 0, got {near}")
    if math.isinf(far):
        # The model's linear encoding normalizes by (far - near): with no far plane
        # every distance would map to 0. Refuse rather than feed it a black depth.
        raise InputError("the model normalizes depth as (z - near) / (far - near), which needs a finite "
                         "far plane (infinite-far projections included): pass the far distance the model "
                         "was trained with")
    if not (math.isfinite(far) and far > near):
        raise InputError(f"far must be a finite value > near ({near}), got {far}")
    return {"USE_DEPTH": 1, "REVERSED_Z": int(bool(reversed_z))}


def motion_has_depth(ctx, motion_tex, frame_size, limits: DeviceLimits) -> bool:
    """Check a motion texture for the temporal resolve; True when it carries the depth each
    surface had in the previous frame (a third channel), False for plain motion vectors."""
    if motion_tex is None:
        raise InputError("temporal mode needs motion_tex: a float texture of the frame size whose xy hold, per "
                         "pixel, the previous frame's texture coordinate minus the current one (as engines render "
                         "motion vectors for TAA); set temporal=0 to run without history")
    if not isinstance(motion_tex, moderngl.Texture):
        raise InputError(f"motion_tex must be a moderngl.Texture, got {type(motion_tex).__name__}")
    check_texture(ctx, motion_tex, "motion_tex", limits)
    if motion_tex.dtype not in MOTION_DTYPES or motion_tex.components < 2 or motion_tex.samples:
        raise InputError(f"motion_tex must be a single-sample float texture of 2 to 4 channels (RG16F, RG32F, "
                         f"RGBA32F ...): offsets in texture coordinates need sign and sub-texel precision; got "
                         f"{motion_tex.components} channel(s) of {motion_tex.dtype!r}")
    if tuple(motion_tex.size) != tuple(frame_size):
        raise InputError(f"motion_tex is {motion_tex.size[0]}x{motion_tex.size[1]}, the frame is "
                         f"{frame_size[0]}x{frame_size[1]}; render motion at the frame size")
    return motion_tex.components >= 3
