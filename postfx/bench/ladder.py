"""The conv / transposed-conv kernel ladder (in the manner of llm.c dev/cuda):
every registered variant on the layer shapes of the reference U-Net (depth 4,
ngf 16) and a 3x3 reflect-padded conv, each checked against the numpy
reference and timed.

    postfx bench --ladder                                   # shapes of a 1280x720 frame
    python3 -m postfx.bench.ladder --quick                  # 256x256 frame, fewer repeats
    python3 -m postfx.bench.ladder --fp16 --variants blocked

Each layer runs as a one-op model (two-source layers read the input and a copy
of it, as a U-Net decoder reads its skip). Times are the min over interleaved
repeats of the layer's own dispatch (GLNetwork.run(profile=...): ctx.finish()
+ wall clock), including the image-view copy of its output for "blocked".
FLOPs count 2 x the real multiply-adds.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from postfx import model_format as fmt
from postfx import reference
from postfx.exporters.builder import build_model
from postfx.gl import conv_kernels
from postfx.gl.context import headless_context, renderer
from postfx.gl.network import GLNetwork
from postfx.gl.programs import ProgramCache
from postfx.testing import parity

from .sizes import size_argument

LAYER = "layer"


def unet_shapes(width: int, height: int, ngf: int = 16, depth: int = 4) -> list[dict]:
    """(name, op, input size, channels per source, output channels, kernel,
    stride, padding, padding mode) of each conv layer of the reference U-Net."""
    def channels(level):
        return min(ngf * 2 ** (level - 1), 8 * ngf)
    shapes = []
    for level in range(1, depth + 1):
        scale = 2 ** (level - 1)
        shapes.append(dict(name=f"enc{level}", op="conv2d", size=(width // scale, height // scale),
                           sources=(4 if level == 1 else channels(level - 1),), out=channels(level),
                           kernel=4, stride=2, padding=1, mode="zeros"))
    for level in range(depth, 0, -1):
        scale = 2 ** level
        sources = (channels(level),) if level == depth else (channels(level), channels(level))
        shapes.append(dict(name=f"dec{level}", op="conv_transpose2d", size=(width // scale, height // scale),
                           sources=sources, out=3 if level == 1 else channels(level - 1),
                           kernel=4, stride=2, padding=1, mode="zeros"))
    shapes.append(dict(name="k3 reflect", op="conv2d", size=(width // 2, height // 2), sources=(32,), out=32,
                       kernel=3, stride=1, padding=1, mode="reflect"))
    return shapes


def one_op_model(shape: dict, seed: int = 0):
    """The layer as a model. Model inputs and outputs hold at most
    fmt.MAX_IO_CHANNELS channels, so a wider source is the input concatenated
    with itself, a second source is a copy of the first (as a U-Net decoder
    reads its skip), and a wide layer's model output is a copy of the input."""
    rng = np.random.default_rng(seed)
    cin = shape["sources"][0]
    io_channels = cin if cin <= fmt.MAX_IO_CHANNELS else cin // 2
    layers, source = [], fmt.INPUT_TENSOR
    if cin > io_channels:
        layers.append(fmt.Layer("wide", "concat", (fmt.INPUT_TENSOR, fmt.INPUT_TENSOR)))
        source = "wide"
    inputs = (source,)
    if len(shape["sources"]) > 1:
        layers.append(fmt.Layer("skip", "activation", (source,)))
        inputs = (source, "skip")
    k = shape["kernel"]
    total_in = sum(shape["sources"])
    w_shape = (shape["out"], total_in, k, k) if shape["op"] == "conv2d" else (total_in, shape["out"], k, k)
    fan_in = total_in * (k * k if shape["op"] == "conv2d" else (k // shape["stride"]) ** 2)
    weight = (rng.standard_normal(w_shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, shape["out"]).astype(np.float32)
    layers.append(fmt.Layer(LAYER, shape["op"], inputs, "relu", 0.0, shape["out"], k, shape["stride"],
                            shape["padding"], shape["mode"]))
    output = LAYER
    if shape["out"] > fmt.MAX_IO_CHANNELS:
        layers.append(fmt.Layer("tail", "activation", (fmt.INPUT_TENSOR,)))
        output = "tail"
    return build_model(layers, {LAYER: (weight, bias)}, input_channels=io_channels, output=output, raw=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_argument, default=(1280, 720), help="frame WxH the shapes come from")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="256x256 frame and 2 repeats unless given")
    parser.add_argument("--fp16", action="store_true", help="fp16 storage (checked against fp16-rounded inputs)")
    variants = list(conv_kernels.CONV_VARIANTS)
    parser.add_argument("--variants", nargs="+", default=variants, choices=variants)
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv
    if args.quick:
        if "--size" not in given:
            args.size = (256, 256)
        if "--repeats" not in given:
            args.repeats = 2

    ctx = headless_context()
    programs = ProgramCache(ctx)
    print(f"renderer: {renderer(ctx)}")
    print(f"shapes of a {args.size[0]}x{args.size[1]} frame, {'fp16' if args.fp16 else 'fp32'} storage, "
          f"min of {args.repeats} interleaved repeats\n")
    print(f"{'layer':11} {'op':17} {'in':>9} {'channels':>12} {'variant':8} {'shader':28} {'ms':>9} "
          f"{'GFLOP/s':>8} {'vs naive':>8}  check")
    for shape in unet_shapes(*args.size):
        model = one_op_model(shape)
        width, height = shape["size"]
        x = np.random.default_rng(1).uniform(-1, 1, (height, width, model.input_channels)).astype(np.float32)
        lanes = reference.to_lanes(x)
        if args.fp16:
            lanes = lanes.astype(np.float16).astype(np.float32)
        want = reference.run_layers(model, lanes)[LAYER]
        networks = {}
        for variant in args.variants:
            network = GLNetwork(ctx, model, kernels=variant, fp16=args.fp16, programs=programs)
            network.resize(height, width)
            network.write_tensor(fmt.INPUT_TENSOR, lanes)
            network.run()
            networks[variant] = network
        best = {variant: float("inf") for variant in networks}
        for _ in range(args.repeats):
            for variant, network in networks.items():
                profile = {}
                network.run(profile=profile)
                best[variant] = min(best[variant], profile[LAYER])
        flops = 2 * model.macs_per_pixel * width * height
        for variant, network in networks.items():
            try:
                parity.assert_close(network.read_tensor(LAYER), want, what=f"{shape['name']} {variant}",
                                    tol=parity.FP16 if args.fp16 else parity.FP32)
                check = "ok"
            except AssertionError as e:
                check = f"FAILED: {e}"
            shader = next(d.shader for d in network.dispatches if d.layer == LAYER)
            naive = f"{best['naive'] / best[variant]:7.1f}x" if "naive" in best else ""
            channels = "+".join(map(str, shape["sources"])) + f"->{shape['out']}"
            print(f"{shape['name']:11} {shape['op']:17} {width:>4}x{height:<4} {channels:>12} {variant:8} "
                  f"{shader:28} {best[variant] * 1e3:9.2f} {flops / best[variant] / 1e9:8.2f} {naive:>8}  {check}")
            network.release()
    programs.release()


if __name__ == "__main__":
    main()
