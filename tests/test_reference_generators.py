"""Issue 7 acceptance: generators in the structure of the PyTorch pix2pix / CycleGAN
reference (postfx.testing.generators), at their reference size,
exported through postfx.export_torch and through ONNX (torch.onnx.export, then the
importer), run by the GL runtime, against torch: max error <= 2/255 and PSNR >= 45 dB
at 256x256 and at a non-square frame.

- U-Net num_downs 8, ngf 64 (54 M parameters), BatchNorm with the running
  statistics (folded) and with each frame's own statistics (the pix2pix paper's
  test time), dropout layers present (off at inference);
- ResNet-9, ngf 64: InstanceNorm, reflection padding, 7x7 convs, residual adds,
  3x3 stride-2 transposed convs with output_padding 1.

The non-square frames are multiples of each network's pad_multiple, so torch can
run them unpadded. Each model is written to disk and loaded back, so the whole file
path is under test; torch's outputs are computed once for both paths.
"""
import copy
import warnings

import numpy as np
import pytest

from postfx.testing.parity import assert_image_close, seeded

torch = pytest.importorskip("torch")

from nets import UnetGenerator, frame_statistics, norm_layer, resnet_generator, unet_generator  # noqa: E402

import postfx  # noqa: E402
from postfx import model_format as fmt  # noqa: E402
from postfx import reference  # noqa: E402
from postfx.exporters.torch_export import export_torch  # noqa: E402
from postfx.gl.network import GLNetwork  # noqa: E402

UNET_SIZES = [(256, 256), (256, 512)]       # (H, W); pad_multiple 256
RESNET_SIZES = [(256, 256), (200, 328)]     # pad_multiple 4
CHEAP_PROBE = (200, 150)    # the export's self-check runs at 256x256 instead of the default ~768x1024


def image_input(h, w, seed=0):
    """A smooth image-like frame with noise, in [-1, 1]: gradients plus texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(xx / 17 + c) * np.cos(yy / 23 - c) for c in range(3)], axis=2)
    return np.clip(0.7 * base + 0.3 * seeded((h, w, 3), seed=seed), -1, 1).astype(np.float32)


def torch_run(net, x):
    with torch.no_grad():
        y = net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    return y[0].numpy().transpose(1, 2, 0)


def gl_run(ctx, model, x):
    """The raw network through the GL runtime (optimized kernels), released afterwards."""
    network = GLNetwork(ctx, model)
    try:
        network.resize(*x.shape[:2])
        network.write_tensor(fmt.INPUT_TENSOR, reference.to_lanes(x))
        network.run()
        out = network.read_tensor(model.graph.output)[:3]
    finally:
        network.release()
    return out.transpose(1, 2, 0)


PATHS = ["export_torch", "onnx"]


def exported(path_kind, net, name, tmp_path_factory, batchnorm="eval"):
    """The model file of `net` made the way a user would, written to disk and loaded back:
    postfx.export_torch on the module, or torch.onnx.export then `postfx export`'s importer
    (for per-frame BatchNorm the graph keeps its BatchNormalization nodes in train mode)."""
    folder = tmp_path_factory.mktemp(f"{name}-{path_kind}")
    out = folder / f"{name}.safetensors"
    if path_kind == "export_torch":
        export_torch(net, out, probe_size=CHEAP_PROBE, batchnorm=batchnorm)
        return postfx.load(out)
    pytest.importorskip("onnx")
    graph_net, mode = net, torch.onnx.TrainingMode.EVAL
    if batchnorm == "frame":
        graph_net, mode = frame_statistics(copy.deepcopy(net)), torch.onnx.TrainingMode.PRESERVE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph_net, (torch.zeros(1, 3, 256, 256),), folder / f"{name}.onnx", dynamo=False,
                          training=mode)
    postfx.export_onnx(folder / f"{name}.onnx", out, batchnorm=batchnorm, probe_size=CHEAP_PROBE)
    return postfx.load(out)


@pytest.fixture(scope="module")
def torch_outputs():
    """(net name, H, W) -> the torch module's output, computed once for both export paths."""
    return {}


def expected(cache, key, net, x):
    if key not in cache:
        cache[key] = torch_run(net, x)
    return cache[key]


@pytest.fixture(scope="module")
def unet():
    return unet_generator(num_downs=8, ngf=64, norm="batch", dropout=True, seed=1)


@pytest.fixture(scope="module")
def resnet9():
    return resnet_generator(n_blocks=9, ngf=64, norm="instance", seed=2)


