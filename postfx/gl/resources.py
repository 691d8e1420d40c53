"""GL resources the executors share (network.py runs a whole model, tuner.py one
layer at a time): weights as a storage buffer or an image, an activation
tensor's image view and its refresh, and running one planned Dispatch."""
from __future__ import annotations

from collections.abc import Mapping

import moderngl
import numpy as np

from .dispatch import WEIGHT_IMAGE_WIDTH, Dispatch, ceil_div
from .programs import set_uniforms

# After a dispatch its output may be read as a storage buffer or copied into an
# image view (a pixel-unpack read). A view refresh is an ordinary GL command,
# visible to later dispatches without a barrier.
AFTER_DISPATCH = moderngl.SHADER_STORAGE_BARRIER_BIT | moderngl.PIXEL_BUFFER_BARRIER_BIT
# Before the host reads a storage buffer back (Buffer.read): writes by shaders are
# only guaranteed visible to buffer reads after this barrier.
BEFORE_HOST_READ = moderngl.BUFFER_UPDATE_BARRIER_BIT


def weight_buffer(ctx: moderngl.Context, weight: np.ndarray) -> moderngl.Buffer:
    """The packed (OUT_SLICES, K, K, IN_SLICES, 4, 4) weights as a storage buffer of mat4s."""
    return ctx.buffer(weight.astype("<f4").tobytes())


def weight_image(ctx: moderngl.Context, weight: np.ndarray) -> moderngl.Texture:
    """The packed weights as a (WEIGHT_IMAGE_WIDTH, rows) RGBA32F image, the same
    bytes in the same order (shaders/weight_image.glsl), zero-padded to whole rows."""
    texels = weight.astype("<f4").reshape(-1, 4)
    padded = np.zeros((ceil_div(len(texels), WEIGHT_IMAGE_WIDTH) * WEIGHT_IMAGE_WIDTH, 4), "<f4")
    padded[:len(texels)] = texels
    return ctx.texture((WEIGHT_IMAGE_WIDTH, len(padded) // WEIGHT_IMAGE_WIDTH), 4, padded.tobytes(), dtype="f4")


def weight_image_bytes(weight_floats: int) -> int:
    """GPU memory of weight_image() for a weight of this many floats: whole RGBA32F rows."""
    return ceil_div(weight_floats // 4, WEIGHT_IMAGE_WIDTH) * WEIGHT_IMAGE_WIDTH * 16


def image_view(ctx: moderngl.Context, shape: tuple[int, int, int], fp16: bool) -> moderngl.TextureArray:
    """A zeroed (W + 2b, H + 2b, slices) view; refreshes write only the interior,
    so the border stays zero."""
    texel_bytes = 8 if fp16 else 16
    zeros = bytes(shape[0] * shape[1] * shape[2] * texel_bytes)
    return ctx.texture_array(shape, 4, zeros, dtype="f2" if fp16 else "f4")


def refresh_view(view: moderngl.TextureArray, buffer: moderngl.Buffer, size: tuple[int, int], border: int) -> None:
    """Copy a tensor's (slices, H, W) buffer into the interior of its view."""
    w, h = size
    view.write(buffer, viewport=(border, border, 0, w, h, view.layers))


def run_dispatch(d: Dispatch, storage: Mapping, images: Mapping) -> None:
    """Bind what a planned dispatch reads and writes, set its uniforms, run it.
    storage / images map the names in d.bindings / d.images to GL objects."""
    for binding, source in d.bindings.items():
        storage[source].bind_to_storage_buffer(binding)
    for unit, source in d.images.items():
        images[source].bind_to_image(unit, read=True, write=False)
    set_uniforms(d.program, d.shader, d.uniforms)
    d.program.run(*d.groups)
