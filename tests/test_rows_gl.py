"""The pass against GL faults and hostile frames (reliability C6, C7, C8, C13, C14, C15):
frames beyond the device or a memory budget, an allocation failing at every point of a
build and of a resize, a released context, NaN / Inf pixels, several contexts and passes
interleaved, and a soak.

With POSTFX_PROMISES_OUT=DIR the C7 and C15 tests write their figures to DIR/*.json
(scripts/promises.sh); POSTFX_SOAK_FRAMES sets the soak's length (default: the short
variant; the matrix's full run is 10000)."""
from __future__ import annotations

import ctypes
import os
import re
import time
from contextlib import contextmanager

import moderngl
import numpy as np
import pytest
from gl_objects import difference, live_gl_objects
from promises import record_promise
from test_pass import _frame_textures, expected_stylized, make_depth_texture, small_unet

from postfx import errors
from postfx.postfx_pass import PostFX


@pytest.fixture(scope="module")
def model():
    return small_unet()


def frame_of(texture) -> np.ndarray:
    """An RGBA8 texture as (H, W, 4) uint8, rows top-down."""
    w, h = texture.size
    return np.flipud(np.frombuffer(texture.read(), np.uint8).reshape(h, w, 4))


@contextmanager
def current(ctx: moderngl.Context, then: moderngl.Context):
    """ctx current inside the block, `then` (the suite's context) current after it: GL
    commands go to the current context, and glcontext's EGL exit leaves none current."""
    ctx.__enter__()
    try:
        yield ctx
    finally:
        then.__enter__()


def held_bytes(fx: PostFX) -> int:
    """GPU memory the pass's live objects hold, from the objects themselves."""
    texel_bytes = {"f1": 1, "f2": 2, "f4": 4}
    net = fx._network
    total = sum(buffer.size for buffer in (*net.buffers.values(), *net.weights.values()))
    for texture in (*net.weight_images.values(), *net.views.values(), fx.output):
        total += int(np.prod(texture.size)) * texture.components * texel_bytes[texture.dtype]
    return total


# --- C6 frames beyond the device or the budget ---------------------------------------------

def test_C6_frame_beyond_a_device_limit_is_refused_before_allocating(gl_ctx, model):
    limit = gl_ctx.info["GL_MAX_TEXTURE_SIZE"]
    color, depth, _, _ = _frame_textures(gl_ctx, 24, 32)
    try:
        with PostFX(gl_ctx, model) as fx:
            before_bits = frame_of(fx.apply(color, depth, near=1.0, far=2.0))
            kept = (fx.output.glo, fx._network.run_size)
            before = live_gl_objects()
            for w, h in [(limit + 1, 8), (8, limit + 1)]:
                with pytest.raises(errors.FrameTooLarge, match=rf"{w}x{h} exceeds GL_MAX_TEXTURE_SIZE {limit}"):
                    fx.resize(w, h)
            # Within GL_MAX_TEXTURE_SIZE, but the input tensor's storage buffer (16 bytes a
            # texel) is beyond GL_MAX_SHADER_STORAGE_BLOCK_SIZE: refused before the frame-sized
            # output texture (1 GiB) is made.
            with pytest.raises(errors.FrameTooLarge, match="GL_MAX_SHADER_STORAGE_BLOCK_SIZE"):
                fx.resize(limit, limit)
            assert difference(live_gl_objects(), before) == {}, "a refused frame size allocated GL objects"
            assert (fx.output.glo, fx._network.run_size) == kept, "a refused frame size dropped the last one"
            assert np.array_equal(frame_of(fx.apply(color, depth, near=1.0, far=2.0)), before_bits)
    finally:
        color.release()
        depth.release()


def test_C6_memory_estimate_is_what_the_pass_allocates(gl_ctx, model):
    with PostFX(gl_ctx, model, fp16=True, internal_scale=0.75) as fx:
        for w, h in [(32, 24), (61, 37)]:
            color, depth, _, _ = _frame_textures(gl_ctx, h, w)
            try:
                estimate = fx.memory_estimate(w, h)
                fx.apply(color, depth, near=1.0, far=2.0)
                assert estimate["total"] == held_bytes(fx), (w, h, estimate)
                assert estimate["total"] == estimate["weights"] + estimate["activations"] + estimate["output"]
            finally:
                color.release()
                depth.release()


