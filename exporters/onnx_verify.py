"""The ONNX importer's self-check (reliability D5), as torch_export.verify does it
for torch: the imported model, run by the numpy reference runtime on a seeded
probe frame whose size is not a multiple of the model's pad_multiple, must
reproduce the ONNX graph run by onnx.reference (numpy, in the onnx package) on
the same frame padded the way the runtime pads it (edge repeat at the bottom /
right, run, crop). On disagreement the error names the first diverging layer.

What is evaluated: the graph's live nodes as they are in the file, fed the
constants onnx.reference computed from its initializers and Constant nodes.
Under batchnorm="frame" each BatchNormalization kept as a per-frame norm is
evaluated as InstanceNormalization with the same scale, bias and epsilon: the
per-frame statistics the file declares, whatever statistics the node held.

Two onnx.reference kernels are replaced (by class name): BatchNormalization, whose
version for opsets 9-13 computes training-mode statistics, and ConvTranspose, for
speed: onnx.reference's ConvTranspose scatters with a Python loop per output
channel and input pixel (about 4 s for 128 -> 64 channels at 32x32, minutes for
a U-Net decoder), so it is replaced here by one gemm and a strided add per kernel
tap (tests/test_onnx.py checks it against the stock kernel). Conv, norms, Pad
and Resize are vectorized in onnx.reference already: a 256-channel 3x3 Conv at
64x64 takes about 0.4 s on one core.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_conv_transpose import ConvTranspose as _StockConvTranspose

from postfx import model_format as fmt
from postfx import reference
from postfx.errors import ExportError, ExportVerificationError
from postfx.model import Model

from .common import PROBE_SEED, VERIFY_ATOL, VERIFY_RTOL, default_probe_size, divergence, probe_frame, real_channels


class ConvTranspose(_StockConvTranspose):
    """onnx.reference's ConvTranspose, fast where postfx can import it (2-D, group 1, dilation 1,
    explicit pads); the stock kernel otherwise. Registered by class name."""

    def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None, kernel_shape=None,
             output_padding=None, output_shape=None, pads=None, strides=None):
        simple = (X.ndim == 4 and (group or 1) == 1 and all(d == 1 for d in (dilations or [1, 1]))
                  and output_shape is None and auto_pad in (None, "NOTSET", "VALID", b"NOTSET", b"VALID")
                  and (kernel_shape is None or list(kernel_shape) == list(W.shape[2:])))
        if not simple:
            return super()._run(X, W, B, auto_pad=auto_pad, dilations=dilations, group=group,
                                kernel_shape=kernel_shape, output_padding=output_padding, output_shape=output_shape,
                                pads=pads, strides=strides)
        sh, sw = strides or (1, 1)
        oph, opw = output_padding or (0, 0)
        top, left, bottom, right = pads if pads is not None and auto_pad not in ("VALID", b"VALID") else (0, 0, 0, 0)
        _, h, w = X.shape[1:]
        cout, kh, kw = W.shape[1:]
        out = []
        for image in X:                                             # (Cin, H, W)
            taps = np.tensordot(W, image, axes=([0], [0]))          # (Cout, kh, kw, H, W)
            full = np.zeros((cout, (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw), np.float32)
            for ky in range(kh):
                for kx in range(kw):
                    full[:, ky:ky + (h - 1) * sh + 1:sh, kx:kx + (w - 1) * sw + 1:sw] += taps[:, ky, kx]
            full = full[:, top:full.shape[1] - bottom, left:full.shape[2] - right]
            out.append(full if B is None else full + B[:, None, None])
        return (np.stack(out).astype(X.dtype),)


class BatchNormalization(OpRun):
    """Inference BatchNormalization, y = scale * (x - mean) / sqrt(var + epsilon) + bias, for the
    eval-mode nodes the importer folds (it refuses training-mode ones under batchnorm='eval' and
    evaluates the per-frame ones as InstanceNormalization). onnx.reference's kernel for opsets
    9-13 blends the input's statistics into the running ones, as in training, because the
    momentum attribute always has a default there."""

    def _run(self, x, scale, bias, mean, var, epsilon=1e-5, **training_attributes):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon) * scale.reshape(shape)
        return ((y + bias.reshape(shape)).astype(x.dtype),)


def evaluation_model(lowering, model_proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The live nodes as a model of their own (per-frame BatchNormalization evaluated as
    InstanceNormalization), and the constants it is fed."""
    per_frame = {node.output[0] for node in lowering.per_frame}
    nodes = []
    for node in lowering.nodes:
        if node.output[0] in per_frame:
            epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
            node = helper.make_node("InstanceNormalization", list(node.input[:3]), [node.output[0]],
                                    name=node.name, epsilon=float(epsilon))
        nodes.append(node)
    produced = {name for node in nodes for name in node.output}
    fed = sorted({name for node in nodes for name in node.input
                  if name and name not in produced and name in lowering.constants})
    graph = helper.make_graph(nodes, "postfx_verification",
                              [helper.make_empty_tensor_value_info(n) for n in [lowering.input_name, *fed]],
                              [helper.make_empty_tensor_value_info(lowering.output_name)])
    model = helper.make_model(graph, opset_imports=model_proto.opset_import, ir_version=model_proto.ir_version)
    return model, {name: lowering.constants[name] for name in fed}


