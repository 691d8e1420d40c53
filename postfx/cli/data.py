"""`postfx dataset` (render views, list and apply style filters) and `postfx eval`
(a model's quality on held-out pairs)."""
from __future__ import annotations

import json

from ..errors import InputError
from ..files import json_ready
from .text import printable


def add_dataset(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="render training data from the demo town and stylize it",
                              description="Render colour + depth datasets of the demo town, and make the style "
                                          "targets a network learns from.")
    actions = p.add_subparsers(metavar="ACTION", required=True)
    render = actions.add_parser("render", help="render random views (or sequences of frames) as colour + "
                                                "16-bit depth PNGs (+ motion)",
                                description="Render N random street-level and elevated views of the town: "
                                            "OUT/color/NNNNNN.png (RGB), OUT/depth/NNNNNN.png (16-bit normalized "
                                            "linear depth), OUT/views.json (cameras, near / far). With --sequences "
                                            "N --frames K: N runs of K consecutive frames along smooth camera "
                                            "paths with the traffic moving, each frame with OUT/motion/NNNNNN.npy "
                                            "(where each pixel was in the previous frame) and its sequence and "
                                            "frame in views.json. Deterministic per seed; render held-out sets "
                                            "with another seed.")
    render.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    count = render.add_mutually_exclusive_group(required=True)
    count.add_argument("--views", type=int, metavar="N", help="number of random views")
    count.add_argument("--sequences", type=int, metavar="N", help="number of sequences (with --frames)")
    render.add_argument("--frames", type=int, default=8, metavar="K",
                        help="frames per sequence, at --fps (default 8)")
    render.add_argument("--fps", type=float, default=30.0, help="frames per second of a sequence (default 30)")
    render.add_argument("--size", default="256", metavar="WxH",
                        help="frame size, WIDTHxHEIGHT or one number for a square (default 256)")
    render.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the views and the town (default 0)")
    render.add_argument("--town-seed", type=int, metavar="T", help="build the town from this seed instead")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    render.set_defaults(run=_cmd_dataset_render)

    stylize = actions.add_parser("stylize", help="make style targets: an offline filter over a rendered dataset",
                                 description="Run a style filter over every view of a dataset: OUT/target/NNNNNN.png "
                                             "and OUT/targets.json (the source, the style, its parameters, the "
                                             "filter's ms per frame). With --from DIR, take targets made elsewhere "
                                             "(one image per view, named like color/): every file is checked first "
                                             "and all problems are listed before anything is written.")
    # One list, so options may come between SRC and OUT (argparse would give an optional
    # positional nothing and refuse what follows the options); main() appends the rest.
    stylize.add_argument("paths", metavar="SRC OUT", nargs="*",
                         help="the dataset folder (`postfx dataset render` output), then the targets folder")
    stylize.add_argument("--style", metavar="NAME", help="style filter (--list shows them), or 'folder' with --from")
    stylize.add_argument("--from", dest="from_dir", metavar="DIR", help="targets made elsewhere (style 'folder')")
    stylize.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                         help="override one of the filter's parameters (repeatable; --list shows the defaults)")
    stylize.add_argument("--list", action="store_true", help="list the styles and their parameters, then exit")
    stylize.add_argument("--no-progress", action="store_true", help="no progress bar")
    stylize.set_defaults(run=_cmd_dataset_stylize, intermixed="paths")

    styles = actions.add_parser("styles", help="list the style filters and their parameters",
                                description="List the offline style filters `postfx dataset stylize` runs.")
    styles.set_defaults(run=_cmd_dataset_styles)


def _cmd_dataset_render(args) -> int:
    import time

    from ..dataset import render_sequences, render_views
    from ..frame_size import parse_size
    size = parse_size(args.size)
    start = time.perf_counter()
    options = dict(progress=not args.no_progress, town_seed=args.town_seed)
    if args.sequences is None:
        out = render_views(args.out, args.views, size, args.seed, **options)
        what = f"{args.views} views"
    else:
        out = render_sequences(args.out, args.sequences, args.frames, size, args.seed, fps=args.fps, **options)
        what = f"{args.sequences} sequences of {args.frames} frames"
    elapsed = time.perf_counter() - start
    print(f"{what} of {size[0]}x{size[1]} -> {out}  (seed {args.seed}, {elapsed:.1f} s)")
    return 0


def _cmd_dataset_styles(args) -> int:
    from ..train.filters import describe_filters
    print(describe_filters())
    return 0


def _cmd_dataset_stylize(args) -> int:
    import time

    from ..train.filters import FOLDER_STYLE, get_filter
    from ..train.pairs import load_targets_index, stylize_dataset, targets_from_folder
    if args.list:
        return _cmd_dataset_styles(args)
    if len(args.paths) != 2:
        raise InputError("postfx dataset stylize needs SRC (a rendered dataset) and OUT (the targets folder), got "
                         f"{len(args.paths)} path(s); --list shows the styles")
    args.src, args.out = args.paths
    style = args.style or (FOLDER_STYLE if args.from_dir else None)
    if style is None:
        raise InputError("pass --style NAME (--list shows the styles), or --from DIR for targets made elsewhere")
    start = time.perf_counter()
    if style == FOLDER_STYLE:
        if not args.from_dir:
            raise InputError(f"style {FOLDER_STYLE!r} takes its targets from a folder: pass --from DIR")
        if args.param:
            raise InputError(f"style {FOLDER_STYLE!r} has no parameters (--param {args.param[0]!r})")
        out = targets_from_folder(args.src, args.from_dir, args.out, progress=not args.no_progress)
        index = load_targets_index(out)
        print(f"{index['count']} targets from {args.from_dir} -> {out}  ({time.perf_counter() - start:.1f} s)")
        return 0
    if args.from_dir:
        raise InputError(f"--from DIR is for style {FOLDER_STYLE!r}; style {style!r} makes its own targets")
    style_filter = get_filter(style)
    fn, params = style_filter.bind(style_filter.parse_params(args.param))
    out = stylize_dataset(args.src, args.out, style, fn, params, progress=not args.no_progress)
    index = load_targets_index(out)
    width, height = index["size"]
    print(f"{index['count']} views of {width}x{height} stylized {style!r} -> {out}  (filter "
          f"{index['filter_ms_per_frame']['mean']:.1f} ms / frame mean, {time.perf_counter() - start:.1f} s in all)")
    return 0


