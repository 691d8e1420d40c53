"""The pass's frame kernels as planned dispatches, like every layer's: pack (the
caller's colour + depth -> the network's input tensor, shaders/pack_input.comp),
present (the network's output -> the frame, shaders/present.comp) and, in temporal
mode, the resolve (history blended in, shaders/temporal_resolve.comp). Their work
groups are planned here and checked against the device's limits with the layers'.

Besides what a Dispatch binds by name, the pass binds the caller's textures: colour on
texture unit TEXTURE_COLOR, depth on TEXTURE_DEPTH, motion on TEXTURE_MOTION; the
output image on IMAGE_OUTPUT; the resolve's inputs on TEXTURE_CURRENT / _HISTORY /
_HISTORY_DEPTH and the depth it keeps on IMAGE_DEPTH_OUT; with a network spread over
frames, the result offsets (shaders/result_offsets.comp) written on IMAGE_OFFSETS_OUT and
read on TEXTURE_OFFSETS (by the next frame's chain, and by present)."""
from __future__ import annotations

from .. import model_format as fmt
from .dispatch import BIND_DESTINATION, Dispatch, ceil_div

FRAME_GROUP = 8                     # local_size_x = local_size_y of both shaders
TEXTURE_COLOR, TEXTURE_DEPTH = 0, 1
TEXTURE_CURRENT, TEXTURE_HISTORY, TEXTURE_HISTORY_DEPTH, TEXTURE_MOTION, TEXTURE_OFFSETS = 2, 3, 4, 5, 6
IMAGE_OUTPUT, IMAGE_NETWORK_OUTPUT, IMAGE_DEPTH_OUT, IMAGE_OFFSETS_OUT = 1, 2, 3, 4


def pack_defines(depth_defines: dict, color_linear: bool, fp16: bool) -> dict:
    """The knobs of pack_input.comp for a frame: depth (USE_DEPTH, REVERSED_Z), the
    colour's encoding, the storage precision."""
    return dict(depth_defines, COLOR_LINEAR=int(color_linear), STORAGE_FP16=int(fp16))


def present_defines(color_linear: bool, fp16: bool, warp_result: bool = False) -> dict:
    """The knobs of present.comp; warp_result: read the result through the result offsets
    (temporal mode, a network spread over frames)."""
    return {"COLOR_LINEAR": int(color_linear), "STORAGE_FP16": int(fp16), "WARP_RESULT": int(warp_result)}


def pack_dispatch(run_size: tuple[int, int], defines: dict, uniforms: dict) -> Dispatch:
    """One invocation per texel of the run size (W, H)."""
    run_w, run_h = run_size
    return Dispatch("pack", "pack_input.comp", defines, {BIND_DESTINATION: fmt.INPUT_TENSOR}, uniforms,
                    (ceil_div(run_w, FRAME_GROUP), ceil_div(run_h, FRAME_GROUP), 1), (FRAME_GROUP, FRAME_GROUP))


def present_dispatch(frame_size: tuple[int, int], output_tensor: str, defines: dict, uniforms: dict) -> Dispatch:
    """One invocation per frame pixel; reads the output tensor's image view."""
    width, height = frame_size
    return Dispatch("present", "present.comp", defines, {}, uniforms,
                    (ceil_div(width, FRAME_GROUP), ceil_div(height, FRAME_GROUP), 1), (FRAME_GROUP, FRAME_GROUP),
                    images={IMAGE_NETWORK_OUTPUT: output_tensor})


def resolve_defines(depth_defines: dict, motion_depth: bool) -> dict:
    """The knobs of temporal_resolve.comp: depth (USE_DEPTH, REVERSED_Z), whether motion
    carries the previous depth, the disocclusion tolerance of postfx.temporal."""
    from ..temporal import DEPTH_SLACK, DEPTH_TOLERANCE
    return dict(depth_defines, MOTION_DEPTH=int(motion_depth), DEPTH_TOLERANCE=DEPTH_TOLERANCE,
                DEPTH_SLACK=DEPTH_SLACK)


def offsets_dispatch(frame_size: tuple[int, int], uniforms: dict) -> Dispatch:
    """shaders/result_offsets.comp: one invocation per frame pixel."""
    width, height = frame_size
    return Dispatch("result offsets", "result_offsets.comp", {}, {}, uniforms,
                    (ceil_div(width, FRAME_GROUP), ceil_div(height, FRAME_GROUP), 1), (FRAME_GROUP, FRAME_GROUP))


def resolve_dispatch(frame_size: tuple[int, int], defines: dict, uniforms: dict) -> Dispatch:
    """One invocation per frame pixel."""
    width, height = frame_size
    return Dispatch("temporal", "temporal_resolve.comp", defines, {}, uniforms,
                    (ceil_div(width, FRAME_GROUP), ceil_div(height, FRAME_GROUP), 1), (FRAME_GROUP, FRAME_GROUP))
