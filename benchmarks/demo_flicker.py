"""Frame-to-frame change along the demo's camera path: the mean absolute difference
between consecutive frames (8-bit RGB), of the stylized frames against the raw ones.
A coarse flicker figure that needs no motion vectors (it also counts real motion);
`postfx eval --temporal` gives the warping error, which does not.

    python3 benchmarks/demo_flicker.py                              # ink, without and with the temporal mode
    python3 benchmarks/demo_flicker.py --style ink old_ink.safetensors --temporal 0 0.5 --json out.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from postfx.bench.sizes import size_argument
from postfx.demo.frame import DemoFrame
from postfx.demo.headless import FPS
from postfx.files import atomic_write, json_ready
from postfx.gl.context import headless_context
from postfx.gl.readback import read_rgb


def mean_change(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(frames[:-1], frames[1:], strict=True)]))


def measure(style: str, temporal: float, frames: int, size) -> dict:
    """The demo's first `frames` frames at its frame rate, through DemoFrame as `postfx demo` renders them."""
    demo = DemoFrame(headless_context(), size, style=style, temporal=temporal)
    raw, stylized = [], []
    try:
        for i in range(frames):
            t = i / FPS
            stylized.append(read_rgb(demo.render(demo.scene.camera_path(t), t)).astype(np.float64))
            raw.append(demo.target.read_rgb().astype(np.float64))
    finally:
        demo.release()
    raw_change, stylized_change = mean_change(raw), mean_change(stylized)
    return {"style": style, "temporal": temporal, "frames": frames, "size": list(size), "fps": FPS,
            "raw_change": raw_change, "stylized_change": stylized_change, "ratio": stylized_change / raw_change}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", nargs="+", default=["ink"], help="bundled style names or model files")
    parser.add_argument("--temporal", nargs="+", type=float, default=[0.0, 0.5], help="history weights to run")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=size_argument, default=(320, 192), help="WxH (default 320x192)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be >= 2")
    results = [measure(style, weight, args.frames, args.size) for style in args.style for weight in args.temporal]
    print("| style | temporal | raw change | stylized change | ratio |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['style']} | {r['temporal']:g} | {r['raw_change']:.3f} | {r['stylized_change']:.3f} "
              f"| {r['ratio']:.2f} |")
    if args.json:
        atomic_write(args.json, (json.dumps(json_ready(results), indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
