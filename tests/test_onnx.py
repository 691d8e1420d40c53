"""The ONNX importer: networks built in torch, exported with torch.onnx (the
TorchScript exporter, which emits Constant-node chains for pads and keeps
BatchNormalization after transposed convs, and the default dynamo exporter, which
folds BatchNorm itself), imported, then run by the numpy reference against torch
fp32 (reliability B1, B2); hand-built graphs (onnx.helper) for Constant nodes and
old opsets; what import refuses, writing nothing (D5); the CLI."""
import copy
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

from postfx.testing.parity import FP32, ODD_SIZES, assert_close, assert_image_close, seeded

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import torch.nn.functional as F  # noqa: E402
from nets import (  # noqa: E402
    FnNet,
    TinyResNet,
    UnetGenerator,
    frame_statistics,
    norm_layer,
    randomize_norms,
    resnet_generator,  # noqa: E402
)
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

import postfx  # noqa: E402
from postfx import cli, reference  # noqa: E402
from postfx import model_format as fmt  # noqa: E402
from postfx.errors import ExportError, ExportVerificationError, NormSemanticsMismatch, UnsupportedLayer  # noqa: E402
from postfx.exporters import onnx_verify  # noqa: E402
from postfx.exporters.onnx_import import import_onnx  # noqa: E402

PRESERVE = torch.onnx.TrainingMode.PRESERVE     # keeps BatchNormalization nodes (and their train / eval mode)


def to_onnx(net, cin, dynamo=False, size=(24, 20), **kwargs) -> onnx.ModelProto:
    """torch.onnx.export of `net` as it is (eval or train mode), TorchScript exporter unless dynamo."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, cin, *size),), buffer, dynamo=dynamo, input_names=["x"],
                          output_names=["y"], **kwargs)
    return onnx.load_from_string(buffer.getvalue())


def torch_output(net, model, x):
    """The module on x padded the way the runtime pads it, cropped back (the documented policy)."""
    h, w = x.shape[:2]
    xp = reference.pad_to_run_size(model, x)
    with torch.no_grad():
        y = net(torch.from_numpy(xp.transpose(2, 0, 1).copy())[None])
    oh, ow = fmt.output_size(model.graph, h, w)
    return y[0].numpy().transpose(1, 2, 0)[:oh, :ow]


def check_import(net, cin, what, export_args=None, **import_args):
    """Export `net` (eval mode) to ONNX, import it, then the model (numpy reference) against torch
    at ODD_SIZES, FP32 tolerance."""
    net = randomize_norms(net).eval()
    model = import_onnx(to_onnx(net, cin, **(export_args or {})), **import_args)
    for seed, (h, w) in enumerate(ODD_SIZES):
        x = seeded((h, w, cin), seed=seed)
        assert_close(reference.run(model, x), torch_output(net, model, x), what=f"{what} at {w}x{h}", tol=FP32)
    return model


def ops(model):
    return [(layer.op, layer.activation) for layer in model.graph.layers]


# --- B1: ops, through the TorchScript exporter ----------------------------------------

@pytest.mark.parametrize("kernel,stride,padding,mode,cin,cout", [
    (1, 1, 0, "zeros", 1, 5), (3, 1, 1, "zeros", 3, 13), (4, 2, 1, "zeros", 13, 3), (3, 2, 1, "reflect", 5, 1),
    (7, 1, 3, "reflect", 3, 5)])
def test_conv(kernel, stride, padding, mode, cin, cout):
    torch.manual_seed(kernel)
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, padding_mode=mode, bias=cin != 13)
    model = check_import(conv, cin, f"Conv k{kernel} s{stride} {mode} {cin}->{cout}")
    layer, = model.graph.layers
    assert (layer.op, layer.padding, layer.padding_mode) == ("conv2d", padding, mode)


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0)])
def test_conv_transpose(kernel, stride, padding, output_padding):
    torch.manual_seed(kernel)
    conv = nn.ConvTranspose2d(5, 13, kernel, stride, padding, output_padding, bias=kernel != 2)
    model = check_import(conv, 5, f"ConvTranspose k{kernel} s{stride} p{padding} op{output_padding}")
    assert ops(model) == [("conv_transpose2d", "none")] and model.graph.layers[0].output_padding == output_padding


def activated_plus_raw(m, x):
    """The add also reads the conv output, so the activation cannot go into the conv's epilogue."""
    y = m.conv(x)
    return m.act(y) + y


