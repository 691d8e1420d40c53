"""torch module -> postfx model file.

    model = postfx.export_torch(generator, "my_style.safetensors")

A deep copy of the module, in eval mode, is traced with torch.fx and lowered
node by node onto the layer graph of model_format.py (torch_lowering.py says
what becomes what). Then every export checks itself (reliability D5): the built
model, run by the numpy reference runtime on a seeded probe frame whose size is
not a multiple of the model's pad_multiple, must reproduce the torch module run
on the same frame padded the way the runtime pads it (edge repeat at the bottom
/ right, run, crop). Only then is the file written, atomically. Nothing is ever
written when an export fails.
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.fx
from torch import nn

from postfx import __version__, reference
from postfx import model_format as fmt
from postfx.errors import ExportError, ExportVerificationError
from postfx.model import Model
from postfx.model_file import save_model

from .builder import build_model
from .common import (
    BATCHNORM_CHOICES,
    PROBE_SEED,
    VERIFY_ATOL,
    VERIFY_RTOL,
    checked_graph,
    default_probe_size,
    divergence,
    is_raw,
    probe_frame,
    real_channels,
)
from .torch_lowering import Lowering, class_name, trace

# --- verification --------------------------------------------------------------

class _Recorder(torch.fx.Interpreter):
    """Runs the traced graph and keeps a copy of the chosen nodes' values (copied,
    because a later in-place op may overwrite the tensor)."""

    def __init__(self, gm, wanted):
        super().__init__(gm)
        self.wanted, self.seen = set(wanted), {}

    def run_node(self, n):
        result = super().run_node(n)
        if n in self.wanted and isinstance(result, torch.Tensor):
            self.seen[n] = result.detach().clone()
        return result


def _to_nchw(x_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_hwc.transpose(2, 0, 1)))[None]


def _numpy_or_empty(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.zeros(0)


def _diagnose(gm, lowering, model, padded, module_output) -> str:
    """Where the model and the module part ways, as a sentence."""
    values = reference.run_layers(model, reference.to_lanes(padded))
    recorder = _Recorder(gm, lowering.tails.values())
    with torch.no_grad():
        traced_output = recorder.run(_to_nchw(padded))
    for layer in model.graph.layers:
        tail = lowering.tails[layer.name]
        err, tol = divergence(real_channels(values[layer.name], model.graph.tensors[layer.name].segments),
                               recorder.seen[tail][0].numpy())
        if not err <= tol:
            return f"first diverging layer: {layer.name!r} ({layer.op}, torch node {tail.name!r}), " \
                   f"max |delta| {err:.3g} > {tol:.3g}"
    err, tol = divergence(_numpy_or_empty(traced_output), _numpy_or_empty(module_output))
    if not err <= tol:
        return ("every layer matches the traced graph, but the module's forward computes something else: "
                "something torch.fx does not record (Python control flow, a non-traced side effect, "
                "an in-place '+=' on a tensor read elsewhere)")
    return "every layer matches the module at run size, so the runtime's crop or output read-out differs"


def verify(net, gm, lowering, model: Model, size=None, value_range=(-1.0, 1.0)) -> dict:
    """Run the model (numpy reference) and the module on one seeded probe frame;
    raise ExportVerificationError naming where they part ways."""
    h, w = size or default_probe_size(model.pad_multiple)
    x = probe_frame((h, w), model.input_channels, value_range)
    got = reference.run(model, x)                                       # (H, W, C_out)
    padded = reference.pad_to_run_size(model, x)                        # edge repeat, as the runtime pads
    try:
        with torch.no_grad():
            out = net(_to_nchw(padded))                                 # (1, C_out, H', W') at run size
    except Exception as e:
        raise ExportError(f"running {class_name(net)} on the {w}x{h} probe failed: {type(e).__name__}: {e}. "
                          "Nothing was written") from e
    oh, ow = fmt.output_size(model.graph, h, w)
    is_image = isinstance(out, torch.Tensor) and out.ndim == 4
    want = _numpy_or_empty(out[0, :, :oh, :ow].permute(1, 2, 0) if is_image else None)
    err, tol = divergence(got, want)
    if not err <= tol:
        raise ExportVerificationError(
            f"the exported model does not reproduce {class_name(net)} on a {w}x{h} probe: output max |delta| "
            f"{err:.3g} > tolerance {tol:.3g} ({VERIFY_ATOL} + {VERIFY_RTOL} * max|torch|); "
            f"{_diagnose(gm, lowering, model, padded, out)}. Nothing was written")
    return {"probe": [h, w], "seed": PROBE_SEED, "max_abs_error": err,
            "tolerance": f"max|delta| <= {VERIFY_ATOL} + {VERIFY_RTOL} * max|torch|"}


# --- the entry point -------------------------------------------------------------

def _frame_statistics(net: nn.Module) -> None:
    """BatchNorms of `net` (a private copy) normalize by each frame's own statistics, as the
    runtime will, so the verification compares like with like; nothing else changes."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None


