"""Average pooling through both front ends (reliability B1, D5): nn.AvgPool2d,
F.avg_pool2d and ONNX AveragePool exported, checked against torch at odd sizes,
and run through GL; pix2pixHD's LocalEnhancer downsampling
(AvgPool2d(3, 2, 1, count_include_pad=False), global features added to the local
branch) both ways; what postfx cannot pool is refused by name, writing nothing."""
from __future__ import annotations

import pytest

from postfx.testing.parity import FP32, ODD_SIZES, assert_close, seeded

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import torch.nn.functional as F  # noqa: E402
from nets import FnNet, LocalEnhancerLike, randomize_norms  # noqa: E402
from onnx import helper  # noqa: E402
from test_export import check_op, torch_output  # noqa: E402
from test_onnx import check_import, hand_built, to_onnx  # noqa: E402
from torch import nn  # noqa: E402

import postfx  # noqa: E402
from postfx import reference  # noqa: E402
from postfx.errors import UnsupportedLayer  # noqa: E402
from postfx.exporters.onnx_import import import_onnx  # noqa: E402
from postfx.exporters.torch_export import export_torch  # noqa: E402


def conv(cin=3, cout=5):
    return nn.Conv2d(cin, cout, 3, 1, 1)


def pooled(pool, then_relu=False):
    """conv -> pool (-> relu) -> conv: the pool between layers, as a network has it."""
    def forward(m, x):
        y = m.pool(m.first(x))
        return m.last(F.relu(y) if then_relu else y)
    return FnNet(forward, first=conv(), pool=pool, last=conv(5, 3))


POOLS = [(2, None, 0, True), (3, 2, 1, True), (3, 2, 1, False), (3, 1, 1, False), (4, 2, 1, True), (5, 1, 2, False)]


def pool_id(case):
    k, s, p, include = case
    return f"k{k}s{s or k}p{p}-{'incl' if include else 'inside'}"


@pytest.mark.parametrize("case", POOLS, ids=pool_id)
def test_avg_pool_module_and_function(case):
    k, s, p, include = case
    module = check_op(pooled(nn.AvgPool2d(k, s, p, count_include_pad=include), then_relu=True), 3,
                      f"AvgPool2d {pool_id(case)}")
    pool = next(layer for layer in module.graph.layers if layer.op == "avg_pool2d")
    assert (pool.kernel, pool.stride, pool.padding, pool.count_include_pad) == (k, s or k, p, include)
    assert pool.activation == "relu"                      # fused into the pool's epilogue
    function = FnNet(lambda m, x: m.last(F.avg_pool2d(m.first(x), k, s, p, count_include_pad=include)),
                     first=conv(), last=conv(5, 3))
    check_op(function, 3, f"F.avg_pool2d {pool_id(case)}")


@pytest.mark.parametrize("case", POOLS, ids=pool_id)
def test_average_pool_onnx(case):
    k, s, p, include = case
    model = check_import(pooled(nn.AvgPool2d(k, s, p, count_include_pad=include)), 3, f"AveragePool {pool_id(case)}")
    pool = next(layer for layer in model.graph.layers if layer.op == "avg_pool2d")
    assert (pool.kernel, pool.stride, pool.padding, pool.count_include_pad) == (k, s or k, p, include)


def test_a_zero_pad_before_the_pool_becomes_its_counted_padding():
    net = FnNet(lambda m, x: m.last(F.avg_pool2d(F.pad(m.first(x), (1, 1, 1, 1)), 3, 2)), first=conv(),
                last=conv(5, 3))
    model = check_op(net, 3, "F.pad -> avg_pool2d")
    pool = next(layer for layer in model.graph.layers if layer.op == "avg_pool2d")
    assert (pool.padding, pool.count_include_pad) == (1, True)


def test_onnx_average_pool_counts_only_the_taps_inside_by_default():
    """ONNX's count_include_pad defaults to 0 (torch's to True): a hand-built node without it."""
    nodes = [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["p"], ["y"])]
    model = import_onnx(hand_built(nodes, channels=3))
    assert model.graph.layers[0].count_include_pad is False
    x = seeded((10, 14, 3), seed=2)
    want = F.relu(F.avg_pool2d(torch.from_numpy(x.transpose(2, 0, 1).copy())[None], 3, 2, 1,
                               count_include_pad=False))[0].numpy().transpose(1, 2, 0)
    assert_close(reference.run(model, x), want, what="hand-built AveragePool")


@pytest.mark.parametrize("front_end", ["torch", "onnx"])
def test_pix2pixhd_local_enhancer_downsampling(front_end, gl_ctx):
    torch.manual_seed(3)
    net = randomize_norms(LocalEnhancerLike()).eval()
    if front_end == "torch":
        model = export_torch(net)
    else:
        model = import_onnx(to_onnx(net, 4, size=(32, 32)))
    pools = [layer for layer in model.graph.layers if layer.op == "avg_pool2d"]
    assert [(p.kernel, p.stride, p.padding, p.count_include_pad) for p in pools] == [(3, 2, 1, False)]
    assert any(layer.op == "add" for layer in model.graph.layers)
    for seed, (h, w) in enumerate(ODD_SIZES):
        x = seeded((h, w, 4), seed=seed)
        want = torch_output(net, model, x)
        assert_close(reference.run(model, x), want, what=f"LocalEnhancer ({front_end}) {w}x{h}", tol=FP32)
        assert_close(postfx.run(model, x), want, what=f"LocalEnhancer ({front_end}) through GL {w}x{h}", tol=FP32)


UNPOOLABLE = {
    "ceil_mode": (pooled(nn.AvgPool2d(3, 2, 1, ceil_mode=True)), ["ceil_mode=True"]),
    "divisor_override": (pooled(nn.AvgPool2d(2, divisor_override=3)), ["divisor_override=3"]),
    "non-square": (pooled(nn.AvgPool2d((3, 1), 1, (1, 0))), ["kernel_size=(3, 1)"]),
    "inexact size": (pooled(nn.AvgPool2d(3, 1, 0)), ["kernel 3 stride 1 padding 0", "1 / stride"]),
    "reflect pad before": (FnNet(lambda m, x: m.last(F.avg_pool2d(F.pad(m.first(x), (1, 1, 1, 1), mode="reflect"),
                                                                  3, 2)), first=conv(), last=conv(5, 3)),
                           ["reads the reflect padding", "only zero padding"]),
}


@pytest.mark.parametrize("case", list(UNPOOLABLE))
def test_D5_unpoolable_is_named_and_nothing_written(case, tmp_path):
    net, words = UNPOOLABLE[case]
    path = tmp_path / "model.safetensors"
    with pytest.raises(UnsupportedLayer) as info:
        export_torch(net.eval(), path)
    assert all(word in str(info.value) for word in words), str(info.value)
    assert not path.exists()


def test_D5_onnx_ceil_mode_is_refused(tmp_path):
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              ceil_mode=1)]
    with pytest.raises(UnsupportedLayer, match="ceil_mode=1"):
        import_onnx(hand_built(nodes, channels=3))