ACTIVATIONS = {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.3), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}


@pytest.mark.parametrize("placement", ["fused", "standalone"])
@pytest.mark.parametrize("kind", list(ACTIVATIONS))
def test_activation(kind, placement):
    body = {"fused": lambda m, x: m.act(m.conv(x)), "standalone": activated_plus_raw}[placement]
    model = check_import(FnNet(body, conv=nn.Conv2d(13, 5, 3, 1, 1), act=copy.deepcopy(ACTIVATIONS[kind])), 13,
                         f"{kind} ({placement})")
    expected = {"fused": [("conv2d", kind)], "standalone": [("conv2d", "none"), ("activation", kind), ("add", "none")]}
    assert ops(model) == expected[placement]
    if kind == "leaky_relu":
        assert {layer.negative_slope for layer in model.graph.layers if layer.activation == kind} == {0.3}


def test_residual_add_reads_the_input():
    model = check_import(FnNet(lambda m, x: F.relu(x + m.conv(x)), conv=nn.Conv2d(13, 13, 3, 1, 1)), 13,
                         "residual add")
    assert [(layer.op, layer.inputs[0], layer.activation) for layer in model.graph.layers] == [
        ("conv2d", "input", "none"), ("add", "input", "relu")]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample(mode):
    net = FnNet(lambda m, x: m.up(m.conv(x)), conv=nn.Conv2d(3, 5, 3, 1, 1), up=nn.Upsample(scale_factor=2, mode=mode))
    model = check_import(net, 3, f"Resize {mode}")
    assert ops(model) == [("conv2d", "none"), ("upsample", "none")] and model.graph.layers[1].mode == mode
    assert model.graph.tensors[model.graph.output].scale == (2, 1)


def test_skip_concat_feeding_a_conv_is_fused():
    net = FnNet(lambda m, x: m.conv2(torch.cat([x, m.conv1(x)], 1)),
                conv1=nn.Conv2d(3, 13, 3, 1, 1), conv2=nn.Conv2d(16, 3, 3, 1, 1))
    model = check_import(net, 3, "cat -> conv")
    assert [(layer.op, layer.inputs) for layer in model.graph.layers] == [
        ("conv2d", ("input",)), ("conv2d", ("input", model.graph.layers[0].name))]


def test_concat_read_by_an_activation_is_materialized():
    net = FnNet(lambda m, x: m.head(torch.tanh(torch.cat([m.a(x), m.b(x)], 1))),
                a=nn.Conv2d(3, 5, 3, 1, 1), b=nn.Conv2d(3, 1, 1), head=nn.Conv2d(6, 3, 3, 1, 1))
    model = check_import(net, 3, "cat -> tanh")
    assert ops(model) == [("conv2d", "none"), ("conv2d", "none"), ("concat", "tanh"), ("conv2d", "none")]


