"""GL kernels one op at a time (reliability B1, B4, B5, C3, C4): every conv /
transposed-conv variant of the ladder (naive, tiled, blocked), fp32 and fp16
storage, against the numpy reference and torch fp32 at odd shapes and channel
counts; the weightless ops; partial work groups with NaN sentinels; repeatability;
shader compile failures and device limits as typed errors."""
from __future__ import annotations

import numpy as np
import pytest
from shader_patch import patched_shader

import postfx
from postfx import model_format as fmt
from postfx import reference
from postfx.errors import DeviceLimitError, ShaderCompileError
from postfx.exporters.builder import build_model
from postfx.gl import conv_kernels, dispatch, programs
from postfx.gl.network import GLNetwork
from postfx.model_format import Layer
from postfx.testing.parity import FP16, FP32, assert_close, seeded

torch = pytest.importorskip("torch")
F = torch.nn.functional

VARIANTS = list(conv_kernels.CONV_VARIANTS)          # the ladder: naive, tiled, blocked, cooperative
PRECISIONS = [pytest.param(False, id="fp32"), pytest.param(True, id="fp16")]
TORCH_ACTIVATIONS = {"none": lambda t: t, "relu": torch.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
                     "tanh": torch.tanh, "sigmoid": torch.sigmoid}
SKIP = "skip"            # the second source of a two-source layer
OUT = "out"              # the layer under test


def storage_rounded(x: np.ndarray, fp16: bool) -> np.ndarray:
    """What the GL input buffer holds: the reference is fed the same (B1)."""
    return x.astype(np.float16).astype(np.float32) if fp16 else x


def run_both(model, x, kernels, fp16):
    """(GL output, numpy reference output) for x (H, W, C)."""
    x = storage_rounded(x, fp16)
    return postfx.run(model, x, kernels=kernels, fp16=fp16), postfx.run(model, x, backend="numpy")


