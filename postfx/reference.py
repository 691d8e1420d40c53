"""The numpy reference runtime: the executable specification of a model file.

It reads the same packed tensors the shaders read and keeps activations in the
same lane layout (each segment padded to a multiple of 4 channels), as
(lanes, H, W) float32 arrays. Plain code over speed: the GL kernels are tested
against it, and it is tested against torch.
"""
from __future__ import annotations

import numpy as np

from . import model_format as fmt
from .errors import InputError
from .model import Model


def activate(x: np.ndarray, activation: str, negative_slope: float = 0.0) -> np.ndarray:
    if activation == "none":
        return x
    if activation == "relu":
        return np.maximum(x, 0)
    if activation == "leaky_relu":
        return np.where(x >= 0, x, x * np.float32(negative_slope))
    if activation == "tanh":
        return np.tanh(x)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-x))
    raise ValueError(activation)


def unpack_weight(packed: np.ndarray) -> np.ndarray:
    """(os, K, K, is, 4 in, 4 out) -> (out lanes, in lanes, K, K), the torch Conv2d layout."""
    os_, k, _, is_, _, _ = packed.shape
    return np.transpose(packed, (0, 5, 3, 4, 1, 2)).reshape(os_ * 4, is_ * 4, k, k)


def conv2d(x, weight, bias, stride, padding, padding_mode):
    """x (Cin, H, W), weight (Cout, Cin, K, K) -> (Cout, Ho, Wo)."""
    k = weight.shape[-1]
    mode = "reflect" if padding_mode == "reflect" else "constant"
    xp = np.pad(x, [(0, 0), (padding, padding), (padding, padding)], mode=mode)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    out = np.tensordot(weight, windows, axes=([1, 2, 3], [0, 3, 4]))      # (Cout, Ho, Wo)
    return out.astype(np.float32) + bias[:, None, None]


def conv_transpose2d(x, weight, bias, stride, padding, output_padding):
    """x (Cin, H, W), weight in conv layout (Cout, Cin, K, K) -> (Cout, Ho, Wo);
    scatter form: input pixel (y, x) feeds output (y*s - p + ky, x*s - p + kx)."""
    cout, _, k, _ = weight.shape
    _, h, w = x.shape
    full_h, full_w = (h - 1) * stride + k + output_padding, (w - 1) * stride + k + output_padding
    out = np.zeros((cout, full_h, full_w), np.float32)
    for ky in range(k):
        for kx in range(k):
            contrib = np.tensordot(weight[:, :, ky, kx], x, axes=([1], [0]))
            out[:, ky:ky + (h - 1) * stride + 1:stride, kx:kx + (w - 1) * stride + 1:stride] += contrib
    ho, wo = full_h - 2 * padding, full_w - 2 * padding
    return out[:, padding:padding + ho, padding:padding + wo] + bias[:, None, None]


def upsample2x(x, mode):
    if mode == "nearest":
        return x.repeat(2, axis=1).repeat(2, axis=2)
    # bilinear, align_corners=False: output pixel i samples input (i + 0.5) / 2 - 0.5
    def axis_weights(n):
        src = np.maximum((np.arange(2 * n) + 0.5) / 2 - 0.5, 0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, (src - i0).astype(np.float32)
    _, h, w = x.shape
    y0, y1, fy = axis_weights(h)
    x0, x1, fx = axis_weights(w)
    rows = x[:, y0] * (1 - fy)[None, :, None] + x[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]


def avg_pool2d(x, kernel, stride, padding, count_include_pad):
    """x (lanes, H, W) -> window means (torch AvgPool2d, ceil_mode=False); the
    divisor is kernel^2, or with count_include_pad False the taps inside x."""
    pad = [(0, 0), (padding, padding), (padding, padding)]
    def window_sums(a):
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad), (kernel, kernel), axis=(1, 2))
        return windows[:, ::stride, ::stride].sum(axis=(3, 4), dtype=np.float64)
    sums = window_sums(x)
    if count_include_pad:
        return (sums / (kernel * kernel)).astype(np.float32)
    taps = window_sums(np.ones((1,) + x.shape[1:]))
    return (sums / taps).astype(np.float32)


def instance_norm(x, scale, shift, eps):
    """x (lanes, H, W): each lane normalized by its own mean and biased variance over
    H x W (computed in float64), then scaled and shifted; zero padding lanes stay 0."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(1, 2), keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps) * scale[:, None, None] + shift[:, None, None]
    return y.astype(np.float32)


def to_lanes(x_hwc: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (4 * slices(C), H, W), zero padding lanes."""
    h, w, c = x_hwc.shape
    out = np.zeros((4 * fmt.slices(c), h, w), np.float32)
    out[:c] = np.transpose(x_hwc, (2, 0, 1))
    return out


def run_layers(model: Model, x_lanes: np.ndarray) -> dict[str, np.ndarray]:
    """Run the graph on an input already at run size; returns every tensor (lanes, H, W)."""
    values = {fmt.INPUT_TENSOR: x_lanes}
    for layer in model.graph.layers:
        srcs = [values[name] for name in layer.inputs]
        if layer.op in fmt.CONV_OPS:
            x = np.concatenate(srcs, axis=0) if len(srcs) > 1 else srcs[0]
            packed_w, packed_b = model.layer_weights(layer)
            w, b = unpack_weight(packed_w), packed_b.reshape(-1)
            if layer.op == "conv2d":
                y = conv2d(x, w, b, layer.stride, layer.padding, layer.padding_mode)
            else:
                y = conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.output_padding)
        elif layer.op == "add":
            y = srcs[0] + srcs[1]
        elif layer.op == "upsample":
            y = upsample2x(srcs[0], layer.mode)
        elif layer.op == "concat":
            y = np.concatenate(srcs, axis=0)
        elif layer.op == "avg_pool2d":
            y = avg_pool2d(srcs[0], layer.kernel, layer.stride, layer.padding, layer.count_include_pad)
        elif layer.op == "instance_norm":
            scale, shift = model.layer_weights(layer)
            y = instance_norm(srcs[0], scale.reshape(-1), shift.reshape(-1), layer.eps)
        else:
            y = srcs[0]
        values[layer.name] = activate(y, layer.activation, layer.negative_slope).astype(np.float32)
    return values


def check_input(model: Model, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != model.input_channels:
        raise InputError(f"network input must be (H, W, {model.input_channels}) for model {model.name!r}, "
                         f"got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"network input must be floating point (in {list(model.input_range)}), got {x.dtype}")
    return x.astype(np.float32, copy=False)


def pad_to_run_size(model: Model, x: np.ndarray) -> np.ndarray:
    """(H, W, C) -> run size, repeating the bottom / right edge."""
    h, w = x.shape[:2]
    rh, rw = fmt.run_size(model.graph, h, w)
    return np.pad(x, [(0, rh - h), (0, rw - w), (0, 0)], mode="edge")


def run(model: Model, x) -> np.ndarray:
    """Raw network: (H, W, C_in) float32 -> (H, W, C_out) float32, pad-and-crop included."""
    x = check_input(model, x)
    h, w = x.shape[:2]
    values = run_layers(model, to_lanes(pad_to_run_size(model, x)))
    oh, ow = fmt.output_size(model.graph, h, w)
    out = values[model.graph.output][:model.output_channels, :oh, :ow]
    return np.ascontiguousarray(np.transpose(out, (1, 2, 0)))
