"""Triangle meshes for the demo scene, built with numpy: one vertex layout,
the material table the fragment shader switches on, and vectorized primitives
(N boxes, N cones, ... in one call, no per-object Python loop).

World space: y up, metres. An object's yaw turns its local +x axis towards -z
(a right-handed rotation about +y), the same formula as shaders/scene_world.vert.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# One vertex: position (3), normal (3), linear RGB colour (3), uv (2), material (1).
VERTEX_FORMAT = "3f 3f 3f 2f 1f"
VERTEX_ATTRIBUTES = ("in_position", "in_normal", "in_color", "in_uv", "in_material")
FLOATS = 12
POSITION, NORMAL, COLOR, UV, MATERIAL = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 11), 11

# What the fragment shader does with a surface. The numbers are mirrored as
# `const int MATERIAL_<NAME>` in shaders/scene_world.frag (a test checks they agree).
MATERIALS = {
    "PLAIN": 0,      # the vertex colour, lit
    "TERRAIN": 1,    # grass / dirt noise from world xz
    "ROAD": 2,       # asphalt, lane marks and crossings from world xz and the street grid
    "PAVING": 3,     # sidewalk slabs
    "WALL": 4,       # facade colour with a window grid; uv counts window cells (u) and floors (v)
    "ROOF": 5,       # flat roof: gravel noise
    "TILES": 6,      # pitched roof: tile rows along uv.y (metres)
    "FOLIAGE": 7,    # canopy colour with noise
    "GLASS": 8,      # dark glass reflecting the sky
    "PAINT": 9,      # vehicle paint: the instance tint replaces the vertex colour
    "BIRD": 10,      # wing tips (uv.x = 1) flap with the instance's flap value
    "SKY": 11,       # the background pass (shaders/scene_sky.vert); no mesh uses it
}
M = type("M", (), MATERIALS)     # M.WALL reads better than MATERIALS["WALL"] in the builders


def srgb_to_linear(rgb) -> np.ndarray:
    """Colours are written as sRGB (as picked in a paint program); shading is linear."""
    c = np.asarray(rgb, dtype=np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


@dataclass
class Mesh:
    vertices: np.ndarray    # (V, FLOATS) float32
    indices: np.ndarray     # (3T,) uint32

    @property
    def triangles(self) -> int:
        return len(self.indices) // 3

    @staticmethod
    def concat(meshes: list[Mesh]) -> Mesh:
        meshes = [m for m in meshes if len(m.indices)]
        if not meshes:
            return Mesh(np.zeros((0, FLOATS), np.float32), np.zeros(0, np.uint32))
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(np.concatenate([m.vertices for m in meshes]).astype(np.float32),
                    np.concatenate([m.indices + o for m, o in zip(meshes, offsets, strict=True)]).astype(np.uint32))


def rotate_y(points: np.ndarray, yaw) -> np.ndarray:
    """points (..., 3) turned by yaw (broadcast over the leading axes): local +x -> (cos, 0, -sin)."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x, y, z = points[..., 0:1], points[..., 1:2], points[..., 2:3]
    return np.concatenate([c * x + s * z, y, -s * x + c * z], axis=-1)


def _vertices(positions, normals, colors, uvs, materials) -> np.ndarray:
    """(N, V, ...) parts -> (N*V, FLOATS) rows; colours / materials broadcast per object."""
    n, v = positions.shape[:2]
    out = np.empty((n, v, FLOATS), np.float32)
    out[..., POSITION] = positions
    out[..., NORMAL] = normals
    out[..., COLOR] = np.broadcast_to(np.asarray(colors, np.float32).reshape(-1, 1, 3) if np.ndim(colors) > 1
                                      else np.asarray(colors, np.float32), (n, v, 3))
    out[..., UV] = uvs
    out[..., MATERIAL] = np.broadcast_to(np.asarray(materials, np.float32).reshape(-1, 1) if np.ndim(materials)
                                         else materials, (n, v))
    return out.reshape(n * v, FLOATS)


def _repeat_indices(local: np.ndarray, copies: int, verts_per_copy: int) -> np.ndarray:
    return (local[None, :] + (np.arange(copies, dtype=np.uint32) * verts_per_copy)[:, None]).reshape(-1)


# --- boxes ---------------------------------------------------------------------------

