"""Training checkpoints: one file per run directory, replaced atomically (reliability D1:
a crash or kill while writing leaves the old or the new complete file), holding all
the state a resumed run needs to continue bitwise as the uninterrupted one (D2):

    format, format_version, step, config        the run
    generator, discriminator                    state dicts (weights and norm buffers)
    optimizer_g, optimizer_d                    Adam state
    scheduler_g, scheduler_d                    LambdaLR state
    rng                                         per rank: torch CPU (and CUDA), numpy, python
    sampler                                     CropSampler.state_dict (its state is the step)
    counters                                    non-finite steps, the open log interval, ...

It is written with torch.save and read with torch.load(weights_only=True): tensors,
numbers, strings, lists and dicts only, so reading a checkpoint never runs code.
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "postfx.checkpoint"
FORMAT_VERSION = 1


def rng_state(device: torch.device) -> dict:
    """This process's random generators: torch CPU, the device's CUDA generator, numpy's and
    python's global ones (postfx draws from none of the last two; libraries may)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate()}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint there; start the run without resume, or pass the "
                              "run directory the first run wrote") from None
    except Exception as e:      # torch raises pickle / zip / runtime errors of many kinds for a bad file
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e}); checkpoints are "
                              "replaced atomically, so this file was damaged after it was written") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a postfx training checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('format_version')!r}, this postfx "
                              f"reads version {FORMAT_VERSION}; resume it with the postfx that wrote it")
    return state