def run_graph(lowering, model_proto: onnx.ModelProto, padded_hwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the live graph on one (H, W, C) frame: name -> (1, C, H, W)."""
    model, constants = evaluation_model(lowering, model_proto)
    x = np.ascontiguousarray(padded_hwc.transpose(2, 0, 1))[None]
    try:
        return ReferenceEvaluator(model, new_ops=[ConvTranspose, BatchNormalization]).run(
            None, {lowering.input_name: x, **constants}, intermediate=True)
    except Exception as e:
        raise ExportError(f"onnx.reference could not run the graph on the {padded_hwc.shape[1]}x"
                          f"{padded_hwc.shape[0]} probe: {type(e).__name__}: {e}. Nothing was written") from None


def _diagnose(lowering, model: Model, values: dict, results: dict) -> str:
    """Where the model and the graph part ways, as a sentence."""
    for layer in model.graph.layers:
        tail = lowering.tails[layer.name]
        got = real_channels(values[layer.name], model.graph.tensors[layer.name].segments)
        want = np.asarray(results.get(tail, np.zeros(0)))
        err, tol = divergence(got, want[0] if want.ndim == 4 else want)
        if not err <= tol:
            return (f"first diverging layer: {layer.name!r} ({layer.op}, ONNX tensor {tail!r}), "
                    f"max |delta| {err:.3g} > {tol:.3g}")
    return "every layer matches the graph at run size, so the runtime's crop or output read-out differs"


def verify(lowering, model_proto: onnx.ModelProto, model: Model, size=None, value_range=(-1.0, 1.0)) -> dict:
    """Run the model (numpy reference) and the ONNX graph (onnx.reference) on one seeded probe
    frame; raise ExportVerificationError naming where they part ways."""
    h, w = size or default_probe_size(model.pad_multiple)
    x = probe_frame((h, w), model.input_channels, value_range)
    padded = reference.pad_to_run_size(model, x)                   # edge repeat, as the runtime pads
    values = reference.run_layers(model, reference.to_lanes(padded))
    oh, ow = fmt.output_size(model.graph, h, w)
    got = np.transpose(values[model.graph.output][:model.output_channels, :oh, :ow], (1, 2, 0))
    results = run_graph(lowering, model_proto, padded)
    out = np.asarray(results[lowering.output_name])
    want = out[0, :, :oh, :ow].transpose(1, 2, 0) if out.ndim == 4 else np.zeros(0)
    err, tol = divergence(got, want)
    if not err <= tol:
        raise ExportVerificationError(
            f"the imported model does not reproduce the ONNX graph (run by onnx.reference) on a {w}x{h} probe: "
            f"output max |delta| {err:.3g} > tolerance {tol:.3g} ({VERIFY_ATOL} + {VERIFY_RTOL} * max|onnx|); "
            f"{_diagnose(lowering, model, values, results)}. Nothing was written")
    check = {"probe": [h, w], "seed": PROBE_SEED, "max_abs_error": err, "against": "onnx.reference",
             "tolerance": f"max|delta| <= {VERIFY_ATOL} + {VERIFY_RTOL} * max|onnx|"}
    if lowering.per_frame:
        check["batchnorm"] = "evaluated as InstanceNormalization (per-frame statistics)"
    return check