def test_C6_memory_budget_refuses_a_frame_size_before_allocating(gl_ctx, model):
    small, large = (32, 24), (64, 48)
    with PostFX(gl_ctx, model) as probe:
        budget = probe.memory_estimate(*small)["total"]          # exactly what the small frame needs
        needed = probe.memory_estimate(*large)["total"]
    color, depth, _, _ = _frame_textures(gl_ctx, small[1], small[0])
    try:
        with PostFX(gl_ctx, model, memory_budget_bytes=budget) as fx:
            bits = frame_of(fx.apply(color, depth, near=1.0, far=2.0))
            kept, before = fx.output.glo, live_gl_objects()
            with pytest.raises(errors.FrameTooLarge) as refused:
                fx.resize(*large)
            message = str(refused.value)
            for figure in ("64x48", f"estimated {needed} bytes", f"memory_budget_bytes {budget}"):
                assert figure in message, f"{figure!r} not in {message!r}"
            assert difference(live_gl_objects(), before) == {} and fx.output.glo == kept
            fx.memory_budget_bytes = needed        # a budget it fits exactly
            fx.resize(*large)
            assert np.array_equal(frame_of(fx.apply(color, depth, near=1.0, far=2.0)), bits)
    finally:
        color.release()
        depth.release()
    before = live_gl_objects()
    with pytest.raises(errors.DeviceLimitError, match=r"weights .* take \d+ bytes .* memory_budget_bytes 1000"):
        PostFX(gl_ctx, model, memory_budget_bytes=1000)
    assert difference(live_gl_objects(), before) == {}
    for bad in (0, -5, 1.5, "1 GiB", True):
        with pytest.raises(errors.InputError, match="memory_budget_bytes"):
            PostFX(gl_ctx, model, memory_budget_bytes=bad)


# --- C7 an allocation fails ------------------------------------------------------------

# Every moderngl.Context method that creates a GL object.
ALLOCATORS = ("buffer", "texture", "texture_array", "texture3d", "texture_cube", "depth_texture",
              "renderbuffer", "framebuffer", "simple_framebuffer", "sampler", "program", "compute_shader",
              "vertex_array", "query")


class AllocationFaults:
    """Counts a context's allocations; with fail_at=N the Nth raises moderngl.Error instead
    of allocating, as moderngl reports a GL object it could not create. Only the failure is
    injected: every other call is the real one."""

    def __init__(self, ctx: moderngl.Context, fail_at: int | None = None):
        self.ctx, self.fail_at, self.calls = ctx, fail_at, []

    def _wrap(self, name, allocate):
        def wrapper(*args, **kwargs):
            self.calls.append(name)
            if len(self.calls) == self.fail_at:
                raise moderngl.Error(f"GL_OUT_OF_MEMORY (injected: allocation {self.fail_at}, ctx.{name})")
            return allocate(*args, **kwargs)
        return wrapper

    def __enter__(self):
        for name in ALLOCATORS:
            setattr(self.ctx, name, self._wrap(name, getattr(self.ctx, name)))
        return self

    def __exit__(self, *exc):
        for name in ALLOCATORS:
            vars(self.ctx).pop(name)
        return False


def assert_names_the_failure(error: Exception, call: str) -> None:
    message = str(error)
    assert "GL_OUT_OF_MEMORY" in message, f"the driver's message is lost: {message!r}"
    if call == "compute_shader":
        assert isinstance(error, errors.ShaderCompileError) and re.search(r"shader \w+\.comp", message), message
    else:
        assert isinstance(error, errors.AllocationFailed), f"{type(error).__name__}: {message}"
        assert re.search(r"could not allocate the .*(layer|tensor|output texture|sampler|framebuffer)",
                         message), message


