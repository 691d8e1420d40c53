"""Generator and discriminator models (torch). Layers have stable flat names
(enc1, enc2, ..., dec1) that map one-to-one onto tensor names in the model file."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class UNetConfig:
    depth: int = 4              # levels down (= levels up); frames are padded to a multiple of 2**depth
    ngf: int = 16               # channels at the first level; doubled per level, capped at 8 * ngf
    in_channels: int = 4        # 4 = RGB + depth, 3 = RGB only
    out_channels: int = 3       # RGB
    norm: str = "none"          # "none" or "batch" (folded into the convs at export)
    dropout: float = 0.0        # dropout on the deepest decoder levels (pix2pix uses 0.5); identity at eval

    def width(self, level: int) -> int:
        """Channels produced by encoder level `level` (1-based)."""
        return min(self.ngf * 2 ** (level - 1), 8 * self.ngf)


class UNetGenerator(nn.Module):
    """The reference family (performance.md): d x [conv 4x4/s2/p1 + LeakyReLU(0.2)] down,
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