def torch_output(model, x, module_fn):
    """torch fp32 on the frame padded as the runtime pads it, cropped back."""
    padded = reference.pad_to_run_size(model, x)
    with torch.no_grad():
        y = module_fn(torch.from_numpy(padded.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    oh, ow = fmt.output_size(model.graph, *x.shape[:2])
    return y[:oh, :ow]


# --- conv and transposed conv -------------------------------------------------------

# (op, (H, W), input channels, skip channels (second source, 0: none), out channels,
#  kernel, stride, padding, padding mode, activation)
CONV_CASES = [
    ("conv2d", (7, 5), 3, 0, 5, 1, 1, 0, "zeros", "none"),
    ("conv2d", (33, 17), 5, 0, 13, 3, 1, 1, "zeros", "relu"),
    ("conv2d", (33, 17), 5, 3, 1, 3, 1, 1, "reflect", "leaky_relu"),
    ("conv2d", (33, 17), 13, 5, 3, 4, 2, 1, "zeros", "tanh"),
    ("conv2d", (7, 5), 1, 0, 5, 4, 2, 1, "reflect", "sigmoid"),
    ("conv2d", (33, 17), 3, 0, 13, 3, 2, 1, "zeros", "leaky_relu"),
    ("conv2d", (33, 17), 1, 0, 5, 7, 2, 3, "reflect", "relu"),
    ("conv2d", (7, 5), 13, 0, 3, 7, 1, 3, "zeros", "none"),
    ("conv_transpose2d", (7, 5), 5, 0, 3, 4, 2, 1, "zeros", "relu"),
    ("conv_transpose2d", (33, 17), 13, 3, 5, 4, 2, 1, "zeros", "tanh"),
    ("conv_transpose2d", (7, 5), 13, 0, 1, 3, 1, 1, "zeros", "sigmoid"),    # no 2x2-block kernel: naive
    ("conv_transpose2d", (7, 5), 5, 3, 13, 2, 2, 0, "zeros", "none"),
    ("conv_transpose2d", (33, 17), 5, 3, 13, 3, 2, 1, "zeros", "relu"),     # CycleGAN's up: output_padding 1
    ("conv_transpose2d", (7, 5), 13, 0, 5, 5, 2, 2, "zeros", "none"),       # reaches 2 input rows off
]


def output_padding(op, k, s, p) -> int:
    """What makes a transposed conv scale sizes by exactly its stride (model_format)."""
    return s + 2 * p - k if op == "conv_transpose2d" else 0


def case_id(case):
    op, (h, w), cin, skip, cout, k, s, p, mode, act = case
    channels = f"{cin}+{skip}" if skip else f"{cin}"
    return f"{'convT' if op == 'conv_transpose2d' else 'conv'}-k{k}s{s}-{mode}-{channels}to{cout}-{w}x{h}-{act}"


def conv_case(case, seed=0):
    """The op as a model, and the same computation in torch. A second source is
    a 1x1 conv selecting the input's first `skip` channels: exact in fp16 too,
    so both references see exactly what the GL layer reads."""
    op, _, cin, skip, cout, k, s, p, mode, act = case
    rng = np.random.default_rng(seed)
    total = cin + skip
    shape = (cout, total, k, k) if op == "conv2d" else (total, cout, k, k)
    fan_in = total * k * k / (1 if op == "conv2d" else s * s)
    weight = (rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32)
    bias = rng.uniform(-0.2, 0.2, cout).astype(np.float32)
    layers, weights, inputs = [], {OUT: (weight, bias)}, (fmt.INPUT_TENSOR,)
    if skip:
        select = np.eye(skip, cin, dtype=np.float32)[:, :, None, None]
        layers.append(Layer(SKIP, "conv2d", (fmt.INPUT_TENSOR,), "none", 0.0, skip, 1, 1, 0))
        weights[SKIP] = (select, None)
        inputs = (fmt.INPUT_TENSOR, SKIP)
    slope = 0.2 if act == "leaky_relu" else 0.0
    layers.append(Layer(OUT, op, inputs, act, slope, cout, k, s, p, mode, output_padding(op, k, s, p)))
    model = build_model(layers, weights, input_channels=cin, output=OUT, raw=True)

    w_t, b_t = torch.from_numpy(weight), torch.from_numpy(bias)

    def module_fn(x):
        if skip:
            x = torch.cat([x, x[:, :skip]], 1)
        if op == "conv_transpose2d":
            y = F.conv_transpose2d(x, w_t, b_t, s, p, output_padding(op, k, s, p))
        elif mode == "reflect":
            y = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w_t, b_t, s)
        else:
            y = F.conv2d(x, w_t, b_t, s, p)
        return TORCH_ACTIVATIONS[act](y)
    return model, module_fn


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("kernels", VARIANTS)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_B1_conv_ops_match_reference_and_torch(case, kernels, fp16, gl_ctx):
    model, module_fn = conv_case(case)
    h, w = case[1]
    x = seeded((h, w, case[2]), seed=3)
    got, want = run_both(model, x, kernels, fp16)
    what = f"{case_id(case)} kernels={kernels} {'fp16' if fp16 else 'fp32'}"
    assert_close(got, want, what=what + " vs numpy", tol=FP16 if fp16 else FP32)
    if not fp16:
        assert_close(got, torch_output(model, x, module_fn), what=what + " vs torch")


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_each_variant_runs_its_own_kernel_where_it_supports_the_layer(case, gl_ctx):
    model, _ = conv_case(case)
    layer = model.graph.layers[-1]
    limits = dispatch.DeviceLimits.of(gl_ctx)
    two_by_two_block = conv_kernels.is_transpose_4x4_stride_2(layer)
    stride_two = layer.op == "conv2d" or layer.stride == 2     # blocked / cooperative transposed convs need stride 2
    for kernels in VARIANTS:
        choice = conv_kernels.static_choice(layer, model.graph, kernels, limits)
        if layer.op == "conv2d" or two_by_two_block or (kernels in ("blocked", "cooperative") and stride_two):
            assert choice.variant == kernels
        else:
            assert choice.variant == "naive", f"{kernels}: this transposed conv falls back to naive"
    optimized = conv_kernels.static_choice(layer, model.graph, "optimized", limits)
    assert optimized.variant == (conv_kernels.preference(limits)[0] if stride_two else "naive")
    if layer.op == "conv_transpose2d" and stride_two:
        blocked = conv_kernels.static_choice(layer, model.graph, "blocked", limits)
        sizes = {OUT: (8, 8), fmt.INPUT_TENSOR: (4, 4), SKIP: (4, 4)}
        shader = conv_kernels.conv_dispatches(layer, model.graph, sizes, blocked, False, limits)[0].shader
        assert shader == ("conv_transpose_blocked.comp" if two_by_two_block else "conv_transpose_s2_blocked.comp")


# --- ops without weights ------------------------------------------------------------

def elementwise_case(kind, channels):
    """(model, torch function) for add / upsample / materialized concat / activation."""
    act = kind.split(":")[1] if kind.startswith("activation") else "none"
    if kind == "add":
        layers = [Layer(SKIP, "activation", (fmt.INPUT_TENSOR,), "tanh"),
                  Layer(OUT, "add", (fmt.INPUT_TENSOR, SKIP), "relu")]
        fn = lambda x: torch.relu(x + torch.tanh(x))                                  # noqa: E731
    elif kind.startswith("upsample"):
        mode = kind.split(":")[1]
        layers = [Layer(OUT, "upsample", (fmt.INPUT_TENSOR,), "leaky_relu", 0.2, mode=mode)]
        fn = lambda x: F.leaky_relu(F.interpolate(x, scale_factor=2, mode=mode,      # noqa: E731
                                                  **({"align_corners": False} if mode == "bilinear" else {})), 0.2)
    elif kind == "concat":
        # Three sources: more than a conv reads directly, so the concat is
        # materialized; a 1x1 conv reads it (a concatenation cannot be the output).
        weight = np.random.default_rng(1).uniform(-0.5, 0.5, (3, 3 * channels, 1, 1)).astype(np.float32)
        layers = [Layer(SKIP, "activation", (fmt.INPUT_TENSOR,), "sigmoid"),
                  Layer("cat", "concat", (fmt.INPUT_TENSOR, SKIP, fmt.INPUT_TENSOR)),
                  Layer(OUT, "conv2d", ("cat",), "none", 0.0, 3, 1, 1, 0)]
        model = build_model(layers, {OUT: (weight, None)}, input_channels=channels, output=OUT, raw=True)
        return model, lambda x: F.conv2d(torch.cat([x, torch.sigmoid(x), x], 1), torch.from_numpy(weight))
    else:
        slope = 0.2 if act == "leaky_relu" else 0.0
        layers = [Layer(OUT, "activation", (fmt.INPUT_TENSOR,), act, slope)]
        fn = TORCH_ACTIVATIONS[act]
    return build_model(layers, {}, input_channels=channels, output=OUT, raw=True), fn


ELEMENTWISE = [("add", 13), ("upsample:nearest", 5), ("upsample:bilinear", 3), ("concat", 5),
               *[(f"activation:{a}", 3) for a in fmt.ACTIVATIONS]]


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("size", [(7, 5), (33, 17)], ids=lambda s: f"{s[1]}x{s[0]}")
@pytest.mark.parametrize("kind,channels", ELEMENTWISE, ids=[k for k, _ in ELEMENTWISE])
def test_B1_elementwise_ops_match_reference_and_torch(kind, channels, size, fp16, gl_ctx):
    model, fn = elementwise_case(kind, channels)
    x = seeded((*size, channels), seed=5, lo=-3, hi=3)
    got, want = run_both(model, x, "optimized", fp16)
    what = f"{kind} {channels} ch at {size[1]}x{size[0]} {'fp16' if fp16 else 'fp32'}"
    assert_close(got, want, what=what + " vs numpy", tol=FP16 if fp16 else FP32)
    if not fp16:
        assert_close(got, torch_output(model, x, fn), what=what + " vs torch")


# --- whole small networks: edges, sentinels, repeatability ----------------------------

@pytest.fixture(scope="module")
def small_unet():
    from test_reference import unet_by_hand

    from postfx.train.models import UNetConfig, UNetGenerator
    torch.manual_seed(0)
    return unet_by_hand(UNetGenerator(UNetConfig(depth=3, ngf=8)).eval())


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("kernels", VARIANTS)
def test_B4_partial_work_groups_read_and_write_only_inside(small_unet, kernels, fp16, gl_ctx):
    """Run size 40x24 is no multiple of any tile (8, 16-pixel blocks, 2x2 blocks
    of 8): every intermediate is filled with NaN before the run, so a texel read
    before it is written, or a write that misses its place, shows."""
    network = GLNetwork(gl_ctx, small_unet, kernels=kernels, fp16=fp16)
    try:
        h, w = 24, 40
        network.resize(h, w)
        x = reference.to_lanes(storage_rounded(seeded((h, w, 4), seed=7), fp16))
        network.write_tensor(fmt.INPUT_TENSOR, x)
        network.run()
        clean = {name: network.read_tensor(name) for name in small_unet.graph.tensors}
        for name in small_unet.graph.tensors:
            if name != fmt.INPUT_TENSOR:
                network.write_tensor(name, np.full_like(clean[name], np.nan))
        network.run()
        for name in small_unet.graph.tensors:
            got = network.read_tensor(name)
            assert np.isfinite(got).all(), f"{name}: NaN sentinel survived the run ({kernels})"
            np.testing.assert_array_equal(got, clean[name], err_msg=f"{name} changed with sentinels ({kernels})")
        want = reference.run_layers(small_unet, x)
        assert_close(clean[small_unet.graph.output], want[small_unet.graph.output], what=f"U-Net {kernels}",
                     tol=FP16 if fp16 else FP32)
    finally:
        network.release()


@pytest.mark.parametrize("kernels", ["naive", "optimized"])
def test_B5_the_same_frame_50_times_gives_identical_bits(small_unet, kernels, gl_ctx):
    network = GLNetwork(gl_ctx, small_unet, kernels=kernels)
    try:
        network.resize(24, 40)
        network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(seeded((24, 40, 4), seed=9)))
        network.run()
        first = network.read_tensor(small_unet.graph.output)
        for repeat in range(49):
            network.run()
            again = network.read_tensor(small_unet.graph.output)
            assert again.tobytes() == first.tobytes(), f"run {repeat + 2} differs from run 1 ({kernels})"
    finally:
        network.release()


