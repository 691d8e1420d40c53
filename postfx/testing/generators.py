"""Generators in the structure of the widely used PyTorch pix2pix / CycleGAN
reference implementation (issue 7's benchmark rows and parity tests), written
here so nothing needs the reference code:

- UnetGenerator(num_downs, ngf, norm, dropout): the recursive U-Net of
  UnetSkipConnectionBlocks. Activations come *before* each conv and are in
  place, so a skip connection carries the LeakyReLU'd tensor, as in the
  reference; convs have no bias under BatchNorm (the norm's shift replaces it).
- ResnetGenerator(n_blocks, ngf, norm): c7s1-ngf, two stride-2 downs, n
  residual blocks (reflection padding), two ConvTranspose2d 3x3 stride 2
  output_padding 1 ups, c7s1-3 with tanh.

Module names and nesting follow the reference (``model.model.1.model.3...``), so
a state dict saved from it loads into these. Needs torch.
"""
from __future__ import annotations

import functools

import torch
from torch import nn


def randomize_norms(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial norm statistics and affine terms (a trained net's are), so a wrong
    fold or a swapped scale / shift shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            n = m.num_features
            with torch.no_grad():
                if m.track_running_stats:
                    m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return net


def norm_layer(kind: str):
    """The reference's get_norm_layer: 'batch' (affine, running stats) or 'instance' (neither)."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    raise ValueError(kind)


def _uses_bias(norm) -> bool:
    """Convs keep a bias only under InstanceNorm (BatchNorm's shift makes it redundant)."""
    return getattr(norm, "func", norm) is nn.InstanceNorm2d


class UnetSkipConnectionBlock(nn.Module):
    """One level: down conv, the inner levels, up conv; its output is cat(x, inner) except
    at the outermost level."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = _uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, norm(inner_nc), submodule, uprelu, upconv, norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, num_downs=8, ngf=64, norm=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm=norm)

    def forward(self, x):
        return self.model(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm, use_dropout, bias):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, norm=nn.InstanceNorm2d, use_dropout=False, n_blocks=9):
        super().__init__()
        bias = _uses_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias), norm(ngf),
                  nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                       norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout, bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def unet_generator(num_downs=8, ngf=64, norm="batch", dropout=True, input_nc=3, seed=0) -> UnetGenerator:
    torch.manual_seed(seed)
    net = UnetGenerator(input_nc, 3, num_downs, ngf, norm_layer(norm), dropout)
    return randomize_norms(net, seed).eval()


def resnet_generator(n_blocks=9, ngf=64, norm="instance", input_nc=3, seed=0) -> ResnetGenerator:
    torch.manual_seed(seed)
    net = ResnetGenerator(input_nc, 3, ngf, norm_layer(norm), False, n_blocks)
    return randomize_norms(net, seed).eval()


def frame_statistics(net: nn.Module) -> nn.Module:
    """The pix2pix paper's test-time BatchNorm: every BatchNorm normalizes by the frame's
    own statistics (train mode, batch of one); dropout stays off. Changes `net` in place."""
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False     # no running-stat updates: repeated runs stay identical
            m.running_mean = m.running_var = None
    return net
