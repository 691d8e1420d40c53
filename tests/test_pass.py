"""The PostFX pass in a real (headless EGL) context: orientation, colour and
depth conventions, caller state, resizes, lifetime (reliability C1, C5, C9, C10, C11,
C12, C16)."""
import ctypes
import os
import subprocess
import sys
import textwrap

import moderngl
import numpy as np
import pytest
from gl_objects import difference, live_gl_objects

import postfx
from postfx import errors
from postfx.exporters.builder import build_model
from postfx.model_format import Layer
from postfx.postfx_pass import PostFX
from postfx.styles import DEFAULT_STYLE
from postfx.testing.parity import assert_close, assert_image_close


def small_unet(input_channels=4, seed=0):
    """Depth-2 U-Net with random weights, built without torch."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)
    layers = [
        Layer("enc1", "conv2d", ("input",), "leaky_relu", 0.2, 8, 4, 2, 1),
        Layer("enc2", "conv2d", ("enc1",), "leaky_relu", 0.2, 16, 4, 2, 1),
        Layer("dec2", "conv_transpose2d", ("enc2",), "relu", 0.0, 8, 4, 2, 1),
        Layer("dec1", "conv_transpose2d", ("dec2", "enc1"), "tanh", 0.0, 3, 4, 2, 1),
    ]
    weights = {"enc1": (w(8, input_channels, 4, 4), w(8)), "enc2": (w(16, 8, 4, 4), w(16)),
               "dec2": (w(16, 8, 4, 4), w(8)), "dec1": (w(16, 3, 4, 4), w(3))}
    return build_model(layers, weights, input_channels=input_channels, output="dec1", name="test-unet")


@pytest.fixture(scope="module")
def model():
    return small_unet()


def asymmetric_image(h, w):
    """A gradient that differs along every axis: a flipped or transposed frame shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + 2 * y) % 256], -1).astype(np.uint8)


def expected_stylized(model, rgb, depth):
    x = np.concatenate([rgb / 255.0, depth[..., None]], 2).astype(np.float32) * 2 - 1
    if not model.uses_depth:
        x = x[..., :3]
    y = postfx.run(model, x, backend="numpy")
    return np.round(np.clip((y + 1) / 2, 0, 1) * 255)


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (1, 1), (5, 3)])
def test_stylize_matches_reference_and_keeps_orientation(model, size):
    h, w = size
    rgb = asymmetric_image(h, w)
    depth = np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)
    out = postfx.stylize(rgb, depth, model=model)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert np.abs(out - expected_stylized(model, rgb, depth)).max() <= 1


def test_rgb_only_model_ignores_depth():
    model = small_unet(input_channels=3, seed=3)
    rgb = asymmetric_image(20, 30)
    a = postfx.stylize(rgb, None, model=model)
    b = postfx.stylize(rgb, np.zeros((20, 30), np.float32), model=model)
    assert np.array_equal(a, b)
    assert np.abs(a - expected_stylized(model, rgb, np.zeros((20, 30), np.float32))).max() <= 1


def test_strength_zero_returns_the_frame_and_internal_scale_keeps_size(model):
    rgb = asymmetric_image(40, 60)
    assert np.array_equal(postfx.stylize(rgb, model=model, strength=0.0), rgb)
    half = postfx.stylize(rgb, model=model, internal_scale=0.5)
    assert half.shape == rgb.shape and half.std() > 0


def _gray_textures(ctx):
    """Mid-grey in the three colour formats (C11)."""
    size = (8, 8)
    rgba8 = ctx.texture(size, 4, bytes([128, 128, 128, 255]) * 64)
    srgb = ctx.texture(size, 4, bytes([128, 128, 128, 255]) * 64, internal_format=0x8C43)  # SRGB8_ALPHA8
    linear = (128 / 255 + 0.055) / 1.055
    linear = linear ** 2.4                                                     # what sRGB 128 means
    half = ctx.texture(size, 4, np.full((64, 4), [linear] * 3 + [1.0], np.float16).tobytes(), dtype="f2")
    return {"RGBA8": rgba8, "SRGB8_ALPHA8": srgb, "RGBA16F": half}


