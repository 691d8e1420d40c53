"""Frame time of the GL runtime on the reference U-Net (postfx.testing.unet), naive
vs optimized kernels, fp32 and fp16 storage, against the device's compute
ceiling measured in the same run.

    python3 benchmarks/bench_runtime.py                 # 1280x720, depth 4, ngf 16
    python3 benchmarks/bench_runtime.py --quick         # 256x256, fewer repeats
    python3 benchmarks/bench_runtime.py --layers        # plus a per-layer breakdown

Timing: ctx.finish() + wall clock per frame (timer queries read ~0 on
llvmpipe). Configurations and ceiling probes are interleaved, repeat after
repeat, so load from other processes hits them alike; frame times are the min /
median / max over repeats, the ceiling is the best probe. FLOPs count 2 x the
real multiply-adds (Model.macs_per_pixel x pixels: no padding lanes, only the 4
taps per output of a transposed conv).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from postfx import model_format as fmt
from postfx import reference
from postfx.bench.ceiling import measure_ceiling
from postfx.bench.sizes import size_argument
from postfx.gl.context import headless_context, renderer
from postfx.gl.network import GLNetwork
from postfx.gl.programs import ProgramCache
from postfx.testing.unet import layer_macs, reference_unet

CONFIGS = (("naive", False), ("naive", True), ("optimized", False), ("optimized", True))


def time_frame(network: GLNetwork) -> float:
    network.ctx.finish()
    start = time.perf_counter()
    network.run()
    network.ctx.finish()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_argument, default=(1280, 720), help="frame WxH (default 1280x720)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed frames per configuration")
    parser.add_argument("--quick", action="store_true", help="256x256 and 2 repeats unless given")
    parser.add_argument("--layers", action="store_true", help="per-layer breakdown (naive and optimized fp32)")
    args = parser.parse_args(argv)
    if args.quick:
        if "--size" not in (argv or sys.argv):
            args.size = (256, 256)
        if "--repeats" not in (argv or sys.argv):
            args.repeats = 2

    ctx = headless_context()
    programs = ProgramCache(ctx)
    model = reference_unet(args.depth, args.ngf)
    width, height = args.size
    run_h, run_w = fmt.run_size(model.graph, height, width)
    flops = 2 * model.macs_per_pixel * run_h * run_w
    print(f"renderer:  {renderer(ctx)}")
    print(f"model:     reference U-Net depth {args.depth} ngf {args.ngf}, RGBD -> RGB, "
          f"{model.macs_per_pixel:,.0f} MACs per pixel")
    print(f"frame:     {width}x{height} (run size {run_w}x{run_h}): {flops / 1e9:.2f} GFLOP per frame")

    frame = reference.to_lanes(np.random.default_rng(0).uniform(-1, 1, (run_h, run_w, 4)).astype(np.float32))
    networks = {}
    for kernels, fp16 in CONFIGS:
        start = time.perf_counter()
        network = GLNetwork(ctx, model, kernels=kernels, fp16=fp16, programs=programs)
        network.resize(run_h, run_w)
        network.write_tensor(fmt.INPUT_TENSOR, frame)
        time_frame(network)
        networks[kernels, fp16] = network
        print(f"warm-up:   {kernels:9} {'fp16' if fp16 else 'fp32'}: compile + first frame "
              f"{time.perf_counter() - start:.1f} s")

    times = {key: [] for key in networks}
    ceilings = []
    for _ in range(args.repeats):
        ceilings.append(measure_ceiling(ctx, programs=programs, seconds=0.1)["gflops"])
        for key, network in networks.items():
            times[key].append(time_frame(network))
    ceilings.append(measure_ceiling(ctx, programs=programs, seconds=0.1)["gflops"])
    ceiling = max(ceilings)

    print(f"\ncompute ceiling (postfx/bench/ceiling.py, best of {len(ceilings)} probes between frames): "
          f"{ceiling:.1f} GFLOP/s (range {min(ceilings):.1f}-{max(ceilings):.1f})")
    print(f"{args.repeats} timed frames per configuration, interleaved\n")
    print(f"{'kernels':10} {'storage':7} {'min ms':>9} {'median ms':>10} {'max ms':>9} {'GFLOP/s':>8} "
          f"{'vs naive':>9} {'of ceiling':>10}")
    naive_best = {fp16: min(times["naive", fp16]) for fp16 in (False, True)}
    for (kernels, fp16), samples in times.items():
        best = min(samples)
        rate = flops / best / 1e9
        print(f"{kernels:10} {'fp16' if fp16 else 'fp32':7} {best * 1e3:9.1f} {statistics.median(samples) * 1e3:10.1f} "
              f"{max(samples) * 1e3:9.1f} {rate:8.2f} {naive_best[fp16] / best:8.1f}x {rate / ceiling:9.1%}")

    if args.layers:
        macs = layer_macs(model, run_h, run_w)
        profiles = {}
        for kernels in ("naive", "optimized"):
            profile = {}
            networks[kernels, False].run(profile=profile)
            profiles[kernels] = profile
        print("\nper layer, fp32, one frame each (each dispatch waited for):")
        print(f"{'layer':8} {'naive ms':>9} {'GFLOP/s':>8} {'optimized ms':>13} {'GFLOP/s':>8}  variant")
        for layer in model.graph.layers:
            row = f"{layer.name:8}"
            for kernels in ("naive", "optimized"):
                seconds = profiles[kernels].get(layer.name, 0.0)
                rate = 2 * macs.get(layer.name, 0.0) / seconds / 1e9 if seconds else 0.0
                row += f" {seconds * 1e3:{9 if kernels == 'naive' else 13}.1f} {rate:8.2f}"
            shaders = sorted({d.shader for d in networks["optimized", False].dispatches if d.layer == layer.name})
            print(row + "  " + ", ".join(shaders))

    for network in networks.values():
        network.release()
    programs.release()


if __name__ == "__main__":
    main()
