"""One demo frame, shared by the window and the headless paths: render the
scene, run the pass, and time both."""
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
                 frame_budget_ms: float | None = None):
        self.ctx = ctx
        self.styles = bundled_styles()
        self.style = style if style is not None else DEFAULT_STYLE
        self.scene = Scene(ctx, seed=seed)
        self.target = SceneTarget(ctx, size)
        self.fx = PostFX(ctx, load(self.style), internal_scale=internal_scale, strength=strength, fp16=fp16,
                         frame_budget_ms=frame_budget_ms)
        self.timer = PassTimer(ctx)
        self.times = FrameTimes()

    @property
    def size(self) -> tuple[int, int]:
        return self.target.size

    def resize(self, size) -> None:
        if tuple(size) != self.target.size:
            self.target.release()
            self.target = SceneTarget(self.ctx, size)

    def set_style(self, style) -> None:
        """Swap the network; keeps scale and strength."""
        new = PostFX(self.ctx, load(style), internal_scale=self.fx.internal_scale, strength=self.fx.strength,
                     fp16=self.fx._network.fp16, frame_budget_ms=self.fx.frame_budget_ms)
        self.fx.release()
        self.fx, self.style = new, style

    def render(self, camera: Camera, time_s: float, stylize: bool = True):
        """Draw the scene, then (if stylize) the pass; returns the pass output texture or None."""
        self.times.scene_ms, _ = self.timer.measure(lambda: self.scene.render(self.target, camera, time=time_s))
        if not stylize:
            return None
        out = {}
        self.times.pass_ms, self.times.source = self.timer.measure(
            lambda: out.setdefault("tex", self.fx.apply(self.target.color, self.target.depth,
                                                        near=camera.near, far=camera.far)))
        return out["tex"]

    def release(self) -> None:
        for obj in (self.fx, self.target, self.scene):
            obj.release()
