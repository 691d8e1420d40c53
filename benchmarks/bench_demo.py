"""End-to-end frame time of the demo, headless (EGL): the town drawn, stylized by
the bundled style and the stylized frame read back to the host, as
`postfx demo --headless` does for every frame before it hands the frame to the
video encoder (encoding is not timed).

    python3 benchmarks/bench_demo.py                        # 640x360, scales 1, 0.75, 0.5, fp32 and fp16
    python3 benchmarks/bench_demo.py --size 1280x720 --no-fp16 --json demo.json
    python3 benchmarks/bench_demo.py --scales 1 --no-fp16 --temporal 0 0.5    # the temporal mode's cost

Timing: ctx.finish() + wall clock (timer queries read ~0 on llvmpipe). A frame
is timed from a finished pipeline to the stylized pixels in host memory; the
demo's own PassTimer splits it into scene and pass ms (it, too, waits with
ctx.finish() around each). Configurations take turns in blocks of frames,
round after round, so load from other processes hits them alike; the first
frame after each switch of configuration is not timed (a new internal scale
reallocates the pass's buffers). fps is 1000 / the median frame time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from postfx.bench.sizes import size_argument
from postfx.demo.frame import DemoFrame
from postfx.files import atomic_write
from postfx.gl.context import headless_context, renderer
from postfx.gl.readback import read_rgb
from postfx.styles import DEFAULT_STYLE

FPS = 30        # the demo's clock: frame i shows the fly-through at i / 30 s


def timed_frame(demo: DemoFrame, t: float) -> dict:
    ctx = demo.ctx
    ctx.finish()
    start = time.perf_counter()
    stylized = demo.render(demo.scene.camera_path(t), t)
    rendered = time.perf_counter()
    rgb = read_rgb(stylized)
    ctx.finish()
    end = time.perf_counter()
    assert rgb.shape == (stylized.size[1], stylized.size[0], 3)
    return {"frame_ms": (end - start) * 1e3, "scene_ms": demo.times.scene_ms, "pass_ms": demo.times.pass_ms,
            "readback_ms": (end - rendered) * 1e3, "source": demo.times.source}


def summary(samples: list[dict]) -> dict:
    frame = [s["frame_ms"] for s in samples]
    median = statistics.median(frame)
    return {"frames": len(samples), "frame_ms_median": median, "frame_ms_min": min(frame),
            "frame_ms_max": max(frame), "fps": 1000.0 / median,
            "scene_ms_median": statistics.median(s["scene_ms"] for s in samples),
            "pass_ms_median": statistics.median(s["pass_ms"] for s in samples),
            "readback_ms_median": statistics.median(s["readback_ms"] for s in samples),
            "timing": samples[-1]["source"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_argument, default=(640, 360), help="frame WxH (default 640x360)")
    parser.add_argument("--style", default=DEFAULT_STYLE, help=f"bundled style or model file ({DEFAULT_STYLE})")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.75, 0.5], help="internal scales")
    parser.add_argument("--no-fp16", action="store_true", help="fp32 activation storage only")
    parser.add_argument("--temporal", type=float, nargs="+", default=[0.0],
                        help="temporal-mode history weights to run (0 = off; default: off only)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames per configuration first")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="turns each configuration takes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.scales, args.temporal = list(dict.fromkeys(args.scales)), list(dict.fromkeys(args.temporal))
    if args.frames < args.rounds or args.warmup < 0:
        parser.error("--frames must be >= --rounds and --warmup >= 0")

    ctx = headless_context()
    storages = [False] if args.no_fp16 else [False, True]
    load_before = os.getloadavg()
    demos = {(fp16, weight): DemoFrame(ctx, args.size, style=args.style, fp16=fp16, temporal=weight)
             for fp16 in storages for weight in args.temporal}
    configs = [(scale, fp16, weight) for fp16 in storages for weight in args.temporal for scale in args.scales]
    first = next(iter(demos.values()))
    print(f"renderer:  {renderer(ctx)}, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} at start")
    print(f"demo:      {args.size[0]}x{args.size[1]}, style {first.style}, "
          f"{first.scene.triangles:,} scene triangles")
    print(f"frames:    {args.warmup} warm-up + {args.frames} timed per configuration, "
          f"in {args.rounds} rounds of blocks")

    frame_index = 0
    samples = {config: [] for config in configs}
    try:
        for scale, fp16, weight in configs:
            demo = demos[fp16, weight]
            demo.fx.internal_scale = scale
            start = time.perf_counter()
            for _ in range(args.warmup):
                timed_frame(demo, frame_index / FPS)
                frame_index += 1
            print(f"warm-up:   scale {scale:g} {'fp16' if fp16 else 'fp32'} temporal {weight:g}: {args.warmup} "
                  f"frames in {time.perf_counter() - start:.1f} s")
        for round_ in range(args.rounds):
            block = args.frames // args.rounds + (round_ < args.frames % args.rounds)
            for scale, fp16, weight in configs:
                demo = demos[fp16, weight]
                demo.fx.internal_scale = scale
                timed_frame(demo, frame_index / FPS)          # the switch: reallocates, not timed
                for _ in range(block):
                    frame_index += 1
                    samples[scale, fp16, weight].append(timed_frame(demo, frame_index / FPS))
    finally:
        for demo in demos.values():
            demo.release()
    load_after = os.getloadavg()

    rows = [dict(scale=scale, fp16=fp16, temporal=weight, **summary(samples[scale, fp16, weight]))
            for scale, fp16, weight in configs]
    print(f"\nload average {load_after[0]:.2f} at the end; timing: {rows[0]['timing']}\n")
    print("| internal scale | storage | temporal | frame ms median | min | max | fps | scene ms | pass ms "
          "| readback ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']:g} | {'fp16' if r['fp16'] else 'fp32'} | {r['temporal']:g} "
              f"| {r['frame_ms_median']:.1f} | {r['frame_ms_min']:.1f} | {r['frame_ms_max']:.1f} | {r['fps']:.1f} "
              f"| {r['scene_ms_median']:.1f} | {r['pass_ms_median']:.1f} | {r['readback_ms_median']:.1f} |")
    result = {"renderer": renderer(ctx), "cpus": os.cpu_count(), "size": list(args.size), "style": args.style,
              "warmup": args.warmup, "frames": args.frames, "rounds": args.rounds,
              "load_average_start": load_before[0], "load_average_end": load_after[0], "results": rows}
    if args.json is not None:
        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
