"""The `postfx` command line.

Each subcommand is two functions: `_add_<name>(subparsers)` declares its
arguments and `_cmd_<name>(args) -> int` runs it; add the `_add_` function to
COMMANDS. Commands that need torch import it inside `_cmd_<name>`, through
postfx.train / postfx.exporters, so `postfx info` works without torch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import InputError, PostFXError


def _printable(text: str) -> str:
    # Metadata is text from a file: keep terminal escape sequences out of the output.
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def _section(title: str, value) -> list[str]:
    if not value:
        return []
    if not isinstance(value, dict):
        return ["", f"{title}: {json.dumps(value)}"]
    width = max(len(str(k)) for k in value)
    return ["", f"{title}:"] + [f"  {k:<{width}}  {v if isinstance(v, (str, int, float)) else json.dumps(v)}"
                                for k, v in value.items()]


# --- info ------------------------------------------------------------------------

def _add_info(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a model file: graph, parameters, cost, input contract; "
                                           "--gl: the GL renderer, its limits and the kernel per layer",
                              description="Validate a model file (or bundled style) and describe it. With --gl, "
                                          "describe the headless GL context postfx gets here and, given a model, "
                                          "the kernel each conv layer runs at --size (tuned, cached or static; "
                                          "nothing is timed).")
    p.add_argument("model", metavar="FILE_OR_STYLE", nargs="?",
                   help="a .safetensors model file or a bundled style name")
    p.add_argument("--json", action="store_true", help="print the file's metadata as JSON instead")
    _add_gl_arguments(p)
    p.add_argument("--gl", action="store_true", help="the renderer, limits, extensions, EGL devices, kernel cache")
    p.set_defaults(run=_cmd_info)


def _add_gl_arguments(p) -> None:
    p.add_argument("--size", default="1280x720", help="frame WxH the kernels are for (default 1280x720)")
    p.add_argument("--fp16", action="store_true", help="fp16 activation storage")
    p.add_argument("--device", type=int, default=None,
                   help="EGL device index of the headless context (default $POSTFX_EGL_DEVICE, else EGL's default)")


def _network_at(args, model, tuner):
    """A kernels="auto" GLNetwork of `model` in the headless context, resized for --size."""
    from . import model_format as fmt
    from .dataset import parse_size
    from .gl.context import headless_context
    from .gl.network import GLNetwork
    width, height = parse_size(args.size)
    ctx = headless_context(args.device)
    network = GLNetwork(ctx, model, kernels="auto", fp16=args.fp16, tuner=tuner)
    try:
        network.resize(*fmt.run_size(model.graph, height, width))
    except BaseException:
        network.release()
        raise
    return network


def _cmd_info(args) -> int:
    from .model_file import load
    if args.gl:
        return _cmd_info_gl(args)
    if args.model is None:
        raise InputError("postfx info needs a model file or style name (or --gl)")
    model = load(args.model)
    if args.json:
        print(json.dumps(model.meta, indent=2, sort_keys=True))
        return 0
    lines = [model.describe()]
    lines += _section("training", model.meta.get("training"))
    lines += _section("quality", model.meta.get("quality"))
    print(_printable("\n".join(lines)))
    return 0


def _cmd_info_gl(args) -> int:
    from .gl.context import headless_context
    from .gl.report import gl_lines, kernel_lines
    from .gl.tuner import Tuner
    from .model_file import load
    lines = gl_lines(headless_context(args.device))
    if args.model is not None:
        tuner = Tuner(budget_s=0)           # what the cache knows, else the static choice: nothing timed
        network = _network_at(args, load(args.model), tuner)
        try:
            lines += [""] + kernel_lines(network, tuner.reports)
        finally:
            network.release()
    print(_printable("\n".join(lines)))
    return 0


# --- tune ------------------------------------------------------------------------

def _add_tune(subparsers) -> None:
    p = subparsers.add_parser("tune", help="choose each layer's kernel by timing them at a frame size, ahead of time",
                              description="Time every candidate kernel of each conv layer at the run size of a "
                                          "WxH frame on this machine's GL driver, check the fastest against the "
                                          "naive kernel, and keep the choice in the kernel cache, so PostFX "
                                          "(kernels='auto') starts without timing.")
    p.add_argument("model", metavar="FILE_OR_STYLE", help="a .safetensors model file or a bundled style name")
    _add_gl_arguments(p)
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of tuning at most (default: no limit); layers not reached keep the static choice")
    p.add_argument("--retune", action="store_true", help="time again even where the cache holds a choice")
    p.set_defaults(run=_cmd_tune)


def _cmd_tune(args) -> int:
    import math
    import time

    from .gl.kernel_cache import KernelCache
    from .gl.report import kernel_lines, shown_path
    from .gl.tuner import Tuner
    from .model_file import load
    if args.budget is not None and not args.budget >= 0:
        raise InputError(f"--budget must be >= 0 seconds, got {args.budget}")
    cache = KernelCache()
    if args.retune:
        cache.entries.clear()
    tuner = Tuner(budget_s=math.inf if args.budget is None else args.budget, cache=cache)
    started = time.perf_counter()
    network = _network_at(args, load(args.model), tuner)
    try:
        lines = kernel_lines(network, tuner.reports)
    finally:
        network.release()
    lines.append(f"{tuner.timed_runs} timed runs in {time.perf_counter() - started:.1f} s; "
                 f"choices kept in {shown_path(cache.path)}")
    print(_printable("\n".join(lines)))
    return 0


# --- stylize ---------------------------------------------------------------------

def _add_stylize(subparsers) -> None:
    from .gl.conv_kernels import KERNEL_CHOICES
    from .styles import DEFAULT_STYLE
    p = subparsers.add_parser("stylize", help="stylize an image file through the GL pass",
                              description="Run a style on an image (and its depth map) through the same "
                                          "PostFX pass a renderer uses, in a headless EGL context. Images: 8-bit "
                                          "grey / RGB / RGBA / palette or 16-bit grey, EXIF orientation applied; "
                                          "depth: 8- or 16-bit grey or float TIFF in [0, 1] (postfx.image_io).")
    p.add_argument("image", help="input picture (PNG, JPEG, ...)")
    p.add_argument("-o", "--out", required=True, help="output picture (.png, .jpg, .bmp, .tif, .webp, .ppm, .tga)")
    p.add_argument("--depth", help="depth map: normalized linear depth (0 near, 1 far) as 16-bit PNG (x 65535), "
                                   "as `postfx dataset render` writes, 8-bit grey or a float TIFF")
    p.add_argument("--model", default=DEFAULT_STYLE, help=f"bundled style name or model file (default {DEFAULT_STYLE})")
    p.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = fully stylized")
    p.add_argument("--scale", type=float, default=1.0, help="internal scale: run the network at this fraction")
    p.add_argument("--fp16", action="store_true", help="fp16 activation storage")
    p.add_argument("--kernels", default="auto", choices=KERNEL_CHOICES,
                   help="conv kernels: auto (measured per layer, the default) or one variant everywhere")
    p.add_argument("--tuning-budget", type=float, default=0.0, metavar="S",
                   help="seconds --kernels auto may spend timing kernels for this size (default 0: the cached "
                        "or static choice; `postfx tune` times them once for good)")
    p.add_argument("--overwrite", action="store_true", help="allow -o to be the input picture or depth map")
    p.set_defaults(run=_cmd_stylize)


def _cmd_stylize(args) -> int:
    import time

    from . import image_io
    from .api import Stylizer
    # Everything that can be checked before any work: the output, both headers.
    out_format = image_io.output_format(args.out, inputs=(args.image, args.depth), overwrite=args.overwrite)
    header = image_io.probe(args.image, "image")
    if args.depth:
        depth_header = image_io.probe(args.depth, "depth map")
        if (depth_header.width, depth_header.height) != (header.width, header.height):
            raise InputError(f"{args.depth}: the depth map is {depth_header.width}x{depth_header.height}, the "
                             f"image {header.width}x{header.height}; they must match")
    start = time.perf_counter()
    with Stylizer(args.model, strength=args.strength, internal_scale=args.scale, fp16=args.fp16,
                  kernels=args.kernels, tuning_budget_s=args.tuning_budget) as run:
        run.check_size(header.width, header.height)         # from the header: nothing decoded yet
        rgb = image_io.read_color(args.image, what="image")
        depth = image_io.read_depth(args.depth, size=rgb.shape[1::-1]) if args.depth else None
        out = run(rgb, depth)
        name = run.model.name
    elapsed = time.perf_counter() - start
    image_io.write_rgb(args.out, out, out_format)
    print(f"{args.image} -> {args.out}  ({rgb.shape[1]}x{rgb.shape[0]}, style {name!r}, "
          f"{elapsed * 1000:.0f} ms including context set-up)")
    return 0


# --- dataset ---------------------------------------------------------------------

def _add_dataset(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="render training data from the demo town and stylize it",
                              description="Render colour + depth datasets of the demo town, and make the style "
                                          "targets a network learns from.")
    actions = p.add_subparsers(metavar="ACTION", required=True)
    render = actions.add_parser("render", help="render random views as colour + 16-bit depth PNGs",
                                description="Render N random street-level and elevated views of the town: "
                                            "OUT/color/NNNNNN.png (RGB), OUT/depth/NNNNNN.png (16-bit normalized "
                                            "linear depth), OUT/views.json (cameras, near / far). Deterministic "
                                            "per seed; render held-out sets with another seed.")
    render.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    render.add_argument("--views", type=int, required=True, metavar="N", help="number of views")
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

    from .dataset import parse_size, render_views
    size = parse_size(args.size)
    start = time.perf_counter()
    out = render_views(args.out, args.views, size, args.seed, progress=not args.no_progress,
                       town_seed=args.town_seed)
    elapsed = time.perf_counter() - start
    print(f"{args.views} views of {size[0]}x{size[1]} -> {out}  (seed {args.seed}, {elapsed:.1f} s)")
    return 0


def _cmd_dataset_styles(args) -> int:
    from .train.filters import describe_filters
    print(describe_filters())
    return 0


def _cmd_dataset_stylize(args) -> int:
    import time

    from .train.filters import FOLDER_STYLE, get_filter
    from .train.pairs import load_targets_index, stylize_dataset, targets_from_folder
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


# --- demo ------------------------------------------------------------------------

def _add_demo(subparsers) -> None:
    from .styles import DEFAULT_STYLE
    p = subparsers.add_parser("demo", help="the demo town stylized live, in a window or headless",
                              description="Open a window showing the demo scene with a style applied every "
                                          "frame, or (--headless) render frames to a video / PNGs.")
    p.add_argument("--headless", action="store_true", help="render through EGL with no display")
    p.add_argument("--frames", type=int, default=None,
                   help="frames to draw, then exit (headless default 120; the window runs until closed)")
    p.add_argument("--screenshot", metavar="PNG", help="window: save the last frame drawn (with --frames) as PNG")
    p.add_argument("--size", default="1280x720", metavar="WxH", help="frame / window size (default 1280x720)")
    p.add_argument("--out", default="demo.mp4", help="headless output: .mp4 file or a folder for PNG frames")
    p.add_argument("--style", default=DEFAULT_STYLE, help=f"bundled style or model file (default {DEFAULT_STYLE})")
    p.add_argument("--scale", type=float, default=1.0, help="internal scale of the network (keys 1-4 in the window)")
    p.add_argument("--strength", type=float, default=1.0, help="effect strength 0..1")
    p.add_argument("--seed", type=int, default=0, help="town seed")
    p.add_argument("--fp16", action="store_true", help="fp16 activation storage")
    p.add_argument("--frame-budget-ms", type=float, default=None, metavar="MS",
                   help="time-slice a network too slow for one frame: at most MS of its work per frame, "
                        "showing the last complete result meanwhile")
    p.set_defaults(run=_cmd_demo)


def _cmd_demo(args) -> int:
    from .dataset import parse_size
    size = parse_size(args.size)
    options = dict(style=args.style, seed=args.seed, internal_scale=args.scale, strength=args.strength,
                   fp16=args.fp16, frame_budget_ms=args.frame_budget_ms)
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if args.screenshot is not None:
        if args.headless or args.frames is None:
            raise InputError("--screenshot saves the window's last frame: use it with --frames N and no --headless "
                             "(headless runs write their frames and a contact sheet to --out)")
        from .image_io import output_format
        if output_format(args.screenshot, what="screenshot") != "PNG":
            raise InputError(f"--screenshot {args.screenshot}: give a .png file")
    if args.headless:
        from .demo.headless import render_headless
        summary = render_headless(120 if args.frames is None else args.frames, size, args.out, **options)
        print(f"{summary['frames']} frames {summary['size'][0]}x{summary['size'][1]} -> {summary['out']} "
              f"and {summary['contact_sheet']}; median scene {summary['scene_ms_median']:.1f} ms, pass "
              f"{summary['pass_ms_median']:.1f} ms, {summary['fps']:.1f} fps end to end")
        return 0
    from .demo.window import DemoWindow
    window = DemoWindow(size, **options)
    try:
        drawn = window.run(args.frames, Path(args.screenshot) if args.screenshot else None)
    finally:
        window.close()
    if args.frames is not None:
        print(f"{drawn} frames drawn" + (f"; the last in {args.screenshot}" if args.screenshot else ""))
    return 0


# --- eval ------------------------------------------------------------------------

def _add_eval(subparsers) -> None:
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
    p.set_defaults(run=_cmd_eval)


def _json_ready(value):
    # inf PSNR (a network that matches its target exactly) is not JSON: write null.
    import math
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _cmd_eval(args) -> int:
    from .files import atomic_write
    from .train.evaluate import compare, markdown_table, plot_quality_vs_depth
    results = compare([args.model, *args.compare], args.data, args.train, runs=args.runs, warmup=args.warmup,
                      samples_dir=args.samples)
    first = results[0]
    width, height = first["frame_size"]
    print(_printable(f"{first['views']} held-out views {width}x{height} of style {first['style']!r} "
                     f"({args.data}); {first['renderer']}\n"))
    print(_printable(markdown_table(results)))
    ms = first["network_ms"]
    notes = [f"network ms: median of {ms['runs']} frames after {ms['warmup']} warm-up, {ms['what']}",
             "filter ms: the offline filter's mean wall clock per view, from the held-out targets.json"]
    notes += [f"{name}: missing ({reason})" for name, reason in first["baselines_missing"].items()]
    print(_printable("\n" + "\n".join(notes)))
    if args.json:
        atomic_write(args.json, (json.dumps(_json_ready(results), indent=1, allow_nan=False) + "\n").encode("utf-8"))
        print(f"figures -> {args.json}")
    if args.plot:
        print(f"plot -> {plot_quality_vs_depth(results, args.plot)}")
    return 0


# --- train -----------------------------------------------------------------------

# --option -> TrainConfig field ("generator.depth": a field of the nested config)
_TRAIN_OPTIONS = {"depth": "generator.depth", "ngf": "generator.ngf", "norm": "generator.norm",
                  "dropout": "generator.dropout", "in_channels": "generator.in_channels",
                  "disc": "discriminator.kind", "ndf": "discriminator.ndf", "disc_layers": "discriminator.layers",
                  "disc_norm": "discriminator.norm", "scales": "discriminator.scales",
                  "fm": "feature_matching", "gan_loss": "gan_loss", "l1": "l1_weight", "steps": "steps",
                  "crop": "crop", "batch": "batch", "lr": "lr", "beta1": "beta1", "decay_from": "decay_from",
                  "seed": "seed", "device": "device", "threads": "threads", "checkpoint_every": "checkpoint_every",
                  "sample_every": "sample_every", "log_every": "log_every", "max_nonfinite": "max_nonfinite",
                  "val": "val", "name": "name", "run_dir": "run_dir"}


def _add_train(subparsers) -> None:
    from .train.config import DISCRIMINATOR_NORMS, DISCRIMINATORS, GAN_LOSSES, GENERATOR_NORMS, TrainConfig
    cfg = TrainConfig()
    g, d = cfg.generator, cfg.discriminator
    p = subparsers.add_parser(
        "train", help="train a style (pix2pix U-Net + PatchGAN) on targets folders and export it",
        description="Train the generator on random crops of the pairs of the DATA targets folders (`postfx "
                    "dataset stylize`), with checkpoints, a metrics log and sample grids in the run directory, "
                    "then export it to MODEL with its config and quality figures. Every pair is checked before "
                    "step 1. Under torchrun (e.g. `torchrun --nproc_per_node 2 -m postfx train ...`) the "
                    "processes train together with DistributedDataParallel and rank 0 writes the files.")
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="targets folders, pooled (with --resume: default the checkpoint's)")
    p.add_argument("--out", required=True, metavar="MODEL", help="the .safetensors model file written at the end")
    p.add_argument("--val", metavar="DIR", help="held-out targets folder: PSNR / SSIM in the model's metadata")
    p.add_argument("--run-dir", metavar="DIR", help="checkpoint, metrics.jsonl, samples/ (default: MODEL with .run)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's checkpoint (options not given keep its values)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after step N, checkpointed, to resume later")
    p.add_argument("--name", help="the model's name in its file (default: MODEL's stem)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    net = p.add_argument_group("generator")
    net.add_argument("--depth", type=int, help=f"U-Net levels (default {g.depth})")
    net.add_argument("--ngf", type=int, help=f"channels at the first level (default {g.ngf})")
    net.add_argument("--norm", choices=GENERATOR_NORMS, help=f"(default {g.norm}; batch is folded at export)")
    net.add_argument("--dropout", type=float, help=f"dropout on the deepest decoder levels (default {g.dropout})")
    net.add_argument("--rgb-only", dest="in_channels", action="store_const", const=3,
                     help="no depth input (default: RGB + depth)")
    critic = p.add_argument_group("discriminator and losses")
    critic.add_argument("--disc", choices=DISCRIMINATORS, help=f"PatchGAN or multi-scale (default {d.kind})")
    critic.add_argument("--ndf", type=int, help=f"channels of its first conv (default {d.ndf})")
    critic.add_argument("--disc-layers", type=int, help=f"stride-2 convs, 3 = 70x70 patches (default {d.layers})")
    critic.add_argument("--disc-norm", choices=DISCRIMINATOR_NORMS, help=f"(default {d.norm})")
    critic.add_argument("--scales", type=int, help=f"PatchGANs of the multi-scale one (default {d.scales})")
    critic.add_argument("--gan-loss", choices=GAN_LOSSES, help=f"(default {cfg.gan_loss})")
    critic.add_argument("--l1", type=float, help=f"L1 weight lambda (default {cfg.l1_weight:g})")
    critic.add_argument("--fm", type=float, help=f"feature-matching weight (default {cfg.feature_matching:g}; "
                                                 "pix2pixHD uses 10 with --disc multiscale)")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, help=f"optimizer steps (default {cfg.steps})")
    opt.add_argument("--crop", type=int, help=f"px, square training crops (default {cfg.crop})")
    opt.add_argument("--batch", type=int, help=f"crops per step per process (default {cfg.batch})")
    opt.add_argument("--lr", type=float, help=f"Adam learning rate (default {cfg.lr:g})")
    opt.add_argument("--beta1", type=float, help=f"Adam beta1 (default {cfg.beta1:g})")
    opt.add_argument("--decay-from", type=float,
                     help=f"fraction of the steps before the lr decays linearly (default {cfg.decay_from:g})")
    opt.add_argument("--seed", type=int, help=f"(default {cfg.seed})")
    run = p.add_argument_group("run")
    run.add_argument("--device", help=f"cpu, cuda or cuda:N (default {cfg.device})")
    run.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    run.add_argument("--checkpoint-every", type=int, metavar="N", help=f"(default {cfg.checkpoint_every})")
    run.add_argument("--sample-every", type=int, metavar="N", help=f"0 = no sample grids (default {cfg.sample_every})")
    run.add_argument("--log-every", type=int, metavar="N", help=f"(default {cfg.log_every})")
    run.add_argument("--max-nonfinite", type=int, metavar="K",
                     help=f"consecutive NaN / Inf steps that abort (default {cfg.max_nonfinite})")
    p.set_defaults(run=_cmd_train)


def _train_config(args):
    """TrainConfig from the command line: the options given on top of the defaults, or on top
    of the checkpoint's config with --resume."""
    from dataclasses import replace

    from .train.config import TrainConfig
    from .train.trainer import load_run_config
    given = {field: getattr(args, option) for option, field in _TRAIN_OPTIONS.items()
             if getattr(args, option) is not None}
    if args.resume:
        probe = TrainConfig(out=args.out, run_dir=args.run_dir)
        cfg = load_run_config(probe.resolved_run_dir())
    else:
        cfg = TrainConfig()
    cfg = replace(cfg, out=args.out, data=list(args.data) or cfg.data)
    for part in ("generator", "discriminator"):
        nested = {key.split(".")[1]: value for key, value in given.items() if key.startswith(part + ".")}
        cfg = replace(cfg, **{part: replace(getattr(cfg, part), **nested)})
    return replace(cfg, **{key: value for key, value in given.items() if "." not in key})


