#version 330 core
// The sky: one triangle covering the screen at the far plane (depth 1), drawn
// after the geometry with depth test LEQUAL, so only uncovered pixels shade.
// It hands scene_world.frag (compiled with SKY_PASS 1) a world position far
// along each pixel's view ray; the other outputs only complete the interface.

uniform mat4 inverse_view_projection;
uniform vec3 camera_position;

out vec3 v_world;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
out vec3 v_shadow;
out vec3 v_mover_shadow;
flat out int v_material;
out vec4 v_clip;
out vec4 v_prev_clip;

void main() {
    vec2 corner = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
    gl_Position = vec4(corner, 1.0, 1.0);
    vec4 far_point = inverse_view_projection * vec4(corner, 1.0, 1.0);
    v_world = far_point.xyz / far_point.w;
    v_normal = vec3(0.0, 1.0, 0.0);
    v_color = vec3(0.0);
    v_uv = vec2(0.0);
    v_shadow = vec3(0.0);
    v_mover_shadow = vec3(0.0);
    v_material = 0;
    v_clip = v_prev_clip = vec4(0.0, 0.0, 0.0, 1.0);      // the sky's motion is per pixel (SKY_PASS)
}