@pytest.mark.parametrize("pad", ["ReflectionPad2d", "ZeroPad2d", "F.pad"])
def test_pad_merges_into_the_conv(pad):
    """The CycleGAN stem: ReflectionPad2d(3) + 7x7 conv; the TorchScript exporter computes the pads
    with a Constant / ConstantOfShape / Concat / Reshape / Slice / Transpose / Cast chain. Zero
    pads of zero pads add up."""
    module = {"ReflectionPad2d": nn.ReflectionPad2d(3), "ZeroPad2d": nn.ZeroPad2d(3),
              "F.pad": lambda y: F.pad(y, (1, 1, 1, 1))}[pad]
    pads_twice = pad == "F.pad"      # a pad of a pad adds up
    kernel = 5 if pads_twice else 7
    net = FnNet(lambda m, x: m.conv(module(module(x) if pads_twice else x)), conv=nn.Conv2d(3, 5, kernel))
    exported = to_onnx(net, 3)
    assert {"Pad", "Constant"} <= {node.op_type for node in exported.graph.node}
    model = check_import(net, 3, pad)
    layer, = model.graph.layers
    mode = "reflect" if pad == "ReflectionPad2d" else "zeros"
    assert (layer.padding, layer.padding_mode) == ((kernel - 1) // 2, mode)


# --- normalization ----------------------------------------------------------------

@pytest.mark.parametrize("transposed", [False, True])
def test_batchnorm_eval_is_folded(transposed):
    """Exported with training=PRESERVE the graph keeps BatchNormalization; the import folds it."""
    conv = nn.ConvTranspose2d(5, 13, 4, 2, 1) if transposed else nn.Conv2d(5, 13, 3, 2, 1, bias=False)
    net = FnNet(lambda m, x: F.relu(m.norm(m.conv(x))), conv=conv, norm=nn.BatchNorm2d(13, eps=1e-2))
    model = check_import(net, 5, f"{type(conv).__name__} + BatchNormalization", export_args={"training": PRESERVE})
    assert [(layer.name, layer.activation) for layer in model.graph.layers] == [("conv", "relu")]
    assert model.meta["provenance"]["norm"] == {"semantics": "eval", "folded_batchnorm": ["norm"]}


@pytest.mark.parametrize("how", ["train mode", "no running statistics"])
def test_batchnorm_frame(how):
    """The pix2pix paper's test time: BatchNorm in train mode (training_mode=1), or with
    track_running_stats=False (mean / variance computed by ReduceMean nodes)."""
    torch.manual_seed(1)
    net = randomize_norms(FnNet(lambda m, x: m.head(F.relu(m.norm(m.conv(x)))), conv=nn.ConvTranspose2d(3, 5, 4, 2, 1),
                                norm=nn.BatchNorm2d(5), head=nn.Conv2d(5, 3, 3, 1, 1)))
    if how == "train mode":
        net.eval().norm.train()
    else:
        frame_statistics(net)
    exported = to_onnx(net, 3, training=PRESERVE)
    with pytest.raises(NormSemanticsMismatch, match="batchnorm='frame'"):
        import_onnx(exported)
    model = import_onnx(exported, batchnorm="frame")
    layer = model.graph.layers[1]
    assert (layer.op, layer.origin, layer.activation) == ("instance_norm", "BatchNorm2d", "relu")
    assert model.meta["provenance"]["norm"] == {"semantics": "frame", "folded_batchnorm": [],
                                                "frame_batchnorm": ["norm"]}
    assert "InstanceNormalization" in model.meta["provenance"]["verification"]["batchnorm"]
    for seed, (h, w) in enumerate(ODD_SIZES):
        x = seeded((h, w, 3), seed=seed)
        assert_close(reference.run(model, x), torch_output(net, model, x), what=f"frame BatchNorm ({how})", tol=FP32)


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm(affine):
    net = FnNet(lambda m, x: m.norm(m.conv(x)), conv=nn.Conv2d(3, 5, 3, 1, 1), norm=nn.InstanceNorm2d(5, affine=affine))
    model = check_import(net, 3, f"InstanceNormalization affine={affine}")
    assert [(layer.op, layer.origin) for layer in model.graph.layers][1] == ("instance_norm", "InstanceNorm2d")


def opset_net():
    """Reflect pad + strided 7x7 conv, InstanceNorm, ConvTranspose + BatchNorm, bilinear and nearest
    2x, a zero pad read by a conv."""
    def body(m, x):
        y = F.relu(m.bn(m.up(m.norm(m.conv(m.pad(x))))))
        y = m.mid(F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False))
        return torch.tanh(m.head(F.pad(F.interpolate(y, scale_factor=2), (1, 1, 1, 1))))
    torch.manual_seed(7)
    return randomize_norms(FnNet(body, pad=nn.ReflectionPad2d(3), conv=nn.Conv2d(3, 8, 7, 2),
                                 norm=nn.InstanceNorm2d(8, affine=True), up=nn.ConvTranspose2d(8, 8, 4, 2, 1),
                                 bn=nn.BatchNorm2d(8), mid=nn.Conv2d(8, 8, 3, 2, 1), head=nn.Conv2d(8, 3, 3, 2))).eval()


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_opsets(opset):
    """Pad's pads and Resize's scales as inputs (11+), BatchNormalization without training_mode
    (before 14: onnx.reference's own kernel gets it wrong, verification does not use it)."""
    net = opset_net()
    model = check_import(net, 3, f"opset {opset}", export_args={"opset_version": opset})
    assert [layer.op for layer in model.graph.layers] == ["conv2d", "instance_norm", "conv_transpose2d", "upsample",
                                                          "conv2d", "upsample", "conv2d"]
    assert model.meta["provenance"]["opset"] == opset and model.meta["provenance"]["norm"]["folded_batchnorm"] == ["bn"]


