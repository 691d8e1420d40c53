"""Frame-to-frame reprojection with the renderer's own motion, and the flicker
metric built on it: the numpy reference the GL temporal pass and the training
loss are checked against.

Motion comes in image units, rows top-down (SceneTarget.read_motion, the
dataset's motion files): motion[..., 0:2] is the offset in pixels (x right,
y down) from each pixel to where its surface was in the previous frame, and
motion[..., 2] the normalized linear depth (z - near) / (far - near) that
surface had then. Reprojection samples the previous frame there (bilinear); a
pixel has no history when that lands off-screen or when the previous frame's
depth there disagrees with the depth the surface had (it was hidden: a
disocclusion).

The warping error (Lai et al., ECCV 2018) of a sequence of outputs is the mean
over frame pairs of the mean squared difference, over the pixels with history,
between output t and output t - 1 reprojected to frame t (colours in [0, 1]).
"""
from __future__ import annotations

import numpy as np

from .errors import InputError

# A surface keeps its history when the previous depth found where it was agrees
# with the depth it had within this fraction (plus DEPTH_SLACK): the 16-bit depth
# files, bilinear sampling across a slope and a 24-bit depth buffer all stay inside it.
DEPTH_TOLERANCE = 0.02
DEPTH_SLACK = 2e-4
LOST = 1.0e4                    # a result offset whose chain broke (shaders/result_offsets.comp)
# resolve()'s default share of the history (PostFX(temporal=True)): measured on held-out
# sequences at 30 and 10 fps, the largest weight at which neither the PSNR against the
# per-frame targets nor the PSNR over fast-moving pixels (ghosting) drops below the pass
# without history; 0.7 starts to lag behind fast motion (README, Temporal stability).
TEMPORAL_WEIGHT = 0.5


def _as_float_image(image, what: str) -> np.ndarray:
    """(H, W) or (H, W, C): uint8 read as 0..1, floats as they are -> (H, W, C) float32."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise InputError(f"{what} must be (H, W) or (H, W, C), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"{what} must be uint8 or float, got {image.dtype}")
    return image.astype(np.float32, copy=False)


def check_motion(motion, size_hw) -> np.ndarray:
    motion = np.asarray(motion)
    if motion.shape != (*size_hw, 3) or not np.issubdtype(motion.dtype, np.floating):
        raise InputError(f"motion must be float (H, W, 3) = {(*size_hw, 3)}, got {motion.dtype} {motion.shape}")
    if not np.isfinite(motion).all():
        raise InputError("motion holds NaN or Inf")
    return motion.astype(np.float32, copy=False)


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """image (H, W, C) at pixel coordinates x, y (pixel centres at whole numbers), clamped
    to the edge pixels -> (*x.shape, C)."""
    h, w = image.shape[:2]
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(x.shape, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(y.shape, np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _on_screen(x: np.ndarray, y: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixel coordinates (centres at whole numbers) within the frame, its outer edges
    included: half a pixel of slack, so a point on a border pixel is on screen."""
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def reproject(previous, motion, previous_depth01=None) -> tuple[np.ndarray, np.ndarray]:
    """The previous frame moved to this one: (warped (H, W, C) float32, valid (H, W) bool).
    previous: (H, W) or (H, W, C), uint8 (read as 0..1) or float. previous_depth01: the
    previous frame's normalized linear depth (H, W); without it only off-screen pixels
    lose their history."""
    prev = _as_float_image(previous, "previous")
    h, w = prev.shape[:2]
    motion = check_motion(motion, (h, w))
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = cols + motion[..., 0], rows + motion[..., 1]
    valid = _on_screen(x, y, w, h)
    if previous_depth01 is not None:
        depth = _as_float_image(previous_depth01, "previous_depth01")
        if depth.shape != (h, w, 1):
            raise InputError(f"previous_depth01 must be (H, W) = {(h, w)}, got {np.shape(previous_depth01)}")
        found = sample_bilinear(depth, x, y)[..., 0]
        expected = motion[..., 2]
        valid &= np.abs(found - expected) <= DEPTH_TOLERANCE * expected + DEPTH_SLACK
    return sample_bilinear(prev, x, y), valid


def warping_error(previous, current, motion, previous_depth01=None) -> tuple[float, int]:
    """(mean squared difference over the pixels with history, how many pixels that is) between
    `current` and `previous` reprojected to it; NaN when no pixel has history."""
    cur = _as_float_image(current, "current")
    warped, valid = reproject(previous, motion, previous_depth01)
    if warped.shape != cur.shape:
        raise InputError(f"previous and current differ in shape: {warped.shape} vs {cur.shape}")
    count = int(valid.sum())
    if count == 0:
        return float("nan"), 0
    squared = ((cur - warped) ** 2).mean(axis=-1)
    return float(squared[valid].mean(dtype=np.float64)), count


