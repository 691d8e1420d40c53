"""`postfx info` (a model file, or the GL context with --gl) and `postfx tune`."""
from __future__ import annotations

import json

from ..errors import InputError
from .text import printable, section


def add_info(subparsers) -> None:
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
    from .. import model_format as fmt
    from ..frame_size import parse_size
    from ..gl.context import headless_context
    from ..gl.network import GLNetwork
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
    from ..model_file import load
    if args.gl:
        return _cmd_info_gl(args)
    if args.model is None:
        raise InputError("postfx info needs a model file or style name (or --gl)")
    model = load(args.model)
    if args.json:
        print(json.dumps(model.meta, indent=2, sort_keys=True))
        return 0
    lines = [model.describe()]
    lines += section("training", model.meta.get("training"))
    lines += section("quality", model.meta.get("quality"))
    print(printable("\n".join(lines)))
    return 0


def _cmd_info_gl(args) -> int:
    from ..gl.context import headless_context
    from ..gl.report import gl_lines, kernel_lines
    from ..gl.tuner import Tuner
    from ..model_file import load
    lines = gl_lines(headless_context(args.device))
    if args.model is not None:
        tuner = Tuner(budget_s=0)           # what the cache knows, else the static choice: nothing timed
        network = _network_at(args, load(args.model), tuner)
        try:
            lines += [""] + kernel_lines(network, tuner.reports)
        finally:
            network.release()
    print(printable("\n".join(lines)))
    return 0


def add_tune(subparsers) -> None:
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

    from ..gl.kernel_cache import KernelCache
    from ..gl.report import kernel_lines, shown_path
    from ..gl.tuner import Tuner
    from ..model_file import load
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
    print(printable("\n".join(lines)))
    return 0
