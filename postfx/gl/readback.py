"""Reading a frame back to the host the way image files store it."""
from __future__ import annotations

import moderngl
import numpy as np


def read_rgb(texture: moderngl.Texture) -> np.ndarray:
    """An RGBA8 texture as (H, W, 3) uint8 with rows top-down (GL's run bottom-up)."""
    w, h = texture.size
    return np.ascontiguousarray(np.frombuffer(texture.read(), np.uint8).reshape(h, w, 4)[::-1, :, :3])
