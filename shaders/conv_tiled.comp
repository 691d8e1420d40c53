#version 430
// Direct convolution with the input tile in shared memory. A work group
// computes 8x8 output pixels; it stages the input texels they read (the tile
// plus its halo, TILE x TILE per input slice) CHUNK_SLICES slices at a time,
// so each input texel is read from the storage buffer once per work group
// instead of once per tap and output slice. Each invocation computes
// BLOCK_SLICES output slices of its pixel: every staged texel it reads feeds
// BLOCK_SLICES mat4 products. Weights come from the storage buffer at
// addresses shared by the whole work group.
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
#ifndef BLOCK_SLICES
#define BLOCK_SLICES 1        // output slices per invocation; divides OUT_SLICES
#endif
#ifndef CHUNK_SLICES
#define CHUNK_SLICES 1        // input slices staged in shared memory at a time
#endif
#define IN_SLICES (SLICES_A + SLICES_B)
#define GROUP 8
#define TILE ((GROUP - 1) * STRIDE + KERNEL)      // input texels along each axis one work group reads

layout(local_size_x = GROUP, local_size_y = GROUP, local_size_z = 1) in;

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };   // (SLICES_A, H, W)
#if SLICES_B > 0
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };   // (SLICES_B, H, W)
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (OUT_SLICES, Ho, Wo)
layout(std430, binding = 3) readonly restrict buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };            // (OUT_SLICES)

uniform ivec2 in_size;    // (W, H)
uniform ivec2 out_size;

shared vec4 tile[CHUNK_SLICES][TILE * TILE];

vec4 read_input(int slice, ivec2 pos) {
#if SLICES_B > 0
    if (slice >= SLICES_A) return decode_texel(source_b[texel_index(slice - SLICES_A, pos, in_size)]);
#endif
    return decode_texel(source_a[texel_index(slice, pos, in_size)]);
}

// Stage input slices [first, first + CHUNK_SLICES) of the work group's tile,
// padded: reflected, or zero outside the input (and past the last slice).
void stage_chunk(int first, ivec2 tile_origin) {
    int index = int(gl_LocalInvocationIndex);
    for (int i = index; i < CHUNK_SLICES * TILE * TILE; i += GROUP * GROUP) {
        int slice = first + i / (TILE * TILE);
        int texel = i % (TILE * TILE);
        ivec2 pos = tile_origin + ivec2(texel % TILE, texel / TILE);
#if PAD_REFLECT
        pos = ivec2(reflect_index(pos.x, in_size.x), reflect_index(pos.y, in_size.y));
        bool inside = slice < IN_SLICES;
#else
        bool inside = slice < IN_SLICES && all(greaterThanEqual(pos, ivec2(0))) && all(lessThan(pos, in_size));
#endif
        tile[i / (TILE * TILE)][texel] = inside ? read_input(slice, pos) : vec4(0.0);
    }
}

void main() {
    ivec2 local = ivec2(gl_LocalInvocationID.xy);
    ivec2 out_pos = ivec2(gl_WorkGroupID.xy) * GROUP + local;
    ivec2 tile_origin = ivec2(gl_WorkGroupID.xy) * GROUP * STRIDE - PADDING;
    int out_slice = int(gl_WorkGroupID.z) * BLOCK_SLICES;
    // Invocations past the edge of a partial work group still stage texels and
    // reach every barrier; they only skip the store.
    bool in_output = all(lessThan(out_pos, out_size));

    vec4 acc[BLOCK_SLICES];
    for (int o = 0; o < BLOCK_SLICES; ++o) acc[o] = bias[out_slice + o];
    for (int first = 0; first < IN_SLICES; first += CHUNK_SLICES) {
        barrier();                      // the previous chunk is no longer read
        stage_chunk(first, tile_origin);
        barrier();
        for (int c = 0; c < CHUNK_SLICES && first + c < IN_SLICES; ++c) {
            for (int ky = 0; ky < KERNEL; ++ky) {
                for (int kx = 0; kx < KERNEL; ++kx) {
                    vec4 x = tile[c][(local.y * STRIDE + ky) * TILE + local.x * STRIDE + kx];
                    for (int o = 0; o < BLOCK_SLICES; ++o)
                        acc[o] += weights[(((out_slice + o) * KERNEL + ky) * KERNEL + kx) * IN_SLICES + first + c] * x;
                }
            }
        }
    }
    if (in_output)
        for (int o = 0; o < BLOCK_SLICES; ++o)
            destination[texel_index(out_slice + o, out_pos, out_size)] = encode_texel(activate(acc[o]));
}
