"""Exporters: turn trained networks into postfx model files.

`packing`, `builder`, `common` (the checks and the verification policy both
exporters share) and `lowering` (the graph lowering both front ends share) need
only numpy; `torch_export` and its front end `torch_lowering` need torch (the
``postfx[train]`` extra); `onnx_import`, its front end `onnx_lowering`,
`onnx_graph` and `onnx_verify` need onnx (the ``postfx[onnx]`` extra), never
onnxruntime.
"""
