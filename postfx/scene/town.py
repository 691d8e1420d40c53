"""The procedural town: a street grid on flat ground inside rolling hills,
buildings on the blocks, parks, trees; every choice drawn from one seed.

The layout (what stands where) is computed first and kept -- the camera code
uses it to keep random views out of buildings -- then turned into one static
mesh with the vectorized primitives of mesh.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh import M, Mesh, boxes, instances, quad_grid, srgb_to_linear, unit_cone, unit_gable, unit_icosphere

GRID = 6                        # blocks per side
PITCH = 48.0                    # street centreline spacing (m)
STREET_HALF = 6.0               # half the asphalt width: two 3 m lanes each way of the centre line
SIDEWALK = 3.0                  # paved strip at the edge of every block
KERB = 0.15                     # blocks are slabs this high above the asphalt
EXTENT = GRID * PITCH / 2       # the outermost street centrelines lie at x, z = +-EXTENT
ROAD_EDGE = EXTENT + STREET_HALF
TERRAIN_HALF = 800.0            # the ground reaches this far; fog has closed in well before
TERRAIN_CELL = 25.0             # ROAD_EDGE is a whole number of cells: the grid's hole fits the road exactly
BLOCK = PITCH - 2 * STREET_HALF
LOT = BLOCK - 2 * SIDEWALK      # buildable square inside a block's sidewalks

FACADES = srgb_to_linear([
    (0.62, 0.30, 0.22), (0.47, 0.24, 0.19), (0.85, 0.77, 0.60), (0.92, 0.88, 0.76), (0.60, 0.60, 0.58),
    (0.77, 0.77, 0.74), (0.60, 0.70, 0.80), (0.64, 0.75, 0.58), (0.86, 0.66, 0.36), (0.88, 0.60, 0.50),
    (0.93, 0.93, 0.90), (0.72, 0.56, 0.44)])
TOWER_FACADES = srgb_to_linear([(0.34, 0.42, 0.50), (0.55, 0.60, 0.64), (0.70, 0.70, 0.68), (0.42, 0.47, 0.44)])
ROOF_TILES = srgb_to_linear([(0.62, 0.25, 0.18), (0.48, 0.30, 0.22), (0.30, 0.30, 0.34), (0.55, 0.38, 0.28)])
FOLIAGE = srgb_to_linear([(0.32, 0.50, 0.20), (0.40, 0.56, 0.22), (0.26, 0.42, 0.20), (0.50, 0.58, 0.24),
                          (0.36, 0.46, 0.16)])
CONIFER = srgb_to_linear([(0.16, 0.32, 0.20), (0.20, 0.36, 0.22), (0.14, 0.28, 0.18)])
PAVING = srgb_to_linear((0.70, 0.69, 0.66))
ROOF_GRAVEL = srgb_to_linear((0.50, 0.49, 0.47))
BARK = srgb_to_linear((0.36, 0.26, 0.18))
GRASS = srgb_to_linear((0.38, 0.55, 0.22))


def smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Terrain:
    """Flat inside the town, rolling hills (a few sine waves) rising outside it."""

    def __init__(self, rng: np.random.Generator):
        k = 6
        angles = rng.uniform(0, 2 * np.pi, k)
        wavelengths = rng.uniform(140, 420, k)
        self._k = np.stack([np.cos(angles), np.sin(angles)], 1) * (2 * np.pi / wavelengths)[:, None]   # (k, 2)
        self._phase = rng.uniform(0, 2 * np.pi, k)
        self._amplitude = rng.uniform(3, 9, k)
        self.base = rng.uniform(10, 18)

    def height(self, x, z):
        x, z = np.asarray(x, np.float64), np.asarray(z, np.float64)
        waves = np.sin(x[..., None] * self._k[:, 0] + z[..., None] * self._k[:, 1] + self._phase) @ self._amplitude
        beyond = np.maximum(np.abs(x), np.abs(z)) - ROAD_EDGE
        return smoothstep(30.0, 220.0, beyond) * (self.base + waves)

    def normal(self, x, z, step=1.0):
        dx = self.height(x + step, z) - self.height(x - step, z)
        dz = self.height(x, z + step) - self.height(x, z - step)
        n = np.stack([-dx, np.full_like(dx, 2 * step), -dz], -1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def mesh(self) -> Mesh:
        cells = int(2 * TERRAIN_HALF / TERRAIN_CELL)
        line = np.linspace(-TERRAIN_HALF, TERRAIN_HALF, cells + 1)
        gx, gz = np.meshgrid(line, line)
        centres = (line[:-1] + line[1:]) / 2
        cx, cz = np.meshgrid(centres, centres)
        keep = np.maximum(np.abs(cx), np.abs(cz)) > ROAD_EDGE        # the road surface covers the town
        return quad_grid(line, line, self.height(gx, gz), self.normal(gx, gz), keep, GRASS, M.TERRAIN)


@dataclass
class Layout:
    """What stands where; boxes are (N, 6) rows of (min x, min y, min z, max x, max y, max z)."""
    building_boxes: np.ndarray
    tree_spheres: np.ndarray        # (N, 4) canopy centre and radius
    max_height: float


class Town:
    """Static geometry of one seed: `mesh` (one vertex / index array) and `layout`."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 0x70574])
        self.terrain = Terrain(rng)
        parts: list[Mesh] = []
        blocks = _block_plan(rng)
        buildings = _buildings(rng, blocks)
        # Big occluders first: fewer fragments shaded twice on a software rasterizer.
        parts += buildings["meshes"]
        trees_at, tree_kind = _tree_sites(rng, blocks, self.terrain)
        tree_meshes, spheres = _trees(rng, trees_at, tree_kind)
        parts += tree_meshes
        parts.append(_block_slabs(blocks))
        parts.append(_road_surface())
        parts.append(self.terrain.mesh())
        self.mesh = Mesh.concat(parts)
        self.layout = Layout(buildings["boxes"], spheres, float(buildings["boxes"][:, 4].max()))


