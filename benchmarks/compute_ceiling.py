"""The device's arithmetic ceiling for compute shaders, measured by
shaders/ceiling_probe.comp: independent mat4 x vec4 multiply-add chains over
many invocations, nothing else. Kernel throughput is reported as a fraction of
this figure measured in the same run (performance.md: other load on the
machine halves it, so a number from another day means nothing).

    python3 benchmarks/compute_ceiling.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's postfx first

import numpy as np  # noqa: E402

from postfx.gl.programs import ProgramCache  # noqa: E402

CHAIN_COUNTS = (8, 16, 24)
FLOPS_PER_PRODUCT = 32          # mat4 x vec4 + vec4: 16 multiply-adds


def measure_ceiling(ctx, *, programs: ProgramCache | None = None, seconds: float = 0.15,
                    work_groups: int = 256, repeats: int = 3) -> dict:
    """Best GFLOP/s over CHAIN_COUNTS; returns {"gflops": best, "by_chains": {chains: GFLOP/s}}.
    Each measurement runs about `seconds` (the iteration count is scaled after a trial)."""
    programs = programs or ProgramCache(ctx)
    local_size = 64
    sink = ctx.buffer(reserve=work_groups * local_size * 16)
    by_chains = {}
    try:
        for chains in CHAIN_COUNTS:
            program = programs.get("ceiling_probe.comp", {"CHAINS": chains, "LOCAL_SIZE": local_size})
            program["m"].write((np.eye(4) * 0.5 + 0.01).astype("f4").tobytes())
            program["c"] = (0.1, 0.2, 0.3, 0.4)
            sink.bind_to_storage_buffer(0)

            def run(iterations):
                program["iterations"] = iterations
                ctx.finish()
                start = time.perf_counter()
                program.run(work_groups)
                ctx.finish()
                return time.perf_counter() - start

            run(16)                                        # compile and warm up
            trial = 256
            iterations = max(trial, int(trial * seconds / max(run(trial), 1e-4)))
            best = min(run(iterations) for _ in range(repeats))
            flops = work_groups * local_size * iterations * chains * FLOPS_PER_PRODUCT
            by_chains[chains] = flops / best / 1e9
    finally:
        sink.release()
    return {"gflops": max(by_chains.values()), "by_chains": by_chains}


def main() -> None:
    from postfx.gl.context import headless_context, renderer
    ctx = headless_context()
    result = measure_ceiling(ctx)
    print(f"renderer: {renderer(ctx)}")
    for chains, gflops in result["by_chains"].items():
        print(f"  {chains:3d} independent mat4*vec4 chains per invocation: {gflops:7.1f} GFLOP/s")
    print(f"compute ceiling: {result['gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
