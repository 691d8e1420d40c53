"""Benchmark rows for generators trained elsewhere (issue 7): the PyTorch
pix2pix reference U-Net (num_downs 8, ngf 64, BatchNorm folded) and the
CycleGAN ResNet-9 (ngf 64, InstanceNorm per frame), random weights in the
reference structure (postfx.testing.generators), exported with
postfx.export_torch and run by the GL runtime, beside the same torch module.

    python3 benchmarks/bench_generators.py                       # 256^2, 720p, 1080p
    python3 benchmarks/bench_generators.py --sizes 256 --repeats 5 --backends gl-opt torch-cpu

Each cell: the median wall time of --repeats frames after one warm-up frame at
the smallest size (shaders compiled then; buffers are allocated per size, before
timing). The time-sliced column: how many frames the pass would spread one
result over at --budget-ms, cut from one profiled run at that size
(PostFX(frame_budget_ms=...) cuts the same way). Writes generators.json and
generators.md to --out.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from postfx.bench import report, runners
from postfx.bench.sizes import parse_sizes
from postfx.frame_size import SIZE_NAMES

NETS = ("unet256", "resnet9")
DEFAULT_BACKENDS = ("gl-opt", "gl-opt-fp16", "torch-cpu", "torch-cuda", "torch-cuda-fp16")
PROBE = (200, 150)       # the export's self-check at 256x256: cheap, and a multiple of both nets' pad_multiple


def torch_net(name: str):
    from postfx.testing.generators import resnet_generator, unet_generator
    if name == "unet256":
        return unet_generator(num_downs=8, ngf=64, norm="batch", dropout=True, seed=1)
    return resnet_generator(n_blocks=9, ngf=64, norm="instance", seed=2)


def sliced_steps(network, budget_ms: float) -> int:
    """Frames per result at budget_ms, from one profiled run of `network` (as PostFX cuts)."""
    from postfx.time_slice import cut
    seconds: list[float] = []
    network.run(dispatch_seconds=seconds)
    return len(cut(seconds, budget_ms / 1e3))


def measure(args) -> dict:
    from postfx import model_format as fmt
    from postfx.exporters.torch_export import export_torch
    from postfx.gl.context import headless_context
    from postfx.gl.programs import ProgramCache
    from postfx.gl.timing import timer_query

    ctx = headless_context()
    programs = ProgramCache(ctx)
    rows = []
    with runners.torch_settings(args.torch_threads) as settings:
        env = report.environment(ctx, settings)
        for name in args.nets:
            net = torch_net(name)
            model = export_torch(net, probe_size=PROBE, name=name)
            sizes = sorted(args.sizes, key=lambda s: s[0] * s[1])
            for backend_name in args.backends:
                backend = runners.BACKENDS[backend_name]
                why = runners.unavailable(backend)
                if why:
                    rows.append({"net": name, "backend": backend_name, "skipped": why})
                    continue
                warm = True
                for width, height in sizes:
                    run_h, run_w = fmt.run_size(model.graph, height, width)
                    frame = np.random.default_rng(0).uniform(-1, 1, (run_h, run_w, 3)).astype(np.float32)
                    row = {"net": name, "backend": backend_name, "precision": backend.precision,
                           "size": f"{width}x{height}", "run_size": f"{run_w}x{run_h}",
                           "params": model.parameters, "gmac": model.macs_per_pixel * run_h * run_w / 1e9}
                    try:
                        if backend.family == "gl":
                            runner = runners.GLRunner(ctx, programs, model, run_h, run_w, backend, frame,
                                                      timer_query(ctx))
                        else:
                            def make_net(name=name):
                                return torch_net(name).eval()
                            runner = runners.TorchRunner(ctx, make_net, model, run_h, run_w,
                                                         backend, frame)
                    except runners.Skip as e:
                        rows.append({**row, "skipped": str(e)})
                        continue
                    try:
                        if warm:
                            runner.run()          # compiles (GL) / picks kernels (cuDNN) once per backend
                            warm = False
                        times = [runner.run() for _ in range(args.repeats)]
                        ms = 1e3 * statistics.median(times)
                        row.update(ms=round(ms, 2), fps=round(1e3 / ms, 3),
                                   gflops=round(2 * row["gmac"] / (ms / 1e3), 1), frames=len(times))
                        if backend.family == "gl" and args.budget_ms:
                            row["frames_per_result"] = sliced_steps(runner.network, args.budget_ms)
                    finally:
                        runner.release()
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    programs.release()
    return {"environment": env, "budget_ms": args.budget_ms, "repeats": args.repeats,
            "load_average_at_end": report.load_average(), "rows": rows}


def markdown(record: dict) -> str:
    budget = record["budget_ms"]
    lines = [f"| net | backend | frame (run size) | GMAC | ms | fps | GFLOP/s | frames per result at {budget} ms |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in record["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['net']} | {r['backend']} | {r.get('size', '')} | | | | | skipped: {r['skipped']} |")
            continue
        lines.append(f"| {r['net']} | {r['backend']} | {r['size']} ({r['run_size']}) | {r['gmac']:.1f} | "
                     f"{r['ms']:.1f} | {r['fps']:.2f} | {r['gflops']:.1f} | {r.get('frames_per_result', '')} |")
    env = record["environment"]
    lines += ["", f"GL: {env['gl']['renderer']}; host: {env['host']['cpu']} ({env['host']['cores_usable']} cores); "
              f"load average {env['load_average_at_start']} at start, {record['load_average_at_end']} at end; "
              f"median of {record['repeats']} frame(s) per cell."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    p.add_argument("--sizes", type=parse_sizes, nargs="+", default=[[(256, 256)], [SIZE_NAMES["720p"]],
                                                                [SIZE_NAMES["1080p"]]],
                   help="WxH, a number (square), 720p, 1080p, 4k")
    p.add_argument("--backends", nargs="+", choices=sorted(runners.BACKENDS), default=list(DEFAULT_BACKENDS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-ms", type=float, default=16.0, help="time-sliced column's per-frame budget")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generators"))
    args = p.parse_args(argv)
    args.sizes = [s for group in args.sizes for s in group]
    start = time.perf_counter()
    record = measure(args)
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generators.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "generators.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
