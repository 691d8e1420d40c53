"""avg_pool2d (reliability B1): shaders/avg_pool.comp and the numpy reference
against torch's F.avg_pool2d for every legal padding / count_include_pad
pairing, fp32 and fp16 storage, odd channel counts; odd frame sizes (padded to
the stride and cropped back) against the reference; a pool between convs of
every kernel choice and over a concatenation; malformed pool layers refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import postfx
from postfx import model_format as fmt
from postfx.errors import ModelGraphError
from postfx.exporters.builder import build_model
from postfx.model_format import Layer
from postfx.testing.parity import FP16, FP32, assert_close, seeded

PRECISIONS = [pytest.param(False, id="fp32"), pytest.param(True, id="fp16")]
OUT = "out"


def pool_layer(name, source, kernel, stride, padding, include, activation="none"):
    return Layer(name, "avg_pool2d", (source,), activation, 0.2 if activation == "leaky_relu" else 0.0,
                 kernel=kernel, stride=stride, padding=padding, count_include_pad=include)


def pool_model(channels, kernel, stride, padding, include, activation="none"):
    layers = [pool_layer(OUT, fmt.INPUT_TENSOR, kernel, stride, padding, include, activation)]
    return build_model(layers, {}, input_channels=channels, output=OUT, raw=True)


def torch_pool(x_hwc, kernel, stride, padding, include):
    t = torch.from_numpy(np.ascontiguousarray(x_hwc.transpose(2, 0, 1)))[None]
    y = F.avg_pool2d(t, kernel, stride, padding, ceil_mode=False, count_include_pad=include)
    return y[0].numpy().transpose(1, 2, 0)


# (kernel, stride, padding): every triple the exact-factor size rule admits with kernel <= 5
POOL_SHAPES = [(k, s, p) for k in range(1, 6) for s in range(1, 4) for p in range(0, k // 2 + 1)
               if k - s <= 2 * p <= k - 1]


@pytest.mark.parametrize("fp16", PRECISIONS)
@pytest.mark.parametrize("include", [True, False], ids=["incl-pad", "taps-inside"])
@pytest.mark.parametrize("shape", POOL_SHAPES, ids=lambda s: "k{}s{}p{}".format(*s))
def test_B1_avg_pool_matches_torch(shape, include, fp16, gl_ctx):
    kernel, stride, padding = shape
    channels = 3 + kernel         # odd and even counts, partial last slices
    h, w = 6 * stride, 10 * stride
    x = seeded((h, w, channels), seed=kernel * 10 + stride)
    if fp16:
        x = x.astype(np.float16).astype(np.float32)
    want = torch_pool(x, kernel, stride, padding, include)
    model = pool_model(channels, kernel, stride, padding, include)
    assert_close(postfx.run(model, x, backend="numpy"), want, what=f"reference avg_pool {shape}")
    assert_close(postfx.run(model, x, fp16=fp16), want, what=f"GL avg_pool {shape} fp16={fp16}",
                 tol=FP16 if fp16 else FP32)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
@pytest.mark.parametrize("size", [(7, 5), (1, 1), (33, 61)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_B1_avg_pool_at_odd_sizes_matches_the_reference(size, activation, gl_ctx):
    """Frames not a multiple of the stride run padded (edge repeated) and cropped back."""
    model = pool_model(5, 3, 2, 1, False, activation)
    x = seeded((*size, 5), seed=sum(size))
    got = postfx.run(model, x)
    assert got.shape == ((size[0] + 1) // 2, (size[1] + 1) // 2, 5)
    assert_close(got, postfx.run(model, x, backend="numpy"), what=f"avg_pool at {size} + {activation}")


def test_count_include_pad_changes_only_the_border(gl_ctx):
    """The two divisors agree inside the frame and differ on its edge: a test that mixed
    them up, or ignored the flag, fails here."""
    x = np.ones((8, 8, 4), np.float32)
    inside = postfx.run(pool_model(4, 3, 1, 1, False), x)
    padded = postfx.run(pool_model(4, 3, 1, 1, True), x)
    np.testing.assert_allclose(inside, 1.0, atol=1e-6)
    np.testing.assert_allclose(padded[1:-1, 1:-1], 1.0, atol=1e-6)
    np.testing.assert_allclose(padded[0, 0], 4 / 9, atol=1e-6)
    np.testing.assert_allclose(padded[0, 3], 6 / 9, atol=1e-6)


@pytest.mark.parametrize("kernels", ["naive", "tiled", "blocked", "optimized"])
def test_B1_pool_between_convs_and_over_a_concat(kernels, gl_ctx):
    """pix2pixHD's downsampler shape: conv -> avg_pool(3, 2, 1, taps inside) -> conv,
    plus a pool of a concatenation (two segments kept apart) read by a conv."""
    rng = np.random.default_rng(4)
    layers = [
        Layer("a", "conv2d", (fmt.INPUT_TENSOR,), "relu", out_channels=6, kernel=3, stride=1, padding=1),
        Layer("b", "conv2d", (fmt.INPUT_TENSOR,), "none", out_channels=5, kernel=1, stride=1, padding=0),
        Layer("cat", "concat", ("a", "b"), "none"),
        pool_layer("pool", "cat", 3, 2, 1, False),
        Layer(OUT, "conv2d", ("pool",), "tanh", out_channels=3, kernel=3, stride=1, padding=1),
    ]
    shapes = {"a": (6, 4), "b": (5, 4), OUT: (3, 11)}
    weights = {name: (rng.normal(0, 0.4, (co, ci, k, k)).astype(np.float32), rng.normal(0, 0.1, co))
               for name, (co, ci), k in ((n, s, 1 if n == "b" else 3) for n, s in shapes.items())}
    model = build_model(layers, weights, input_channels=4, output=OUT, raw=True)
    assert model.graph.tensors["pool"].segments == (6, 5)
    x = seeded((24, 40, 4), seed=9)
    assert_close(postfx.run(model, x, kernels=kernels), postfx.run(model, x, backend="numpy"),
                 what=f"conv -> concat -> pool -> conv ({kernels})")


@pytest.mark.parametrize("fields, message", [
    ({"padding": 2}, "padding"),                        # more than kernel // 2 (torch refuses it too)
    ({"count_include_pad": 1}, "count_include_pad"),    # a bool, not a number
    ({"count_include_pad": None}, "count_include_pad"),
    ({"kernel": 0}, "kernel"),
    ({"kernel": 4, "stride": 1, "padding": 1}, "exact factor"),   # 4x4 stride 1 shrinks by one pixel
])
def test_malformed_pool_layers_are_refused(fields, message):
    d = dict(pool_layer(OUT, fmt.INPUT_TENSOR, 3, 2, 1, True).to_json(), **fields)
    with pytest.raises(ModelGraphError, match=message):
        fmt.build_graph([fmt.parse_layer(d, 0)], 4, OUT)

