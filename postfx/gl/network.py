"""The network executor: weights uploaded once, activation buffers (and the
image views the "blocked" kernels read) allocated once per run size, then
each layer's dispatches in order with a barrier between producer and consumer.
Nothing is allocated per frame.

Each conv layer runs the kernel of its KernelChoice (conv_kernels.py): fixed
for kernels="optimized" or a variant name; with kernels="auto" chosen per run
size by the tuner (tuner.py: measured on this context, or read from its cache)."""
from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Mapping
from typing import NamedTuple

import moderngl
import numpy as np

from .. import model_format as fmt
from ..errors import ContextLost, DeviceLimitError, FrameTooLarge, PassReleased
from ..model import Model
from . import ops
from .context import allocating, is_live, renderer, require_compute
from .conv_kernels import (
    KERNEL_CHOICES,
    KernelChoice,
    candidates,
    conv_dispatches,
    is_valid_choice,
    static_choice,
    variants_of,
)
from .dispatch import BIND_DESTINATION, DeviceLimits, check_limits, tensor_sizes
from .norm_kernels import norm_scratch_bytes
from .programs import ProgramCache
from .resources import (
    AFTER_DISPATCH,
    BEFORE_HOST_READ,
    image_view,
    refresh_view,
    run_dispatch,
    weight_buffer,
    weight_image,
    weight_image_bytes,
)


def weight_bytes(model: Model, choices: dict, pending=frozenset()) -> int:
    """GPU memory a GLNetwork of `model` holds for weights and biases (and the norms'
    scales and shifts) when its conv layers run `choices` (layer name -> KernelChoice):
    each conv's weights as the image or the storage buffer its kernel reads. For the
    layers in `pending` (not measured yet) the larger of the two forms."""
    total = 0
    for layer in model.graph.layers:
        if layer.op == "instance_norm":
            scale, shift = model.layer_weights(layer)
            total += 4 * (scale.size + shift.size)
        if layer.op not in fmt.CONV_OPS:
            continue
        weight, bias = model.layer_weights(layer)
        as_image, as_buffer = weight_image_bytes(weight.size), 4 * weight.size
        if layer.name in pending:
            total += max(as_image, as_buffer)
        else:
            total += as_image if variants_of(layer)[choices[layer.name].variant].reads_weight_image else as_buffer
        total += 4 * bias.size
    return total


class _Layout(NamedTuple):
    """What one run size needs (GLNetwork._layout)."""
    sizes: dict             # tensor name -> (W, H)
    plan: list              # the dispatches, in order
    buffer_bytes: dict      # tensor name (or NORM_* scratch name) -> bytes of its buffer
    view_shapes: dict       # tensor name -> (W + 2b, H + 2b, slices) of its image view
    border: int             # b: zero texels around each view