def test_C11_mid_grey_stays_mid_grey_in_every_colour_format(gl_ctx):
    model = small_unet(input_channels=3)
    with PostFX(gl_ctx, model) as fx:
        for name, tex in _gray_textures(gl_ctx).items():
            out = fx.apply(tex)
            network_input = fx._network.read_tensor("input")[:3, :8, :8]
            assert_close(network_input, np.full_like(network_input, 128 / 255 * 2 - 1), what=f"C11 {name}",
                         tol=(2e-3, 0))
            assert out.size == (8, 8)
            tex.release()


def _gl():
    return ctypes.CDLL("libOpenGL.so.0")


def make_depth_texture(ctx, window_depth: np.ndarray, fmt: str):
    """A depth texture in D16 / D24 / D32F (moderngl makes D24 only; the others through GL directly)."""
    h, w = window_depth.shape
    data = np.ascontiguousarray(window_depth, np.float32)
    if fmt == "D24":
        return ctx.depth_texture((w, h), data.tobytes())
    internal = {"D16": 0x81A5, "D32F": 0x8CAC}[fmt]
    gl, tex = _gl(), ctypes.c_uint(0)
    gl.glGenTextures(1, ctypes.byref(tex))
    gl.glBindTexture(0x0DE1, tex)
    gl.glTexImage2D(0x0DE1, 0, internal, w, h, 0, 0x1902, 0x1406, data.ctypes.data_as(ctypes.c_void_p))
    gl.glBindTexture(0x0DE1, 0)
    return ctx.external_texture(tex.value, (w, h), 1, 0, "f4")


def window_depth_of(z, near, far, reversed_z):
    if reversed_z:
        return near * (far - z) / (z * (far - near))
    ndc = (far + near) / (far - near) - 2 * far * near / ((far - near) * z)
    return (ndc + 1) / 2


@pytest.mark.parametrize("depth_format", ["D16", "D24", "D32F"])
@pytest.mark.parametrize("reversed_z", [False, True])
def test_C12_depth_linearization_matches_the_analytic_value(gl_ctx, model, depth_format, reversed_z):
    near, far, h, w = 0.5, 100.0, 16, 16
    z = np.geomspace(near, far, h * w).reshape(h, w).astype(np.float64)
    depth_tex = make_depth_texture(gl_ctx, window_depth_of(z, near, far, reversed_z).astype(np.float32), depth_format)
    color = gl_ctx.texture((w, h), 4, bytes(4 * w * h))
    try:
        with PostFX(gl_ctx, model) as fx:
            fx.apply(color, depth_tex, near=near, far=far, reversed_z=reversed_z)
            seen = np.flipud(fx._network.read_tensor("input")[3, :h, :w])     # buffer rows are top-down
        expected = np.clip((z - near) / (far - near), 0, 1) * 2 - 1
        # D16 quantizes window depth to 1/65535: far away that is a coarse step in z.
        tol = {"D16": 0.05, "D24": 2e-3, "D32F": 1e-4}[depth_format] if not reversed_z else \
              {"D16": 0.05, "D24": 2e-3, "D32F": 1e-4}[depth_format]
        assert_close(seen, expected, what=f"C12 {depth_format} reversed_z={reversed_z}", tol=(tol, 0))
    finally:
        color.release()
        depth_tex.release()
        if depth_format != "D24":             # ours, made through GL: external_texture does not own it
            _gl().glDeleteTextures(1, ctypes.byref(ctypes.c_uint(depth_tex.glo)))


@pytest.mark.parametrize("kwargs, message", [
    ({"near": 0.0, "far": 10.0}, "near"),
    ({"near": -1.0, "far": 10.0}, "near"),
    ({"near": 1.0, "far": float("inf")}, "finite far"),
    ({"near": 1.0, "far": float("inf"), "reversed_z": True}, "finite far"),
    ({"near": 5.0, "far": 1.0}, "far"),
    ({"near": None, "far": 10.0}, "near= and far="),
])
def test_C12_bad_depth_parameters_are_named_errors(gl_ctx, model, kwargs, message):
    color = gl_ctx.texture((8, 8), 4)
    depth = gl_ctx.depth_texture((8, 8))
    try:
        with PostFX(gl_ctx, model) as fx:
            with pytest.raises(errors.InputError, match=message):
                fx.apply(color, depth, **kwargs)
    finally:
        color.release()
        depth.release()


