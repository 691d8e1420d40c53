"""What the pass's temporal mode keeps between frames: this frame's stylized output
before the blend, the last two results (one is read as history while the other is
written: no copy per frame) and the normalized linear depth of each, at frame size.

A result is history only for the frame after it, at the same size: resize() drops
it, and so does reset() (a camera cut).

With a network spread over several frames, the result shown is older than the frame;
two RGBA32F textures (made on first use) chain, frame by frame, where each pixel was
in that result's frame (shaders/result_offsets.comp), and present.comp reads the result
there."""
from __future__ import annotations

import moderngl

from . import frame_io
from .context import allocating
from .dispatch import DeviceLimits, check_limits
from .resources import run_dispatch

GL_R32F = 0x822E
GL_RGBA8 = 0x8058
GL_RGBA32F = 0x8814


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
        self.offsets: list = []              # 2 x RGBA32F result offsets, for a network spread over frames
        self.newest_offsets = 0
        self.offsets_valid = False           # the newest offsets are the previous frame's
        with allocating(ctx, "the history sampler objects"):
            self.linear = ctx.sampler(repeat_x=False, repeat_y=False, filter=(moderngl.LINEAR, moderngl.LINEAR))
            self.nearest = ctx.sampler(repeat_x=False, repeat_y=False,
                                       filter=(moderngl.NEAREST, moderngl.NEAREST))

    @staticmethod
    def bytes(width: int, height: int, spread: bool = False) -> int:
        """GPU memory it holds at a frame size: three RGBA8 and two R32F textures, and two
        RGBA32F for a network spread over frames."""
        return (20 + (32 if spread else 0)) * width * height

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
        self.valid = self.offsets_valid = False

    def chain_offsets(self, programs, limits: DeviceLimits, motion_tex, *, run_started: bool,
                      run_completed: bool) -> None:
        """This frame's result offsets from the last frame's and the motion (a network
        spread over frames; present reads them: use_offsets)."""
        width, height = self.size
        if not self.offsets:
            try:
                for _ in range(2):
                    with allocating(self.ctx, f"the {width}x{height} result offsets ({16 * width * height} bytes)"):
                        self.offsets.append(self.ctx.texture((width, height), 4, dtype="f4"))
            except BaseException:
                self.drop_offsets()
                raise
            self.offsets_valid = False
        older = 1 - self.newest_offsets
        motion_tex.use(frame_io.TEXTURE_MOTION)
        self.nearest.use(frame_io.TEXTURE_MOTION)
        self.offsets[self.newest_offsets].use(frame_io.TEXTURE_OFFSETS)
        self.nearest.use(frame_io.TEXTURE_OFFSETS)
        self.offsets[older].bind_to_image(frame_io.IMAGE_OFFSETS_OUT, read=False, write=True, format=GL_RGBA32F)
        dispatch = frame_io.offsets_dispatch(self.size, {
            "frame_size": self.size, "has_previous": int(self.offsets_valid), "run_started": int(run_started),
            "run_completed": int(run_completed), "motion_texture": frame_io.TEXTURE_MOTION,
            "previous_offsets": frame_io.TEXTURE_OFFSETS})
        check_limits(dispatch, limits)
        dispatch.program = programs.get(dispatch.shader, dispatch.defines, dispatch.layer)
        run_dispatch(dispatch, {}, {})
        for unit in (frame_io.TEXTURE_MOTION, frame_io.TEXTURE_OFFSETS):
            self.nearest.clear(unit)
        self.ctx.memory_barrier(moderngl.TEXTURE_FETCH_BARRIER_BIT | moderngl.SHADER_IMAGE_ACCESS_BARRIER_BIT)
        self.newest_offsets, self.offsets_valid = older, True

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

    def use_offsets(self, unit: int) -> None:
        """This frame's result offsets for reading (present.comp), NEAREST; clear_offsets after."""
        self.offsets[self.newest_offsets].use(unit)
        self.nearest.use(unit)

    def clear_offsets(self, unit: int) -> None:
        self.nearest.clear(unit)

    def drop_offsets(self) -> None:
        """The network runs whole again: the chain is broken, and its textures are freed."""
        for texture in self.offsets:
            texture.release()
        self.offsets, self.offsets_valid = [], False

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
        for obj in [*self.framebuffers, self.current, *self.results, *self.depths, *self.offsets]:
            if obj is not None:
                obj.release()
        self.current, self.results, self.depths, self.framebuffers, self.offsets = None, [], [], [], []
        self.size, self.valid, self.offsets_valid = None, False, False

    def release(self) -> None:
        self.release_textures()
        for sampler in (getattr(self, "linear", None), getattr(self, "nearest", None)):
            if sampler is not None:
                sampler.release()
