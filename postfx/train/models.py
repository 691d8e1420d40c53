"""Generator and discriminator models (torch). Layers have stable flat names
(enc1, enc2, ..., dec1) that map one-to-one onto tensor names in the model file.
Their configs live in config.py (no torch needed to read them) and are re-exported here."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DISCRIMINATOR_NORMS, DISCRIMINATORS, GENERATOR_NORMS, DiscriminatorConfig, UNetConfig

__all__ = ["DISCRIMINATOR_NORMS", "DISCRIMINATORS", "GENERATOR_NORMS", "DiscriminatorConfig", "UNetConfig",
           "UNetGenerator", "PatchGANDiscriminator", "MultiScaleDiscriminator", "build_discriminator", "per_scale"]


class UNetGenerator(nn.Module):
    """The reference family (the benchmark U-Net, postfx.testing.unet): d x [conv 4x4/s2/p1 + LeakyReLU(0.2)] down,
    d x [transposed conv 4x4/s2/p1 + ReLU] up, each decoder output concatenated with the
    matching encoder output; the last decoder outputs RGB through tanh."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        use_bias = cfg.norm == "none"
        for level in range(1, cfg.depth + 1):
            cin = cfg.in_channels if level == 1 else cfg.width(level - 1)
            setattr(self, f"enc{level}", nn.Conv2d(cin, cfg.width(level), 4, 2, 1, bias=use_bias or level == 1))
            # pix2pix: no norm on the outermost and innermost encoder levels
            if cfg.norm == "batch" and 1 < level < cfg.depth:
                setattr(self, f"enc{level}_norm", nn.BatchNorm2d(cfg.width(level)))
        for level in range(cfg.depth, 0, -1):
            cin = cfg.width(level) * (1 if level == cfg.depth else 2)
            cout = cfg.out_channels if level == 1 else cfg.width(level - 1)
            setattr(self, f"dec{level}", nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=use_bias or level == 1))
            if level > 1 and cfg.norm == "batch":
                setattr(self, f"dec{level}_norm", nn.BatchNorm2d(cout))
            if level > 1 and cfg.dropout > 0 and level >= cfg.depth - 2:
                setattr(self, f"dec{level}_drop", nn.Dropout(cfg.dropout))
        self.act_down = nn.LeakyReLU(0.2)
        self.act_up = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # (B, in, H, W) -> (B, out, H, W)
        skips = []
        for level in range(1, self.cfg.depth + 1):
            x = getattr(self, f"enc{level}")(x)
            if hasattr(self, f"enc{level}_norm"):
                x = getattr(self, f"enc{level}_norm")(x)
            x = self.act_down(x)
            skips.append(x)
        for level in range(self.cfg.depth, 0, -1):
            if level < self.cfg.depth:
                x = torch.cat([x, skips[level - 1]], dim=1)
            x = getattr(self, f"dec{level}")(x)
            if level == 1:
                return torch.tanh(x)
            if hasattr(self, f"dec{level}_norm"):
                x = getattr(self, f"dec{level}_norm")(x)
            if hasattr(self, f"dec{level}_drop"):
                x = getattr(self, f"dec{level}_drop")(x)
            x = self.act_up(x)
        raise AssertionError("unreachable")


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    raise ValueError(f"norm must be one of {DISCRIMINATOR_NORMS}, got {norm!r}")


class PatchGANDiscriminator(nn.Module):
    """pix2pix's conditional PatchGAN: it judges (condition, image) pairs, concatenated along
    channels, patch by patch. conv1..conv{layers} are 4x4 stride 2, conv{layers+1} and `out`
    4x4 stride 1 (C64-C128-C256-C512-1 for layers=3); LeakyReLU(0.2) after every conv but
    `out`, a norm after every conv but conv1 and `out`."""

    def __init__(self, cfg: DiscriminatorConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        self.convs = cfg.layers + 1
        use_bias = cfg.norm == "none"
        for level in range(1, self.convs + 1):
            cin = in_channels if level == 1 else cfg.width(level - 1)
            stride = 2 if level <= cfg.layers else 1
            setattr(self, f"conv{level}", nn.Conv2d(cin, cfg.width(level), 4, stride, 1, bias=use_bias or level == 1))
            if level > 1 and cfg.norm != "none":
                setattr(self, f"conv{level}_norm", _norm_layer(cfg.norm, cfg.width(level)))
        self.out = nn.Conv2d(cfg.width(self.convs), 1, 4, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, pair: torch.Tensor) -> list[torch.Tensor]:
        """pair (B, in, H, W) -> the activation of every conv (for feature matching), then
        the logit map (B, 1, h, w) last."""
        features, x = [], pair
        for level in range(1, self.convs + 1):
            x = getattr(self, f"conv{level}")(x)
            if hasattr(self, f"conv{level}_norm"):
                x = getattr(self, f"conv{level}_norm")(x)
            x = self.act(x)
            features.append(x)
        features.append(self.out(x))
        return features


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator: `scales` PatchGANs (scale1, scale2, ...), scale k on the
    pair average-pooled (3x3, stride 2) k - 1 times, so the coarse ones judge global layout
    and the fine one texture."""

    def __init__(self, cfg: DiscriminatorConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        for scale in range(1, cfg.scales + 1):
            setattr(self, f"scale{scale}", PatchGANDiscriminator(cfg, in_channels))

    def forward(self, pair: torch.Tensor) -> list[list[torch.Tensor]]:
        """pair (B, in, H, W) -> per scale, that PatchGAN's features with its logit map last."""
        outputs = []
        for scale in range(1, self.cfg.scales + 1):
            if scale > 1:
                pair = F.avg_pool2d(pair, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(getattr(self, f"scale{scale}")(pair))
        return outputs


def build_discriminator(cfg: DiscriminatorConfig, in_channels: int) -> nn.Module:
    """The discriminator cfg.kind names; in_channels = the generator's input + output channels."""
    if cfg.kind == "patch":
        return PatchGANDiscriminator(cfg, in_channels)
    if cfg.kind == "multiscale":
        return MultiScaleDiscriminator(cfg, in_channels)
    raise ValueError(f"discriminator kind must be one of {DISCRIMINATORS}, got {cfg.kind!r}")


def per_scale(outputs) -> list[list[torch.Tensor]]:
    """A discriminator's output as a list of scales (a PatchGAN is one scale)."""
    return outputs if isinstance(outputs[0], list) else [outputs]
