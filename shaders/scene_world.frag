#version 330 core
// Shading of the demo town: one sun with a shadow map, a sky-coloured
// hemisphere ambient, per-material surface detail made from world / uv
// coordinates (no textures), distance fog towards the sky colour, tone mapping.
// Writes sRGB-encoded colour to an RGBA8 target and, to a second target when
// the framebuffer has one, the motion of each pixel (see frag_motion).

// Mirrors postfx/scene/mesh.py MATERIALS (a test checks they agree).
#define MATERIAL_PLAIN 0
#define MATERIAL_TERRAIN 1
#define MATERIAL_ROAD 2
#define MATERIAL_PAVING 3
#define MATERIAL_WALL 4
#define MATERIAL_ROOF 5
#define MATERIAL_TILES 6
#define MATERIAL_FOLIAGE 7
#define MATERIAL_GLASS 8
#define MATERIAL_PAINT 9
#define MATERIAL_BIRD 10
#define MATERIAL_SKY 11

// Which materials this program shades, one bit each. A software rasterizer
// runs every branch a SIMD group might take -- in practice every branch -- so
// the renderer draws each material (group) with a program compiled for it alone.
#ifndef MATERIALS
#define MATERIALS 0x7FF
#endif
#define SHADES(m) ((((MATERIALS) >> (m)) & 1) != 0)
#ifndef SKY_PASS
#define SKY_PASS 0            // 1: the background (scene_sky.vert) only
#endif
#ifndef MOVER_SHADOWS
#define MOVER_SHADOWS 1       // 0: skip the movers' shadow map (surfaces vehicles' shadows never reach)
#endif
#ifndef SHADOW_TAPS
#define SHADOW_TAPS 4         // 1 or 4 lookups in the static shadow map, each a hardware 2x2 PCF
#endif

in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;          // linear albedo
in vec2 v_uv;             // WALL: window cells (u) and floors (v); others: see mesh.py
in vec3 v_shadow;         // static shadow-map uv and depth, 0..1
in vec3 v_mover_shadow;   // the same for the movers' map (less offset off the surface)
flat in int v_material;
in vec4 v_clip;           // this frame's clip position of the surface point
in vec4 v_prev_clip;      // its clip position in the previous frame

out vec4 frag_color;
// Motion, as engines write it for temporal anti-aliasing: xy = the texture
// coordinate the surface point had in the previous frame minus the one it has
// now (y up, as GL textures), z = its normalized linear depth (z - near) /
// (far - near) in the previous frame. Ignored when no second target is attached.
layout(location = 1) out vec4 frag_motion;

uniform vec3 camera_position;
uniform vec3 sun_direction;          // unit vector towards the sun
uniform vec3 sun_color;              // linear irradiance of the sun
uniform sampler2DShadow shadow_map;        // compare mode on, linear filter: each tap is a 2x2 PCF
uniform sampler2DShadow mover_shadow_map;  // the same for the moving objects
uniform vec2 shadow_texel;           // 1 / shadow-map size
uniform float shadow_bias;           // in shadow-map depth units
uniform float mover_shadow_bias;     // the same for the movers' map
uniform float fog_distance;          // metres: fog reaches 1 - 1/e here (squared-exponential law)
uniform float far_plane;
uniform float near_plane;
uniform mat4 view_projection;        // the sky's motion: this frame's camera ...
uniform mat4 prev_view_projection;   // ... and the previous frame's
uniform float street_pitch;          // street centre lines lie at multiples of this (x and z)
uniform float street_half;           // half the asphalt width
uniform float exposure;

// --- noise -----------------------------------------------------------------------------

float hash12(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}

float hash13(vec3 p3) {
    p3 = fract(p3 * 0.1031);
    p3 += dot(p3, p3.zyx + 31.32);
    return fract((p3.x + p3.y) * p3.z);
}

float value_noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash12(i), hash12(i + vec2(1.0, 0.0)), u.x),
               mix(hash12(i + vec2(0.0, 1.0)), hash12(i + vec2(1.0, 1.0)), u.x), u.y);
}

// Patterns are antialiased with their coordinates' screen-space footprint w
// (fwidth), taken at the top of main(): derivatives inside the per-material
// branches would be undefined.

// 1 inside |x| < half_width, 0 outside, with a pixel-wide soft edge so thin
// stripes fade out with distance instead of shimmering.
float band(float x, float half_width, float w) {
    return 1.0 - smoothstep(half_width - w, half_width + w, abs(x));
}