def test_C7_allocation_failure_anywhere_in_a_build_and_first_frame(gl_ctx, model):
    color, depth, rgb, linear = _frame_textures(gl_ctx, 24, 32)
    baseline = live_gl_objects()
    try:
        with AllocationFaults(gl_ctx) as counting:
            with PostFX(gl_ctx, model) as fx:
                reference = frame_of(fx.apply(color, depth, near=1.0, far=2.0))
        assert np.abs(reference[..., :3] - expected_stylized(model, rgb, linear)).max() <= 1
        total = len(counting.calls)
        assert {"buffer", "texture", "texture_array", "sampler", "compute_shader", "framebuffer"} <= set(
            counting.calls), counting.calls
        for n in range(1, total + 1):
            fx = None
            with AllocationFaults(gl_ctx, fail_at=n) as faults, pytest.raises(errors.GLError) as raised:
                fx = PostFX(gl_ctx, model)
                fx.apply(color, depth, near=1.0, far=2.0)
            call = faults.calls[n - 1]
            assert_names_the_failure(raised.value, call)
            if fx is not None:
                # Failed in the first frame: the pass lives on, and the next frame allocates again.
                assert np.array_equal(frame_of(fx.apply(color, depth, near=1.0, far=2.0)), reference)
                fx.release()
            leaked = difference(live_gl_objects(), baseline)
            assert leaked == {}, f"allocation {n} of {total} (ctx.{call}) failed: GL objects left {leaked}"
            assert gl_ctx.error == "GL_NO_ERROR"
        with PostFX(gl_ctx, model) as fx:          # and a build after all that still works
            assert np.array_equal(frame_of(fx.apply(color, depth, near=1.0, far=2.0)), reference)
    finally:
        color.release()
        depth.release()
    record_promise("C7_build_allocation_faults", {
        "row": "C7", "what": "PostFX(...) + first apply(): each allocation made to fail in turn",
        "allocations": total, "kinds": sorted(set(counting.calls)), "failures_typed": total,
        "gl_objects_leaked": 0})


def test_C7_allocation_failure_anywhere_in_a_resize(gl_ctx, model):
    small, large = _frame_textures(gl_ctx, 24, 32), _frame_textures(gl_ctx, 37, 61)
    try:
        with PostFX(gl_ctx, model) as fx:
            fx.apply(*small[:2], near=1.0, far=2.0)
            with AllocationFaults(gl_ctx) as counting:
                reference = frame_of(fx.apply(*large[:2], near=1.0, far=2.0))
            assert np.abs(reference[..., :3] - expected_stylized(model, *large[2:])).max() <= 1
            sized = live_gl_objects()
            # What the pass holds for one frame size, and no longer holds after a failed resize.
            net = fx._network
            frame_objects = {"buffer": -len(net.buffers), "texture": -(1 + len(net.views)), "framebuffer": -1}
            total = len(counting.calls)
            assert {"buffer", "texture", "texture_array", "framebuffer"} <= set(counting.calls), counting.calls
            for n in range(1, total + 1):
                fx.apply(*small[:2], near=1.0, far=2.0)
                with AllocationFaults(gl_ctx, fail_at=n) as faults, pytest.raises(errors.GLError) as raised:
                    fx.apply(*large[:2], near=1.0, far=2.0)
                call = faults.calls[n - 1]
                assert_names_the_failure(raised.value, call)
                held = difference(live_gl_objects(), sized)
                assert held == frame_objects, (f"allocation {n} of {total} (ctx.{call}) failed: the pass holds "
                                               f"{held} against a {61}x{37} frame, expected {frame_objects}")
                assert np.array_equal(frame_of(fx.apply(*large[:2], near=1.0, far=2.0)), reference)
                assert difference(live_gl_objects(), sized) == {}
                assert gl_ctx.error == "GL_NO_ERROR"
    finally:
        for texture in (*small[:2], *large[:2]):
            texture.release()
    record_promise("C7_resize_allocation_faults", {
        "row": "C7", "what": "apply() at a new frame size: each allocation made to fail in turn",
        "allocations": total, "kinds": sorted(set(counting.calls)), "failures_typed": total,
        "gl_objects_leaked": 0})


# --- C8 a released context -----------------------------------------------------------------

