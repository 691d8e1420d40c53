"""The few GL queries moderngl does not expose, called through the context's own
function loader (the one moderngl itself uses)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

GL_TEXTURE_INTERNAL_FORMAT = 0x1003
SRGB_FORMATS = {0x8C43: "SRGB8_ALPHA8", 0x8C41: "SRGB8"}
DEPTH_FORMATS = {0x81A5: "D16", 0x81A6: "D24", 0x81A7: "D32", 0x8CAC: "D32F",
                 0x88F0: "D24S8", 0x8CAD: "D32FS8", 0x1902: "DEPTH_COMPONENT"}

_PROTOTYPE = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ctypes.c_int))


def texture_internal_format(ctx, texture) -> int | None:
    """The texture's GL internal format, or None where the context gives no loader."""
    loader = getattr(getattr(ctx.mglo, "_context", None), "load", None)
    if loader is None:
        return None
    address = loader("glGetTextureLevelParameteriv")        # GL 4.5 direct state access
    if not address:
        return None
    value = ctypes.c_int(0)
    _PROTOTYPE(address)(texture.glo, 0, GL_TEXTURE_INTERNAL_FORMAT, ctypes.byref(value))
    return value.value


GL_SCISSOR_TEST, GL_SCISSOR_BOX = 0x0C11, 0x0C10
_IS_ENABLED = ctypes.CFUNCTYPE(ctypes.c_ubyte, ctypes.c_uint)
_GET_INTEGERV = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.POINTER(ctypes.c_int))
_ENABLE = ctypes.CFUNCTYPE(None, ctypes.c_uint)
_SCISSOR = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)


@functools.lru_cache(maxsize=1)
def gl_library():
    """The process's OpenGL library (glvnd's libOpenGL, libGL, opengl32), or None. Its
    exported core functions act on whatever context is current."""
    names = ("opengl32",) if sys.platform == "win32" else ("OpenGL", "GL")
    for path in filter(None, map(ctypes.util.find_library, names)):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _functions(ctx, **prototypes) -> dict | None:
    """GL functions for the current context: through the context's own loader where
    moderngl made the context (standalone), else the exports of the GL library (a
    context moderngl attached to, e.g. a glfw window's: the functions here are GL 1.0)."""
    loader = getattr(getattr(ctx.mglo, "_context", None), "load", None)
    if loader is not None:
        addresses = {name: loader(name) for name in prototypes}
        if all(addresses.values()):
            return {name: prototypes[name](address) for name, address in addresses.items()}
    library = gl_library()
    if library is None:
        return None
    try:
        return {name: prototypes[name](ctypes.cast(getattr(library, name), ctypes.c_void_p).value)
                for name in prototypes}
    except AttributeError:
        return None


def scissor_state(ctx) -> tuple[bool, tuple[int, int, int, int]]:
    """(scissor test enabled, scissor box) as GL holds them, not as moderngl recorded them."""
    gl = _functions(ctx, glIsEnabled=_IS_ENABLED, glGetIntegerv=_GET_INTEGERV)
    if gl is None:
        raise RuntimeError("this context gives no GL function loader")
    box = (ctypes.c_int * 4)()
    gl["glGetIntegerv"](GL_SCISSOR_BOX, box)
    return bool(gl["glIsEnabled"](GL_SCISSOR_TEST)), tuple(box)


class ScissorOff:
    """`with ScissorOff(ctx):` the scissor test disabled, then the GL scissor state (test
    and box) put back exactly as it was. moderngl's ctx.scissor cannot do this: it reads
    its own record of the box, and setting any box enables the test."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.gl = _functions(ctx, glEnable=_ENABLE, glDisable=_ENABLE, glScissor=_SCISSOR)
        if self.gl is None:
            raise RuntimeError("this context gives no GL function loader")

    def __enter__(self):
        self.enabled, self.box = scissor_state(self.ctx)
        self.gl["glDisable"](GL_SCISSOR_TEST)
        return self

    def __exit__(self, *exc):
        self.gl["glScissor"](*self.box)
        if self.enabled:
            self.gl["glEnable"](GL_SCISSOR_TEST)
        return False
