// Reading the caller's colour texture, shared by pack_input.comp and present.comp.
// Colour is read as an image (exact texels, none of the caller's sampler state
// involved), except sRGB textures, which image units cannot read.

#ifndef COLOR_FORMAT
#define COLOR_FORMAT 0        // 0 rgba8 (stored values are sRGB-encoded), 1 rgba16f, 2 rgba32f (linear),
#endif                        // 3 an sRGB texture (sampling decodes to linear, so it is encoded again)

#if COLOR_FORMAT == 0
layout(rgba8, binding = 0) readonly uniform image2D color_image;
#elif COLOR_FORMAT == 1
layout(rgba16f, binding = 0) readonly uniform image2D color_image;
#elif COLOR_FORMAT == 2
layout(rgba32f, binding = 0) readonly uniform image2D color_image;
#else
uniform sampler2D color_texture;
#endif

vec3 srgb_encode(vec3 linear) {
    linear = clamp(linear, 0.0, 1.0);
    return mix(linear * 12.92, 1.055 * pow(linear, vec3(1.0 / 2.4)) - 0.055, greaterThan(linear, vec3(0.0031308)));
}

// The frame's colour at a texel, sRGB-encoded, as the network was trained on.
vec3 frame_color(ivec2 texel) {
#if COLOR_FORMAT == 3
    return srgb_encode(texelFetch(color_texture, texel, 0).rgb);
#elif COLOR_FORMAT == 0
    return imageLoad(color_image, texel).rgb;
#else
    return srgb_encode(imageLoad(color_image, texel).rgb);
#endif
}
