"""The torch exporter: per-op parity of the exported file (numpy reference) with
torch fp32 (reliability B1), whole networks (B2), and what export refuses (D5)."""
import copy
import operator

import numpy as np
import pytest

from postfx.testing.parity import FP32, ODD_CHANNELS, ODD_SIZES, assert_close, assert_image_close, seeded

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from nets import FnNet, TinyResNet, TraceDiffers, UnetGenerator, norm_layer, randomize_norms  # noqa: E402
from torch import nn  # noqa: E402

import postfx  # noqa: E402
from postfx import model_format as fmt  # noqa: E402
from postfx import reference  # noqa: E402
from postfx.errors import ExportError, ExportVerificationError, UnsupportedLayer  # noqa: E402
from postfx.exporters import torch_export  # noqa: E402
from postfx.exporters.torch_export import export_torch  # noqa: E402
from postfx.train.models import UNetConfig, UNetGenerator  # noqa: E402

# (in, out) with in != out; each of ODD_CHANNELS appears on both sides
CHANNEL_PAIRS = [(1, 5), (3, 13), (5, 1), (13, 3)]
assert {c for pair in CHANNEL_PAIRS for c in pair} == set(ODD_CHANNELS)


def torch_output(net, model, x):
    """The module on x padded the way the runtime pads it, cropped back (the documented policy)."""
    h, w = x.shape[:2]
    xp = reference.pad_to_run_size(model, x)
    with torch.no_grad():
        y = copy.deepcopy(net).eval()(torch.from_numpy(xp.transpose(2, 0, 1).copy())[None])
    oh, ow = fmt.output_size(model.graph, h, w)
    return y[0].numpy().transpose(1, 2, 0)[:oh, :ow]


def check_op(net, cin, what, **export_args):
    """Export `net`, then the file (numpy reference) against torch at ODD_SIZES, FP32 tolerance."""
    torch.manual_seed(0)
    model = export_torch(randomize_norms(net), **export_args)
    for seed, (h, w) in enumerate(ODD_SIZES):
        x = seeded((h, w, cin), seed=seed)
        assert_close(reference.run(model, x), torch_output(net, model, x), what=f"{what} at {w}x{h}", tol=FP32)
    return model


def ops(model):
    return [layer.op for layer in model.graph.layers]


# --- B1: one or two torch layers at a time ---------------------------------------

# (kernel, stride); kernel 4 at stride 1 has no padding that keeps the size exact
CONV_SHAPES = [(1, 1), (1, 2), (3, 1), (3, 2), (4, 2), (7, 1), (7, 2)]
PADDING = {1: 0, 3: 1, 4: 1, 7: 3}


@pytest.mark.parametrize("cin,cout", CHANNEL_PAIRS)
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("kernel,stride", CONV_SHAPES)
def test_conv2d(kernel, stride, mode, cin, cout):
    torch.manual_seed(kernel * 10 + stride)
    conv = nn.Conv2d(cin, cout, kernel, stride, PADDING[kernel], padding_mode=mode, bias=cin != 13)
    model = check_op(conv, cin, f"conv2d k{kernel} s{stride} {mode} {cin}->{cout}")
    assert ops(model) == ["conv2d"] and model.graph.layers[0].padding_mode == mode


@pytest.mark.parametrize("cin,cout", CHANNEL_PAIRS)
@pytest.mark.parametrize("kernel,stride,padding,output_padding",
                         [(4, 2, 1, 0), (2, 2, 0, 0), (3, 2, 1, 1), (3, 1, 1, 0)])
def test_conv_transpose2d(kernel, stride, padding, output_padding, cin, cout):
    torch.manual_seed(kernel)
    conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, bias=cout != 13)
    model = check_op(conv, cin, f"conv_transpose2d k{kernel} s{stride} p{padding} {cin}->{cout}")
    assert ops(model) == ["conv_transpose2d"]


ACTIVATIONS = {   # kind: (module, function, Tensor method)
    "relu": (nn.ReLU(), F.relu, lambda x: x.relu()),
    "leaky_relu": (nn.LeakyReLU(0.3), lambda x: F.leaky_relu(x, 0.3), None),
    "tanh": (nn.Tanh(), torch.tanh, lambda x: x.tanh()),
    "sigmoid": (nn.Sigmoid(), torch.sigmoid, lambda x: x.sigmoid()),
}
SPELLINGS = ["module", "function", "method"]


