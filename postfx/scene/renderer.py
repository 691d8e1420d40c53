"""The demo scene on the GPU: programs, meshes, the sun's shadow maps, and a
frame: the movers' shadow depth, then colour + depth into a SceneTarget (the
town's own shadow map is drawn once, at build).

Core-profile OpenGL 3.3 features only (VAOs, no fixed function), so the same
code draws in an EGL context and in a glfw window's 4.3 core context.
"""
from __future__ import annotations

import math

import moderngl
import numpy as np

from ..errors import FrameTooLarge, FrameTooSmall, GLError, InputError, ShaderCompileError
from ..gl.context import is_live, renderer
from ..gl.programs import declared_uniforms, set_uniforms, specialise
from ..gl.readback import read_rgb
from .camera import Camera
from .mesh import MATERIAL, MATERIALS, VERTEX_ATTRIBUTES, VERTEX_FORMAT, Mesh
from .movers import INSTANCE_ATTRIBUTES, INSTANCE_FORMAT, PREVIOUS_INSTANCE_ATTRIBUTES, Traffic
from .town import PITCH, ROAD_EDGE, STREET_HALF, Town
from .views import FlyPath, random_view

SHADOW_SIZE = 1024
SHADOW_HALF = ROAD_EDGE + 10.0      # metres: the shadow map covers the town square (and a little more)
SHADOW_RANGE = 400.0                # metres along the sun direction either side of the origin
SHADOW_BIAS = 0.3                   # metres towards the sun: PCF taps reach a texel off the lookup
SHADOW_NORMAL_OFFSET = 0.35         # metres off the surface, along its normal, for the lookup
# The same two for the movers' map as the ground reads it: the ground is not in that
# map, so it cannot shadow itself, and the vehicles' low bodies must still cast.
# (The vehicles themselves read it with the static map's values.)
MOVER_SHADOW_BIAS = 0.05
MOVER_NORMAL_OFFSET = 0.08
# Draw groups of the static mesh, big occluders first. Each group has its own
# program compiled for its materials alone (see MATERIALS in scene_world.frag),
# and only surfaces the vehicles' shadows fall on read the movers' shadow map.
STATIC_GROUPS = (("WALL",), ("ROOF",), ("PLAIN",), ("TILES",), ("FOLIAGE",), ("PAVING",), ("ROAD",), ("TERRAIN",))
RECEIVE_MOVER_SHADOWS = {"PAVING", "ROAD", "PAINT", "GLASS", "PLAIN", "BIRD"}
MOVER_MATERIALS = ("PAINT", "GLASS", "PLAIN", "BIRD")
SUN_ELEVATION, SUN_AZIMUTH = math.radians(35.0), math.radians(41.0)     # azimuth from +z towards +x
SUN_DIRECTION = np.array([math.cos(SUN_ELEVATION) * math.sin(SUN_AZIMUTH), math.sin(SUN_ELEVATION),
                          math.cos(SUN_ELEVATION) * math.cos(SUN_AZIMUTH)])     # unit, towards the sun
SUN_COLOR = (2.6, 2.4, 2.1)
FOG_DISTANCE = 380.0
EXPOSURE = 1.25
MAX_TARGET_SIDE = 16384


