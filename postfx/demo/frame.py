"""One demo frame, shared by the window and the headless paths: render the
scene (colour, depth and motion since the last frame), run the pass, and time both."""
from __future__ import annotations

from dataclasses import dataclass

import moderngl

from ..gl.timing import PassTimer
from ..model_file import load
from ..postfx_pass import PostFX
from ..scene import Camera, Scene, SceneTarget
from ..styles import DEFAULT_STYLE, bundled_styles


@dataclass
class FrameTimes:
    scene_ms: float = 0.0
    pass_ms: float = 0.0
    source: str = "wall clock"        # or "GPU timer"


class DemoFrame:
    """Scene + pass at one frame size, in one context."""

    def __init__(self, ctx: moderngl.Context, size, *, style=None, seed: int = 0,
                 internal_scale: float = 1.0, strength: float = 1.0, fp16: bool = False,
                 frame_budget_ms: float | None = None, temporal: float = 0.0):
        self.ctx = ctx
        self.styles = bundled_styles()
        self.style = style if style is not None else DEFAULT_STYLE
        self.scene = Scene(ctx, seed=seed)
        self.target = SceneTarget(ctx, size, motion=True)
        self.fx = PostFX(ctx, load(self.style), internal_scale=internal_scale, strength=strength, fp16=fp16,
                         frame_budget_ms=frame_budget_ms, temporal=temporal)
        self.timer = PassTimer(ctx)
        self.times = FrameTimes()
        self.previous: tuple[Camera, float] | None = None     # the last frame's camera and time: motion

    @property
    def size(self) -> tuple[int, int]:
        return self.target.size

    def resize(self, size) -> None:
        if tuple(size) != self.target.size:
            self.target.release()
            self.target = SceneTarget(self.ctx, size, motion=True)

    def set_style(self, style) -> None:
        """Swap the network; keeps scale, strength and the temporal mode (not its history)."""
        new = PostFX(self.ctx, load(style), internal_scale=self.fx.internal_scale, strength=self.fx.strength,
                     fp16=self.fx.fp16, frame_budget_ms=self.fx.frame_budget_ms,
                     temporal=self.fx.temporal)
        self.fx.release()
        self.fx, self.style = new, style

    def cut(self) -> None:
        """The next frame does not follow this one (the camera jumped): no motion, no history."""
        self.previous = None
        self.fx.reset_history()

    def render(self, camera: Camera, time_s: float, stylize: bool = True):
        """Draw the scene, then (if stylize) the pass; returns the pass output texture or None."""
        before = {} if self.previous is None else {"previous_camera": self.previous[0],
                                                   "previous_time": self.previous[1]}
        self.times.scene_ms, _ = self.timer.measure(
            lambda: self.scene.render(self.target, camera, time=time_s, **before))
        self.previous = (camera, time_s)
        if not stylize:
            self.fx.reset_history()         # what the pass last showed is not the last frame
            return None
        out = {}
        self.times.pass_ms, self.times.source = self.timer.measure(
            lambda: out.setdefault("tex", self.fx.apply(self.target.color, self.target.depth,
                                                        near=camera.near, far=camera.far,
                                                        motion_tex=self.target.motion)))
        return out["tex"]

    def release(self) -> None:
        for obj in (self.fx, self.target, self.scene):
            obj.release()
