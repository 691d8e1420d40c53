"""`postfx bench`: fps of the reference U-Net (postfx.testing.unet) per depth, width
and frame size, GL kernels against torch on the same weights, each against the
device's compute ceiling measured in the same run.

    postfx bench --quick                              # < 1 min on llvmpipe
    postfx bench --depths 1-6 --ngf 16 --sizes 256 720p --backends gl-opt gl-opt-fp16 torch-cpu
    postfx bench                                      # the whole grid (long on llvmpipe)
    postfx bench --whole-frame --no-grid              # demo scene + pass, fps per depth at 720p / 1080p
    postfx bench --ladder                             # the conv kernel ladder

Writes <label>.csv / .json / .md / .png (and whole_frame plots) under --out
(default benchmarks/results/<renderer>/ in a checkout, ./postfx-bench/
otherwise) and prints the markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from .sizes import parse_ints, parse_sizes

DESCRIPTION = __doc__.split("\n\n")[0].replace("\n", " ")
ALL_DEPTHS = [1, 2, 3, 4, 5, 6]
ALL_NGF = [8, 16, 32]
ALL_SIZES = [(256, 256), (1280, 720), (1920, 1080), (3840, 2160)]
QUICK = dict(depths=[2, 4], ngf=[16], sizes=[(256, 256)], backends=["gl-opt", "torch-cpu", "gl-naive"],
             repeat=3, warmup=1)
QUICK_NAIVE_DEPTH = 2             # --quick times gl-naive on one cell only: depth 2, 256x256
WHOLE_FRAME_NGF = 16
# runners.BACKENDS, named here so that building the CLI's parser imports no GL
# (tests/test_bench.py checks the two agree).
BACKEND_NAMES = ("gl-naive", "gl-tiled", "gl-blocked", "gl-cooperative", "gl-opt", "gl-opt-fp16", "gl-auto",
                 "gl-auto-fp16", "torch-cpu", "torch-cpu+copies", "torch-cuda", "torch-cuda+copies", "torch-cuda-fp16",
                 "torch-cuda-fp16+copies")


def _flat(values):
    return None if values is None else [v for group in values for v in group]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--depths", type=parse_ints, nargs="+", metavar="D",
                   help="U-Net depths, e.g. 1-6 or 2,4 (default 1-6)")
    p.add_argument("--ngf", type=parse_ints, nargs="+", metavar="N", help="first-level widths (default 8,16,32)")
    p.add_argument("--sizes", type=parse_sizes, nargs="+", metavar="WxH",
                   help="frames: WxH, 256 (square), 720p, 1080p, 4k (default 256 720p 1080p 4k)")
    p.add_argument("--backends", nargs="+", metavar="NAME",
                   help=f"any of: {' '.join(BACKEND_NAMES)} (default: gl-naive, gl-opt, gl-opt-fp16, gl-auto, "
                        "torch-cpu, and the four torch-cuda ones where CUDA is available). gl-<variant>: that kernel "
                        "variant everywhere it applies; gl-opt: the static choice; gl-auto: kernels measured per "
                        "layer (tuned outside the timed runs, fully unless $POSTFX_TUNING_BUDGET_S is set)")
    p.add_argument("--repeat", type=int, metavar="N", help="timed runs per cell (default 5)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed runs per cell after the first (default 2)")
    p.add_argument("--max-seconds-per-cell", type=float, default=10.0, metavar="S",
                   help="skip a cell whose first run takes longer, or is estimated to take over twice as long "
                        "from a smaller frame (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="depth 2,4 x ngf 16 x 256x256, gl-opt + torch-cpu, gl-naive at depth 2; 1 warm-up + 3 runs")
    p.add_argument("--whole-frame", action="store_true",
                   help=f"also time demo scene + pass per depth (ngf {WHOLE_FRAME_NGF}, optimized fp32)")
    p.add_argument("--whole-frame-sizes", type=parse_sizes, nargs="+", metavar="WxH",
                   help="frames of the whole-frame table (default 720p 1080p)")
    p.add_argument("--no-grid", action="store_true", help="skip the network grid (with --whole-frame)")
    p.add_argument("--ladder", action="store_true",
                   help="run the conv kernel ladder instead (postfx/bench/ladder.py; shapes of the first "
                        "--sizes frame, --repeat repeats)")
    p.add_argument("--out", metavar="DIR", help="output folder (default benchmarks/results/<renderer>/ in a "
                                                "checkout, ./postfx-bench/ otherwise)")
    p.add_argument("--label", metavar="NAME", help="output file stem (default 'quick' with --quick, else 'bench')")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="a note recorded with the results (repeatable), e.g. what else ran on the machine")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and input frame")
    p.add_argument("--torch-threads", type=int, metavar="N",
                   help="torch CPU threads (default: every usable core). Under other load, OpenMP's barriers "
                        "make a thread per core far slower than fewer threads")


def _resolve(args) -> None:
    """Fill what was not given from --quick or the full grid's defaults."""
    from postfx.errors import InputError
    from_quick = args.quick
    args.depths = _flat(args.depths) or (QUICK["depths"] if from_quick else ALL_DEPTHS)
    args.ngf = _flat(args.ngf) or (QUICK["ngf"] if from_quick else ALL_NGF)
    args.sizes = _flat(args.sizes) or (QUICK["sizes"] if from_quick else ALL_SIZES)
    args.whole_frame_sizes = _flat(args.whole_frame_sizes) or [(1280, 720), (1920, 1080)]
    if args.repeat is None:
        args.repeat = QUICK["repeat"] if from_quick else 5
    if args.warmup is None:
        args.warmup = QUICK["warmup"] if from_quick else 2
    if args.label is None:
        args.label = "quick" if from_quick else "bench"
    if args.repeat < 1 or args.warmup < 0:
        raise InputError("--repeat must be >= 1 and --warmup >= 0")
    if any(d < 1 for d in args.depths) or any(n < 1 for n in args.ngf):
        raise InputError("depths and ngf must be >= 1")
    if args.no_grid and not args.whole_frame:
        raise InputError("--no-grid leaves nothing to run; add --whole-frame")


