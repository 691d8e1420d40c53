#version 430
// The demo's screen: raw frame left of `split`, stylized right of it, with a
// thin divider (split = 0 shows only the stylized frame, 1 only the raw one);
// with motion_gain > 0, the motion vectors instead (grey = still, red / green =
// moved along x / y since the last frame, blue = the depth it had then).
in vec2 uv;
out vec4 color;
uniform sampler2D raw_frame;
uniform sampler2D stylized_frame;
uniform float split;             // in [0, 1] of the width
uniform float divider_width;     // in uv units
uniform sampler2D motion_frame;  // the scene's motion target
uniform float motion_gain;       // 0: no debug view

void main() {
    vec3 rgb = uv.x < split ? texture(raw_frame, uv).rgb : texture(stylized_frame, uv).rgb;
    if (split > 0.0 && split < 1.0 && abs(uv.x - split) < divider_width) rgb = vec3(1.0);
    if (motion_gain > 0.0) {
        vec4 m = texture(motion_frame, uv);
        rgb = vec3(clamp(0.5 + m.xy * motion_gain, 0.0, 1.0), m.z);
    }
    color = vec4(rgb, 1.0);
}
