#version 430
// Per-texel ops that need no weights: residual add, 2x upsample, a standalone
// activation, and copying a source into a slice range of a materialized concat.
// One invocation = one output texel (pixel x slice).
#include "common.glsl"

#ifndef OPERATION
#define OPERATION 0           // 0 copy/activate, 1 add, 2 upsample nearest, 3 upsample bilinear
#endif

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };
#if OPERATION == 1
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };

uniform ivec2 in_size;
uniform ivec2 out_size;
uniform int slices;              // slices of this source
uniform int out_slice_offset;    // where this source starts in the destination (concat)

vec4 fetch(int slice, ivec2 pos) { return decode_texel(source_a[texel_index(slice, pos, in_size)]); }

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    int slice = int(gl_GlobalInvocationID.z);
    if (any(greaterThanEqual(pos, out_size)) || slice >= slices) return;
#if OPERATION == 1
    vec4 v = fetch(slice, pos) + decode_texel(source_b[texel_index(slice, pos, in_size)]);
#elif OPERATION == 2
    vec4 v = fetch(slice, pos / 2);
#elif OPERATION == 3
    // align_corners=False: output pixel i samples input (i + 0.5) / 2 - 0.5, clamped at the edges
    vec2 src = max((vec2(pos) + 0.5) * 0.5 - 0.5, vec2(0.0));
    ivec2 p0 = ivec2(floor(src));
    ivec2 p1 = min(p0 + 1, in_size - 1);
    vec2 f = src - vec2(p0);
    vec4 top = mix(fetch(slice, p0), fetch(slice, ivec2(p1.x, p0.y)), f.x);
    vec4 bottom = mix(fetch(slice, ivec2(p0.x, p1.y)), fetch(slice, p1), f.x);
    vec4 v = mix(top, bottom, f.y);
#else
    vec4 v = fetch(slice, pos);
#endif
    destination[texel_index(slice + out_slice_offset, pos, out_size)] = encode_texel(activate(v));
}