def test_C12_depth_colour_size_mismatch(gl_ctx, model):
    color, depth = gl_ctx.texture((8, 8), 4), gl_ctx.depth_texture((8, 6))
    with PostFX(gl_ctx, model) as fx, pytest.raises(errors.InputError, match="8x6"):
        fx.apply(color, depth, near=1, far=10)
    color.release()
    depth.release()


def test_C9_caller_state_does_not_change_the_output(gl_ctx, model):
    h, w = 24, 40
    rgba = np.concatenate([asymmetric_image(h, w), np.full((h, w, 1), 255, np.uint8)], 2)
    color = gl_ctx.texture((w, h), 4, rgba.tobytes())
    depth = gl_ctx.depth_texture((w, h), np.full((h, w), 0.7, np.float32).tobytes())
    with PostFX(gl_ctx, model) as fx:
        clean = fx.apply(color, depth, near=1, far=50).read()
        # Clutter: blending, scissor, another framebuffer bound, textures / buffers on the units we use.
        junk_tex = gl_ctx.texture((4, 4), 4)
        junk_buf = gl_ctx.buffer(reserve=64)
        junk_fbo = gl_ctx.simple_framebuffer((4, 4))
        junk_fbo.use()
        gl_ctx.enable(moderngl.BLEND | moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        gl_ctx.scissor = (0, 0, 2, 2)
        for unit in range(4):
            junk_tex.use(unit)
            junk_buf.bind_to_storage_buffer(unit)
        cluttered = fx.apply(color, depth, near=1, far=50).read()
        target = gl_ctx.simple_framebuffer((w, h))
        assert fx.apply(color, depth, near=1, far=50, target=target) is None
        drawn = target.read(components=4)
        assert gl_ctx.error == "GL_NO_ERROR"
        assert gl_ctx.scissor == (0, 0, 2, 2), "the caller's scissor box was not restored"
        gl_ctx.disable(moderngl.BLEND | moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        gl_ctx.scissor = None
        # Framebuffer 0, not a released one: moderngl rebinds the framebuffer it last
        # used after creating the next, and a deleted name there is GL_INVALID_OPERATION.
        gl_ctx.detect_framebuffer(0).use()
        for fbo in (junk_fbo, target):        # a simple_framebuffer's renderbuffers are not freed with it
            for attachment in (*fbo.color_attachments, fbo.depth_attachment):
                attachment.release()
        for obj in (junk_tex, junk_buf, junk_fbo, target):
            obj.release()
    assert clean == cluttered == drawn
    color.release()
    depth.release()


def test_C9_the_gl_scissor_state_is_left_exactly_as_it_was(gl_ctx, model):
    """Read from GL itself, not from moderngl's record: a blit into a target must leave a
    disabled scissor test disabled (restoring moderngl's recorded box would enable it,
    cropping the caller's later clears and draws), and an enabled one with its box."""
    from postfx.gl.query import scissor_state
    color, depth = gl_ctx.texture((16, 8), 4), gl_ctx.depth_texture((16, 8))
    target = gl_ctx.texture((16, 8), 4)
    try:
        with PostFX(gl_ctx, model) as fx:
            gl_ctx.scissor = None
            before = scissor_state(gl_ctx)
            assert not before[0]
            for into in (target, None):
                fx.apply(color, depth, near=1, far=10, target=into)
                assert scissor_state(gl_ctx) == before
            gl_ctx.scissor = (1, 2, 3, 4)
            fx.apply(color, depth, near=1, far=10, target=target)
            assert scissor_state(gl_ctx) == (True, (1, 2, 3, 4))
    finally:
        gl_ctx.scissor = None
        for texture in (color, depth, target):
            texture.release()


def test_C5_zero_size_frame_is_a_clear_error_before_any_gl_call(gl_ctx, model):
    with PostFX(gl_ctx, model) as fx:
        with pytest.raises(errors.FrameTooSmall, match="0x0"):
            fx.resize(0, 0)
    with pytest.raises(errors.FrameTooSmall):
        postfx.run(model, np.zeros((0, 5, 4), np.float32), backend="numpy")


def test_C16_release_twice_use_after_release_and_exception_inside_with(gl_ctx, model):
    fx = PostFX(gl_ctx, model)
    color = gl_ctx.texture((8, 8), 4)
    depth = gl_ctx.depth_texture((8, 8))
    fx.apply(color, depth, near=1, far=10)
    fx.release()
    fx.release()
    with pytest.raises(errors.PassReleased):
        fx.apply(color, depth, near=1, far=10)
    with pytest.raises(RuntimeError, match="boom"):
        with PostFX(gl_ctx, model) as fx2:
            fx2.apply(color, depth, near=1, far=10)
            raise RuntimeError("boom")
    assert fx2._released
    color.release()
    depth.release()


def test_bad_inputs_are_typed_errors(gl_ctx, model):
    rgb_tex = gl_ctx.texture((8, 8), 3)
    with PostFX(gl_ctx, model) as fx:
        with pytest.raises(errors.InputError, match="RGBA"):
            fx.apply(rgb_tex)
        with pytest.raises(errors.InputError, match="moderngl.Texture"):
            fx.apply(np.zeros((8, 8, 4)))
        with pytest.raises(errors.InputError, match="strength"):
            fx.strength = 2
        with pytest.raises(errors.InputError, match="internal_scale"):
            fx.internal_scale = 0
    rgb_tex.release()
    with pytest.raises(errors.InputError, match="rgb must be"):
        postfx.stylize(np.zeros((4, 4)), model=model)


def test_C1_context_below_gl43_names_the_renderer_and_requirement(tmp_path):
    path = tmp_path / "m.safetensors"
    postfx.save_model(small_unet(), path)
    script = textwrap.dedent(f"""
        import moderngl, postfx
        from postfx.errors import GLVersionError
        ctx = moderngl.create_context(standalone=True, backend="egl")
        assert ctx.version_code < 430, ctx.version_code
        try:
            postfx.PostFX(ctx, {str(path)!r})
        except GLVersionError as e:
            print("GLVersionError:", e)
    """)
    env = dict(os.environ, MESA_GL_VERSION_OVERRIDE="3.3", MESA_GLSL_VERSION_OVERRIDE="330")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "needs OpenGL 4.3" in result.stdout and "llvmpipe" in result.stdout and "3.3" in result.stdout


def test_live_gl_object_counter_sees_each_object_come_and_go(gl_ctx):
    """The counter C10 relies on: one more of each kind while it lives, back after release."""
    before = live_gl_objects()
    texture = gl_ctx.texture((4, 4), 4)
    buffer = gl_ctx.buffer(reserve=16)
    sampler = gl_ctx.sampler()
    framebuffer = gl_ctx.framebuffer(color_attachments=[texture])
    program = gl_ctx.compute_shader("#version 430\nlayout(local_size_x = 1) in;\nvoid main() {}\n")
    created = [texture, buffer, sampler, framebuffer, program]
    try:
        assert difference(live_gl_objects(), before) == {"texture": 1, "buffer": 1, "sampler": 1,
                                                         "framebuffer": 1, "program": 1}
    finally:
        for obj in reversed(created):
            obj.release()
    assert difference(live_gl_objects(), before) == {}


def _frame_textures(ctx, h, w):
    """An asymmetric colour frame and a depth ramp as RGBA8 + D24 textures (GL rows
    bottom-up), and what the pass should make of them. Depth is encoded for near 1,
    far 2 (window depth 2 - 2 / z), which the pass linearizes back to z - 1."""
    rgb = asymmetric_image(h, w)
    y, x = np.mgrid[0:h, 0:w]
    linear = ((3 * x + 7 * y) % 101 / 100).astype(np.float32)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], 2)
    window_depth = (2.0 - 2.0 / (1.0 + linear)).astype(np.float32)
    color = ctx.texture((w, h), 4, np.flipud(rgba).tobytes() if h * w else None)
    depth = ctx.depth_texture((w, h), np.flipud(window_depth).tobytes() if h * w else None)
    return color, depth, rgb, linear


