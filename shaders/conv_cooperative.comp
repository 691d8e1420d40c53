#version 430
// Cooperative tiled direct convolution, shaped for GPUs: the work group stages
// its input tile (with halo) and the weights of its output slices in shared
// memory (cooperative_staging.glsl), then each invocation computes a small
// register block -- BLOCK_PIXELS output pixels of a row, GROUP_X apart, x
// BLOCK_SLICES output slices, at most 16 vec4 (64 scalar) accumulators, so a
// GPU keeps it in registers and holds many invocations at once -- and stores
// straight into the output storage buffer.
//
// Pixels GROUP_X apart (not neighbours): neighbouring invocations then read
// neighbouring shared-memory texels (no bank conflicts beyond the stride) and
// write neighbouring output texels (coalesced stores).
//
// On Mesa llvmpipe a shared-memory load is a scalar loop over the SIMD lanes,
// so this kernel is slow there; the tuner measures and keeps "blocked" on
// such a renderer.
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
#ifndef GROUP_X
#define GROUP_X 8             // invocations of a work group along x
#endif
#ifndef GROUP_Y
#define GROUP_Y 8             // ... along y (one output row each)
#endif
#ifndef BLOCK_PIXELS
#define BLOCK_PIXELS 1        // output pixels per invocation, GROUP_X apart along x
#endif

#define TILE_OUT_W (GROUP_X * BLOCK_PIXELS)                 // output columns of a work group
#define TILE_W ((TILE_OUT_W - 1) * STRIDE + KERNEL)         // input texels it reads along x
#define TILE_H ((GROUP_Y - 1) * STRIDE + KERNEL)            // ... along y
#define TAPS (KERNEL * KERNEL)
#define INVOCATIONS (GROUP_X * GROUP_Y)

layout(local_size_x = GROUP_X, local_size_y = GROUP_Y, local_size_z = 1) in;

#include "cooperative_staging.glsl"

void main() {
    ivec2 local = ivec2(gl_LocalInvocationID.xy);
    ivec2 group_origin = ivec2(gl_WorkGroupID.xy) * ivec2(TILE_OUT_W, GROUP_Y);
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;

    vec4 acc[BLOCK_SLICES][BLOCK_PIXELS];
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][p] = bias[out_slice + o];

    // Every invocation, inside the output or not, runs every iteration: the
    // barriers stay in uniform control flow.
    for (int first = 0; first < IN_SLICES; first += CHUNK_SLICES) {
        barrier();                      // the previous chunk is no longer read
        stage_chunk(first, group_origin * STRIDE - PADDING, out_slice);
        barrier();
        for (int c = 0; c < CHUNK_SLICES && first + c < IN_SLICES; ++c) {
            for (int ky = 0; ky < KERNEL; ++ky) {
                for (int kx = 0; kx < KERNEL; ++kx) {
                    vec4 x[BLOCK_PIXELS];
                    for (int p = 0; p < BLOCK_PIXELS; ++p)
                        x[p] = staged_input(c, (local.x + p * GROUP_X) * STRIDE + kx, local.y * STRIDE + ky);
                    for (int o = 0; o < BLOCK_SLICES; ++o) {
                        mat4 w = staged_weight(o, ky * KERNEL + kx, c);
                        for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][p] += w * x[p];
                    }
                }
            }
        }
    }
    for (int p = 0; p < BLOCK_PIXELS; ++p) {
        ivec2 pos = group_origin + ivec2(local.x + p * GROUP_X, local.y);
        if (any(greaterThanEqual(pos, out_size))) continue;
        for (int o = 0; o < BLOCK_SLICES; ++o)
            destination[texel_index(out_slice + o, pos, out_size)] = encode_texel(activate(acc[o][p]));
    }
}
