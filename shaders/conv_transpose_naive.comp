#version 430
// Plain transposed convolution in gather form: each output pixel sums the
// input pixels whose stride-spaced footprint covers it (any kernel / stride /
// padding). One invocation = one output pixel x one output slice; every
// multiply-add reads its weight mat4 from the storage buffer.
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

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };
#if SLICES_B > 0
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };
layout(std430, binding = 3) readonly restrict buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };

uniform ivec2 in_size;
uniform ivec2 out_size;

void main() {
    ivec2 out_pos = ivec2(gl_GlobalInvocationID.xy);
    int out_slice = int(gl_GlobalInvocationID.z);
    if (any(greaterThanEqual(out_pos, out_size))) return;
    vec4 acc = bias[out_slice];
    // Only the taps whose stride-spaced footprint covers this pixel: kernel
    // rows ky = (y + PADDING) mod STRIDE, + STRIDE, ... (no per-tap modulo test).
    for (int ky = (out_pos.y + PADDING) % STRIDE; ky < KERNEL; ky += STRIDE) {
        int ty = out_pos.y + PADDING - ky;             // = in_y * STRIDE
        if (ty < 0 || ty >= in_size.y * STRIDE) continue;
        for (int kx = (out_pos.x + PADDING) % STRIDE; kx < KERNEL; kx += STRIDE) {
            int tx = out_pos.x + PADDING - kx;
            if (tx < 0 || tx >= in_size.x * STRIDE) continue;
            ivec2 pos = ivec2(tx, ty) / STRIDE;
            int tap = ((out_slice * KERNEL + ky) * KERNEL + kx) * IN_SLICES;
            for (int s = 0; s < SLICES_A; ++s)
                acc += weights[tap + s] * decode_texel(source_a[texel_index(s, pos, in_size)]);
#if SLICES_B > 0
            for (int s = 0; s < SLICES_B; ++s)
                acc += weights[tap + SLICES_A + s] * decode_texel(source_b[texel_index(s, pos, in_size)]);
#endif
        }
    }
    destination[texel_index(out_slice, out_pos, out_size)] = encode_texel(activate(acc));
}
