"""Commands that run the pass on frames: `postfx stylize` (pictures), `postfx demo`
(the scene, in a window or headless) and `postfx bench` (timings per network depth)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def add_stylize(subparsers) -> None:
    from ..gl.conv_kernels import KERNEL_CHOICES
    from ..styles import DEFAULT_STYLE
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

    from .. import image_io
    from ..api import Stylizer
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


def add_demo(subparsers) -> None:
    from ..styles import DEFAULT_STYLE
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
    p.add_argument("--temporal", type=float, default=0.0, metavar="A",
                   help="temporal mode: blend A of the previous result, reprojected with the scene's motion "
                        "(key T in the window; default 0: off)")
    p.set_defaults(run=_cmd_demo)


def _cmd_demo(args) -> int:
    from ..frame_size import parse_size
    size = parse_size(args.size)
    options = dict(style=args.style, seed=args.seed, internal_scale=args.scale, strength=args.strength,
                   fp16=args.fp16, frame_budget_ms=args.frame_budget_ms, temporal=args.temporal)
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if args.screenshot is not None:
        if args.headless or args.frames is None:
            raise InputError("--screenshot saves the window's last frame: use it with --frames N and no --headless "
                             "(headless runs write their frames and a contact sheet to --out)")
        from ..image_io import output_format
        if output_format(args.screenshot, what="screenshot") != "PNG":
            raise InputError(f"--screenshot {args.screenshot}: give a .png file")
    if args.headless:
        from ..demo.headless import render_headless
        summary = render_headless(120 if args.frames is None else args.frames, size, args.out, **options)
        print(f"{summary['frames']} frames {summary['size'][0]}x{summary['size'][1]} -> {summary['out']} "
              f"and {summary['contact_sheet']}; median scene {summary['scene_ms_median']:.1f} ms, pass "
              f"{summary['pass_ms_median']:.1f} ms, {summary['fps']:.1f} fps end to end")
        return 0
    from ..demo.window import DemoWindow
    window = DemoWindow(size, **options)
    try:
        drawn = window.run(args.frames, Path(args.screenshot) if args.screenshot else None)
    finally:
        window.close()
    if args.frames is not None:
        print(f"{drawn} frames drawn" + (f"; the last in {args.screenshot}" if args.screenshot else ""))
    return 0


def add_bench(subparsers) -> None:
    from ..bench.command import DESCRIPTION, add_arguments
    p = subparsers.add_parser("bench", help="fps per network depth / width / frame size: GL kernels vs torch",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(run=_cmd_bench)


def _cmd_bench(args) -> int:
    from ..bench.command import run
    return run(args)
