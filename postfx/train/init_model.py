"""A model file back into the torch generator it was exported from, weights and
all, so `postfx train --init MODEL` fine-tunes it (the temporal loss costs
minutes this way, not a whole run).

The file must have been written by `postfx train` (its metadata records the
generator's config), and the generator must have no BatchNorm: a norm folded
into a conv at export cannot be taken out again.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import model_format as fmt
from ..errors import InputError
from ..model_file import load
from ..reference import unpack_weight
from .config import GENERATOR_NORMS, UNetConfig
from .models import UNetGenerator


def generator_config(model) -> UNetConfig:
    """The UNetConfig a model file's training metadata records; InputError when it has none."""
    model = load(model)
    generator = (model.meta.get("training") or {}).get("generator")
    fields = {name for name in UNetConfig.__dataclass_fields__}
    if not isinstance(generator, dict) or not fields <= set(generator):
        raise InputError(f"model {model.name!r} records no generator config (it was not written by `postfx train`); "
                         "--init takes a model file `postfx train` made")
    cfg = UNetConfig(**{name: generator[name] for name in fields})
    if cfg.norm not in GENERATOR_NORMS or cfg.norm != "none":
        raise InputError(f"model {model.name!r} was trained with norm {cfg.norm!r}: its BatchNorms are folded into "
                         "the convs and cannot be taken out to train on; fine-tune only norm 'none' generators")
    return cfg


def _real_lanes(segments) -> np.ndarray:
    """Indices of the real channels among the lanes of a concatenation of `segments`
    (each segment padded to a multiple of 4 lanes)."""
    lanes, offset = [], 0
    for channels in segments:
        lanes.extend(range(offset, offset + channels))
        offset += 4 * fmt.slices(channels)
    return np.asarray(lanes)


def generator_from_model(model) -> UNetGenerator:
    """The generator of `model` (path, bundled name or Model), in train mode on the CPU."""
    model = load(model)
    cfg = generator_config(model)
    net = UNetGenerator(cfg)
    covered = set()
    for layer in model.graph.layers:
        if layer.op not in fmt.CONV_OPS:
            raise InputError(f"model {model.name!r}: layer {layer.name!r} ({layer.op}) is not part of the U-Net "
                             "postfx train builds")
        module = getattr(net, layer.name, None)
        if module is None:
            raise InputError(f"model {model.name!r}: layer {layer.name!r} has no module in a {cfg} generator")
        packed_weight, packed_bias = model.layer_weights(layer)
        lanes = unpack_weight(packed_weight)                    # (out lanes, in lanes, K, K)
        inputs = _real_lanes(fmt.in_segments(layer, model.graph.tensors))
        weight = lanes[:layer.out_channels][:, inputs]          # (out, in, K, K)
        if layer.op == "conv_transpose2d":
            weight = weight.transpose(1, 0, 2, 3)               # torch keeps (in, out, K, K)
        bias = packed_bias.reshape(-1)[:layer.out_channels]
        if tuple(module.weight.shape) != weight.shape:
            raise InputError(f"model {model.name!r}: layer {layer.name!r} holds weights {weight.shape}, its module "
                             f"{tuple(module.weight.shape)}")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if module.bias is not None:
                module.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
            elif np.any(bias):
                raise InputError(f"model {model.name!r}: layer {layer.name!r} has a bias its module lacks")
        covered.add(layer.name)
    missing = {name for name, _ in net.named_children() if name.startswith(("enc", "dec"))} - covered
    if missing:
        raise InputError(f"model {model.name!r} lacks layers {sorted(missing)} of its generator")
    return net
