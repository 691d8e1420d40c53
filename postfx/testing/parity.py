"""The one parity helper every op and network test uses.

Seeded inputs, odd shapes, per-op tolerances; on failure the message names the
op, the shape, the worst element and both values.
"""
from __future__ import annotations

import numpy as np

# docs/reliability.md B1: |delta| <= atol + rtol * |ref|
FP32 = (1e-4, 1e-3)
FP16 = (2.5e-3, 1e-3)
ODD_SIZES = [(7, 5), (33, 17)]          # (H, W)
ODD_CHANNELS = [1, 3, 5, 13]


def seeded(shape, seed=0, lo=-1.0, hi=1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def assert_close(actual, expected, *, what: str, tol=FP32) -> None:
    """Element-wise |actual - expected| <= atol + rtol * |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != reference {expected.shape}"
    atol, rtol = tol
    excess = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    excess = np.where(np.isnan(actual) | np.isnan(expected), np.inf, excess)
    if (excess > 0).any():
        idx = np.unravel_index(np.argmax(excess), excess.shape)
        n_bad = int((excess > 0).sum())
        raise AssertionError(
            f"{what}: {n_bad}/{excess.size} elements out of tolerance (atol {atol}, rtol {rtol}); "
            f"worst at {tuple(int(i) for i in idx)}: got {actual[idx]!r}, reference {expected[idx]!r}, "
            f"|delta| {abs(actual[idx] - expected[idx]):.3g}; shape {actual.shape}")


def image_errors(actual, expected, value_range=(-1.0, 1.0)) -> tuple[float, float]:
    """(max error in 8-bit steps, PSNR in dB) for images in value_range."""
    lo, hi = value_range
    a = (np.asarray(actual, np.float64) - lo) / (hi - lo)
    b = (np.asarray(expected, np.float64) - lo) / (hi - lo)
    err = np.abs(a - b)
    mse = float(np.mean(err ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
    return float(err.max()) * 255, psnr


def assert_image_close(actual, expected, *, what: str, max_err_8bit=2.0, min_psnr=45.0,
                       value_range=(-1.0, 1.0)) -> tuple[float, float]:
    """docs/reliability.md B2: max error <= 2/255 and PSNR >= 45 dB."""
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} != {np.shape(expected)}"
    assert np.isfinite(actual).all(), f"{what}: output has non-finite values"
    max_err, psnr = image_errors(actual, expected, value_range)
    assert max_err <= max_err_8bit and psnr >= min_psnr, (
        f"{what}: max error {max_err:.3f}/255 (limit {max_err_8bit}), PSNR {psnr:.1f} dB (limit {min_psnr})")
    return max_err, psnr
