"""Text the commands print: metadata made safe for a terminal, and sections of
key / value lines."""
from __future__ import annotations

import json


def printable(text: str) -> str:
    # Metadata is text from a file: keep terminal escape sequences out of the output.
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def section(title: str, value) -> list[str]:
    if not value:
        return []
    if not isinstance(value, dict):
        return ["", f"{title}: {json.dumps(value)}"]
    width = max(len(str(k)) for k in value)
    return ["", f"{title}:"] + [f"  {k:<{width}}  {v if isinstance(v, (str, int, float)) else json.dumps(v)}"
                                for k, v in value.items()]
