"""Whole networks of the reference family through GL (reliability B2, B3):
pix2pix U-Nets of depth 1-6, widths 8 / 16 / 32, with and without BatchNorm,
exported by postfx.export_torch, against torch fp32 at 64x64, 97x61, 256x256
and 1280x720, with naive and optimized kernels and fp16 storage; frame sizes
not divisible by 2^depth, tiny and odd ones, through the pad-and-crop path."""
from __future__ import annotations

import numpy as np
import pytest

import postfx
from postfx import model_format as fmt
from postfx import reference
from postfx.errors import FrameTooSmall
from postfx.testing.parity import assert_image_close, image_errors, seeded

torch = pytest.importorskip("torch")

from nets import randomize_norms  # noqa: E402

from postfx.train.models import UNetConfig, UNetGenerator  # noqa: E402

# The stated tolerance for fp16 storage (fp32 arithmetic): max error 1/255 and
# PSNR 60 dB vs torch fp32. Rounding every activation to 11 significant bits
# costs far less through these U-Nets (measured 0.03-0.05/255 and 86-93 dB at
# 97x61, 256x256 and 1280x720), so the bound has a wide margin and still
# catches a real fp16 bug (overflow, a wrong pack) long before 2/255.
FP16_MAX_ERR_8BIT = 1.0
FP16_MIN_PSNR = 60.0
# Per-layer tolerance for locating a failure: max |GL - numpy| <= TOL * max |numpy|.
LAYER_TOL = {False: 1e-3, True: 1e-2}

_models: dict = {}


def unet(depth: int, ngf: int, norm: str):
    """(exported model, eval-mode torch module), cached per configuration."""
    key = (depth, ngf, norm)
    if key not in _models:
        torch.manual_seed(depth * 100 + ngf)
        net = UNetGenerator(UNetConfig(depth=depth, ngf=ngf, norm=norm))
        if norm == "batch":
            randomize_norms(net, seed=depth)
        net.eval()
        _models[key] = (postfx.export_torch(net), net)
    return _models[key]


