"""instance_norm through GL (reliability B1, B4, B5, C10): the three-pass kernel
(shaders/instance_norm.comp) against the numpy reference at odd and large sizes,
every activation, with and without affine terms, fp32 and fp16 storage; an input
far from zero that a sum-of-squares variance gets wrong; norms between convs of
every kernel choice (a reflect-padded 7x7 conv -> norm -> relu, a residual block);
sentinels, repeatability, sliced runs, memory accounting and GL objects."""
from __future__ import annotations

import numpy as np
import pytest
from gl_objects import difference, live_gl_objects

import postfx
from postfx import model_format as fmt
from postfx import reference
from postfx.exporters.builder import build_model
from postfx.gl import dispatch, norm_kernels, ops
from postfx.gl.network import GLNetwork, weight_bytes
from postfx.model_format import Layer
from postfx.testing.parity import FP16, FP32, assert_close, seeded

PRECISIONS = [pytest.param(False, id="fp32"), pytest.param(True, id="fp16")]
KERNELS = ["naive", "tiled", "blocked", "optimized"]
OUT = "out"


def storage_rounded(x: np.ndarray, fp16: bool) -> np.ndarray:
    """What the GL input buffer holds: the reference is fed the same (B1)."""
    return x.astype(np.float16).astype(np.float32) if fp16 else x


def channel_spread(shape, seed, offset=2.0) -> np.ndarray:
    """Seeded (H, W, C) input whose channels have their own means and spreads, so a
    statistic taken over the wrong lanes or pixels shows."""
    rng = np.random.default_rng(seed + 100)
    c = shape[2]
    means = rng.uniform(-offset, offset, c).astype(np.float32)
    spreads = rng.uniform(0.2, 3.0, c).astype(np.float32)
    return seeded(shape, seed) * spreads + means


def norm_model(channels: int, activation: str, affine: bool, eps: float = 1e-5, seed: int = 0):
    slope = 0.2 if activation == "leaky_relu" else 0.0
    layers = [Layer(OUT, "instance_norm", (fmt.INPUT_TENSOR,), activation, slope, eps=eps)]
    rng = np.random.default_rng(seed)
    weights = {OUT: (rng.uniform(0.5, 1.5, channels), rng.uniform(-0.5, 0.5, channels))} if affine else {}
    return build_model(layers, weights, input_channels=channels, output=OUT, raw=True)


# --- the op alone ------------------------------------------------------------------------

# (channels, (H, W), activation, affine)
NORM_CASES = [
    (3, (7, 5), "none", True),
    (4, (1, 1), "sigmoid", True),           # one pixel: var 0, y = shift
    (4, (1, 2), "relu", False),
    (6, (2, 1), "leaky_relu", True),
    (4, (33, 17), "none", False),
    (6, (61, 97), "sigmoid", True),
    (64, (61, 97), "tanh", True),
    (3, (256, 256), "relu", False),
    (64, (5, 3), "leaky_relu", False),
]


def norm_id(case):
    channels, (h, w), act, affine = case
    return f"{channels}ch-{w}x{h}-{act}-{'affine' if affine else 'plain'}"


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("case", NORM_CASES, ids=norm_id)
def test_B1_instance_norm_matches_reference(case, fp16, gl_ctx):
    channels, (h, w), act, affine = case
    model = norm_model(channels, act, affine, seed=channels)
    x = storage_rounded(channel_spread((h, w, channels), seed=h * w), fp16)
    got = postfx.run(model, x, fp16=fp16)
    want = postfx.run(model, x, backend="numpy")
    assert_close(got, want, what=f"instance_norm {norm_id(case)} {'fp16' if fp16 else 'fp32'}",
                 tol=FP16 if fp16 else FP32)
    if h * w == 1:
        _, shift = model.layer_weights(model.graph.layers[0])
        assert_close(got[0, 0], reference.activate(shift.reshape(-1)[:channels], act), what="1x1: y = shift")


