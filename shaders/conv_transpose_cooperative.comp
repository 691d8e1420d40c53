#version 430
// Cooperative tiled transposed convolution, stride 2 (output exactly 2x: the
// pix2pix 4x4 / padding 1, CycleGAN's 3x3 / output_padding 1, 2x2, ...), in
// gather form, shaped for GPUs (see conv_cooperative.comp): the work group
// stages its input tile and the weights of its output slices in shared memory
// (cooperative_staging.glsl); each invocation takes BLOCK_PIXELS input
// columns n of one input row m (GROUP_X apart) x BLOCK_SLICES output slices
// and writes the 2x2 output block (2m + py, 2n + px) of each: 4 x BLOCK_PIXELS
// x BLOCK_SLICES <= 16 vec4 accumulators.
//
// Output row 2m + py takes kernel rows ky = py + PADDING (mod 2), from input
// row m + dy, dy = (py + PADDING - ky) / 2; columns likewise. Only those taps
// are visited (zero insertion would multiply by zeros 3 times out of 4).
#include "common.glsl"

#ifndef KERNEL
#define KERNEL 4
#endif
#ifndef PADDING
#define PADDING 1
#endif
#ifndef GROUP_X
#define GROUP_X 8             // invocations of a work group along x
#endif
#ifndef GROUP_Y
#define GROUP_Y 8             // ... along y (one input row each)
#endif
#ifndef BLOCK_PIXELS
#define BLOCK_PIXELS 1        // input columns (2x2 output blocks) per invocation, GROUP_X apart
#endif
// The input offsets dy (and dx) the taps reach, set by the planner:
// dy in [D_MIN, D_MAX] over every parity and kernel row.
#ifndef D_MIN
#define D_MIN -1
#endif
#ifndef D_MAX
#define D_MAX 1
#endif

#define TILE_IN_W (GROUP_X * BLOCK_PIXELS)                  // input columns a work group's blocks sit on
#define TILE_W (TILE_IN_W + D_MAX - D_MIN)                  // input texels it reads along x
#define TILE_H (GROUP_Y + D_MAX - D_MIN)                    // ... along y
#define TAPS (KERNEL * KERNEL)
#define INVOCATIONS (GROUP_X * GROUP_Y)

layout(local_size_x = GROUP_X, local_size_y = GROUP_Y, local_size_z = 1) in;

#include "cooperative_staging.glsl"

// Input offset of kernel tap k for output parity q (k = q + PADDING mod 2);
// the + 2 * KERNEL keeps the division on non-negative numbers.
int offset_of(int q, int k) { return (q + PADDING - k + 2 * KERNEL) / 2 - KERNEL; }

void main() {
    ivec2 local = ivec2(gl_LocalInvocationID.xy);
    ivec2 group_origin = ivec2(gl_WorkGroupID.xy) * ivec2(TILE_IN_W, GROUP_Y);   // (n0, m0) of the group
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;

    vec4 acc[BLOCK_SLICES][4][BLOCK_PIXELS];     // [slice][2 * py + px][pixel]
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int q = 0; q < 4; ++q)
            for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][q][p] = bias[out_slice + o];

    // Every invocation runs every iteration: the barriers stay in uniform control flow.
    for (int first = 0; first < IN_SLICES; first += CHUNK_SLICES) {
        barrier();                      // the previous chunk is no longer read
        stage_chunk(first, group_origin + D_MIN, out_slice);
        barrier();
        for (int c = 0; c < CHUNK_SLICES && first + c < IN_SLICES; ++c) {
            for (int py = 0; py < 2; ++py) {
                for (int ky = (py + PADDING) % 2; ky < KERNEL; ky += 2) {
                    int row = local.y + offset_of(py, ky) - D_MIN;
                    for (int px = 0; px < 2; ++px) {
                        for (int kx = (px + PADDING) % 2; kx < KERNEL; kx += 2) {
                            int column = local.x + offset_of(px, kx) - D_MIN;
                            vec4 x[BLOCK_PIXELS];
                            for (int p = 0; p < BLOCK_PIXELS; ++p) x[p] = staged_input(c, column + p * GROUP_X, row);
                            for (int o = 0; o < BLOCK_SLICES; ++o) {
                                mat4 w = staged_weight(o, ky * KERNEL + kx, c);
                                for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][2 * py + px][p] += w * x[p];
                            }
                        }
                    }
                }
            }
        }
    }
    for (int p = 0; p < BLOCK_PIXELS; ++p) {
        ivec2 cell = group_origin + ivec2(local.x + p * GROUP_X, local.y);     // (n, m)
        if (any(greaterThanEqual(cell, in_size))) continue;
        for (int o = 0; o < BLOCK_SLICES; ++o)
            for (int q = 0; q < 4; ++q)
                destination[texel_index(out_slice + o, 2 * cell + ivec2(q & 1, q >> 1), out_size)] =
                    encode_texel(activate(acc[o][q][p]));
    }
}