// 1 inside the rectangle lo..hi of a cell, antialiased (w: p's change per pixel).
float rect(vec2 p, vec2 lo, vec2 hi, vec2 w) {
    vec2 inside = smoothstep(lo - w, lo + w, p) * (1.0 - smoothstep(hi - w, hi + w, p));
    return inside.x * inside.y;
}

float pow4(float x) {
    x *= x;
    return x * x;
}

// --- sky ---------------------------------------------------------------------------------

vec3 sky_gradient(vec3 dir) {
    const vec3 zenith = vec3(0.13, 0.30, 0.68);
    const vec3 horizon = vec3(0.58, 0.68, 0.82);
    vec3 c = mix(horizon, zenith, sqrt(max(dir.y, 0.0)));
    float sun = max(dot(dir, sun_direction), 0.0);
    float sun2 = sun * sun, sun8 = sun2 * sun2 * sun2 * sun2;     // pow() costs a log and an exp per lane
    return c + sun_color * (0.12 * sun8 * sun2 + 0.05 * sun2);
}

vec3 sky(vec3 dir) {
    vec3 c = sky_gradient(dir);
    // Clouds: two octaves of noise on a plane high above, thinning towards the horizon.
    if (dir.y > 0.0) {
        vec2 p = dir.xz / (dir.y + 0.08) * 1.6;
        float n = value_noise(p) * 0.65 + value_noise(p * 2.7 + 13.0) * 0.35;
        float cloud = smoothstep(0.52, 0.78, n) * smoothstep(0.0, 0.25, dir.y);
        c = mix(c, vec3(0.95, 0.95, 0.97) * (0.8 + 0.3 * n), cloud * 0.85);
    }
    float sun = dot(dir, sun_direction);
    return c + sun_color * 6.0 * smoothstep(0.9994, 0.9997, sun);
}

// --- lighting -------------------------------------------------------------------------------

// Sunlight reaching the fragment, 0..1: the static shadow map (town, drawn once)
// and the movers' map (vehicles and birds, redrawn every frame), same projection.
// The ground reads the movers' map with little bias (see renderer.py).
float sunlight() {
    if (any(lessThan(v_shadow, vec3(0.0))) || any(greaterThan(v_shadow, vec3(1.0)))) return 1.0;
    float z = v_shadow.z - shadow_bias;
#if MOVER_SHADOWS
    float movers = textureLod(mover_shadow_map, v_mover_shadow - vec3(0.0, 0.0, mover_shadow_bias), 0.0);
#else
    float movers = 1.0;
#endif
#if SHADOW_TAPS == 1
    return min(movers, textureLod(shadow_map, vec3(v_shadow.xy, z), 0.0));
#else
    vec2 o = 0.5 * shadow_texel;        // four 2x2 bilinear taps cover 3x3 texels
    return min(movers, 0.25 * (textureLod(shadow_map, vec3(v_shadow.xy + vec2(-o.x, -o.y), z), 0.0)
                             + textureLod(shadow_map, vec3(v_shadow.xy + vec2(o.x, -o.y), z), 0.0)
                             + textureLod(shadow_map, vec3(v_shadow.xy + vec2(-o.x, o.y), z), 0.0)
                             + textureLod(shadow_map, vec3(v_shadow.xy + vec2(o.x, o.y), z), 0.0)));
#endif
}

// --- surfaces --------------------------------------------------------------------------------

vec3 terrain(vec2 p, vec3 grass) {
    float broad = value_noise(p * 0.018);
    float fine = value_noise(p * 0.4);
    vec3 c = grass * (0.8 + 0.4 * fine);
    c = mix(c, vec3(0.30, 0.28, 0.09), smoothstep(0.55, 0.8, broad) * 0.7);          // dry grass
    float dirt = smoothstep(0.72, 0.86, value_noise(p * 0.045 + 17.0));
    return mix(c, vec3(0.22, 0.15, 0.09) * (0.85 + 0.3 * fine), dirt);
}