C10_SIZES = [(640, 480), (641, 479), (1, 1), (0, 0), (1920, 1080), (640, 480)]     # (W, H)


def test_C10_resize_sequence_gives_correct_frames_and_no_leaked_gl_objects(gl_ctx):
    model = postfx.load(DEFAULT_STYLE)          # the bundled style the demo runs
    expected_at = {}
    before_pass = live_gl_objects()
    fx = PostFX(gl_ctx, model)
    baseline = None
    try:
        for w, h in C10_SIZES:
            color, depth, rgb, linear = _frame_textures(gl_ctx, h, w)
            try:
                if w * h == 0:
                    # C5: refused before the pass touches GL, its buffers for the last size kept.
                    kept = (fx.output.glo, fx._network.run_size)
                    with pytest.raises(errors.FrameTooSmall, match="0x0"):
                        fx.apply(color, depth, near=1.0, far=2.0)
                    assert (fx.output.glo, fx._network.run_size) == kept
                    continue
                out = fx.apply(color, depth, near=1.0, far=2.0)
                assert out.size == (w, h)
                frame = np.flipud(np.frombuffer(out.read(), np.uint8).reshape(h, w, 4))[..., :3]
                if (w, h) not in expected_at:
                    expected_at[w, h] = expected_stylized(model, rgb, linear)
                # One 8-bit rounding step, as the other pass tests allow (1.01: float slack).
                assert_image_close(frame, expected_at[w, h], what=f"C10 frame {w}x{h}", max_err_8bit=1.01,
                                   value_range=(0, 255))
            finally:
                color.release()
                depth.release()
            if baseline is None:
                baseline = live_gl_objects()
        assert gl_ctx.error == "GL_NO_ERROR"
        leaked = difference(live_gl_objects(), baseline)
        assert leaked == {}, f"after {C10_SIZES}, live GL objects differ from the first 640x480 frame: {leaked}"
    finally:
        fx.release()
    leaked = difference(live_gl_objects(), before_pass)
    assert leaked == {}, f"after release the pass left GL objects behind: {leaked}"