def _checked_graph(lowering: Lowering, input_channels: int | None) -> fmt.Graph:
    """The lowered layers as a format graph, with what the format alone cannot check."""
    channels = input_channels or lowering.input_channels()
    if channels is None:
        raise ExportError("cannot tell the input channel count (no conv reads the input alone); "
                          "pass input_channels=. Nothing was written")
    return checked_graph(list(lowering.layers.values()), channels, lowering.output, lowering.weights,
                         hint="check input_channels=")


def export_torch(module: nn.Module, path: str | os.PathLike | None = None, *, name: str | None = None,
                 input_channels: int | None = None, raw: bool | None = None,
                 probe_size: tuple[int, int] | None = None, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0),
                 batchnorm: str = "eval", training: dict | None = None, quality: dict | None = None,
                 provenance: dict | None = None) -> Model:
    """Export `module` to a verified postfx Model, and write it to `path` if given.

    input_channels: the input's channel count, when no conv reads the input alone.
    raw: None picks a style (RGB / RGBD in, RGB out at the frame size) when the
    network has that shape and a raw network (channels c0, c1, ...) otherwise;
    False insists on a style. probe_size: (H, W) of the verification frame.
    batchnorm: what BatchNorm2d means at inference, recorded in the file: "eval"
    (running statistics, folded into the conv before it) or "frame" (each frame's
    own statistics, as torch in train mode with a batch of one: the pix2pix paper's
    test-time behaviour). Dropout is always off.
    training / quality / provenance: dicts recorded in the file's metadata.
    Raises UnsupportedLayer, ExportVerificationError or ExportError; then nothing
    is written.
    """
    if batchnorm not in BATCHNORM_CHOICES:
        raise ExportError(f"batchnorm must be one of {list(BATCHNORM_CHOICES)}, got {batchnorm!r}. "
                          "Nothing was written")
    net = copy.deepcopy(module).to(device="cpu", dtype=torch.float32).eval()   # the caller's stays as it was
    if batchnorm == "frame":
        _frame_statistics(net)
    gm = trace(net)
    lowering = Lowering(gm, batchnorm)
    graph = _checked_graph(lowering, input_channels)
    cls = type(module)
    facts = {"exporter": f"postfx {__version__} torch_export", "source": "torch.fx",
             "module": f"{cls.__module__}.{cls.__qualname__}", "torch": torch.__version__,
             "norm": {"semantics": batchnorm, "folded_batchnorm": lowering.folded_norms}}
    if batchnorm == "frame":
        facts["norm"]["frame_batchnorm"] = lowering.kept_batchnorms
    build = functools.partial(build_model, graph.layers, lowering.weights, input_channels=graph.input_channels,
                              output=graph.output, name=name or (Path(path).stem if path is not None else cls.__name__),
                              raw=is_raw(graph, raw), input_range=input_range, output_range=output_range,
                              training=training, quality=quality)
    provenance = {**(provenance or {}), **facts}
    check = verify(net, gm, lowering, build(provenance=provenance), probe_size, input_range)
    # Built again with the check recorded: the file then holds exactly the bytes the loader accepted.
    model = build(provenance={**provenance, "verification": check})
    if path is not None:
        save_model(model, path)
        model.path = os.fspath(path)
    return model