def _cmd_train(args) -> int:
    from .train.trainer import train
    cfg = _train_config(args)
    if not cfg.data:
        raise InputError("pass the training data: one or more targets folders written by `postfx dataset stylize`")
    result = train(cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.no_progress)
    if result.rank != 0:
        return 0        # under torchrun rank 0 reports
    steps_per_s = result.step / result.seconds if result.seconds > 0 else float("nan")
    lines = [f"{result.step}/{cfg.steps} steps, {result.seconds:.1f} s of training ({steps_per_s:.2f} steps/s), "
             f"{result.nonfinite_steps} skipped for a non-finite loss; run directory {result.run_dir}"]
    if result.model is not None:
        quality = result.quality
        lines.append(f"-> {cfg.out}: {result.model.parameters:,} parameters"
                     + (f"; held-out PSNR {quality['val_psnr_db']} dB, SSIM {quality['val_ssim']} "
                        f"(input {quality['input_psnr_db']} dB)" if "val_psnr_db" in quality else ""))
    elif result.step < cfg.steps:
        lines.append(f"stopped after step {result.step}; continue with --resume")
    print(_printable("\n".join(lines)))
    return 0


# --- export ----------------------------------------------------------------------

_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


def _add_export(subparsers) -> None:
    from .exporters.common import BATCHNORM_CHOICES
    p = subparsers.add_parser(
        "export", help="turn an ONNX graph into a verified postfx model file",
        description="Import an ONNX graph (torch.onnx.export, or any exporter) as a postfx model file: its nodes are "
                    "lowered onto postfx's layers (Conv, ConvTranspose, BatchNormalization, InstanceNormalization, "
                    "Pad, Relu / LeakyRelu / Tanh / Sigmoid, Add, Concat, 2x Resize ...), the result is run "
                    "against the graph itself (onnx.reference) on a probe frame, and only then written; anything "
                    "unsupported is named. Needs the onnx extra (pip install 'postfx[onnx]'), not onnxruntime. "
                    "A torch module is exported from Python with postfx.export_torch.")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file (external data files are read from its folder)")
    p.add_argument("out", metavar="OUT.safetensors", help="the model file written")
    p.add_argument("--batchnorm", choices=BATCHNORM_CHOICES, default="eval",
                   help="what BatchNormalization means: eval = running statistics, folded into the conv before it "
                        "(default); frame = each frame's own statistics (the pix2pix paper's test time)")
    p.add_argument("--name", help="the model's name in its file (default: OUT's stem)")
    p.add_argument("--input-range", nargs=2, type=float, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="values the network expects for colour 0 and 1 (default -1 1)")
    p.add_argument("--output-range", nargs=2, type=float, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="values the network gives for colour 0 and 1 (default -1 1)")
    p.add_argument("--raw", action="store_true",
                   help="a raw network for postfx.run (channels c0, c1, ...), even one shaped like a style")
    p.add_argument("--probe", metavar="WxH", help="size of the verification frame (default: at least 40 px a side "
                                                  "and not a multiple of the network's pad multiple; a deep U-Net "
                                                  "checks faster at 150x200)")
    p.set_defaults(run=_cmd_export)