def test_opset_9_bilinear_is_refused():
    """Opset 9's Upsample samples linear at x / 2 (asymmetric), which is not align_corners=False."""
    with pytest.raises(UnsupportedLayer, match="Upsample.*asymmetric"):
        import_onnx(to_onnx(opset_net(), 3, opset_version=9))


# --- B2: whole networks -------------------------------------------------------------

@pytest.mark.parametrize("norm", ["batch", "frame"])
def test_pix2pix_unet(norm):
    """The recursive pix2pix U-Net: in-place LeakyReLU on the skip tensors, ConvTranspose + BatchNorm
    (TorchScript folds Conv + BatchNorm itself, not ConvTranspose + BatchNorm)."""
    torch.manual_seed(3)
    net = randomize_norms(UnetGenerator(3, 3, num_downs=5, ngf=8, norm=norm_layer("batch"), use_dropout=True))
    net = frame_statistics(net) if norm == "frame" else net.eval()
    export_args = {"training": PRESERVE} if norm == "frame" else {}
    model = import_onnx(to_onnx(net, 3, size=(64, 64), **export_args), batchnorm="frame" if norm == "frame" else "eval")
    assert model.pad_multiple == 32 and model.is_style
    for seed, (h, w) in enumerate([(64, 64), (61, 97)]):
        x = seeded((h, w, 3), seed=seed)
        assert_image_close(reference.run(model, x), torch_output(net, model, x), what=f"pix2pix U-Net ({norm}) {w}x{h}")


def test_resnet_generator():
    """CycleGAN's ResNet: reflect pads + 7x7 convs, InstanceNorm, residual adds, ConvTranspose 3x3
    stride 2 output_padding 1."""
    net = resnet_generator(n_blocks=2, ngf=8, seed=4)
    model = import_onnx(to_onnx(net, 3, size=(32, 32)))
    assert {"add", "instance_norm", "conv_transpose2d"} <= {layer.op for layer in model.graph.layers}
    assert {layer.output_padding for layer in model.graph.layers if layer.op == "conv_transpose2d"} == {1}
    x = seeded((61, 97, 3))
    assert_image_close(reference.run(model, x), torch_output(net, model, x), what="ResNet generator 97x61")


def test_dynamo_exporter():
    """torch.onnx.export's default exporter: BatchNorm folded by the exporter, reflect pads as Pad nodes
    with initializer pads, Resize with initializer scales."""
    torch.manual_seed(4)
    net = randomize_norms(TinyResNet()).eval()
    exported = to_onnx(net, 4, dynamo=True, size=(32, 32))
    assert "BatchNormalization" not in {node.op_type for node in exported.graph.node}
    model = import_onnx(exported)
    assert model.meta["provenance"]["producer"].startswith("pytorch")
    for seed, (h, w) in enumerate([(61, 97), (33, 17)]):
        x = seeded((h, w, 4), seed=seed)
        assert_close(reference.run(model, x), torch_output(net, model, x), what=f"TinyResNet (dynamo) {w}x{h}",
                     tol=FP32)


