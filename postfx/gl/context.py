"""GL contexts: checking a caller's context, and the headless one postfx makes
for arrays-in / arrays-out use."""
from __future__ import annotations

import os
import threading
import warnings
import weakref
from contextlib import contextmanager

import moderngl

from ..errors import (
    AllocationFailed,
    ContextLost,
    GLError,
    GLVersionError,
    InputError,
    SoftwareRenderer,
    SoftwareRendererWarning,
)
from .dispatch import SOFTWARE_RENDERERS
from .egl_devices import egl_devices

REQUIRED_VERSION = 430      # compute shaders and shader storage buffers

_local = threading.local()
_warned_software: weakref.WeakSet[moderngl.Context] = weakref.WeakSet()     # warned once per context


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


def is_software(ctx: moderngl.Context) -> bool:
    """Whether the context runs on a CPU implementation of OpenGL (Mesa llvmpipe, ...)."""
    return any(name in str(ctx.info.get("GL_RENDERER", "")).lower() for name in SOFTWARE_RENDERERS)


def requested_device(device_index: int | None) -> int | None:
    """The EGL device a headless context goes on: the argument, else $POSTFX_EGL_DEVICE,
    else None (EGL's default display)."""
    if device_index is None:
        text = os.environ.get("POSTFX_EGL_DEVICE", "").strip()
        if not text:
            return None
        try:
            device_index = int(text)
        except ValueError:
            raise InputError(f"POSTFX_EGL_DEVICE must be an EGL device index (0, 1, ...), got {text!r}") from None
    if isinstance(device_index, bool) or not isinstance(device_index, int) or device_index < 0:
        raise InputError(f"device_index must be an EGL device index (0, 1, ...), got {device_index!r}")
    return device_index


def headless_context(device_index: int | None = None, *, require_gpu: bool = False) -> moderngl.Context:
    """A standalone EGL context, created on first use and kept per thread (one per
    device). device_index picks the EGL device (default: $POSTFX_EGL_DEVICE, else
    EGL's default); `postfx info --gl` lists them. A context on a CPU renderer while
    a hardware device is listed warns (SoftwareRendererWarning); with require_gpu=True
    it raises SoftwareRenderer instead."""
    device = requested_device(device_index)
    contexts = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = {}
    ctx = contexts.get(device)
    if ctx is None or not is_live(ctx):
        ctx = _create_headless(device)
        contexts[device] = ctx
    else:
        # Another context (a glfw window, say) may have been made current since.
        ctx.__enter__()
    _local.ctx = ctx
    _check_hardware(ctx, device, require_gpu)
    return ctx


def _create_headless(device: int | None) -> moderngl.Context:
    options = {} if device is None else {"device_index": device}
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", **options)
    except Exception as e:
        listed = "; ".join(d.describe() for d in egl_devices()) or "none listed"
        raise GLError(f"could not create a headless EGL context{'' if device is None else f' on device {device}'} "
                      f"({e}). EGL devices: {listed}. On Linux install Mesa's EGL (Debian: libegl1 libegl-mesa0 "
                      "libgl1-mesa-dri) or a GPU driver with EGL") from None
    try:
        require_compute(ctx)
    except GLVersionError:
        ctx.release()
        raise
    return ctx


def _check_hardware(ctx: moderngl.Context, device: int | None, require_gpu: bool) -> None:
    if not is_software(ctx):
        return
    hardware = [d for d in egl_devices() if not d.software]
    where = f"EGL device {device}" if device is not None else "EGL's default display"
    if require_gpu:
        raise SoftwareRenderer(f"{where} gave the CPU renderer {renderer(ctx)}, and require_gpu=True. "
                               + (f"Hardware devices: {'; '.join(d.describe() for d in hardware)}; pick one with "
                                  "device_index= or POSTFX_EGL_DEVICE" if hardware else
                                  "No hardware EGL device is listed: install the GPU driver's EGL library"))
    if hardware and ctx not in _warned_software:
        _warned_software.add(ctx)
        warnings.warn(f"{where} gave the CPU renderer {renderer(ctx)} although "
                      f"{'; '.join(d.describe() for d in hardware)} is listed: pick it with device_index= or "
                      "POSTFX_EGL_DEVICE (`postfx info --gl` lists the devices)", SoftwareRendererWarning,
                      stacklevel=3)


def release_current() -> None:
    """Make postfx's headless context not current, so a window system (GLX) can
    make its own context current on this thread; headless_context() takes it back."""
    ctx = getattr(_local, "ctx", None)
    if ctx is not None and is_live(ctx):
        ctx.__exit__(None, None, None)
