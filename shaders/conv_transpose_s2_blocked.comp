#version 430
// Transposed convolution, stride 2, any kernel / padding (output size exactly
// 2x: 3x3 padding 1 output_padding 1 as in the CycleGAN ResNet, 2x2 padding 0,
// ...), gather form, register-blocked, inputs and weights read through image
// views (see conv_blocked.comp for why). Generalizes conv_transpose_blocked.comp,
// which is hand-scheduled for the pix2pix 4x4 / padding 1 case.
//
// One invocation = BLOCK_PIXELS neighbouring input columns n of one input
// row m x BLOCK_SLICES output slices; it writes the 2x2 output block
// (2m + py, 2n + px) of each. Output row 2m + py takes kernel rows
// ky = py + PADDING (mod 2), from input row m + dy, dy = (py + PADDING - ky) / 2;
// columns likewise. Only those taps are visited, so a 3x3 kernel costs 9
// multiply-adds per 2x2 block, not the 36 of zero insertion.
#include "common.glsl"
#include "image_sources.glsl"
#include "weight_image.glsl"
#include "flat_grid.glsl"

#ifndef KERNEL
#define KERNEL 3
#endif
#ifndef PADDING
#define PADDING 1
#endif
#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#ifndef BLOCK_SLICES
#define BLOCK_SLICES 1        // output slices per invocation; divides OUT_SLICES
#endif
#ifndef BLOCK_PIXELS
#define BLOCK_PIXELS 1        // neighbouring input columns (2x2 output blocks) per invocation
#endif
// The input offsets dy (and dx) the taps reach, set by the planner (ops.py):
// dy in [D_MIN, D_MAX] over every parity and kernel row.
#ifndef D_MIN
#define D_MIN 0
#endif
#ifndef D_MAX
#define D_MAX 1
#endif
#define ROWS (D_MAX - D_MIN + 1)
#define FOOTPRINT (BLOCK_PIXELS + D_MAX - D_MIN)   // input columns n0 + D_MIN ... n0 + BLOCK_PIXELS - 1 + D_MAX

layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, 2H, 2W)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };                    // (OUT_SLICES)

uniform ivec2 in_size;        // (W, H)
uniform ivec2 out_size;       // (2W, 2H)

vec4 acc[BLOCK_SLICES][4][BLOCK_PIXELS];     // [slice][2 * py + px][pixel]

// Input offset of kernel tap k for output parity q (k = q + PADDING mod 2);
// the + 2 * KERNEL keeps the division on non-negative numbers.
int offset_of(int q, int k) { return (q + PADDING - k + 2 * KERNEL) / 2 - KERNEL; }

// Every tap of one input slice (`layer` of `source`, slice `in_slice` of the
// concatenation) for all four output parities.
void add_slice(int source, int layer, int in_slice, ivec2 block, int out_slice) {
    vec4 rows[ROWS][FOOTPRINT];
    for (int r = 0; r < ROWS; ++r)
        for (int c = 0; c < FOOTPRINT; ++c) rows[r][c] = load_input(source, block + ivec2(c + D_MIN, r + D_MIN), layer);
    for (int py = 0; py < 2; ++py)
        for (int ky = (py + PADDING) % 2; ky < KERNEL; ky += 2) {
            int row = offset_of(py, ky) - D_MIN;
            for (int px = 0; px < 2; ++px)
                for (int kx = (px + PADDING) % 2; kx < KERNEL; kx += 2) {
                    int column = offset_of(px, kx) - D_MIN;
                    for (int o = 0; o < BLOCK_SLICES; ++o) {
                        mat4 w = weight((((out_slice + o) * KERNEL + ky) * KERNEL + kx) * IN_SLICES + in_slice);
                        for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][2 * py + px][p] += w * rows[row][p + column];
                    }
                }
        }
}

void main() {
    ivec2 cell = grid_cell();
    ivec2 block = ivec2(cell.x * BLOCK_PIXELS, cell.y);      // (n0, m)
    if (block.y >= in_size.y) return;
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int q = 0; q < 4; ++q)
            for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][q][p] = bias[out_slice + o];

    for (int s = 0; s < SLICES_A; ++s) add_slice(SOURCE_A, s, s, block, out_slice);
#if SLICES_B > 0
    for (int s = 0; s < SLICES_B; ++s) add_slice(SOURCE_B, s, SLICES_A + s, block, out_slice);
#endif
    for (int p = 0; p < BLOCK_PIXELS; ++p) {
        if (block.x + p >= in_size.x) break;
        for (int o = 0; o < BLOCK_SLICES; ++o)
            for (int q = 0; q < 4; ++q) {
                ivec2 pos = 2 * (block + ivec2(p, 0)) + ivec2(q & 1, q >> 1);
                destination[texel_index(out_slice + o, pos, out_size)] = encode_texel(activate(acc[o][q][p]));
            }
    }
}