def add_eval(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score models on held-out pairs: PSNR / SSIM, baselines, ms per frame",
                              description="Run each model through the GL pass on every held-out view (full frame, "
                                          "with depth for RGBD models) and compare with the filter's targets; "
                                          "print a markdown table with the unstylized-input and global "
                                          "colour-transfer baselines and the network's vs the filter's ms per frame.")
    p.add_argument("model", metavar="MODEL", help="a .safetensors model file or a bundled style name")
    p.add_argument("data", metavar="DATA", help="held-out targets folder (`postfx dataset stylize` output)")
    p.add_argument("--train", metavar="DIR", help="training targets folder: fits the colour-transfer baseline "
                                                  "(without it that baseline is reported missing)")
    p.add_argument("--compare", nargs="+", default=[], metavar="MODEL2", help="more models to score beside MODEL")
    p.add_argument("--plot", metavar="OUT.png", help="write PSNR / SSIM vs network depth (needs matplotlib)")
    p.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    p.add_argument("--samples", metavar="DIR", help="write input | network | target sheets of the first views")
    p.add_argument("--runs", type=int, default=10, metavar="N", help="frames timed per model (default 10)")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="frames run before timing (default 3)")
    p.add_argument("--temporal", action="store_true",
                   help="flicker instead: DATA holds targets of sequences (`dataset render --sequences`); the "
                        "warping error of the input, the filter per frame and each model, with PSNR / SSIM")
    p.add_argument("--pass-temporal", type=float, nargs="+", default=[0.0], metavar="A",
                   help="with --temporal: run each model through the pass's temporal mode with these history "
                        "weights (default 0: off), one row each")
    p.add_argument("--frame-budget-ms", type=float, metavar="MS",
                   help="with --temporal: the network spread over frames as PostFX(frame_budget_ms=MS) does it "
                        "(each sequence starts with the network run whole)")
    p.set_defaults(run=_cmd_eval)


def _cmd_eval_temporal(args) -> int:
    from ..files import atomic_write
    from ..train.temporal_eval import temporal_evaluate, temporal_table
    given = [flag for flag, value in (("--train", args.train), ("--plot", args.plot), ("--samples", args.samples))
             if value]
    if given:
        raise InputError(f"eval --temporal takes no {', '.join(given)} (the warping error needs no baseline fit, "
                         "plot or samples)")
    results = [temporal_evaluate(model, args.data, temporal=weight, frame_budget_ms=args.frame_budget_ms)
               for model in (args.model, *args.compare) for weight in args.pass_temporal]
    first = results[0]
    width, height = first["frame_size"]
    print(printable(f"{first['sequences']} held-out sequences of {first['frames']} frames, {width}x{height}, "
                    f"style {first['style']!r} ({args.data}); {first['frame_pairs']} frame pairs, "
                    f"{first['valid_fraction']:.0%} of pixels with history; {first['renderer']}\n"))
    print(printable(temporal_table(results)))
    print(printable("\n" + first["notes"]))
    if args.json:
        atomic_write(args.json, (json.dumps(json_ready(results), indent=1, allow_nan=False) + "\n").encode("utf-8"))
        print(f"figures -> {args.json}")
    return 0

def _cmd_eval(args) -> int:
    if args.temporal:
        return _cmd_eval_temporal(args)
    if args.frame_budget_ms is not None:
        raise InputError("--frame-budget-ms goes with --temporal (the flicker of a network spread over frames)")
    from ..files import atomic_write
    from ..train.evaluate import compare, markdown_table, plot_quality_vs_depth
    results = compare([args.model, *args.compare], args.data, args.train, runs=args.runs, warmup=args.warmup,
                      samples_dir=args.samples)
    first = results[0]
    width, height = first["frame_size"]
    print(printable(f"{first['views']} held-out views {width}x{height} of style {first['style']!r} "
                     f"({args.data}); {first['renderer']}\n"))
    print(printable(markdown_table(results)))
    ms = first["network_ms"]
    notes = [f"network ms: median of {ms['runs']} frames after {ms['warmup']} warm-up, {ms['what']}",
             "filter ms: the offline filter's mean wall clock per view, from the held-out targets.json"]
    notes += [f"{name}: missing ({reason})" for name, reason in first["baselines_missing"].items()]
    print(printable("\n" + "\n".join(notes)))
    if args.json:
        atomic_write(args.json, (json.dumps(json_ready(results), indent=1, allow_nan=False) + "\n").encode("utf-8"))
        print(f"figures -> {args.json}")
    if args.plot:
        print(f"plot -> {plot_quality_vs_depth(results, args.plot)}")
    return 0