def _cmd_export(args) -> int:
    import math
    import time

    from .errors import ExportError
    suffix = Path(args.model).suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        raise InputError(f"{args.model}: a torch checkpoint holds weights, not the network that uses them, so "
                         "postfx cannot rebuild it from the file alone. Load it into its module class and call "
                         f"postfx.export_torch(module, {args.out!r}) in Python, or torch.onnx.export the module "
                         "and run `postfx export MODEL.onnx OUT.safetensors`")
    if suffix != ".onnx":
        raise InputError(f"{args.model}: postfx export reads ONNX files (.onnx); for a torch module call "
                         "postfx.export_torch in Python")
    if Path(args.model).is_dir():
        raise InputError(f"{args.model}: is a folder; pass the .onnx file")
    for flag, value_range in (("--input-range", args.input_range), ("--output-range", args.output_range)):
        low, high = value_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputError(f"{flag} {low:g} {high:g}: give two finite values, LO < HI (the values the network "
                             "uses for colour 0 and 1; default -1 1)")
    try:
        from .exporters.onnx_import import import_onnx
    except ImportError as e:
        raise ExportError(f"postfx export needs the onnx package ({e}); pip install 'postfx[onnx]'") from None
    probe = None
    if args.probe:
        from .dataset import parse_size
        width, height = parse_size(args.probe)
        probe = (height, width)
    start = time.perf_counter()
    model = import_onnx(args.model, args.out, batchnorm=args.batchnorm, name=args.name, raw=True if args.raw else None,
                        input_range=tuple(args.input_range), output_range=tuple(args.output_range), probe_size=probe)
    check = model.meta["provenance"]["verification"]
    (height, width), norm = check["probe"], model.meta["provenance"]["norm"]
    folded = f", {len(norm['folded_batchnorm'])} BatchNorm folded" if norm["folded_batchnorm"] else ""
    kept = f", {len(norm['frame_batchnorm'])} BatchNorm per frame" if norm.get("frame_batchnorm") else ""
    channels = [", ".join(model.meta[end]["channels"]) for end in ("input", "output")]
    print(_printable(f"{args.model} -> {args.out}: {model.name!r}, {len(model.graph.layers)} layers{folded}{kept}, "
                     f"{model.parameters:,} parameters, {'style' if model.is_style else 'raw network'} "
                     f"({channels[0]} -> {channels[1]}); "
                     f"matches the ONNX graph on a {width}x{height} probe (max |delta| {check['max_abs_error']:.2g}); "
                     f"{time.perf_counter() - start:.1f} s"))
    return 0


