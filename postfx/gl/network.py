"""The network executor: weights uploaded once, activation buffers allocated
once per run size, then one dispatch per layer with a storage barrier between
producer and consumer. Nothing is allocated per frame."""
from __future__ import annotations

import moderngl
import numpy as np

from .. import model_format as fmt
from ..errors import ContextLost, DeviceLimitError, FrameTooLarge, PassReleased
from ..model_file import Model
from . import ops
from .context import renderer, require_compute
from .programs import ProgramCache

KERNEL_CHOICES = ("optimized", "naive")


class GLNetwork:
    """A model's layers as compute dispatches in one moderngl context."""

    def __init__(self, ctx: moderngl.Context, model: Model, *, kernels: str = "optimized",
                 fp16: bool = False, programs: ProgramCache | None = None):
        require_compute(ctx)
        self.ctx, self.model, self.kernels, self.fp16 = ctx, model, kernels, bool(fp16)
        self.texel_bytes = 8 if self.fp16 else 16
        self.programs = programs or ProgramCache(ctx)
        self._owns_programs = programs is None
        self.run_size: tuple[int, int] | None = None          # (H, W) the buffers are allocated for
        self.buffers: dict[str, moderngl.Buffer] = {}          # tensor name -> (slices, H, W) texels
        self.dispatches: list[ops.Dispatch] = []
        self.weights: dict = {}
        self.released = False
        try:
            self._upload_weights()
            self._compile()
        except BaseException:
            self.release()
            raise

    # --- build ---------------------------------------------------------------

    def _upload_weights(self) -> None:
        limit = self.ctx.info["GL_MAX_SHADER_STORAGE_BLOCK_SIZE"]
        for layer in self.model.graph.layers:
            if layer.op not in fmt.CONV_OPS:
                continue
            weight, bias = self.model.layer_weights(layer)   # (os, K, K, is, 4, 4) mat4s, (os, 4)
            if weight.nbytes > limit:
                raise DeviceLimitError(f"layer {layer.name!r}: weights of {weight.nbytes} bytes exceed "
                                       f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE {limit} on {renderer(self.ctx)}")
            self.weights[("weights", layer.name)] = self.ctx.buffer(weight.astype("<f4").tobytes())
            self.weights[("bias", layer.name)] = self.ctx.buffer(bias.astype("<f4").tobytes())

    def _compile(self) -> None:
        """Compile every layer's program up front: shaders do not depend on the frame size."""
        sizes = self._tensor_sizes(self.model.pad_multiple, self.model.pad_multiple)
        for layer in self.model.graph.layers:
            for d in ops.layer_dispatches(layer, self.model.graph, sizes, self.kernels, self.fp16):
                self.programs.get(d.shader, d.defines, layer.name)

    def _tensor_sizes(self, run_h: int, run_w: int) -> dict:
        sizes = {}
        for name, info in self.model.graph.tensors.items():
            num, den = info.scale
            sizes[name] = (run_w * num // den, run_h * num // den)   # (W, H)
        return sizes

    # --- per resolution --------------------------------------------------------

    def resize(self, run_h: int, run_w: int) -> None:
        """Allocate the activation buffers and plan the dispatches for one run size."""
        self._check_live()
        if self.run_size == (run_h, run_w):
            return
        sizes = self._tensor_sizes(run_h, run_w)
        info = self.ctx.info
        max_block = info["GL_MAX_SHADER_STORAGE_BLOCK_SIZE"]
        max_groups = info["GL_MAX_COMPUTE_WORK_GROUP_COUNT"]
        plan = []
        for layer in self.model.graph.layers:
            plan += ops.layer_dispatches(layer, self.model.graph, sizes, self.kernels, self.fp16)
        needed = {name: max(16, self.model.graph.tensors[name].slices * w * h * self.texel_bytes)
                  for name, (w, h) in sizes.items()}
        for name, nbytes in needed.items():
            if nbytes > max_block:
                raise FrameTooLarge(
                    f"at run size {run_w}x{run_h}, tensor {name!r} needs {nbytes / 2**20:.0f} MiB, beyond "
                    f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE ({max_block / 2**20:.0f} MiB) on {renderer(self.ctx)}; "
                    "use a smaller internal scale or fp16 storage")
        for d in plan:
            if any(g > m for g, m in zip(d.groups, max_groups)):
                raise DeviceLimitError(f"layer {d.layer!r}: {d.groups} work groups exceed "
                                       f"GL_MAX_COMPUTE_WORK_GROUP_COUNT {max_groups} at {run_w}x{run_h}")
            d.program = self.programs.get(d.shader, d.defines, d.layer)
        self._release_activations()
        try:
            for name, nbytes in needed.items():
                self.buffers[name] = self.ctx.buffer(reserve=nbytes)
        except BaseException:
            self._release_activations()
            raise
        self.dispatches, self.run_size, self.sizes = plan, (run_h, run_w), sizes

    def run(self) -> None:
        """Execute every layer on what the input buffer holds."""
        self._check_live()
        barrier = moderngl.SHADER_STORAGE_BARRIER_BIT
        for d in self.dispatches:
            for binding, source in d.bindings.items():
                buffer = self.weights[source] if isinstance(source, tuple) else self.buffers[source]
                buffer.bind_to_storage_buffer(binding)
            for name, value in d.uniforms.items():
                if name in d.program:
                    d.program[name] = value
            d.program.run(*d.groups)
            # The next dispatch reads what this one wrote.
            self.ctx.memory_barrier(barrier)

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
        if type(self.ctx.mglo).__name__ == "InvalidObject":
            raise ContextLost("the GL context was released; rebuild the pass in a live context")

    def _release_activations(self) -> None:
        for buffer in self.buffers.values():
            buffer.release()
        self.buffers.clear()
        self.dispatches, self.run_size = [], None

    def release(self) -> None:
        if self.released:
            return
        self._release_activations()
        for buffer in self.weights.values():
            buffer.release()
        self.weights.clear()
        if self._owns_programs:
            self.programs.release()
        self.released = True
