"""Time slicing: a network too slow for one frame spread over several (PostFX's
frame_budget_ms). The dispatches, each timed once, are cut into consecutive
steps that fit the budget; each apply() runs one step."""
from __future__ import annotations


def cut(dispatch_seconds: list[float], budget_seconds: float) -> list[tuple[int, int]]:
    """Consecutive (start, stop) dispatch ranges, each as long as fits the budget; a
    dispatch over the budget alone gets a range of its own."""
    steps, start, total = [], 0, 0.0
    for index, seconds in enumerate(dispatch_seconds):
        if index > start and total + seconds > budget_seconds:
            steps.append((start, index))
            start, total = index, 0.0
        total += seconds
    if dispatch_seconds:
        steps.append((start, len(dispatch_seconds)))
    return steps
