"""Weight layout work, done once at export so the runtime never reshuffles.

Packed conv weight: (out_slices, K, K, in_slices, 4 in-lane, 4 out-lane)
float32; each [os, ky, kx, is] block is a GLSL column-major mat4 whose column i
holds the weights from input lane i to the 4 output channels of slice os.
Input channels are packed per segment: a layer reading concat(a[13], b[5])
gets 16 + 8 input lanes, the padding lanes' weights zero.
"""
from __future__ import annotations

import numpy as np


def _slices(c: int) -> int:
    return (c + 3) // 4


def pad_input_lanes(cin_axis_last: np.ndarray, segments) -> np.ndarray:
    """(..., sum(segments)) -> (..., sum(4 * slices(seg))), zero lanes after each segment."""
    parts, start = [], 0
    for seg in segments:
        part = cin_axis_last[..., start:start + seg]
        pad = [(0, 0)] * (part.ndim - 1) + [(0, 4 * _slices(seg) - seg)]
        parts.append(np.pad(part, pad))
        start += seg
    if start != cin_axis_last.shape[-1]:
        raise ValueError(f"segments {list(segments)} sum to {start}, weight has {cin_axis_last.shape[-1]} inputs")
    return np.concatenate(parts, axis=-1)


def pack_conv_weight(weight: np.ndarray, segments) -> np.ndarray:
    """torch Conv2d weight (Cout, Cin, K, K) -> packed (os, K, K, is, 4, 4)."""
    cout, cin, kh, kw = weight.shape
    w = np.transpose(weight.astype(np.float32), (2, 3, 0, 1))            # (K, K, Cout, Cin)
    w = pad_input_lanes(w, segments)                                     # (K, K, Cout, Cin4)
    w = np.pad(w, [(0, 0), (0, 0), (0, 4 * _slices(cout) - cout), (0, 0)])
    k_in = w.shape[-1] // 4
    w = w.reshape(kh, kw, _slices(cout), 4, k_in, 4)                      # (K, K, os, o, is, i)
    return np.ascontiguousarray(np.transpose(w, (2, 0, 1, 4, 5, 3)))     # (os, K, K, is, i, o)


def pack_conv_transpose_weight(weight: np.ndarray, segments) -> np.ndarray:
    """torch ConvTranspose2d weight (Cin, Cout, K, K) -> packed (os, K, K, is, 4, 4)."""
    return pack_conv_weight(np.transpose(weight, (1, 0, 2, 3)), segments)


def pack_bias(bias: np.ndarray | None, cout: int) -> np.ndarray:
    b = np.zeros(4 * _slices(cout), np.float32)
    if bias is not None:
        b[:cout] = bias
    return b.reshape(-1, 4)


def pack_norm(gamma: np.ndarray | None, beta: np.ndarray | None, segments) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (C,) scale and shift of an instance_norm -> two (slices, 4) arrays in
    the tensor's lane layout; no affine terms = ones and zeros; padding lanes 0."""
    channels = sum(segments)
    gamma = np.ones(channels, np.float32) if gamma is None else np.asarray(gamma, np.float32)
    beta = np.zeros(channels, np.float32) if beta is None else np.asarray(beta, np.float32)
    return (pad_input_lanes(gamma, segments).reshape(-1, 4).astype(np.float32),
            pad_input_lanes(beta, segments).reshape(-1, 4).astype(np.float32))


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps, transposed=False):
    """Eval-mode BatchNorm after a conv folded into the conv: y = s * (conv + b - mean) + beta,
    s = gamma / sqrt(var + eps). Computed in float64, stored float32."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    w = np.asarray(weight, np.float64)
    w = w * (scale[None, :, None, None] if transposed else scale[:, None, None, None])
    b = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    b = (b - mean) * scale + beta
    return w.astype(np.float32), b.astype(np.float32)
