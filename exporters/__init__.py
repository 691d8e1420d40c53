"""Exporters: turn trained networks into postfx model files.

`packing` and `builder` need only numpy; `torch_export` needs torch (the
``postfx[train]`` extra).
"""