def activation_net(kind, spelling, placement, cin, cout):
    module, function, method = ACTIVATIONS[kind]
    act = {"module": lambda m, y: m.act(y), "function": lambda m, y: function(y),
           "method": lambda m, y: method(y)}[spelling]
    body = {"fused": lambda m, x: act(m, m.conv(x)),
            "standalone": lambda m, x: activated_plus_raw(m, act, x),
            "input": lambda m, x: act(m, x)}[placement]
    return FnNet(body, conv=nn.Conv2d(cin, cout, 3, 1, 1), act=copy.deepcopy(module))


def activated_plus_raw(m, act, x):
    """The add also reads the conv output, so the activation cannot go into the conv's epilogue."""
    y = m.conv(x)
    return act(m, y) + y


@pytest.mark.parametrize("placement", ["fused", "standalone", "input"])
@pytest.mark.parametrize("kind,spelling", [(kind, spelling) for kind, spellings in ACTIVATIONS.items()
                                           for spelling, f in zip(SPELLINGS, spellings, strict=True) if f is not None])
def test_activation(kind, spelling, placement):
    cin, cout = (13, 5) if placement != "input" else (5, 5)
    net = activation_net(kind, spelling, placement, cin, cout)
    model = check_op(net, cin, f"{kind} ({spelling}, {placement})", input_channels=cin)
    expected = {"fused": [("conv2d", kind)], "standalone": [("conv2d", "none"), ("activation", kind), ("add", "none")],
                "input": [("activation", kind)]}[placement]
    assert [(layer.op, layer.activation) for layer in model.graph.layers] == expected
    if kind == "leaky_relu":
        assert {layer.negative_slope for layer in model.graph.layers if layer.activation == kind} == {0.3}


@pytest.mark.parametrize("spelling", ["module", "function", "method"])
def test_inplace_activation_is_seen_by_later_readers(spelling):
    """relu_ mutates its argument: readers before it see the conv output, readers after the activated one."""
    relu_ = {"module": lambda m, y: m.act(y), "function": lambda m, y: F.relu(y, inplace=True),
             "method": lambda m, y: y.relu_()}[spelling]

    def body(m, x):
        y = m.conv(x)
        before = m.conv2(y)
        relu_(m, y)
        return m.head(torch.cat([y, before], 1))
    net = FnNet(body, conv=nn.Conv2d(3, 5, 3, 1, 1), conv2=nn.Conv2d(5, 5, 1), head=nn.Conv2d(10, 3, 1),
                act=nn.ReLU(inplace=True))
    model = check_op(net, 3, f"in-place relu ({spelling})")
    relu = model.graph.layers[2].name
    assert [(layer.op, layer.inputs) for layer in model.graph.layers] == [
        ("conv2d", ("input",)), ("conv2d", ("conv",)), ("activation", ("conv",)), ("conv2d", (relu, "conv2"))]


def pad_then_activate(m, x):
    y = m.a(x)
    padded = F.pad(y, (1, 1, 1, 1))          # pending until m.b reads it
    activated = F.relu(y)                    # y has a second reader: the pad
    return m.b(padded) + m.c(activated)


def test_an_activation_is_not_fused_into_a_conv_a_pending_pad_also_reads():
    """The relu must not go into conv a's epilogue: the pad (merged into conv b) reads a's raw output."""
    net = FnNet(pad_then_activate, a=nn.Conv2d(3, 4, 3, 1, 1), b=nn.Conv2d(4, 3, 3), c=nn.Conv2d(4, 3, 3, 1, 1))
    model = check_op(net, 3, "pad and relu of one conv output")
    assert ops(model) == ["conv2d", "activation", "conv2d", "conv2d", "add"]
    assert model.graph.layers[0].activation == "none" and model.graph.layers[1].activation == "relu"


@pytest.mark.parametrize("spelling", ["operator", "torch.add", "method", "in place"])
def test_add(spelling):
    add = {"operator": operator.add, "torch.add": torch.add, "method": lambda a, b: a.add(b),
           "in place": lambda a, b: a.add_(b)}[spelling]
    net = FnNet(lambda m, x: add(m.a(x), m.b(x)), a=nn.Conv2d(5, 13, 3, 1, 1), b=nn.Conv2d(5, 13, 1))
    model = check_op(net, 5, f"add ({spelling})")
    assert ops(model) == ["conv2d", "conv2d", "add"]


