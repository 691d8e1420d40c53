"""The backends of `postfx bench`: one reference U-Net at one run size, one
frame per run(), timed by wall clock after the work is waited for.

    GL      GLNetwork.run() on an input already in its GL buffer; ctx.finish()
            before and after. A GL timer query is read as well (llvmpipe's
            reads ~0; a GPU's is the device time).
    torch   the same weights in postfx.train.models.UNetGenerator, channels-last,
            torch.inference_mode(); "+copies" adds the round trip through GL that
            a renderer feeding torch needs (COPIES below).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import moderngl
import numpy as np

from postfx import model_format as fmt
from postfx import reference
from postfx.errors import DeviceLimitError, FrameTooLarge
from postfx.gl.network import GLNetwork
from postfx.gl.tuner import Tuner

COPIES = ("GL -> host: the network input, an RGBA32F texture of the run size (the RGBD frame, 16 B / pixel), "
          "read into a host buffer (pinned on CUDA); host -> device: one copy (none on CPU, where torch wraps "
          "the buffer); the network; tanh output -> 8-bit RGB on the device; device -> host: 3 B / pixel; "
          "host -> GL: written into an RGB8 texture; then torch.cuda.synchronize() and ctx.finish(). Without "
          "CUDA-GL interop every step is counted; the postfx pass itself makes none of these copies")


@dataclass(frozen=True)
class Backend:
    name: str
    family: str                 # "gl" or "torch"
    kernels: str = ""           # GL: a kernels= value of GLNetwork ("naive", "blocked", "auto", ...)
    fp16: bool = False          # GL: fp16 activation storage (fp32 arithmetic); torch: fp16 weights + activations
    device: str = "gl"          # torch: "cpu" or "cuda"
    copies: bool = False        # torch: count the GL <-> torch copies

    @property
    def precision(self) -> str:
        if self.family == "gl":
            return "fp16 storage, fp32 math" if self.fp16 else "fp32"
        return "fp16" if self.fp16 else "fp32"


BACKENDS = {b.name: b for b in (
    Backend("gl-naive", "gl", kernels="naive"),
    Backend("gl-tiled", "gl", kernels="tiled"),
    Backend("gl-blocked", "gl", kernels="blocked"),
    Backend("gl-cooperative", "gl", kernels="cooperative"),
    Backend("gl-opt", "gl", kernels="optimized"),
    Backend("gl-opt-fp16", "gl", kernels="optimized", fp16=True),
    Backend("gl-auto", "gl", kernels="auto"),
    Backend("gl-auto-fp16", "gl", kernels="auto", fp16=True),
    Backend("torch-cpu", "torch", device="cpu"),
    Backend("torch-cpu+copies", "torch", device="cpu", copies=True),
    Backend("torch-cuda", "torch", device="cuda"),
    Backend("torch-cuda+copies", "torch", device="cuda", copies=True),
    Backend("torch-cuda-fp16", "torch", device="cuda", fp16=True),
    Backend("torch-cuda-fp16+copies", "torch", device="cuda", fp16=True, copies=True),
)}
GL_BACKENDS = ("gl-naive", "gl-tiled", "gl-blocked", "gl-cooperative", "gl-opt", "gl-opt-fp16", "gl-auto",
               "gl-auto-fp16")
CUDA_BACKENDS = ("torch-cuda", "torch-cuda+copies", "torch-cuda-fp16", "torch-cuda-fp16+copies")


class Skip(Exception):
    """This cell cannot run here; the message says why."""


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def unavailable(backend: Backend) -> str | None:
    """Why `backend` cannot run on this machine, or None."""
    if backend.family != "torch":
        return None
    torch = torch_or_none()
    if torch is None:
        return "torch is not installed (pip install torch, or postfx[train])"
    if backend.device == "cuda" and not torch.cuda.is_available():
        return "torch.cuda.is_available() is False on this machine"
    return None


@contextlib.contextmanager
def torch_settings(threads: int | None = None):
    """Process-wide torch settings of the benchmark (CPU threads: every usable core
    unless given; cudnn.benchmark on; TF32 off), restored afterwards; yields them for the record."""
    torch = torch_or_none()
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = torch.get_num_threads(), cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    # fp32 means fp32 (the GL kernels' arithmetic), not TF32 tensor cores; fp16 is its own backend.
    cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = True, False, False
    try:
        yield {"num_threads": torch.get_num_threads(), "cudnn_benchmark": True, "allow_tf32": False}
    finally:
        torch.set_num_threads(before[0])
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before[1:]


def input_frame(run_h: int, run_w: int, seed: int = 0) -> np.ndarray:
    """(H, W, 4) float32 RGBD in [-1, 1]: the frame every backend runs on."""
    return np.random.default_rng(seed).uniform(-1, 1, (run_h, run_w, 4)).astype(np.float32)


def activation_bytes(model, run_h: int, run_w: int, bytes_per_value: int) -> int:
    """Every tensor of the graph at once plus each decoder's concatenated input:
    an upper bound on what torch keeps alive in one forward pass."""
    graph = model.graph
    values = 0.0
    for info in graph.tensors.values():
        num, den = info.scale
        values += info.channels * run_h * run_w * (num / den) ** 2
    for layer in graph.layers:
        if layer.op in fmt.CONV_OPS and len(layer.inputs) > 1:
            num, den = graph.tensors[layer.inputs[0]].scale
            values += sum(fmt.in_segments(layer, graph.tensors)) * run_h * run_w * (num / den) ** 2
    return int(values * bytes_per_value)


def host_memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class GLRunner:
    def __init__(self, ctx, programs, model, run_h: int, run_w: int, backend: Backend, frame: np.ndarray,
                 timer_query):
        self.ctx, self.timer_query = ctx, timer_query
        self.network = None
        # "auto" tunes fully at its first size (outside the timed runs) unless the environment
        # sets a tuning budget (the test suite sets 0); the tuning time is reported.
        tuner = None
        if backend.kernels == "auto":
            tuner = Tuner(budget_s=None if "POSTFX_TUNING_BUDGET_S" in os.environ else math.inf)
        self.tuning_seconds = 0.0
        try:
            self.network = GLNetwork(ctx, model, kernels=backend.kernels, fp16=backend.fp16, programs=programs,
                                     tuner=tuner)
            started = time.perf_counter()
            self.network.resize(run_h, run_w)
            self.tuning_seconds = time.perf_counter() - started
            # (4, H, W) lanes of the RGBD frame -> the input buffer, (1, H, W) vec4 texels
            self.network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(frame))
        except (FrameTooLarge, DeviceLimitError, moderngl.Error) as e:
            self.release()
            raise Skip(f"{type(e).__name__}: {e}") from None
        self.timer_ms: list[float] = []

    def run(self) -> float:
        self.ctx.finish()
        start = time.perf_counter()
        with self.timer_query:
            self.network.run()
        self.ctx.finish()
        seconds = time.perf_counter() - start
        self.timer_ms.append(self.timer_query.elapsed / 1e6)
        return seconds

    def release(self) -> None:
        if self.network is not None:
            self.network.release()
            self.network = None


class TorchRunner:
    def __init__(self, ctx, net_factory, model, run_h: int, run_w: int, backend: Backend, frame: np.ndarray):
        torch = torch_or_none()
        self.torch, self.ctx, self.backend = torch, ctx, backend
        self.device = torch.device(backend.device)
        self.gl_objects = []
        dtype = torch.float16 if backend.fp16 else torch.float32
        need = activation_bytes(model, run_h, run_w, 2 if backend.fp16 else 4) * 3 // 2
        if backend.device == "cuda":
            free, _ = torch.cuda.mem_get_info()
            if need > 0.9 * free:
                raise Skip(f"needs about {need / 2**30:.1f} GiB of activations, {free / 2**30:.1f} GiB free on the GPU")
        else:
            available = host_memory_available()
            if available is not None and need > 0.7 * available:
                raise Skip(f"needs about {need / 2**30:.1f} GiB of activations, {available / 2**30:.1f} GiB "
                           "host memory available")
        self.start_event = self.end_event = None
        try:
            self.net = net_factory().to(self.device, dtype=dtype, memory_format=torch.channels_last)
            if backend.copies:
                self._gl_side(frame)
            else:
                # (1, H, W, 4) NHWC permuted to (1, 4, H, W): exactly channels-last strides
                nhwc = torch.from_numpy(frame)[None].to(self.device, dtype)
                self.x = nhwc.permute(0, 3, 1, 2)
            if backend.device == "cuda":
                self.start_event = torch.cuda.Event(enable_timing=True)
                self.end_event = torch.cuda.Event(enable_timing=True)
        except torch.cuda.OutOfMemoryError as e:
            self.release()
            raise Skip(f"CUDA out of memory: {str(e).splitlines()[0]}") from None
        self.timer_ms: list[float] = []

    def _gl_side(self, frame: np.ndarray) -> None:
        torch = self.torch
        run_h, run_w = frame.shape[:2]
        pinned = self.backend.device == "cuda"
        self.gl_in = self.ctx.texture((run_w, run_h), 4, frame.tobytes(), dtype="f4")        # RGBA32F
        self.gl_out = self.ctx.texture((run_w, run_h), 3, dtype="f1", alignment=1)            # RGB8
        self.gl_objects = [self.gl_in, self.gl_out]
        self.host_in = torch.empty((run_h, run_w, 4), dtype=torch.float32, pin_memory=pinned)     # (H, W, 4)
        self.host_out = torch.empty((run_h, run_w, 3), dtype=torch.uint8, pin_memory=pinned)      # (H, W, 3)
        self.host_in_array, self.host_out_array = self.host_in.numpy(), self.host_out.numpy()
        self.device_in = self.host_in if not pinned else torch.empty_like(self.host_in, device=self.device)

    def _sync(self) -> None:
        if self.backend.device == "cuda":
            self.torch.cuda.synchronize()

    def _forward(self):
        torch = self.torch
        with torch.inference_mode():
            if not self.backend.copies:
                return self.net(self.x)
            self.gl_in.read_into(self.host_in_array)
            if self.device_in is not self.host_in:
                self.device_in.copy_(self.host_in, non_blocking=True)
            x = self.device_in[None].permute(0, 3, 1, 2)
            if self.backend.fp16:
                x = x.half()
            y = self.net(x)                                                   # (1, 3, H, W) in [-1, 1]
            rgb8 = ((y[0].permute(1, 2, 0).float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
            self.host_out.copy_(rgb8, non_blocking=True)
            self._sync()
            self.gl_out.write(self.host_out_array)
            return y

    def run(self) -> float:
        self._sync()
        if self.backend.copies:
            self.ctx.finish()
        start = time.perf_counter()
        try:
            if self.start_event is not None:
                self.start_event.record()
            self._forward()
            if self.end_event is not None:
                self.end_event.record()
            self._sync()
        except self.torch.cuda.OutOfMemoryError as e:
            raise Skip(f"CUDA out of memory: {str(e).splitlines()[0]}") from None
        if self.backend.copies:
            self.ctx.finish()
        seconds = time.perf_counter() - start
        if self.start_event is not None:
            # CUDA events around the work: the device's own time (the wall clock includes launches)
            self.timer_ms.append(self.start_event.elapsed_time(self.end_event))
        return seconds

    def release(self) -> None:
        for obj in self.gl_objects:
            obj.release()
        self.gl_objects = []
        self.net = self.x = None
        if self.backend.device == "cuda":
            self.torch.cuda.empty_cache()
