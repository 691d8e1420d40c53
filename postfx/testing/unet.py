"""The benchmark network: the reference pix2pix U-Net, RGBD
in, RGB out, built with random weights straight into a model file -- no torch,
no exporter. Layer names, shapes and activations match
postfx.train.models.UNetGenerator (tests compare the two), and torch_unet()
loads the very same weights into one, so GL and torch run identical networks."""
from __future__ import annotations

import numpy as np

from postfx import model_format as fmt
from postfx.exporters.builder import build_model


def width(ngf: int, level: int) -> int:
    return min(ngf * 2 ** (level - 1), 8 * ngf)


def reference_unet(depth: int = 4, ngf: int = 16, *, in_channels: int = 4, seed: int = 0):
    """Model of the reference U-Net with He-scaled random weights (activations
    keep their scale through the depth, as in a trained network)."""
    layers, weights = reference_layers(depth, ngf, in_channels=in_channels, seed=seed)
    return build_model(layers, weights, input_channels=in_channels, output="dec1",
                       name=f"unet_d{depth}_ngf{ngf}")


def torch_unet(depth: int = 4, ngf: int = 16, *, in_channels: int = 4, seed: int = 0):
    """postfx.train.models.UNetGenerator (eval mode, fp32, CPU) holding the same
    weights as reference_unet(depth, ngf, seed=seed). Needs torch."""
    import torch

    from postfx.train.models import UNetConfig, UNetGenerator
    net = UNetGenerator(UNetConfig(depth=depth, ngf=ngf, in_channels=in_channels, out_channels=3)).eval()
    _, weights = reference_layers(depth, ngf, in_channels=in_channels, seed=seed)
    state = {}
    for name, (weight, bias) in weights.items():
        state[f"{name}.weight"] = torch.from_numpy(weight)
        state[f"{name}.bias"] = torch.from_numpy(bias)
    net.load_state_dict(state, strict=True)
    return net


def reference_layers(depth: int, ngf: int, *, in_channels: int = 4, seed: int = 0):
    """(layers, weights[name] = (weight in torch layout, bias)) of the reference U-Net."""
    rng = np.random.default_rng(seed)
    layers, weights = [], {}

    def conv_weights(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    for level in range(1, depth + 1):
        cin = in_channels if level == 1 else width(ngf, level - 1)
        cout = width(ngf, level)
        source = fmt.INPUT_TENSOR if level == 1 else f"enc{level - 1}"
        layers.append(fmt.Layer(f"enc{level}", "conv2d", (source,), "leaky_relu", 0.2, cout, 4, 2, 1))
        weights[f"enc{level}"] = (conv_weights((cout, cin, 4, 4), cin * 16),
                                  rng.uniform(-0.1, 0.1, cout).astype(np.float32))
    for level in range(depth, 0, -1):
        cin = width(ngf, level) * (1 if level == depth else 2)
        cout = 3 if level == 1 else width(ngf, level - 1)
        sources = (f"enc{depth}",) if level == depth else (f"dec{level + 1}", f"enc{level}")
        layers.append(fmt.Layer(f"dec{level}", "conv_transpose2d", sources, "tanh" if level == 1 else "relu", 0.0,
                                cout, 4, 2, 1))
        # Gather form: each output sees 4 of the 16 taps, so scale by the taps that reach it.
        weights[f"dec{level}"] = (conv_weights((cin, cout, 4, 4), cin * 4),
                                  rng.uniform(-0.1, 0.1, cout).astype(np.float32))
    return layers, weights


def layer_macs(model, height: int, width_: int) -> dict[str, float]:
    """Real multiply-adds of each conv layer for a run size (gather form for
    transposed convs), the same count as Model.macs_per_pixel."""
    graph = model.graph
    out = {}
    for layer in graph.layers:
        if layer.op not in fmt.CONV_OPS:
            continue
        num, den = graph.tensors[layer.name].scale
        pixels = height * width_ * (num / den) ** 2
        cin = sum(fmt.in_segments(layer, graph.tensors))
        taps = layer.kernel ** 2 if layer.op == "conv2d" else (layer.kernel / layer.stride) ** 2
        out[layer.name] = pixels * layer.out_channels * cin * taps
    return out
