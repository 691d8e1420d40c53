"""kernels="auto": each layer's kernel follows the measurement (an injected
timer), the winner is checked against the naive kernel, the choice is cached so
a second build times nothing, the budget bounds the tuning, and a bad cache
file is never trusted (reliability C17). Also every tunable of the blocked and
cooperative kernels against the numpy reference."""
from __future__ import annotations

import json
import math
import time
import warnings
import zlib

import pytest
from shader_patch import patched_shader

import postfx
from postfx import model_format as fmt
from postfx import reference
from postfx.errors import InputError, KernelCacheWarning
from postfx.gl import conv_kernels
from postfx.gl.dispatch import DeviceLimits
from postfx.gl.kernel_cache import KernelCache, entries_checksum
from postfx.gl.network import GLNetwork
from postfx.gl.programs import ProgramCache
from postfx.gl.tuner import Tuner
from postfx.testing.parity import FP16, FP32, assert_close, seeded
from postfx.testing.unet import reference_unet

RUN = (32, 48)          # (H, W)


@pytest.fixture(scope="module")
def model():
    return reference_unet(2, 8)


@pytest.fixture(scope="module")
def shared_programs(gl_ctx):
    """One program cache for the module: each candidate compiles once."""
    cache = ProgramCache(gl_ctx)
    yield cache
    cache.release()


def fake_seconds(layer: str, choice) -> float:
    """A made-up, deterministic time per (layer, kernel): the winner is its argmin."""
    return 1e-3 * (1 + zlib.crc32(f"{layer}/{choice}".encode()) % 997)


class Recorder:
    """An injected measure: returns fake_seconds, after running the candidate once
    (as a real measure does), and records each call."""

    def __init__(self, seconds=fake_seconds, sleep=0.0):
        self.calls, self.seconds, self.sleep = [], seconds, sleep

    def __call__(self, layer, choice, run_once):
        run_once()
        time.sleep(self.sleep)
        self.calls.append((layer, choice))
        return self.seconds(layer, choice)


def build(gl_ctx, model, shared_programs, tuner, fp16=False):
    network = GLNetwork(gl_ctx, model, kernels="auto", fp16=fp16, programs=shared_programs, tuner=tuner)
    network.resize(*RUN)
    return network


def expected_choices(model, limits) -> dict:
    return {layer.name: min(conv_kernels.candidates(layer, model.graph, limits),
                            key=lambda c: fake_seconds(layer.name, c))
            for layer in model.graph.layers if layer.op in fmt.CONV_OPS}


def test_each_layer_takes_the_fastest_measured_kernel_and_a_second_build_times_nothing(
        gl_ctx, model, shared_programs, tmp_path):
    cache = KernelCache(tmp_path / "kernels.json")
    first = Recorder()
    network = build(gl_ctx, model, shared_programs, Tuner(budget_s=math.inf, cache=cache, measure=first))
    try:
        want = expected_choices(model, network.limits)
        assert network.choices == want
        assert {layer for layer, _ in first.calls} == set(want), "every conv layer was timed"
        layers = {layer.name: layer for layer in model.graph.layers}
        for name in want:
            timed = [c for layer, c in first.calls if layer == name]
            assert timed == conv_kernels.candidates(layers[name], model.graph, network.limits), \
                f"{name}: every candidate timed once, in order"
        x = reference.to_lanes(seeded((*RUN, 4), seed=2))
        network.write_tensor(fmt.INPUT_TENSOR, x)
        network.run()
        assert_close(network.read_tensor(model.graph.output), reference.run_layers(model, x)[model.graph.output],
                     what="auto-tuned network vs numpy")
    finally:
        network.release()
    assert cache.path.is_file()

    second = Recorder()
    tuner = Tuner(budget_s=math.inf, cache=KernelCache(tmp_path / "kernels.json"), measure=second)
    again = build(gl_ctx, model, shared_programs, tuner)
    try:
        assert again.choices == want
        assert second.calls == [] and tuner.timed_runs == 0, "a cached size runs no timing dispatch"
        assert {r.source for r in tuner.reports} == {"cache"}
    finally:
        again.release()


def test_the_choice_follows_the_measurement_whatever_it_says(gl_ctx, model, shared_programs):
    """Reversing the made-up times reverses the choice: nothing else decides."""
    slowest_first = Recorder(seconds=lambda layer, choice: 1.0 / fake_seconds(layer, choice))
    network = build(gl_ctx, model, shared_programs, Tuner(budget_s=math.inf, cache=False, measure=slowest_first))
    try:
        for layer in model.graph.layers:
            if layer.op in fmt.CONV_OPS:
                options = conv_kernels.candidates(layer, model.graph, network.limits)
                assert network.choices[layer.name] == max(options, key=lambda c: fake_seconds(layer.name, c))
    finally:
        network.release()