def neighbourhood_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the channel-wise min and max over its 3x3 neighbourhood (edges clamped)."""
    padded = np.pad(image, [(1, 1), (1, 1), (0, 0)], mode="edge")
    h, w = image.shape[:2]
    shifted = [padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return np.min(shifted, axis=0), np.max(shifted, axis=0)


def _nearest_on_screen(x: np.ndarray, y: np.ndarray, w: int, h: int):
    """Pixel coordinates (centres at whole numbers) -> (on screen, column, row) of the
    nearest pixel, with the edge rule of the GL kernels (the outer edges count)."""
    inside = _on_screen(x, y, w, h)
    col = np.clip(np.floor(x + 0.5), 0, w - 1).astype(np.int64)
    # GL rounds along its own y, which runs bottom-up: a tie goes to the upper pixel
    row = np.clip(np.ceil(y - 0.5), 0, h - 1).astype(np.int64)
    return inside, col, row


def chain_result_offsets(previous_offsets, motion, *, run_started: bool, run_completed: bool) -> np.ndarray:
    """One frame of shaders/result_offsets.comp, in image units: for a network spread over
    frames, the offset (pixels, x right, y down) from each pixel to where it was in the
    frame of the result shown (channels 0-1) and of the run in flight (2-3), chained
    through this frame's motion at the nearest pixel. previous_offsets: last frame's
    (H, W, 4), or None (first frame, resize, reset). LOST where the chain broke (off
    screen, no previous). -> (H, W, 4) float32."""
    motion = np.asarray(motion, np.float32)
    h, w = motion.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    inside, col, row = _nearest_on_screen(cols + motion[..., 0], rows + motion[..., 1], w, h)
    previous = np.full((h, w, 4), LOST, np.float32)
    if previous_offsets is not None:
        previous = np.where(inside[..., None], np.asarray(previous_offsets, np.float32)[row, col], previous)
    step = motion[..., :2]
    run = np.zeros((h, w, 2), np.float32) if run_started else _chained(step, previous[..., 2:])
    shown = run if run_completed else _chained(step, previous[..., :2])
    return np.concatenate([shown, run], axis=-1).astype(np.float32)


def _chained(step: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """offset one frame further back by `step`; LOST stays LOST."""
    return np.where((np.abs(offset) >= LOST / 2).any(axis=-1, keepdims=True), LOST, step + offset)


def read_through_offsets(image, offsets) -> np.ndarray:
    """A spread network's result as present.comp shows it in temporal mode: each pixel read
    at the nearest pixel to where it was in the result's frame (offsets: chain_result_offsets'
    first two channels, pixels), in place where that is off-screen or lost. -> float32."""
    img = _as_float_image(image, "image")
    h, w = img.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    offsets = np.asarray(offsets, np.float32)
    inside, col, row = _nearest_on_screen(cols + offsets[..., 0], rows + offsets[..., 1], w, h)
    return img[np.where(inside, row, rows.astype(np.int64)), np.where(inside, col, cols.astype(np.int64))]


def resolve(current, history, motion, history_depth01=None, *, weight: float = TEMPORAL_WEIGHT) -> np.ndarray:
    """The temporal pass's blend, in image units (the numpy reference of
    shaders/temporal_resolve.comp): where a pixel has history (reproject: on screen and,
    given the previous depth, not disoccluded), the reprojected history clamped to the
    current frame's 3x3 neighbourhood range is mixed in with `weight`; elsewhere the
    current frame stays. current / history: (H, W, 3) uint8 or float in [0, 1] -> float32."""
    cur = _as_float_image(current, "current")
    low, high = neighbourhood_range(cur)
    warped, valid = reproject(history, motion, history_depth01)
    blended = cur + np.float32(weight) * (np.clip(warped, low, high) - cur)
    return np.where(valid[..., None], blended, cur).astype(np.float32)


def texture_motion(motion) -> np.ndarray:
    """Motion in image units (H, W, 3) -> what PostFX's motion_tex holds, as texture data:
    (H, W, 4) float32 with rows bottom-up, xy the offset in texture coordinates (y up),
    z the previous depth (write it to an RGBA32F texture: ctx.texture(size, 4, data, dtype="f4"))."""
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 3 or motion.shape[2] != 3:
        raise InputError(f"motion must be (H, W, 3), got shape {motion.shape}")
    h, w = motion.shape[:2]
    uv = np.stack([motion[..., 0] / w, -motion[..., 1] / h, motion[..., 2], np.zeros((h, w), np.float32)], axis=-1)
    return np.ascontiguousarray(uv[::-1], dtype=np.float32)
