#version 430
// Transposed convolution 4x4 / stride 2 / padding 1 in gather form with the
// input tile in shared memory. A work group covers 8x8 input pixels; each
// invocation writes the 2x2 output block of its input pixel (n, m), one pixel
// per output parity, for BLOCK_SLICES output slices. Parity (py, px) gathers
// exactly 4 taps: kernel row ky = py + 1 - 2 * dy for input row m + dy (and
// likewise for columns), so the block reads the 3x3 input neighbourhood of
// (n, m): the work group stages its 10x10 tile, CHUNK_SLICES slices at a time.
#include "common.glsl"

#ifndef SLICES_A
#define SLICES_A 1
#endif
#ifndef SLICES_B
#define SLICES_B 0            // 0: single source
#endif
#ifndef OUT_SLICES
#define OUT_SLICES 1
#endif
#ifndef BLOCK_SLICES
#define BLOCK_SLICES 1        // output slices per invocation; divides OUT_SLICES
#endif
#ifndef CHUNK_SLICES
#define CHUNK_SLICES 1        // input slices staged in shared memory at a time
#endif
#define IN_SLICES (SLICES_A + SLICES_B)
#define KERNEL 4
#define GROUP 8
#define TILE (GROUP + 2)       // input pixels m - 1 ... m + 1 of the work group's rows (and columns)

layout(local_size_x = GROUP, local_size_y = GROUP, local_size_z = 1) in;

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };   // (SLICES_A, H, W)
#if SLICES_B > 0
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };   // (SLICES_B, H, W)
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, 2H, 2W)
layout(std430, binding = 3) readonly restrict buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };            // (OUT_SLICES)

uniform ivec2 in_size;    // (W, H)
uniform ivec2 out_size;   // (2W, 2H)

shared vec4 tile[CHUNK_SLICES][TILE * TILE];

vec4 read_input(int slice, ivec2 pos) {
#if SLICES_B > 0
    if (slice >= SLICES_A) return decode_texel(source_b[texel_index(slice - SLICES_A, pos, in_size)]);
#endif
    return decode_texel(source_a[texel_index(slice, pos, in_size)]);
}

void stage_chunk(int first, ivec2 tile_origin) {
    for (int i = int(gl_LocalInvocationIndex); i < CHUNK_SLICES * TILE * TILE; i += GROUP * GROUP) {
        int slice = first + i / (TILE * TILE);
        int texel = i % (TILE * TILE);
        ivec2 pos = tile_origin + ivec2(texel % TILE, texel / TILE);
        bool inside = slice < IN_SLICES && all(greaterThanEqual(pos, ivec2(0))) && all(lessThan(pos, in_size));
        tile[i / (TILE * TILE)][texel] = inside ? read_input(slice, pos) : vec4(0.0);
    }
}

mat4 weight(int out_slice, int ky, int kx, int in_slice) {
    return weights[((out_slice * KERNEL + ky) * KERNEL + kx) * IN_SLICES + in_slice];
}

void main() {
    ivec2 local = ivec2(gl_LocalInvocationID.xy);
    ivec2 in_pos = ivec2(gl_WorkGroupID.xy) * GROUP + local;
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;
    // Invocations past the edge of a partial work group still stage texels and
    // reach every barrier; they only skip the store.
    bool in_input = all(lessThan(in_pos, in_size));

    vec4 acc[BLOCK_SLICES][4];            // [slice][2 * py + px]
    for (int o = 0; o < BLOCK_SLICES; ++o)
        for (int q = 0; q < 4; ++q) acc[o][q] = bias[out_slice + o];
    for (int first = 0; first < IN_SLICES; first += CHUNK_SLICES) {
        barrier();                      // the previous chunk is no longer read
        stage_chunk(first, ivec2(gl_WorkGroupID.xy) * GROUP - 1);
        barrier();
        for (int c = 0; c < CHUNK_SLICES && first + c < IN_SLICES; ++c) {
            // x[dy][dx]: input pixel (n + dx - 1, m + dy - 1)
            vec4 x[3][3];
            for (int dy = 0; dy < 3; ++dy)
                for (int dx = 0; dx < 3; ++dx) x[dy][dx] = tile[c][(local.y + dy) * TILE + local.x + dx];
            int s = first + c;
            for (int o = 0; o < BLOCK_SLICES; ++o) {
                int os = out_slice + o;
                for (int py = 0; py < 2; ++py) {
                    for (int px = 0; px < 2; ++px) {
                        // the two input rows / columns of this parity: (offset into x, kernel index)
                        ivec2 row0 = ivec2(py + 0, 3 - py), row1 = ivec2(py + 1, 1 - py);
                        ivec2 col0 = ivec2(px + 0, 3 - px), col1 = ivec2(px + 1, 1 - px);
                        acc[o][2 * py + px] += weight(os, row0.y, col0.y, s) * x[row0.x][col0.x]
                                             + weight(os, row0.y, col1.y, s) * x[row0.x][col1.x]
                                             + weight(os, row1.y, col0.y, s) * x[row1.x][col0.x]
                                             + weight(os, row1.y, col1.y, s) * x[row1.x][col1.x];
                    }
                }
            }
        }
    }
    if (in_input)
        for (int o = 0; o < BLOCK_SLICES; ++o)
            for (int q = 0; q < 4; ++q)
                destination[texel_index(out_slice + o, 2 * in_pos + ivec2(q & 1, q >> 1), out_size)] =
                    encode_texel(activate(acc[o][q]));
}
