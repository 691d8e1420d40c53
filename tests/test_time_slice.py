"""PostFX's frame_budget_ms in a real (headless EGL) context: a network spread over
several apply() calls gives exactly the image a whole-frame run gives, of the frame
captured at the run's start, and shows the last complete result meanwhile."""
import math

import numpy as np
import pytest
from gl_objects import difference, live_gl_objects

from postfx import errors
from postfx import model_format as fmt
from postfx.exporters.builder import build_model
from postfx.model_format import Layer
from postfx.postfx_pass import PostFX
from postfx.time_slice import cut

NEAR, FAR = 1.0, 2.0
TINY_MS = 1e-6          # under any dispatch's cost: one dispatch per apply()
HUGE_MS = 1e9


def late_input_net(seed=0):
    """Three layers, the last reading the input again (a skip from the frame): a
    sliced run that re-packed the input mid-run would mix two frames."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)
    layers = [
        Layer("enc1", "conv2d", (fmt.INPUT_TENSOR,), "leaky_relu", 0.2, 8, 4, 2, 1),
        Layer("dec1", "conv_transpose2d", ("enc1",), "relu", 0.0, 4, 4, 2, 1),
        Layer("out", "conv2d", ("dec1", fmt.INPUT_TENSOR), "tanh", 0.0, 3, 3, 1, 1),
    ]
    weights = {"enc1": (w(8, 4, 4, 4), w(8)), "dec1": (w(8, 4, 4, 4), w(4)), "out": (w(3, 8, 3, 3), w(3))}
    return build_model(layers, weights, input_channels=4, output="out", name="late-input")


@pytest.fixture(scope="module")
def model():
    return late_input_net()


@pytest.fixture
def make_frames(gl_ctx):
    """make(count, w, h) -> [(RGBA8 colour, D24 depth)] of distinct random frames,
    released after the test."""
    made = []

    def make(count, w, h, seed=0):
        rng = np.random.default_rng(seed)
        frames = []
        for _ in range(count):
            rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            rgba[..., 3] = 255
            depth = rng.uniform(0.1, 0.9, (h, w)).astype(np.float32)
            frames.append((gl_ctx.texture((w, h), 4, rgba.tobytes()), gl_ctx.depth_texture((w, h), depth.tobytes())))
        made.extend(frames)
        return frames
    yield make
    for color, depth in made:
        color.release()
        depth.release()


def show(fx, frame) -> np.ndarray:
    """apply() one frame and read the pass's RGBA8 output back."""
    color, depth = frame
    out = fx.apply(color, depth, near=NEAR, far=FAR)
    return np.frombuffer(out.read(), np.uint8).reshape(out.size[1], out.size[0], 4)


def whole_frame(gl_ctx, model, frames, **options) -> list[np.ndarray]:
    """The output of an ordinary (unsliced) pass for each frame."""
    with PostFX(gl_ctx, model, **options) as fx:
        return [show(fx, frame).copy() for frame in frames]


def same(a, b) -> bool:
    return np.array_equal(a, b)


@pytest.mark.parametrize("options", [{"kernels": "optimized"}, {"kernels": "naive"},
                                     {"kernels": "optimized", "fp16": True, "internal_scale": 0.5}],
                         ids=["optimized", "naive", "fp16-half-scale"])
def test_a_sliced_run_shows_the_previous_result_then_exactly_the_frame_captured_at_its_start(
        gl_ctx, model, make_frames, options):
    frames = make_frames(7, 37, 29)                   # odd size: padded and cropped
    expected = whole_frame(gl_ctx, model, frames, **options)
    assert all(not same(expected[0], e) for e in expected[1:]), "the frames must stylize differently"
    with PostFX(gl_ctx, model, frame_budget_ms=TINY_MS, **options) as fx:
        assert fx.schedule is None and fx.frames_per_result is None      # not measured yet
        # The first apply() at a size runs whole (timing each dispatch): a complete result at once.
        assert same(show(fx, frames[0]), expected[0])
        assert fx.schedule == [(0, 1), (1, 2), (2, 3)] and fx.frames_per_result == 3
        # A run started at frame 1 completes at frame 3 with frame 1's stylization;
        # until then the output is frame 0's. The next run starts at frame 4.
        shown = [show(fx, frame).copy() for frame in frames[1:]]
        assert [same(s, expected[0]) for s in shown[:2]] == [True, True]
        assert same(shown[2], expected[1])
        assert [same(s, expected[1]) for s in shown[3:5]] == [True, True]
        assert same(shown[5], expected[4])


def test_every_apply_blends_the_current_frame(gl_ctx, model, make_frames):
    """Between results the pass still presents: strength 0 shows each frame as it is."""
    frames = make_frames(4, 20, 12, seed=1)
    with PostFX(gl_ctx, model, frame_budget_ms=TINY_MS, strength=0.0) as fx:
        for color, depth in frames:
            shown = show(fx, (color, depth))
            assert same(shown, np.frombuffer(color.read(), np.uint8).reshape(shown.shape))


