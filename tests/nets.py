"""Small torch networks for the exporter tests (test_export.py)."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


class FnNet(nn.Module):
    """forward(x) = fn(self, x) over the given submodules: a one-line test network."""

    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, x):
        return self.fn(self, x)


def randomize_norms(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return net


def reflect_conv(cin, cout, kernel=3, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, padding_mode="reflect")


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.norm1 = reflect_conv(channels, channels), nn.BatchNorm2d(channels)
        self.conv2, self.norm2 = reflect_conv(channels, channels), nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class TinyResNet(nn.Module):
    """Not a U-Net: 7x7 / 3x3 reflect convs, one stride-2 step down, residual
    blocks, bilinear upsampling back, tanh head. RGBD in, RGB out."""

    def __init__(self, width=8, blocks=2):
        super().__init__()
        self.stem = reflect_conv(4, width, 7)
        self.down = nn.Conv2d(width, 2 * width, 3, 2, 1)
        self.blocks = nn.Sequential(*[ResBlock(2 * width) for _ in range(blocks)])
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fuse = reflect_conv(2 * width, width)
        self.head = reflect_conv(width, 3)

    def forward(self, x):
        stem = F.relu(self.stem(x))
        y = self.blocks(torch.relu(self.down(stem)))
        y = F.leaky_relu(self.fuse(self.up(y)), 0.1) + stem
        return torch.tanh(self.head(y))


class SkipLevel(nn.Module):
    """One level of a recursive pix2pix-style U-Net (the layout whose weights are
    named model.model.1...). As there, the level's LeakyReLU runs in place, so
    the skip tensor that torch.cat reads is the activated one."""

    def __init__(self, outer, inner, sub=None, in_channels=None, outermost=False):
        super().__init__()
        down = nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=outermost)
        self.outermost = outermost
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RecursiveUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=3, ngf=8, depth=3):
        super().__init__()
        level = SkipLevel(ngf * 2 ** (depth - 2), ngf * 2 ** (depth - 1))
        for d in range(depth - 3, -1, -1):
            level = SkipLevel(ngf * 2 ** d, ngf * 2 ** (d + 1), level)
        self.model = SkipLevel(out_channels, ngf, level, in_channels, outermost=True)

    def forward(self, x):
        return self.model(x)


class TraceDiffers(nn.Module):
    """Takes another branch under torch.fx than when run: the trace is valid,
    but it is not what the module computes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.tanh(y) if isinstance(y, torch.fx.Proxy) else torch.sigmoid(y)
