"""A generator on whole frames, outside the training crops: one frame with the
runtime's pad-and-crop policy, the held-out quality figures, the sample grids."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .data import PairSet, to_uint8
from .metrics import psnr, ssim
from .models import UNetGenerator


def generate(generator: UNetGenerator, x: np.ndarray) -> np.ndarray:
    """The generator in eval mode on a whole frame, with the runtime's pad-and-crop policy
    (edge repeat at the bottom / right up to a multiple of 2**depth): x (C, H, W) float32 in
    [-1, 1] -> (3, H, W) float32 in [-1, 1]."""
    multiple = 2 ** generator.cfg.depth
    h, w = x.shape[1:]
    device = next(generator.parameters()).device
    padded = F.pad(torch.from_numpy(x)[None].to(device), (0, -w % multiple, 0, -h % multiple), mode="replicate")
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return generator(padded)[0, :, :h, :w].float().cpu().numpy()
    finally:
        generator.train(was_training)


def held_out_quality(generator: UNetGenerator, pairs: PairSet) -> dict:
    """Held-out quality of whole frames, quantized to 8 bits as the pass outputs them: mean PSNR
    and SSIM against the targets, and the unstylized input's PSNR for comparison."""
    in_channels = generator.cfg.in_channels
    scores = {"psnr": [], "ssim": [], "input": []}
    for index in range(len(pairs)):
        out = to_uint8(generate(generator, pairs.frame(index, in_channels)[0]))      # (H, W, 3)
        scores["psnr"].append(psnr(out, pairs.target[index]))
        scores["ssim"].append(ssim(out, pairs.target[index]))
        scores["input"].append(psnr(pairs.rgb[index], pairs.target[index]))

    def mean(values, digits):
        value = float(np.mean(values))
        return round(value, digits) if math.isfinite(value) else None      # metadata JSON has no inf
    return {"val_psnr_db": mean(scores["psnr"], 3), "val_ssim": mean(scores["ssim"], 4),
            "input_psnr_db": mean(scores["input"], 3), "val_pairs": len(pairs), "val_data": pairs.sources,
            "notes": "whole held-out frames through the torch generator (eval mode, pad-and-crop), quantized to "
                     "8 bits; PSNR / SSIM vs the style's targets (mean over frames); input_psnr_db: the "
                     "unstylized colour vs the targets"}


def sample_grid(generator: UNetGenerator, pairs: PairSet, indices) -> np.ndarray:
    """One row per pair: input colour | generator output | target -> (H, W, 3) uint8."""
    rows = []
    for index in indices:
        out = to_uint8(generate(generator, pairs.frame(index, generator.cfg.in_channels)[0]))
        rows.append(np.concatenate([pairs.rgb[index], out, pairs.target[index]], axis=1))
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, [(0, 0), (0, width - row.shape[1]), (0, 0)]) for row in rows])
