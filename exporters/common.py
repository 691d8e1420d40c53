"""What the torch exporter and the ONNX importer share: the verification policy
(probe frame, tolerance), the weight and graph checks that come before it, and
the style / raw decision. Needs numpy only.
"""
from __future__ import annotations

import numpy as np

from postfx import model_format as fmt
from postfx.errors import ExportError, ModelGraphError, UnsupportedLayer

# Verification tolerance, per tensor: max |reference - source| <= ATOL + RTOL * max |source|.
# Scaled by the tensor's peak rather than per element because a conv output near
# zero still carries the float32 rounding of its large partial sums.
VERIFY_ATOL = 1e-3
VERIFY_RTOL = 1e-3
PROBE_SEED = 0
PROBE_MIN_SIDE = 40      # px: large enough that every level of a deep U-Net sees several pixels
BATCHNORM_CHOICES = ("eval", "frame")


def finite(array: np.ndarray, what: str) -> np.ndarray:
    """Refuse NaN / Inf weights (reliability D3): they would poison every frame."""
    bad = int(array.size - np.isfinite(array).sum())
    if bad:
        raise ExportError(f"{what} holds {bad} NaN/Inf values; export from a checkpoint with finite "
                          "weights. Nothing was written")
    return array


def torch_in_channels(layer: fmt.Layer, weight: np.ndarray) -> int:
    """Input channels of a torch-layout weight: Conv2d (out, in, k, k), ConvTranspose2d (in, out, k, k)."""
    return weight.shape[1] if layer.op == "conv2d" else weight.shape[0]


def checked_graph(layers: list[fmt.Layer], input_channels: int, output: str, weights: dict,
                  hint: str) -> fmt.Graph:
    """The lowered layers as a format graph, with what the format alone cannot check: each
    conv's weight reads as many channels as its inputs carry, each norm has one term per
    channel. `hint` says what the caller can do about a channel mismatch."""
    try:
        graph = fmt.build_graph(layers, input_channels, output)
    except ModelGraphError as e:
        raise UnsupportedLayer(f"{e}; postfx cannot export this graph. Nothing was written") from None
    for layer in graph.layers:
        if layer.op in fmt.CONV_OPS:
            reads = fmt.in_segments(layer, graph.tensors)
            expects = torch_in_channels(layer, weights[layer.name][0])
            if sum(reads) != expects:
                raise ExportError(f"layer {layer.name!r} ({layer.op}) expects {expects} input channels but reads "
                                  f"{sum(reads)} ({' + '.join(map(str, reads))} from {list(layer.inputs)}); "
                                  f"{hint}. Nothing was written")
        elif layer.op == "instance_norm":
            channels = graph.tensors[layer.name].channels
            sizes = {np.size(term) for term in weights.get(layer.name, ()) if term is not None}
            if sizes - {channels}:
                raise ExportError(f"layer {layer.name!r} (instance_norm) normalizes {channels} channels but has "
                                  f"scale / shift terms of {sorted(sizes)}; {hint}. Nothing was written")
    return graph


def is_raw(graph: fmt.Graph, raw: bool | None) -> bool:
    """None: a style when the network has a style's shape (RGB / RGBD in, RGB out at the frame
    size), raw otherwise; False insists on a style."""
    out = graph.tensors[graph.output]
    style_shaped = graph.input_channels in (3, 4) and out.channels == 3 and out.scale == (1, 1)
    if raw is False and not style_shaped:
        raise ExportError(f"a style takes 3 (RGB) or 4 (RGBD) channels and gives 3 at the frame size; this network "
                          f"takes {graph.input_channels} and gives {out.channels} at scale "
                          f"{out.scale[0]}/{out.scale[1]}. Pass raw=True to export it for postfx.run. "
                          "Nothing was written")
    return not style_shaped if raw is None else raw


# --- verification --------------------------------------------------------------

def default_probe_size(pad_multiple: int) -> tuple[int, int]:
    """(H, W) of the verification probe: at least PROBE_MIN_SIDE, not square, and for
    pad_multiple m > 1 neither side a multiple of m, so the pad-and-crop path runs."""
    m = pad_multiple
    n = max(2, -(-PROBE_MIN_SIDE // m))
    return n * m + (m + 1) // 2, (n + max(1, n // 2)) * m + 1


def probe_frame(size: tuple[int, int], channels: int, value_range) -> np.ndarray:
    """The seeded probe: (H, W, C) float32 uniform over the input range."""
    h, w = size
    lo, hi = value_range
    return np.random.default_rng(PROBE_SEED).uniform(lo, hi, (h, w, channels)).astype(np.float32)


def divergence(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max |got - want|, its tolerance); inf when shapes differ or a value is not finite."""
    if got.shape != want.shape or not (np.isfinite(got).all() and np.isfinite(want).all()):
        return float("inf"), 0.0
    if got.size == 0:
        return 0.0, VERIFY_ATOL
    return float(np.abs(got - want).max()), VERIFY_ATOL + VERIFY_RTOL * float(np.abs(want).max())


def real_channels(lanes: np.ndarray, segments) -> np.ndarray:
    """(lanes, H, W) -> (channels, H, W): drop each segment's padding lanes."""
    starts = np.cumsum([0] + [4 * fmt.slices(c) for c in segments])
    return np.concatenate([lanes[s:s + c] for s, c in zip(starts[:-1], segments, strict=True)])
