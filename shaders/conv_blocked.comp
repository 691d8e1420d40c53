#version 430
// Register-blocked direct convolution. One invocation = BLOCK_PIXELS
// neighbouring output pixels of a row x BLOCK_SLICES output slices: every
// input texel it loads serves BLOCK_SLICES mat4 products and every weight mat4
// serves BLOCK_PIXELS pixels. Inputs and weights are read through image views.
//
// Why images, not storage buffers or shared memory: on Mesa llvmpipe a
// storage-buffer or shared-memory load is a scalar loop over the SIMD lanes
// with a bounds check per component (~20x an imageLoad, far more than the
// 16 multiply-adds of the mat4 product it feeds), while imageLoad gathers
// whole texels. What remains dominant is the weight reads -- a work-group-
// uniform mat4 is still gathered per lane -- hence many pixels per invocation.
// On GPUs both paths go through the texture cache.
#include "common.glsl"
#include "image_sources.glsl"
#include "weight_image.glsl"
#include "flat_grid.glsl"

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
#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#ifndef BLOCK_SLICES
#define BLOCK_SLICES 1        // output slices per invocation; divides OUT_SLICES
#endif
#ifndef BLOCK_PIXELS
#define BLOCK_PIXELS 1        // neighbouring output pixels along x per invocation
#endif

layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, Ho, Wo)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };                    // (OUT_SLICES)

uniform ivec2 in_size;        // (W, H)
uniform ivec2 out_size;

vec4 acc[BLOCK_SLICES][BLOCK_PIXELS];        // [slice][pixel]

// The input texels of tap (ky, kx) for each pixel, from one source layer,
// padded: reflected, or zero outside the input (the view's border). Pixels
// past the right edge of a partial block are computed too; their results are
// never stored.
void fetch_tap(int source, int layer, ivec2 out_pos, int ky, int kx, out vec4 x[BLOCK_PIXELS]) {
    int y = out_pos.y * STRIDE - PADDING + ky;
#if PAD_REFLECT
    y = reflect_index(y, in_size.y);
#endif
    for (int p = 0; p < BLOCK_PIXELS; ++p) {
        int column = (out_pos.x + p) * STRIDE - PADDING + kx;
#if PAD_REFLECT
        column = reflect_index(column, in_size.x);
#endif
        x[p] = load_input(source, ivec2(column, y), layer);
    }
}

// Tap (ky, kx) of one input slice (`layer` of `source`, slice `in_slice` of
// the concatenation) into every accumulator.
void add_tap(int source, int layer, int in_slice, ivec2 out_pos, int out_slice, int ky, int kx) {
    vec4 x[BLOCK_PIXELS];
    fetch_tap(source, layer, out_pos, ky, kx, x);
    for (int o = 0; o < BLOCK_SLICES; ++o) {
        mat4 w = weight((((out_slice + o) * KERNEL + ky) * KERNEL + kx) * IN_SLICES + in_slice);
        for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][p] += w * x[p];
    }
}

void main() {
    ivec2 cell = grid_cell();
    ivec2 out_pos = ivec2(cell.x * BLOCK_PIXELS, cell.y);
    if (out_pos.y >= out_size.y) return;
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int p = 0; p < BLOCK_PIXELS; ++p) acc[o][p] = bias[out_slice + o];

    for (int ky = 0; ky < KERNEL; ++ky) {
        for (int kx = 0; kx < KERNEL; ++kx) {
            // A loop per source: a per-slice source test costs more than the
            // duplicated code costs to compile.
            for (int s = 0; s < SLICES_A; ++s) add_tap(SOURCE_A, s, s, out_pos, out_slice, ky, kx);
#if SLICES_B > 0
            for (int s = 0; s < SLICES_B; ++s) add_tap(SOURCE_B, s, SLICES_A + s, out_pos, out_slice, ky, kx);
#endif
        }
    }
    for (int p = 0; p < BLOCK_PIXELS; ++p) {
        if (out_pos.x + p >= out_size.x) break;
        for (int o = 0; o < BLOCK_SLICES; ++o)
            destination[texel_index(out_slice + o, out_pos + ivec2(p, 0), out_size)] = encode_texel(activate(acc[o][p]));
    }
}
