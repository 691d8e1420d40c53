"""The EGL devices of this machine (EGL_EXT_device_enumeration), so a headless
context can be put on a chosen GPU and can tell when it landed on a CPU
renderer although a GPU is there. Read through the process's libEGL with
ctypes; an empty list where EGL or the extension is missing."""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

EGL_EXTENSIONS = 0x3055
EGL_DRM_DEVICE_FILE_EXT = 0x3233
SOFTWARE_DEVICE_EXTENSION = "EGL_MESA_device_software"
MAX_DEVICES = 64


@dataclass(frozen=True)
class EGLDevice:
    index: int                  # what moderngl.create_context(backend="egl", device_index=...) takes
    software: bool              # a CPU renderer (Mesa's llvmpipe device)
    drm_file: str | None        # /dev/dri/... of a hardware device, where EGL names it
    extensions: str

    def describe(self) -> str:
        kind = "software (CPU)" if self.software else "hardware"
        return f"EGL device {self.index}: {kind}" + (f", {self.drm_file}" if self.drm_file else "")


def egl_devices() -> list[EGLDevice]:
    path = ctypes.util.find_library("EGL")
    if path is None:
        return []
    try:
        egl = ctypes.CDLL(path)
        egl.eglGetProcAddress.restype = ctypes.c_void_p
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        query_devices_address = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
        query_string_address = egl.eglGetProcAddress(b"eglQueryDeviceStringEXT")
    except (OSError, AttributeError):
        return []
    if not query_devices_address or not query_string_address:
        return []
    egl_int = ctypes.c_int32
    query_devices = ctypes.CFUNCTYPE(ctypes.c_uint, egl_int, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(egl_int))(query_devices_address)
    query_string = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p, egl_int)(query_string_address)
    handles = (ctypes.c_void_p * MAX_DEVICES)()
    count = egl_int(0)
    if not query_devices(MAX_DEVICES, handles, ctypes.byref(count)):
        return []
    devices = []
    for index in range(count.value):
        extensions = (query_string(handles[index], EGL_EXTENSIONS) or b"").decode("ascii", "replace")
        drm = None
        if "EGL_EXT_device_drm" in extensions.split():
            raw = query_string(handles[index], EGL_DRM_DEVICE_FILE_EXT)
            drm = raw.decode("ascii", "replace") if raw else None
        devices.append(EGLDevice(index, SOFTWARE_DEVICE_EXTENSION in extensions.split(), drm, extensions))
    return devices
