"""Torch networks for the exporter and runtime tests: one-liners, a small ResNet,
and (re-exported from postfx.testing.generators) the generators in
the structure of the PyTorch pix2pix / CycleGAN reference."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from postfx.testing.generators import (  # noqa: F401  (re-exported for the tests)
    ResnetGenerator,
    UnetGenerator,
    frame_statistics,
    norm_layer,
    randomize_norms,
    resnet_generator,
    unet_generator,
)


class FnNet(nn.Module):
    """forward(x) = fn(self, x) over the given submodules: a one-line test network."""

    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, x):
        return self.fn(self, x)


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


class TraceDiffers(nn.Module):
    """Takes another branch under torch.fx than when run: the trace is valid,
    but it is not what the module computes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.tanh(y) if isinstance(y, torch.fx.Proxy) else torch.sigmoid(y)


class LocalEnhancerLike(nn.Module):
    """pix2pixHD's LocalEnhancer in small: a global generator runs on the input
    downsampled by AvgPool2d(3, 2, 1, count_include_pad=False), and its features
    (before its head) are added to the local branch's stride-2 features, then the
    local branch upsamples back to full size. RGBD in, RGB out."""

    def __init__(self, ngf=8):
        super().__init__()
        wide = 2 * ngf

        def down(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(True)]

        def up(cin, cout):
            return [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.global_features = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(4, ngf, 7), nn.BatchNorm2d(ngf),
                                             nn.ReLU(True), *down(ngf, wide), ResBlock(wide), *up(wide, wide))
        self.local_down = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(4, ngf, 7), nn.BatchNorm2d(ngf),
                                        nn.ReLU(True), *down(ngf, wide))
        self.local_up = nn.Sequential(ResBlock(wide), *up(wide, ngf), nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7),
                                      nn.Tanh())

    def forward(self, x):
        return self.local_up(self.local_down(x) + self.global_features(self.downsample(x)))
