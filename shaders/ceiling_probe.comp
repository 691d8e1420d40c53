#version 430
// llvmpipe's (or any device's) arithmetic ceiling for compute shaders: each
// invocation runs CHAINS independent chains a = m * a + c of mat4 x vec4
// multiply-adds (32 FLOPs each) and nothing else -- no loads but the uniforms,
// one store at the end -- so its FLOP rate bounds what a conv kernel built from
// the same mat4 products can reach. Independent chains hide the FMA latency;
// benchmarks/compute_ceiling.py takes the best over a few chain counts.

#ifndef CHAINS
#define CHAINS 8
#endif
#ifndef LOCAL_SIZE
#define LOCAL_SIZE 64
#endif

layout(local_size_x = LOCAL_SIZE, local_size_y = 1, local_size_z = 1) in;

layout(std430, binding = 0) writeonly buffer Sink { vec4 sink[]; };   // (invocations): keeps the chains live

uniform mat4 m;            // contracting (|m| < 1), so the chains stay finite and normal
uniform vec4 c;
uniform int iterations;

void main() {
    vec4 a[CHAINS];
    for (int i = 0; i < CHAINS; ++i) a[i] = vec4(float(gl_GlobalInvocationID.x) * 1e-6 + float(i) * 1e-3);
    for (int n = 0; n < iterations; ++n)
        for (int i = 0; i < CHAINS; ++i) a[i] = m * a[i] + c;
    vec4 sum = vec4(0.0);
    for (int i = 0; i < CHAINS; ++i) sum += a[i];
    sink[gl_GlobalInvocationID.x] = sum;
}