vec3 road(vec2 p, vec3 asphalt, vec2 xz_width) {
    vec2 g = p - street_pitch * floor(p / street_pitch + 0.5);    // offset from the nearest centre lines
    vec2 a = abs(g);
    float n = value_noise(p * 0.5) * 0.6 + value_noise(p * 4.0) * 0.4;
    vec3 c = asphalt * (0.8 + 0.4 * n);
    const vec3 paint = vec3(0.80, 0.80, 0.76);
    float mark = 0.0;
    // Dashed centre lines, stopping short of the crossing; solid edge lines.
    float dash_z = step(0.5, fract(p.y / 6.0)), dash_x = step(0.5, fract(p.x / 6.0));
    float clear_z = step(street_half + 3.5, a.y), clear_x = step(street_half + 3.5, a.x);
    mark += band(g.x, 0.12, xz_width.x) * dash_z * clear_z + band(g.y, 0.12, xz_width.y) * dash_x * clear_x;
    mark += band(a.x - (street_half - 0.45), 0.08, xz_width.x) * step(street_half, a.y);
    mark += band(a.y - (street_half - 0.45), 0.08, xz_width.y) * step(street_half, a.x);
    // Zebra crossings just outside each intersection.
    float zebra_x = step(street_half + 0.5, a.y) * step(a.y, street_half + 3.2) * step(a.x, street_half - 0.8)
                  * band(fract(g.x / 1.1) - 0.5, 0.26, xz_width.x / 1.1);
    float zebra_z = step(street_half + 0.5, a.x) * step(a.x, street_half + 3.2) * step(a.y, street_half - 0.8)
                  * band(fract(g.y / 1.1) - 0.5, 0.26, xz_width.y / 1.1);
    mark += zebra_x + zebra_z;
    return mix(c, paint * (0.9 + 0.2 * n), clamp(mark, 0.0, 1.0));
}

vec3 paving(vec2 p, vec3 base, vec2 xz_width) {
    vec2 tile = floor(p / 1.5);
    vec2 f = fract(p / 1.5) - 0.5;
    vec2 w = xz_width / 1.5;
    float joint = max(band(abs(f.x) - 0.5, 0.03, w.x), band(abs(f.y) - 0.5, 0.03, w.y));
    vec3 c = base * (0.9 + 0.15 * hash12(tile));
    return mix(c, base * 0.6, joint);
}

// Facade with a window grid: uv counts window cells (u) and floors (v); the
// facade colour doubles as a per-building seed for the window style. Returns
// the wall's albedo; `pane` is the (unlit) colour of the glass, `glass` its coverage.
vec3 wall(vec3 facade, vec3 n, vec3 view_dir, vec2 uv_width, out vec3 pane, out float glass) {
    vec2 cell = fract(v_uv);
    vec2 id = floor(v_uv);
    float style = hash13(facade * 97.0);
    float width = mix(0.22, 0.36, fract(style * 7.0));          // margin each side of a window
    vec2 lo = vec2(width, 0.3), hi = vec2(1.0 - width, 0.82);
    if (id.y < 0.5 && style > 0.45) { lo = vec2(0.06, 0.04); hi = vec2(0.94, 0.74); }   // shop fronts
    glass = rect(cell, lo, hi, uv_width);
    float frame = rect(cell, lo - 0.05, hi + vec2(0.05, 0.03), uv_width) - glass;
    // A string course (a thin moulding) under each floor on some buildings.
    float ledge = band(cell.y - 0.02, 0.025, uv_width.y) * step(fract(style * 13.0), 0.6);
    float lit = hash12(id + facade.xy * 131.0);
    vec3 reflected = sky_gradient(reflect(-view_dir, n));
    float fresnel = 0.15 + 0.6 * pow4(1.0 - max(dot(n, view_dir), 0.0));
    vec3 interior = mix(vec3(0.02, 0.025, 0.03), vec3(0.22, 0.17, 0.10), step(0.85, lit));
    pane = mix(interior, reflected * 0.6, fresnel);
    return mix(facade, facade * 0.55, clamp(frame + ledge, 0.0, 1.0));
}

vec3 tone_map(vec3 color) {
    return pow(vec3(1.0) - exp(-exposure * color), vec3(1.0 / 2.2));
}

vec4 motion(vec4 clip, vec4 prev_clip, float prev_depth01) {
    return vec4((prev_clip.xy / prev_clip.w - clip.xy / clip.w) * 0.5, prev_depth01, 1.0);
}

