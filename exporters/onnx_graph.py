"""An ONNX file read as data, before anything is lowered: the ModelProto with its
external data, onnx's own validity check, the one input and output, and which
nodes the import lowers.

- constants: initializers, Constant nodes and every node computed from them
  alone (the TorchScript exporter builds Pad's pads with ConstantOfShape /
  Concat / Reshape / Slice / Transpose / Cast chains) are evaluated once, by
  onnx.reference;
- live nodes: only what the output depends on is lowered; a weight-like input
  (a Conv weight, Pad pads, Resize scales, BatchNormalization statistics) does
  not make its producer live, so a pad computed from the input's shape is named
  as such rather than as an unsupported Shape op.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from postfx.errors import ExportError, UnsupportedLayer

MAIN_DOMAINS = ("", "ai.onnx")
ALIASES = ("Identity", "Dropout")        # the output is the input (Dropout at inference)
# Input positions that must be constants (weights, pads, scales, statistics): their
# producers are not lowered, and a value computed at run time there is named as such.
PARAMETER_INPUTS = {"Conv": {1, 2}, "ConvTranspose": {1, 2}, "BatchNormalization": {1, 2, 3, 4},
                    "InstanceNormalization": {1, 2}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3}, "Upsample": {1},
                    "Dropout": {1, 2}}
# Never evaluated ahead of time: random, or holding subgraphs that read outer values.
_NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli", "Dropout", "If", "Loop", "Scan"}
_FLOAT = onnx.TensorProto.FLOAT


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes as Python values, strings decoded."""
    out = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        out[attribute.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def display(node: onnx.NodeProto) -> str:
    """A node as messages name it."""
    return f"ONNX node {node.name!r} ({node.op_type})" if node.name else \
        f"ONNX {node.op_type} node making {list(node.output)[:1]}"


def load(source) -> tuple[onnx.ModelProto, str | None]:
    """The ModelProto, its external data loaded relative to the file; and the file's path."""
    if isinstance(source, onnx.ModelProto):
        for tensor in source.graph.initializer:
            if uses_external_data(tensor):
                raise ExportError(f"initializer {tensor.name!r} keeps its data in an external file; pass the .onnx "
                                  "file's path so that file is found beside it (or onnx.load() it first). "
                                  "Nothing was written")
        return source, None
    path = os.fspath(source)
    if os.path.isdir(path):
        raise ExportError(f"{path}: is a folder; pass the .onnx file. Nothing was written")
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such ONNX file (or not a regular file). Nothing was written")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path}: cannot read it as an ONNX model ({type(e).__name__}: {e}). "
                          "Nothing was written") from None
    # External data lives beside the model file, wherever the working directory is.
    folder = os.path.dirname(os.path.abspath(path))
    locations = {entry.value for tensor in model.graph.initializer if uses_external_data(tensor)
                 for entry in tensor.external_data if entry.key == "location"}
    missing = sorted(name for name in locations if not os.path.isfile(os.path.join(folder, name)))
    if missing:
        raise ExportError(f"{path}: the external data file(s) {missing} are missing from {folder} (tensors saved "
                          "outside the model are read from the model's folder). Nothing was written")
    try:
        load_external_data_for_model(model, folder)
    except Exception as e:
        raise ExportError(f"{path}: cannot read its external data ({type(e).__name__}: {e}). "
                          "Nothing was written") from None
    return model, path


def check(model: onnx.ModelProto, where: str) -> int:
    """onnx's own validity check; returns the default-domain opset."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:
        raise ExportError(f"{where} is not a valid ONNX model: {str(e).strip().splitlines()[0]}. "
                          "Nothing was written") from None
    opsets = [o.version for o in model.opset_import if o.domain in MAIN_DOMAINS]
    if not opsets:
        raise ExportError(f"{where} imports no default-domain (ai.onnx) opset. Nothing was written")
    return int(opsets[0])


def graph_input(graph: onnx.GraphProto, initializers: set[str]) -> tuple[str, int | None]:
    """The one real graph input (NCHW float32) and its channel count when declared."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedLayer(f"the graph has {len(inputs)} inputs {[i.name for i in inputs]}; a postfx model has "
                               "one (an NCHW float32 frame). Nothing was written")
    tensor_type = inputs[0].type.tensor_type
    if inputs[0].type.WhichOneof("value") != "tensor_type" or tensor_type.elem_type != _FLOAT:
        raise UnsupportedLayer(f"graph input {inputs[0].name!r} is not a float32 tensor; postfx runs float32 frames. "
                               "Nothing was written")
    channels = None
    if tensor_type.HasField("shape"):
        dims = tensor_type.shape.dim
        if len(dims) != 4:
            raise UnsupportedLayer(f"graph input {inputs[0].name!r} has {len(dims)} dimensions; postfx takes one "
                                   "NCHW frame (4 dimensions). Nothing was written")
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise UnsupportedLayer(f"graph input {inputs[0].name!r} has a fixed batch of {dims[0].dim_value}; "
                                   "postfx runs one frame at a time (batch 1). Nothing was written")
        if dims[1].HasField("dim_value"):
            channels = int(dims[1].dim_value)
    return inputs[0].name, channels


