#version 430
// Transposed convolution 4x4 / stride 2 / padding 1 in gather form,
// register-blocked, inputs and weights read through image views (see
// conv_blocked.comp for why). One invocation = BLOCK_PIXELS neighbouring
// input columns n of one input row m x BLOCK_SLICES output slices; it writes
// the 2x2 output block (2m + py, 2n + px) of each, one pixel per output
// parity. Output parity (py, px) gathers exactly 4 taps: kernel row
// ky = py + 1 - 2 * dy for input row m + dy, and likewise for columns, so no
// tap is wasted (zero insertion would multiply by zeros 3 times out of 4).
// Each weight mat4 serves one parity of each of the BLOCK_PIXELS blocks.
#include "common.glsl"
#include "image_sources.glsl"
#include "weight_image.glsl"
#include "flat_grid.glsl"

#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#ifndef BLOCK_SLICES
#define BLOCK_SLICES 1        // output slices per invocation; divides OUT_SLICES
#endif
#ifndef BLOCK_PIXELS
#define BLOCK_PIXELS 1        // neighbouring input columns (2x2 output blocks) per invocation
#endif

#define KERNEL 4
#define FOOTPRINT (BLOCK_PIXELS + 2)      // input columns n0 - 1 ... n0 + BLOCK_PIXELS

layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, 2H, 2W)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };                    // (OUT_SLICES)

uniform ivec2 in_size;        // (W, H)
uniform ivec2 out_size;       // (2W, 2H)

vec4 acc[BLOCK_SLICES][4][BLOCK_PIXELS];     // [slice][2 * py + px][pixel]

// Adds one input row (its footprint of input slice `in_slice` in `row`) to the
// output row of parity py through kernel row ky: output column parity 0 takes
// kernel columns 1 (same input column) and 3 (the one to the left), parity 1
// takes columns 0 (the one to the right) and 2 (same column).
void add_row(int out_slice, int py, int ky, int in_slice, vec4 row[FOOTPRINT]) {
    for (int o = 0; o < BLOCK_SLICES; ++o) {
        int tap_row = ((out_slice + o) * KERNEL + ky) * KERNEL * IN_SLICES + in_slice;
        mat4 w0 = weight(tap_row), w1 = weight(tap_row + IN_SLICES);
        mat4 w2 = weight(tap_row + 2 * IN_SLICES), w3 = weight(tap_row + 3 * IN_SLICES);
        for (int p = 0; p < BLOCK_PIXELS; ++p) {
            acc[o][2 * py][p] += w1 * row[p + 1] + w3 * row[p];
            acc[o][2 * py + 1][p] += w0 * row[p + 2] + w2 * row[p + 1];
        }
    }
}

// The footprints of input rows m - 1, m, m + 1 of one source layer (zero
// outside the input: the view's border).
void fetch_rows(int source, int layer, ivec2 block, out vec4 rows[3][FOOTPRINT]) {
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < FOOTPRINT; ++c) rows[r][c] = load_input(source, block + ivec2(c - 1, r - 1), layer);
}

// Every tap of one input slice (`layer` of `source`, slice `in_slice` of the
// concatenation) for all four output parities.
void add_slice(int source, int layer, int in_slice, ivec2 block, int out_slice) {
    vec4 rows[3][FOOTPRINT];
    fetch_rows(source, layer, block, rows);
    add_row(out_slice, 0, 3, in_slice, rows[0]);     // input row m - 1 feeds output row 2m through kernel row 3
    add_row(out_slice, 0, 1, in_slice, rows[1]);     // row m feeds rows 2m (kernel row 1) and 2m + 1 (kernel row 2)
    add_row(out_slice, 1, 2, in_slice, rows[1]);
    add_row(out_slice, 1, 0, in_slice, rows[2]);     // row m + 1 feeds row 2m + 1 through kernel row 0
}

void main() {
    ivec2 cell = grid_cell();
    ivec2 block = ivec2(cell.x * BLOCK_PIXELS, cell.y);      // (n0, m)
    if (block.y >= in_size.y) return;
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int q = 0; q < 4; ++q)
            for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][q][p] = bias[out_slice + o];

    // A loop per source: a per-slice source test costs more (~15 % on the
    // two-source decoder levels) than the duplicated code costs to compile.
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