# Unit box x, z in [-0.5, 0.5], y in [0, 1]: four sides and the top (a bottom is never seen).
# Each face: its normal and the corner order (counter-clockwise from outside).
_BOX_FACES = np.array([
    # corners (4, 3) as local unit coordinates; u runs along the first edge, v up
    [[0.5, 0, 0.5], [0.5, 0, -0.5], [0.5, 1, -0.5], [0.5, 1, 0.5]],       # +x
    [[-0.5, 0, -0.5], [-0.5, 0, 0.5], [-0.5, 1, 0.5], [-0.5, 1, -0.5]],   # -x
    [[-0.5, 0, 0.5], [0.5, 0, 0.5], [0.5, 1, 0.5], [-0.5, 1, 0.5]],       # +z
    [[0.5, 0, -0.5], [-0.5, 0, -0.5], [-0.5, 1, -0.5], [0.5, 1, -0.5]],   # -z
    [[-0.5, 1, 0.5], [0.5, 1, 0.5], [0.5, 1, -0.5], [-0.5, 1, -0.5]],     # top
], np.float32)                                              # (5 faces, 4 corners, 3)
_BOX_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1], [0, 1, 0]], np.float32)
_BOX_UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)     # per corner, fractions of the face
_QUAD = np.array([0, 1, 2, 0, 2, 3], np.uint32)
_BOX_INDICES = (_QUAD[None, :] + 4 * np.arange(5, dtype=np.uint32)[:, None]).reshape(-1)


def boxes(centers, sizes, colors, side_material, top_material=None, yaws=None, cell=None,
          top_color=None) -> Mesh:
    """N boxes standing on centers (N, 3) (x, base y, z), sizes (N, 3) (w, h, d).

    Side uv is in metres along / up the face, or with cell=(N, 2) (target window
    spacing, floor height) in whole cells: a face of width W gets round(W / spacing)
    cells, so a window grid ends exactly at the corners. Top uv is in metres."""
    centers, sizes = np.asarray(centers, np.float32), np.asarray(sizes, np.float32)
    n = len(centers)
    yaws = np.zeros(n, np.float32) if yaws is None else np.asarray(yaws, np.float32)
    local = _BOX_FACES[None] * sizes[:, None, None, :]                       # (N, 5, 4, 3)
    positions = rotate_y(local, yaws[:, None, None]) + centers[:, None, None, :]
    normals = rotate_y(np.broadcast_to(_BOX_NORMALS[None, :, None, :], (n, 5, 4, 3)), yaws[:, None, None])
    face_w = np.stack([sizes[:, 2], sizes[:, 2], sizes[:, 0], sizes[:, 0], sizes[:, 0]], axis=1)   # (N, 5)
    face_h = np.stack([sizes[:, 1]] * 4 + [sizes[:, 2]], axis=1)
    if cell is not None:
        cell = np.asarray(cell, np.float32)
        side = np.arange(5) < 4
        face_w = np.where(side, np.maximum(1, np.round(face_w / cell[:, :1])), face_w)
        face_h = np.where(side, np.maximum(1, np.round(face_h / cell[:, 1:2])), face_h)
    uvs = _BOX_UV[None, None] * np.stack([face_w, face_h], axis=-1)[:, :, None, :]
    top_material = side_material if top_material is None else top_material
    materials = np.empty((n, 5, 4), np.float32)
    materials[:, :4] = np.asarray(side_material, np.float32).reshape(-1, 1, 1)
    materials[:, 4] = np.asarray(top_material, np.float32).reshape(-1, 1)
    colors = np.broadcast_to(np.asarray(colors, np.float32), (n, 3))
    face_colors = np.repeat(colors[:, None, :], 5, axis=1)
    if top_color is not None:
        face_colors[:, 4] = np.broadcast_to(np.asarray(top_color, np.float32), (n, 3))
    vertices = np.empty((n, 5, 4, FLOATS), np.float32)
    vertices[..., POSITION] = positions
    vertices[..., NORMAL] = normals
    vertices[..., COLOR] = face_colors[:, :, None, :]
    vertices[..., UV] = uvs
    vertices[..., MATERIAL] = materials
    return Mesh(vertices.reshape(-1, FLOATS), _repeat_indices(_BOX_INDICES, n, 20))


# --- flat-shaded shapes, instanced from one unit shape ------------------------------------