#if SKY_PASS
void main() {
    vec3 direction = v_world - camera_position;
    frag_color = vec4(tone_map(sky(normalize(direction))), 1.0);
    // The sky is infinitely far: only the camera's turn moves it (w = 0 drops translation).
    frag_motion = motion(view_projection * vec4(direction, 0.0), prev_view_projection * vec4(direction, 0.0), 1.0);
}
#else
void main() {
    vec2 xz_width = fwidth(v_world.xz);
    vec2 uv_width = fwidth(v_uv);
    vec3 to_eye = camera_position - v_world;
    float distance = length(to_eye);
    vec3 view_dir = to_eye / distance;
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;           // birds' wings
    vec3 albedo = v_color;
    float glass = 0.0;                     // coverage of a reflective pane (not diffusely lit)
    vec3 pane = vec3(0.0);
    float shine = 0.0;                     // strength of the sun's highlight
    float occlusion = 1.0;
#if SHADES(MATERIAL_TERRAIN)
    if (v_material == MATERIAL_TERRAIN) albedo = terrain(v_world.xz, v_color);
#endif
#if SHADES(MATERIAL_ROAD)
    if (v_material == MATERIAL_ROAD) albedo = road(v_world.xz, v_color, xz_width);
#endif
#if SHADES(MATERIAL_PAVING)
    if (v_material == MATERIAL_PAVING) albedo = paving(v_world.xz, v_color, xz_width);
#endif
#if SHADES(MATERIAL_WALL)
    if (v_material == MATERIAL_WALL) {
        albedo = wall(v_color, n, view_dir, uv_width, pane, glass);
        occlusion = mix(0.6, 1.0, smoothstep(0.0, 3.0, v_world.y));
    }
#endif
#if SHADES(MATERIAL_ROOF)
    if (v_material == MATERIAL_ROOF) albedo = v_color * (0.8 + 0.35 * value_noise(v_world.xz * 1.7));
#endif
#if SHADES(MATERIAL_TILES)
    if (v_material == MATERIAL_TILES) {
        float row = fract(v_world.y / 0.32);
        albedo = v_color * (0.75 + 0.3 * smoothstep(0.0, 0.85, row)) * (0.9 + 0.2 * value_noise(v_world.xz * 2.0));
    }
#endif
#if SHADES(MATERIAL_FOLIAGE)
    if (v_material == MATERIAL_FOLIAGE)
        albedo = v_color * (0.75 + 0.45 * value_noise(v_world.xz * 0.9 + v_world.y * 1.3));
#endif
#if SHADES(MATERIAL_PAINT)
    if (v_material == MATERIAL_PAINT) shine = 1.0;
#endif
#if SHADES(MATERIAL_PLAIN)
    if (v_material == MATERIAL_PLAIN) occlusion = mix(0.65, 1.0, smoothstep(0.0, 2.0, v_world.y));
#endif
#if SHADES(MATERIAL_GLASS)
    if (v_material == MATERIAL_GLASS) {
        glass = 1.0;
        float fresnel = 0.2 + 0.7 * pow4(1.0 - max(dot(n, view_dir), 0.0));
        pane = mix(albedo * 0.3, sky_gradient(reflect(-view_dir, n)) * 0.7, fresnel);
    }
#endif

    float lit = sunlight();
    float diffuse = max(dot(n, sun_direction), 0.0) * lit;
    vec3 ambient = mix(vec3(0.16, 0.15, 0.12), vec3(0.34, 0.42, 0.55), n.y * 0.5 + 0.5) * occlusion;
    vec3 color = albedo * (sun_color * diffuse + ambient);
    vec3 half_vector = normalize(sun_direction + view_dir);
#if SHADES(MATERIAL_PAINT)
    color += sun_color * lit * shine * 0.5 * pow4(pow4(pow4(max(dot(n, half_vector), 0.0))));     // ^64
#endif
#if SHADES(MATERIAL_WALL) || SHADES(MATERIAL_GLASS)
    // Panes keep their reflection in shadow and catch the sun's highlight.
    float highlight = pow4(pow4(pow4(max(dot(n, half_vector), 0.0))));
    vec3 lit_pane = pane * (0.6 + 0.4 * lit) + sun_color * lit * 0.6 * highlight * highlight;          // ^128
    color = mix(color, lit_pane, glass);
#endif

    // Fog: squared-exponential with distance, reaching the sky colour at the far plane
    // (geometry clipped there then meets a sky of the same colour).
    float fog_depth = distance / fog_distance;
    float fog = 1.0 - exp(-fog_depth * fog_depth);
    fog = max(fog, smoothstep(0.7 * far_plane, far_plane, distance));
    vec3 fog_color = sky_gradient(normalize(vec3(-view_dir.x, max(-view_dir.y, 0.0), -view_dir.z)));
    frag_color = vec4(tone_map(mix(color, fog_color, fog)), 1.0);
    frag_motion = motion(v_clip, v_prev_clip, clamp((v_prev_clip.w - near_plane) / (far_plane - near_plane), 0.0, 1.0));
}
#endif
