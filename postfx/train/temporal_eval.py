"""Flicker on held-out sequences: the warping error of the unstylized input, of
the filter applied per frame (the targets) and of a model through the GL pass,
side by side with the model's PSNR / SSIM against the targets.

    result = temporal_evaluate("ink", "heldout_seq_ink/")

The targets folder must come from a sequence dataset (`postfx dataset render
--sequences`). For each pair of consecutive frames of a sequence, frame t - 1 of
each of the three is reprojected to frame t with the renderer's motion
(postfx.temporal.reproject: off-screen and disoccluded pixels masked, the mask
the same for all three) and the mean squared difference over the pixels with
history is taken, colours in [0, 1] (Lai et al.'s E_warp); the figure is the mean
over pairs. `relative` divides each by the input's own: above 1, the style
changes more from frame to frame than the rendered frames do.

A model runs frame by frame, in sequence order, through one PostFX pass; with
temporal > 0 in its temporal mode, fed the motion, its history reset at each
sequence's first frame. Ghosting -- history that lags behind what moves -- shows
as a loss of PSNR against the per-frame targets where the picture moves fast:
`fast_psnr_db` is the PSNR over the pixels that moved FAST_MOTION_PX or more
since the previous frame (frames after the first of each sequence).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dataset import load_motion
from ..errors import InputError
from ..model_file import load
from ..temporal import reproject
from .evaluate import PassFrames, check_style, model_source, row_labels, targets_info
from .metrics import psnr, ssim
from .pairs import load_pair

SOURCES = ("input", "filter", "network")
FAST_MOTION_PX = 2.0            # pixels per frame: where ghosting would show


def sequence_pairs(folder: Path, info: dict):
    """Per view in order: (index, frame, rgb, depth01, target, motion)."""
    dataset = info["dataset"]
    if "sequences" not in dataset:
        raise InputError(f"{folder}: its source {info['source_dir']} holds single views; the warping error needs "
                         "consecutive frames: render sequences (`postfx dataset render --sequences N --frames K`) "
                         "and stylize them")
    for index, view in enumerate(dataset["views"]):
        rgb, depth01, target = load_pair(folder, index, info)
        motion = load_motion(info["source_dir"], index, dataset)
        yield index, view["frame"], rgb, depth01, target, motion


def _squared_error(previous, current, motion, previous_depth01) -> tuple[float, np.ndarray]:
    warped, valid = reproject(previous, motion, previous_depth01)
    squared = ((current.astype(np.float32) / 255.0 - warped) ** 2).mean(axis=-1)
    return squared, valid


def temporal_evaluate(model, sequences_targets_dir, *, fp16: bool = False, temporal: float = 0.0,
                      frame_budget_ms: float | None = None) -> dict:
    """Warping errors and quality of `model` (path, bundled name or Model) on a held-out
    sequence targets folder; temporal: the pass's history weight (0: off); frame_budget_ms:
    the network spread over frames (PostFX's, each sequence starting a new run). Returns a
    JSON-ready dict."""
    from ..gl.context import headless_context, renderer
    model = load(model)
    check_style(model)
    folder = Path(sequences_targets_dir)
    info = targets_info(folder, "held-out sequence")
    size = tuple(info["dataset"]["size"])
    sums = {name: [] for name in SOURCES}               # per frame pair: mean squared difference
    valid_fractions, scores = [], []
    ctx = headless_context()
    frames = PassFrames(ctx, model, size, fp16, temporal=temporal, frame_budget_ms=frame_budget_ms)
    per_result = None
    previous, fast_squared, fast_pixels = None, 0.0, 0
    try:
        for _, frame, rgb, depth01, target, motion in sequence_pairs(folder, info):
            if frame == 0 and (temporal or frame_budget_ms is not None):
                frames.reset()                           # a cut: no history, no run across sequences
            stylized = frames.stylize(rgb, depth01, motion if temporal else None)
            per_result = frames.fx.frames_per_result
            scores.append((psnr(stylized, target), ssim(stylized, target)))
            if frame > 0:
                fast = np.hypot(motion[..., 0], motion[..., 1]) >= FAST_MOTION_PX
                difference = (stylized.astype(np.float64) - target) / 255.0
                fast_squared += float((difference[fast] ** 2).sum())
                fast_pixels += int(fast.sum()) * 3
            current = {"input": rgb, "filter": target, "network": stylized}
            if frame > 0:
                valid = None
                for name in SOURCES:
                    squared, valid = _squared_error(previous[name], current[name], motion, previous["depth01"])
                    sums[name].append(float(squared[valid].mean(dtype=np.float64)) if valid.any() else np.nan)
                valid_fractions.append(float(valid.mean()))
            previous = dict(current, depth01=depth01)
    finally:
        frames.release()
    if not valid_fractions:
        raise InputError(f"{folder}: no sequence has two frames; render sequences with --frames 2 or more")
    warping = {name: float(np.nanmean(values)) for name, values in sums.items()}
    dataset = info["dataset"]
    return {
        "model": model.name, "model_path": model_source(model), "heldout": str(folder), "style": info.get("style"),
        "frame_size": list(size),
        "sequences": dataset["sequences"], "frames": dataset["frames"], "fps": dataset.get("fps"),
        "frame_pairs": len(valid_fractions), "valid_fraction": float(np.mean(valid_fractions)),
        "warping_error": warping,
        "relative": {name: warping[name] / warping["input"] if warping["input"] > 0 else None for name in SOURCES},
        "psnr_db": float(np.mean([p for p, _ in scores])), "ssim": float(np.mean([s for _, s in scores])),
        "fast_psnr_db": (float(10 * np.log10(fast_pixels / fast_squared)) if fast_squared > 0 else None)
        if fast_pixels else None, "fast_pixels": fast_pixels // 3, "fast_motion_px": FAST_MOTION_PX,
        "temporal": temporal, "frame_budget_ms": frame_budget_ms,
        "frames_per_result": per_result if frame_budget_ms is not None else 1, "fp16": fp16, "renderer": renderer(ctx),
        "notes": "warping error: mean over consecutive frame pairs of the mean squared difference (colours in "
                 "[0, 1]) between frame t and frame t - 1 reprojected with the renderer's motion, over pixels "
                 "with history (not off-screen, not disoccluded); relative: divided by the input's; PSNR where "
                 f"fast: over pixels that moved >= {FAST_MOTION_PX:g} px since the previous frame",
    }


def temporal_table(results: list[dict]) -> str:
    """Markdown: one row for the input and the filter (from the first result), one per model."""
    first = results[0]
    header = "| frames | warping error ×1e3 | relative to input | PSNR dB | SSIM | PSNR dB where fast |"
    lines = [header, "|---|---|---|---|---|---|",
             f"| input (unstylized) | {first['warping_error']['input'] * 1e3:.3f} | 1.00 | — | — | — |",
             f"| filter per frame (targets) | {first['warping_error']['filter'] * 1e3:.3f} "
             f"| {first['relative']['filter']:.2f} | — | — | — |"]
    for label, r in zip(row_labels(results), results, strict=True):
        mode = f", temporal {r['temporal']:g}" if r["temporal"] else ""
        if r.get("frames_per_result", 1) > 1:
            mode += f", spread over {r['frames_per_result']} frames"
        fast = "—" if r["fast_psnr_db"] is None else f"{r['fast_psnr_db']:.2f}"
        lines.append(f"| {label}{mode} | {r['warping_error']['network'] * 1e3:.3f} "
                     f"| {r['relative']['network']:.2f} | {r['psnr_db']:.2f} | {r['ssim']:.4f} | {fast} |")
    return "\n".join(lines)