def _bilinear_upsample(image, frame_h, frame_w):
    """present.comp's upsample of an (h, w, C) top-down image to the frame size (pixel centres, edge clamp)."""
    h, w = image.shape[:2]

    def taps(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), (src - i0)
    y0, y1, fy = taps(frame_h, h)
    x0, x1, fx = taps(frame_w, w)
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


@pytest.mark.parametrize("scale, fp16", [(0.5, False), (0.75, True)])
def test_internal_scale_output_is_the_bilinear_upsample_blended_by_strength(gl_ctx, model, scale, fp16):
    """What present.comp makes of the network's output at an internal scale below 1."""
    h, w, strength = 45, 62, 0.7
    color, depth, rgb, _ = _frame_textures(gl_ctx, h, w)
    try:
        with PostFX(gl_ctx, model, internal_scale=scale, strength=strength, fp16=fp16) as fx:
            out = fx.apply(color, depth, near=1.0, far=2.0)
            frame = np.flipud(np.frombuffer(out.read(), np.uint8).reshape(h, w, 4))[..., :3].astype(float)
            sw, sh = fx._scaled_size
            network = fx._network.read_tensor(model.graph.output)[:3, :sh, :sw].transpose(1, 2, 0)
    finally:
        color.release()
        depth.release()
    assert (sw, sh) == (round(w * scale), round(h * scale))
    stylized = np.clip(_bilinear_upsample((network + 1) / 2, h, w), 0, 1)
    expected = np.clip(rgb / 255 * (1 - strength) + stylized * strength, 0, 1) * 255
    assert np.abs(frame - expected).max() <= 1.0, f"worst {np.abs(frame - expected).max():.2f} 8-bit steps"
