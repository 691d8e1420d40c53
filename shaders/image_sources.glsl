// Inputs read through image views: each source tensor's planar storage
// buffer is copied into a 2D-array texture (one layer per slice) after its
// producer ran, and kernels read it with imageLoad instead of storage-buffer
// loads. On llvmpipe an 8-lane imageLoad costs ~1/3 of a texelFetch (no
// sampler path) and ~1/20 of a storage-buffer vec4 load.
//
// The view has a zero border of view_border texels on every side, at least as
// wide as any kernel reaches past the tensor: zero padding is then a plain
// load (texel (x, y) sits at (x + view_border, y + view_border)). Loads past
// the border only come from pixels beyond the right edge of a partial block,
// whose results are never stored; they are harmless, whatever they return.
// Sources A and B are read as their channel concatenation (the fused U-Net skip).
//
// Kernels name a source by number (SOURCE_A, SOURCE_B), never pass the image
// itself to a function: a format-qualified image uniform given to a parameter
// declared without a format is refused by the Khronos reference compiler and
// SPIR-V toolchains ("image formats must match"), though Mesa accepts it. The
// source number is a constant at every call, so the test folds away.

#ifndef SLICES_A
#define SLICES_A 1
#endif
#ifndef SLICES_B
#define SLICES_B 0            // 0: single source
#endif
#define IN_SLICES (SLICES_A + SLICES_B)

#if STORAGE_FP16
#define VIEW_FORMAT rgba16f
#else
#define VIEW_FORMAT rgba32f
#endif

layout(VIEW_FORMAT, binding = 0) readonly uniform image2DArray source_a;    // (SLICES_A layers, H + 2b, W + 2b)
#if SLICES_B > 0
layout(VIEW_FORMAT, binding = 1) readonly uniform image2DArray source_b;    // (SLICES_B layers, H + 2b, W + 2b)
#endif
uniform int view_border;      // b

#define SOURCE_A 0
#define SOURCE_B 1

// Texel (pos.x, pos.y) of a source layer, zero up to view_border texels outside.
vec4 load_input(int source, ivec2 pos, int layer) {
#if SLICES_B > 0
    if (source == SOURCE_B) return imageLoad(source_b, ivec3(pos + view_border, layer));
#endif
    return imageLoad(source_a, ivec3(pos + view_border, layer));
}
