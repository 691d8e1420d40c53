#version 430
// Temporal stabilization of the stylized frame, as temporal anti-aliasing does
// it: the previous frame's result, reprojected with the renderer's motion, is
// blended into this frame's -- unless the pixel has no history (it was
// off-screen, or the depth found there disagrees with the depth the surface
// had: a disocclusion) or the history's colour leaves the range of this
// frame's 3x3 neighbourhood (the TAA clamp, against ghosting). The numpy
// reference is postfx.temporal.resolve.
//
// Writes the result (the pass's output) and this frame's normalized linear
// depth, the next frame's history.
#ifndef USE_DEPTH
#define USE_DEPTH 1           // 0: no depth texture; history is kept by the clamp alone
#endif
#ifndef MOTION_DEPTH
#define MOTION_DEPTH 1        // 1: motion.z is the depth the surface had last frame; 0: assume today's
#endif
#ifndef DEPTH_TOLERANCE
#define DEPTH_TOLERANCE 0.02  // relative, plus DEPTH_SLACK (postfx/temporal.py)
#endif
#ifndef DEPTH_SLACK
#define DEPTH_SLACK 0.0002
#endif
#include "frame_io.glsl"

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

uniform sampler2D current_texture;   // this frame's stylized output (RGBA8), NEAREST
uniform sampler2D history_texture;   // last frame's result (RGBA8), LINEAR, clamped to the edge
uniform sampler2D history_depth;     // last frame's normalized linear depth (R32F), LINEAR
uniform sampler2D motion_texture;    // xy: previous minus current texture coordinate; z: see MOTION_DEPTH
layout(rgba8, binding = 1) writeonly uniform image2D output_image;
#if USE_DEPTH
layout(r32f, binding = 3) writeonly uniform image2D depth_out;
#endif

uniform ivec2 frame_size;
uniform float history_weight;        // the share of the reprojected history in the result
uniform int has_history;             // 0 on the first frame, after a resize or a reset

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    if (any(greaterThanEqual(pos, frame_size))) return;
    vec3 current = texelFetch(current_texture, pos, 0).rgb;
#if USE_DEPTH
    float depth = frame_linear_depth(pos);
    imageStore(depth_out, pos, vec4(depth, 0.0, 0.0, 0.0));
#endif
    vec3 result = current;
    vec4 motion = texelFetch(motion_texture, pos, 0);
    vec2 uv = (vec2(pos) + 0.5) / vec2(frame_size) + motion.xy;
    // On screen: uv in [0, 1], the outer edges of the border texels (as the reference).
    bool history = has_history != 0 && all(greaterThanEqual(uv, vec2(0.0))) && all(lessThanEqual(uv, vec2(1.0)));
#if USE_DEPTH
    if (history) {
#if MOTION_DEPTH
        float expected = motion.z;
#else
        float expected = depth;
#endif
        history = abs(texture(history_depth, uv).r - expected) <= float(DEPTH_TOLERANCE) * expected + float(DEPTH_SLACK);
    }
#endif
    if (history) {
        vec3 low = current, high = current;
        for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
                vec3 c = texelFetch(current_texture, clamp(pos + ivec2(dx, dy), ivec2(0), frame_size - 1), 0).rgb;
                low = min(low, c);
                high = max(high, c);
            }
        vec3 past = clamp(texture(history_texture, uv).rgb, low, high);
        result = mix(current, past, history_weight);
    }
    imageStore(output_image, pos, vec4(result, 1.0));
}
