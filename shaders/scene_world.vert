#version 330 core
// Scene geometry: static meshes (one identity instance) and instanced movers
// (cars, buses, birds), for two passes chosen by PASS:
//   0  colour: hands scene_world.frag what it shades, and where the surface
//      point was in the previous frame (clip positions, for the motion target)
//   1  shadow: depth from the sun (scene_shadow.frag)

#ifndef PASS
#define PASS 0
#endif

#define MATERIAL_PAINT 9      // mirrors postfx/scene/mesh.py MATERIALS
#define MATERIAL_BIRD 10

in vec3 in_position;      // object space (world space for the static mesh)
in vec3 in_normal;
in vec3 in_color;         // linear RGB
in vec2 in_uv;
in float in_material;
in vec4 in_offset;        // per instance: translation xyz, yaw (turns +x towards -z)
in vec4 in_tint;          // per instance: paint rgb, wing flap (metres at the wing tip)
in vec4 in_prev_offset;   // per instance: in_offset at the previous frame's time
in vec4 in_prev_tint;     // per instance: in_tint at the previous frame's time (its flap)

uniform mat4 view_projection;     // the camera, or the sun's projection in the shadow pass

#if PASS == 0
uniform mat4 prev_view_projection;    // the previous frame's camera
uniform mat4 light_view_projection;
uniform float shadow_normal_offset;    // metres: look the shadow up off the surface, against acne
uniform float mover_normal_offset;     // the same for the movers' map, which holds only small objects
out vec3 v_world;
out vec3 v_shadow;                // static shadow-map uv and depth, 0..1
out vec3 v_mover_shadow;          // the same, less offset, for the movers' map
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
flat out int v_material;
out vec4 v_clip;                  // this frame's clip position (interpolated, divided per fragment)
out vec4 v_prev_clip;             // the same surface point's clip position in the previous frame
#endif

mat3 turn_of(float yaw) {
    float c = cos(yaw), s = sin(yaw);
    return mat3(c, 0.0, -s,  0.0, 1.0, 0.0,  s, 0.0, c);     // columns: images of x, y, z
}

// World position of a vertex of an instance placed at `offset` (xyz, yaw) with wing flap `flap`.
vec3 placed(vec4 offset, float flap, int material) {
    vec3 p = in_position;
    if (material == MATERIAL_BIRD) p.y += flap * in_uv.x;
    return turn_of(offset.w) * p + offset.xyz;
}

void main() {
    int material = int(in_material + 0.5);
    vec3 world = placed(in_offset, in_tint.w, material);
    gl_Position = view_projection * vec4(world, 1.0);
#if PASS == 0
    v_clip = gl_Position;
    v_prev_clip = prev_view_projection * vec4(placed(in_prev_offset, in_prev_tint.w, material), 1.0);
    v_world = world;
    v_normal = turn_of(in_offset.w) * in_normal;
    v_color = material == MATERIAL_PAINT ? in_tint.rgb : in_color;
    v_uv = in_uv;
    v_material = material;
    // The sun's projection is affine (w = 1).
    v_shadow = (light_view_projection * vec4(world + v_normal * shadow_normal_offset, 1.0)).xyz * 0.5 + 0.5;
    v_mover_shadow = (light_view_projection * vec4(world + v_normal * mover_normal_offset, 1.0)).xyz * 0.5 + 0.5;
#endif
}