# --- blocks ---------------------------------------------------------------------------

def _block_plan(rng) -> dict:
    """Block centres, and which blocks are parks; 'downtown' is 1 at the centre, 0 at the edge."""
    index = np.arange(GRID)
    bi, bj = np.meshgrid(index, index)
    centres = np.stack([(bi + 0.5) * PITCH - EXTENT, (bj + 0.5) * PITCH - EXTENT], -1).reshape(-1, 2)
    downtown = 1 - np.clip(np.linalg.norm(centres, axis=1) / (EXTENT * 1.2), 0, 1)
    park = np.zeros(len(centres), bool)
    park[rng.choice(len(centres), size=3, replace=False)] = True
    return {"centres": centres, "downtown": downtown, "park": park}


def _block_slabs(blocks) -> Mesh:
    """Every block is a kerbed slab; parks are lawn inside a paved rim."""
    c, park = blocks["centres"], blocks["park"]
    n = len(c)
    slab = boxes(np.c_[c[:, 0], np.zeros(n), c[:, 1]], np.tile([BLOCK, KERB, BLOCK], (n, 1)), PAVING, M.PAVING,
                 top_material=np.where(park, M.TERRAIN, M.PAVING), top_color=np.where(park[:, None], GRASS, PAVING))
    # Park rims: four strips per park, one step above the lawn.
    pc = c[park]
    off = (BLOCK - SIDEWALK) / 2
    rim_c = np.concatenate([pc + [off, 0], pc - [off, 0], pc + [0, off], pc - [0, off]])
    rim_s = np.concatenate([np.tile([SIDEWALK, 0.05, BLOCK], (2 * len(pc), 1)),
                            np.tile([BLOCK - 2 * SIDEWALK, 0.05, SIDEWALK], (2 * len(pc), 1))])
    rim = boxes(np.c_[rim_c[:, 0], np.full(len(rim_c), KERB), rim_c[:, 1]], rim_s, PAVING, M.PAVING)
    return Mesh.concat([slab, rim])