# --- files --------------------------------------------------------------------------

def test_external_data_from_another_directory(tmp_path, monkeypatch):
    net = FnNet(lambda m, x: torch.tanh(m.conv2(F.relu(m.conv1(x)))), conv1=nn.Conv2d(3, 16, 3, 1, 1),
                conv2=nn.Conv2d(16, 3, 3, 1, 1)).eval()
    folder = tmp_path / "exported"
    folder.mkdir()
    onnx.save_model(to_onnx(net, 3), folder / "net.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="net.weights", size_threshold=0)
    assert (folder / "net.weights").stat().st_size > 16 * 27 * 4
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model = import_onnx(folder / "net.onnx", "net.safetensors")
    assert postfx.load("net.safetensors").meta["provenance"]["file"] == "net.onnx"
    x = seeded((7, 5, 3))
    assert_close(reference.run(model, x), torch_output(net, model, x), what="external data", tol=FP32)
    (folder / "net.weights").unlink()
    with pytest.raises(ExportError, match=r"external data file\(s\) \['net.weights'\] are missing"):
        import_onnx(folder / "net.onnx", "again.safetensors")
    assert not (elsewhere / "again.safetensors").exists()


def test_saved_file_round_trips_with_provenance(tmp_path):
    net = FnNet(lambda m, x: m.conv(x), conv=nn.Conv2d(4, 3, 3, 1, 1)).eval()
    path = tmp_path / "ink.safetensors"
    model = postfx.export_onnx(to_onnx(net, 4), path, input_range=(0.0, 1.0), probe_size=(9, 11))
    loaded = postfx.load(path)
    assert loaded.meta == model.meta and model.path == str(path) and loaded.name == "ink"
    assert loaded.meta["input"]["channels"] == ["r", "g", "b", "depth"] and loaded.input_range == (0.0, 1.0)
    prov = loaded.meta["provenance"]
    assert (prov["source"], prov["opset"]) == ("onnx", 20) and prov["producer"].startswith("pytorch 2.")
    assert prov["verification"]["probe"] == [9, 11] and prov["verification"]["max_abs_error"] <= 1e-3


# --- hand-built graphs ------------------------------------------------------------------

def constant(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def hand_built(nodes, initializers=(), opset=13, inputs=("x",), outputs=("y",), channels=3):
    graph = helper.make_graph(
        nodes, "hand_built", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, channels, "h", "w"])
                              for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "c", "oh", "ow"]) for n in outputs],
        list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_hand_built_graph_with_constant_nodes():
    """Weights, pads and scales from Constant nodes; Identity / Dropout; a name with odd characters
    used twice: layer names are sanitized and unique."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    w2 = rng.standard_normal((3, 9, 1, 1)).astype(np.float32)
    nodes = [constant("w1", w1), constant("b1", b1), constant("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
             constant("scales", np.array([1, 1, 2, 2], np.float32)), constant("w2", w2),
             helper.make_node("Pad", ["x", "pads"], ["padded"], mode="reflect", name="pad"),
             helper.make_node("Conv", ["padded", "w1", "b1"], ["c1"], name="my conv/1"),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1, name="act"),
             helper.make_node("Identity", ["a1"], ["a1_id"]),
             helper.make_node("Dropout", ["a1_id"], ["a1_drop"], name="drop"),
             helper.make_node("Resize", ["a1_drop", "", "scales"], ["up"], mode="nearest", name="up",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Resize", ["x", "", "scales"], ["x_up"], mode="linear", name="up",
                              coordinate_transformation_mode="pytorch_half_pixel"),
             helper.make_node("Concat", ["up", "x_up"], ["cat"], axis=1, name="cat"),
             helper.make_node("Conv", ["cat", "w2"], ["c2"], name="my conv/1"),
             helper.make_node("Sigmoid", ["c2"], ["y"])]
    model = import_onnx(hand_built(nodes))
    assert [(layer.name, layer.op, layer.activation) for layer in model.graph.layers] == [
        ("my_conv.1", "conv2d", "leaky_relu"), ("up", "upsample", "none"), ("up_1", "upsample", "none"),
        ("my_conv.1_1", "conv2d", "sigmoid")]
    x = seeded((7, 5, 3))
    t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    a = F.leaky_relu(F.conv2d(F.pad(t, (1, 1, 1, 1), mode="reflect"), torch.from_numpy(w1), torch.from_numpy(b1)), 0.1)
    cat = torch.cat([F.interpolate(a, scale_factor=2), F.interpolate(t, scale_factor=2, mode="bilinear")], 1)
    want = torch.sigmoid(F.conv2d(cat, torch.from_numpy(w2)))[0].numpy().transpose(1, 2, 0)
    assert_close(reference.run(model, x), want, what="hand-built graph", tol=FP32)


def test_old_opset_pad_and_upsample_attributes():
    """Opset 9: Pad takes its pads as an attribute, Upsample its scales as an input."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Pad", ["x"], ["padded"], mode="constant", pads=[0, 0, 1, 1, 0, 0, 1, 1]),
             helper.make_node("Conv", ["padded", "w"], ["c"]),
             helper.make_node("Upsample", ["c", "scales"], ["y"], mode="nearest")]
    model = import_onnx(hand_built(nodes, [numpy_helper.from_array(w, "w"),
                                           numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")],
                                   opset=9), raw=True)
    x = seeded((7, 5, 3))
    want = F.interpolate(F.conv2d(torch.from_numpy(x.transpose(2, 0, 1).copy())[None], torch.from_numpy(w), padding=1),
                         scale_factor=2)[0].numpy().transpose(1, 2, 0)
    assert_close(reference.run(model, x), want, what="opset 9 graph", tol=FP32)


@pytest.mark.parametrize("kernel,stride,pads,output_padding,bias", [
    (4, 2, [1, 1, 1, 1], [0, 0], True), (3, 2, [1, 1, 1, 1], [1, 1], False), (3, 1, [0, 1, 2, 0], [0, 0], True)])
def test_fast_conv_transpose_matches_onnx_reference(kernel, stride, pads, output_padding, bias):
    """Verification's ConvTranspose against onnx.reference's own (slow) kernel."""
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(kernel)
    inits = [numpy_helper.from_array(rng.standard_normal((5, 7, kernel, kernel)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(7).astype(np.float32), "b")]
    node = helper.make_node("ConvTranspose", ["x", "w", "b"] if bias else ["x", "w"], ["y"], strides=[stride] * 2,
                            pads=pads, output_padding=output_padding)
    graph = hand_built([node], inits, channels=5)
    x = {"x": seeded((1, 5, 6, 9))}
    stock = ReferenceEvaluator(graph).run(None, x)[0]
    fast = ReferenceEvaluator(graph, new_ops=[onnx_verify.ConvTranspose]).run(None, x)[0]
    assert_close(fast, stock, what=f"ConvTranspose k{kernel} s{stride} pads {pads}", tol=FP32)


# --- D5: what import refuses, writing nothing ---------------------------------------

def conv3(cin=3, cout=3, **kw):
    return nn.Conv2d(cin, cout, 3, 1, 1, **kw)


def gemm_graph():
    w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.ones((4, 3), np.float32), "fc.weight")
    return hand_built([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4, name="conv"),
                       helper.make_node("Gemm", ["c", "fc.weight"], ["y"], name="fc")], [w, fc])


