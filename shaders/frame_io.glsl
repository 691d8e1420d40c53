// Reading the caller's colour and depth textures, shared by pack_input.comp,
// present.comp and temporal_resolve.comp.
//
// Colour is read with texelFetch through a sampler object with NEAREST filters
// that postfx binds over the caller's texture state: a texture whose own min
// filter asks for mipmaps it does not have is incomplete, and an incomplete
// texture reads as zero on conforming drivers -- through an image unit too,
// where no sampler object can make it complete. texelFetch takes exact texels;
// the sampler only settles completeness.

#ifndef COLOR_LINEAR
#define COLOR_LINEAR 0        // 0: the fetched values are sRGB-encoded (RGBA8); 1: they are linear
#endif                        // (RGBA16F / RGBA32F, or SRGB8_ALPHA8, which fetching decodes)

uniform sampler2D color_texture;

vec3 srgb_encode(vec3 linear) {
    linear = clamp(linear, 0.0, 1.0);
    return mix(linear * 12.92, 1.055 * pow(linear, vec3(1.0 / 2.4)) - 0.055, greaterThan(linear, vec3(0.0031308)));
}

// The frame's colour at a texel, sRGB-encoded, as the network was trained on.
vec3 frame_color(ivec2 texel) {
    vec3 c = texelFetch(color_texture, texel, 0).rgb;
#if COLOR_LINEAR
    return srgb_encode(c);
#else
    return c;
#endif
}

#ifndef USE_DEPTH
#define USE_DEPTH 0
#endif
#ifndef REVERSED_Z
#define REVERSED_Z 0          // 0: GL default (-1..1 clip, 0 = near); 1: zero-to-one clip, 1 = near
#endif

#if USE_DEPTH
uniform sampler2D depth_texture;     // window-space depth in [0, 1], any depth format
uniform float near_plane;
uniform float far_plane;

// The normalized linear depth (z - near) / (far - near) at a texel. A NaN depth
// reads as the far plane (no surface there); window depth outside [0, 1] (+-Inf
// included: D32F stores it unclamped) is clamped to [0, 1] (reliability C13).
float frame_linear_depth(ivec2 texel) {
    float d = texelFetch(depth_texture, texel, 0).r;
    d = isnan(d) ? float(REVERSED_Z == 0) : clamp(d, 0.0, 1.0);
#if REVERSED_Z
    float z = near_plane * far_plane / (near_plane + d * (far_plane - near_plane));
#else
    float ndc = 2.0 * d - 1.0;
    float z = 2.0 * near_plane * far_plane / (far_plane + near_plane - ndc * (far_plane - near_plane));
#endif
    return clamp((z - near_plane) / (far_plane - near_plane), 0.0, 1.0);
}
#endif