def test_B1_instance_norm_matches_torch(gl_ctx):
    torch = pytest.importorskip("torch")
    model = norm_model(6, "leaky_relu", True, eps=1e-3, seed=3)
    x = channel_spread((33, 17, 6), seed=4)
    scale, shift = (t.reshape(-1)[:6] for t in model.layer_weights(model.graph.layers[0]))
    with torch.no_grad():
        y = torch.nn.functional.instance_norm(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()),
                                              weight=torch.from_numpy(scale), bias=torch.from_numpy(shift), eps=1e-3)
        want = torch.nn.functional.leaky_relu(y, 0.2)[0].numpy().transpose(1, 2, 0)
    assert_close(postfx.run(model, x), want, what="instance_norm 6ch 17x33 vs torch")


def test_B1_instance_norm_at_1280x720(gl_ctx):
    """The size the runtime is for: per slice, 57 work groups of 256 invocations merged."""
    h, w = 720, 1280
    model = norm_model(6, "relu", True, seed=7)
    x = channel_spread((h, w, 6), seed=8)
    assert norm_kernels.norm_partial_groups(h * w, 2) > 1, "the case must merge partials across work groups"
    assert_close(postfx.run(model, x), postfx.run(model, x, backend="numpy"), what="instance_norm 6ch 1280x720")


@pytest.mark.parametrize("fp16", PRECISIONS)
def test_B1_variance_is_robust_far_from_zero(fp16, gl_ctx):
    """Mean 1000, std 0.01: E[x^2] - E[x]^2 in fp32 leaves no significant bit of the
    variance (an ulp of 1e6 is 0.06, the variance 1e-4); Welford with a pivot keeps
    y to the fp32 tolerance. In fp16 (an ulp of 1000 is 0.5) the input rounds to
    1000 exactly: var 0, and y must be the shift, not NaN."""
    h, w, c = 61, 97, 4
    model = norm_model(c, "none", True, seed=2)
    x = storage_rounded((1000 + 0.01 * np.random.default_rng(5).standard_normal((h, w, c))).astype(np.float32), fp16)
    if not fp16:
        x32 = x.reshape(-1, c)
        naive = (x32 * x32).mean(axis=0, dtype=np.float32) - x32.mean(axis=0, dtype=np.float32) ** 2
        assert not np.allclose(naive, x.reshape(-1, c).astype(np.float64).var(axis=0), rtol=0.5), \
            "the case must defeat the sum-of-squares formula"
    got = postfx.run(model, x, fp16=fp16)
    want = postfx.run(model, x, backend="numpy")
    assert_close(got, want, what=f"instance_norm of 1000 +- 0.01 {'fp16' if fp16 else 'fp32'}",
                 tol=FP16 if fp16 else FP32)


# --- between convs, every kernel choice -----------------------------------------------------

