"""The benchmarks' command-line values: frame sizes ('WxH', one number for a
square, or a name: 720p, 1080p, 4k) and number ranges (1-6, 2,4)."""
from __future__ import annotations

import argparse
import re

from ..errors import InputError
from ..frame_size import parse_size


def size_argument(text: str) -> tuple[int, int]:
    """postfx.frame_size.parse_size for argparse's type=: a bad size is a usage error."""
    try:
        return parse_size(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """A comma list of sizes."""
    return [size_argument(part) for part in filter(None, text.split(","))]


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