def _backends(args) -> list[str]:
    from postfx.errors import InputError

    from .runners import BACKENDS, CUDA_BACKENDS, torch_or_none
    if args.backends:
        names = [n for group in args.backends for n in group.split(",") if n]
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise InputError(f"unknown backend(s) {unknown}; choose from {list(BACKENDS)}")
        return list(dict.fromkeys(names))
    if args.quick:
        return list(QUICK["backends"])
    names = ["gl-naive", "gl-opt", "gl-opt-fp16", "gl-auto"]
    torch = torch_or_none()
    if torch is not None:
        names.append("torch-cpu")
        if torch.cuda.is_available():
            names += list(CUDA_BACKENDS)
    return names


def _ladder(args) -> int:
    from . import ladder
    argv = ["--repeats", str(args.repeat if args.repeat is not None else 3)]
    if args.sizes:
        width, height = _flat(args.sizes)[0]
        argv += ["--size", f"{width}x{height}"]
    elif args.quick:
        argv += ["--quick"]
    ladder.main(argv)
    return 0


def _quick_keep(backend: str, depth: int, ngf: int, size) -> bool:
    return backend != "gl-naive" or depth == QUICK_NAIVE_DEPTH


def run(args) -> int:
    """`postfx bench` with parsed arguments; returns the exit status."""
    if args.ladder:
        return _ladder(args)
    _resolve(args)
    backends = _backends(args)
    from postfx.gl.context import headless_context, renderer

    from . import grid, report, runners

    ctx = headless_context()
    gl_renderer = renderer(ctx)
    out = Path(args.out) if args.out else report.default_out_dir(str(ctx.info.get("GL_RENDERER", gl_renderer)))
    out.mkdir(parents=True, exist_ok=True)
    uses_torch = not args.no_grid and any(
        runners.BACKENDS[n].family == "torch" and runners.unavailable(runners.BACKENDS[n]) is None for n in backends)
    with (runners.torch_settings(args.torch_threads) if uses_torch else contextlib.nullcontext()) as torch_settings:
        env = report.environment(ctx, torch_settings)
        print(f"renderer: {gl_renderer}")
        if torch_settings:
            print(f"torch {env['torch']['version']}: {torch_settings['num_threads']} threads"
                  + (f", CUDA on {env['torch']['device']}" if env["torch"]["cuda_available"] else ", no CUDA"))
        print(f"output: {out}")
        record = _measure(args, backends, ctx, env)
    record["notes"] = _notes(record, args, gl_renderer, grid, runners) + list(args.note)
    _write(record, out, args)
    return 0