def _road_surface() -> Mesh:
    """One quad under the whole town; the fragment shader paints streets, lanes and crossings."""
    e = ROAD_EDGE
    verts = np.zeros((4, 12), np.float32)
    verts[:, 0:3] = [[-e, 0, e], [e, 0, e], [e, 0, -e], [-e, 0, -e]]
    verts[:, 3:6] = [0, 1, 0]
    verts[:, 6:9] = srgb_to_linear((0.24, 0.24, 0.26))
    verts[:, 9:11] = verts[:, [0, 2]]
    verts[:, 11] = M.ROAD
    return Mesh(verts, np.array([0, 1, 2, 0, 2, 3], np.uint32))


# --- buildings --------------------------------------------------------------------------

def _lots(rng, centre, downtown) -> list[tuple]:
    """(centre x, z, width, depth, kind) for the lots of one block."""
    x, z = centre
    r = rng.uniform()
    if downtown > 0.55 and r < 0.55:
        return [(x, z, LOT, LOT, "tower")]
    if downtown > 0.3 and r < 0.75:
        q = LOT / 4
        return [(x + sx * q, z + sz * q, LOT / 2, LOT / 2, "block") for sx in (-1, 1) for sz in (-1, 1)]
    if downtown > 0.2 and r < 0.9:
        q = LOT / 4
        if rng.uniform() < 0.5:
            return [(x, z - q, LOT, LOT / 2, "block"), (x, z + q, LOT, LOT / 2, "block")]
        return [(x - q, z, LOT / 2, LOT, "block"), (x + q, z, LOT / 2, LOT, "block")]
    third = LOT / 3
    return [(x + sx * third, z + sz * third, third, third, "house")
            for sx in (-1, 0, 1) for sz in (-1, 0, 1) if (sx, sz) != (0, 0) or rng.uniform() < 0.3]


