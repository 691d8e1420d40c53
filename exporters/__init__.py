"""Exporters: turn trained networks into postfx model files.

`packing`, `builder` and `common` (what both exporters share: the checks and the
verification policy) need only numpy; `torch_export` needs torch (the
``postfx[train]`` extra); `onnx_import` and `onnx_verify` need onnx (the
``postfx[onnx]`` extra), never onnxruntime.
"""
