"""Arrays in, arrays out, through a headless EGL context made on demand."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import model_format as fmt
from . import reference
from .errors import InputError
from .model_file import DEFAULT_STYLE, Model, load

BACKENDS = ("gl", "numpy")
_NETWORK_CACHE_SIZE = 4
_networks: "OrderedDict[tuple, object]" = OrderedDict()


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


def _as_rgba8(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InputError(f"rgb must be an (H, W, 3) or (H, W, 4) image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        img = rgb[..., :3]
    elif np.issubdtype(rgb.dtype, np.floating):
        img = np.round(np.clip(np.nan_to_num(rgb[..., :3]), 0, 1) * 255).astype(np.uint8)
    elif rgb.dtype == np.uint16:
        img = (rgb[..., :3] // 257).astype(np.uint8)
    else:
        raise InputError(f"rgb must be uint8, uint16 or float in [0, 1], got {rgb.dtype}")
    alpha = np.full(img.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([img, alpha], axis=2))


def _normalized_depth(depth, shape, near, far) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.shape != shape:
        raise InputError(f"depth must be (H, W) = {shape} like the image, got {depth.shape}")
    if depth.dtype == np.uint16:
        t = depth.astype(np.float32) / 65535.0
    elif np.issubdtype(depth.dtype, np.floating):
        t = depth.astype(np.float32)
        if near is not None or far is not None:
            if near is None or far is None or not 0 < near < far < np.inf:
                raise InputError(f"near and far must satisfy 0 < near < far < inf, got {near}, {far}")
            t = (t - near) / (far - near)
    else:
        raise InputError(f"depth must be float (normalized, or view distance with near/far) or uint16, "
                         f"got {depth.dtype}")
    return np.clip(np.nan_to_num(t, nan=1.0, posinf=1.0, neginf=0.0), 0, 1)


def stylize(rgb, depth=None, model=DEFAULT_STYLE, *, near=None, far=None, strength: float = 1.0,
            internal_scale: float = 1.0, fp16: bool = False, kernels: str = "auto") -> np.ndarray:
    """Stylize an image: rgb (H, W, 3) uint8 / uint16 / float in [0, 1] (sRGB-encoded) ->
    (H, W, 3) uint8, through the same PostFX pass a renderer uses.

    depth (RGBD models): (H, W) normalized linear depth in [0, 1] (float, or uint16 as the
    dataset's PNGs store it), or view distances with near= and far=. Without depth an RGBD
    model sees a constant far depth.
    """
    from .gl.context import headless_context
    from .postfx_pass import PostFX
    model = load(model)
    rgba = _as_rgba8(rgb)
    h, w = rgba.shape[:2]
    t = np.ones((h, w), np.float32) if depth is None else _normalized_depth(depth, (h, w), near, far)
    ctx = headless_context()
    # Encode t as a standard window-space depth with near 1, far 2 (z = 1 + t), which the
    # pass linearizes back: d = 2 - 2 / z for that projection. 24 bits keep it to ~1e-6.
    window_depth = (2.0 - 2.0 / (1.0 + t)).astype(np.float32)
    color_tex = ctx.texture((w, h), 4, np.flipud(rgba).tobytes())
    depth_tex = ctx.depth_texture((w, h), np.flipud(window_depth).tobytes())
    try:
        with PostFX(ctx, model, strength=strength, internal_scale=internal_scale, fp16=fp16,
                    kernels=kernels) as fx:
            out = fx.apply(color_tex, depth_tex, near=1.0, far=2.0)
            pixels = np.frombuffer(out.read(), np.uint8).reshape(h, w, 4)
    finally:
        color_tex.release()
        depth_tex.release()
    return np.ascontiguousarray(np.flipud(pixels)[..., :3])