def _buildings(rng, blocks) -> dict:
    lots = []
    for centre, downtown, park in zip(blocks["centres"], blocks["downtown"], blocks["park"], strict=True):
        if not park:
            lots += [lot + (downtown,) for lot in _lots(rng, centre, downtown)]
    lx, lz, lw, ld = (np.array([lot[i] for lot in lots], np.float64) for i in range(4))
    kind = np.array([lot[4] for lot in lots])
    downtown = np.array([lot[5] for lot in lots])
    n = len(lots)
    tower, house = kind == "tower", kind == "house"
    fill = np.where(tower, rng.uniform(0.55, 0.85, n), np.where(house, rng.uniform(0.62, 0.8, n),
                                                                rng.uniform(0.68, 0.9, n)))
    w = lw * np.clip(fill + rng.uniform(-0.08, 0.08, n), 0.45, 0.92)
    d = ld * np.clip(fill + rng.uniform(-0.08, 0.08, n), 0.45, 0.92)
    floor_h = np.where(house, 2.9, rng.uniform(3.0, 3.6, n))
    floors = np.where(tower, rng.integers(9, 18, n),
                      np.where(house, rng.integers(1, 3, n), rng.integers(2, 5, n) + np.round(downtown * 5)))
    h = floors * floor_h + np.where(house, 0.4, 0.0)
    # Nudge each building off its lot centre (houses towards the street) so rows do not look stamped.
    slack_x, slack_z = (lw - w) / 2, (ld - d) / 2
    bx = lx + rng.uniform(-1, 1, n) * slack_x * 0.8
    bz = lz + rng.uniform(-1, 1, n) * slack_z * 0.8
    facade = np.where(tower[:, None], TOWER_FACADES[rng.integers(0, len(TOWER_FACADES), n)],
                      FACADES[rng.integers(0, len(FACADES), n)])
    facade = facade * rng.uniform(0.9, 1.08, (n, 1))
    spacing = np.where(tower, rng.uniform(2.2, 3.0, n), rng.uniform(2.4, 3.6, n))
    base = np.full(n, KERB)
    walls = boxes(np.c_[bx, base, bz], np.c_[w, h, d], facade, M.WALL, top_material=M.ROOF, top_color=ROOF_GRAVEL,
                  cell=np.c_[spacing, floor_h])
    meshes = [walls]

    flat = ~house
    # A cornice: a slightly wider slab crowning flat-roofed buildings draws a clean silhouette line.
    cornice_c = np.c_[bx, base + h, bz][flat]
    cornice_s = np.c_[w + 0.5, np.full(n, 0.5), d + 0.5][flat]
    cornice_col = (facade * 0.75)[flat]
    meshes.append(boxes(cornice_c, cornice_s, cornice_col, M.PLAIN, top_material=M.ROOF, top_color=ROOF_GRAVEL))
    # Roof furniture: a stair house / machine room on most flat roofs.
    has_box = flat & (rng.uniform(size=n) < 0.8)
    rw, rd = w * rng.uniform(0.2, 0.4, n), d * rng.uniform(0.2, 0.4, n)
    rx = bx + rng.uniform(-1, 1, n) * (w - rw) / 2 * 0.7
    rz = bz + rng.uniform(-1, 1, n) * (d - rd) / 2 * 0.7
    rh = rng.uniform(2.0, 4.0, n)
    meshes.append(boxes(np.c_[rx, base + h + 0.5, rz][has_box], np.c_[rw, rh, rd][has_box],
                        (facade * 0.85)[has_box], M.PLAIN, top_material=M.ROOF, top_color=ROOF_GRAVEL))
    # Water tanks on some mid-rise roofs: short cylinders.
    tank = flat & ~tower & (rng.uniform(size=n) < 0.35)
    tx = bx - np.sign(rx - bx + 1e-3) * w * 0.25
    tz = bz - np.sign(rz - bz + 1e-3) * d * 0.25
    tr = rng.uniform(1.0, 1.6, n)
    meshes.append(instances(unit_cone(8, 1.0, cap=True), np.c_[tx, base + h + 0.5, tz][tank],
                            np.c_[tr, rng.uniform(2.0, 3.0, n), tr][tank],
                            srgb_to_linear((0.45, 0.38, 0.32)), M.PLAIN))
    # Pitched roofs on houses: ridge along the longer side, eaves overhanging the walls.
    along_x = w >= d
    roof_len, roof_span = np.where(along_x, w, d) + 0.8, np.where(along_x, d, w) + 0.8
    roof_h = roof_span * rng.uniform(0.3, 0.45, n)
    tiles = ROOF_TILES[rng.integers(0, len(ROOF_TILES), n)]
    meshes.append(instances(unit_gable(), np.c_[bx, base + h, bz][house], np.c_[roof_len, roof_h, roof_span][house],
                            tiles[house], M.TILES, yaws=np.where(along_x, 0.0, np.pi / 2)[house]))

    top = base + h + np.where(house, roof_h, 0.5 + np.where(has_box, rh, 0.0))
    bounds = np.c_[bx - w / 2 - 0.3, np.zeros(n), bz - d / 2 - 0.3, bx + w / 2 + 0.3, top, bz + d / 2 + 0.3]
    return {"meshes": meshes, "boxes": bounds.astype(np.float32)}


# --- trees -------------------------------------------------------------------------------

