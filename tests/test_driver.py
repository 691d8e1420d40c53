"""What conforming GPU drivers enforce and llvmpipe may not: a caller's colour
texture whose own filters ask for mipmaps it lacks (incomplete: reads as zero)
still reads correctly, a target texture in the same state is still written;
the headless context goes on a chosen EGL device, tells when it landed on a
CPU renderer beside a GPU, and refuses with require_gpu=True."""
from __future__ import annotations

import warnings

import moderngl
import numpy as np
import pytest

import postfx
from postfx.errors import GLError, InputError, SoftwareRenderer, SoftwareRendererWarning
from postfx.gl import context
from postfx.gl.egl_devices import EGLDevice, egl_devices

H, W = 24, 40
MIPMAP_FILTERS = [(moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR), (moderngl.NEAREST_MIPMAP_NEAREST,
                                                                     moderngl.NEAREST)]


def frame_textures(ctx, dtype="f1"):
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    data = rgba if dtype == "f1" else (rgba / 255.0).astype(np.float16 if dtype == "f2" else np.float32)
    color = ctx.texture((W, H), 4, data.tobytes(), dtype=dtype)
    depth = ctx.depth_texture((W, H), rng.uniform(0.2, 0.9, (H, W)).astype(np.float32).tobytes())
    return color, depth


def stylized(fx, color, depth) -> np.ndarray:
    out = fx.apply(color, depth, near=0.1, far=100.0)
    return np.frombuffer(out.read(), np.uint8).reshape(H, W, 4)


@pytest.mark.parametrize("dtype", ["f1", "f2", "f4"])
@pytest.mark.parametrize("filters", MIPMAP_FILTERS, ids=["linear_mipmap_linear", "nearest_mipmap_nearest"])
def test_C18_a_colour_texture_without_its_mipmaps_reads_as_its_texels(gl_ctx, filters, dtype):
    """The min filter asks for mipmaps the texture does not have: incomplete, and an
    incomplete texture reads as zero (llvmpipe included, for texelFetch). The pass's
    NEAREST sampler object makes it complete for its reads."""
    color, depth = frame_textures(gl_ctx, dtype)
    try:
        with postfx.PostFX(gl_ctx, "ink", kernels="optimized") as fx:
            plain = stylized(fx, color, depth)
            color.filter = filters
            incomplete = stylized(fx, color, depth)
            color.build_mipmaps()           # moderngl sets a mipmap filter of its own here
            color.filter = filters
            with_mipmaps = stylized(fx, color, depth)
        assert color.filter == filters, "the caller's texture state is left as it was"
        np.testing.assert_array_equal(incomplete, plain)
        np.testing.assert_array_equal(with_mipmaps, plain)
        assert plain[..., :3].std() > 5, "not a blank frame"
    finally:
        color.release()
        depth.release()


def test_C18_a_target_texture_without_its_mipmaps_is_written(gl_ctx):
    color, depth = frame_textures(gl_ctx)
    target = gl_ctx.texture((W, H), 4)
    target.filter = MIPMAP_FILTERS[0]
    try:
        with postfx.PostFX(gl_ctx, "ink", kernels="optimized") as fx:
            want = stylized(fx, color, depth)
            assert fx.apply(color, depth, near=0.1, far=100.0, target=target) is None
        np.testing.assert_array_equal(np.frombuffer(target.read(), np.uint8).reshape(H, W, 4), want)
    finally:
        for texture in (color, depth, target):
            texture.release()


# --- the headless context's device -------------------------------------------------------

def test_C20_the_headless_context_goes_on_the_device_asked_for(gl_ctx, monkeypatch):
    devices = egl_devices()
    assert devices, "Mesa's EGL lists at least its software device"
    assert context.headless_context(0).info["GL_RENDERER"] == gl_ctx.info["GL_RENDERER"]
    monkeypatch.setenv("POSTFX_EGL_DEVICE", "0")
    assert context.headless_context() is context.headless_context(0)
    with pytest.raises(GLError, match=rf"device {len(devices)}.*EGL devices: EGL device 0"):
        context.headless_context(len(devices))
    for bad in ("gpu", "-1"):
        monkeypatch.setenv("POSTFX_EGL_DEVICE", bad)
        with pytest.raises(InputError, match="POSTFX_EGL_DEVICE|device_index"):
            context.headless_context()
    monkeypatch.delenv("POSTFX_EGL_DEVICE")
    with pytest.raises(InputError, match="device_index"):
        context.headless_context(True)
    context.headless_context()          # the suite's context current again


def test_C20_require_gpu_refuses_a_cpu_renderer(gl_ctx):
    assert context.is_software(gl_ctx), "this suite runs on llvmpipe"
    with pytest.raises(SoftwareRenderer, match="require_gpu=True"):
        context.headless_context(require_gpu=True)


def test_C20_a_cpu_renderer_beside_a_listed_gpu_warns(gl_ctx, monkeypatch):
    """With a hardware device in the list (as EGL lists an NVIDIA GPU), a context that
    still landed on llvmpipe warns once and names the device to pick."""
    gpu = EGLDevice(1, False, "/dev/dri/renderD129", "EGL_EXT_device_drm")
    monkeypatch.setattr(context, "egl_devices", lambda: [*egl_devices(), gpu])
    monkeypatch.setattr(context, "_warned_software", type(context._warned_software)())
    with pytest.warns(SoftwareRendererWarning, match="renderD129"):
        context.headless_context()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SoftwareRendererWarning)
        context.headless_context()          # once per context
    with pytest.raises(SoftwareRenderer, match="renderD129"):
        context.headless_context(require_gpu=True)