class SceneTarget:
    """An offscreen framebuffer for one frame size: `color` (RGBA8, sRGB-encoded
    values), `depth` (a 24-bit depth texture) and, with motion=True, `motion`
    (RGBA32F: xy the texture coordinate each pixel's surface had in the previous
    frame minus the one it has now, y up; z its normalized linear depth then).
    To resize, make a new one."""

    def __init__(self, ctx: moderngl.Context, size, *, motion: bool = False):
        self.ctx = ctx
        self.size = _check_size(ctx, size)
        self.color = self.depth = self.motion = self.fbo = None
        _bind_live_framebuffer(ctx)     # moderngl rebinds the current framebuffer after making one
        try:
            self.color = ctx.texture(self.size, 4)                 # (H, W) RGBA8
            self.depth = ctx.depth_texture(self.size)              # (H, W) D24, window depth 0 = near
            attachments = [self.color]
            if motion:
                self.motion = ctx.texture(self.size, 4, dtype="f4")    # (H, W) RGBA32F
                self.motion.filter = (moderngl.NEAREST, moderngl.NEAREST)
                attachments.append(self.motion)
            self.fbo = ctx.framebuffer(color_attachments=attachments, depth_attachment=self.depth)
        except moderngl.Error as e:
            self.release()
            raise GLError(f"could not allocate a {self.size[0]}x{self.size[1]} scene target on "
                          f"{renderer(ctx)} ({e})") from None

    @property
    def aspect(self) -> float:
        return self.size[0] / self.size[1]

    def read_rgb(self) -> np.ndarray:
        """The colour as (H, W, 3) uint8, rows top-down (as image files store them)."""
        return read_rgb(self.color)

    def read_depth(self) -> np.ndarray:
        """The window-space depth as (H, W) float32 in [0, 1], rows top-down."""
        w, h = self.size
        return np.ascontiguousarray(np.frombuffer(self.depth.read(), np.float32).reshape(h, w)[::-1])

    def read_motion(self) -> np.ndarray:
        """The motion as (H, W, 3) float32, rows top-down, in the units of image files:
        [..., 0:2] the offset in pixels (x right, y down) from each pixel to where its
        surface was in the previous frame, [..., 2] the normalized linear depth it had then.
        InputError for a target made without motion."""
        if self.motion is None:
            raise InputError("this SceneTarget has no motion target; make it with motion=True")
        w, h = self.size
        uv = np.frombuffer(self.motion.read(), np.float32).reshape(h, w, 4)[::-1]
        return np.ascontiguousarray(np.stack([uv[..., 0] * w, -uv[..., 1] * h, uv[..., 2]], axis=-1))

    def release(self) -> None:
        """Free the textures and framebuffer. Safe to call twice."""
        if not is_live(self.ctx):
            return
        if self.fbo is not None and self.ctx.fbo is self.fbo:
            # Leave no deleted framebuffer current (see _bind_live_framebuffer).
            (self.ctx.screen or self.ctx.detect_framebuffer(0)).use()
        for name in ("fbo", "color", "depth", "motion"):
            obj = getattr(self, name)
            if obj is not None:
                obj.release()
                setattr(self, name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _check_size(ctx, size) -> tuple[int, int]:
    try:
        w, h = (size, size) if isinstance(size, (int, np.integer)) else size
        if isinstance(w, bool) or isinstance(h, bool) or int(w) != w or int(h) != h:
            raise TypeError
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        raise InputError(f"a frame size must be two whole numbers (width, height), got {size!r}") from None
    if w < 1 or h < 1:
        raise FrameTooSmall(f"frame size {w}x{h} is empty (a minimized window?); skip drawing until it has pixels")
    limit = min(MAX_TARGET_SIDE, ctx.info["GL_MAX_TEXTURE_SIZE"])
    if w > limit or h > limit:
        raise FrameTooLarge(f"frame size {w}x{h} exceeds this context's limit of {limit} pixels a side")
    return w, h


def _program(ctx, vertex: str, fragment: str, vertex_defines: dict | None = None,
             fragment_defines: dict | None = None) -> moderngl.Program:
    try:
        program = ctx.program(vertex_shader=specialise(vertex, vertex_defines or {}),
                              fragment_shader=specialise(fragment, fragment_defines or {}))
        program.extra = (vertex, fragment)        # the files its uniforms are checked against (_set)
        return program
    except moderngl.Error as e:
        raise ShaderCompileError(f"scene shaders {vertex} {vertex_defines or ''} + {fragment} "
                                 f"{fragment_defines or ''} failed to compile or link on {renderer(ctx)}:\n"
                                 f"{str(e).strip()}") from None


def _set(program, **uniforms) -> None:
    """Set uniforms the program's shaders declare (a misspelled name is an error; one the
    compiler dropped is skipped); matrices are (4, 4) numpy arrays (see camera.py)."""
    set_uniforms(program, program.extra, uniforms, write=_write_uniform)


def _set_shared(programs, **uniforms) -> None:
    """Uniforms several programs share: each gets those its shaders declare, and every
    name must be declared by one of them (a misspelling is still an error)."""
    declared = {program: frozenset().union(*(declared_uniforms(s) for s in program.extra)) for program in programs}
    unknown = set(uniforms) - frozenset().union(*declared.values())
    if unknown:
        raise ValueError(f"no scene shader declares uniform(s) {sorted(unknown)}")
    for program, names in declared.items():
        _set(program, **{k: v for k, v in uniforms.items() if k in names})


def _write_uniform(program, name: str, value) -> None:
    if isinstance(value, np.ndarray) and value.shape == (4, 4):
        program[name].write(np.ascontiguousarray(value.T, dtype=np.float32).tobytes())
    else:
        program[name].value = value


def _bind_live_framebuffer(ctx) -> None:
    """moderngl's scopes rebind the framebuffer that was current when they began;
    if the caller released that one, rebinding it is a GL error. Then make the
    default framebuffer current instead."""
    current = ctx.fbo
    if current is not None and not is_live(current):
        (ctx.screen or ctx.detect_framebuffer(0)).use()


def _layout(program, vertex_format: str, names: tuple) -> tuple:
    """(format, *names) for the attributes `program` reads; the others become padding.
    (The depth pass reads no normal or colour, and a compiler may drop any attribute
    a variant does not use.)"""
    per_instance = vertex_format.endswith("/i")
    parts = vertex_format.removesuffix("/i").split()
    kept, fields = [], []
    for part, name in zip(parts, names, strict=True):
        if name in program:
            kept.append(name)
            fields.append(part)
        else:
            fields.append(f"{int(part[:-1]) * 4}x")          # "3f" -> "12x"
    return (" ".join(fields) + ("/i" if per_instance else ""), *kept)


def sun_view_projection() -> np.ndarray:
    """Oblique parallel projection along the sun onto the ground plane: the town
    square fills the shadow map exactly, and depth is the distance towards the sun
    (smaller = nearer the sun, as a depth test wants)."""
    sx, sy, sz = SUN_DIRECTION
    m = np.zeros((4, 4))
    m[0] = [1 / SHADOW_HALF, -sx / (sy * SHADOW_HALF), 0, 0]
    m[1] = [0, -sz / (sy * SHADOW_HALF), 1 / SHADOW_HALF, 0]
    m[2] = [-sx / SHADOW_RANGE, -sy / SHADOW_RANGE, -sz / SHADOW_RANGE, 0]
    m[3] = [0, 0, 0, 1]
    return m.astype(np.float32)


class Scene:
    """The procedural town of one seed, ready to draw into a SceneTarget.

    shadow_size: texels a side of the shadow maps. shadow_taps: lookups in the
    town's shadow map per pixel, 1 (one hardware 2x2 PCF; what llvmpipe can
    afford) or 4 (softer edges)."""

    def __init__(self, ctx: moderngl.Context, seed: int = 0, *, shadow_size: int = SHADOW_SIZE,
                 shadow_taps: int = 1):
        if not isinstance(ctx, moderngl.Context):
            raise TypeError(f"expected a moderngl.Context, got {type(ctx).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a whole number >= 0, got {seed!r}")
        if isinstance(shadow_size, bool) or not isinstance(shadow_size, (int, np.integer)) \
                or not 16 <= shadow_size <= 8192:
            raise InputError(f"shadow_size must be a whole number of texels from 16 to 8192, got {shadow_size!r}")
        if shadow_taps not in (1, 4):
            raise InputError(f"shadow_taps must be 1 or 4, got {shadow_taps!r}")
        self.ctx, self.seed = ctx, int(seed)
        self.town = Town(self.seed)
        self.traffic = Traffic(self.seed)
        self.path = FlyPath()
        self._objects: list = []            # every GL object, released in reverse
        try:
            self._build(int(shadow_size), shadow_taps)
        except BaseException:
            self.release()
            raise

    # --- GL resources -------------------------------------------------------------------

    def _keep(self, obj):
        self._objects.append(obj)
        return obj

    def _colour_program(self, materials: tuple, shadow_taps: int, mover_shadows: bool) -> moderngl.Program:
        mask = sum(1 << MATERIALS[m] for m in materials)
        return self._keep(_program(self.ctx, "scene_world.vert", "scene_world.frag", {"PASS": 0},
                                   {"MATERIALS": mask, "SHADOW_TAPS": shadow_taps, "MOVER_SHADOWS": mover_shadows}))

    def _build(self, shadow_size: int, shadow_taps: int) -> None:
        ctx = self.ctx
        _bind_live_framebuffer(ctx)     # moderngl rebinds the current framebuffer after making one
        self._shadow = self._keep(_program(ctx, "scene_world.vert", "scene_shadow.frag", {"PASS": 1}))
        self._sky = self._keep(_program(ctx, "scene_sky.vert", "scene_world.frag", fragment_defines={"SKY_PASS": 1}))
        self._sky_vao = self._keep(ctx.vertex_array(self._sky, []))
        group_programs = [self._colour_program(group, shadow_taps, set(group) <= RECEIVE_MOVER_SHADOWS)
                          for group in STATIC_GROUPS]
        mover_program = self._colour_program(MOVER_MATERIALS, shadow_taps, True)
        self._colour_programs = group_programs + [mover_program]

        # The static mesh, its triangles sorted into the draw groups: (vao, first index, index count).
        mesh, ranges = _sorted_by_group(self.town.mesh)
        identity = np.array([[0, 0, 0, 0, 1, 1, 1, 0]], np.float32)     # (1, 8): offset + yaw, tint + flap
        identity_buffer = self._keep(ctx.buffer(identity.tobytes()))
        static = self._upload(mesh, identity_buffer, identity_buffer)
        self._static_draws = [(self._vao(program, static), first, count)
                              for program, (first, count) in zip(group_programs, ranges, strict=True) if count]
        # kind -> (instance buffer, the previous frame's, instance count, colour vao, shadow vao)
        self._movers = {}
        for kind, rows in self.traffic.instances(0.0).items():
            instances = self._keep(ctx.buffer(reserve=max(1, rows.nbytes)))
            previous = self._keep(ctx.buffer(reserve=max(1, rows.nbytes)))
            buffers = self._upload(self.traffic.meshes[kind], instances, previous)
            self._movers[kind] = (instances, previous, len(rows), self._vao(mover_program, buffers),
                                  self._vao(self._shadow, buffers))

        light = sun_view_projection()
        common = dict(camera_position=(0.0, 0.0, 0.0), sun_direction=tuple(SUN_DIRECTION), sun_color=SUN_COLOR,
                      fog_distance=FOG_DISTANCE, street_pitch=PITCH, street_half=STREET_HALF, exposure=EXPOSURE,
                      shadow_map=0, mover_shadow_map=1, light_view_projection=light,
                      shadow_texel=(1 / shadow_size, 1 / shadow_size), shadow_bias=SHADOW_BIAS / (2 * SHADOW_RANGE),
                      shadow_normal_offset=SHADOW_NORMAL_OFFSET,
                      mover_shadow_bias=MOVER_SHADOW_BIAS / (2 * SHADOW_RANGE), mover_normal_offset=MOVER_NORMAL_OFFSET)
        _set_shared(self._colour_programs + [self._sky], **common)
        _set(mover_program, mover_shadow_bias=common["shadow_bias"], mover_normal_offset=SHADOW_NORMAL_OFFSET)
        _set(self._shadow, view_projection=light)

        # The sun and the town stand still: their shadow map is drawn once. The movers
        # get a map of their own, cleared and redrawn every frame (a few hundred triangles).
        # No face culling in shadow passes: open meshes (boxes have no floor) must still cast.
        self.shadow_map, static_fbo = self._shadow_target(shadow_size)
        self.mover_shadow_map, self._mover_shadow_fbo = self._shadow_target(shadow_size)
        with ctx.scope(static_fbo, enable_only=moderngl.DEPTH_TEST):
            ctx.depth_func = "<"
            static_fbo.clear(depth=1.0)
            self._vao(self._shadow, static).render()

    def _shadow_target(self, size: int) -> tuple:
        texture = self._keep(self.ctx.depth_texture((size, size)))     # (size, size) D24
        texture.compare_func = "<="
        texture.filter = (moderngl.LINEAR, moderngl.LINEAR)             # 2x2 PCF per lookup
        texture.repeat_x = texture.repeat_y = False
        return texture, self._keep(self.ctx.framebuffer(depth_attachment=texture))

    def _upload(self, mesh: Mesh, instances, previous) -> tuple:
        vbo = self._keep(self.ctx.buffer(mesh.vertices.astype(np.float32).tobytes()))     # (V, 12) float32
        ibo = self._keep(self.ctx.buffer(mesh.indices.astype(np.uint32).tobytes()))       # (3T,) uint32
        return vbo, ibo, instances, previous

    def _vao(self, program, buffers):
        """A vertex array of `program` over (vertices, indices, instances, previous instances);
        a buffer the program reads nothing of is left out."""
        vbo, ibo, instances, previous = buffers
        content = [(vbo, *_layout(program, VERTEX_FORMAT, VERTEX_ATTRIBUTES)),
                   (instances, *_layout(program, INSTANCE_FORMAT, INSTANCE_ATTRIBUTES)),
                   (previous, *_layout(program, INSTANCE_FORMAT, PREVIOUS_INSTANCE_ATTRIBUTES))]
        content = [entry for entry in content if len(entry) > 2]
        return self._keep(self.ctx.vertex_array(program, content, index_buffer=ibo, index_element_size=4))

    # --- cameras ---------------------------------------------------------------------------

    def camera_path(self, t: float) -> Camera:
        """The fly-through camera at time t seconds (the loop repeats every path.period)."""
        return self.path.camera(float(t))

    def random_camera(self, rng: np.random.Generator) -> Camera:
        """A random plausible street-level or elevated view (for datasets)."""
        return random_view(rng, self.town.layout, self.town.terrain)

    @property
    def triangles(self) -> int:
        """Triangles drawn per frame (static mesh and every mover instance, shadows not counted)."""
        moving = sum(self.traffic.meshes[kind].triangles * count for kind, (_, _, count, _, _) in self._movers.items())
        return self.town.mesh.triangles + moving

    # --- a frame ---------------------------------------------------------------------------------

    def render(self, target: SceneTarget, camera: Camera, time: float = 0.0, *,
               previous_camera: Camera | None = None, previous_time: float | None = None) -> None:
        """Draw the frame seen by `camera` at `time` seconds into target's colour and depth,
        and into its motion target (if it has one) how each pixel moved since the frame seen
        by `previous_camera` at `previous_time` (each defaults to this frame's: no motion,
        as on a first frame or a cut).

        Restores the caller's framebuffer binding and enable flags; leaves depth_func
        '<', cull_face 'back' and front_face 'ccw' (OpenGL's defaults) and the shadow
        maps bound to texture units 0 and 1."""
        if not isinstance(target, SceneTarget):
            raise InputError(f"target must be a SceneTarget, got {type(target).__name__}")
        if target.fbo is None:
            raise InputError("this SceneTarget was released; make a new one")
        if not isinstance(camera, Camera):
            raise InputError(f"camera must be a postfx.scene.Camera, got {type(camera).__name__}")
        if not self._objects:
            raise InputError("this Scene was released; make a new one")
        if previous_camera is not None and not isinstance(previous_camera, Camera):
            raise InputError(f"previous_camera must be a postfx.scene.Camera, got {type(previous_camera).__name__}")
        time = float(time)
        previous_time = time if previous_time is None else float(previous_time)
        if not (math.isfinite(time) and math.isfinite(previous_time)):
            raise InputError(f"time and previous_time must be finite, got {time}, {previous_time}")
        ctx = self.ctx
        now, before = self.traffic.instances(time), self.traffic.instances(previous_time)
        for kind, (instances, previous, *_) in self._movers.items():
            instances.write(now[kind].tobytes())
            previous.write(before[kind].tobytes())
        view_projection = camera.view_projection(target.aspect)
        prev_view_projection = (previous_camera or camera).view_projection(target.aspect)
        frame = dict(view_projection=view_projection, prev_view_projection=prev_view_projection,
                     camera_position=tuple(float(v) for v in camera.position), near_plane=camera.near,
                     far_plane=camera.far)
        _set_shared([*self._colour_programs, self._sky], **frame)
        _set(self._sky, inverse_view_projection=np.linalg.inv(view_projection.astype(np.float64)))

        ctx.front_face, ctx.cull_face = "ccw", "back"
        ctx.depth_func = "<"
        _bind_live_framebuffer(ctx)
        with ctx.scope(self._mover_shadow_fbo, enable_only=moderngl.DEPTH_TEST):
            self._mover_shadow_fbo.clear(depth=1.0)
            for _, _, count, _, shadow in self._movers.values():
                shadow.render(instances=count)
        with ctx.scope(target.fbo, enable_only=moderngl.DEPTH_TEST | moderngl.CULL_FACE):
            target.fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
            self.shadow_map.use(0)
            self.mover_shadow_map.use(1)
            for vao, first, count in self._static_draws:
                vao.render(vertices=count, first=first)
            for kind, (_, _, count, colour, _) in self._movers.items():
                if kind == "bird":
                    ctx.disable(moderngl.CULL_FACE)      # wings are single sheets seen from both sides
                colour.render(instances=count)
            # The sky last, at the far plane: only pixels no geometry covered are shaded.
            ctx.depth_func = "<="
            self._sky_vao.render(vertices=3)
            ctx.depth_func = "<"

    # --- lifetime ---------------------------------------------------------------------------

    def release(self) -> None:
        """Free every GL object of the scene. Safe to call twice."""
        objects, self._objects = self._objects, []
        if not is_live(self.ctx):
            return
        for obj in reversed(objects):
            obj.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _sorted_by_group(mesh: Mesh) -> tuple[Mesh, list[tuple[int, int]]]:
    """The mesh with its triangles ordered by STATIC_GROUPS, and (first index, index count) per group."""
    tri_material = mesh.vertices[mesh.indices[0::3], MATERIAL].astype(int)
    rank = np.full(max(MATERIALS.values()) + 1, len(STATIC_GROUPS))
    for i, group in enumerate(STATIC_GROUPS):
        rank[[MATERIALS[m] for m in group]] = i
    tri_rank = rank[tri_material]
    if (tri_rank == len(STATIC_GROUPS)).any():
        missing = sorted({k for k, v in MATERIALS.items() if v in set(tri_material[tri_rank == len(STATIC_GROUPS)])})
        raise AssertionError(f"static mesh uses materials {missing} that no draw group shades")
    order = np.argsort(tri_rank, kind="stable")
    indices = mesh.indices.reshape(-1, 3)[order].reshape(-1)
    counts = np.bincount(tri_rank, minlength=len(STATIC_GROUPS)) * 3
    firsts = np.r_[0, np.cumsum(counts)[:-1]]
    return Mesh(mesh.vertices, indices), list(zip(firsts.tolist(), counts.tolist(), strict=True))