UNSUPPORTED = {   # id: (net or graph, words the error must contain)
    "MaxPool": (FnNet(lambda m, x: m.pool(m.conv(x)), conv=conv3(), pool=nn.MaxPool2d(2)), ["MaxPool", "/pool/"]),
    "Gemm": (gemm_graph(), ["'fc' (Gemm)"]),
    "group 2": (nn.Conv2d(4, 4, 3, 1, 1, groups=2), ["Conv", "group=2"]),
    "dilation": (nn.Conv2d(3, 3, 3, 1, 2, dilation=2), ["dilations=[2, 2]"]),
    "scale 3": (FnNet(lambda m, x: F.interpolate(m.conv(x), scale_factor=3), conv=conv3()), ["Resize", "scales"]),
    "align_corners": (FnNet(lambda m, x: F.interpolate(m.conv(x), scale_factor=2, mode="bilinear",
                                                       align_corners=True), conv=conv3()), ["align_corners"]),
    "cat axis 2": (FnNet(lambda m, x: m.conv(torch.cat([x, x], 2)), conv=conv3()), ["Concat", "axis=2"]),
    "constant add": (FnNet(lambda m, x: m.conv(x) + 1.0, conv=conv3()), ["Add", "constant"]),
    "replicate pad": (FnNet(lambda m, x: m.conv(F.pad(x, (1, 1, 1, 1), mode="replicate")), conv=nn.Conv2d(3, 3, 3)),
                      ["Pad", "mode='edge'"]),
    "reflect pad of a reflect pad": (FnNet(lambda m, x: m.conv(m.pad(m.pad(x))), conv=nn.Conv2d(3, 3, 5),
                                           pad=nn.ReflectionPad2d(1)), ["Pad", "reflect pad of a reflect pad"]),
    "pad read by a non-conv": (FnNet(lambda m, x: torch.relu(m.pad(m.conv(x))), conv=conv3(),
                                     pad=nn.ReflectionPad2d(1)), ["Relu", "reads the padding"]),
    "norm after activation": (FnNet(lambda m, x: m.norm(F.relu(m.conv(x))), conv=conv3(), norm=nn.BatchNorm2d(3)),
                              ["BatchNormalization", "activation sits between"]),
    "two outputs": (FnNet(lambda m, x: (m.conv(x), torch.tanh(x)), conv=conv3()), ["2 outputs"]),
    "concatenated output": (FnNet(lambda m, x: torch.cat([m.conv(x), x], 1), conv=conv3()),
                            ["concatenation (3, 3)"]),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_D5_unsupported_is_named_and_nothing_written(case, tmp_path):
    source, words = UNSUPPORTED[case]
    graph = source if isinstance(source, onnx.ModelProto) else to_onnx(source.eval(), source_channels(source),
                                                                       training=PRESERVE)
    path = tmp_path / "model.safetensors"
    with pytest.raises(UnsupportedLayer) as info:
        import_onnx(graph, path)
    for word in words + ["Nothing was written"]:
        assert word in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def source_channels(net):
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels


def test_D5_two_inputs_refused(tmp_path):
    graph = hand_built([helper.make_node("Add", ["a", "b"], ["y"])], inputs=("a", "b"))
    with pytest.raises(UnsupportedLayer, match=r"2 inputs \['a', 'b'\]; a postfx model has one"):
        import_onnx(graph, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["conv weight", "norm variance"])
def test_D3_non_finite_weights_refused(where, tmp_path):
    net = randomize_norms(FnNet(lambda m, x: m.norm(m.conv(x)), conv=conv3(), norm=nn.BatchNorm2d(3))).eval()
    graph = to_onnx(net, 3, training=PRESERVE)      # (equal initializers would be shared: randomized)
    name, index, value = ("conv.weight", (0, 0, 0, 0), np.nan) if where == "conv weight" else \
        ("norm.running_var", (1,), -1.0)
    tensor = next(t for t in graph.graph.initializer if t.name == name)
    array = numpy_helper.to_array(tensor).copy()
    array[index] = value
    tensor.CopyFrom(numpy_helper.from_array(array, name))
    with pytest.raises(ExportError, match="NaN/Inf" if where == "conv weight" else "variance") as info:
        import_onnx(graph, tmp_path / "m.safetensors")
    assert ("'conv.weight'" if where == "conv weight" else "BatchNormalization 'norm'") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_D5_verification_names_the_first_diverging_layer(tmp_path, monkeypatch):
    real = reference.upsample2x
    monkeypatch.setattr(reference, "upsample2x", lambda x, mode: real(x, mode)[:, ::-1].copy())   # upside down
    net = FnNet(lambda m, x: m.head(m.up(m.conv(x))), conv=conv3(4, 8), up=nn.Upsample(scale_factor=2),
                head=conv3(8, 3)).eval()
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"the previous export")
    with pytest.raises(ExportVerificationError, match=r"first diverging layer: 'up' \(upsample"):
        import_onnx(to_onnx(net, 4), path)
    assert path.read_bytes() == b"the previous export" and len(list(tmp_path.iterdir())) == 1


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x80\x04not a protobuf at all" * 3)
    with pytest.raises(ExportError, match="model.onnx"):
        import_onnx(path)
    with pytest.raises(ExportError, match="batchnorm must be one of"):
        import_onnx(path, batchnorm="train")


