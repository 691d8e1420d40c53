"""The pass's temporal mode (PostFX(temporal=...), apply(motion_tex=...)) against the
numpy reference postfx.temporal.resolve on the demo scene with its own motion: the
first frame, a resize and reset_history() start without history; plain motion
vectors (no depth channel) work; a bad motion texture is refused before any GL work
and loses no history; nothing leaks."""
import numpy as np
import pytest
from gl_objects import difference, live_gl_objects

import postfx
from postfx.errors import InputError
from postfx.scene import Scene, SceneTarget, linear_depth01
from postfx.temporal import TEMPORAL_WEIGHT, chain_result_offsets, read_through_offsets, resolve

SIZE = (128, 80)
START = 5.0
TOLERANCE = 1.5 / 255           # the GL blend of RGBA8 values vs the float reference, rounding included
SPREAD = 1e-6                   # a frame budget so small that every dispatch is a step of its own


@pytest.fixture(scope="module")
def scene(gl_ctx):
    with Scene(gl_ctx, seed=4) as s:
        yield s


def read(texture) -> np.ndarray:
    w, h = texture.size
    return np.ascontiguousarray(np.flipud(np.frombuffer(texture.read(), np.uint8).reshape(h, w, 4))[..., :3])


class Frames:
    """The fly-through, a frame at a time: colour, depth and motion of each, rendered live."""

    def __init__(self, ctx, scene, size=SIZE):
        self.ctx, self.scene, self.k = ctx, scene, 0
        self.target = SceneTarget(ctx, size, motion=True)

    def next(self):
        camera, time = self.scene.camera_path(START + self.k / 30), START + self.k / 30
        before = self.scene.camera_path(START + (self.k - 1) / 30)
        self.scene.render(self.target, camera, time, previous_camera=before, previous_time=time - 1 / 30)
        self.k += 1
        self.camera = camera
        return self.target

    def apply(self, fx, **extra):
        t, c = self.target, self.camera
        return read(fx.apply(t.color, t.depth, near=c.near, far=c.far, **extra))

    def depth01(self):
        return linear_depth01(self.target.read_depth(), self.camera.near, self.camera.far)


def test_B1_temporal_pass_matches_the_reference(gl_ctx, scene):
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.6) as fx, postfx.PostFX(gl_ctx, "ink") as plain:
        previous = None
        for k in range(4):
            target = frames.next()
            got = frames.apply(fx, motion_tex=target.motion)
            stylized = frames.apply(plain)
            if k == 0:
                assert np.array_equal(got, stylized)             # the first frame has no history
            else:
                want = resolve(stylized, previous[0], target.read_motion(), previous[1], weight=0.6)
                assert np.abs(got / 255.0 - want).max() <= TOLERANCE
                assert (got != stylized).any(axis=-1).mean() > 0.05     # the history did something
            previous = (got, frames.depth01())
    frames.target.release()


ODD = (101, 67)                 # no multiple of the network's 16: padded and cropped, odd work-group tails


def test_B1_temporal_pass_matches_the_reference_at_an_odd_size(gl_ctx, scene):
    """As above at an odd frame size. A pixel whose depth test lands within float rounding
    of the tolerance may go either way on GL and in numpy (one of 6,767 did here), so the
    check is on the share of pixels off the reference."""
    frames = Frames(gl_ctx, scene, ODD)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.6) as fx, postfx.PostFX(gl_ctx, "ink") as plain:
        previous = None
        for k in range(4):
            target = frames.next()
            got, stylized = frames.apply(fx, motion_tex=target.motion), frames.apply(plain)
            if previous is not None:
                want = resolve(stylized, previous[0], target.read_motion(), previous[1], weight=0.6)
                off = np.abs(got / 255.0 - want).max(axis=-1) > TOLERANCE
                assert off.mean() < 0.0005, f"frame {k}: {off.mean():.3%} of pixels off the reference"
                assert (got != stylized).any(axis=-1).mean() > 0.05
            previous = (got, frames.depth01())
    frames.target.release()


