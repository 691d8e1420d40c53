"""Figures for README's "What postfx promises": tests of the fault matrix hand what
they measured to record_promise, which writes them only when POSTFX_PROMISES_OUT
names a folder (scripts/promises.sh sets it)."""
import json
import os
from pathlib import Path


def record_promise(file: str, figures: dict, key: str | None = None) -> None:
    """Write `figures` to DIR/<file>.json, or merge them under `key` into that file
    (several tests filling one file)."""
    out = os.environ.get("POSTFX_PROMISES_OUT")
    if not out:
        return
    path = Path(out) / f"{file}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if key is not None:
        doc = json.loads(path.read_text()) if path.exists() else {}
        figures = {**doc, key: figures}
    path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