# --- bench -----------------------------------------------------------------------

def _add_bench(subparsers) -> None:
    from .bench.command import DESCRIPTION, add_arguments
    p = subparsers.add_parser("bench", help="fps per network depth / width / frame size: GL kernels vs torch",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(run=_cmd_bench)


def _cmd_bench(args) -> int:
    from .bench.command import run
    return run(args)


COMMANDS = (_add_info, _add_tune, _add_stylize, _add_dataset, _add_demo, _add_eval, _add_train, _add_export, _add_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postfx", description="Neural stylization as a real-time post-processing pass.")
    parser.add_argument("--version", action="version", version=f"postfx {__version__}")
    subparsers = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 usage or postfx error)."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        # A command whose positionals may sit among its options (set_defaults(intermixed=DEST))
        # takes the words argparse left over; anything else left over is an error.
        dest = getattr(args, "intermixed", None)
        if dest and extras and not any(word.startswith("-") for word in extras):
            setattr(args, dest, getattr(args, dest) + extras)
        elif extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as e:
        # argparse exits on --help / --version (0) and on usage errors (2, message
        # already printed); turn that into a return value like every other outcome.
        return e.code if isinstance(e.code, int) else 0
    try:
        return args.run(args)
    except PostFXError as e:
        print(f"postfx: error: {_printable(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Every writer leaves its folder or file safe (old state, or refused by its readers).
        print("postfx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `postfx info X | head` closed the pipe: not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