def torch_frame(model, net, x: np.ndarray) -> np.ndarray:
    """torch fp32 on the frame padded as the runtime pads it (edge repeat), cropped back."""
    padded = reference.pad_to_run_size(model, x)
    with torch.no_grad():
        y = net(torch.from_numpy(padded.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    return y[:x.shape[0], :x.shape[1]]


def first_divergent_layer(model, x, values, fp16) -> str:
    """The first layer whose GL output leaves LAYER_TOL of the numpy reference
    (fed the same storage-rounded input), for the failure message."""
    lanes = reference.to_lanes(reference.pad_to_run_size(model, x))
    if fp16:
        lanes = lanes.astype(np.float16).astype(np.float32)
    want = reference.run_layers(model, lanes)
    for layer in model.graph.layers:
        got, ref = values[layer.name], want[layer.name]
        error = float(np.nanmax(np.abs(got - ref))) if np.isfinite(got).all() else float("inf")
        if error > LAYER_TOL[fp16] * max(float(np.abs(ref).max()), 1e-6):
            return f"first divergent layer: {layer.name!r} ({layer.op}), max |GL - numpy| {error:.3g}"
    return "every layer is within its tolerance of the numpy reference"


def check_network(depth, ngf, norm, size, kernels, fp16=False):
    model, net = unet(depth, ngf, norm)
    h, w = size
    x = seeded((h, w, 4), seed=depth + ngf)
    got, values = postfx.run(model, x, kernels=kernels, fp16=fp16, return_all=True)
    want = torch_frame(model, net, x)
    what = f"U-Net d{depth} ngf{ngf} norm={norm} at {w}x{h}, kernels={kernels} {'fp16' if fp16 else 'fp32'}"
    limits = dict(max_err_8bit=FP16_MAX_ERR_8BIT, min_psnr=FP16_MIN_PSNR) if fp16 else {}
    try:
        assert_image_close(got, want, what=what, **limits)
    except AssertionError as e:
        raise AssertionError(f"{e}; {first_divergent_layer(model, x, values, fp16)}") from None


# (depth, ngf, norm, (H, W), kernels, fp16): every depth and width, both norms, every size.
CASES = [
    (1, 32, "none", (64, 64), "optimized", False),
    (1, 32, "none", (64, 64), "naive", False),
    (2, 8, "batch", (61, 97), "optimized", False),
    (2, 8, "batch", (61, 97), "naive", False),
    (2, 8, "batch", (61, 97), "optimized", True),
    (3, 16, "none", (61, 97), "optimized", False),
    (3, 16, "none", (61, 97), "tiled", True),
    (3, 16, "none", (61, 97), "cooperative", False),
    (4, 16, "batch", (256, 256), "cooperative", True),
    (4, 8, "batch", (256, 256), "optimized", False),
    (4, 16, "batch", (256, 256), "naive", False),
    (4, 16, "batch", (256, 256), "optimized", True),
    (5, 16, "batch", (64, 64), "optimized", False),
    (6, 8, "none", (61, 97), "optimized", False),
    (6, 32, "batch", (256, 256), "optimized", False),
    (4, 16, "none", (720, 1280), "optimized", False),
]
SLOW_CASES = [
    (4, 16, "none", (720, 1280), "optimized", True),
    (6, 32, "batch", (720, 1280), "optimized", False),
    (4, 16, "batch", (720, 1280), "naive", False),
]


def case_id(case):
    depth, ngf, norm, (h, w), kernels, fp16 = case
    return f"d{depth}-ngf{ngf}-{norm}-{w}x{h}-{kernels}-{'fp16' if fp16 else 'fp32'}"


@pytest.mark.parametrize("depth,ngf,norm,size,kernels,fp16",
                         [pytest.param(*c, id=case_id(c)) for c in CASES]
                         + [pytest.param(*c, id=case_id(c), marks=pytest.mark.slow) for c in SLOW_CASES])
def test_B2_unet_matches_torch(depth, ngf, norm, size, kernels, fp16, gl_ctx):
    check_network(depth, ngf, norm, size, kernels, fp16)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (5, 3), (768, 1366),
                                  pytest.param((1081, 1921), marks=pytest.mark.slow)],
                         ids=lambda s: f"{s[1]}x{s[0]}")
def test_B3_any_frame_size_is_padded_run_and_cropped(size, gl_ctx):
    model, net = unet(4, 8, "batch")
    h, w = size
    x = seeded((h, w, 4), seed=11)
    got = postfx.run(model, x)
    assert fmt.run_size(model.graph, h, w) != (h, w), "the case must exercise padding"
    assert got.shape == (h, w, 3), "output size = input size"
    assert_image_close(got, torch_frame(model, net, x), what=f"U-Net d4 ngf8 at {w}x{h}")


@pytest.mark.parametrize("backend", ["gl", "numpy"])
def test_B3_an_empty_frame_is_FrameTooSmall(backend, gl_ctx):
    model, _ = unet(2, 8, "batch")
    with pytest.raises(FrameTooSmall, match="0x5|5x0"):
        postfx.run(model, np.zeros((5, 0, 4), np.float32), backend=backend)


def test_fp16_tolerance_is_met_with_margin(gl_ctx):
    """The stated fp16 bounds are not tuned to the edge: at 256x256 the error is
    at most half the bound (max error) and 10 dB above it (PSNR)."""
    model, net = unet(4, 16, "batch")
    x = seeded((256, 256, 4), seed=20)
    max_err, psnr = image_errors(postfx.run(model, x, fp16=True), torch_frame(model, net, x))
    assert max_err <= FP16_MAX_ERR_8BIT / 2 and psnr >= FP16_MIN_PSNR + 10, (max_err, psnr)
