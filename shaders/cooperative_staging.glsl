// Shared-memory staging of the cooperative kernels (conv_cooperative.comp,
// conv_transpose_cooperative.comp), the groupshared-cache tiling GPUs are
// built for: a work group computes a tile of outputs for BLOCK_SLICES output
// slices, and for each chunk of CHUNK_SLICES input slices it first loads,
// together, everything that chunk's multiply-adds read --
//   - the input tile with its halo (TILE_W x TILE_H texels per input slice,
//     padded: reflected, or zero outside the input and past the last slice),
//   - the weights of its BLOCK_SLICES output slices for those input slices
//     (every tap), zero past the last slice --
// so each input texel and each weight is read from global memory once per
// work group, not once per invocation and tap. Inputs come straight from the
// activation storage buffers: no image-view copy of the source tensor.
//
// The including kernel defines, before the include: TILE_W, TILE_H (texels
// of the input tile), TAPS (kernel taps per slice pair) and INVOCATIONS (per
// work group). The planner (postfx/gl/conv_kernels.py) picks CHUNK_SLICES so
// both tiles fit GL_MAX_COMPUTE_SHARED_MEMORY_SIZE before compiling.

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
#define BLOCK_SLICES 1        // output slices of a work group (and of each invocation); divides OUT_SLICES
#endif
#ifndef CHUNK_SLICES
#define CHUNK_SLICES 1        // input slices staged per barrier pair
#endif
#ifndef PAD_REFLECT
#define PAD_REFLECT 0
#endif
#define IN_SLICES (SLICES_A + SLICES_B)
#define TILE_TEXELS (TILE_W * TILE_H)

// A layer never writes a tensor it reads, so no buffer aliases another.
layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };   // (SLICES_A, H, W)
#if SLICES_B > 0
layout(std430, binding = 1) readonly restrict buffer SourceB { texel_t source_b[]; };   // (SLICES_B, H, W)
#endif
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };
layout(std430, binding = 3) readonly restrict buffer Weights { mat4 weights[]; };      // (OUT_SLICES, K, K, IN_SLICES)
layout(std430, binding = 4) readonly restrict buffer Bias { vec4 bias[]; };            // (OUT_SLICES)

uniform ivec2 in_size;        // (W, H)
uniform ivec2 out_size;

shared vec4 input_tile[CHUNK_SLICES * TILE_TEXELS];          // [chunk slice][row][column]
shared mat4 weight_tile[BLOCK_SLICES * TAPS * CHUNK_SLICES];  // [output slice][tap][chunk slice]

vec4 read_source(int slice, ivec2 pos) {
#if SLICES_B > 0
    if (slice >= SLICES_A) return decode_texel(source_b[texel_index(slice - SLICES_A, pos, in_size)]);
#endif
    return decode_texel(source_a[texel_index(slice, pos, in_size)]);
}

// Input slices [first, first + CHUNK_SLICES) of the tile whose texel (0, 0) is
// input pixel tile_origin, and their weights for output slices
// [out_slice, out_slice + BLOCK_SLICES). Consecutive invocations load
// consecutive texels and consecutive mat4s.
void stage_chunk(int first, ivec2 tile_origin, int out_slice) {
    for (int i = int(gl_LocalInvocationIndex); i < CHUNK_SLICES * TILE_TEXELS; i += INVOCATIONS) {
        int slice = first + i / TILE_TEXELS;
        int texel = i % TILE_TEXELS;
        ivec2 pos = tile_origin + ivec2(texel % TILE_W, texel / TILE_W);
#if PAD_REFLECT
        pos = ivec2(reflect_index(pos.x, in_size.x), reflect_index(pos.y, in_size.y));
        bool inside = slice < IN_SLICES;
#else
        bool inside = slice < IN_SLICES && all(greaterThanEqual(pos, ivec2(0))) && all(lessThan(pos, in_size));
#endif
        input_tile[i] = inside ? read_source(slice, pos) : vec4(0.0);
    }
    for (int i = int(gl_LocalInvocationIndex); i < BLOCK_SLICES * TAPS * CHUNK_SLICES; i += INVOCATIONS) {
        int c = i % CHUNK_SLICES;
        int tap = (i / CHUNK_SLICES) % TAPS;
        int o = i / (CHUNK_SLICES * TAPS);
        weight_tile[i] = first + c < IN_SLICES ? weights[((out_slice + o) * TAPS + tap) * IN_SLICES + first + c]
                                               : mat4(0.0);
    }
}

vec4 staged_input(int c, int x, int y) { return input_tile[(c * TILE_H + y) * TILE_W + x]; }
mat4 staged_weight(int o, int tap, int c) { return weight_tile[(o * TAPS + tap) * CHUNK_SLICES + c]; }
