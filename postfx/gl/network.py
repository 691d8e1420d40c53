"""The network executor: weights uploaded once, activation buffers (and the
image views the "blocked" kernels read) allocated once per run size, then
each layer's dispatches in order with a barrier between producer and consumer.
Nothing is allocated per frame."""
from __future__ import annotations

import time
from typing import NamedTuple

import moderngl
import numpy as np

from .. import model_format as fmt
from ..errors import ContextLost, DeviceLimitError, FrameTooLarge, PassReleased
from ..model_file import Model
from . import ops
from .context import allocating, is_live, renderer, require_compute
from .programs import ProgramCache

KERNEL_CHOICES = ops.KERNEL_CHOICES

# After a dispatch its output may be read as a storage buffer or copied into an
# image view (a pixel-unpack read). A view refresh is an ordinary GL command,
# visible to later dispatches without a barrier.
_AFTER_DISPATCH = moderngl.SHADER_STORAGE_BARRIER_BIT | moderngl.PIXEL_BUFFER_BARRIER_BIT


def weight_bytes(model: Model, kernels: str, limits: ops.DeviceLimits) -> int:
    """GPU memory a GLNetwork of `model` holds for weights and biases (and the norms'
    scales and shifts), whatever the frame size (as _upload_weights lays them out),
    known before anything is uploaded."""
    total = 0
    for layer in model.graph.layers:
        if layer.op == "instance_norm":
            scale, shift = model.layer_weights(layer)
            total += 4 * (scale.size + shift.size)
        if layer.op not in fmt.CONV_OPS:
            continue
        weight, bias = model.layer_weights(layer)
        if ops.choose_variant(layer, model.graph, kernels, limits).reads_weight_image:
            rows = ops.ceil_div(weight.size // 4, ops.WEIGHT_IMAGE_WIDTH)
            total += rows * ops.WEIGHT_IMAGE_WIDTH * 16      # whole RGBA32F rows
        else:
            total += 4 * weight.size
        total += 4 * bias.size
    return total


class _Layout(NamedTuple):
    """What one run size needs (GLNetwork._layout)."""
    sizes: dict             # tensor name -> (W, H)
    plan: list              # the dispatches, in order
    buffer_bytes: dict      # tensor name (or ops.NORM_* scratch name) -> bytes of its buffer
    view_shapes: dict       # tensor name -> (W + 2b, H + 2b, slices) of its image view
    border: int             # b: zero texels around each view


class GLNetwork:
    """A model's layers as compute dispatches in one moderngl context."""

    def __init__(self, ctx: moderngl.Context, model: Model, *, kernels: str = "optimized",
                 fp16: bool = False, programs: ProgramCache | None = None, output_view: bool = False):
        """output_view: also keep an image view of the output tensor, refreshed after
        the last layer, for a consumer that reads it as an image (PostFX's present)."""
        require_compute(ctx)
        if kernels not in KERNEL_CHOICES:
            raise ValueError(f"kernels must be one of {list(KERNEL_CHOICES)}, got {kernels!r}")
        self.ctx, self.model, self.kernels, self.fp16 = ctx, model, kernels, bool(fp16)
        self.output_view = bool(output_view)
        self.limits = ops.DeviceLimits.of(ctx)
        self.texel_bytes = 8 if self.fp16 else 16
        # `is None`, not `or`: an empty ProgramCache is falsy (it has __len__), and the
        # network would then compile into a private cache that nobody releases.
        self.programs = ProgramCache(ctx) if programs is None else programs
        self._owns_programs = programs is None
        self.run_size: tuple[int, int] | None = None          # (H, W) the buffers are allocated for
        self.sizes: dict = {}                                  # tensor name -> (W, H) at run size
        self.buffers: dict[str, moderngl.Buffer] = {}          # tensor name -> (slices, H, W) texels;
                                                               # ops.NORM_* -> the norms' fp32 scratch
        self.views: dict[str, moderngl.TextureArray] = {}      # tensor name -> (W + 2b, H + 2b, slices) copy
        self.view_border = 0                                   # b: zero texels around each view
        self.dispatches: list[ops.Dispatch] = []
        self._refresh_after: dict[int, list[str]] = {}         # dispatch index -> views refreshed after it
        self.weights: dict = {}            # ("weights" | "bias" | "scale" | "shift", layer) -> storage buffer
        self.weight_images: dict = {}      # ("weights", layer) -> image view of the same weights
        self.released = False
        try:
            self._upload_weights()
            self._compile()
        except BaseException:
            self.release()
            raise

    # --- build ---------------------------------------------------------------

    def _upload_weights(self) -> None:
        limit = self.limits.max_storage_block_size
        graph = self.model.graph
        for layer in graph.layers:
            if layer.op == "instance_norm":
                for kind, lanes in zip(("scale", "shift"), self.model.layer_weights(layer)):   # (slices, 4)
                    with allocating(self.ctx, f"the {kind} of layer {layer.name!r} ({4 * lanes.size} bytes)"):
                        self.weights[(kind, layer.name)] = self.ctx.buffer(lanes.astype("<f4").tobytes())
            if layer.op not in fmt.CONV_OPS:
                continue
            weight, bias = self.model.layer_weights(layer)   # (os, K, K, is, 4, 4) mat4s, (os, 4)
            if weight.nbytes > limit:
                raise DeviceLimitError(f"layer {layer.name!r}: weights of {weight.nbytes} bytes exceed "
                                       f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE {limit} on {renderer(self.ctx)}")
            key = ("weights", layer.name)
            what = f"the weights of layer {layer.name!r} ({4 * weight.size} bytes)"
            with allocating(self.ctx, what):
                if ops.choose_variant(layer, graph, self.kernels, self.limits).reads_weight_image:
                    self.weight_images[key] = self._weight_image(weight)
                else:
                    self.weights[key] = self.ctx.buffer(weight.astype("<f4").tobytes())
            with allocating(self.ctx, f"the bias of layer {layer.name!r} ({4 * bias.size} bytes)"):
                self.weights[("bias", layer.name)] = self.ctx.buffer(bias.astype("<f4").tobytes())

    def _weight_image(self, weight: np.ndarray) -> moderngl.Texture:
        """The packed weights as a (WEIGHT_IMAGE_WIDTH, rows) RGBA32F image, the
        same bytes in the same order (shaders/weight_image.glsl), zero-padded to
        whole rows."""
        texels = weight.astype("<f4").reshape(-1, 4)
        width = ops.WEIGHT_IMAGE_WIDTH
        padded = np.zeros((ops.ceil_div(len(texels), width) * width, 4), "<f4")
        padded[:len(texels)] = texels
        return self.ctx.texture((width, len(padded) // width), 4, padded.tobytes(), dtype="f4")

    def _compile(self) -> None:
        """Compile every layer's program up front: shaders do not depend on the frame size."""
        sizes = self._tensor_sizes(self.model.pad_multiple, self.model.pad_multiple)
        for d in self._plan(sizes):
            ops.check_limits(d, self.limits)
            self.programs.get(d.shader, d.defines, d.layer)

    def _plan(self, sizes: dict) -> list[ops.Dispatch]:
        plan = []
        for layer in self.model.graph.layers:
            plan += ops.layer_dispatches(layer, self.model.graph, sizes, self.kernels, self.fp16, self.limits)
        return plan

    def _tensor_sizes(self, run_h: int, run_w: int) -> dict:
        sizes = {}
        for name, info in self.model.graph.tensors.items():
            num, den = info.scale
            sizes[name] = (run_w * num // den, run_h * num // den)   # (W, H)
        return sizes

    # --- per resolution --------------------------------------------------------

    def _layout(self, run_h: int, run_w: int) -> "_Layout":
        """Everything resize() allocates at one run size, checked against the device's
        limits (FrameTooLarge) without allocating anything."""
        sizes = self._tensor_sizes(run_h, run_w)
        plan = self._plan(sizes)
        graph = self.model.graph
        buffer_bytes = {name: max(16, graph.tensors[name].slices * w * h * self.texel_bytes)
                        for name, (w, h) in sizes.items()}
        buffer_bytes.update(ops.norm_scratch_bytes(graph, sizes))      # fp32 whatever the storage
        max_block = self.limits.max_storage_block_size
        for name, nbytes in buffer_bytes.items():
            if nbytes > max_block:
                raise FrameTooLarge(
                    f"at run size {run_w}x{run_h}, tensor {name!r} needs {nbytes / 2**20:.0f} MiB, beyond "
                    f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE ({max_block / 2**20:.0f} MiB) on {renderer(self.ctx)}; "
                    + ("use a smaller internal scale" if self.fp16 else "use a smaller internal scale or fp16 storage"))
        viewed = {name for d in plan for name in d.images.values() if isinstance(name, str)}
        if self.output_view:
            viewed.add(graph.output)
        # One zero border for every view, as wide as the widest reach past an edge.
        border = max((d.view_border for d in plan if d.images), default=0)
        view_shapes = {}
        for name in sorted(viewed):
            (w, h), slices = sizes[name], graph.tensors[name].slices
            w, h = w + 2 * border, h + 2 * border
            if max(w, h) > self.limits.max_texture_size or slices > self.limits.max_array_layers:
                raise FrameTooLarge(
                    f"at run size {run_w}x{run_h}, the image view of tensor {name!r} ({w}x{h}, {slices} "
                    f"layers) exceeds GL_MAX_TEXTURE_SIZE {self.limits.max_texture_size} / "
                    f"GL_MAX_ARRAY_TEXTURE_LAYERS {self.limits.max_array_layers} on {renderer(self.ctx)}; "
                    "use a smaller internal scale or kernels='tiled'")
            view_shapes[name] = (w, h, slices)
        for d in plan:
            ops.check_limits(d, self.limits)
            if d.images:
                d.uniforms["view_border"] = border
        return _Layout(sizes, plan, buffer_bytes, view_shapes, border)

    def activation_bytes(self, run_h: int, run_w: int) -> int:
        """GPU memory resize(run_h, run_w) allocates: activation buffers (with the norms'
        scratch buffers) plus image views."""
        layout = self._layout(run_h, run_w)
        views = sum(w * h * slices * self.texel_bytes for w, h, slices in layout.view_shapes.values())
        return sum(layout.buffer_bytes.values()) + views

    def resize(self, run_h: int, run_w: int) -> None:
        """Allocate the activation buffers and image views and plan the dispatches for one run size.
        On failure nothing of the new size is kept, nor the old size's buffers (run_size is None)."""
        self._check_live()
        if self.run_size == (run_h, run_w):
            return
        layout = self._layout(run_h, run_w)
        for d in layout.plan:
            d.program = self.programs.get(d.shader, d.defines, d.layer)
        self.release_activations()
        try:
            for name, nbytes in layout.buffer_bytes.items():
                with allocating(self.ctx, f"the activation buffer of tensor {name!r} ({nbytes} bytes)"):
                    self.buffers[name] = self.ctx.buffer(reserve=nbytes)
            for name, shape in layout.view_shapes.items():
                # Zeroed once: refreshes write only the interior, the border stays zero.
                zeros = bytes(shape[0] * shape[1] * shape[2] * self.texel_bytes)
                with allocating(self.ctx, f"the image view of tensor {name!r} ({shape[0]}x{shape[1]}, "
                                          f"{shape[2]} layers, {len(zeros)} bytes)"):
                    self.views[name] = self.ctx.texture_array(shape, 4, zeros, dtype="f2" if self.fp16 else "f4")
        except BaseException:
            self.release_activations()
            raise
        # A view is refreshed after the last dispatch that writes its tensor.
        last_writer = {d.bindings[ops.BIND_DESTINATION]: i for i, d in enumerate(layout.plan)}
        self._refresh_after = {}
        for name in layout.view_shapes:
            if name in last_writer:
                self._refresh_after.setdefault(last_writer[name], []).append(name)
        self.dispatches, self.run_size, self.sizes = layout.plan, (run_h, run_w), layout.sizes
        self.view_border = layout.border

    def run(self, start: int = 0, stop: int | None = None, *, profile: dict | None = None,
            dispatch_seconds: list | None = None) -> None:
        """Execute dispatches[start:stop] (every layer by default) on what the input
        buffer holds. Consecutive ranges give the result of one whole run, so a heavy
        network can be spread over several frames (PostFX's frame_budget_ms): only
        the range from 0 reads the input, and each image view is refreshed after its
        tensor's last writer, so the output view keeps the previous result until the
        range that holds that writer. With a `profile` dict, wait for each dispatch
        and add its wall time (image-view copies included) to profile[layer name];
        with a `dispatch_seconds` list, append it there, one entry per dispatch:
        timer queries read ~0 on llvmpipe, and this serialises the frame, so use
        them for breakdowns and schedules only."""
        self._check_live()
        stop = len(self.dispatches) if stop is None else stop
        if not 0 <= start <= stop <= len(self.dispatches):
            raise ValueError(f"dispatch range [{start}, {stop}) is not within the {len(self.dispatches)} dispatches")
        timed = profile is not None or dispatch_seconds is not None
        clock = time.perf_counter
        if start == 0 and fmt.INPUT_TENSOR in self.views:
            self.ctx.memory_barrier(_AFTER_DISPATCH)         # the input may come from a compute pass
            self._refresh_view(fmt.INPUT_TENSOR)
        for index in range(start, stop):
            d = self.dispatches[index]
            if timed:
                self.ctx.finish()
                started = clock()
            for binding, source in d.bindings.items():
                buffer = self.weights[source] if isinstance(source, tuple) else self.buffers[source]
                buffer.bind_to_storage_buffer(binding)
            for unit, source in d.images.items():
                image = self.weight_images[source] if isinstance(source, tuple) else self.views[source]
                image.bind_to_image(unit, read=True, write=False)
            for name, value in d.uniforms.items():
                if name in d.program:
                    d.program[name] = value
            d.program.run(*d.groups)
            # The next dispatch reads what this one wrote.
            self.ctx.memory_barrier(_AFTER_DISPATCH)
            for name in self._refresh_after.get(index, ()):
                self._refresh_view(name)
            if timed:
                self.ctx.finish()
                seconds = clock() - started
                if profile is not None:
                    profile[d.layer] = profile.get(d.layer, 0.0) + seconds
                if dispatch_seconds is not None:
                    dispatch_seconds.append(seconds)

    def _refresh_view(self, name: str) -> None:
        w, h = self.sizes[name]
        border = self.view_border
        self.views[name].write(self.buffers[name], viewport=(border, border, 0, w, h, self.views[name].layers))

    # --- host transfers (arrays in / out, tests) --------------------------------

    def write_tensor(self, name: str, lanes: np.ndarray) -> None:
        """lanes (4 * slices, H, W) float32 -> the tensor's buffer."""
        texels = np.ascontiguousarray(np.transpose(lanes.reshape(-1, 4, *lanes.shape[1:]), (0, 2, 3, 1)))
        data = texels.astype(np.float16 if self.fp16 else np.float32)
        self.buffers[name].write(data.tobytes())

    def read_tensor(self, name: str) -> np.ndarray:
        """The tensor's buffer -> lanes (4 * slices, H, W) float32."""
        w, h = self.sizes[name]
        slices = self.model.graph.tensors[name].slices
        dtype = np.float16 if self.fp16 else np.float32
        texels = np.frombuffer(self.buffers[name].read(size=slices * h * w * self.texel_bytes), dtype)
        texels = texels.reshape(slices, h, w, 4).astype(np.float32)
        return np.transpose(texels, (0, 3, 1, 2)).reshape(slices * 4, h, w)

    # --- lifetime -----------------------------------------------------------------

    def _check_live(self) -> None:
        if self.released:
            raise PassReleased("this network was released; create a new one")
        if not is_live(self.ctx):
            raise ContextLost("the GL context was released; rebuild the pass in a live context")

    def release_activations(self) -> None:
        """Free the buffers and views of the current run size (resize() allocates them again)."""
        for resource in (*self.buffers.values(), *self.views.values()):
            resource.release()
        self.buffers.clear()
        self.views.clear()
        self.dispatches, self.run_size = [], None

    def release(self) -> None:
        if self.released:
            return
        self.release_activations()
        for resource in (*self.weights.values(), *self.weight_images.values()):
            resource.release()
        self.weights.clear()
        self.weight_images.clear()
        if self._owns_programs:
            self.programs.release()
        self.released = True
