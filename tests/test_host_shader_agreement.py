"""Constants kept on both sides of the host / shader boundary agree: the storage and
image binding points, the weight image's width, the work-group sizes the planners
divide by. Parsed from the shader files, compared with postfx's Python constants."""
from __future__ import annotations

import re

import pytest

from postfx.gl import dispatch, frame_io, programs
from postfx.gl.conv_kernels import TiledConv

BUFFER_BINDINGS = {"SourceA": dispatch.BIND_SOURCE_A, "Source": dispatch.BIND_SOURCE_A,
                   "SourceB": dispatch.BIND_SOURCE_B, "Destination": dispatch.BIND_DESTINATION,
                   "Weights": dispatch.BIND_WEIGHTS, "Bias": dispatch.BIND_BIAS}
IMAGE_BINDINGS = {"source_a": dispatch.IMAGE_SOURCE_A, "source_b": dispatch.IMAGE_SOURCE_B,
                  "weight_image": dispatch.IMAGE_WEIGHTS, "output_image": frame_io.IMAGE_OUTPUT,
                  "network_output": frame_io.IMAGE_NETWORK_OUTPUT, "depth_out": frame_io.IMAGE_DEPTH_OUT,
                  "offsets_out": frame_io.IMAGE_OFFSETS_OUT}
NETWORK_SHADERS = ["conv_naive.comp", "conv_tiled.comp", "conv_blocked.comp", "conv_cooperative.comp",
                   "conv_transpose_naive.comp", "conv_transpose_tiled.comp", "conv_transpose_blocked.comp",
                   "conv_transpose_s2_blocked.comp", "conv_transpose_cooperative.comp", "elementwise.comp",
                   "pack_input.comp", "present.comp", "temporal_resolve.comp", "result_offsets.comp"]
BUFFER = re.compile(r"layout\(std430,\s*binding\s*=\s*(\d+)\)[^{;]*buffer\s+(\w+)")
IMAGE = re.compile(r"layout\([^)]*binding\s*=\s*(\d+)\)[^;]*uniform\s+image\w+\s+(\w+)")
LOCAL_SIZE = re.compile(r"local_size_x\s*=\s*(\w+),\s*local_size_y\s*=\s*(\w+)")


@pytest.mark.parametrize("shader", NETWORK_SHADERS)
def test_binding_points_agree(shader):
    source = programs.expanded_source(shader)[0]
    for binding, name in BUFFER.findall(source):
        if name in BUFFER_BINDINGS:
            assert int(binding) == BUFFER_BINDINGS[name], f"{shader}: buffer {name} at binding {binding}"
    for binding, name in IMAGE.findall(source):
        assert int(binding) == IMAGE_BINDINGS[name], f"{shader}: image {name} at unit {binding}"


def test_the_weight_image_width_agrees():
    (width,) = re.findall(r"#define WEIGHT_IMAGE_WIDTH (\d+)", programs.shader_source("weight_image.glsl"))
    assert int(width) == dispatch.WEIGHT_IMAGE_WIDTH


DEFAULT_LOCAL_SIZE = dispatch.Dispatch.__dataclass_fields__["local_size"].default     # naive, elementwise


@pytest.mark.parametrize("shader,planned", [
    ("conv_naive.comp", DEFAULT_LOCAL_SIZE), ("conv_transpose_naive.comp", DEFAULT_LOCAL_SIZE),
    ("elementwise.comp", DEFAULT_LOCAL_SIZE), ("conv_tiled.comp", TiledConv.local_size),
    ("pack_input.comp", (frame_io.FRAME_GROUP,) * 2), ("present.comp", (frame_io.FRAME_GROUP,) * 2),
    ("temporal_resolve.comp", (frame_io.FRAME_GROUP,) * 2), ("result_offsets.comp", (frame_io.FRAME_GROUP,) * 2)])
def test_work_group_sizes_agree_with_the_planners(shader, planned):
    """Where a shader fixes its work group (not a LOCAL_SIZE / GROUP_X knob), the planner
    divides by the same numbers."""
    source = programs.shader_source(shader)
    (x, y), = LOCAL_SIZE.findall(source)
    values = {"GROUP": re.findall(r"#define GROUP (\d+)", source)}
    size = tuple(int(values[v][0]) if v in values else int(v) for v in (x, y))
    assert size == tuple(planned), f"{shader}: local size {size}, the planner divides by {planned}"
