"""The numpy reference against torch on the reference U-Net family (built by hand, no exporter)."""
import pytest

from postfx.testing.parity import assert_image_close, seeded

torch = pytest.importorskip("torch")

from postfx import reference  # noqa: E402
from postfx.exporters.builder import build_model  # noqa: E402
from postfx.model_format import Layer  # noqa: E402
from postfx.train.models import UNetConfig, UNetGenerator  # noqa: E402


def unet_by_hand(net):
    d = net.cfg.depth
    layers, weights = [], {}
    for lv in range(1, d + 1):
        m = getattr(net, f"enc{lv}")
        layers.append(Layer(f"enc{lv}", "conv2d", ("input" if lv == 1 else f"enc{lv - 1}",), "leaky_relu", 0.2,
                            m.out_channels, 4, 2, 1))
        weights[f"enc{lv}"] = (m.weight.detach().numpy(), m.bias.detach().numpy())
    for lv in range(d, 0, -1):
        m = getattr(net, f"dec{lv}")
        ins = (f"enc{d}",) if lv == d else (f"dec{lv + 1}", f"enc{lv}")
        layers.append(Layer(f"dec{lv}", "conv_transpose2d", ins, "tanh" if lv == 1 else "relu", 0.0,
                            m.out_channels, 4, 2, 1))
        weights[f"dec{lv}"] = (m.weight.detach().numpy(), m.bias.detach().numpy())
    return build_model(layers, weights, input_channels=net.cfg.in_channels, output="dec1")


@pytest.mark.parametrize("size", [(64, 64), (61, 97), (5, 3), (1, 1)])
def test_reference_unet_matches_torch(size):
    torch.manual_seed(0)
    net = UNetGenerator(UNetConfig(depth=4, ngf=8)).eval()
    model = unet_by_hand(net)
    h, w = size
    x = seeded((h, w, 4), seed=1)
    xp = reference.pad_to_run_size(model, x)
    with torch.no_grad():
        want = net(torch.from_numpy(xp.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)[:h, :w]
    assert_image_close(reference.run(model, x), want, what=f"reference U-Net d4 ngf8 at {w}x{h}")
