"""What the pass's temporal mode keeps between frames: this frame's stylized output
before the blend, the last two results (one is read as history while the other is
written: no copy per frame) and the normalized linear depth of each, at frame size.

A result is history only for the frame after it, at the same size: resize() drops
it, and so does reset() (a camera cut)."""
from __future__ import annotations

import moderngl

from . import frame_io
from .context import allocating
from .dispatch import DeviceLimits, check_limits
from .resources import run_dispatch

GL_R32F = 0x822E
GL_RGBA8 = 0x8058


class History:
    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.size: tuple[int, int] | None = None
        self.current = None                  # RGBA8: present's output in temporal mode
        self.results: list = []              # 2 x RGBA8
        self.framebuffers: list = []         # one per result, to blit into a caller's target
        self.depths: list = []               # 2 x R32F
        self.newest = 0                      # index of the last written result
        self.valid = False                   # the newest result is the previous frame's, at this size
        with allocating(ctx, "the history sampler objects"):
            self.linear = ctx.sampler(repeat_x=False, repeat_y=False, filter=(moderngl.LINEAR, moderngl.LINEAR))
            self.nearest = ctx.sampler(repeat_x=False, repeat_y=False,
                                       filter=(moderngl.NEAREST, moderngl.NEAREST))

    @staticmethod
    def bytes(width: int, height: int) -> int:
        """GPU memory it holds at a frame size: three RGBA8 and two R32F textures."""
        return 20 * width * height

    def resize(self, width: int, height: int) -> None:
        if self.size == (width, height):
            return
        self.release_textures()
        try:
            with allocating(self.ctx, f"the {width}x{height} temporal history ({self.bytes(width, height)} bytes)"):
                self.current = self.ctx.texture((width, height), 4)
                self.results = [self.ctx.texture((width, height), 4) for _ in range(2)]
                self.depths = [self.ctx.texture((width, height), 1, dtype="f4") for _ in range(2)]
                self.framebuffers = [self.ctx.framebuffer(color_attachments=[r]) for r in self.results]
        except BaseException:
            self.release_textures()
            raise
        self.size = (width, height)

    def reset(self) -> None:
        """The next frame starts without history (a cut, a jump of the camera)."""
        self.valid = False

    def bind(self, units: dict) -> int:
        """Bind the history (the newest result and its depth) and this frame's current output
        for reading, the other result and depth for writing; returns the index of the result
        written (results / framebuffers)."""
        older = 1 - self.newest
        self.current.use(units["current"])
        self.nearest.use(units["current"])
        self.results[self.newest].use(units["history"])
        self.linear.use(units["history"])
        self.depths[self.newest].use(units["history_depth"])
        self.linear.use(units["history_depth"])
        self.results[older].bind_to_image(units["image_output"], read=False, write=True, format=GL_RGBA8)
        self.depths[older].bind_to_image(units["image_depth"], read=False, write=True, format=GL_R32F)
        return older

    def resolve(self, programs, limits: DeviceLimits, weight: float, motion_tex, motion_depth: bool,
                depth: dict, depth_tex, depth_sampler, near, far) -> int:
        """The temporal blend (shaders/temporal_resolve.comp) of the presented frame (`current`)
        with the history; returns the index of the result it wrote, the next frame's history."""
        units = {"current": frame_io.TEXTURE_CURRENT, "history": frame_io.TEXTURE_HISTORY,
                 "history_depth": frame_io.TEXTURE_HISTORY_DEPTH, "image_output": frame_io.IMAGE_OUTPUT,
                 "image_depth": frame_io.IMAGE_DEPTH_OUT}
        uniforms = {"frame_size": self.size, "history_weight": weight, "has_history": int(self.valid),
                    "current_texture": units["current"], "history_texture": units["history"],
                    "history_depth": units["history_depth"], "motion_texture": frame_io.TEXTURE_MOTION}
        if depth["USE_DEPTH"]:
            depth_tex.use(frame_io.TEXTURE_DEPTH)
            depth_sampler.use(frame_io.TEXTURE_DEPTH)
            uniforms.update(depth_texture=frame_io.TEXTURE_DEPTH, near_plane=float(near), far_plane=float(far))
        motion_tex.use(frame_io.TEXTURE_MOTION)
        self.nearest.use(frame_io.TEXTURE_MOTION)
        written = self.bind(units)
        dispatch = frame_io.resolve_dispatch(self.size, frame_io.resolve_defines(depth, motion_depth), uniforms)
        check_limits(dispatch, limits)
        dispatch.program = programs.get(dispatch.shader, dispatch.defines, dispatch.layer)
        run_dispatch(dispatch, {}, {})
        self.unbind(units)
        self.nearest.clear(frame_io.TEXTURE_MOTION)
        if depth["USE_DEPTH"]:
            depth_sampler.clear(frame_io.TEXTURE_DEPTH)
        self.newest, self.valid = written, True
        return written

    def unbind(self, units: dict) -> None:
        for unit in (units["current"], units["history"], units["history_depth"]):
            self.linear.clear(unit)

    def release_textures(self) -> None:
        for obj in [*self.framebuffers, self.current, *self.results, *self.depths]:
            if obj is not None:
                obj.release()
        self.current, self.results, self.depths, self.framebuffers = None, [], [], []
        self.size, self.valid = None, False

    def release(self) -> None:
        self.release_textures()
        for sampler in (getattr(self, "linear", None), getattr(self, "nearest", None)):
            if sampler is not None:
                sampler.release()
