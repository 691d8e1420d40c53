"""postfx: neural stylization as a real-time post-processing pass.

    import postfx
    model = postfx.load("ink")                    # bundled style name, or a path
    fx = postfx.PostFX(ctx, model)                # ctx: your moderngl.Context
    out = fx.apply(color_tex, depth_tex, near=0.1, far=200.0)
    img = postfx.stylize(rgb, depth=None, model="ink")
    y = postfx.run(model, x, backend="gl")        # raw network (H, W, C_in) -> (H, W, 3)

The runtime needs numpy, moderngl and safetensors; torch is only needed to
train and export (``pip install postfx[train]``); importing ONNX graphs needs
the ``onnx`` extra.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import errors
from .model import Model
from .model_file import load, save_model
from .styles import DEFAULT_STYLE, bundled_styles

__all__ = ["__version__", "errors", "Model", "load", "save_model", "bundled_styles", "DEFAULT_STYLE",
           "PostFX", "run", "stylize", "export_torch", "export_onnx"]


def __getattr__(name):
    # Lazy: importing postfx must not create a GL context or import torch.
    if name == "PostFX":
        from .postfx_pass import PostFX
        return PostFX
    if name in ("run", "stylize"):
        from . import api
        return getattr(api, name)
    if name == "export_torch":
        from .exporters.torch_export import export_torch
        return export_torch
    if name == "export_onnx":
        from .exporters.onnx_import import import_onnx
        return import_onnx
    raise AttributeError(f"module 'postfx' has no attribute {name!r}")