# --- compile failures and device limits -----------------------------------------------

@pytest.fixture
def broken_naive_shader():
    """conv_naive.comp with an undeclared identifier."""
    with patched_shader("conv_naive.comp", "vec4 acc = bias[out_slice];",
                        "vec4 acc = bias[out_slice] + undeclared_thing;"):
        yield


def test_C3_compile_failure_names_layer_renderer_log_and_line(gl_ctx, broken_naive_shader):
    model, _ = conv_case(CONV_CASES[1])
    cache = programs.ProgramCache(gl_ctx)
    with pytest.raises(ShaderCompileError) as info:
        GLNetwork(gl_ctx, model, kernels="naive", programs=cache)
    message = str(info.value)
    assert f"layer {OUT!r}" in message
    assert gl_ctx.info["GL_RENDERER"] in message
    assert "undeclared_thing" in message                   # the driver log
    assert "conv_naive.comp:" in message and ">>> vec4 acc = bias[out_slice] + undeclared_thing;" in message
    assert len(cache) == 0, "no program of the failed build stays cached"


def test_C3_unknown_knob_is_an_error():
    with pytest.raises(ValueError, match="KERNL"):
        programs.specialise("conv_naive.comp", {"KERNL": 3})


def test_C4_work_group_count_is_checked_before_dispatch(gl_ctx, monkeypatch, small_unet):
    tight = dispatch.DeviceLimits(max_work_group_count=(16, 16, 64), renderer="a device with few work groups")
    monkeypatch.setattr(dispatch.DeviceLimits, "of", classmethod(lambda cls, ctx: tight))
    network = GLNetwork(gl_ctx, small_unet, kernels="naive")      # compiles at the smallest run size: fits
    try:
        with pytest.raises(DeviceLimitError, match="GL_MAX_COMPUTE_WORK_GROUP_COUNT 16") as info:
            network.resize(256, 256)
        assert "layer 'dec1'" in str(info.value)          # the full-size output layer needs 32
        assert network.dispatches == [] and network.buffers == {}, "nothing is planned or allocated"
    finally:
        network.release()


