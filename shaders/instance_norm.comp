#version 430
// Instance norm: every lane of a slice is normalized by its own mean and biased
// variance over the whole tensor, y = activate((x - mean) / sqrt(var + eps) *
// scale + shift). Three dispatches per layer (PASS):
//
//   0 partial: work groups (G, slices); each invocation runs Welford over a
//     grid-strided set of the slice's pixels, then the work group merges its
//     invocations (Chan et al.) in shared memory -> partials (slices, G);
//   1 final: one work group per slice merges the slice's G partials the same
//     way -> statistics (slices): pivot, factor, offset;
//   2 apply: y = activate((x - pivot) * factor + offset) into the layer's
//     output tensor, APPLY_PIXELS texels per invocation.
//
// Why not sum x and x^2: in fp32, E[x^2] - E[x]^2 cancels catastrophically
// once |mean| >> std (mean 1000, std 0.01 leaves no significant bit). Welford
// and Chan's merge keep the variance accurate, and every value is first taken
// relative to a pivot, the slice's first texel: x - pivot is exact for values
// within a factor of 2 of it, so the mean's own fp32 rounding (an ulp of 1000 is
// 6e-5, 6e-3 of a std of 0.01) never reaches y.
#include "common.glsl"

#ifndef PASS
#define PASS 0                // 0 partial statistics, 1 final merge, 2 apply
#endif
#ifndef LOCAL_SIZE
#define LOCAL_SIZE 256
#endif
#ifndef EPS
#define EPS 1e-5              // final pass
#endif
#ifndef APPLY_PIXELS
#define APPLY_PIXELS 16       // apply pass: texels per invocation
#endif

layout(local_size_x = LOCAL_SIZE, local_size_y = 1, local_size_z = 1) in;

// Welford state of a set of pixels, per lane; one count for the four lanes.
struct Moments {
    vec4 mean;                // of x - pivot
    vec4 m2;                  // sum of squared deviations from the mean
    float count;
};                            // std430: 48 bytes (ops.NORM_MOMENTS_BYTES)

// Per slice, what the apply pass needs: y = (x - pivot) * factor + offset.
struct Statistics {
    vec4 pivot;               // the slice's first texel
    vec4 factor;              // scale / sqrt(var + eps)
    vec4 offset;              // shift - (mean - pivot) * factor
};                            // std430: 48 bytes (ops.NORM_STATISTICS_BYTES)

// a merged with b (Chan, Golub, LeVeque); an empty b changes nothing.
Moments merge(Moments a, Moments b) {
    if (b.count == 0.0) return a;
    float count = a.count + b.count;
    vec4 delta = b.mean - a.mean;
    float weight_b = b.count / count;
    return Moments(a.mean + delta * weight_b, a.m2 + b.m2 + delta * delta * (a.count * weight_b), count);
}

#if PASS == 0 || PASS == 1
#if (LOCAL_SIZE & (LOCAL_SIZE - 1)) != 0
#error "LOCAL_SIZE of the reductions must be a power of two"
#endif

shared vec4 shared_mean[LOCAL_SIZE];
shared vec4 shared_m2[LOCAL_SIZE];
shared float shared_count[LOCAL_SIZE];

// The work group's Moments merged into invocation 0's; every invocation must call it.
Moments merge_work_group(Moments own) {
    uint i = gl_LocalInvocationIndex;
    shared_mean[i] = own.mean;
    shared_m2[i] = own.m2;
    shared_count[i] = own.count;
    barrier();
    // Invocations below `stride` write only below it and read only above it.
    for (uint stride = uint(LOCAL_SIZE) / 2u; stride > 0u; stride /= 2u) {
        if (i < stride) {
            own = merge(own, Moments(shared_mean[i + stride], shared_m2[i + stride], shared_count[i + stride]));
            shared_mean[i] = own.mean;
            shared_m2[i] = own.m2;
            shared_count[i] = own.count;
        }
        barrier();
    }
    return own;
}
#endif

