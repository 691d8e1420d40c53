"""The post-processing pass: a caller's colour (+ depth) texture in, the
stylized frame out, inside the caller's own moderngl context."""
from __future__ import annotations

import math
import numbers

import moderngl

from . import model_format as fmt
from . import pass_inputs, time_slice
from .errors import ContextLost, DeviceLimitError, FrameTooLarge, FrameTooSmall, InputError, PassReleased
from .gl import frame_io
from .gl.context import allocating, is_live, renderer, require_compute
from .gl.conv_kernels import static_choice
from .gl.dispatch import DeviceLimits, check_limits
from .gl.history import History
from .gl.network import GLNetwork, weight_bytes
from .gl.programs import ProgramCache
from .gl.resources import run_dispatch
from .gl.target_blit import TargetBlit
from .model import Model
from .model_file import load
from .temporal import TEMPORAL_WEIGHT

GL_RGBA8 = 0x8058
MIN_INTERNAL_SCALE = 1 / 16


class PostFX:
    """Runs a style network on every frame.

    Reads:  colour — an RGBA texture: RGBA8 / SRGB8_ALPHA8 (stored bytes taken as
                     sRGB-encoded, no decode: mid-grey stays mid-grey) or RGBA16F /
                     RGBA32F (linear values, clamped to [0, 1] and sRGB-encoded);
            depth  — a depth texture (D16 / D24 / D32F) of the same size, for models
                     whose input contract has a depth channel; linearized with the
                     near / far planes, standard or reversed-Z.
    Writes: an RGBA8 texture of the frame size (sRGB-encoded values), owned by the
            pass, or the caller's framebuffer / RGBA8 texture given as `target`.
    Holds:  GPU memory for the weights and, per frame size, the network's activations
            and the output (memory_estimate()); with memory_budget_bytes set, a frame
            size that would exceed it is refused before anything is allocated.
    Time:   the whole network every apply(), or, with frame_budget_ms set, a slice of it
            per apply() (see frame_budget_ms) for a network too slow for one frame.
    Temporal: with temporal > 0, apply() also takes the renderer's motion (motion_tex)
            and blends the previous result, reprojected, into this one (see temporal).
    """

    reads = ("color", "depth")
    writes = ("color",)

    def __init__(self, ctx: moderngl.Context, model, *, strength: float = 1.0,
                 internal_scale: float = 1.0, fp16: bool = False, kernels: str = "auto",
                 memory_budget_bytes: int | None = None, frame_budget_ms: float | None = None,
                 tuning_budget_s: float | None = None, temporal: float = 0.0):
        require_compute(ctx)
        self.memory_budget_bytes = memory_budget_bytes
        self.model: Model = load(model)
        if not self.model.is_style:
            raise InputError(f"model {self.model.name!r} takes {self.model.meta['input']['channels']} and gives "
                             f"{self.model.meta['output']['channels']}; the pass needs RGB or RGBD in, RGB out "
                             "at the frame size. Use postfx.run for raw networks")
        self.ctx = ctx
        self.strength = strength
        self.internal_scale = internal_scale
        self.temporal = temporal
        self._history: History | None = None          # made at the first temporal apply()
        self._latest = None
        self._programs = ProgramCache(ctx)
        self._network = None
        self._output = None              # RGBA8 texture at frame size
        self._output_fbo = None
        self._blit = TargetBlit(ctx)     # the output into a caller's target
        self._frame_size = None          # (W, H)
        self._scaled_size = None         # (W, H) the network sees
        # Time slicing (frame_budget_ms): per-dispatch seconds measured at one size, the
        # dispatch ranges one apply() each, and the next range to run (0: a new run).
        self._dispatch_seconds: list[float] = []
        self._measured = False           # _dispatch_seconds are of the current size
        self._schedule: list[tuple[int, int]] = []
        self._next_step = 0
        self._whole_next = False         # reset_history(): the next frame runs the network whole
        self.frame_budget_ms = frame_budget_ms
        self._released = False
        # What the network uploads when it is built (the static kernels' weight forms).
        limits = DeviceLimits.of(ctx)
        initial = {layer.name: static_choice(layer, self.model.graph, kernels, limits)
                   for layer in self.model.graph.layers if layer.op in fmt.CONV_OPS}
        built_weights = weight_bytes(self.model, initial)
        if memory_budget_bytes is not None and built_weights > memory_budget_bytes:
            raise DeviceLimitError(f"the weights of model {self.model.name!r} take {built_weights} bytes of GPU "
                                   f"memory, over memory_budget_bytes {memory_budget_bytes}; raise the budget or "
                                   "use a smaller model")
        try:
            # present.comp reads the output through an image view: on llvmpipe a storage-buffer
            # load is a loop over the SIMD lanes, and present makes four per frame pixel.
            self._network = GLNetwork(ctx, self.model, kernels=kernels, fp16=fp16, programs=self._programs,
                                      output_view=True, tuner=_tuner(kernels, tuning_budget_s))
            # Sampler objects override the textures' own state, which stays the caller's.
            with allocating(ctx, "the depth sampler object"):
                self._depth_sampler = ctx.sampler(repeat_x=False, repeat_y=False,
                                                  filter=(moderngl.NEAREST, moderngl.NEAREST), compare_func="")
            with allocating(ctx, "the colour sampler object"):
                self._color_sampler = ctx.sampler(repeat_x=False, repeat_y=False,
                                                  filter=(moderngl.NEAREST, moderngl.NEAREST))
        except BaseException:
            self.release()
            raise

    # --- options ---------------------------------------------------------------

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise InputError(f"strength must be in [0, 1], got {value}")
        self._strength = value

    @property
    def internal_scale(self) -> float:
        return self._internal_scale

    @internal_scale.setter
    def internal_scale(self, value: float) -> None:
        value = float(value)
        if not MIN_INTERNAL_SCALE <= value <= 1.0:
            raise InputError(f"internal_scale must be in [{MIN_INTERNAL_SCALE}, 1], got {value}")
        self._internal_scale = value

    @property
    def fp16(self) -> bool:
        """Whether activations are stored as fp16 (fixed when the pass is made)."""
        return self._network.fp16

    @property
    def temporal(self) -> float:
        """The share of the reprojected previous result in each output, 0 (off) to below 1;
        True means postfx.temporal.TEMPORAL_WEIGHT. On, apply() needs motion_tex; history is
        dropped on the first frame, after a resize and by reset_history() (a camera cut)."""
        return self._temporal

    @temporal.setter
    def temporal(self, value: float) -> None:
        if value is True:
            value = TEMPORAL_WEIGHT
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
            raise InputError(f"temporal must be a number in [0, 1) (or True for {TEMPORAL_WEIGHT}), got {value!r}")
        if value == 0 and getattr(self, "_history", None) is not None:
            self._history.reset()                       # turned back on later: no stale history
        self._temporal = float(value)

    def reset_history(self) -> None:
        """Start the next frame without history (a camera cut or teleport). With
        frame_budget_ms the next frame also runs the network whole (one slow frame), so the
        new shot does not show a result of the old one; spreading resumes after it."""
        if self._history is not None:
            self._history.reset()
        self._whole_next = True          # a budget set before the next apply() must not show the old shot

    @property
    def memory_budget_bytes(self) -> int | None:
        """GPU memory the pass may hold (weights, activations, output), or None for no limit."""
        return self._memory_budget_bytes

    @memory_budget_bytes.setter
    def memory_budget_bytes(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0):
            raise InputError(f"memory_budget_bytes must be a positive int or None, got {value!r}")
        self._memory_budget_bytes = None if value is None else int(value)

    @property
    def frame_budget_ms(self) -> float | None:
        """Milliseconds of network work per apply(), or None to run the whole network
        every apply(). With a budget, a network too slow for one frame is spread over
        several: the first apply() at a frame size runs it whole, timing each dispatch
        (the measure is taken, not guessed, on this device), and cuts the dispatches into
        consecutive steps that fit the budget (one over it gets a step alone). Each later
        apply() runs the next step; the input is read from the frame at a run's first
        step, and until its last step the output shows the last complete result, blended
        with the current frame by `strength` (in temporal mode moved along with the motion
        since its run's input: shaders/result_offsets.comp). Packing the input and presenting run every
        frame on top of the budget. Setting it re-schedules from the stored timings and
        starts a new run at the next apply(); a resize re-measures."""
        return self._frame_budget_ms

    @frame_budget_ms.setter
    def frame_budget_ms(self, value: float | None) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or value <= 0:
                raise InputError(f"frame_budget_ms must be a positive finite number of milliseconds or None, "
                                 f"got {value!r}")
            value = float(value)
        self._frame_budget_ms = value
        self._reschedule()

    @property
    def schedule(self) -> list[tuple[int, int]] | None:
        """The (start, stop) ranges of the network's dispatches that successive apply()
        calls run, one per call; None until the first apply() at the current size."""
        if self._frame_budget_ms is not None:
            return list(self._schedule) if self._measured else None
        return [(0, len(self._network.dispatches))] if self._network.dispatches else None

    @property
    def frames_per_result(self) -> int | None:
        """apply() calls per complete network result (1 without a budget); None until
        the first apply() at the current size."""
        schedule = self.schedule
        return None if schedule is None else len(schedule)

    def _reschedule(self) -> None:
        self._schedule = [] if self._frame_budget_ms is None else time_slice.cut(self._dispatch_seconds,
                                                                        self._frame_budget_ms / 1000)
        self._next_step = 0

    @property
    def output(self) -> moderngl.Texture | None:
        """The texture the last apply() wrote (frame size); in temporal mode the two history
        results take turns."""
        return self._latest if self._frame_size is not None else None

    # --- sizes -------------------------------------------------------------------

    def _run_size(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((W, H) the network sees, (H, W) it runs at after padding) for a frame."""
        scaled = (max(1, round(width * self._internal_scale)), max(1, round(height * self._internal_scale)))
        return scaled, fmt.run_size(self.model.graph, scaled[1], scaled[0])

    def memory_estimate(self, width: int, height: int) -> dict[str, int]:
        """Bytes of GPU memory the pass holds for frames of width x height at the current
        internal scale: {"weights", "activations" (network buffers and image views at the
        run size), "output" (the RGBA8 frame), "total"}. Raises FrameTooLarge where a
        device limit rules the size out. Allocates nothing."""
        _check_not_empty(width, height)
        limit = self._network.limits.max_texture_size
        if width > limit or height > limit:
            raise FrameTooLarge(f"frame {width}x{height} exceeds GL_MAX_TEXTURE_SIZE {limit} on "
                                f"{renderer(self.ctx)}: the output texture is frame-sized; render at a smaller "
                                "size (internal_scale cannot help)")
        _, (run_h, run_w) = self._run_size(width, height)
        estimate = {"weights": self._network.weight_bytes_at(run_h, run_w),
                    "activations": self._network.activation_bytes(run_h, run_w),
                    "output": 4 * width * height,
                    "history": History.bytes(width, height, self._frame_budget_ms is not None)
                    if self._temporal else 0}
        estimate["total"] = sum(estimate.values())
        return estimate

    def _check_memory(self, width: int, height: int, estimate: dict, run_size) -> None:
        budget = self.memory_budget_bytes
        if budget is not None and estimate["total"] > budget:
            raise FrameTooLarge(
                f"frame {width}x{height} needs an estimated {estimate['total']} bytes "
                f"({estimate['total'] / 2**20:.1f} MiB) of GPU memory: {estimate['weights']} weights + "
                f"{estimate['activations']} activations at run size {run_size[1]}x{run_size[0]} + "
                f"{estimate['output']} output + {estimate['history']} temporal history; over this pass's "
                f"memory_budget_bytes {budget} ({budget / 2**20:.1f} MiB). Use a smaller internal_scale, "
                "fp16=True, or a larger budget")

    def resize(self, width: int, height: int) -> None:
        """Allocate everything for frames of width x height (apply() does this on a size change).
        A size beyond a device limit or the memory budget is refused before anything is
        released or allocated; a failed allocation leaves no buffer of any frame size."""
        self._check_live()
        _check_not_empty(width, height)
        scaled, run_size = self._run_size(width, height)
        # Any change abandons a sliced run in progress (its input was packed for another
        # size, new buffers hold no result): the next apply() runs whole and re-measures.
        if self._frame_size == (width, height) and self._network.run_size == run_size:
            self._measured = self._measured and self._scaled_size == scaled
            self._scaled_size = scaled
            return
        estimate = self.memory_estimate(width, height)
        run_h, run_w = run_size
        for frame_dispatch in (frame_io.pack_dispatch((run_w, run_h), {}, {}),
                               frame_io.present_dispatch((width, height), self.model.graph.output, {}, {})):
            check_limits(frame_dispatch, self._network.limits)      # the layers' are checked by the network
        self._check_memory(width, height, estimate, run_size)
        self._measured = False
        try:
            if self._frame_size != (width, height):
                self._release_output()
                with allocating(self.ctx, f"the {width}x{height} RGBA8 output texture ({4 * width * height} bytes)"):
                    self._output = self.ctx.texture((width, height), 4)
                # Made with the texture, not at the first blit: every allocation of a frame
                # size happens here, where a failure is cleaned up.
                with allocating(self.ctx, "the framebuffer of the output texture"):
                    self._output_fbo = self.ctx.framebuffer(color_attachments=[self._output])
                self._frame_size = (width, height)
            self._network.resize(*run_size)
        except BaseException:
            # Half a frame size is no use: drop the rest, the next resize() starts clean.
            self._release_output()
            self._network.release_activations()
            raise
        self._scaled_size = scaled

    # --- the frame -------------------------------------------------------------------

    def apply(self, color_tex, depth_tex=None, *, near=None, far=None, reversed_z: bool = False,
              target=None, motion_tex=None):
        """Stylize one frame. Returns the output texture, or None when drawing into `target`
        (a moderngl.Framebuffer or RGBA8 Texture of the frame size). motion_tex (temporal mode):
        a float texture of the frame size, xy = the previous frame's texture coordinate of each
        pixel's surface minus its current one (y up), z if present = the normalized linear depth
        (z - near) / (far - near) that surface had (else the current depth stands in)."""
        self._check_live()
        if isinstance(color_tex, moderngl.Texture):
            _check_not_empty(*color_tex.size)      # C5: before any GL call, the buffers kept as they are
        limits = self._network.limits
        if isinstance(target, moderngl.Texture):
            pass_inputs.check_texture(self.ctx, target, "target", limits)
        color_linear = pass_inputs.color_is_linear(self.ctx, color_tex, limits)
        depth = pass_inputs.depth_defines(self.ctx, self.model, limits, depth_tex, color_tex.size, near, far,
                                          reversed_z)
        width, height = color_tex.size
        if target is not None and not isinstance(target, (moderngl.Framebuffer, moderngl.Texture)):
            raise InputError(f"target must be a moderngl.Framebuffer or Texture, got {type(target).__name__}")
        if target is not None and tuple(target.size) != (width, height):
            raise InputError(f"target is {target.size[0]}x{target.size[1]}, the frame is {width}x{height}")
        if isinstance(target, moderngl.Texture) and (target.components != 4 or target.dtype != "f1"):
            raise InputError("a target texture must be RGBA8")      # before any work: a sliced run stays put
        temporal = self._temporal > 0
        spread = temporal and self._frame_budget_ms is not None    # the result shown is older than the frame
        if temporal:
            motion_depth = pass_inputs.motion_has_depth(self.ctx, motion_tex, (width, height), limits)
        self.resize(width, height)
        if temporal:
            # Temporal mode or spreading switched on at this size since resize() checked the budget
            if self._history is None or self._history.size != (width, height) or (spread and not self._history.offsets):
                self._check_memory(width, height, self.memory_estimate(width, height), self._network.run_size)
            if self._history is None:
                self._history = History(self.ctx)
            self._history.resize(width, height)
            if not spread:
                self._history.drop_offsets()
        run_h, run_w = self._network.run_size
        common = {"frame_size": (width, height), "scaled_size": self._scaled_size, "run_size": (run_w, run_h)}
        fp16 = int(self._network.fp16)

        measuring = self._frame_budget_ms is not None and not self._measured
        whole = self._frame_budget_ms is None or measuring or self._whole_next
        if whole:
            start, stop = 0, len(self._network.dispatches)
        else:
            start, stop = self._schedule[self._next_step]

        # Only at a run's start: later steps of a sliced run may still read the input.
        if start == 0:
            uniforms = dict(common, value_range=self.model.input_range, color_texture=frame_io.TEXTURE_COLOR)
            if depth["USE_DEPTH"]:
                depth_tex.use(frame_io.TEXTURE_DEPTH)
                self._depth_sampler.use(frame_io.TEXTURE_DEPTH)
                uniforms.update(depth_texture=frame_io.TEXTURE_DEPTH, near_plane=float(near), far_plane=float(far))
            pack = frame_io.pack_dispatch((run_w, run_h), frame_io.pack_defines(depth, color_linear, fp16), uniforms)
            self._bind_color(color_tex)
            pack.program = self._programs.get(pack.shader, pack.defines, pack.layer)
            run_dispatch(pack, self._network.buffers, {})
            if depth["USE_DEPTH"]:
                self._depth_sampler.clear(frame_io.TEXTURE_DEPTH)
            self.ctx.memory_barrier(moderngl.SHADER_STORAGE_BARRIER_BIT)

        if measuring:
            self._dispatch_seconds.clear()
            self._network.run(dispatch_seconds=self._dispatch_seconds)
            self._measured = True
            self._reschedule()
        else:
            self._network.run(start, stop)
            if self._frame_budget_ms is not None:      # after a whole frame, a new run from the next one
                self._next_step = 0 if whole else (self._next_step + 1) % len(self._schedule)
        self._whole_next = False                       # any whole frame is the one a cut asks for

        present_uniforms = {"frame_size": (width, height), "scaled_size": self._scaled_size,
                            "value_range": self.model.output_range, "strength": self._strength,
                            "view_border": self._network.view_border, "color_texture": frame_io.TEXTURE_COLOR}
        if spread:
            # The result shown is as old as its run: present reads it where each pixel was
            # in that run's frame, chained through the motion.
            self._history.chain_offsets(self._programs, self._network.limits, motion_tex, run_started=start == 0,
                                        run_completed=stop == len(self._network.dispatches))
            self._history.use_offsets(frame_io.TEXTURE_OFFSETS)
            present_uniforms["result_offsets"] = frame_io.TEXTURE_OFFSETS
        present = frame_io.present_dispatch((width, height), self.model.graph.output,
                                            frame_io.present_defines(color_linear, fp16, spread), present_uniforms)
        self._bind_color(color_tex)
        presented = self._history.current if temporal else self._output
        presented.bind_to_image(frame_io.IMAGE_OUTPUT, read=False, write=True, format=GL_RGBA8)
        present.program = self._programs.get(present.shader, present.defines, present.layer)
        run_dispatch(present, {}, self._network.views)
        self._color_sampler.clear(frame_io.TEXTURE_COLOR)     # a bound sampler would override the caller's state
        if spread:
            self._history.clear_offsets(frame_io.TEXTURE_OFFSETS)
        # Whoever reads the output next may sample it, blit it or read it back.
        barrier = (moderngl.TEXTURE_FETCH_BARRIER_BIT | moderngl.FRAMEBUFFER_BARRIER_BIT
                   | moderngl.TEXTURE_UPDATE_BARRIER_BIT | moderngl.SHADER_IMAGE_ACCESS_BARRIER_BIT)
        self.ctx.memory_barrier(barrier)
        output, output_fbo = self._output, self._output_fbo
        if temporal:
            written = self._history.resolve(self._programs, self._network.limits, self._temporal, motion_tex,
                                            motion_depth, depth, depth_tex, self._depth_sampler, near, far)
            self.ctx.memory_barrier(barrier)
            output, output_fbo = self._history.results[written], self._history.framebuffers[written]
        self._latest = output
        if target is None:
            return output
        self._blit.copy(target, output_fbo)
        return None

    def _bind_color(self, color_tex) -> None:
        color_tex.use(frame_io.TEXTURE_COLOR)
        self._color_sampler.use(frame_io.TEXTURE_COLOR)       # NEAREST: complete whatever its own filters

    # --- lifetime ----------------------------------------------------------------

    def _check_live(self) -> None:
        if self._released:
            raise PassReleased("this PostFX pass was released; create a new one")
        if not is_live(self.ctx):
            raise ContextLost("the GL context of this pass was released; create a new pass in a live context")

    def _release_output(self) -> None:
        self._blit.release()
        if self._output_fbo is not None:
            self._output_fbo.release()
            self._output_fbo = None
        if self._output is not None:
            self._output.release()
            self._output = None
        self._frame_size = None

    def release(self) -> None:
        """Free every GL object of the pass. Safe to call twice."""
        if self._released:
            return
        self._released = True
        if not is_live(self.ctx):
            return          # the context took its objects with it
        self._release_output()
        if self._history is not None:
            self._history.release()
        if self._network is not None:
            self._network.release()
        for sampler in (getattr(self, "_depth_sampler", None), getattr(self, "_color_sampler", None)):
            if sampler is not None:
                sampler.release()
        self._programs.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _tuner(kernels: str, budget_s: float | None):
    """The tuner of kernels="auto" with this budget (None: the default budget)."""
    if kernels != "auto":
        if budget_s is not None:
            raise InputError(f"tuning_budget_s applies to kernels='auto' only, not kernels={kernels!r}")
        return None
    from .gl.tuner import Tuner
    try:
        return Tuner(budget_s=budget_s)
    except ValueError as e:
        raise InputError(str(e)) from None


def _check_not_empty(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise FrameTooSmall(f"frame {width}x{height} is empty (a minimized window?); skip the pass for it")