def graph_output(graph: onnx.GraphProto) -> str:
    """The one graph output."""
    if len(graph.output) != 1:
        raise UnsupportedLayer(f"the graph has {len(graph.output)} outputs {[o.name for o in graph.output]}; a "
                               "postfx model has one output tensor. Nothing was written")
    return graph.output[0].name


def live_nodes(model: onnx.ModelProto, constants: dict[str, np.ndarray], input_name: str,
               output_name: str) -> list[onnx.NodeProto]:
    """Marks constant-only nodes (structurally), walks back from the output, evaluates the
    constants the live nodes need into `constants` and returns the live non-constant nodes
    in order."""
    nodes = list(model.graph.node)
    constant_names = set(constants)
    folded = set()                       # node indices
    producer = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            if name:
                producer[name] = i
        if (node.domain in MAIN_DOMAINS and node.op_type not in _NOT_FOLDED
                and (node.input or node.op_type == "Constant")
                and all(not n or n in constant_names for n in node.input)):
            folded.add(i)
            constant_names.update(n for n in node.output if n)
    live, pending = set(), [output_name]
    while pending:
        name = pending.pop()
        i = producer.get(name)
        if i is None or i in live:
            continue
        live.add(i)
        node = nodes[i]
        parameters = PARAMETER_INPUTS.get(node.op_type, ())
        pending.extend(n for k, n in enumerate(node.input)
                       if n and (k not in parameters or n in constant_names))
    undefined = [n for i in live for n in nodes[i].input
                 if n and n not in producer and n not in constants and n != input_name]
    if undefined:
        raise ExportError(f"the graph reads tensor(s) {undefined[:3]} that nothing defines. Nothing was written")
    _fold_constants(model, constants, [nodes[i] for i in sorted(live & folded)])
    return [nodes[i] for i in sorted(live - folded)]


def _fold_constants(model: onnx.ModelProto, constants: dict[str, np.ndarray], needed: list[onnx.NodeProto]) -> None:
    """Evaluate the constant-only nodes `needed` (in graph order) with onnx.reference, once."""
    if not needed:
        return
    from onnx.reference import ReferenceEvaluator
    produced = {name for node in needed for name in node.output}
    fed = sorted({name for node in needed for name in node.input if name and name not in produced})
    graph = helper.make_graph(needed, "postfx_constants", [helper.make_empty_tensor_value_info(n) for n in fed],
                              [helper.make_empty_tensor_value_info(n) for n in sorted(produced)])
    sub = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        results = ReferenceEvaluator(sub).run(None, {n: constants[n] for n in fed}, intermediate=True)
    except Exception as e:
        raise ExportError(f"onnx.reference could not evaluate the graph's constant nodes "
                          f"({', '.join(sorted({n.op_type for n in needed}))}): {type(e).__name__}: {e}. "
                          "Nothing was written") from None
    constants.update({name: np.asarray(results[name]) for name in produced if name in results})


def reader_counts(nodes: list[onnx.NodeProto], output_name: str) -> dict[str, int]:
    """How many readers each ONNX tensor has among the live `nodes` (the graph output counts
    as one), reading through Identity / Dropout: an alias's readers are its input's."""
    readers = {output_name: 1}
    for node in reversed(nodes):
        parameters = PARAMETER_INPUTS.get(node.op_type, ())
        for k, name in enumerate(node.input):
            if not name or k in parameters:
                continue
            weight = readers.get(node.output[0], 0) if node.op_type in ALIASES else 1
            readers[name] = readers.get(name, 0) + weight
    return readers