def test_plain_motion_vectors_use_the_current_depth(gl_ctx, scene):
    """An RG motion texture (no depth channel): the disocclusion test compares the history's
    depth with the pixel's current depth, as the reference does given that depth."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5) as fx, postfx.PostFX(gl_ctx, "ink") as plain:
        previous = None
        for _ in range(3):
            target = frames.next()
            motion = target.read_motion()
            w, h = SIZE
            uv = np.flipud(np.stack([motion[..., 0] / w, -motion[..., 1] / h], axis=-1)).astype(np.float32)
            rg = gl_ctx.texture(SIZE, 2, np.ascontiguousarray(uv).tobytes(), dtype="f4")
            got = frames.apply(fx, motion_tex=rg)
            rg.release()
            if previous is not None:
                today = np.concatenate([motion[..., :2], frames.depth01()[..., None]], axis=-1)
                want = resolve(frames.apply(plain), previous[0], today, previous[1], weight=0.5)
                assert np.abs(got / 255.0 - want).max() <= TOLERANCE
            previous = (got, frames.depth01())
    frames.target.release()


def test_C21_no_history_after_a_resize_or_a_reset(gl_ctx, scene):
    small, large = Frames(gl_ctx, scene, (96, 64)), Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=True) as fx, postfx.PostFX(gl_ctx, "ink") as plain:
        assert fx.temporal == TEMPORAL_WEIGHT
        for frames in (small, large):               # the second size starts afresh
            target = frames.next()
            assert np.array_equal(frames.apply(fx, motion_tex=target.motion), frames.apply(plain))
            target = frames.next()
            assert not np.array_equal(frames.apply(fx, motion_tex=target.motion), frames.apply(plain))
        fx.reset_history()
        target = large.next()
        assert np.array_equal(large.apply(fx, motion_tex=target.motion), large.apply(plain))
    small.target.release()
    large.target.release()


def test_C21_bad_motion_is_refused_before_any_gl_work_and_keeps_the_history(gl_ctx, scene):
    frames = Frames(gl_ctx, scene)
    wrong_size = gl_ctx.texture((64, 40), 2, dtype="f4")
    bytes_motion = gl_ctx.texture(SIZE, 4)                 # RGBA8: no sign, no sub-texel precision
    released = gl_ctx.texture(SIZE, 2, dtype="f4")
    released.release()
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5) as fx:
        target = frames.next()
        frames.apply(fx, motion_tex=target.motion)
        target = frames.next()
        for motion, message in ((None, "needs motion_tex"), (wrong_size, "64x40"), (bytes_motion, "float texture"),
                                (released, "released"), ("motion", "moderngl.Texture")):
            with pytest.raises(InputError, match=message):
                frames.apply(fx, motion_tex=motion)
            assert gl_ctx.error == "GL_NO_ERROR"
        # the history survived the refusals: this frame still blends
        with postfx.PostFX(gl_ctx, "ink") as plain:
            assert not np.array_equal(frames.apply(fx, motion_tex=target.motion), frames.apply(plain))
        for value in (1.0, -0.1, "0.5", float("nan")):
            with pytest.raises(InputError, match="temporal must be"):
                fx.temporal = value
    for texture in (wrong_size, bytes_motion):
        texture.release()
    frames.target.release()


def test_C21_temporal_mode_leaks_nothing(gl_ctx, scene):
    frames = Frames(gl_ctx, scene)
    frames.next()
    before = live_gl_objects()
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5, kernels="naive") as fx:
        for size, budget in ((SIZE, None), ((96, 64), SPREAD), (SIZE, SPREAD)):
            fx.frame_budget_ms = budget
            texture_frames = Frames(gl_ctx, scene, size)
            for _ in range(2):
                target = texture_frames.next()
                texture_frames.apply(fx, motion_tex=target.motion)
            texture_frames.target.release()
        fx.temporal = 0
        frames.apply(fx)                                   # off again: motion_tex not needed
    assert difference(live_gl_objects(), before) == {}
    frames.target.release()


def test_target_receives_the_temporal_result(gl_ctx, scene):
    frames = Frames(gl_ctx, scene)
    out = gl_ctx.texture(SIZE, 4)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5) as fx:
        for _ in range(2):
            target = frames.next()
            returned = frames.apply(fx, motion_tex=target.motion)
        c = frames.camera
        assert fx.apply(target.color, target.depth, near=c.near, far=c.far, motion_tex=target.motion,
                        target=out) is None
        assert np.array_equal(read(out), read(fx.output))
        assert not np.array_equal(read(out), returned)     # a third frame, blended with the second
    out.release()
    frames.target.release()


def test_temporal_mode_with_a_time_sliced_network(gl_ctx, scene):
    """A network spread over frames (frame_budget_ms) and the temporal mode together: every
    frame presents a picture and resolves it with the history, through several complete
    network results, with no GL error."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5, frame_budget_ms=0.001) as fx:
        target = frames.next()
        previous = frames.apply(fx, motion_tex=target.motion)      # the first: whole network, measured
        assert fx.frames_per_result > 1                            # then sliced
        for _ in range(2 * fx.frames_per_result):                  # two complete results
            target = frames.next()
            out = frames.apply(fx, motion_tex=target.motion)
            assert gl_ctx.error == "GL_NO_ERROR"
            assert out.std() > 1                                   # a picture, not a cleared texture
            assert not np.array_equal(out, previous)
            previous = out
    frames.target.release()