def test_the_nets_have_the_reference_size(unet, resnet9):
    assert sum(p.numel() for p in unet.parameters()) == 54_413_955
    assert sum(p.numel() for p in resnet9.parameters()) == 11_378_179
    assert sum(isinstance(m, torch.nn.Dropout) for m in unet.modules()) == 3


@pytest.mark.parametrize("path_kind", PATHS)
@pytest.mark.parametrize("batchnorm", ["eval", "frame"])
def test_unet_256_batchnorm(gl_ctx, tmp_path_factory, torch_outputs, unet, batchnorm, path_kind):
    model = exported(path_kind, unet, f"unet-{batchnorm}", tmp_path_factory, batchnorm)
    norms = [layer for layer in model.graph.layers if layer.op == "instance_norm"]
    assert model.norm_semantics == batchnorm
    assert len(norms) == (13 if batchnorm == "frame" else 0)
    assert model.pad_multiple == 256
    want_net = frame_statistics(copy.deepcopy(unet)) if batchnorm == "frame" else unet
    for seed, (h, w) in enumerate(UNET_SIZES):
        x = image_input(h, w, seed)
        want = expected(torch_outputs, (f"unet-{batchnorm}", h, w), want_net, x)
        assert_image_close(gl_run(gl_ctx, model, x), want,
                           what=f"U-Net 8 / ngf 64, BatchNorm {batchnorm}, {path_kind}, GL at {w}x{h}")


@pytest.mark.parametrize("path_kind", PATHS)
def test_resnet9_instance_norm(gl_ctx, tmp_path_factory, torch_outputs, resnet9, path_kind):
    model = exported(path_kind, resnet9, "resnet9", tmp_path_factory)
    ops = [layer.op for layer in model.graph.layers]
    assert ops.count("instance_norm") == 23 and ops.count("add") == 9 and ops.count("conv_transpose2d") == 2
    convs = [layer for layer in model.graph.layers if layer.op == "conv2d"]
    assert [(c.kernel, c.padding_mode) for c in (convs[0], convs[-1])] == [(7, "reflect"), (7, "reflect")]
    for seed, (h, w) in enumerate(RESNET_SIZES):
        x = image_input(h, w, seed)
        want = expected(torch_outputs, ("resnet9", h, w), resnet9, x)
        assert_image_close(gl_run(gl_ctx, model, x), want,
                           what=f"ResNet-9 / ngf 64, InstanceNorm, {path_kind}, GL at {w}x{h}")


def test_a_state_dict_loaded_into_the_users_own_module_exports(tmp_path):
    """The usual route: the user builds the reference class from their own code and
    loads the checkpoint's state dict; the export then reproduces the trained net."""
    trained = unet_generator(num_downs=5, ngf=8, norm="batch", dropout=True, seed=5)
    torch.save(trained.state_dict(), tmp_path / "latest_net_G.pth")
    mine = UnetGenerator(3, 3, 5, 8, norm_layer("batch"), True)
    mine.load_state_dict(torch.load(tmp_path / "latest_net_G.pth"))
    model = export_torch(mine, tmp_path / "g.safetensors")
    assert "model.model.0.weight" in model.tensors        # the reference's own parameter names
    x = image_input(64, 96)
    assert_image_close(reference.run(model, x), torch_run(trained, x), what="U-Net from a loaded state dict")


def test_an_rgb_only_reference_generator_runs_through_postfx_and_stylize(gl_ctx):
    """Issue 7 item 4: 3 input channels, no depth, through the pass a renderer uses."""
    net = resnet_generator(n_blocks=2, ngf=16, norm="instance", seed=4)
    model = export_torch(net)
    assert model.is_style and not model.uses_depth and model.input_channels == 3
    h, w = 52, 76
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + 2 * yy) % 256], -1).astype(np.uint8)
    want = np.round(np.clip((torch_run(net, (rgb / 255.0 * 2 - 1).astype(np.float32)) + 1) / 2, 0, 1) * 255)
    assert np.abs(postfx.stylize(rgb, model=model).astype(int) - want).max() <= 1
    # PostFX.apply with no depth texture at all
    color = gl_ctx.texture((w, h), 4, np.flipud(np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], 2)).tobytes())
    with postfx.PostFX(gl_ctx, model) as fx:
        out = np.flipud(np.frombuffer(fx.apply(color).read(), np.uint8).reshape(h, w, 4))[..., :3]
    color.release()
    assert np.abs(out.astype(int) - want).max() <= 1