# --- the command line --------------------------------------------------------------------

def test_cli_export(tmp_path, capsys):
    torch.manual_seed(6)
    net = randomize_norms(FnNet(lambda m, x: torch.tanh(m.conv2(F.relu(m.norm(m.conv1(x))))),
                                conv1=nn.ConvTranspose2d(3, 8, 4, 2, 1), norm=nn.BatchNorm2d(8),
                                conv2=nn.Conv2d(8, 3, 4, 2, 1))).eval()
    source = tmp_path / "gen.onnx"
    onnx.save_model(to_onnx(net, 3, training=PRESERVE), source)
    out = tmp_path / "gen.safetensors"
    assert cli.main(["export", str(source), str(out), "--name", "gen-ink", "--probe", "19x13",
                     "--input-range", "0", "1"]) == 0
    printed = capsys.readouterr().out
    assert "gen.safetensors" in printed and "1 BatchNorm folded" in printed and "19x13 probe" in printed
    model = postfx.load(out)
    assert model.name == "gen-ink" and model.input_range == (0.0, 1.0) and model.is_style
    assert model.meta["provenance"]["verification"]["probe"] == [13, 19]
    assert cli.main(["export", str(source), str(tmp_path / "raw.safetensors"), "--raw", "--batchnorm", "frame"]) == 0
    raw = postfx.load(tmp_path / "raw.safetensors")
    assert not raw.is_style and raw.norm_semantics == "frame"