@pytest.fixture
def broken_cooperative_conv():
    """conv_cooperative.comp adding every product twice: compiles, runs, is wrong."""
    with patched_shader("conv_cooperative.comp", "acc[o][p] += w * x[p];", "acc[o][p] += 2.0 * (w * x[p]);"):
        yield


def test_a_fast_kernel_that_differs_from_naive_is_not_kept(gl_ctx, model, broken_cooperative_conv):
    layer = model.graph.layers[0]
    assert layer.name == "enc1" and layer.op == "conv2d"
    cooperative_fastest = Recorder(seconds=lambda name, choice: 1e-6 if choice.variant == "cooperative"
                                   else fake_seconds(name, choice))
    network = GLNetwork(gl_ctx, model, kernels="auto", tuner=Tuner(budget_s=math.inf, cache=False,
                                                                    measure=cooperative_fastest))
    try:
        with pytest.warns(RuntimeWarning, match="differ from the naive kernel"):
            network.resize(*RUN)
        assert network.choices["enc1"].variant != "cooperative"
        others = [c for c in conv_kernels.candidates(layer, model.graph, network.limits) if c.variant != "cooperative"]
        assert network.choices["enc1"] == min(others, key=lambda c: fake_seconds("enc1", c))
    finally:
        network.release()


def test_the_budget_bounds_tuning_and_unreached_layers_are_not_cached(gl_ctx, model, shared_programs, tmp_path):
    cache = KernelCache(tmp_path / "kernels.json")
    tuner = Tuner(budget_s=0.2, cache=cache, measure=Recorder(sleep=0.05))
    started = time.perf_counter()
    network = build(gl_ctx, model, shared_programs, tuner)
    try:
        sources = {r.layer: r.source for r in tuner.reports}
        assert "static" in sources.values(), f"a 0.2 s budget cannot time every candidate: {sources}"
        for report in tuner.reports:
            if report.source == "static":
                assert report.choice == conv_kernels.static_choice(
                    next(layer for layer in model.graph.layers if layer.name == report.layer), model.graph,
                    "auto", network.limits)
        cached = json.loads(cache.path.read_text())["entries"] if cache.path.exists() else {}
        assert len(cached) == sum(s == "measured" for s in sources.values())
    finally:
        network.release()
    assert time.perf_counter() - started < 30

    nothing = Tuner(budget_s=0, cache=False, measure=Recorder())
    network = build(gl_ctx, model, shared_programs, nothing)
    try:
        assert nothing.timed_runs == 0 and {r.source for r in nothing.reports} == {"static"}
    finally:
        network.release()


def test_C6_memory_figures_bound_what_tuning_may_choose_and_are_exact_once_known(gl_ctx, model, shared_programs,
                                                                                  tmp_path):
    """Before a size is tuned the estimate counts, for each layer still to be measured,
    the larger weight form and the image views any candidate reads: what the build then
    holds is never more. Once the choices are cached the estimate is what is held."""
    def held(network):
        return (sum(b.size for b in (*network.weights.values(), *network.buffers.values()))
                + sum(t.width * t.height * 16 for t in network.weight_images.values())
                + sum(v.width * v.height * v.layers * network.texel_bytes for v in network.views.values()))

    tuner = Tuner(budget_s=math.inf, cache=KernelCache(tmp_path / "kernels.json"), measure=Recorder())
    network = GLNetwork(gl_ctx, model, kernels="auto", programs=shared_programs, tuner=tuner)
    try:
        assert tuner.pending_layers(network, *RUN)
        before = network.weight_bytes_at(*RUN) + network.activation_bytes(*RUN)
        network.resize(*RUN)
        assert not tuner.pending_layers(network, *RUN)
        assert held(network) <= before
        assert held(network) == network.weight_bytes_at(*RUN) + network.activation_bytes(*RUN)
    finally:
        network.release()


def test_tuning_budget_is_checked(gl_ctx):
    with pytest.raises(InputError, match="tuning budget"):
        postfx.PostFX(gl_ctx, "ink", tuning_budget_s=-1)
    with pytest.raises(InputError, match="kernels='auto' only"):
        postfx.PostFX(gl_ctx, "ink", kernels="blocked", tuning_budget_s=5)


# --- C17: the cache file is never trusted ---------------------------------------------

def tuned_cache(gl_ctx, model, shared_programs, path) -> dict:
    network = build(gl_ctx, model, shared_programs, Tuner(budget_s=math.inf, cache=KernelCache(path),
                                                          measure=Recorder()))
    choices = dict(network.choices)
    network.release()
    return choices


