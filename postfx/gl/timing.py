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
# Contexts whose timer query is running: GL allows one GL_TIME_ELAPSED query at a time,
# and the tuner times kernels inside the frame the demo is timing (the first frame at a
# new size builds, and tunes, the network).
_running: weakref.WeakSet[moderngl.Context] = weakref.WeakSet()


def timer_query(ctx: moderngl.Context) -> moderngl.Query:
    """The context's GL_TIME_ELAPSED query (made once)."""
    if ctx not in _timer_queries:
        _timer_queries[ctx] = ctx.query(time=True)
    return _timer_queries[ctx]


class PassTimer:
    """ms per pass: a GPU timer query where it reads real time, else wall clock
    with ctx.finish() (llvmpipe's timer queries read ~0). A measure() inside another
    (on the same context) uses the wall clock: the outer one holds the query."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.query = timer_query(ctx)
        self.use_query = True

    def measure(self, work) -> tuple[float, str]:
        if self.use_query and self.ctx not in _running:
            start = time.perf_counter()
            _running.add(self.ctx)
            try:
                with self.query:
                    work()
            finally:
                _running.discard(self.ctx)
            gpu_ms = self.query.elapsed / 1e6
            wall_ms = (time.perf_counter() - start) * 1000
            # A timer that reads far below the CPU-side submission time is not timing the work.
            if gpu_ms > 0.05 * wall_ms:
                return gpu_ms, "GPU timer"
            self.use_query = False
            return wall_ms, "wall clock"
        self.ctx.finish()
        start = time.perf_counter()
        work()
        self.ctx.finish()
        return (time.perf_counter() - start) * 1000, "wall clock"
