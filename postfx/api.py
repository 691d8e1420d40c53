"""Arrays in, arrays out, through a headless EGL context made on demand."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import model_format as fmt
from . import reference
from .errors import InputError
from .model_file import Model, load

BACKENDS = ("gl", "numpy")
_NETWORK_CACHE_SIZE = 4
_networks: "OrderedDict[tuple, object]" = OrderedDict()


def _gl_network(model: Model, kernels: str, fp16: bool):
    """A GLNetwork in the headless context, reused across calls (LRU of a few)."""
    from .gl.context import headless_context
    from .gl.network import GLNetwork
    ctx = headless_context()
    key = (id(ctx), id(model), kernels, fp16)
    entry = _networks.get(key)
    if entry is not None and entry[0] is model and not entry[1].released:
        _networks.move_to_end(key)
        return entry[1]
    network = GLNetwork(ctx, model, kernels=kernels, fp16=fp16)
    _networks[key] = (model, network)
    while len(_networks) > _NETWORK_CACHE_SIZE:
        _, (_, old) = _networks.popitem(last=False)
        old.release()
    return network


def run(model, x, backend: str = "gl", *, kernels: str = "optimized", fp16: bool = False,
        return_all: bool = False):
    """Raw network: x (H, W, C_in) float32 -> (H', W', C_out) float32, with the
    model's pad-and-crop policy. backend "numpy" runs the reference implementation.
    return_all=True also returns every intermediate tensor as (lanes, H, W) at run size."""
    model = load(model)
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    x = reference.check_input(model, x)
    h, w = x.shape[:2]
    padded = reference.to_lanes(reference.pad_to_run_size(model, x))
    if backend == "numpy":
        values = reference.run_layers(model, padded)
    else:
        network = _gl_network(model, kernels, fp16)
        network.resize(*padded.shape[1:])
        network.write_tensor(fmt.INPUT_TENSOR, padded)
        network.run()
        names = list(model.graph.tensors) if return_all else [model.graph.output]
        values = {name: network.read_tensor(name) for name in names}
    oh, ow = fmt.output_size(model.graph, h, w)
    out = np.ascontiguousarray(np.transpose(values[model.graph.output][:model.output_channels, :oh, :ow], (1, 2, 0)))
    return (out, values) if return_all else out
