"""Frame sizes as users write them -- 'WxH', one number for a square, or a name
(720p, 1080p, 4k) -- and as code passes them, checked to whole pixels, each side
1..MAX_SIDE. One parser for every command that takes a size."""
from __future__ import annotations

import re

import numpy as np

from .errors import InputError

MAX_SIDE = 4096             # pixels a side; larger frames are not what a per-frame network trains on
SIZE_NAMES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160), "2160p": (3840, 2160)}


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360); '256' -> (256, 256); '720p', '1080p', '4k' -> their (W, H)."""
    part = str(text).strip().lower()
    if part in SIZE_NAMES:
        return SIZE_NAMES[part]
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", part)
    if not m:
        raise InputError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 640x360), one number for a square, "
                         f"or one of {', '.join(SIZE_NAMES)}")
    return check_size((int(m.group(1)), int(m.group(2) or m.group(1))))


def check_size(size) -> tuple[int, int]:
    """(width, height) or one int (a square) -> (width, height) ints; InputError otherwise."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        w, h = size
        if any(isinstance(v, bool) or int(v) != v for v in (w, h)):
            raise TypeError
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        raise InputError(f"size must be (width, height) in whole pixels, got {size!r}") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise InputError(f"size {w}x{h} is out of range: each side must be 1..{MAX_SIDE} pixels")
    return w, h
