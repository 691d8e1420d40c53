"""Every program postfx can build, as (shader file, defines), without a GL
context: for a network graph, each layer under every kernel it can run (naive,
each variant x its tunables); for the pass, pack / present under every colour
encoding, depth mode and storage precision. The conformance test specialises
them all and has the Khronos reference compiler judge each
(tests/test_shader_conformance.py)."""
from __future__ import annotations

from .. import model_format as fmt
from .conv_kernels import KernelChoice, candidates, conv_dispatches
from .dispatch import DeviceLimits, tensor_sizes
from .ops import layer_dispatches

Program = tuple[str, tuple]         # (shader file, sorted (define, value) pairs)


def program_key(shader: str, defines: dict) -> Program:
    return shader, tuple(sorted(defines.items()))


def network_programs(graph: fmt.Graph, fp16: bool, limits: DeviceLimits) -> set[Program]:
    """The programs of every dispatch a network of this graph can plan: conv layers
    under naive and every tuning candidate (each variant's default included), norms,
    the weightless ops. Defines do not depend on the frame size."""
    sizes = tensor_sizes(graph, graph.pad_multiple, graph.pad_multiple)
    out = set()
    for layer in graph.layers:
        if layer.op in fmt.CONV_OPS:
            for choice in (KernelChoice.of("naive"), *candidates(layer, graph, limits)):
                plan = conv_dispatches(layer, graph, sizes, choice, fp16, limits)
                out |= {program_key(d.shader, d.defines) for d in plan}
        else:
            plan = layer_dispatches(layer, graph, sizes, None, fp16, limits)
            out |= {program_key(d.shader, d.defines) for d in plan}
    return out


def pass_programs() -> set[Program]:
    """pack_input / present for every colour encoding, depth mode and precision the pass uses,
    (present also reading a spread network's result through its offsets), and the temporal
    resolve for every depth mode, with and without depth in the motion."""
    from .frame_io import pack_defines, present_defines, resolve_defines
    depth_modes = [{"USE_DEPTH": 0}, {"USE_DEPTH": 1, "REVERSED_Z": 0}, {"USE_DEPTH": 1, "REVERSED_Z": 1}]
    out = set()
    for fp16 in (False, True):
        for linear in (False, True):
            for warp_result in (False, True):
                out.add(program_key("present.comp", present_defines(linear, fp16, warp_result)))
            for depth in depth_modes:
                out.add(program_key("pack_input.comp", pack_defines(depth, linear, fp16)))
    for depth in depth_modes:
        for motion_depth in (False, True):
            out.add(program_key("temporal_resolve.comp", resolve_defines(depth, motion_depth)))
    out.add(program_key("result_offsets.comp", {}))
    return out
