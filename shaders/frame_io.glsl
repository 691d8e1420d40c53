// Reading the caller's colour texture, shared by pack_input.comp and present.comp.
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
