"""kernels="auto": the kernel of each conv layer chosen by measurement on the
caller's own context, as ncnn's and TFLite's GPU tuners do.

At the first build at a run size, each conv layer runs alone (LayerBench: its
inputs filled with seeded values) under every candidate of the ladder -- each
variant x its tunables (conv_kernels.candidates) -- and the fastest is checked
against the naive kernel on a small probe before it is kept. The choice goes
to the kernel cache (kernel_cache.py), so the next start at that size does no
timing. A budget in seconds bounds the tuning: layers not reached keep the
static choice and are not cached, so a later start (or `postfx tune`) goes on.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from collections import ChainMap
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from .. import model_format as fmt
from ..errors import (
    AllocationFailed,
    DeviceLimitError,
    FileWriteError,
    FrameTooLarge,
    KernelCacheWarning,
    ShaderCompileError,
)
from .context import allocating
from .conv_kernels import (
    ConvShape,
    KernelChoice,
    candidates,
    is_valid_choice,
    static_choice,
    variants_of,
)
from .dispatch import check_limits, tensor_sizes
from .kernel_cache import KernelCache
from .resources import (
    AFTER_DISPATCH,
    BEFORE_HOST_READ,
    image_view,
    refresh_view,
    run_dispatch,
    weight_buffer,
    weight_image,
)
from .timing import PassTimer

DEFAULT_BUDGET_S = 10.0         # tuning time a first start may spend; $POSTFX_TUNING_BUDGET_S overrides
TIMED_RUNS = 3                  # the fastest of these, after one warm-up run, is a candidate's time
HOPELESS = 3.0                  # a first timed run this many times the best so far: no more runs
PROBE_OUT = (37, 9)             # (W, H) of a conv's output in the check against naive (partial blocks)
PROBE_TRANSPOSE_IN = (19, 5)    # (W, H) of a transposed conv's input there
PROBE_TOLERANCE = {False: 1e-3, True: 1e-2}    # fp16 storage: max |delta| / max(1, max |naive|)


def default_budget() -> float:
    text = os.environ.get("POSTFX_TUNING_BUDGET_S")
    if text is None:
        return DEFAULT_BUDGET_S
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"POSTFX_TUNING_BUDGET_S must be a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise ValueError(f"POSTFX_TUNING_BUDGET_S must be >= 0, got {text!r}")
    return value


def device_identity(ctx) -> list[str]:
    info = ctx.info
    return [str(info.get("GL_VENDOR", "?")), str(info.get("GL_RENDERER", "?")), str(info.get("GL_VERSION", "?"))]


def layer_key(identity: list[str], layer: fmt.Layer, graph: fmt.Graph, sizes: dict, fp16: bool) -> list:
    """What the winner depends on (kernel_cache.py)."""
    shape = ConvShape.of(layer, graph)
    return [*identity, f"postfx {__version__}", layer.op, layer.kernel, layer.stride, layer.padding,
            layer.padding_mode, layer.output_padding, list(shape.source_slices), shape.out_slices,
            layer.activation, list(sizes[layer.inputs[0]]), list(sizes[layer.name]), "fp16" if fp16 else "fp32"]


class LayerBench:
    """One conv layer alone at given tensor sizes: its input tensors hold seeded
    values in [-1, 1], its weights are uploaded in the form each kernel reads, its
    output has a buffer; run() executes any KernelChoice on them."""

    def __init__(self, network, layer: fmt.Layer, sizes: dict, border: int):
        self.ctx, self.network, self.layer, self.sizes, self.border = network.ctx, network, layer, sizes, border
        self.buffers, self.views, self.weights, self.images = {}, {}, {}, {}
        self._storage = ChainMap(self.buffers, self.weights)
        self._images = ChainMap(self.views, self.images)
        try:
            self._allocate()
        except BaseException:
            self.release()
            raise

    def _allocate(self) -> None:
        graph, net = self.network.model.graph, self.network
        rng = np.random.default_rng(0)
        dtype = np.float16 if net.fp16 else np.float32
        for name in dict.fromkeys(self.layer.inputs):
            (w, h), slices = self.sizes[name], graph.tensors[name].slices
            texels = rng.uniform(-1, 1, (slices, h, w, 4)).astype(dtype)
            with allocating(self.ctx, f"the tuning copy of tensor {name!r} ({texels.nbytes} bytes)"):
                self.buffers[name] = self.ctx.buffer(texels.tobytes())
        (w, h) = self.sizes[self.layer.name]
        nbytes = max(16, graph.tensors[self.layer.name].slices * w * h * net.texel_bytes)
        with allocating(self.ctx, f"the tuning output of layer {self.layer.name!r} ({nbytes} bytes)"):
            self.buffers[self.layer.name] = self.ctx.buffer(reserve=nbytes)
        weight, bias = net.model.layer_weights(self.layer)
        with allocating(self.ctx, f"the tuning weights of layer {self.layer.name!r}"):
            self.weights[("bias", self.layer.name)] = self.ctx.buffer(bias.astype("<f4").tobytes())
        self._weight = weight

    def _resources_for(self, choice: KernelChoice, plan) -> None:
        """The weight form and image views a choice's dispatches read, made on first use."""
        key = ("weights", self.layer.name)
        if variants_of(self.layer)[choice.variant].reads_weight_image:
            if key not in self.images:
                with allocating(self.ctx, f"the tuning weight image of layer {self.layer.name!r}"):
                    self.images[key] = weight_image(self.ctx, self._weight)
        elif key not in self.weights:
            with allocating(self.ctx, f"the tuning weights of layer {self.layer.name!r}"):
                self.weights[key] = weight_buffer(self.ctx, self._weight)
        limits, graph = self.network.limits, self.network.model.graph
        for d in plan:
            for name in d.images.values():
                if isinstance(name, str) and name not in self.views:
                    (w, h), slices = self.sizes[name], graph.tensors[name].slices
                    shape = (w + 2 * self.border, h + 2 * self.border, slices)
                    if max(shape[:2]) > limits.max_texture_size or slices > limits.max_array_layers:
                        raise FrameTooLarge(f"the image view of tensor {name!r} ({shape}) exceeds the "
                                            f"texture limits of {limits.renderer}")
                    with allocating(self.ctx, f"the tuning view of tensor {name!r}"):
                        self.views[name] = image_view(self.ctx, shape, self.network.fp16)
                    refresh_view(self.views[name], self.buffers[name], self.sizes[name], self.border)

    def prepare(self, choice: KernelChoice) -> list:
        """Plan, check and compile a choice; make what it reads. Raises DeviceLimitError,
        ShaderCompileError, FrameTooLarge or AllocationFailed where it cannot run here."""
        net = self.network
        plan = variants_of(self.layer)[choice.variant].dispatches(
            self.layer, net.model.graph, self.sizes, net.fp16, net.limits, choice.knobs or None)
        for d in plan:
            check_limits(d, net.limits)
            if d.images:
                d.uniforms["view_border"] = self.border
            d.program = net.programs.get(d.shader, d.defines, d.layer)
        self._resources_for(choice, plan)
        return plan

    def run(self, plan) -> None:
        for d in plan:
            run_dispatch(d, self._storage, self._images)
            self.ctx.memory_barrier(AFTER_DISPATCH)

    def output(self) -> np.ndarray:
        """The layer's output buffer as (slices, H, W, 4) float32."""
        (w, h), slices = self.sizes[self.layer.name], self.network.model.graph.tensors[self.layer.name].slices
        self.ctx.memory_barrier(BEFORE_HOST_READ)
        dtype = np.float16 if self.network.fp16 else np.float32
        data = self.buffers[self.layer.name].read(size=slices * h * w * self.network.texel_bytes)
        return np.frombuffer(data, dtype).reshape(slices, h, w, 4).astype(np.float32)

    def release(self) -> None:
        for resource in (*self.buffers.values(), *self.views.values(), *self.weights.values(),
                         *self.images.values()):
            resource.release()
        for table in (self.buffers, self.views, self.weights, self.images):
            table.clear()