class GLNetwork:
    """A model's layers as compute dispatches in one moderngl context."""

    def __init__(self, ctx: moderngl.Context, model: Model, *, kernels: str | Mapping = "auto",
                 fp16: bool = False, programs: ProgramCache | None = None, output_view: bool = False,
                 tuner=None):
        """kernels: "auto" (measured per run size), "optimized" (the static choice), a
        variant name, or a mapping layer name -> KernelChoice that pins those layers
        (the others take the static choice; parity tests run every tunable this way).
        output_view: also keep an image view of the output tensor, refreshed after
        the last layer, for a consumer that reads it as an image (PostFX's present).
        tuner: what chooses the kernels with kernels="auto" (tuner.Tuner; by default
        one with the default budget and the user's cache file)."""
        require_compute(ctx)
        pinned = dict(kernels) if isinstance(kernels, Mapping) else {}
        if pinned:
            kernels = "pinned"
        elif kernels not in KERNEL_CHOICES:
            raise ValueError(f"kernels must be one of {list(KERNEL_CHOICES)}, got {kernels!r}")
        self.ctx, self.model, self.kernels, self.fp16 = ctx, model, kernels, bool(fp16)
        self.output_view = bool(output_view)
        self.limits = DeviceLimits.of(ctx)
        self.texel_bytes = 8 if self.fp16 else 16
        if kernels == "auto" and tuner is None:
            from .tuner import Tuner
            tuner = Tuner()
        self.tuner = tuner
        # `is None`, not `or`: an empty ProgramCache is falsy (it has __len__), and the
        # network would then compile into a private cache that nobody releases.
        self.programs = ProgramCache(ctx) if programs is None else programs
        self._owns_programs = programs is None
        # The kernel of each conv layer: fixed unless kernels="auto", which chooses per run size.
        conv_layers = {layer.name: layer for layer in model.graph.layers if layer.op in fmt.CONV_OPS}
        self.choices: dict[str, KernelChoice] = {
            name: static_choice(layer, model.graph, "optimized" if pinned else kernels, self.limits)
            for name, layer in conv_layers.items()}
        for name, choice in pinned.items():
            if name not in conv_layers or not is_valid_choice(choice, conv_layers[name], model.graph, self.limits):
                raise ValueError(f"kernels: {choice} is not a kernel conv layer {name!r} can run here")
            self.choices[name] = choice
        self.run_size: tuple[int, int] | None = None          # (H, W) the buffers are allocated for
        self.sizes: dict = {}                                  # tensor name -> (W, H) at run size
        self.buffers: dict[str, moderngl.Buffer] = {}          # tensor name -> (slices, H, W) texels;
                                                               # NORM_* -> the norms' fp32 scratch
        self.views: dict[str, moderngl.TextureArray] = {}      # tensor name -> (W + 2b, H + 2b, slices) copy
        self.view_border = 0                                   # b: zero texels around each view
        self.dispatches: list[ops.Dispatch] = []
        self._refresh_after: dict[int, list[str]] = {}         # dispatch index -> views refreshed after it
        self.weights: dict = {}            # ("weights" | "bias" | "scale" | "shift", layer) -> storage buffer
        self.weight_images: dict = {}      # ("weights", layer) -> image of the same weights
        self._storage = ChainMap(self.buffers, self.weights)   # what a dispatch's bindings name
        self._images = ChainMap(self.views, self.weight_images)
        self.released = False
        try:
            self._upload_weights()
            self._compile()
        except BaseException:
            self.release()
            raise

    # --- build ---------------------------------------------------------------

    def _upload_weights(self) -> None:
        """Biases and the norms' scales / shifts, then each conv's weights in the form its kernel reads."""
        graph = self.model.graph
        for layer in graph.layers:
            if layer.op == "instance_norm":
                scale_shift = self.model.layer_weights(layer)                       # 2 x (slices, 4)
                for kind, lanes in zip(("scale", "shift"), scale_shift, strict=True):
                    with allocating(self.ctx, f"the {kind} of layer {layer.name!r} ({4 * lanes.size} bytes)"):
                        self.weights[(kind, layer.name)] = self.ctx.buffer(lanes.astype("<f4").tobytes())
            if layer.op not in fmt.CONV_OPS:
                continue
            weight, bias = self.model.layer_weights(layer)   # (os, K, K, is, 4, 4) mat4s, (os, 4)
            if weight.nbytes > self.limits.max_storage_block_size:
                raise DeviceLimitError(f"layer {layer.name!r}: weights of {weight.nbytes} bytes exceed "
                                       f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE {self.limits.max_storage_block_size} "
                                       f"on {renderer(self.ctx)}")
            with allocating(self.ctx, f"the bias of layer {layer.name!r} ({4 * bias.size} bytes)"):
                self.weights[("bias", layer.name)] = self.ctx.buffer(bias.astype("<f4").tobytes())
        self._sync_weight_forms()

    def _sync_weight_forms(self) -> None:
        """Each conv layer's weights as the storage buffer or the image its current
        kernel reads, and not the other form (a new choice may switch forms)."""
        for layer in self.model.graph.layers:
            if layer.op not in fmt.CONV_OPS:
                continue
            key = ("weights", layer.name)
            as_image = variants_of(layer)[self.choices[layer.name].variant].reads_weight_image
            keep, drop = (self.weight_images, self.weights) if as_image else (self.weights, self.weight_images)
            if key in drop:
                drop.pop(key).release()
            if key not in keep:
                weight = self.model.layer_weights(layer)[0]
                with allocating(self.ctx, f"the weights of layer {layer.name!r} ({4 * weight.size} bytes)"):
                    keep[key] = (weight_image if as_image else weight_buffer)(self.ctx, weight)

    def _compile(self) -> None:
        """Compile every layer's program up front: shaders do not depend on the frame size."""
        sizes = tensor_sizes(self.model.graph, self.model.pad_multiple, self.model.pad_multiple)
        for d in self._plan(sizes, self.choices):
            check_limits(d, self.limits)
            self.programs.get(d.shader, d.defines, d.layer)

    def _plan(self, sizes: dict, choices: dict) -> list[ops.Dispatch]:
        plan = []
        for layer in self.model.graph.layers:
            plan += ops.layer_dispatches(layer, self.model.graph, sizes, choices.get(layer.name), self.fp16,
                                         self.limits)
        return plan

    # --- per resolution --------------------------------------------------------

    def _layout(self, run_h: int, run_w: int, choices: dict, pending=frozenset()) -> _Layout:
        """Everything resize() allocates at one run size with these kernels, checked
        against the device's limits (FrameTooLarge) without allocating anything. For
        the layers in `pending` (kernels the tuner may still change) the image views
        any of their candidates would read are counted too: an upper bound."""
        sizes = tensor_sizes(self.model.graph, run_h, run_w)
        plan = self._plan(sizes, choices)
        graph = self.model.graph
        buffer_bytes = {name: max(16, graph.tensors[name].slices * w * h * self.texel_bytes)
                        for name, (w, h) in sizes.items()}
        buffer_bytes.update(norm_scratch_bytes(graph, sizes))      # fp32 whatever the storage
        max_block = self.limits.max_storage_block_size
        for name, nbytes in buffer_bytes.items():
            if nbytes > max_block:
                raise FrameTooLarge(
                    f"at run size {run_w}x{run_h}, tensor {name!r} needs {nbytes / 2**20:.0f} MiB, beyond "
                    f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE ({max_block / 2**20:.0f} MiB) on {renderer(self.ctx)}; "
                    + ("use a smaller internal scale" if self.fp16 else "use a smaller internal scale or fp16 storage"))
        readers = [d for d in plan if d.images] + self._candidate_image_readers(sizes, pending)
        viewed = {name for d in readers for name in d.images.values() if isinstance(name, str)}
        if self.output_view:
            viewed.add(graph.output)
        # One zero border for every view, as wide as the widest reach past an edge.
        border = max((d.view_border for d in readers), default=0)
        view_shapes = {}
        for name in sorted(viewed):
            (w, h), slices = sizes[name], graph.tensors[name].slices
            w, h = w + 2 * border, h + 2 * border
            if max(w, h) > self.limits.max_texture_size or slices > self.limits.max_array_layers:
                raise FrameTooLarge(
                    f"at run size {run_w}x{run_h}, the image view of tensor {name!r} ({w}x{h}, {slices} "
                    f"layers) exceeds GL_MAX_TEXTURE_SIZE {self.limits.max_texture_size} / "
                    f"GL_MAX_ARRAY_TEXTURE_LAYERS {self.limits.max_array_layers} on {renderer(self.ctx)}; "
                    "use a smaller internal scale or kernels='cooperative'")
            view_shapes[name] = (w, h, slices)
        for d in plan:
            check_limits(d, self.limits)
            if d.images:
                d.uniforms["view_border"] = border
        return _Layout(sizes, plan, buffer_bytes, view_shapes, border)

    def _candidate_image_readers(self, sizes: dict, pending) -> list:
        """The dispatches of the image-reading candidates of the pending layers."""
        out = []
        for layer in self.model.graph.layers:
            if layer.name in pending:
                for choice in candidates(layer, self.model.graph, self.limits):
                    out += [d for d in conv_dispatches(layer, self.model.graph, sizes, choice, self.fp16, self.limits)
                            if d.images]
        return out

    def planned_choices(self, run_h: int, run_w: int) -> tuple[dict, frozenset]:
        """(choices, pending) at a run size without timing anything: the kernels a resize
        will use as far as known (fixed; or the tuner's cached or static ones), and the
        conv layers the tuner may still change there (kernels="auto" with a budget)."""
        if self.kernels != "auto":
            return self.choices, frozenset()
        return self.tuner.known_choices(self, run_h, run_w), self.tuner.pending_layers(self, run_h, run_w)

    def weight_bytes_at(self, run_h: int, run_w: int) -> int:
        """GPU memory of the weights once resized to this run size (an upper bound
        where the tuner is still to choose: weight_bytes)."""
        return weight_bytes(self.model, *self.planned_choices(run_h, run_w))

    def activation_bytes(self, run_h: int, run_w: int) -> int:
        """GPU memory resize(run_h, run_w) allocates: activation buffers (with the norms'
        scratch buffers) plus image views (an upper bound where the tuner is still to choose)."""
        layout = self._layout(run_h, run_w, *self.planned_choices(run_h, run_w))
        views = sum(w * h * slices * self.texel_bytes for w, h, slices in layout.view_shapes.values())
        return sum(layout.buffer_bytes.values()) + views

    def resize(self, run_h: int, run_w: int) -> None:
        """Allocate the activation buffers and image views and plan the dispatches for one run size
        (with kernels="auto", choosing the kernels for it first). On failure nothing of the new
        size is kept, nor the old size's buffers (run_size is None)."""
        self._check_live()
        if self.run_size == (run_h, run_w):
            return
        # Limits first: a size the device cannot run is refused before any tuning.
        self._layout(run_h, run_w, self.planned_choices(run_h, run_w)[0])
        self.release_activations()
        choices = self.tuner.choose(self, run_h, run_w) if self.kernels == "auto" else self.choices
        layout = self._layout(run_h, run_w, choices)
        for d in layout.plan:
            d.program = self.programs.get(d.shader, d.defines, d.layer)
        try:
            self.choices = dict(choices)
            self._sync_weight_forms()
            for name, nbytes in layout.buffer_bytes.items():
                with allocating(self.ctx, f"the activation buffer of tensor {name!r} ({nbytes} bytes)"):
                    self.buffers[name] = self.ctx.buffer(reserve=nbytes)
            for name, shape in layout.view_shapes.items():
                with allocating(self.ctx, f"the image view of tensor {name!r} ({shape[0]}x{shape[1]}, "
                                          f"{shape[2]} layers, {shape[0] * shape[1] * shape[2] * self.texel_bytes} "
                                          "bytes)"):
                    self.views[name] = image_view(self.ctx, shape, self.fp16)
        except BaseException:
            self.release_activations()
            raise
        # A view is refreshed after the last dispatch that writes its tensor.
        last_writer = {d.bindings[BIND_DESTINATION]: i for i, d in enumerate(layout.plan)}
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
            self.ctx.memory_barrier(AFTER_DISPATCH)         # the input may come from a compute pass
            self._refresh_view(fmt.INPUT_TENSOR)
        for index in range(start, stop):
            d = self.dispatches[index]
            if timed:
                self.ctx.finish()
                started = clock()
            run_dispatch(d, self._storage, self._images)
            # The next dispatch reads what this one wrote.
            self.ctx.memory_barrier(AFTER_DISPATCH)
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
        refresh_view(self.views[name], self.buffers[name], self.sizes[name], self.view_border)

    # --- host transfers (arrays in / out, tests) --------------------------------

    def write_tensor(self, name: str, lanes: np.ndarray) -> None:
        """lanes (4 * slices, H, W) float32 -> the tensor's buffer (and its image view)."""
        texels = np.ascontiguousarray(np.transpose(lanes.reshape(-1, 4, *lanes.shape[1:]), (0, 2, 3, 1)))
        data = texels.astype(np.float16 if self.fp16 else np.float32)
        self.buffers[name].write(data.tobytes())
        if name in self.views:
            self._refresh_view(name)

    def read_tensor(self, name: str) -> np.ndarray:
        """The tensor's buffer -> lanes (4 * slices, H, W) float32."""
        w, h = self.sizes[name]
        slices = self.model.graph.tensors[name].slices
        dtype = np.float16 if self.fp16 else np.float32
        self.ctx.memory_barrier(BEFORE_HOST_READ)
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