def rendered_run(ctx, scene, size, start, count):
    """`count` consecutive frames of the fly-through, each in its own target (replayable)."""
    runs = []
    for k in range(count):
        t = start + k / 30
        camera, before = scene.camera_path(t), scene.camera_path(t - 1 / 30)
        target = SceneTarget(ctx, size, motion=True)
        scene.render(target, camera, t, previous_camera=before, previous_time=t - 1 / 30)
        runs.append((target, camera))
    return runs


def test_C21_two_temporal_passes_interleaved_keep_their_own_history(gl_ctx, scene):
    """Two passes in one context, each with its own history, interleaved frame by frame give
    what each gives alone (C14 for the temporal mode)."""
    run_a, run_b = rendered_run(gl_ctx, scene, SIZE, START, 3), rendered_run(gl_ctx, scene, (96, 64), 12.0, 3)

    def frame(fx, target, camera):
        return read(fx.apply(target.color, target.depth, near=camera.near, far=camera.far, motion_tex=target.motion))
    try:
        with postfx.PostFX(gl_ctx, "ink", temporal=0.5) as fx:
            alone_a = [frame(fx, *f) for f in run_a]
        with postfx.PostFX(gl_ctx, "watercolor", temporal=0.7) as fx:
            alone_b = [frame(fx, *f) for f in run_b]
        with postfx.PostFX(gl_ctx, "ink", temporal=0.5) as fx_a, \
                postfx.PostFX(gl_ctx, "watercolor", temporal=0.7) as fx_b:
            for i in range(3):
                assert np.array_equal(frame(fx_b, *run_b[i]), alone_b[i]), f"pass B, frame {i}"
                assert np.array_equal(frame(fx_a, *run_a[i]), alone_a[i]), f"pass A, frame {i}"
    finally:
        for target, _ in run_a + run_b:
            target.release()


def run_spread_against_the_reference(gl_ctx, frames, fx, plain, count, *, first_step=0, measured_first=True,
                                     strength=1.0, previous=None):
    """`count` frames through `fx` (temporal, spread over frames) checked against the
    references: offsets chained (chain_result_offsets), the old result read through them
    (read_through_offsets) and blended with the original by `strength`, then resolved with
    the history. `plain`: the same network spread the same way at strength 1, no temporal
    mode (the old result where it was made). previous: the last (output, depth01) if the
    pass has history. Returns how many pixels read elsewhere."""
    offsets, moved = None, 0
    for k in range(count):
        target = frames.next()
        got = frames.apply(fx, motion_tex=target.motion)
        shown = frames.apply(plain)
        assert fx.frames_per_result == plain.frames_per_result > 2
        if measured_first and k == 0:
            started = completed = True
        else:
            step = (k - (1 if measured_first else 0) + first_step) % fx.frames_per_result
            started, completed = step == 0, step == fx.frames_per_result - 1
        motion = target.read_motion()
        offsets = chain_result_offsets(offsets, motion, run_started=started, run_completed=completed)
        current = read_through_offsets(shown, offsets[..., :2])
        if strength != 1.0:
            original = read(target.color) / 255.0
            current = original + np.float32(strength) * (current - original)
        want = current if previous is None else resolve(current, previous[0], motion, previous[1],
                                                         weight=fx.temporal)
        off = np.abs(got / 255.0 - want).max(axis=-1) > TOLERANCE
        assert off.mean() < 0.0005, f"frame {k}: {off.mean():.3%} of pixels off the reference"
        moved += int((np.abs(offsets[..., :2]) > 0.5).any(axis=-1).sum())
        previous = (got, frames.depth01())
    return moved