def _measure(args, backends: list[str], ctx, env: dict) -> dict:
    from postfx.gl.programs import ProgramCache

    from . import grid, report
    started = time.perf_counter()
    record = {"schema": report.SCHEMA, "environment": env,
              "config": {"command": _command(args, backends), "depths": args.depths, "ngf": args.ngf,
                         "sizes": [list(s) for s in args.sizes], "backends": backends, "repeat": args.repeat,
                         "warmup": args.warmup, "max_seconds_per_cell": args.max_seconds_per_cell,
                         "quick": args.quick, "seed": args.seed, "grid": not args.no_grid,
                         "whole_frame": args.whole_frame, "whole_frame_ngf": WHOLE_FRAME_NGF,
                         "whole_frame_sizes": [list(s) for s in args.whole_frame_sizes] if args.whole_frame else None},
              "ceiling": None, "cells": [], "whole_frame": [], "notes": []}
    programs = ProgramCache(ctx)
    try:
        if not args.no_grid:
            ceiling = grid.Ceiling(ctx, programs)
            keep = _quick_keep if args.quick and not args.backends else None
            config = grid.GridConfig(depths=args.depths, ngfs=args.ngf, sizes=args.sizes, backends=backends,
                                     repeat=args.repeat, warmup=args.warmup, max_seconds=args.max_seconds_per_cell,
                                     seed=args.seed, keep=keep)
            print(f"grid: depths {args.depths} x ngf {args.ngf} x {len(args.sizes)} frame size(s) x {backends}")
            record["cells"] = grid.Grid(ctx, programs, config, ceiling).run()
            record["ceiling"] = ceiling.summary()
        if args.whole_frame:
            print(f"whole frame: depths {args.depths}, ngf {WHOLE_FRAME_NGF}, "
                  f"{', '.join(f'{w}x{h}' for w, h in args.whole_frame_sizes)}")
            record["whole_frame"] = grid.run_whole_frame(
                ctx, args.depths, args.whole_frame_sizes, ngf=WHOLE_FRAME_NGF, repeat=args.repeat,
                warmup=args.warmup, max_seconds=args.max_seconds_per_cell, seed=args.seed)
    finally:
        programs.release()
    record["load_average_at_end"] = report.load_average()
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    return record


def _write(record: dict, out: Path, args) -> None:
    """<label>.json / .csv / .md / .png (+ _whole_frame.csv / .png) under out; prints the markdown."""
    from . import grid, report
    stem = out / args.label
    written = [report.write_json(stem.with_suffix(".json"), record)]
    if record["cells"]:
        written.append(report.write_csv(stem.with_suffix(".csv"), record["cells"], grid.CELL_FIELDS))
    if record["whole_frame"]:
        written.append(report.write_csv(out / f"{args.label}_whole_frame.csv", record["whole_frame"],
                                        grid.WHOLE_FRAME_FIELDS))
    text = report.markdown(record)
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    written.append(stem.with_suffix(".md"))
    if not args.no_plot:
        plots = []
        if record["cells"]:
            plots.append(report.plot_grid(record["cells"], stem.with_suffix(".png")))
        if record["whole_frame"]:
            plots.append(report.plot_whole_frame(record["whole_frame"], out / f"{args.label}_whole_frame.png"))
        if any(p is None for p in plots):
            print("no plot: matplotlib is not installed (pip install matplotlib, or postfx[bench])")
        written += [p for p in plots if p is not None]
    print()
    print(text)
    print("written: " + ", ".join(str(p) for p in written))