def test_residual_add_reads_the_input():
    net = FnNet(lambda m, x: F.relu(x + m.conv(x)), conv=nn.Conv2d(13, 13, 3, 1, 1))
    model = check_op(net, 13, "residual add")
    assert [(layer.op, layer.inputs, layer.activation) for layer in model.graph.layers] == [
        ("conv2d", ("input",), "none"), ("add", ("input", "conv"), "relu")]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("spelling", ["module", "function"])
def test_upsample(mode, spelling):
    up = (lambda m, y: m.up(y)) if spelling == "module" else \
        (lambda m, y: F.interpolate(y, scale_factor=2, mode=mode, align_corners=False if mode == "bilinear" else None))
    net = FnNet(lambda m, x: up(m, m.conv(x)), conv=nn.Conv2d(3, 5, 3, 1, 1),
                up=nn.Upsample(scale_factor=2, mode=mode))
    model = check_op(net, 3, f"upsample {mode} ({spelling})")
    assert ops(model) == ["conv2d", "upsample"] and model.graph.layers[1].mode == mode
    assert model.graph.tensors[model.graph.output].scale == (2, 1)


@pytest.mark.parametrize("cin,cout", CHANNEL_PAIRS)
def test_cat_feeding_a_conv_is_fused(cin, cout):
    net = FnNet(lambda m, x: m.conv2(torch.cat([x, m.conv1(x)], 1)),
                conv1=nn.Conv2d(cin, cout, 3, 1, 1), conv2=nn.Conv2d(cin + cout, 3, 3, 1, 1))
    model = check_op(net, cin, f"cat({cin}, {cout}) -> conv")
    assert [(layer.op, layer.inputs) for layer in model.graph.layers] == [
        ("conv2d", ("input",)), ("conv2d", ("input", "conv1"))]


@pytest.mark.parametrize("consumer", ["tanh", "upsample", "add"])
def test_cat_feeding_a_non_conv_is_materialized(consumer):
    after = {"tanh": torch.tanh, "upsample": lambda y: F.interpolate(y, scale_factor=2),
             "add": lambda y: y + y}[consumer]
    net = FnNet(lambda m, x: m.head(after(torch.cat([m.a(x), m.b(x)], dim=1))),
                a=nn.Conv2d(3, 5, 3, 1, 1), b=nn.Conv2d(3, 1, 1), head=nn.Conv2d(6, 13, 3, 1, 1))
    model = check_op(net, 3, f"cat -> {consumer}")
    assert ops(model)[:3] == ["conv2d", "conv2d", "concat"] and len(ops(model)) == 4 + (consumer != "tanh")
    assert model.graph.tensors["cat"].segments == (5, 1)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("then_relu", [False, True])
def test_B6_batchnorm_is_folded(transposed, then_relu):
    conv = nn.ConvTranspose2d(5, 13, 4, 2, 1) if transposed else nn.Conv2d(5, 13, 3, 2, 1, bias=False)
    net = FnNet(lambda m, x: (F.relu if then_relu else (lambda y: y))(m.norm(m.conv(x))),
                conv=conv, norm=nn.BatchNorm2d(13, eps=1e-2))
    model = check_op(net, 5, f"{type(conv).__name__} + BatchNorm2d (eps 1e-2)")
    assert [(layer.name, layer.activation) for layer in model.graph.layers] == [
        ("conv", "relu" if then_relu else "none")]
    assert model.meta["provenance"]["norm"] == {"semantics": "eval", "folded_batchnorm": ["norm"]}


def test_B6_batchnorm_without_affine_terms_is_folded():
    net = FnNet(lambda m, x: m.norm(m.conv(x)), conv=nn.Conv2d(3, 5, 3, 1, 1), norm=nn.BatchNorm2d(5, affine=False))
    check_op(net, 3, "conv + BatchNorm2d(affine=False)")


# --- B2: whole networks --------------------------------------------------------

UNETS = [(depth, ngf, norm) for depth in range(1, 7) for ngf in (8, 16, 32) for norm in ("none", "batch")]


