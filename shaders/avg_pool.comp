#version 430
// Average pooling (torch AvgPool2d with ceil_mode=False): each output texel is
// the mean of a KERNEL x KERNEL window stepped by STRIDE over the zero-padded
// source. COUNT_INCLUDE_PAD divides by KERNEL^2 (padding taps count as zeros);
// otherwise by the number of taps that fall inside the source.
// One invocation = one output texel (pixel x slice).
#include "common.glsl"

#ifndef KERNEL
#define KERNEL 3
#endif
#ifndef STRIDE
#define STRIDE 2
#endif
#ifndef PADDING
#define PADDING 1
#endif
#ifndef COUNT_INCLUDE_PAD
#define COUNT_INCLUDE_PAD 1
#endif

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(std430, binding = 0) readonly restrict buffer SourceA { texel_t source_a[]; };
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };

uniform ivec2 in_size;
uniform ivec2 out_size;
uniform int slices;

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    int slice = int(gl_GlobalInvocationID.z);
    if (any(greaterThanEqual(pos, out_size)) || slice >= slices) return;
    ivec2 origin = pos * STRIDE - PADDING;
    // The window clipped to the source: padding taps add zero, so they are skipped.
    ivec2 first = max(origin, ivec2(0));
    ivec2 last = min(origin + KERNEL, in_size);       // exclusive
    vec4 sum = vec4(0.0);
    for (int y = first.y; y < last.y; ++y)
        for (int x = first.x; x < last.x; ++x)
            sum += decode_texel(source_a[texel_index(slice, ivec2(x, y), in_size)]);
#if COUNT_INCLUDE_PAD
    // torch counts the taps inside the padded frame, which with
    // padding <= kernel / 2 and ceil_mode=False is always the whole window.
    float taps = float(KERNEL * KERNEL);
#else
    ivec2 inside = max(last - first, ivec2(0));
    float taps = float(max(inside.x * inside.y, 1));
#endif
    destination[texel_index(slice, pos, out_size)] = encode_texel(activate(sum / taps));
}