def _command(args, backends: list[str]) -> str:
    """The resolved configuration as the command that repeats it."""
    def sizes(values):
        return ",".join(f"{w}x{h}" for w, h in values)

    def ints(values):
        return ",".join(map(str, values))

    words = ["postfx bench"] + (["--quick"] if args.quick else [])
    words += [f"--depths {ints(args.depths)}", f"--ngf {ints(args.ngf)}", f"--sizes {sizes(args.sizes)}"]
    if not (args.quick and not args.backends):          # --quick's own backends keep gl-naive to one cell
        words.append("--backends " + " ".join(backends))
    words += [f"--repeat {args.repeat}", f"--warmup {args.warmup}",
              f"--max-seconds-per-cell {args.max_seconds_per_cell:g}"]
    if args.no_grid:
        words.append("--no-grid")
    if args.whole_frame:
        words.append(f"--whole-frame --whole-frame-sizes {sizes(args.whole_frame_sizes)}")
    if args.seed:
        words.append(f"--seed {args.seed}")
    if args.torch_threads:
        words.append(f"--torch-threads {args.torch_threads}")
    if args.label != ("quick" if args.quick else "bench"):
        words.append(f"--label {args.label}")
    return " ".join(words)


def _notes(record, args, gl_renderer, grid, runners) -> list[str]:
    notes = [] if not record["cells"] else [
        "network cells: one reference U-Net frame per run on an input already where the backend reads it "
        "(GL: its input buffer; torch: a device tensor), output left on the device; wall clock after "
        "ctx.finish() / torch.cuda.synchronize(). The PostFX pass's own packing of colour + depth and its "
        "present step are not in these cells (the whole-frame table has them).",
        "fps, GFLOP/s and % of ceiling use the median of the timed runs; gflops_best in the CSV / JSON uses the "
        "min. FLOPs = 2 x the real multiply-adds of the run size (frames padded to a multiple of 2^depth, "
        "transposed convs counted in gather form, 4 of 16 taps).",
        "% of ceiling: GL cells only, against the best compute-ceiling probe (fp32 mat4*vec4 FMA chains in a "
        "compute shader) taken between the timing rounds of the same (depth, ngf, frame) group. It bounds "
        "compute shaders, not torch: oneDNN uses the CPU's full vector width, which llvmpipe's shaders do "
        "not reach, and cuDNN fp16 runs on tensor cores.",
        "gl-opt-fp16: fp16 activation storage, fp32 arithmetic. torch-cuda: strict fp32 (TF32 off for cuDNN "
        "and matmul, the GL kernels' arithmetic); torch-cuda-fp16: fp16 weights and activations. torch: "
        "channels-last, torch.inference_mode(), cudnn.benchmark on; warm-up runs absorb cuDNN's autotuning.",
    ]
    if any(c["copies"] for c in record["cells"]):
        notes.append("+copies cells: " + runners.COPIES + ".")
    if record["whole_frame"]:
        notes.append("whole frame: DemoFrame.render (demo town, then the PostFX pass from its colour + depth "
                     "textures) at one fixed view of the fly-through, ctx.finish() before and after; the pass "
                     "timer waits for the scene first, so the two do not overlap. 'scene only' draws without "
                     "the pass.")
    if grid.is_software_renderer(gl_renderer):
        notes.append(f"{gl_renderer} is a CPU renderer: GL and torch-cpu share the same cores, and GL timer "
                     "queries read ~0 (device_timer_median_ms in the CSV / JSON is not a timing there).")
    start, end = record["environment"].get("load_average_at_start"), record.get("load_average_at_end")
    cores = record["environment"]["host"]["cores_usable"]
    if start and start[0] > 0.5 * cores:
        notes.append(f"other load on the machine: 1-minute load average {start[0]} on {cores} cores before this "
                     f"run began ({end[0] if end else '?'} at its end, its own work included); absolute figures "
                     "are depressed, ratios within a group less so."
                     + (" torch-cpu suffers most: with a thread per core, every OpenMP barrier waits for a "
                        "thread that another process has descheduled (see --torch-threads)."
                        if any(c["backend"].startswith("torch-cpu") for c in record["cells"]) else ""))
    if args.quick:
        notes.append("--quick: a smoke-test subset, not a measurement to quote.")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="postfx bench", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from postfx.errors import PostFXError
    try:
        return run(args)
    except PostFXError as e:
        print(f"postfx bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
