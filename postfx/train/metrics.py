"""Image quality figures: PSNR (numpy) and SSIM (scikit-image) of RGB images.

Both take uint8 images (0..255) or floats in [0, 1], shape (H, W, 3) or (H, W).
SSIM follows Wang et al. 2004: an 11-tap Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, computed per channel on the valid region and averaged.
"""
from __future__ import annotations

import numpy as np

SSIM_TAPS = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _unit(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return a.astype(np.float64)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _unit(a), _unit(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB, peak 1.0 (255 for uint8); inf for identical images."""
    a, b = _pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(a, b) -> float:
    """Mean structural similarity (1.0 for identical images): scikit-image's
    structural_similarity with Wang et al.'s settings (module doc) -- the 11-tap
    Gaussian window comes from sigma 1.5 and its 3.5-sigma truncation, and the mean is
    taken over the valid region, as the earlier hand-written version here did
    (tests/test_eval.py keeps it as the reference the two are compared with)."""
    from skimage.metrics import structural_similarity
    a, b = _pair(a, b)
    if min(a.shape[:2]) < SSIM_TAPS:
        raise ValueError(f"SSIM needs images of at least {SSIM_TAPS}x{SSIM_TAPS} pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(a, b, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                                       K1=SSIM_K1, K2=SSIM_K2, data_range=1.0,
                                       channel_axis=-1 if a.ndim == 3 else None))
