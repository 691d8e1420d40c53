"""Timing GPU work the same way everywhere (the demo's frame times, the kernel
tuner): a GL timer query where the driver fills it, else ctx.finish() + wall
clock (llvmpipe's timer queries read ~0)."""
from __future__ import annotations

import time
import weakref

import moderngl

# moderngl 5's Query has no release(): a query per PassTimer would stay alive in a
# long-lived context (the headless one) for every DemoFrame made in it. One per context.
_timer_queries: weakref.WeakKeyDictionary[moderngl.Context, moderngl.Query] = weakref.WeakKeyDictionary()


class PassTimer:
    """ms per pass: a GPU timer query where it reads real time, else wall clock
    with ctx.finish() (llvmpipe's timer queries read ~0)."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        if ctx not in _timer_queries:
            _timer_queries[ctx] = ctx.query(time=True)
        self.query = _timer_queries[ctx]
        self.use_query = True

    def measure(self, work) -> tuple[float, str]:
        if self.use_query:
            start = time.perf_counter()
            with self.query:
                work()
            gpu_ms = self.query.elapsed / 1e6
            wall_ms = (time.perf_counter() - start) * 1000
            # A timer that reads far below the CPU-side submission time is not timing the work.
            if gpu_ms > 0.05 * wall_ms:
                return gpu_ms, "GPU timer"
            self.use_query = False
        self.ctx.finish()
        start = time.perf_counter()
        work()
        self.ctx.finish()
        return (time.perf_counter() - start) * 1000, "wall clock"
