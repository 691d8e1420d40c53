"""Live GL objects in the current context, counted by asking GL itself (reliability
C10, C15): glIs<Kind>(name) over every name the context can have handed out.

moderngl keeps no count of live objects (`ctx.objects` only queues objects for its
garbage-collection modes), so a helper that forgets a `release()` is invisible to it.
The functions come from eglGetProcAddress: the suite's context is headless EGL.
"""
from __future__ import annotations

import ctypes
from collections import Counter
from functools import cache

_IS = ctypes.CFUNCTYPE(ctypes.c_ubyte, ctypes.c_uint)
_GEN_OR_DELETE = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_uint))   # (n, names)
_CREATE = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_uint)
_DELETE_ONE = ctypes.CFUNCTYPE(None, ctypes.c_uint)
_GET_IV = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_int))

# kind -> the glGen* / glDelete* pair of its namespace; shaders and programs share
# one namespace, handed out by glCreateShader / glCreateProgram.
GENERATED_KINDS = {
    "buffer": ("glGenBuffers", "glDeleteBuffers"),
    "texture": ("glGenTextures", "glDeleteTextures"),
    "framebuffer": ("glGenFramebuffers", "glDeleteFramebuffers"),
    "renderbuffer": ("glGenRenderbuffers", "glDeleteRenderbuffers"),
    "vertex_array": ("glGenVertexArrays", "glDeleteVertexArrays"),
    "sampler": ("glGenSamplers", "glDeleteSamplers"),
    "query": ("glGenQueries", "glDeleteQueries"),
}
# A query name becomes an object at its first glBeginQuery (as GL says): one made and
# never begun is not counted.
IS_FUNCTIONS = {"buffer": "glIsBuffer", "texture": "glIsTexture", "framebuffer": "glIsFramebuffer",
                "renderbuffer": "glIsRenderbuffer", "vertex_array": "glIsVertexArray", "sampler": "glIsSampler",
                "query": "glIsQuery", "program": "glIsProgram", "shader": "glIsShader"}
GL_COMPUTE_SHADER = 0x91B9
GL_DELETE_STATUS = 0x8B80
# Names below this are always scanned, whatever the probe says (see _name_bound).
MIN_SCAN = 1024


@cache
def _gl(name: str, prototype):
    egl = ctypes.CDLL("libEGL.so.1")
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    address = egl.eglGetProcAddress(name.encode())
    if not address:
        raise RuntimeError(f"eglGetProcAddress({name!r}) gave NULL")
    return prototype(address)


def _name_bound(kind: str) -> int:
    """One past the highest name this context has handed out for `kind`. Mesa hands out
    names in increasing order and does not reuse deleted ones, so a freshly generated
    name is above every live one; a driver that reuses the lowest free name keeps live
    names low, under MIN_SCAN for anything these tests allocate."""
    if kind in GENERATED_KINDS:
        gen, delete = GENERATED_KINDS[kind]
        name = ctypes.c_uint(0)
        _gl(gen, _GEN_OR_DELETE)(1, ctypes.byref(name))
        _gl(delete, _GEN_OR_DELETE)(1, ctypes.byref(name))
        return name.value
    shader = _gl("glCreateShader", _CREATE)(GL_COMPUTE_SHADER)
    _gl("glDeleteShader", _DELETE_ONE)(shader)
    return shader


def _not_deleted(kind: str):
    """Programs and shaders outlive glDelete* while in use: a program stays current until
    another is used, and moderngl deletes each shader right after attaching it, so it
    lives as long as its program. Those are freed by GL, not leaked: count only objects
    nobody has deleted (GL_DELETE_STATUS false)."""
    get = _gl("glGetProgramiv" if kind == "program" else "glGetShaderiv", _GET_IV)
    status = ctypes.c_int(0)

    def alive(name: int) -> bool:
        get(name, GL_DELETE_STATUS, ctypes.byref(status))
        return not status.value
    return alive


def live_gl_objects() -> Counter:
    """Counter kind -> number of live, not-deleted objects of that kind in the current GL context."""
    counts = Counter()
    bounds = {kind: _name_bound(kind) for kind in GENERATED_KINDS}
    bounds["program"] = bounds["shader"] = _name_bound("shader")
    for kind, function in IS_FUNCTIONS.items():
        exists = _gl(function, _IS)
        alive = _not_deleted(kind) if kind in ("program", "shader") else (lambda name: True)
        counts[kind] = sum(1 for name in range(1, max(bounds[kind], MIN_SCAN)) if exists(name) and alive(name))
    return counts


def difference(after: Counter, before: Counter) -> dict:
    """{kind: after - before} for the kinds whose count changed."""
    return {kind: after[kind] - before[kind] for kind in IS_FUNCTIONS if after[kind] != before[kind]}
