"""Assemble a model file from a layer list and torch-layout numpy weights.
Needs numpy only: the torch exporter and the tests both build through it."""
from __future__ import annotations

import datetime as _dt

import numpy as np

from postfx import model_format as fmt
from postfx.model import Model
from postfx.model_file import model_from_parts

from .packing import pack_bias, pack_conv_transpose_weight, pack_conv_weight, pack_norm

COLOR_CHANNELS = {3: list(fmt.RGB), 4: list(fmt.RGBD)}


def channel_names(n: int, colour: bool) -> list[str]:
    """RGB / RGBD names for a style; c0, c1, ... for a raw network (op tests)."""
    return COLOR_CHANNELS[n] if colour else [f"c{i}" for i in range(n)]


def input_contract(channels: list[str], value_range=(-1.0, 1.0)) -> dict:
    contract = {"channels": channels, "range": list(map(float, value_range))}
    if "r" in channels:
        contract["color"] = {"encoding": "srgb"}
    if "depth" in channels:
        contract["depth"] = {"encoding": "linear",
                             "definition": "(z_view - near) / (far - near), clamped to [0, 1], mapped onto range"}
    return contract


def build_model(layers: list[fmt.Layer], weights: dict, *, input_channels: int, output: str,
                name: str = "model", raw: bool = False, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0),
                provenance: dict | None = None, training: dict | None = None,
                quality: dict | None = None) -> Model:
    """weights[layer.name] = (weight in torch layout, bias or None) for each conv layer,
    (gamma or None, beta or None), each (C,), for each instance_norm layer.
    A style takes RGB / RGBD and gives RGB; `raw=True` names channels c0, c1, ...
    (any count) for networks run only through postfx.run."""
    if not raw and input_channels not in COLOR_CHANNELS:
        raise ValueError(f"a style takes 3 (RGB) or 4 (RGBD) channels, got {input_channels}; pass raw=True")
    graph = fmt.build_graph(layers, input_channels, output)
    tensors = {}
    for layer in graph.layers:
        if layer.op == "instance_norm":
            gamma, beta = weights.get(layer.name, (None, None))
            scale, shift = pack_norm(gamma, beta, graph.tensors[layer.name].segments)
            tensors[f"{layer.name}.scale"], tensors[f"{layer.name}.shift"] = scale, shift
        if layer.op not in fmt.CONV_OPS:
            continue
        w, b = weights[layer.name]
        segments = fmt.in_segments(layer, graph.tensors)
        pack = pack_conv_weight if layer.op == "conv2d" else pack_conv_transpose_weight
        tensors[f"{layer.name}.weight"] = pack(np.asarray(w, np.float32), segments)
        tensors[f"{layer.name}.bias"] = pack_bias(None if b is None else np.asarray(b, np.float32),
                                                  layer.out_channels)
    from postfx import __version__
    meta = {
        "format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION, "name": name,
        "input": input_contract(channel_names(input_channels, not raw), input_range),
        "output": {"tensor": output, "channels": channel_names(graph.tensors[output].channels, not raw)
                   if raw else list(fmt.RGB), "range": list(map(float, output_range))},
        "layers": [layer.to_json() for layer in graph.layers],
        "pad_multiple": graph.pad_multiple,
        "provenance": {"exporter": f"postfx {__version__}",
                       "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       **(provenance or {})},
        "training": training, "quality": quality,
    }
    return model_from_parts(meta, tensors)
