"""GL contexts: checking a caller's context, and the headless one postfx makes
for arrays-in / arrays-out use."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import moderngl

from ..errors import AllocationFailed, ContextLost, GLError, GLVersionError

REQUIRED_VERSION = 430      # compute shaders and shader storage buffers

_local = threading.local()


def renderer(ctx: moderngl.Context) -> str:
    try:
        return f"{ctx.info['GL_RENDERER']} (OpenGL {ctx.info['GL_VERSION']})"
    except Exception:
        return "unknown renderer"


def is_live(ctx) -> bool:
    """False once the moderngl context has been released (its objects become InvalidObject)."""
    return getattr(ctx, "mglo", None) is not None and type(ctx.mglo).__name__ != "InvalidObject"


@contextmanager
def allocating(ctx: moderngl.Context, what: str):
    """Turn moderngl's error for a GL object it could not create (out of memory, a size
    the driver refuses) into AllocationFailed naming `what`. The caller releases what
    it had made before (reliability C7)."""
    try:
        yield
    except moderngl.Error as e:
        raise AllocationFailed(f"could not allocate {what} on {renderer(ctx)}: {e}. Free GPU memory, or use "
                               "a smaller frame, a smaller internal_scale or fp16=True") from None


def require_compute(ctx) -> None:
    """Raise a clear error unless ctx is a live moderngl context with OpenGL >= 4.3."""
    if not isinstance(ctx, moderngl.Context):
        raise TypeError(f"expected a moderngl.Context, got {type(ctx).__name__}")
    if not is_live(ctx):
        raise ContextLost("the moderngl context has been released; create the pass in a live context")
    if ctx.version_code < REQUIRED_VERSION:
        raise GLVersionError(
            f"postfx needs OpenGL 4.3 (compute shaders); this context is {ctx.version_code // 100}."
            f"{ctx.version_code % 100 // 10} on {renderer(ctx)}. Create the context with require=430, "
            "update the GPU driver, or use postfx.run(..., backend='numpy') (macOS tops out at 4.1)")


def headless_context() -> moderngl.Context:
    """A standalone EGL context, created on first use and kept per thread."""
    ctx = getattr(_local, "ctx", None)
    if ctx is not None and is_live(ctx):
        # Another context (a glfw window, say) may have been made current since.
        ctx.__enter__()
        return ctx
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl")
    except Exception as e:
        raise GLError(f"could not create a headless EGL context ({e}). On Linux install Mesa's EGL "
                      "(Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) or a GPU driver with EGL") from None
    try:
        require_compute(ctx)
    except GLVersionError:
        ctx.release()
        raise
    _local.ctx = ctx
    return ctx


def release_current() -> None:
    """Make postfx's headless context not current, so a window system (GLX) can
    make its own context current on this thread; headless_context() takes it back."""
    ctx = getattr(_local, "ctx", None)
    if ctx is not None and is_live(ctx):
        ctx.__exit__(None, None, None)