def spoil(path, how):
    text = path.read_text()
    if how == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif how == "truncated":
        path.write_text(text[:len(text) // 2])
    elif how == "foreign":
        path.write_text(json.dumps({"format": "something-else", "version": 1, "entries": {}}))
    elif how == "future version":
        doc = json.loads(text)
        doc["version"] = 99
        path.write_text(json.dumps(doc))
    elif how == "edited":
        doc = json.loads(text)
        entry = next(iter(doc["entries"].values()))
        entry["tunables"] = {"BLOCK_SLICES": 1, "BLOCK_PIXELS": 1}       # checksum not updated
        path.write_text(json.dumps(doc))
    elif how == "empty":
        path.write_text("")


@pytest.mark.parametrize("how", ["garbage", "truncated", "foreign", "future version", "edited", "empty"])
def test_C17_a_bad_kernel_cache_is_ignored_and_rewritten(gl_ctx, model, shared_programs, tmp_path, how):
    path = tmp_path / "kernels.json"
    want = tuned_cache(gl_ctx, model, shared_programs, path)
    spoil(path, how)
    timing = Recorder()
    with pytest.warns(KernelCacheWarning, match="ignoring the kernel cache"):
        cache = KernelCache(path)
    assert cache.entries == {}
    network = build(gl_ctx, model, shared_programs, Tuner(budget_s=math.inf, cache=cache, measure=timing))
    try:
        assert timing.calls, "nothing from the spoiled file was used: every layer timed again"
        assert network.choices == want
    finally:
        network.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelCacheWarning)
        rewritten = KernelCache(path)                   # a valid file again, no warning
    assert len(rewritten.entries) == len(want)


def test_C17_a_cached_choice_this_layer_cannot_run_is_not_used(gl_ctx, model, shared_programs, tmp_path):
    """A well-formed file naming a variant or tunables outside the layer's space (another
    postfx, a hand edit with the checksum redone) is not trusted either."""
    path = tmp_path / "kernels.json"
    want = tuned_cache(gl_ctx, model, shared_programs, path)
    doc = json.loads(path.read_text())
    for entry in doc["entries"].values():
        entry["variant"], entry["tunables"] = "cooperative", {"GROUP_X": 4096, "GROUP_Y": 1, "BLOCK_SLICES": 1,
                                                              "BLOCK_PIXELS": 1}
    doc["sha256"] = entries_checksum(doc["entries"])
    path.write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelCacheWarning)
        assert len(KernelCache(path).entries) == len(want), "the file itself is well-formed"
    timing = Recorder()
    network = build(gl_ctx, model, shared_programs, Tuner(budget_s=math.inf, cache=KernelCache(path),
                                                          measure=timing))
    try:
        assert network.choices == want and timing.calls
    finally:
        network.release()


# --- every tunable against the reference -------------------------------------------------

def tunable_cases():
    """Conv layers from tests/test_gl_ops.py's cases: two sources, stride 2, reflect,
    transposed 4x4 and 3x3 with output padding."""
    from test_gl_ops import CONV_CASES
    picked = [CONV_CASES[i] for i in (2, 3, 9, 12)]
    yield from picked


@pytest.mark.parametrize("fp16", [pytest.param(False, id="fp32"), pytest.param(True, id="fp16")])
@pytest.mark.parametrize("case", list(tunable_cases()), ids=lambda c: f"{c[0]}-k{c[5]}-{c[2]}+{c[3]}to{c[4]}")
def test_every_tunable_matches_the_reference(case, fp16, gl_ctx, shared_programs):
    from test_gl_ops import conv_case, storage_rounded
    model, _ = conv_case(case)
    layer = model.graph.layers[-1]
    h, w = case[1]
    x = storage_rounded(seeded((h, w, case[2]), seed=4), fp16)
    padded = reference.to_lanes(reference.pad_to_run_size(model, x))
    want = reference.run_layers(model, padded)[layer.name]
    limits = DeviceLimits.of(gl_ctx)
    options = [c for c in conv_kernels.candidates(layer, model.graph, limits)
               if c.variant in ("blocked", "cooperative")]
    if not fp16:
        assert len({c.variant for c in options}) == 2
    for choice in options:
        network = GLNetwork(gl_ctx, model, kernels={layer.name: choice}, fp16=fp16, programs=shared_programs)
        try:
            network.resize(*padded.shape[1:])
            network.write_tensor(fmt.INPUT_TENSOR, padded)
            network.run()
            assert_close(network.read_tensor(layer.name), want, what=f"{layer.op} {choice}",
                         tol=FP16 if fp16 else FP32)
        finally:
            network.release()


def test_cooperative_register_blocks_stay_within_64_scalars(gl_ctx):
    for case_layer in (fmt.Layer("c", "conv2d", (fmt.INPUT_TENSOR,), "none", 0.0, 64, 4, 2, 1),
                       fmt.Layer("c", "conv_transpose2d", (fmt.INPUT_TENSOR,), "none", 0.0, 64, 4, 2, 1)):
        graph = fmt.build_graph([case_layer], 64, "c")
        variant = conv_kernels.variants_of(case_layer)["cooperative"]
        for knobs in variant.tunable_space(case_layer, graph, DeviceLimits()):
            vec4s = variant.accumulators_per_block * knobs["BLOCK_SLICES"] * knobs["BLOCK_PIXELS"]
            assert vec4s <= conv_kernels.MAX_ACCUMULATORS, knobs