@pytest.mark.parametrize("size", [SIZE, ODD])
def test_B1_spread_network_in_temporal_mode_matches_the_reference(gl_ctx, scene, size):
    """A network spread over frames (one dispatch a frame) in temporal mode: the offsets to
    the shown result's frame chain through the motion, and present reads the old result
    there (postfx.temporal.chain_result_offsets, read_through_offsets), over two whole runs."""
    frames = Frames(gl_ctx, scene, size)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.6, frame_budget_ms=SPREAD) as fx, \
            postfx.PostFX(gl_ctx, "ink", frame_budget_ms=SPREAD) as plain:
        assert run_spread_against_the_reference(gl_ctx, frames, fx, plain, 18) > 0
        assert fx.frames_per_result <= 8                      # 18 frames: the measured one and two runs
    frames.target.release()


def test_strength_blends_the_original_where_it_is_now(gl_ctx, scene):
    """With strength < 1, the old result moves with the picture and the original frame is
    blended in where the pixel is now (not moved with the result)."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5, frame_budget_ms=SPREAD, strength=0.5) as fx, \
            postfx.PostFX(gl_ctx, "ink", frame_budget_ms=SPREAD) as plain:
        assert run_spread_against_the_reference(gl_ctx, frames, fx, plain, 12, strength=0.5) > 0
    frames.target.release()


def test_C21_spreading_switched_off_and_on_starts_a_new_chain(gl_ctx, scene):
    """Run whole for a while, the offsets are dropped (and their textures freed); spread
    again, the chain starts afresh instead of from offsets many frames old."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5, frame_budget_ms=SPREAD) as fx, \
            postfx.PostFX(gl_ctx, "ink", frame_budget_ms=SPREAD) as plain:
        run_spread_against_the_reference(gl_ctx, frames, fx, plain, 4)
        spread_objects = live_gl_objects()
        fx.frame_budget_ms = plain.frame_budget_ms = None
        for _ in range(3):
            target = frames.next()
            last = (frames.apply(fx, motion_tex=target.motion), frames.depth01())
            frames.apply(plain)
        # the two offset textures freed (a present program without offsets is compiled once)
        assert difference(live_gl_objects(), spread_objects).get("texture") == -2
        fx.frame_budget_ms = plain.frame_budget_ms = SPREAD       # a new run from the next frame, no chain yet
        assert run_spread_against_the_reference(gl_ctx, frames, fx, plain, 10, measured_first=False,
                                                previous=last) > 0
        fx.reset_history()                                        # a cut: no history, the next frame whole
        plain.reset_history()
        assert run_spread_against_the_reference(gl_ctx, frames, fx, plain, 10) > 0
    frames.target.release()