@pytest.mark.parametrize("depth,ngf,norm", UNETS)
def test_unet_generator(depth, ngf, norm):
    torch.manual_seed(depth * 100 + ngf)
    net = randomize_norms(UNetGenerator(UNetConfig(depth=depth, ngf=ngf, norm=norm, dropout=0.5)), seed=depth)
    assert net.training                        # exported as eval, left in training mode
    model = export_torch(net)
    assert net.training and all(m.training for m in net.modules())
    names = [f"enc{i}" for i in range(1, depth + 1)] + [f"dec{i}" for i in range(depth, 0, -1)]
    assert [layer.name for layer in model.graph.layers] == names         # torch's names
    assert all(f"{name}.weight" in net.state_dict() for name in names)
    assert "concat" not in ops(model)                                    # every skip read directly
    assert model.is_style and model.pad_multiple == 2 ** depth
    sizes = [(64, 64), (61, 97)] if (depth + ngf // 8) % 2 else [(64, 64)]   # (H, W); 97x61 for half the grid
    for seed, (h, w) in enumerate(sizes):
        x = seeded((h, w, 4), seed=seed)
        assert_image_close(reference.run(model, x), torch_output(net, model, x),
                           what=f"U-Net d{depth} ngf{ngf} {norm} at {w}x{h}")


def test_recursive_pix2pix_unet():
    """The recursive layout (model.model.1...) with in-place LeakyReLU on the skip tensors."""
    torch.manual_seed(3)
    net = randomize_norms(UnetGenerator(3, 3, num_downs=5, ngf=8, norm=norm_layer("batch")))
    model = export_torch(net)
    assert model.graph.layers[0].name == "model.model.0" and "model.model.0.weight" in model.tensors
    for seed, (h, w) in enumerate([(64, 64), (61, 97)]):
        x = seeded((h, w, 3), seed=seed)
        assert_image_close(reference.run(model, x), torch_output(net, model, x), what=f"recursive U-Net at {w}x{h}")


def test_resnet_style_network():
    """Not a U-Net: reflect 3x3 / 7x7 convs, residual adds, BatchNorm, bilinear upsampling."""
    torch.manual_seed(4)
    net = randomize_norms(TinyResNet())
    model = export_torch(net)
    assert {"add", "upsample"} <= set(ops(model)) and model.is_style
    for seed, (h, w) in enumerate([(61, 97), (33, 17)]):
        x = seeded((h, w, 4), seed=seed)
        want = torch_output(net, model, x)
        assert_close(reference.run(model, x), want, what=f"TinyResNet at {w}x{h}", tol=FP32)
        assert_image_close(reference.run(model, x), want, what=f"TinyResNet at {w}x{h}")


# --- D5: what export refuses, and what it writes ---------------------------------

def conv3(cin=3, cout=3, **kw):
    return nn.Conv2d(cin, cout, 3, 1, 1, **kw)


def scaled_conv():
    net = FnNet(lambda m, x: m.conv(x) * m.scale, conv=conv3())
    net.scale = nn.Parameter(torch.full((1, 3, 1, 1), 2.0))
    return net


def norm_plus_raw(m, x):
    y = m.conv(x)
    return m.norm(y) + y


UNSUPPORTED = {   # id: (net, words the error must contain)
    "module": (FnNet(lambda m, x: m.norm(m.conv(x)), conv=conv3(), norm=nn.GroupNorm(1, 3)),
               ["'norm'", "GroupNorm"]),
    "function": (FnNet(lambda m, x: m.conv(x) * 2, conv=conv3()), ["operator.mul", "'mul'"]),
    "method": (FnNet(lambda m, x: m.conv(x).clamp(0, 1), conv=conv3()), ["Tensor.clamp"]),
    "groups": (conv3(groups=3), ["groups=3"]),
    "dilation": (nn.Conv2d(3, 3, 3, 1, 2, dilation=2), ["dilation"]),
    "replicate padding": (conv3(padding_mode="replicate"), ["padding_mode='replicate'"]),
    "inexact conv": (nn.Conv2d(3, 3, 3), ["kernel 3 stride 1 padding 0"]),
    "scale 3": (FnNet(lambda m, x: F.interpolate(m.conv(x), scale_factor=3), conv=conv3()), ["scale_factor=3"]),
    "align_corners": (FnNet(lambda m, x: m.up(m.conv(x)), conv=conv3(),
                            up=nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)), ["align_corners"]),
    "cat dim 2": (FnNet(lambda m, x: m.conv(torch.cat([x, x], 2)), conv=conv3()), ["dim=2"]),
    "constant add": (FnNet(lambda m, x: m.conv(x) + 1.0, conv=conv3()), ["constant"]),
    "parameter": (scaled_conv(), ["get_attr", "'scale'"]),
    "norm after activation": (FnNet(lambda m, x: m.norm(F.relu(m.conv(x))), conv=conv3(), norm=nn.BatchNorm2d(3)),
                              ["'norm'", "activation sits between"]),
    "norm with another reader": (FnNet(lambda m, x: norm_plus_raw(m, x), conv=conv3(), norm=nn.BatchNorm2d(3)),
                                 ["'norm'", "also read"]),
    "norm after cat": (FnNet(lambda m, x: m.norm(torch.cat([m.conv(x), x], 1)), conv=conv3(), norm=nn.BatchNorm2d(6)),
                       ["'norm'", "not the output of a conv"]),
    "two outputs": (FnNet(lambda m, x: (m.conv(x), x), conv=conv3()), ["one output"]),
    "concatenated output": (FnNet(lambda m, x: torch.cat([m.conv(x), x], 1), conv=conv3()),
                            ["'cat'", "concatenation (3, 3)"]),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_D5_unsupported_is_named_and_nothing_written(case, tmp_path):
    net, words = UNSUPPORTED[case]
    path = tmp_path / "model.safetensors"
    with pytest.raises(UnsupportedLayer) as info:
        export_torch(net, path, input_channels=3)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert "postfx" in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_D5_verification_failure_writes_nothing(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"the previous export")
    with pytest.raises(ExportVerificationError, match="torch.fx does not record"):
        export_torch(TraceDiffers(), path)
    assert path.read_bytes() == b"the previous export" and len(list(tmp_path.iterdir())) == 1


def test_D5_verification_names_the_first_diverging_layer(tmp_path, monkeypatch):
    real = reference.upsample2x
    monkeypatch.setattr(reference, "upsample2x", lambda x, mode: real(x, mode)[:, ::-1].copy())   # upside down
    net = FnNet(lambda m, x: m.head(m.up(m.conv(x))), conv=conv3(4, 8), up=nn.Upsample(scale_factor=2),
                head=conv3(8, 3))
    path = tmp_path / "model.safetensors"
    with pytest.raises(ExportVerificationError, match="first diverging layer: 'up'"):
        export_torch(net, path)
    assert not path.exists()


@pytest.mark.parametrize("where", ["conv weight", "norm running_var"])
def test_D3_non_finite_weights_are_refused(where, tmp_path):
    net = FnNet(lambda m, x: m.norm(m.conv(x)), conv=conv3(), norm=nn.BatchNorm2d(3))
    with torch.no_grad():
        if where == "conv weight":
            net.conv.weight[0, 0, 0, 0] = float("nan")
        else:
            net.norm.running_var[1] = -1.0        # sqrt(var + eps) of a negative number
    path = tmp_path / "model.safetensors"
    with pytest.raises(ExportError, match="NaN/Inf") as info:
        export_torch(net, path)
    assert ("conv.weight" if where == "conv weight" else "BatchNorm norm") in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("training", [True, False])
def test_callers_module_is_left_untouched(training):
    net = randomize_norms(FnNet(lambda m, x: F.relu(m.norm(F.dropout(m.drop(m.conv(x)), 0.5, m.training))),
                                conv=conv3(4, 3), norm=nn.BatchNorm2d(3), drop=nn.Dropout(0.5)))
    net.train(training)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_torch(net)
    assert all(m.training == training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_export_round_trips_through_load(tmp_path):
    torch.manual_seed(5)
    net = UNetGenerator(UNetConfig(depth=3, ngf=8, in_channels=3))
    path = tmp_path / "ink.safetensors"
    model = postfx.export_torch(net, path, training={"epochs": 3}, quality={"psnr": 30.5},
                                provenance={"run": "test"})
    loaded = postfx.load(str(path))
    assert model.path == str(path) and loaded.meta == model.meta
    assert loaded.graph.layers == model.graph.layers
    assert loaded.tensors.keys() == model.tensors.keys()
    assert all(np.array_equal(loaded.tensors[k], model.tensors[k]) for k in model.tensors)
    meta = loaded.meta
    assert meta["name"] == "ink" and meta["input"]["channels"] == ["r", "g", "b"]
    assert meta["training"] == {"epochs": 3} and meta["quality"] == {"psnr": 30.5}
    prov = meta["provenance"]
    assert prov["source"] == "torch.fx" and prov["module"] == "postfx.train.models.UNetGenerator"
    assert prov["torch"] == torch.__version__ and prov["exporter"].startswith("postfx") and prov["run"] == "test"
    assert prov["verification"]["max_abs_error"] <= 1e-3


def test_channels_raw_and_style():
    net = FnNet(lambda m, x: m.conv(F.interpolate(x, scale_factor=2)), conv=conv3(5, 3))
    with pytest.raises(ExportError, match="input_channels="):
        export_torch(net)
    model = export_torch(net, input_channels=5)          # 5 channels in: a raw network, c0..c4
    assert not model.is_style and model.meta["input"]["channels"] == [f"c{i}" for i in range(5)]
    with pytest.raises(ExportError, match="raw=True"):
        export_torch(net, input_channels=5, raw=False)
    with pytest.raises(ExportError, match="expects 5 input channels but reads 4"):
        export_torch(net, input_channels=4)


def test_shared_module_and_dead_code():
    """A module called twice gets two layers (conv, conv_1); a result nothing reads is dropped."""
    def body(m, x):
        m.unused(x)
        return m.conv(F.relu(m.conv(x)))
    model = check_op(FnNet(body, conv=conv3(), unused=conv3()), 3, "shared conv")
    assert [layer.name for layer in model.graph.layers] == ["conv", "conv_1"]
    assert model.tensors.keys() == {"conv.weight", "conv.bias", "conv_1.weight", "conv_1.bias"}


@pytest.mark.parametrize("pad_multiple", [1, 2, 3, 4, 16, 64])
def test_probe_exercises_pad_and_crop(pad_multiple):
    h, w = torch_export.default_probe_size(pad_multiple)
    assert min(h, w) >= 40 and h != w
    if pad_multiple > 1:
        assert h % pad_multiple and w % pad_multiple


def test_untraceable_forward_is_refused(tmp_path):
    def body(m, x):
        y = m.conv(x)
        return y if y.mean() > 0 else -y          # control flow on a tensor value: fx cannot record it
    path = tmp_path / "model.safetensors"
    with pytest.raises(ExportError, match="torch.fx cannot trace"):
        export_torch(FnNet(body, conv=conv3()), path)
    assert not path.exists()


def test_reflection_pads_merge_into_the_conv_but_never_stack():
    """CycleGAN's ReflectionPad2d(3) + 7x7 conv is one reflect-padded conv; reflecting by 1 twice
    is not reflecting by 2, so a pad of a reflect pad is refused by name."""
    one = FnNet(lambda m, x: m.conv(m.pad(x)), pad=nn.ReflectionPad2d(3), conv=nn.Conv2d(3, 4, 7))
    model = check_op(one, 3, "ReflectionPad2d(3) + Conv2d 7x7")
    assert [(layer.op, layer.padding, layer.padding_mode) for layer in model.graph.layers] == [
        ("conv2d", 3, "reflect")]
    functional = FnNet(lambda m, x: m.conv(F.pad(x, (2, 2, 2, 2), mode="reflect")), conv=nn.Conv2d(3, 4, 5))
    assert check_op(functional, 3, "F.pad reflect + Conv2d 5x5").graph.layers[0].padding_mode == "reflect"
    twice = FnNet(lambda m, x: m.conv(m.pad(m.pad(x))), pad=nn.ReflectionPad2d(1), conv=nn.Conv2d(3, 4, 5))
    with pytest.raises(UnsupportedLayer, match="reflect pad of a reflect pad"):
        export_torch(twice)
    padded_then_added = FnNet(lambda m, x: m.pad(x) + 1, pad=nn.ReflectionPad2d(1))
    with pytest.raises(UnsupportedLayer, match="merges padding only"):
        export_torch(padded_then_added, input_channels=3)