#if PASS == 0

layout(std430, binding = 0) readonly restrict buffer Source { texel_t source[]; };     // (slices, H, W)
layout(std430, binding = 2) writeonly restrict buffer Partials { Moments partials[]; }; // (slices, G)

uniform int pixels;           // W * H

void main() {
    int slice = int(gl_WorkGroupID.y);
    int groups = int(gl_NumWorkGroups.x);
    int base = slice * pixels;
    vec4 pivot = decode_texel(source[base]);
    Moments own = Moments(vec4(0.0), vec4(0.0), 0.0);
    // Grid-strided: the G work groups of a slice read neighbouring texels together.
    for (int p = int(gl_WorkGroupID.x) * LOCAL_SIZE + int(gl_LocalInvocationIndex); p < pixels;
         p += groups * LOCAL_SIZE) {
        vec4 x = decode_texel(source[base + p]) - pivot;
        own.count += 1.0;
        vec4 delta = x - own.mean;
        own.mean += delta / own.count;
        own.m2 += delta * (x - own.mean);
    }
    own = merge_work_group(own);
    if (gl_LocalInvocationIndex == 0u) partials[slice * groups + int(gl_WorkGroupID.x)] = own;
}

#elif PASS == 1

layout(std430, binding = 0) readonly restrict buffer Partials { Moments partials[]; };  // (slices, G)
layout(std430, binding = 1) readonly restrict buffer Source { texel_t source[]; };      // (slices, H, W): the pivots
layout(std430, binding = 3) readonly restrict buffer Scale { vec4 scale[]; };            // (slices) lanes
layout(std430, binding = 4) readonly restrict buffer Shift { vec4 shift[]; };            // (slices) lanes
layout(std430, binding = 2) writeonly restrict buffer Destination { Statistics statistics[]; };  // (slices)

uniform int pixels;           // W * H
uniform int partial_groups;   // G

void main() {
    int slice = int(gl_WorkGroupID.x);
    Moments own = Moments(vec4(0.0), vec4(0.0), 0.0);
    for (int g = int(gl_LocalInvocationIndex); g < partial_groups; g += LOCAL_SIZE) {
        own = merge(own, partials[slice * partial_groups + g]);
    }
    own = merge_work_group(own);
    if (gl_LocalInvocationIndex == 0u) {
        vec4 factor = scale[slice] * inversesqrt(own.m2 / own.count + float(EPS));
        // own.mean is relative to the pivot, so of the order of the std: the offset keeps its precision.
        statistics[slice] = Statistics(decode_texel(source[slice * pixels]), factor,
                                       shift[slice] - own.mean * factor);
    }
}

#else

layout(std430, binding = 0) readonly restrict buffer Source { texel_t source[]; };      // (slices, H, W)
layout(std430, binding = 5) readonly restrict buffer Stats { Statistics statistics[]; };  // (slices)
layout(std430, binding = 2) writeonly restrict buffer Destination { texel_t destination[]; };  // (slices, H, W)

uniform int pixels;           // W * H

// Each invocation does APPLY_PIXELS texels, LOCAL_SIZE apart: on llvmpipe a
// storage-buffer load of the slice's statistics is a gather per lane, as dear
// as the texel loads, so it is amortised over several texels.
void main() {
    int slice = int(gl_WorkGroupID.z);
    int group = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    int first = group * (LOCAL_SIZE * APPLY_PIXELS) + int(gl_LocalInvocationIndex);
    if (first >= pixels) return;
    Statistics s = statistics[slice];
    int base = slice * pixels;
    for (int k = 0; k < APPLY_PIXELS; k++) {
        int p = first + k * LOCAL_SIZE;
        if (p < pixels) {
            vec4 x = decode_texel(source[base + p]);
            destination[base + p] = encode_texel(activate((x - s.pivot) * s.factor + s.offset));
        }
    }
}

#endif