def conv_weights(rng, cout, cin, k):
    return (rng.uniform(-1, 1, (cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32), \
        rng.uniform(-0.3, 0.3, cout).astype(np.float32)


def stem_chain():
    """c7s1 (reflect 7x7) -> norm + relu -> 3x3 conv reading the norm: the CycleGAN
    stem, with a consumer that reads the norm's output through an image view when blocked."""
    rng = np.random.default_rng(11)
    layers = [Layer("stem", "conv2d", (fmt.INPUT_TENSOR,), "none", 0.0, 8, 7, 1, 3, "reflect"),
              Layer("stem_norm", "instance_norm", ("stem",), "relu"),
              Layer(OUT, "conv2d", ("stem_norm",), "tanh", 0.0, 3, 3, 1, 1)]
    weights = {"stem": conv_weights(rng, 8, 3, 7), OUT: conv_weights(rng, 3, 8, 3),
               "stem_norm": (rng.uniform(0.5, 1.5, 8), rng.uniform(-0.5, 0.5, 8))}
    return build_model(layers, weights, input_channels=3, output=OUT, raw=True)


def residual_block():
    """x + norm(conv(relu(norm(conv(x))))): a ResNet block, 6 channels (padding lanes)."""
    rng = np.random.default_rng(12)
    layers = [Layer("conv1", "conv2d", (fmt.INPUT_TENSOR,), "none", 0.0, 6, 3, 1, 1, "reflect"),
              Layer("norm1", "instance_norm", ("conv1",), "relu"),
              Layer("conv2", "conv2d", ("norm1",), "none", 0.0, 6, 3, 1, 1, "reflect"),
              Layer("norm2", "instance_norm", ("conv2",), "none"),
              Layer(OUT, "add", (fmt.INPUT_TENSOR, "norm2"))]
    weights = {"conv1": conv_weights(rng, 6, 6, 3), "conv2": conv_weights(rng, 6, 6, 3),
               "norm1": (rng.uniform(0.5, 1.5, 6), rng.uniform(-0.5, 0.5, 6)), "norm2": (None, None)}
    return build_model(layers, weights, input_channels=6, output=OUT, raw=True)


CHAINS = {"stem": stem_chain, "residual": residual_block}


def layer_reference(model, layer, values) -> np.ndarray:
    """The numpy reference of one layer fed the tensors the GL layer read (lanes, H, W),
    so fp16 storage is checked per op, as B1 states it."""
    srcs = [values[name] for name in layer.inputs]
    if layer.op == "conv2d":
        weight, bias = model.layer_weights(layer)
        y = reference.conv2d(np.concatenate(srcs), reference.unpack_weight(weight), bias.reshape(-1),
                             layer.stride, layer.padding, layer.padding_mode)
    elif layer.op == "instance_norm":
        scale, shift = model.layer_weights(layer)
        y = reference.instance_norm(srcs[0], scale.reshape(-1), shift.reshape(-1), layer.eps)
    else:
        assert layer.op == "add", layer.op
        y = srcs[0] + srcs[1]
    return reference.activate(y, layer.activation, layer.negative_slope)


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_B1_norm_between_convs(chain, kernels, fp16, gl_ctx):
    model = CHAINS[chain]()
    h, w = 33, 17
    x = storage_rounded(channel_spread((h, w, model.input_channels), seed=21, offset=1.0), fp16)
    got, values = postfx.run(model, x, kernels=kernels, fp16=fp16, return_all=True)
    what = f"{chain} at {w}x{h}, kernels={kernels} {'fp16' if fp16 else 'fp32'}"
    for layer in model.graph.layers:
        assert_close(values[layer.name], layer_reference(model, layer, values),
                     what=f"{what}: layer {layer.name!r} ({layer.op}) fed the GL's inputs", tol=FP16 if fp16 else FP32)
    if not fp16:
        assert_close(got, postfx.run(model, x, backend="numpy"), what=f"{what}: end to end")


def test_a_blocked_conv_reads_the_norm_output_through_its_view(gl_ctx):
    network = GLNetwork(gl_ctx, stem_chain(), kernels="blocked")
    try:
        network.resize(33, 17)
        assert "stem_norm" in network.views, "the consumer reads the norm's output as an image"
        assert "stem" not in network.views, "the norm reads its input as a storage buffer"
    finally:
        network.release()


# --- the executor ---------------------------------------------------------------------------

@pytest.mark.parametrize("fp16", PRECISIONS)
def test_B4_norm_passes_write_everything_and_repeat_exactly(fp16, gl_ctx):
    """Run size 37x23 fills no work group: every tensor and both scratch buffers are
    filled with NaN before a second run, which must give the first run's bits."""
    model = residual_block()
    network = GLNetwork(gl_ctx, model, kernels="optimized", fp16=fp16)
    try:
        h, w = 23, 37
        network.resize(h, w)
        network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(storage_rounded(seeded((h, w, 6), seed=3), fp16)))
        network.run()
        clean = {name: network.read_tensor(name) for name in model.graph.tensors}
        for name in model.graph.tensors:
            if name != fmt.INPUT_TENSOR:
                network.write_tensor(name, np.full_like(clean[name], np.nan))
        for name in (norm_kernels.NORM_PARTIALS, norm_kernels.NORM_STATISTICS):
            buffer = network.buffers[name]
            buffer.write(np.full(buffer.size // 4, np.nan, np.float32).tobytes())
        for repeat in range(3):
            network.run()
            for name in model.graph.tensors:
                got = network.read_tensor(name)
                assert got.tobytes() == clean[name].tobytes(), f"{name}: run {repeat + 2} differs from run 1"
    finally:
        network.release()


def test_a_run_cut_between_the_norm_passes_gives_the_whole_result(gl_ctx):
    """Time-sliced runs (PostFX frame_budget_ms) may stop after any of the three passes."""
    model = residual_block()
    network = GLNetwork(gl_ctx, model)
    try:
        network.resize(24, 40)
        network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(seeded((24, 40, 6), seed=4)))
        network.run()
        whole = network.read_tensor(OUT)
        n = len(network.dispatches)
        assert [d.shader for d in network.dispatches].count("instance_norm.comp") == 6
        for cut in range(1, n):
            network.write_tensor(OUT, np.zeros_like(whole))
            network.run(0, cut)
            network.run(cut, n)
            assert network.read_tensor(OUT).tobytes() == whole.tobytes(), f"cut after dispatch {cut}"
    finally:
        network.release()


def test_norm_plan_fits_the_minimum_limits():
    """G grows with the frame, bounded; every pass fits OpenGL 4.3's minimum limits."""
    assert norm_kernels.norm_partial_groups(1, 1) == 1
    assert norm_kernels.norm_partial_groups(64 * 64, 1) == 1
    assert norm_kernels.norm_partial_groups(1280 * 720, 16) == dispatch.ceil_div(1280 * 720, 256 * 64)
    assert norm_kernels.norm_partial_groups(1280 * 720, 64) == 2048 // 64
    assert norm_kernels.norm_partial_groups(3840 * 2160, 1) == norm_kernels.NORM_MAX_PARTIAL_GROUPS
    assert norm_kernels.norm_partial_groups(3840 * 2160, 1024) == 2
    layers = [Layer("wide", "conv2d", (fmt.INPUT_TENSOR,), "none", 0.0, 4096, 1, 1, 0),
              Layer(OUT, "instance_norm", ("wide",), "relu")]
    graph = fmt.build_graph(layers, 4, OUT)
    sizes = {name: (3840, 2160) for name in graph.tensors}
    limits = dispatch.DeviceLimits()
    for d in ops.layer_dispatches(graph.layers[1], graph, sizes, None, False, limits):
        dispatch.check_limits(d, limits)
    assert norm_kernels.norm_scratch_bytes(graph, sizes)[norm_kernels.NORM_PARTIALS] <= limits.max_storage_block_size


def test_C6_norm_buffers_are_counted_in_the_memory_figures(gl_ctx):
    model = stem_chain()
    network = GLNetwork(gl_ctx, model, kernels="optimized", fp16=True)
    try:
        held = sum(b.size for b in network.weights.values())
        held += sum(t.width * t.height * 16 for t in network.weight_images.values())
        assert weight_bytes(model, network.choices) == held
        network.resize(61, 97)
        views = sum(v.width * v.height * v.layers * 8 for v in network.views.values())
        assert network.activation_bytes(61, 97) == sum(b.size for b in network.buffers.values()) + views
        assert {norm_kernels.NORM_PARTIALS, norm_kernels.NORM_STATISTICS} <= set(network.buffers)
    finally:
        network.release()


def test_C10_live_gl_objects_stay_flat_across_resizes(gl_ctx):
    before = live_gl_objects()
    network = GLNetwork(gl_ctx, residual_block(), kernels="optimized")
    try:
        network.resize(24, 40)
        settled = live_gl_objects()
        for h, w in [(1, 1), (61, 97), (2, 1), (24, 40)]:
            network.resize(h, w)
            network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(seeded((h, w, 6), seed=h)))
            network.run()
            assert difference(live_gl_objects(), settled) == {}, f"after resize to {w}x{h}"
    finally:
        network.release()
    assert difference(live_gl_objects(), before) == {}
