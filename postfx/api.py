"""Arrays in, arrays out, through a headless EGL context made on demand."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np

from . import model_format as fmt
from . import reference
from .errors import InputError, MissingDepthWarning
from .gl.readback import read_rgb
from .model import Model
from .model_file import load
from .styles import DEFAULT_STYLE

BACKENDS = ("gl", "numpy")
_NETWORK_CACHE_SIZE = 4
_networks: OrderedDict[tuple, object] = OrderedDict()


def _gl_network(model: Model, kernels: str, fp16: bool):
    """A GLNetwork in the headless context, reused across calls (LRU of a few)."""
    from .gl.context import headless_context
    from .gl.network import GLNetwork
    ctx = headless_context()
    key = (id(ctx), id(model), kernels, fp16)
    entry = _networks.get(key)
    if entry is not None and entry[0] is model and not entry[1].released:
        _networks.move_to_end(key)
        return entry[1]
    network = GLNetwork(ctx, model, kernels=kernels, fp16=fp16)
    _networks[key] = (model, network)
    while len(_networks) > _NETWORK_CACHE_SIZE:
        _, (_, old) = _networks.popitem(last=False)
        old.release()
    return network


def run(model, x, backend: str = "gl", *, kernels: str = "auto", fp16: bool = False,
        return_all: bool = False):
    """Raw network: x (H, W, C_in) float32 -> (H', W', C_out) float32, with the
    model's pad-and-crop policy. backend "numpy" runs the reference implementation.
    return_all=True also returns every intermediate tensor as (lanes, H, W) at run size."""
    model = load(model)
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    x = reference.check_input(model, x)
    h, w = x.shape[:2]
    padded = reference.to_lanes(reference.pad_to_run_size(model, x))
    if backend == "numpy":
        values = reference.run_layers(model, padded)
    else:
        network = _gl_network(model, kernels, fp16)
        network.resize(*padded.shape[1:])
        network.write_tensor(fmt.INPUT_TENSOR, padded)
        network.run()
        names = list(model.graph.tensors) if return_all else [model.graph.output]
        values = {name: network.read_tensor(name) for name in names}
    oh, ow = fmt.output_size(model.graph, h, w)
    out = np.ascontiguousarray(np.transpose(values[model.graph.output][:model.output_channels, :oh, :ow], (1, 2, 0)))
    return (out, values) if return_all else out


# rgb dtypes and the value range each is read in (postfx.stylize): what lies outside is
# refused, not clipped into a white or black picture.
RGB_RANGES = {"uint8": (0, 255), "uint16": (0, 65535), "float": (0.0, 1.0)}
FLOAT_SLACK = 0.5           # float rgb in [-0.5, 1.5] is clipped to [0, 1]; beyond that it is refused


def as_rgba8(rgb, rgb_range=None) -> np.ndarray:
    """(H, W, 3|4) uint8 / uint16 / float -> (H, W, 4) uint8 for a texture. Values are read
    in their dtype's range (RGB_RANGES) unless rgb_range=(lo, hi) says where 0 and 1 are;
    float NaN reads as 0. Values far outside the range are refused with what they look like."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InputError(f"rgb must be an (H, W, 3) or (H, W, 4) image, got shape {rgb.shape}")
    kind = "uint8" if rgb.dtype == np.uint8 else "uint16" if rgb.dtype == np.uint16 else \
        "float" if np.issubdtype(rgb.dtype, np.floating) else None
    if kind is None:
        raise InputError(f"rgb must be uint8 (0..255), uint16 (0..65535) or float (0..1), got {rgb.dtype}")
    values = rgb[..., :3]
    if rgb_range is not None:
        lo, hi = _checked_range(rgb_range)
        t = (np.nan_to_num(values.astype(np.float64)) - lo) / (hi - lo)
        return _rgba(np.round(np.clip(t, 0, 1) * 255).astype(np.uint8))
    if kind == "uint8":
        return _rgba(values)
    if kind == "uint16":
        top = int(values.max())
        if 0 < top <= 255:
            raise InputError(f"rgb is uint16 but its values are all 0..{top}: read as 0..65535 it would be almost "
                             "black. An 8-bit picture? Pass rgb.astype(np.uint8), or rgb_range=(0, 255)")
        return _rgba(((values.astype(np.uint32) + 128) // 257).astype(np.uint8))
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high > 1.0 + FLOAT_SLACK:
        raise InputError(f"rgb is float with values up to {high:.4g}: float rgb is read in 0..1. Values in 0..255? "
                         "Divide by 255, or pass rgb_range=(0, 255)")
    if low < -FLOAT_SLACK:
        raise InputError(f"rgb is float with values down to {low:.4g}: float rgb is read in 0..1; pass rgb_range= "
                         "with the range it is in (e.g. (-1, 1))")
    return _rgba(np.round(np.clip(np.nan_to_num(values), 0, 1) * 255).astype(np.uint8))


def _checked_range(value_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise InputError(f"rgb_range must be (low, high), got {value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"rgb_range must be finite with low < high, got {value_range!r}")
    return lo, hi


def _rgba(rgb8: np.ndarray) -> np.ndarray:
    alpha = np.full(rgb8.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb8, alpha], axis=2))


# Normalized depth t reaches the pass as the window-space depth of a projection with near
# 1 and far 2 (z = 1 + t), which the pass linearizes back to t; 24 bits keep it to ~1e-6.
WINDOW_NEAR, WINDOW_FAR = 1.0, 2.0


def window_depth(t: np.ndarray) -> np.ndarray:
    """Normalized depth t in [0, 1] -> the window depth d = 2 - 2 / z of that projection."""
    return (2.0 - 2.0 / (1.0 + t)).astype(np.float32)


def normalized_depth(depth, shape, near, far) -> np.ndarray:
    """depth as float32 (H, W) in [0, 1]: uint16 is normalized depth x 65535; float is
    normalized depth (values within [-0.5, 1.5] clipped), or view distances with near= and far=."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.shape != shape:
        raise InputError(f"depth must be (H, W) = {shape} like the image, got {depth.shape}")
    if near is not None or far is not None:
        if near is None or far is None or not 0 < near < far < np.inf:
            raise InputError(f"near and far must satisfy 0 < near < far < inf, got {near}, {far}")
    if depth.dtype == np.uint16:
        if near is not None:
            raise InputError("near= / far= convert float view distances; uint16 depth is already normalized "
                             "(x 65535): drop near and far")
        t = depth.astype(np.float32) / 65535.0
    elif np.issubdtype(depth.dtype, np.floating):
        t = depth.astype(np.float32)
        if near is not None:
            t = (t - near) / (far - near)
        else:
            finite = t[np.isfinite(t)]
            if finite.size and (finite.max() > 1.0 + FLOAT_SLACK or finite.min() < -FLOAT_SLACK):
                raise InputError(f"float depth without near= / far= is normalized depth in [0, 1], but this one "
                                 f"holds {finite.min():.4g} .. {finite.max():.4g}: view distances? Pass near= and "
                                 "far= (the camera's planes)")
    else:
        raise InputError(f"depth must be float (normalized, or view distance with near/far) or uint16, "
                         f"got {depth.dtype}")
    return np.clip(np.nan_to_num(t, nan=1.0, posinf=1.0, neginf=0.0), 0, 1)


class Stylizer:
    """postfx.stylize's pass, kept for several pictures (the CLI checks a picture's size
    from its header with check_size() before decoding it). Use as a context manager.
    tuning_budget_s: seconds kernels="auto" may spend timing kernels at a new size; 0 by
    default (cached or static kernels), since timing rarely pays for a few pictures: run
    `postfx tune` once, or give a budget when stylizing many of one size."""

    def __init__(self, model=DEFAULT_STYLE, *, strength: float = 1.0, internal_scale: float = 1.0,
                 fp16: bool = False, kernels: str = "auto", tuning_budget_s: float = 0.0):
        from .gl.context import headless_context
        from .postfx_pass import PostFX
        self.model = load(model)
        self.ctx = headless_context()
        self.fx = PostFX(self.ctx, self.model, strength=strength, internal_scale=internal_scale, fp16=fp16,
                         kernels=kernels, tuning_budget_s=tuning_budget_s if kernels == "auto" else None)

    def check_size(self, width: int, height: int) -> None:
        """Raise FrameTooLarge (naming the limit) for a picture this pass cannot run, before
        any texture is made: GL_MAX_TEXTURE_SIZE, the storage block limit, the memory budget."""
        self.fx.memory_estimate(width, height)

    def __call__(self, rgb, depth=None, *, near=None, far=None, rgb_range=None) -> np.ndarray:
        rgba = as_rgba8(rgb, rgb_range)
        h, w = rgba.shape[:2]
        if depth is None and (near is not None or far is not None):
            raise InputError("near= / far= were given without depth: they convert a depth array's view "
                             "distances; pass depth, or drop them")
        if depth is None and self.model.uses_depth:
            warnings.warn(f"model {self.model.name!r} reads depth and was given none: it sees the far plane "
                          "everywhere (maximum fog for the depth styles). Pass depth= when you have it",
                          MissingDepthWarning, stacklevel=3)
        t = np.ones((h, w), np.float32) if depth is None else normalized_depth(depth, (h, w), near, far)
        self.check_size(w, h)                   # before any texture: the real limit, not a GL error
        ctx = self.ctx
        color_tex = ctx.texture((w, h), 4, np.flipud(rgba).tobytes())
        try:
            depth_tex = ctx.depth_texture((w, h), np.flipud(window_depth(t)).tobytes())
        except BaseException:
            color_tex.release()
            raise
        try:
            return read_rgb(self.fx.apply(color_tex, depth_tex, near=WINDOW_NEAR, far=WINDOW_FAR))
        finally:
            color_tex.release()
            depth_tex.release()

    def release(self) -> None:
        self.fx.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def stylize(rgb, depth=None, model=DEFAULT_STYLE, *, near=None, far=None, strength: float = 1.0,
            internal_scale: float = 1.0, fp16: bool = False, kernels: str = "auto", rgb_range=None,
            tuning_budget_s: float = 0.0) -> np.ndarray:
    """Stylize an image: rgb (H, W, 3) -> (H, W, 3) uint8, through the same PostFX pass a
    renderer uses (a headless EGL context).

    rgb: uint8 (0..255), uint16 (0..65535) or float (0..1), sRGB-encoded; rgb_range=(lo, hi)
    reads it in another range (e.g. (0, 255) for float 0..255). Values far outside the range
    are refused, not clipped (a float picture up to 255 would otherwise come out white).
    depth (RGBD models): (H, W) normalized linear depth in [0, 1] (float, or uint16 x 65535
    as the dataset's PNGs store it), or float view distances with near= and far=. Without
    depth an RGBD model sees a constant far depth; near / far without depth are refused.
    tuning_budget_s: see Stylizer (0: no kernel timing for a one-off picture).
    """
    with Stylizer(model, strength=strength, internal_scale=internal_scale, fp16=fp16, kernels=kernels,
                  tuning_budget_s=tuning_budget_s) as run:
        return run(rgb, depth, near=near, far=far, rgb_range=rgb_range)
