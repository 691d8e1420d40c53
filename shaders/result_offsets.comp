#version 430
// For a network spread over several frames (frame_budget_ms) in temporal mode: where
// each pixel of this frame was in the frame whose input made the result the pass
// shows. That result is several frames old; the resolve reads it there instead of at
// the pixel itself, so the old result moves with the picture until the next one is
// done. Offsets chain frame by frame through the renderer's motion, read at the
// nearest texel (as TAA reads motion vectors); a pixel whose previous position was
// off-screen, or that has no previous offsets (first frame, resize, reset), is LOST
// and the resolve reads the result unmoved there. The numpy reference is
// postfx.temporal.chain_result_offsets.
//
// Texture coordinates, y up. xy: offset to the frame of the result shown;
// zw: offset to the frame of the run in flight.
#define LOST 1.0e4

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

uniform sampler2D motion_texture;    // xy: previous minus current texture coordinate
uniform sampler2D previous_offsets;  // last frame's offsets (RGBA32F), NEAREST
layout(rgba32f, binding = 4) writeonly uniform image2D offsets_out;

uniform ivec2 frame_size;
uniform int has_previous;            // 0: the first frame, after a resize or a reset
uniform int run_started;             // this frame packed the input of the run now in flight
uniform int run_completed;           // this frame's steps finished that run: it is the result shown

bool lost(vec2 offset) { return any(greaterThanEqual(abs(offset), vec2(0.5 * LOST))); }

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    if (any(greaterThanEqual(pos, frame_size))) return;
    vec2 motion = texelFetch(motion_texture, pos, 0).xy;
    vec2 previous_uv = (vec2(pos) + 0.5) / vec2(frame_size) + motion;
    vec4 previous = vec4(LOST);
    if (has_previous != 0 && all(greaterThanEqual(previous_uv, vec2(0.0)))
            && all(lessThanEqual(previous_uv, vec2(1.0)))) {
        ivec2 texel = clamp(ivec2(floor(previous_uv * vec2(frame_size))), ivec2(0), frame_size - 1);
        previous = texelFetch(previous_offsets, texel, 0);
    }
    vec2 run = run_started != 0 ? vec2(0.0) : (lost(previous.zw) ? vec2(LOST) : motion + previous.zw);
    vec2 shown = run_completed != 0 ? run : (lost(previous.xy) ? vec2(LOST) : motion + previous.xy);
    imageStore(offsets_out, pos, vec4(shown, run));
}