def _tree_sites(rng, blocks, terrain) -> tuple[np.ndarray, np.ndarray]:
    """Tree bases (N, 3) and kind (N,) 0 = broadleaf, 1 = conifer: parks, street rows, hills."""
    sites, kinds = [], []
    for centre in blocks["centres"][blocks["park"]]:
        count = rng.integers(12, 18)
        p = centre + rng.uniform(-1, 1, (count, 2)) * (LOT / 2 - 2.5)
        sites.append(np.c_[p[:, 0], np.full(count, KERB), p[:, 1]])
        kinds.append((rng.uniform(size=count) < 0.25).astype(int))
    # Street trees: a row along some block edges, on the sidewalk 1.5 m from the kerb.
    lined = ~blocks["park"] & (rng.uniform(size=len(blocks["park"])) < 0.6)
    along = np.arange(-BLOCK / 2 + 4, BLOCK / 2 - 3, 8.5)
    edge = BLOCK / 2 - 1.5
    for centre in blocks["centres"][lined]:
        side = rng.integers(0, 4)
        a = along + rng.uniform(-0.6, 0.6, len(along))
        p = [np.c_[a, np.full_like(a, edge)], np.c_[a, np.full_like(a, -edge)],
             np.c_[np.full_like(a, edge), a], np.c_[np.full_like(a, -edge), a]][side] + centre
        sites.append(np.c_[p[:, 0], np.full(len(p), KERB), p[:, 1]])
        kinds.append(np.zeros(len(p), int))
    # Woods on the hills: clusters of mostly conifers.
    clusters = 22
    angle = rng.uniform(0, 2 * np.pi, clusters)
    radius = rng.uniform(ROAD_EDGE + 45, 520, clusters)
    cc = np.stack([np.cos(angle), np.sin(angle)], 1) * radius[:, None]
    per = rng.integers(4, 10, clusters)
    p = np.repeat(cc, per, axis=0) + rng.normal(0, 14, (per.sum(), 2))
    p = p[np.maximum(np.abs(p[:, 0]), np.abs(p[:, 1])) > ROAD_EDGE + 12]
    sites.append(np.c_[p[:, 0], terrain.height(p[:, 0], p[:, 1]) - 0.3, p[:, 1]])
    kinds.append((rng.uniform(size=len(p)) < 0.7).astype(int))
    return np.concatenate(sites), np.concatenate(kinds)


def _trees(rng, sites, kind) -> tuple[list[Mesh], np.ndarray]:
    n = len(sites)
    trunk_h = rng.uniform(2.2, 3.4, n)
    size = rng.uniform(0.8, 1.25, n)
    yaw = rng.uniform(0, 2 * np.pi, n)
    meshes = [instances(unit_cone(5, 0.6), sites, np.c_[0.28 * size, trunk_h, 0.28 * size], BARK, M.PLAIN,
                        yaws=yaw)]
    broad, conifer = kind == 0, kind == 1
    # Broadleaf: a lumpy, slightly squashed low-poly ball. The lumps are a function of
    # the corner position, so corners shared by neighbouring faces move together.
    sphere = unit_icosphere(1)
    corners = sphere.reshape(-1, 3)
    r = 2.4 * size[broad]
    phase = rng.uniform(0, 2 * np.pi, (broad.sum(), 1))
    lumps = 0.14 * np.sin(corners @ np.array([3.1, 2.3, 4.2]) + phase)[..., None] * corners
    canopy_c = sites[broad] + np.c_[np.zeros(broad.sum()), trunk_h[broad] + r * 0.55, np.zeros(broad.sum())]
    leaf = FOLIAGE[rng.integers(0, len(FOLIAGE), n)][broad] * rng.uniform(0.85, 1.1, (broad.sum(), 1))
    meshes.append(instances(sphere, canopy_c, np.c_[r, r * rng.uniform(0.8, 1.05, broad.sum()), r], leaf, M.FOLIAGE,
                            yaws=yaw[broad], jitter=lumps))
    # Conifers: two stacked cones.
    cr = 2.2 * size[conifer]
    ch = 4.5 * size[conifer]
    base = sites[conifer] + np.c_[np.zeros(conifer.sum()), trunk_h[conifer] * 0.5, np.zeros(conifer.sum())]
    needle = CONIFER[rng.integers(0, len(CONIFER), n)][conifer]
    cone = unit_cone(7)
    meshes.append(instances(cone, base, np.c_[cr, ch, cr], needle, M.FOLIAGE, yaws=yaw[conifer]))
    meshes.append(instances(cone, base + np.c_[np.zeros_like(ch), ch * 0.55, np.zeros_like(ch)],
                            np.c_[cr * 0.72, ch * 0.8, cr * 0.72], needle, M.FOLIAGE, yaws=yaw[conifer]))
    spheres = np.concatenate([np.c_[canopy_c, r], np.c_[base + np.c_[np.zeros_like(ch), ch * 0.6,
                                                                      np.zeros_like(ch)], cr]])
    return meshes, spheres.astype(np.float32)