def render_in_own_context(model, h, w, suite_ctx) -> tuple[moderngl.Context, PostFX, np.ndarray]:
    """A pass in a standalone EGL context of its own, after one frame."""
    ctx = moderngl.create_context(standalone=True, backend="egl")
    with current(ctx, suite_ctx):
        color, depth, _, _ = _frame_textures(ctx, h, w)
        fx = PostFX(ctx, model)
        bits = frame_of(fx.apply(color, depth, near=1.0, far=2.0))
    return ctx, fx, bits


def test_C8_released_context_is_context_lost_and_a_new_one_gives_identical_bits(gl_ctx, model):
    baseline = live_gl_objects()
    ctx, fx, first = render_in_own_context(model, 24, 32, gl_ctx)
    color = gl_ctx.texture((32, 24), 4)         # any texture: the pass must refuse before touching it
    try:
        ctx.release()
        gl_ctx.__enter__()
        with pytest.raises(errors.ContextLost, match="released"):
            fx.apply(color, near=1.0, far=2.0)
        with pytest.raises(errors.ContextLost):
            fx.resize(16, 16)
        with pytest.raises(errors.ContextLost):
            PostFX(ctx, model)
        fx.release()
        fx.release()
        with pytest.raises(errors.PassReleased):
            fx.apply(color, near=1.0, far=2.0)
    finally:
        color.release()
    ctx2, fx2, second = render_in_own_context(model, 24, 32, gl_ctx)
    with current(ctx2, gl_ctx):
        fx2.release()
    ctx2.release()
    gl_ctx.__enter__()
    assert np.array_equal(first, second), "a rebuilt pass in a new context gave different bits"
    assert first[..., :3].std() > 0
    # Nothing of the other contexts' passes landed in the suite's context.
    assert difference(live_gl_objects(), baseline) == {}


# --- C13 NaN / Inf pixels -----------------------------------------------------------------

def poisoned(clean: np.ndarray, values, seed: int) -> np.ndarray:
    """clean with each of `values` written over a scattered ~3 % of its elements."""
    rng = np.random.default_rng(seed)
    out = clean.copy()
    for value in values:
        out[rng.random(out.shape) < 0.03] = value
    return out


