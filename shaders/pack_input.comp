#version 430
// Frame -> network input: RGB (+ normalized linear depth) as one vec4 slice per
// texel, at the run size (the frame scaled by the internal scale, then padded
// at the bottom / right by repeating the edge, as the model file's policy says).
#ifndef USE_DEPTH
#define USE_DEPTH 1           // (frame_io.glsl reads depth only when this is set)
#endif
#include "common.glsl"
#include "frame_io.glsl"

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };   // (1, Hr, Wr)

uniform ivec2 frame_size;       // (W, H) of the colour / depth textures
uniform ivec2 scaled_size;      // frame * internal scale: the network sees this much
uniform ivec2 run_size;         // scaled size padded up to the model's multiple
uniform vec2 value_range;       // the model's input range for [0, 1]

// Network rows run top-down (as images are stored and trained on); GL texture
// rows run bottom-up. p is in network (top-down) frame coordinates.
ivec2 texel_of(ivec2 p) { return ivec2(p.x, frame_size.y - 1 - p.y); }

// NaN / Inf in a float frame (reliability C13) are settled per texel, before the
// bilinear taps mix them into their neighbours: a NaN channel reads as 0, +-Inf as
// 1 / 0 (frame_color's sRGB encode clamps); depth as frame_linear_depth settles it.
vec3 load_color(ivec2 p) {
    vec3 c = frame_color(texel_of(p));
    return clamp(mix(c, vec3(0.0), isnan(c)), 0.0, 1.0);
}

float linear_depth(ivec2 p) {
#if USE_DEPTH
    return frame_linear_depth(texel_of(p));
#else
    return 0.0;
#endif
}

// Bilinear sample at a scaled-frame pixel centre (exact box average at scale 1/2).
vec4 sample_frame(ivec2 pos) {
    vec2 src = (vec2(pos) + 0.5) * vec2(frame_size) / vec2(scaled_size) - 0.5;
    src = clamp(src, vec2(0.0), vec2(frame_size - 1));
    ivec2 p0 = ivec2(floor(src));
    ivec2 p1 = min(p0 + 1, frame_size - 1);
    vec2 f = src - vec2(p0);
    ivec2 q[4] = ivec2[4](p0, ivec2(p1.x, p0.y), ivec2(p0.x, p1.y), p1);
    float w[4] = float[4]((1.0 - f.x) * (1.0 - f.y), f.x * (1.0 - f.y), (1.0 - f.x) * f.y, f.x * f.y);
    vec4 acc = vec4(0.0);
    for (int i = 0; i < 4; ++i) {
        if (w[i] == 0.0) continue;
        acc += w[i] * vec4(load_color(q[i]), linear_depth(q[i]));
    }
    return acc;
}

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    if (any(greaterThanEqual(pos, run_size))) return;
    vec4 v = sample_frame(min(pos, scaled_size - 1));     // edge repeat into the padding
    // Belt and braces: nothing non-finite reaches the network.
    v = clamp(mix(v, vec4(0.0), isnan(v)), 0.0, 1.0);
    v = value_range.x + v * (value_range.y - value_range.x);
#if !USE_DEPTH
    v.a = 0.0;
#endif
    destination[texel_index(0, pos, run_size)] = encode_texel(v);
}
