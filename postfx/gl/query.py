"""The few GL queries moderngl does not expose, called through the context's own
function loader (the one moderngl itself uses)."""
from __future__ import annotations

import ctypes

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
