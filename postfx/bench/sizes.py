"""The benchmarks' command-line values: frame sizes ('WxH', one number for a
square, or a name: 720p, 1080p, 4k) and number ranges (1-6, 2,4)."""
from __future__ import annotations

import argparse
import re

SIZE_NAMES = {"256": (256, 256), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160),
              "2160p": (3840, 2160)}


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720', '256' (square), '720p', '1080p' or '4k' -> (W, H)."""
    part = text.strip().lower()
    if part in SIZE_NAMES:
        return SIZE_NAMES[part]
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", part)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"expected WxH, a number (square), 720p, 1080p or 4k, got {text!r}")
    return int(m.group(1)), int(m.group(2) or m.group(1))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """A comma list of parse_size's sizes."""
    return [parse_size(part) for part in filter(None, text.split(","))]


def parse_ints(text: str) -> list[int]:
    """'1-6', '2,4' or '3' -> a list of ints."""
    out = []
    for part in filter(None, text.split(",")):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise argparse.ArgumentTypeError(f"expected numbers like 1-6 or 2,4, got {text!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        out += list(range(lo, hi + 1))
    return out