def test_C4_check_limits_names_each_limit():
    limits = dispatch.DeviceLimits(max_work_group_count=(100, 100, 100), max_work_group_invocations=32,
                              max_shared_memory=1024, renderer="test device")
    base = dict(layer="enc1", shader="conv_tiled.comp", defines={}, bindings={}, uniforms={})
    dispatch.check_limits(dispatch.Dispatch(**base, groups=(100, 1, 1), local_size=(4, 8), shared_bytes=1024), limits)
    for kwargs, limit in [(dict(groups=(101, 1, 1)), "GL_MAX_COMPUTE_WORK_GROUP_COUNT"),
                          (dict(groups=(1, 1, 1), local_size=(8, 8)), "GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS"),
                          (dict(groups=(1, 1, 1), local_size=(4, 8), shared_bytes=1025),
                           "GL_MAX_COMPUTE_SHARED_MEMORY_SIZE")]:
        kwargs.setdefault("local_size", (4, 8))
        with pytest.raises(DeviceLimitError, match=limit) as info:
            dispatch.check_limits(dispatch.Dispatch(**base, **kwargs), limits)
        assert "enc1" in str(info.value) and "test device" in str(info.value)


def test_tiled_falls_back_when_its_tile_exceeds_shared_memory(gl_ctx):
    model, _ = conv_case(CONV_CASES[6])         # 7x7 stride 2: a 21x21 texel tile per input slice
    layer = model.graph.layers[-1]
    small = dispatch.DeviceLimits(max_shared_memory=4096)
    assert conv_kernels.static_choice(layer, model.graph, "tiled", small).variant == "naive"
    roomy = dispatch.DeviceLimits(max_shared_memory=32768)
    sizes = {name: (16, 16) for name in model.graph.tensors}
    (d,) = conv_kernels.CONV_VARIANTS["tiled"].dispatches(layer, model.graph, sizes,
                                                 False, roomy)
    assert d.shared_bytes <= 32768


def test_C3_an_unknown_uniform_is_an_error(gl_ctx):
    """The uniform version of a misspelled define: refused, not silently dropped; a declared
    uniform the compiler removed from this variant is skipped."""
    program = programs.ProgramCache(gl_ctx)
    try:
        compiled = program.get("elementwise.comp", {"OPERATION": 0})
        with pytest.raises(ValueError, match="out_sise"):
            programs.set_uniforms(compiled, "elementwise.comp", {"out_sise": (4, 4)})
        programs.set_uniforms(compiled, "elementwise.comp", {"out_size": (4, 4), "in_size": (4, 4)})
    finally:
        program.release()
