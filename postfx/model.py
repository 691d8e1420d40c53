"""The Model: a validated model file in memory (model_file.py reads and writes it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import model_format as fmt


@dataclass
class Model:
    """A validated model file in memory: the graph and its packed tensors."""
    meta: dict                              # the parsed "postfx" JSON document
    graph: fmt.Graph
    tensors: dict[str, np.ndarray]          # packed float32, shapes from fmt.expected_tensors
    path: str | None = None

    @property
    def name(self) -> str:
        return self.meta.get("name") or (Path(self.path).stem if self.path else "model")

    @property
    def input_channels(self) -> int:
        return self.graph.input_channels

    @property
    def uses_depth(self) -> bool:
        return "depth" in self.meta["input"]["channels"]

    @property
    def is_style(self) -> bool:
        """RGB / RGBD in, RGB out at the frame size: usable by PostFX and stylize()."""
        return (tuple(self.meta["input"]["channels"]) in (fmt.RGB, fmt.RGBD)
                and tuple(self.meta["output"]["channels"]) == fmt.RGB
                and self.graph.tensors[self.graph.output].scale == (1, 1))

    @property
    def input_range(self) -> tuple[float, float]:
        lo, hi = self.meta["input"]["range"]
        return float(lo), float(hi)

    @property
    def output_range(self) -> tuple[float, float]:
        lo, hi = self.meta["output"]["range"]
        return float(lo), float(hi)

    @property
    def output_channels(self) -> int:
        return self.graph.tensors[self.graph.output].channels

    @property
    def pad_multiple(self) -> int:
        return self.graph.pad_multiple

    def layer_weights(self, layer: fmt.Layer) -> tuple[np.ndarray, np.ndarray]:
        """A conv's packed (weight, bias); an instance_norm's (scale, shift)."""
        first, second = fmt.layer_tensor_kinds(layer)
        return self.tensors[f"{layer.name}.{first}"], self.tensors[f"{layer.name}.{second}"]

    @property
    def norm_semantics(self) -> str | None:
        """What BatchNorm means in this file: "eval" (folded), "frame" (per-frame
        statistics), or None when it declares nothing (model_format.py)."""
        return ((self.meta.get("provenance") or {}).get("norm") or {}).get("semantics")

    @property
    def parameters(self) -> int:
        return fmt.parameter_count(self.graph)

    @property
    def macs_per_pixel(self) -> float:
        return fmt.macs_per_pixel(self.graph)

    def describe(self) -> str:
        """Human-readable summary: what `postfx info` prints."""
        g = self.graph
        inp = self.meta["input"]
        lines = [f"model      {self.name}  ({self.path or 'in memory'})",
                 f"format     {fmt.FORMAT_NAME} v{self.meta['format_version']}",
                 f"input      {', '.join(inp['channels'])}  -> {inp['range']}"
                 + ("  (sRGB-encoded colour)" if "r" in inp["channels"] else "")]
        if self.uses_depth:
            lines.append("depth      linear view depth, (z - near) / (far - near) clamped to [0, 1] "
                         f"-> {inp['range']}")
        out = self.meta["output"]
        lines += [f"output     {', '.join(out['channels'])} from {out['tensor']!r} in {out['range']}",
                  f"frames     padded to a multiple of {g.pad_multiple} (edge repeat), cropped back",
                  f"params     {self.parameters:,}",
                  f"MACs/px    {self.macs_per_pixel:,.0f}  ({self.macs_per_pixel * 1280 * 720 / 1e9:.2f} GMAC "
                  "per 1280x720 frame)", "", "layers:"]
        for layer in g.layers:
            t = g.tensors[layer.name]
            desc = f"  {layer.name:<14} {layer.op:<17} <- {', '.join(layer.inputs):<22}"
            if layer.op in fmt.CONV_OPS:
                desc += (f" {sum(fmt.in_segments(layer, g.tensors)):>4} -> {layer.out_channels:<4} "
                         f"k{layer.kernel} s{layer.stride} p{layer.padding}")
                if layer.padding_mode != "zeros":
                    desc += f" {layer.padding_mode}"
            elif layer.op == "upsample":
                desc += f" x{layer.scale} {layer.mode}"
            elif layer.op == "avg_pool2d":
                desc += (f" {t.channels} ch, mean k{layer.kernel} s{layer.stride} p{layer.padding}"
                         + ("" if layer.count_include_pad else " (taps inside only)"))
            elif layer.op == "instance_norm":
                desc += f" {t.channels} ch, per-frame stats ({layer.origin}, eps {layer.eps:g})"
            else:
                desc += f" {t.channels} ch"
            if layer.activation != "none":
                desc += f"  + {layer.activation}"
            num, den = t.scale
            desc += f"  @ {'1' if num == den else f'{num}/{den}'}"
            lines.append(desc)
        prov = self.meta.get("provenance") or {}
        if prov:
            lines += ["", "provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items())]
        return "\n".join(lines)


# --- JSON that refuses what Python's json module lets through -----------------
