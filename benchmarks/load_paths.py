"""Why the naive kernels are slow on llvmpipe: one mat4 x vec4 multiply-add
loop (shaders/load_path_probe.comp) with its weight and input taken from each
load path in turn, timed in the same run.

    python3 benchmarks/load_paths.py

Mesa llvmpipe runs 8 invocations per SIMD vector. A storage-buffer or
shared-memory load there becomes a scalar loop over the lanes with a bounds
check per component, while imageLoad and texelFetch gather whole texels as
vectors -- the table shows what that does to a loop that is otherwise FMAs.
"""
from __future__ import annotations

import time

import numpy as np

from postfx.gl.context import headless_context, renderer
from postfx.gl.programs import ProgramCache

PRODUCTS = 256
WORK_GROUPS = 512
WEIGHTS = {0: "uniform (no load)", 1: "storage buffer", 2: "imageLoad"}
INPUTS = {0: "computed (no load)", 1: "storage buffer", 2: "shared memory", 3: "texelFetch", 4: "imageLoad"}
CASES = [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (2, 0), (1, 1), (2, 4)]


def main(repeats: int = 3) -> None:
    ctx = headless_context()
    cache = ProgramCache(ctx)
    rng = np.random.default_rng(0)
    invocations = WORK_GROUPS * 64
    inputs = ctx.buffer(rng.uniform(-1, 1, (invocations + PRODUCTS, 4)).astype("f4").tobytes())
    weight_data = rng.uniform(-0.1, 0.1, (PRODUCTS, 4, 4)).astype("f4")
    weights = ctx.buffer(weight_data.tobytes())
    sink = ctx.buffer(reserve=invocations * 16)
    image_data = rng.uniform(-1, 1, (WORK_GROUPS, 64 + PRODUCTS, 4)).astype("f4")
    input_image = ctx.texture((64 + PRODUCTS, WORK_GROUPS), 4, image_data.tobytes(), dtype="f4")
    weight_image = ctx.texture((4 * PRODUCTS, 1), 4, weight_data.tobytes(), dtype="f4")
    programs = {case: cache.get("load_path_probe.comp", {"WEIGHT_SOURCE": case[0], "INPUT_SOURCE": case[1],
                                                         "PRODUCTS": PRODUCTS}) for case in CASES}

    def run(program):
        inputs.bind_to_storage_buffer(0)
        weights.bind_to_storage_buffer(1)
        sink.bind_to_storage_buffer(2)
        input_image.bind_to_image(0, read=True, write=False)
        weight_image.bind_to_image(1, read=True, write=False)
        input_image.use(0)
        for name, value in (("input_texture", 0),):
            if name in program:
                program[name] = value
        if "uniform_weight" in program:
            program["uniform_weight"].write(weight_data[0].tobytes())
        ctx.finish()
        start = time.perf_counter()
        program.run(WORK_GROUPS)
        ctx.finish()
        return time.perf_counter() - start

    best = {case: float("inf") for case in CASES}
    for case in CASES:
        run(programs[case])                                  # compile / warm up
    for _ in range(repeats):                                 # interleaved: other load hits every case alike
        for case, program in programs.items():
            best[case] = min(best[case], run(program))
    flops = 32 * PRODUCTS * invocations
    print(f"renderer: {renderer(ctx)}")
    print(f"{invocations} invocations x {PRODUCTS} mat4*vec4 products, best of {repeats}\n")
    print(f"{'weight from':20} {'input from':20} {'ms':>8} {'GFLOP/s':>8}")
    for case in CASES:
        print(f"{WEIGHTS[case[0]]:20} {INPUTS[case[1]]:20} {best[case] * 1e3:8.1f} {flops / best[case] / 1e9:8.2f}")
    for resource in (inputs, weights, sink, input_image, weight_image):
        resource.release()
    cache.release()


if __name__ == "__main__":
    main()
