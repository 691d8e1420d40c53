#version 430
// Plain direct convolution: one invocation = one output pixel x one output
// slice (4 channels); every multiply-add reads its weight mat4 from the storage
// buffer. The reference kernel for parity tests and the benchmark's baseline.
// Inputs: one or two sources read as their channel concatenation (the fused
// U-Net skip), each in its own loop: no per-slice source test.
//
// On Mesa llvmpipe every storage-buffer load is a scalar loop over the SIMD
// lanes with a bounds check per component, so the 16 weight and 4 input
// components each multiply-add block reads dominate this kernel's cost.
#include "common.glsl"

#ifndef KERNEL
#define KERNEL 3
#endif
#ifndef STRIDE
#define STRIDE 1
#endif
#ifndef PADDING
#define PADDING 0
#endif
#ifndef PAD_REFLECT
#define PAD_REFLECT 0
#endif
#ifndef SLICES_A
#define SLICES_A 1
#endif
#ifndef SLICES_B
#define SLICES_B 0            // 0: single source
#endif
#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#define IN_SLICES (SLICES_A + SLICES_B)

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };   // (SLICES_A, H, W)
#if SLICES_B > 0
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };   // (SLICES_B, H, W)
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, Ho, Wo)
layout(std430, binding = 3) readonly restrict buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };            // (OUT_SLICES)

uniform ivec2 in_size;    // (W, H)
uniform ivec2 out_size;

void main() {
    ivec2 out_pos = ivec2(gl_GlobalInvocationID.xy);
    int out_slice = int(gl_GlobalInvocationID.z);
    if (any(greaterThanEqual(out_pos, out_size))) return;
    vec4 acc = bias[out_slice];
    for (int ky = 0; ky < KERNEL; ++ky) {
        for (int kx = 0; kx < KERNEL; ++kx) {
            ivec2 pos = out_pos * STRIDE - PADDING + ivec2(kx, ky);
#if PAD_REFLECT
            pos = ivec2(reflect_index(pos.x, in_size.x), reflect_index(pos.y, in_size.y));
#else
            if (any(lessThan(pos, ivec2(0))) || any(greaterThanEqual(pos, in_size))) continue;
#endif
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
