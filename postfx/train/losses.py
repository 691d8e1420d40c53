"""The pix2pix / pix2pixHD losses: the cGAN loss of a logit map (vanilla BCE or
least squares), its mean over a multi-scale discriminator's outputs, feature
matching, PairCritic (the discriminator's half of a step as one call), and the
temporal loss on consecutive frames reprojected with the renderer's motion."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models import per_scale


def gan_loss(logits: torch.Tensor, real: bool, kind: str) -> torch.Tensor:
    """How far a logit map is from saying "real" (or "fake") everywhere."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def mean_gan_loss(scales, real: bool, kind: str) -> torch.Tensor:
    """GAN loss of every scale's logit map (each scale's last output), averaged over scales."""
    return torch.stack([gan_loss(features[-1], real, kind) for features in scales]).mean()


def feature_matching(fake_scales, real_scales) -> torch.Tensor:
    """pix2pixHD's feature-matching loss: L1 between the discriminator's activations on the
    generated and on the real pair (real ones held constant), summed over a scale's layers,
    averaged over scales."""
    return torch.stack([sum(F.l1_loss(f, r.detach()) for f, r in zip(fake[:-1], real[:-1], strict=True))
                        for fake, real in zip(fake_scales, real_scales, strict=True)]).mean()


class PairCritic(nn.Module):
    """The discriminator's half of a step as one forward call: it judges the generated pair and
    the real pair. DistributedDataParallel reduces gradients once per forward, and a module
    called twice through it before one backward fails, so the two calls live inside one."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, condition, fake, target):
        return (per_scale(self.discriminator(torch.cat([condition, fake], 1))),
                per_scale(self.discriminator(torch.cat([condition, target], 1))))


def temporal_loss(out_now, out_before, in_now, in_before, grid, valid) -> torch.Tensor:
    """The output may change from frame to frame only as much as the input does: the mean,
    over the pixels with history (`valid`, (B, 1, h, w)), of the squared difference between
    the output's change and the input's, each the frame minus the previous frame reprojected
    with `grid` (grid_sample's, align_corners=True: where each pixel was)."""
    def change(now, before):
        return now - F.grid_sample(before, grid, mode="bilinear", padding_mode="border", align_corners=True)
    squared = (change(out_now, out_before) - change(in_now, in_before)).pow(2).mean(dim=1, keepdim=True)
    return (squared * valid).sum() / valid.sum().clamp(min=1.0)
