"""The device's arithmetic ceiling for compute shaders, measured by
shaders/ceiling_probe.comp: independent mat4 x vec4 multiply-add chains over
many invocations, nothing else. Kernel throughput is reported as a fraction of
this figure measured in the same run (other load on the
machine halves it, so a number from another day means nothing).

    python3 -m postfx.bench.ceiling
"""
from __future__ import annotations

import time

import numpy as np

from postfx.gl.programs import ProgramCache

CHAIN_COUNTS = (8, 16, 24)
FLOPS_PER_PRODUCT = 32          # mat4 x vec4 + vec4: 16 multiply-adds


def measure_ceiling(ctx, *, programs: ProgramCache | None = None, seconds: float = 0.15,
                    work_groups: int = 256, repeats: int = 3) -> dict:
    """Best GFLOP/s over CHAIN_COUNTS; returns {"gflops": best, "by_chains": {chains: GFLOP/s}}.
    Each measurement runs about `seconds` (the iteration count is scaled after a trial)."""
    # `is None`, not `or`: an empty ProgramCache is falsy (it has __len__).
    own_programs = programs is None
    programs = ProgramCache(ctx) if own_programs else programs
    local_size = 64
    sink = ctx.buffer(reserve=work_groups * local_size * 16)
    by_chains = {}
    try:
        for chains in CHAIN_COUNTS:
            program = programs.get("ceiling_probe.comp", {"CHAINS": chains, "LOCAL_SIZE": local_size})
            program["m"].write((np.eye(4) * 0.5 + 0.01).astype("f4").tobytes())
            program["c"] = (0.1, 0.2, 0.3, 0.4)
            sink.bind_to_storage_buffer(0)

            def run(iterations, program=program):
                program["iterations"] = iterations
                ctx.finish()
                start = time.perf_counter()
                program.run(work_groups)
                ctx.finish()
                return time.perf_counter() - start

            run(16)                                        # compile and warm up
            trial = max(4, 256 * 256 // work_groups)       # the same work as 256 iterations of 256 groups
            iterations = max(trial, int(trial * seconds / max(run(trial), 1e-4)))
            best = min(run(iterations) for _ in range(repeats))
            flops = work_groups * local_size * iterations * chains * FLOPS_PER_PRODUCT
            by_chains[chains] = flops / best / 1e9
    finally:
        sink.release()
        if own_programs:
            programs.release()
    return {"gflops": max(by_chains.values()), "by_chains": by_chains}


def saturating_work_groups(ctx, *, programs: ProgramCache | None = None, start: int = 256,
                           gain: float = 1.25) -> int:
    """The work-group count the probe needs to fill the device: 256 groups of 64
    keep llvmpipe's cores busy but leave most of a GPU's SMs idle. Quadruples
    the count while that raises the probe's rate by `gain` or more (noise from
    other load on a CPU renderer stays below that)."""
    limit = min(65535, ctx.info.get("GL_MAX_COMPUTE_WORK_GROUP_COUNT", (65535,))[0])
    best_groups = start
    best = measure_ceiling(ctx, programs=programs, seconds=0.03, work_groups=start, repeats=2)["gflops"]
    groups = start * 4
    while groups <= limit:
        rate = measure_ceiling(ctx, programs=programs, seconds=0.03, work_groups=groups, repeats=2)["gflops"]
        if rate < best * gain:
            break
        best, best_groups = rate, groups
        groups *= 4
    return best_groups


def main() -> None:
    from postfx.gl.context import headless_context, renderer
    ctx = headless_context()
    result = measure_ceiling(ctx, work_groups=saturating_work_groups(ctx))
    print(f"renderer: {renderer(ctx)}")
    for chains, gflops in result["by_chains"].items():
        print(f"  {chains:3d} independent mat4*vec4 chains per invocation: {gflops:7.1f} GFLOP/s")
    print(f"compute ceiling: {result['gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
