"""Image quality figures (numpy only): PSNR and SSIM of RGB images.

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


def _gaussian_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (H, W, C) along H then W."""
    n = len(kernel)
    rows = sum(kernel[i] * x[i:x.shape[0] - n + 1 + i] for i in range(n))
    return sum(kernel[i] * rows[:, i:rows.shape[1] - n + 1 + i] for i in range(n))


def ssim(a, b) -> float:
    """Mean structural similarity (1.0 for identical images)."""
    a, b = _pair(a, b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < SSIM_TAPS:
        raise ValueError(f"SSIM needs images of at least {SSIM_TAPS}x{SSIM_TAPS} pixels, got {a.shape[1]}x{a.shape[0]}")
    t = np.arange(SSIM_TAPS) - (SSIM_TAPS - 1) / 2
    kernel = np.exp(-t ** 2 / (2 * SSIM_SIGMA ** 2))
    kernel /= kernel.sum()
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_a, mu_b = _gaussian_valid(a, kernel), _gaussian_valid(b, kernel)
    var_a = _gaussian_valid(a * a, kernel) - mu_a ** 2
    var_b = _gaussian_valid(b * b, kernel) - mu_b ** 2
    cov = _gaussian_valid(a * b, kernel) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(score.mean())
