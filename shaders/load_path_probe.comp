#version 430
// What each load path costs a mat4 x vec4 multiply-add loop: the same loop
// (PRODUCTS dependent products per invocation, 4 independent accumulators)
// with its weight mat4 and input vec4 taken from a chosen source. Run by
// benchmarks/load_paths.py; the answer to "why is the naive kernel slow".

#ifndef WEIGHT_SOURCE
#define WEIGHT_SOURCE 0       // 0 a uniform (no load), 1 storage buffer, 2 image
#endif
#ifndef INPUT_SOURCE
#define INPUT_SOURCE 0        // 0 computed (no load), 1 storage buffer, 2 shared memory, 3 texelFetch, 4 imageLoad
#endif
#ifndef PRODUCTS
#define PRODUCTS 256
#endif

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(std430, binding = 0) readonly buffer Inputs { vec4 inputs[]; };     // (invocations + PRODUCTS)
layout(std430, binding = 1) readonly buffer Weights { mat4 weights[]; };   // (PRODUCTS)
layout(std430, binding = 2) writeonly buffer Sink { vec4 sink[]; };        // (invocations)
layout(rgba32f, binding = 0) readonly uniform image2D input_image;          // (64 + PRODUCTS, rows) texels
layout(rgba32f, binding = 1) readonly uniform image2D weight_image;         // (4 * PRODUCTS, 1)
uniform sampler2D input_texture;                                            // the input image's texture
uniform mat4 uniform_weight;

shared vec4 staged[64 + PRODUCTS];

mat4 weight(int i) {
#if WEIGHT_SOURCE == 1
    return weights[i];
#elif WEIGHT_SOURCE == 2
    return mat4(imageLoad(weight_image, ivec2(4 * i, 0)), imageLoad(weight_image, ivec2(4 * i + 1, 0)),
                imageLoad(weight_image, ivec2(4 * i + 2, 0)), imageLoad(weight_image, ivec2(4 * i + 3, 0)));
#else
    return uniform_weight;
#endif
}

vec4 x(int i) {
    int lane = int(gl_LocalInvocationID.x), row = int(gl_WorkGroupID.x);
#if INPUT_SOURCE == 1
    return inputs[int(gl_GlobalInvocationID.x) + i];
#elif INPUT_SOURCE == 2
    return staged[lane + i];
#elif INPUT_SOURCE == 3
    return texelFetch(input_texture, ivec2(lane + i, row), 0);
#elif INPUT_SOURCE == 4
    return imageLoad(input_image, ivec2(lane + i, row));
#else
    return vec4(float(lane + i));
#endif
}

void main() {
#if INPUT_SOURCE == 2
    for (int i = int(gl_LocalInvocationID.x); i < 64 + PRODUCTS; i += 64) staged[i] = inputs[i];
    barrier();
#endif
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    for (int i = 0; i < PRODUCTS; i += 4)
        for (int c = 0; c < 4; ++c) acc[c] += weight(i + c) * x(i + c);
    sink[gl_GlobalInvocationID.x] = acc[0] + acc[1] + acc[2] + acc[3];
}
