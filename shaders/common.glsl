// Shared by every postfx kernel: activation storage (fp32 or fp16), the
// planar vec4-slice layout, and the fused activations.
//
// An activation tensor of C channels at W x H is stored as ceil(C/4) planes of
// W*H texels, one vec4 (4 channels) each: texel (x, y) of slice s sits at
// (s * H + y) * W + x, so neighbouring invocations read neighbouring texels.
// Each tensor has a buffer of its own and no layer writes a tensor it reads, so
// the kernels declare their storage buffers `restrict` (readonly / writeonly).

#ifndef STORAGE_FP16
#define STORAGE_FP16 0
#endif
#ifndef ACTIVATION
#define ACTIVATION 0          // 0 none, 1 relu, 2 leaky_relu, 3 tanh, 4 sigmoid
#endif
#ifndef NEGATIVE_SLOPE
#define NEGATIVE_SLOPE 0.0
#endif

#if STORAGE_FP16
// fp16 storage, fp32 arithmetic: four halves packed in a uvec2. Values beyond
// the fp16 range are clamped on store rather than turned into inf.
#define texel_t uvec2
vec4 decode_texel(uvec2 t) { return vec4(unpackHalf2x16(t.x), unpackHalf2x16(t.y)); }
uvec2 encode_texel(vec4 v) {
    v = clamp(v, vec4(-65504.0), vec4(65504.0));
    return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
}
#else
#define texel_t vec4
vec4 decode_texel(vec4 t) { return t; }
vec4 encode_texel(vec4 v) { return v; }
#endif

int texel_index(int slice, ivec2 pos, ivec2 size) {
    return (slice * size.y + pos.y) * size.x + pos.x;
}

vec4 activate(vec4 v) {
#if ACTIVATION == 1
    return max(v, vec4(0.0));
#elif ACTIVATION == 2
    return mix(v * float(NEGATIVE_SLOPE), v, greaterThanEqual(v, vec4(0.0)));
#elif ACTIVATION == 3
    // GLSL tanh overflows to NaN for large |v| on some drivers; this form saturates.
    vec4 e = exp(-2.0 * abs(v));
    return sign(v) * (1.0 - e) / (1.0 + e);
#elif ACTIVATION == 4
    return 1.0 / (1.0 + exp(-v));
#else
    return v;
#endif
}

// Reflect padding index (torch "reflect": the edge pixel is not repeated).
int reflect_index(int i, int n) {
    if (n == 1) return 0;
    i = i < 0 ? -i : i;
    int period = 2 * (n - 1);
    i = i % period;
    return i < n ? i : period - i;
}