def test_a_spread_network_follows_the_motion_in_temporal_mode(gl_ctx, scene):
    """Spread over 8+ frames, the result shown is that many frames old. Read through the
    chained offsets it stays close to what the network gives for this frame; unmoved (the
    same blend without offsets, the reference) or without temporal mode it lags far behind."""
    frames = Frames(gl_ctx, scene)
    budget = 1e-6
    scores = {"spread, temporal": [], "spread, temporal, unmoved": [], "spread": []}

    def psnr(image, reference):
        return 10 * np.log10(1 / np.mean((image / 255.0 - reference / 255.0) ** 2))
    with postfx.PostFX(gl_ctx, "ink", temporal=0.5, frame_budget_ms=budget) as fx, \
            postfx.PostFX(gl_ctx, "ink", frame_budget_ms=budget) as plain, postfx.PostFX(gl_ctx, "ink") as fresh:
        unmoved = None
        for k in range(20):
            target = frames.next()
            got, shown, now = frames.apply(fx, motion_tex=target.motion), frames.apply(plain), frames.apply(fresh)
            if unmoved is not None:
                shown_blend = resolve(shown, unmoved[0], target.read_motion(), unmoved[1], weight=0.5) * 255.0
            else:
                shown_blend = shown.astype(np.float32)
            unmoved = (shown_blend / 255.0, frames.depth01())
            if k > fx.frames_per_result:
                for name, image in zip(scores, (got, shown_blend, shown), strict=True):
                    scores[name].append(psnr(image, now))
    mean = {name: float(np.mean(values)) for name, values in scores.items()}
    assert mean["spread, temporal"] > mean["spread, temporal, unmoved"] + 3, mean
    assert mean["spread, temporal"] > mean["spread"] + 3, mean
    frames.target.release()


def test_C6_temporal_history_switched_on_later_is_checked_against_the_memory_budget(gl_ctx, scene):
    """The budget holds the frame without history; switching the temporal mode on (or
    spreading the network, which adds the result offsets) at the same size is refused
    before anything is allocated."""
    frames = Frames(gl_ctx, scene)
    target = frames.next()
    with postfx.PostFX(gl_ctx, "ink") as fx:
        fx.memory_budget_bytes = fx.memory_estimate(*SIZE)["total"] + 16
        frames.apply(fx)
        before = live_gl_objects()
        fx.temporal = 0.5
        with pytest.raises(postfx.errors.FrameTooLarge, match="temporal history"):
            frames.apply(fx, motion_tex=target.motion)
        assert difference(live_gl_objects(), before) == {} and gl_ctx.error == "GL_NO_ERROR"
        fx.memory_budget_bytes = fx.memory_estimate(*SIZE)["total"] + 16    # history fits, offsets do not
        frames.apply(fx, motion_tex=target.motion)
        fx.frame_budget_ms = SPREAD
        before = live_gl_objects()
        with pytest.raises(postfx.errors.FrameTooLarge, match="temporal history"):
            frames.apply(fx, motion_tex=target.motion)
        assert difference(live_gl_objects(), before) == {} and gl_ctx.error == "GL_NO_ERROR"
    frames.target.release()


@pytest.mark.parametrize("temporal", [0.0, 0.5])
def test_a_cut_runs_a_spread_network_whole(gl_ctx, scene, temporal):
    """reset_history() on a spread network: the next frame shows this frame's own result
    (the network run whole), not a result of the shot before the cut; spreading resumes."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", temporal=temporal, frame_budget_ms=SPREAD) as fx, \
            postfx.PostFX(gl_ctx, "ink") as whole:
        for _ in range(3):
            target = frames.next()
            frames.apply(fx, motion_tex=target.motion)
        frames.k += 300                                   # the camera jumps ten seconds on
        fx.reset_history()
        target = frames.next()
        cut = frames.apply(whole)
        assert np.array_equal(frames.apply(fx, motion_tex=target.motion), cut)
        target = frames.next()
        after = frames.apply(fx, motion_tex=target.motion)
        assert len(fx.schedule) > 1
        if not temporal:                                  # spread again: a new run, the cut's result shown
            assert np.array_equal(after, cut)
    frames.target.release()


def test_a_cut_before_the_first_frame_costs_one_whole_frame(gl_ctx, scene):
    """reset_history() before the first apply(): the measuring frame is the whole frame the
    cut asks for; the next one is already a step of the new schedule."""
    frames = Frames(gl_ctx, scene)
    with postfx.PostFX(gl_ctx, "ink", frame_budget_ms=SPREAD) as fx, postfx.PostFX(gl_ctx, "ink") as whole:
        fx.reset_history()
        frames.next()
        first = frames.apply(whole)
        assert np.array_equal(frames.apply(fx), first)
        frames.next()
        assert np.array_equal(frames.apply(fx), first)    # a step: still the first frame's result
    frames.target.release()