def test_the_budget_cuts_measured_dispatch_costs_into_steps():
    ms = [0.004, 0.004, 0.004, 0.012, 0.001, 0.001]
    assert cut(ms, 0.010) == [(0, 2), (2, 3), (3, 4), (4, 6)]     # 12 ms alone: a step of its own
    assert cut(ms, 1.0) == [(0, 6)]
    assert cut(ms, 1e-9) == [(i, i + 1) for i in range(6)]
    assert cut([], 1.0) == []


def test_a_new_budget_reschedules_from_the_stored_timings(gl_ctx, model, make_frames):
    frames = make_frames(7, 24, 16, seed=2)
    expected = whole_frame(gl_ctx, model, frames)
    with PostFX(gl_ctx, model, frame_budget_ms=TINY_MS) as fx:
        assert same(show(fx, frames[0]), expected[0])
        timings = list(fx._dispatch_seconds)
        assert len(timings) == 3 and all(t > 0 for t in timings)
        fx.frame_budget_ms = HUGE_MS
        assert fx.schedule == [(0, 3)] and fx.frames_per_result == 1      # no apply() needed: not re-measured
        assert same(show(fx, frames[1]), expected[1])
        assert same(show(fx, frames[2]), expected[2])
        assert fx._dispatch_seconds == timings
        fx.frame_budget_ms = TINY_MS          # a new run starts at the next frame
        assert fx.frames_per_result == 3
        assert [same(show(fx, f), expected[2]) for f in frames[3:5]] == [True, True]
        assert same(show(fx, frames[5]), expected[3])
        fx.frame_budget_ms = None
        assert fx.schedule == [(0, 3)] and fx.frames_per_result == 1
        assert same(show(fx, frames[6]), expected[6])


def test_a_resize_mid_run_restarts_with_a_whole_run(gl_ctx, model, make_frames):
    small, large = make_frames(4, 24, 16, seed=3), make_frames(4, 33, 21, seed=4)
    expected_small, expected_large = whole_frame(gl_ctx, model, small), whole_frame(gl_ctx, model, large)
    expected_half = whole_frame(gl_ctx, model, small, internal_scale=0.5)
    with PostFX(gl_ctx, model, frame_budget_ms=TINY_MS) as fx:
        show(fx, small[0])
        show(fx, small[1])                        # a run in progress
        assert same(show(fx, large[0]), expected_large[0])     # new size: measured whole, at once
        assert fx.frames_per_result == 3
        show(fx, large[1])
        show(fx, large[2])
        assert same(show(fx, large[3]), expected_large[1])
        show(fx, small[2])                        # back: measured whole again
        fx.resize(33, 21)
        fx.resize(24, 16)                         # buffers made anew, no apply() between
        assert fx.schedule is None
        assert same(show(fx, small[3]), expected_small[3])
        show(fx, small[0])                        # a run in progress
        fx.internal_scale = 0.5
        assert same(show(fx, small[1]), expected_half[1])
        assert fx.frames_per_result == 3


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, -math.inf, "16", True, [16]])
def test_bad_budgets_are_input_errors(gl_ctx, model, bad):
    with pytest.raises(errors.InputError, match="frame_budget_ms"):
        PostFX(gl_ctx, model, frame_budget_ms=bad)
    with PostFX(gl_ctx, model, frame_budget_ms=16) as fx:
        assert fx.frame_budget_ms == 16.0 and isinstance(fx.frame_budget_ms, float)
        with pytest.raises(errors.InputError, match="frame_budget_ms"):
            fx.frame_budget_ms = bad
        assert fx.frame_budget_ms == 16.0


def test_a_dispatch_range_outside_the_network_is_refused(gl_ctx, model):
    with PostFX(gl_ctx, model) as fx:
        fx.resize(8, 8)
        with pytest.raises(ValueError, match="dispatch range"):
            fx._network.run(2, 4)
        with pytest.raises(ValueError, match="dispatch range"):
            fx._network.run(2, 1)


def test_many_sliced_frames_leak_no_gl_objects(gl_ctx, model, make_frames):
    frames = make_frames(3, 24, 16, seed=5)
    before_pass = live_gl_objects()
    fx = PostFX(gl_ctx, model, frame_budget_ms=TINY_MS)
    try:
        show(fx, frames[0])
        baseline = live_gl_objects()
        for index in range(30):
            show(fx, frames[index % 3])
            if index == 10:
                fx.frame_budget_ms = HUGE_MS
            if index == 20:
                fx.frame_budget_ms = TINY_MS
        assert difference(live_gl_objects(), baseline) == {}
    finally:
        fx.release()
    assert difference(live_gl_objects(), before_pass) == {}
