#version 430
// Network output -> the pass's RGBA8 output texture at frame size: map the
// output range to [0, 1], upsample from the run size (internal scale), blend
// with the original frame by the effect strength.
//
// WARP_RESULT (temporal mode, a network spread over frames): the result is as old as
// the run that made it; it is read where result_offsets.comp says each pixel was in
// that run's frame (nearest pixel; in place where that is lost or off-screen), the
// original frame where the pixel is now.
#include "common.glsl"
#include "frame_io.glsl"

#ifndef WARP_RESULT
#define WARP_RESULT 0
#endif

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

#if STORAGE_FP16
#define OUTPUT_VIEW_FORMAT rgba16f
#else
#define OUTPUT_VIEW_FORMAT rgba32f
#endif

layout(rgba8, binding = 1) writeonly uniform image2D output_image;
// The network output's image view (shaders/image_sources.glsl): four loads per pixel,
// and on llvmpipe an imageLoad costs a fraction of a storage-buffer load.
layout(OUTPUT_VIEW_FORMAT, binding = 2) readonly uniform image2DArray network_output;   // (1, Hr + 2b, Wr + 2b)

uniform ivec2 frame_size;
uniform ivec2 scaled_size;
uniform vec2 value_range;       // the model's output range for [0, 1]
uniform float strength;         // 0 = original frame, 1 = fully stylized
uniform int view_border;        // b: the view's zero border
#if WARP_RESULT
uniform sampler2D result_offsets;   // RGBA32F, xy: texture-coordinate offset to the result's frame; NEAREST
#endif

vec3 stylized(ivec2 p) {
    vec3 v = imageLoad(network_output, ivec3(p + view_border, 0)).rgb;
    return (v - value_range.x) / (value_range.y - value_range.x);
}

void main() {
    ivec2 pos = ivec2(gl_GlobalInvocationID.xy);
    if (any(greaterThanEqual(pos, frame_size))) return;
    ivec2 read_at = pos;            // where the stylized result is read
#if WARP_RESULT
    vec2 result_uv = (vec2(pos) + 0.5) / vec2(frame_size) + texelFetch(result_offsets, pos, 0).xy;
    if (all(greaterThanEqual(result_uv, vec2(0.0))) && all(lessThanEqual(result_uv, vec2(1.0))))
        read_at = clamp(ivec2(floor(result_uv * vec2(frame_size))), ivec2(0), frame_size - 1);
#endif
    // read_at is a texel (rows bottom-up); the network's rows run top-down.
    ivec2 top_down = ivec2(read_at.x, frame_size.y - 1 - read_at.y);
    vec2 src = clamp((vec2(top_down) + 0.5) * vec2(scaled_size) / vec2(frame_size) - 0.5,
                     vec2(0.0), vec2(scaled_size - 1));
    ivec2 p0 = ivec2(floor(src));
    ivec2 p1 = min(p0 + 1, scaled_size - 1);
    vec2 f = src - vec2(p0);
    vec3 styl = mix(mix(stylized(p0), stylized(ivec2(p1.x, p0.y)), f.x),
                    mix(stylized(ivec2(p0.x, p1.y)), stylized(p1), f.x), f.y);
    // A NaN channel of a float frame reads as 0, as pack_input.comp reads it (C13);
    // left in, it would blank the pixel at any strength.
    vec3 original = frame_color(pos);
    original = mix(original, vec3(0.0), isnan(original));
    vec3 rgb = mix(original, styl, strength);
    rgb = clamp(mix(rgb, vec3(0.0), isnan(rgb)), 0.0, 1.0);
    imageStore(output_image, pos, vec4(rgb, 1.0));
}
