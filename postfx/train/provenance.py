"""What a trained model file records about where it came from: the filter that made its
targets, the model a fine-tune started from (by name and checksum, never by path)."""
from __future__ import annotations

from pathlib import Path

from ..model_file import load


def targets_made_by(sources: list[dict]):
    """The filter (and its parameters) that made the training targets, the look the model
    imitates: one, or a list where the folders differ ("folder": made elsewhere)."""
    made = [{"filter": s["filter"], "params": s["params"]} for s in sources if "filter" in s]
    unique = [m for i, m in enumerate(made) if m not in made[:i]]
    return unique[0] if len(unique) == 1 else unique or None


def other_look_notice(init: str | None, sources: list[dict]) -> str | None:
    """A line for a fine-tune whose targets come from another filter than the model's own:
    legitimate (one look toward another), and also what a mixed-up folder looks like."""
    if init is None:
        return None
    own = ((load(init).meta.get("training") or {}).get("targets") or {})
    own = own.get("filter") if isinstance(own, dict) else None
    targets = sorted({s["filter"] for s in sources if "filter" in s})
    if own is None or not targets or targets == [own]:
        return None
    return f"note: --init {init} learned the '{own}' filter; these targets are {', '.join(map(repr, targets))}"


def init_record(init: str | None) -> dict | None:
    """The model a fine-tuning run started from, by name and checksum (not by path)."""
    if init is None:
        return None
    model = load(init)
    return {"model": model.name, "file": Path(init).name if Path(init).exists() else init,
            "checksum": model.meta["checksum"]["value"]}
