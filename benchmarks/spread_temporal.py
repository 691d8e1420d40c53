"""A network spread over frames (frame_budget_ms), with and without the temporal mode:
how far the picture shown is from what the network gives for the frame itself, along
the demo town's fly-through. PSNR of each against a pass that runs the whole network
every frame; the frames of the first complete spread result are skipped. "unmoved" is
the same temporal blend with the old result read in place (the numpy reference
postfx.temporal.resolve without offsets): what the chained offsets are worth.

    python3 benchmarks/spread_temporal.py                      # 384x224, ink, one dispatch a frame
    python3 benchmarks/spread_temporal.py --size 640x360 --budget-ms 20 --json spread.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import postfx
from postfx.bench.sizes import size_argument
from postfx.files import atomic_write, json_ready
from postfx.gl.context import headless_context
from postfx.gl.readback import read_rgb
from postfx.scene import Scene, SceneTarget, linear_depth01
from postfx.temporal import resolve

FPS = 30


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(1 / max(np.mean((image - reference) ** 2), 1e-12)))


def measure(style: str, size, budget_ms: float, weight: float, frames: int, start: float, seed: int) -> dict:
    ctx = headless_context()
    scene, target = Scene(ctx, seed=seed), SceneTarget(ctx, size, motion=True)
    passes = {"whole network each frame": postfx.PostFX(ctx, style),
              "spread": postfx.PostFX(ctx, style, frame_budget_ms=budget_ms),
              f"spread, temporal {weight:g}": postfx.PostFX(ctx, style, frame_budget_ms=budget_ms, temporal=weight)}
    unmoved_name = f"spread, temporal {weight:g}, unmoved"
    scores = {name: [] for name in [*list(passes)[1:], unmoved_name]}
    unmoved = None
    try:
        for k in range(frames):
            t = start + k / FPS
            camera, before = scene.camera_path(t), scene.camera_path(t - 1 / FPS)
            scene.render(target, camera, t, previous_camera=before, previous_time=t - 1 / FPS)
            shown = {name: read_rgb(fx.apply(target.color, target.depth, near=camera.near, far=camera.far,
                                           **({"motion_tex": target.motion} if fx.temporal else {}))) / 255.0
                     for name, fx in passes.items()}
            motion = target.read_motion()
            blend = (shown["spread"] if unmoved is None
                     else resolve(shown["spread"], unmoved[0], motion, unmoved[1], weight=weight))
            unmoved = (blend, linear_depth01(target.read_depth(), camera.near, camera.far))
            shown[unmoved_name] = blend
            if k > passes["spread"].frames_per_result:        # past the first spread result
                for name in scores:
                    scores[name].append(psnr(shown[name], shown["whole network each frame"]))
        per_result = {name: fx.frames_per_result for name, fx in passes.items() if fx.frame_budget_ms is not None}
    finally:
        for fx in passes.values():
            fx.release()
        target.release()
        scene.release()
    if len(set(per_result.values())) > 1:
        print(f"note: the spread passes timed their dispatches apart and cut them differently: {per_result}; "
              "compare only with the default (one dispatch a frame) budget")
    return {"style": style, "size": list(size), "budget_ms": budget_ms, "frames_per_result": per_result["spread"],
            "frames_per_result_by_pass": per_result,
            "frames": frames, "scored_frames": len(next(iter(scores.values()))), "start_s": start, "seed": seed,
            "fps": FPS, "psnr_db_vs_whole_network": {name: float(np.mean(v)) for name, v in scores.items()},
            "renderer": ctx.info["GL_RENDERER"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="ink")
    parser.add_argument("--size", type=size_argument, default=(384, 224), help="WxH (default 384x224)")
    parser.add_argument("--budget-ms", type=float, default=1e-6,
                        help="frame budget (default: so small that each dispatch is a frame's step)")
    parser.add_argument("--temporal", type=float, default=0.5)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--start", type=float, nargs="+", default=[5.0, 40.0], help="fly-through start times (s)")
    parser.add_argument("--seed", type=int, default=4, help="town seed")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    results = [measure(args.style, args.size, args.budget_ms, args.temporal, args.frames, start, args.seed)
               for start in args.start]
    for r in results:
        print(f"{r['style']} {r['size'][0]}x{r['size'][1]}, {r['frames_per_result']} frames per result, "
              f"fly-through from {r['start_s']:g} s ({r['scored_frames']} frames scored):")
        for name, value in r["psnr_db_vs_whole_network"].items():
            print(f"  {name}: {value:.2f} dB vs the whole network each frame")
    if args.json:
        atomic_write(args.json, (json.dumps(json_ready(results), indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