@dataclass
class LayerReport:
    """What tuning found for one layer (`postfx tune` prints these)."""
    layer: str
    choice: KernelChoice
    source: str                 # "measured", "cache", "partial" (the budget ran out: the best of those
                                # timed, not cached), "static" (not measured)
    seconds: float | None = None                    # the chosen kernel's time at the run size
    timings: dict = field(default_factory=dict)     # KernelChoice -> seconds, or a reason it did not run


class Tuner:
    """Chooses the kernels of kernels="auto" networks (see the module doc).

    budget_s: seconds of tuning a build may spend (None: $POSTFX_TUNING_BUDGET_S,
    else DEFAULT_BUDGET_S; 0: no timing, cached or static choices only; math.inf:
    everything). cache: a KernelCache, None for the user's cache file, False for
    none on disk. measure(layer name, choice, run_once) -> seconds times one
    candidate (default: a warm-up run, then the fastest of TIMED_RUNS); tests
    inject one to prove the choice follows the measurement."""

    def __init__(self, budget_s: float | None = None, cache=None, measure=None):
        self.budget_s = default_budget() if budget_s is None else float(budget_s)
        if not self.budget_s >= 0:
            raise ValueError(f"tuning budget must be >= 0 seconds, got {budget_s!r}")
        self._cache = cache
        self.measure = measure
        self.timed_runs = 0                 # dispatches run to time candidates, over this tuner's life
        self.reports: list[LayerReport] = []    # of the last choose()

    @property
    def cache(self) -> KernelCache | None:
        if self._cache is None:
            self._cache = KernelCache()
        return self._cache or None

    def _lookup(self, network, layer, sizes) -> tuple[list, KernelChoice | None]:
        key = layer_key(device_identity(network.ctx), layer, network.model.graph, sizes, network.fp16)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None and not is_valid_choice(cached, layer, network.model.graph, network.limits):
            cached = None
        return key, cached

    def known_choices(self, network, run_h: int, run_w: int) -> dict:
        """The choices at a run size from the cache, static where it knows none; times nothing."""
        sizes = tensor_sizes(network.model.graph, run_h, run_w)
        out = {}
        for layer in network.model.graph.layers:
            if layer.op in fmt.CONV_OPS:
                cached = self._lookup(network, layer, sizes)[1]
                out[layer.name] = cached or static_choice(layer, network.model.graph, "auto", network.limits)
        return out

    def pending_layers(self, network, run_h: int, run_w: int) -> frozenset:
        """The conv layers a choose() at this run size may still time: none without a
        budget, else those the cache has no valid choice for."""
        if self.budget_s <= 0:
            return frozenset()
        sizes = tensor_sizes(network.model.graph, run_h, run_w)
        return frozenset(layer.name for layer in network.model.graph.layers
                         if layer.op in fmt.CONV_OPS and self._lookup(network, layer, sizes)[1] is None)

    def choose(self, network, run_h: int, run_w: int) -> dict:
        sizes = tensor_sizes(network.model.graph, run_h, run_w)
        graph, limits = network.model.graph, network.limits
        deadline = time.perf_counter() + self.budget_s
        choices, self.reports = {}, []
        for layer in graph.layers:
            if layer.op not in fmt.CONV_OPS:
                continue
            key, cached = self._lookup(network, layer, sizes)
            if cached is not None:
                report = LayerReport(layer.name, cached, "cache", self.cache.seconds(key))
            elif self.budget_s > 0 and time.perf_counter() < deadline:
                report = self._tune_layer(network, layer, sizes, deadline)
                if report.source == "measured" and self.cache is not None:
                    self.cache.put(key, report.choice, report.seconds)
            else:
                report = LayerReport(layer.name, static_choice(layer, graph, "auto", limits), "static")
            choices[layer.name] = report.choice
            self.reports.append(report)
        if self.cache is not None:
            try:
                self.cache.save()
            except FileWriteError as e:
                warnings.warn(f"the kernel choices could not be cached: {e}", KernelCacheWarning, stacklevel=3)
        return choices

    # --- one layer ---------------------------------------------------------------

    def _time(self, ctx, layer: str, choice: KernelChoice, run_once, best: float) -> float:
        def counted():
            self.timed_runs += 1
            run_once()
        if self.measure is not None:
            return self.measure(layer, choice, counted)
        timer = PassTimer(ctx)
        run_once()                                  # warm-up: drivers finish compiling at first use
        fastest = timer.measure(counted)[0] / 1000
        if fastest > HOPELESS * best:
            return fastest
        for _ in range(TIMED_RUNS - 1):
            fastest = min(fastest, timer.measure(counted)[0] / 1000)
        return fastest

    def _tune_layer(self, network, layer, sizes, deadline) -> LayerReport:
        graph, limits = network.model.graph, network.limits
        options = candidates(layer, graph, limits)
        border = max(variants_of(layer)[c.variant].view_border(layer) for c in options)
        report = LayerReport(layer.name, static_choice(layer, graph, "auto", limits), "static")
        timings: dict = {}
        try:
            bench = LayerBench(network, layer, {name: sizes[name] for name in (*layer.inputs, layer.name)}, border)
        except AllocationFailed as e:
            report.timings[report.choice] = f"not timed: {e}"     # no room for a copy of its tensors
            return report
        complete = True
        try:
            for choice in options:
                if timings and time.perf_counter() > deadline:
                    complete = False
                    break
                try:
                    plan = bench.prepare(choice)
                except (DeviceLimitError, ShaderCompileError, FrameTooLarge, AllocationFailed) as e:
                    report.timings[choice] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                    continue
                best = min(timings.values(), default=math.inf)
                timings[choice] = self._time(network.ctx, layer.name, choice, lambda plan=plan: bench.run(plan), best)
                report.timings[choice] = timings[choice]
        finally:
            bench.release()
        if not timings:
            return report                   # no candidate could run here: the static choice, not cached
        for choice in sorted(timings, key=timings.get):
            if self._matches_naive(network, layer, choice):
                report.choice, report.seconds = choice, timings[choice]
                report.source = "measured" if complete else "partial"
                return report
            report.timings[choice] = f"differs from the naive kernel on the probe: {timings[choice]}"
            warnings.warn(f"layer {layer.name!r}: kernel {choice} gives results that differ from the naive "
                          f"kernel on {network.limits.renderer}; not used", RuntimeWarning, stacklevel=4)
        report.choice, report.source = KernelChoice.of("naive"), "measured" if complete else "partial"
        return report

    def _matches_naive(self, network, layer, choice: KernelChoice) -> bool:
        """The choice's output equals the naive kernel's on a small probe with partial
        blocks (PROBE_OUT), within PROBE_TOLERANCE of the output's magnitude."""
        if layer.op == "conv2d":
            out = PROBE_OUT
            probe_in = (out[0] * layer.stride, out[1] * layer.stride)
        else:
            probe_in = PROBE_TRANSPOSE_IN
            out = (2 * probe_in[0], 2 * probe_in[1])
        sizes = {name: probe_in for name in layer.inputs}
        sizes[layer.name] = out
        bench = LayerBench(network, layer, sizes, variants_of(layer)[choice.variant].view_border(layer))
        try:
            bench.run(bench.prepare(KernelChoice.of("naive")))
            expected = bench.output()
            bench.run(bench.prepare(choice))
            got = bench.output()
        finally:
            bench.release()
        worst = float(np.max(np.abs(got - expected))) if got.size else 0.0
        return bool(np.isfinite(got).all()) and worst <= PROBE_TOLERANCE[network.fp16] * max(
            1.0, float(np.max(np.abs(expected))))