def test_cli_export_errors(tmp_path, capsys):
    unsupported = tmp_path / "pool.onnx"
    onnx.save_model(to_onnx(FnNet(lambda m, x: m.pool(m.conv(x)), conv=conv3(), pool=nn.MaxPool2d(2)).eval(), 3),
                    unsupported)
    assert cli.main(["export", str(unsupported), str(tmp_path / "pool.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("postfx: error: ONNX node") and "MaxPool" in err and "Traceback" not in err
    assert cli.main(["export", str(tmp_path / "gen.pt"), str(tmp_path / "gen.safetensors")]) == 2
    assert "postfx.export_torch" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool.onnx"]


def test_console_script_and_runtime_without_onnx(tmp_path):
    """`postfx export` end to end in a fresh process; the runtime and `postfx info` never import onnx."""
    source = tmp_path / "net.onnx"
    onnx.save_model(to_onnx(conv3(4, 3).eval(), 4), source)
    out = tmp_path / "net.safetensors"
    result = subprocess.run([sys.executable, "-m", "postfx", "export", str(source), str(out)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    script = ("import sys; sys.modules['onnx'] = None\n"
              "from postfx import cli\n"
              f"assert cli.main(['info', {str(out)!r}]) == 0\n"
              "import numpy as np, postfx, postfx.reference\n"
              f"postfx.reference.run(postfx.load({str(out)!r}), np.zeros((5, 7, 4), np.float32))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_frame_semantics_on_a_graph_whose_batchnorms_were_folded_warns():
    """TorchScript folds eval-mode Conv + BatchNorm itself: nothing is left to run per frame."""
    net = randomize_norms(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                        nn.Conv2d(6, 3, 3, padding=1))).eval()
    with pytest.warns(UserWarning, match="folded it"):
        model = import_onnx(to_onnx(net, 3), batchnorm="frame")
    assert model.norm_semantics == "frame" and "instance_norm" not in [layer.op for layer in model.graph.layers]
