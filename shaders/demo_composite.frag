#version 430
// The demo's screen: raw frame left of `split`, stylized right of it, with a
// thin divider (split = 0 shows only the stylized frame, 1 only the raw one).
in vec2 uv;
out vec4 color;
uniform sampler2D raw_frame;
uniform sampler2D stylized_frame;
uniform float split;             // in [0, 1] of the width
uniform float divider_width;     // in uv units

void main() {
    vec3 rgb = uv.x < split ? texture(raw_frame, uv).rgb : texture(stylized_frame, uv).rgb;
    if (split > 0.0 && split < 1.0 && abs(uv.x - split) < divider_width) rgb = vec3(1.0);
    color = vec4(rgb, 1.0);
}
