#version 430
// Plain transposed convolution in gather form: each output pixel sums the
// input pixels whose stride-spaced footprint covers it (any kernel / stride /
// padding). One invocation = one output pixel x one output slice.
#include "common.glsl"

#ifndef KERNEL
#define KERNEL 4
#endif
#ifndef STRIDE
#define STRIDE 2
#endif
#ifndef PADDING
#define PADDING 1
#endif
#ifndef SLICES_A
#define SLICES_A 1
#endif
#ifndef SLICES_B
#define SLICES_B 0
#endif
#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#define IN_SLICES (SLICES_A + SLICES_B)

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(std430, binding = 0) readonly buffer SourceA { texel_t source_a[]; };
#if SLICES_B > 0
layout(std430, binding = 1) readonly buffer SourceB { texel_t source_b[]; };
#endif
layout(std430, binding = 2) writeonly buffer Destination { texel_t destination[]; };
layout(std430, binding = 3) readonly buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly buffer Bias { vec4 bias[]; };

uniform ivec2 in_size;
uniform ivec2 out_size;

vec4 read_input(int slice, ivec2 pos) {
#if SLICES_B > 0
    if (slice >= SLICES_A) return decode_texel(source_b[texel_index(slice - SLICES_A, pos, in_size)]);
#endif
    return decode_texel(source_a[texel_index(slice, pos, in_size)]);
}

void main() {
    ivec2 out_pos = ivec2(gl_GlobalInvocationID.xy);
    int out_slice = int(gl_GlobalInvocationID.z);
    if (any(greaterThanEqual(out_pos, out_size))) return;
    vec4 acc = bias[out_slice];
    for (int ky = 0; ky < KERNEL; ++ky) {
        int ty = out_pos.y + PADDING - ky;             // = in_y * STRIDE when this tap reaches us
        if (ty < 0 || ty % STRIDE != 0 || ty / STRIDE >= in_size.y) continue;
        for (int kx = 0; kx < KERNEL; ++kx) {
            int tx = out_pos.x + PADDING - kx;
            if (tx < 0 || tx % STRIDE != 0 || tx / STRIDE >= in_size.x) continue;
            ivec2 pos = ivec2(tx, ty) / STRIDE;
            int tap = ((out_slice * KERNEL + ky) * KERNEL + kx) * IN_SLICES;
            for (int s = 0; s < IN_SLICES; ++s) acc += weights[tap + s] * read_input(s, pos);
        }
    }
    destination[texel_index(out_slice, out_pos, out_size)] = encode_texel(activate(acc));
}