def unit_cone(sides: int, top_radius: float = 0.0, cap: bool = False) -> np.ndarray:
    """(T, 3, 3) triangles of a cone / frustum: base radius 1 at y 0, apex (or top) at y 1."""
    a = np.linspace(0, 2 * np.pi, sides + 1)[:-1]
    a0, a1 = a, np.roll(a, -1)

    def ring(ang, r, y):
        return np.stack([r * np.cos(ang), np.full_like(ang, y), -r * np.sin(ang)], -1)
    b0, b1 = ring(a0, 1.0, 0.0), ring(a1, 1.0, 0.0)
    if top_radius == 0.0:
        tris = [np.stack([b0, b1, np.broadcast_to([0.0, 1.0, 0.0], b0.shape)], 1)]
    else:
        t0, t1 = ring(a0, top_radius, 1.0), ring(a1, top_radius, 1.0)
        tris = [np.stack([b0, b1, t1], 1), np.stack([b0, t1, t0], 1)]
        if cap:
            tris.append(np.stack([t0, t1, np.broadcast_to([0.0, 1.0, 0.0], t0.shape)], 1))
    return np.concatenate(tris).astype(np.float32)


def unit_icosphere(subdivisions: int) -> np.ndarray:
    """(T, 3, 3) triangles of a unit sphere (20 * 4**subdivisions faces)."""
    t = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    tris = v[f] / np.linalg.norm(v[f], axis=-1, keepdims=True)
    for _ in range(subdivisions):
        a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
        ab, bc, ca = [(p + q) / np.linalg.norm(p + q, axis=-1, keepdims=True) for p, q in ((a, b), (b, c), (c, a))]
        tris = np.concatenate([np.stack(x, 1) for x in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return tris.astype(np.float32)


def unit_gable() -> np.ndarray:
    """(T, 3, 3) a pitched roof over x, z in [-0.5, 0.5]: eaves at y 0, ridge along x at y 1."""
    e = [[-0.5, 0, 0.5], [0.5, 0, 0.5], [0.5, 0, -0.5], [-0.5, 0, -0.5]]
    r = [[-0.5, 1, 0], [0.5, 1, 0]]
    tris = [[e[0], e[1], r[1]], [e[0], r[1], r[0]],      # +z slope
            [e[2], e[3], r[0]], [e[2], r[0], r[1]],      # -z slope
            [e[1], e[2], r[1]], [e[3], e[0], r[0]]]      # gable ends
    return np.array(tris, np.float32)


def instances(shape: np.ndarray, centers, scales, colors, material, yaws=None, jitter=None) -> Mesh:
    """N copies of a unit shape (T, 3, 3): scaled by scales (N, 3), turned by yaws,
    moved to centers (N, 3), flat-shaded. jitter (N, T*3, 3) offsets corners in the
    unit frame (shared corners must get equal offsets to keep the surface closed)."""
    centers = np.asarray(centers, np.float32)
    n = len(centers)
    corners = np.broadcast_to(shape.reshape(1, -1, 3), (n, shape.shape[0] * 3, 3))
    if jitter is not None:
        corners = corners + jitter
    scales = np.broadcast_to(np.asarray(scales, np.float32), (n, 3))
    yaws = np.zeros(n, np.float32) if yaws is None else np.asarray(yaws, np.float32)
    local = corners * scales[:, None, :]
    world = rotate_y(local, yaws[:, None]) + centers[:, None, :]                 # (N, 3T, 3)
    tri = world.reshape(n, -1, 3, 3)
    normal = np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    normals = np.repeat(normal, 3, axis=1)
    # uv: the corner's unit-shape coordinates (x, y); a BIRD's wings span z and uv.x = |z| weights the flap.
    uvs = np.abs(corners[..., [2, 1]]) if material == M.BIRD else corners[..., [0, 1]]
    vertices = _vertices(world, normals, colors, uvs, material)
    count = world.shape[1]
    return Mesh(vertices, _repeat_indices(np.arange(count, dtype=np.uint32), n, count))


def quad_grid(xs: np.ndarray, zs: np.ndarray, heights: np.ndarray, normals: np.ndarray, keep: np.ndarray,
              color, material) -> Mesh:
    """A height-field grid: xs (NX,), zs (NZ,), heights and normals at the grid points
    (NZ, NX[, 3]); keep (NZ-1, NX-1) says which cells to emit."""
    gx, gz = np.meshgrid(xs, zs)
    positions = np.stack([gx, heights, gz], axis=-1).reshape(1, -1, 3)
    vertices = _vertices(positions, normals.reshape(1, -1, 3), color, positions[..., [0, 2]], material)
    nx = len(xs)
    row, col = np.nonzero(keep)
    i0 = (row * nx + col).astype(np.uint32)
    i1, i2, i3 = i0 + 1, i0 + nx + 1, i0 + nx
    # Counter-clockwise seen from above (+y): x right, z towards the viewer.
    indices = np.stack([i0, i3, i2, i0, i2, i1], axis=1).reshape(-1)
    return Mesh(vertices, indices.astype(np.uint32))