@pytest.mark.parametrize("dtype", ["f2", "f4"])
@pytest.mark.parametrize("internal_scale", [1.0, 0.5])
def test_C13_nan_and_inf_colour_reads_as_zero_and_one(gl_ctx, model, dtype, internal_scale):
    h, w = 24, 32
    rng = np.random.default_rng(1)
    linear = rng.uniform(0.0, 1.0, (h, w, 4)).astype(np.float32)
    bad = poisoned(linear, [np.nan, np.inf, -np.inf, 7.5, -2.0], seed=2)
    # What the pass documents: NaN -> 0, and linear values clamped to [0, 1].
    settled = np.clip(np.nan_to_num(bad, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    depth = gl_ctx.depth_texture((w, h), np.full((h, w), 0.6, np.float32).tobytes())
    frames, inputs, outputs = {}, {}, {}
    with PostFX(gl_ctx, model, internal_scale=internal_scale, strength=0.7) as fx:
        for name, pixels in (("poisoned", bad), ("settled", settled)):
            color = gl_ctx.texture((w, h), 4, pixels.astype(np.float16 if dtype == "f2" else np.float32).tobytes(),
                                   dtype=dtype)
            try:
                frames[name] = frame_of(fx.apply(color, depth, near=1.0, far=2.0))
                inputs[name] = fx._network.read_tensor("input")
                outputs[name] = fx._network.read_tensor(model.graph.output)
            finally:
                color.release()
    depth.release()
    assert np.isnan(bad).sum() > 0 and np.isinf(bad).sum() > 0
    assert np.isfinite(inputs["poisoned"]).all() and np.isfinite(outputs["poisoned"]).all()
    assert np.array_equal(inputs["poisoned"], inputs["settled"])
    assert np.array_equal(frames["poisoned"], frames["settled"]), "NaN / Inf colour did not read as 0 / clamped"
    assert frames["poisoned"][..., :3].std() > 0


def test_C13_nan_and_inf_depth_reads_as_far_and_clamped(gl_ctx, model):
    h, w, near, far = 24, 32, 0.5, 20.0
    window = np.random.default_rng(3).uniform(0.05, 0.95, (h, w)).astype(np.float32)    # rows bottom-up
    bad = poisoned(window, [np.nan, np.inf, -np.inf, 1.5, -0.5], seed=4)
    color = gl_ctx.texture((w, h), 4, np.random.default_rng(5).integers(0, 256, (h, w, 4), np.uint8).tobytes())
    try:
        with PostFX(gl_ctx, model) as fx:
            for reversed_z in (False, True):
                far_depth = 0.0 if reversed_z else 1.0
                settled = np.clip(np.nan_to_num(bad, nan=far_depth, posinf=1.0, neginf=0.0), 0.0, 1.0)
                seen = {}
                for name in ("poisoned", "settled"):
                    depth = make_depth_texture(gl_ctx, settled if name == "settled" else window, "D32F")
                    try:
                        if name == "poisoned":
                            poke_depth(depth, bad, ~np.isclose(bad, window))
                            stored = _read_depth(depth).reshape(h, w)
                            assert np.array_equal(stored, bad, equal_nan=True), "the test's depth is not in place"
                        frame = frame_of(fx.apply(color, depth, near=near, far=far, reversed_z=reversed_z))
                        seen[name] = (frame, fx._network.read_tensor("input"),
                                      fx._network.read_tensor(model.graph.output))
                    finally:
                        _delete_texture(depth)
                frame, network_input, network_output = seen["poisoned"]
                assert np.isfinite(network_input).all() and np.isfinite(network_output).all()
                # A NaN depth is the far plane: the top of the model's input range (rows top-down).
                nan_pixels = np.flipud(np.isnan(bad))
                assert np.allclose(network_input[3, :h, :w][nan_pixels], 1.0, atol=1e-5, rtol=0)
                assert np.array_equal(network_input, seen["settled"][1]), f"reversed_z={reversed_z}"
                assert np.array_equal(frame, seen["settled"][0]), f"reversed_z={reversed_z}"
    finally:
        color.release()


def _gl_function(name: str):
    return getattr(ctypes.CDLL("libOpenGL.so.0"), name)


def poke_depth(texture, values: np.ndarray, where: np.ndarray) -> None:
    """Write values[where] into a D32F texture as raw floats. Every upload path clamps
    depth to [0, 1] (Mesa maps NaN to 0), but a whole-framebuffer clear of a float
    depth buffer stores the value as given: clear a 1x1 D32F texture to each value, and
    copy its texel (glCopyImageSubData copies bits) to each place."""
    create_textures, storage = _gl_function("glCreateTextures"), _gl_function("glTextureStorage2D")
    create_framebuffers, attach = _gl_function("glCreateFramebuffers"), _gl_function("glNamedFramebufferTexture")
    clear, copy = _gl_function("glClearNamedFramebufferfv"), _gl_function("glCopyImageSubData")
    # A copy needs complete textures: make_depth_texture's has one level and mipmap filtering.
    _gl_function("glTextureParameteri")(texture.glo, 0x813D, 0)          # TEXTURE_MAX_LEVEL
    for value in np.unique(values[where].view(np.uint32)):              # NaN-safe: by bit pattern
        source, framebuffer = ctypes.c_uint(0), ctypes.c_uint(0)
        create_textures(0x0DE1, 1, ctypes.byref(source))                  # TEXTURE_2D
        storage(source, 1, 0x8CAC, 1, 1)                                  # DEPTH_COMPONENT32F
        create_framebuffers(1, ctypes.byref(framebuffer))
        attach(framebuffer, 0x8D00, source, 0)                            # DEPTH_ATTACHMENT
        clear_value = np.array([value], np.uint32).view(np.float32)
        clear(framebuffer, 0x1801, 0, clear_value.ctypes.data_as(ctypes.c_void_p))   # DEPTH
        for y, x in zip(*np.nonzero(where & (values.view(np.uint32) == value)), strict=True):
            copy(source, 0x0DE1, 0, 0, 0, 0, texture.glo, 0x0DE1, 0, int(x), int(y), 0, 1, 1, 1)
        _gl_function("glDeleteFramebuffers")(1, ctypes.byref(framebuffer))
        _gl_function("glDeleteTextures")(1, ctypes.byref(source))


def _read_depth(texture) -> np.ndarray:
    """A depth texture's stored values (glGetTextureImage: moderngl reads a wrapped
    texture as colour)."""
    w, h = texture.size
    values = np.zeros(w * h, np.float32)
    _gl_function("glGetTextureImage")(texture.glo, 0, 0x1902, 0x1406, values.nbytes,   # DEPTH_COMPONENT, FLOAT
                                      values.ctypes.data_as(ctypes.c_void_p))
    return values


def _delete_texture(texture) -> None:
    """make_depth_texture makes D32F through GL itself; moderngl's wrapper does not own it."""
    _gl_function("glDeleteTextures")(1, ctypes.byref(ctypes.c_uint(texture.glo)))


# --- C14 several contexts and passes ----------------------------------------------------------

def moving_frames(ctx, h, w, count):
    """`count` different frames (the asymmetric image shifted), as (colour, depth) textures."""
    color, depth, rgb, linear = _frame_textures(ctx, h, w)
    frames = [(color, depth)]
    for i in range(1, count):
        rgba = np.concatenate([np.roll(rgb, 3 * i, axis=1), np.full((h, w, 1), 255, np.uint8)], 2)
        window_depth = (2.0 - 2.0 / (1.0 + np.roll(linear, -2 * i, axis=0))).astype(np.float32)
        frames.append((ctx.texture((w, h), 4, np.flipud(rgba).tobytes()),
                       ctx.depth_texture((w, h), np.flipud(window_depth).tobytes())))
    return frames


def run_frames(fx, frames) -> list[np.ndarray]:
    return [frame_of(fx.apply(color, depth, near=1.0, far=2.0)) for color, depth in frames]


def release_frames(frames) -> None:
    for color, depth in frames:
        color.release()
        depth.release()


def test_C14_two_contexts_interleaved_frame_by_frame_match_each_alone(gl_ctx, model):
    other_model = small_unet(seed=7)
    other = moderngl.create_context(standalone=True, backend="egl")
    try:
        with current(other, gl_ctx):
            frames_b = moving_frames(other, 20, 40, 4)
            with PostFX(other, other_model, fp16=True) as fx:
                alone_b = run_frames(fx, frames_b)
        frames_a = moving_frames(gl_ctx, 24, 32, 4)
        with PostFX(gl_ctx, model) as fx:
            alone_a = run_frames(fx, frames_a)
        fx_a = PostFX(gl_ctx, model)
        with current(other, gl_ctx):
            fx_b = PostFX(other, other_model, fp16=True)
        for i in range(4):
            # Each pass runs with its own context current, as GL requires.
            assert np.array_equal(run_frames(fx_a, frames_a[i:i + 1])[0], alone_a[i]), f"context A, frame {i}"
            with current(other, gl_ctx):
                assert np.array_equal(run_frames(fx_b, frames_b[i:i + 1])[0], alone_b[i]), f"context B, frame {i}"
        fx_a.release()
        release_frames(frames_a)
        with current(other, gl_ctx):
            fx_b.release()
            release_frames(frames_b)
    finally:
        other.release()
        gl_ctx.__enter__()
    assert not np.array_equal(alone_a[0], alone_a[1]) and not np.array_equal(alone_b[0], alone_b[1])


def test_C14_two_passes_of_different_models_in_one_context_interleaved(gl_ctx, model):
    rgb_model = small_unet(input_channels=3, seed=11)
    frames_a, frames_b = moving_frames(gl_ctx, 24, 32, 4), moving_frames(gl_ctx, 37, 61, 4)
    options_b = {"internal_scale": 0.5, "strength": 0.8, "fp16": True}
    try:
        with PostFX(gl_ctx, model) as fx:
            alone_a = run_frames(fx, frames_a)
        with PostFX(gl_ctx, rgb_model, **options_b) as fx:
            alone_b = run_frames(fx, frames_b)
        with PostFX(gl_ctx, model) as fx_a, PostFX(gl_ctx, rgb_model, **options_b) as fx_b:
            for i in range(4):
                assert np.array_equal(run_frames(fx_b, frames_b[i:i + 1])[0], alone_b[i]), f"pass B, frame {i}"
                assert np.array_equal(run_frames(fx_a, frames_a[i:i + 1])[0], alone_a[i]), f"pass A, frame {i}"
    finally:
        release_frames(frames_a)
        release_frames(frames_b)


# --- C15 soak -----------------------------------------------------------------------------

SOAK_FRAMES = int(os.environ.get("POSTFX_SOAK_FRAMES", "3000"))    # the matrix's full run: 10000
SOAK_RESIZE_EVERY = 500
SOAK_SIZES = [(64, 48), (61, 37)]             # (W, H), alternating; the second is padded and cropped
SOAK_WARMUP_WINDOWS = len(SOAK_SIZES)         # every size allocated once
SOAK_RSS_LIMIT = 2 * 2**20
SOAK_SLOWDOWN_LIMIT = 2.0                     # last window's median frame time vs the first's, same size


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_C15_soak_with_periodic_resizes(gl_ctx, model):
    windows = SOAK_FRAMES // SOAK_RESIZE_EVERY
    assert windows >= SOAK_WARMUP_WINDOWS + len(SOAK_SIZES), f"POSTFX_SOAK_FRAMES={SOAK_FRAMES} is too short"
    frame_ms = np.zeros((windows, SOAK_RESIZE_EVERY))
    reference, objects, rss = {}, [], []
    started = time.perf_counter()
    with PostFX(gl_ctx, model) as fx:
        for window in range(windows):
            w, h = SOAK_SIZES[window % len(SOAK_SIZES)]
            # The renderer's own targets follow the window size, as they would in an app.
            color, depth, _, _ = _frame_textures(gl_ctx, h, w)
            for frame in range(SOAK_RESIZE_EVERY):
                start = time.perf_counter()
                fx.apply(color, depth, near=1.0, far=2.0)
                gl_ctx.finish()
                frame_ms[window, frame] = (time.perf_counter() - start) * 1e3
            bits = frame_of(fx.output)
            assert np.array_equal(bits, reference.setdefault((w, h), bits)), f"window {window}: output changed"
            color.release()
            depth.release()
            objects.append(sum(live_gl_objects().values()))
            rss.append(resident_bytes())
    wall_s = time.perf_counter() - started
    warm = SOAK_WARMUP_WINDOWS - 1            # the figures after this window are the baseline
    last = windows - 1
    first = warm + 1 + (last - warm - 1) % len(SOAK_SIZES)     # first measured window of the last one's size
    first_ms, last_ms = float(np.median(frame_ms[first])), float(np.median(frame_ms[last]))
    figures = {
        "row": "C15", "frames": windows * SOAK_RESIZE_EVERY, "resize_every": SOAK_RESIZE_EVERY,
        "sizes": [f"{w}x{h}" for w, h in SOAK_SIZES], "resizes": windows - 1,
        "resize_cycles": windows // len(SOAK_SIZES), "warmup_frames": SOAK_WARMUP_WINDOWS * SOAK_RESIZE_EVERY,
        "gl_objects_start": objects[warm], "gl_objects_end": objects[-1],
        "gl_objects_min_max": [min(objects[warm:]), max(objects[warm:])],
        "rss_growth_bytes": rss[-1] - rss[warm], "rss_growth_max_bytes": max(rss[warm:]) - rss[warm],
        "first_window_median_ms": round(first_ms, 3), "last_window_median_ms": round(last_ms, 3),
        "first_window": first, "last_window": last,
        "median_ms_per_window": [round(float(np.median(m)), 3) for m in frame_ms],
        "renderer": gl_ctx.info["GL_RENDERER"], "wall_s": round(wall_s, 1)}
    record_promise("C15_soak", figures)
    assert len(set(objects[warm:])) == 1, f"live GL objects per window drift: {objects}"
    assert figures["rss_growth_max_bytes"] < SOAK_RSS_LIMIT, (
        f"RSS grew {figures['rss_growth_max_bytes'] / 2**20:.2f} MiB after warm-up: {rss}")
    assert last_ms <= SOAK_SLOWDOWN_LIMIT * first_ms, (
        f"frame time trends up: median {first_ms:.3f} ms in window {first}, {last_ms:.3f} ms in window {last}")
