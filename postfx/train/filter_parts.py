"""What the style filters (filters.py) are made of: OpenCV on demand, the frame
contract, and small deterministic pieces (lattice hash, value noise, paper
grain, luma, pigment density). Everything is a fixed function of its inputs and
a seed: no random state, so a dataset stylizes the same on every run."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

PAPER = (0.96, 0.93, 0.86)      # warm off-white, sRGB in [0, 1]
GRAPHITE = (0.16, 0.15, 0.17)   # pencil / ink black with a hint of blue-grey


def opencv(need_contrib: bool = False):
    try:
        import cv2
    except ImportError:
        raise InputError("the style filters need OpenCV: pip install 'postfx[train]' "
                         "(or pip install opencv-contrib-python-headless)") from None
    if need_contrib and not hasattr(cv2, "xphoto"):
        raise InputError(f"this filter needs OpenCV's contrib modules (cv2.xphoto), which OpenCV {cv2.__version__} "
                         "here lacks: pip uninstall opencv-python opencv-python-headless; "
                         "pip install opencv-contrib-python-headless")
    return cv2


def check_frame(rgb, depth01) -> tuple[np.ndarray, np.ndarray]:
    """The frame contract of every filter; raises InputError naming what is wrong."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"a filter's colour input must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    depth01 = np.asarray(depth01)
    if depth01.shape != rgb.shape[:2] or not np.issubdtype(depth01.dtype, np.floating):
        raise InputError(f"a filter's depth input must be float (H, W) = {rgb.shape[:2]} in [0, 1], "
                         f"got {depth01.dtype} {depth01.shape}")
    depth01 = depth01.astype(np.float32, copy=False)
    if not np.isfinite(depth01).all() or depth01.min(initial=0.0) < 0.0 or depth01.max(initial=0.0) > 1.0:
        raise InputError("a filter's depth input must be normalized linear depth in [0, 1] "
                         "(postfx.dataset.load_view returns it so)")
    if min(rgb.shape[:2]) < 4:
        raise InputError(f"frame {rgb.shape[1]}x{rgb.shape[0]} is too small to stylize (4 pixels a side at least)")
    return np.ascontiguousarray(rgb), np.ascontiguousarray(depth01)


def to_u8(image01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image01, 0.0, 1.0) * 255.0).astype(np.uint8)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A value in [0, 1) per integer lattice point: an integer hash, no random state."""
    h = (ix.astype(np.uint32) * np.uint32(374761393) + iy.astype(np.uint32) * np.uint32(668265263)
         + np.uint32((seed * 2246822519) & 0xFFFFFFFF))
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h = h ^ (h >> np.uint32(16))
    return (h & np.uint32(0xFFFFFF)).astype(np.float32) / float(1 << 24)


def value_noise(shape: tuple[int, int], cell: float, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1], features about `cell` pixels across; a fixed
    function of (row, column, seed), so a frame's crop has the same noise at the same place."""
    height, width = shape
    y = (np.arange(height, dtype=np.float32) + 0.5) / cell
    x = (np.arange(width, dtype=np.float32) + 0.5) / cell
    y0, x0 = np.floor(y), np.floor(x)
    fy, fx = smoothstep(0.0, 1.0, y - y0)[:, None], smoothstep(0.0, 1.0, x - x0)[None, :]
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    iy, ix = y0[:, None], x0[None, :]
    top = hash01(ix, iy, seed) * (1 - fx) + hash01(ix + 1, iy, seed) * fx
    bottom = hash01(ix, iy + 1, seed) * (1 - fx) + hash01(ix + 1, iy + 1, seed) * fx
    return ((top * (1 - fy) + bottom * fy) * 2.0 - 1.0).astype(np.float32, copy=False)


def paper_grain(shape, seed: int) -> np.ndarray:
    """Paper tooth: fibres of a few pixels plus a blotchy low-frequency sizing, about [-1, 1]."""
    return 0.55 * value_noise(shape, 2.0, seed) + 0.45 * value_noise(shape, 9.0, seed + 1)


def luminance(image01: np.ndarray) -> np.ndarray:
    return image01 @ np.array([0.299, 0.587, 0.114], np.float32)


def pigment(colour: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Bousseau et al.'s pigment density: density > 1 darkens a colour the way more
    pigment would (light colours darken the most, clipped at black), < 1 thins it
    toward the paper."""
    return colour * np.maximum(1.0 - (1.0 - colour) * (density[..., None] - 1.0), 0.0)
