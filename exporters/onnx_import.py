"""ONNX graph -> postfx model file, with the `onnx` package alone (no onnxruntime).

    model = postfx.export_onnx("generator.onnx", "my_style.safetensors")
    $ postfx export generator.onnx my_style.safetensors

The same op set as the torch exporter (torch_export.py), lowered the same way
onto the layer graph of model_format.py. First the graph is read as data
(onnx_graph.py: constants evaluated once, only the nodes the output depends on
kept), then its live nodes are lowered in graph order (onnx_lowering.py says what
becomes what). Anything unsupported raises UnsupportedLayer naming the op, the
node and why. Then the import checks itself (reliability D5, onnx_verify.py)
against the ONNX graph run by onnx.reference, and only then is the file
written, atomically.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import onnx

from postfx import __version__
from postfx.errors import ExportError
from postfx.model import Model
from postfx.model_file import save_model

from . import onnx_graph, onnx_verify
from .builder import build_model
from .common import BATCHNORM_CHOICES, checked_graph, is_raw
from .onnx_lowering import Lowering


def import_onnx(source, path: str | os.PathLike | None = None, *, batchnorm: str = "eval", name: str | None = None,
                raw: bool | None = None, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0),
                probe_size: tuple[int, int] | None = None) -> Model:
    """Import an ONNX graph as a verified postfx Model, and write it to `path` if given.

    source: a .onnx path (external data files are found relative to it) or an
    onnx.ModelProto. batchnorm: what BatchNormalization means at inference,
    recorded in the file: "eval" (running statistics, folded into the conv before
    it) or "frame" (each frame's own statistics, the pix2pix paper's test time;
    torch.onnx.export folds BatchNorm into convs unless given
    training=TrainingMode.PRESERVE, so export for "frame" that way). raw: None
    picks a style (RGB / RGBD in, RGB out at the frame size) when the network has
    that shape, a raw network (channels c0, c1, ...) otherwise; False insists on a
    style. probe_size: (H, W) of the verification frame. The default (at least 40 px
    a side, not a multiple of pad_multiple) runs a U-Net 8 / ngf 64 (pad_multiple
    256) at 768x1024: about 8 s in onnx.reference and 8 s in the numpy reference on
    two busy cores; (200, 150) runs it at 256x256, about 3 s for both. ResNet-9
    (pad_multiple 4) is checked at 44x64 by default, about 1 s.
    Raises UnsupportedLayer, NormSemanticsMismatch, ExportVerificationError or
    ExportError; then nothing is written.
    """
    if batchnorm not in BATCHNORM_CHOICES:
        raise ExportError(f"batchnorm must be one of {list(BATCHNORM_CHOICES)}, got {batchnorm!r}. "
                          "Nothing was written")
    model_proto, file = onnx_graph.load(source)
    opset = onnx_graph.check(model_proto, file or "the ONNX model")
    lowering = Lowering(model_proto, opset, batchnorm)
    channels = lowering.input_channels()
    if channels is None:
        raise ExportError("cannot tell the input channel count: the graph input does not declare it and no conv "
                          "reads the input alone. Nothing was written")
    graph = checked_graph(list(lowering.layers.values()), channels, lowering.output, lowering.weights,
                          hint="the graph's weights disagree with the channels its tensors carry")
    producer = f"{model_proto.producer_name} {model_proto.producer_version}".strip()
    facts = {"exporter": f"postfx {__version__} onnx_import", "source": "onnx", "opset": opset,
             "producer": producer or None, "onnx": onnx.__version__,
             "norm": {"semantics": batchnorm, "folded_batchnorm": lowering.folded_norms}}
    if file is not None:
        facts["file"] = os.path.basename(file)
    if batchnorm == "frame":
        facts["norm"]["frame_batchnorm"] = lowering.kept_batchnorms
        if not lowering.kept_batchnorms:
            # ONNX exporters fold eval-mode BatchNorm into the conv themselves; the
            # running statistics are then baked in and "frame" cannot be honoured.
            warnings.warn("batchnorm='frame' found no BatchNormalization node to keep: if the network has "
                          "BatchNorm, the ONNX exporter folded it (export with training=TrainingMode.PRESERVE "
                          "and the BatchNorms in train mode), so this file computes eval-mode statistics",
                          stacklevel=2)
    default_name = Path(path).stem if path is not None else Path(file).stem if file else "model"
    build = functools.partial(build_model, graph.layers, lowering.weights, input_channels=graph.input_channels,
                              output=graph.output, name=name or default_name, raw=is_raw(graph, raw),
                              input_range=input_range, output_range=output_range)
    check = onnx_verify.verify(lowering, model_proto, build(provenance=facts), probe_size, input_range)
    # Built again with the check recorded: the file then holds exactly the bytes the loader accepted.
    model = build(provenance={**facts, "verification": check})
    if path is not None:
        save_model(model, path)
        model.path = os.fspath(path)
    return model
