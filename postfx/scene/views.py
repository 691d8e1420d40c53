"""Where the camera goes: the looping fly-through of the demo, and random
street-level / elevated views for datasets."""
from __future__ import annotations

import math

import numpy as np

from .camera import Camera
from .town import EXTENT, GRID, PITCH, ROAD_EDGE, STREET_HALF, Layout, Terrain, smoothstep

E = EXTENT
# The loop, as (x, y, z) in metres: up the central north-south street at street
# level, out past the north edge, climbing while it turns east (the town on the
# right), round the east side high above the roofs, and down to the southern
# approach. Low points lie on the street (x = 0 is a street centre line) or on
# the open grass just outside the town; high ones above the tallest roofs. The
# climbs and descents happen with the town to one side, where the view can
# swing towards it smoothly (see FlyPath.camera).
FLY_POINTS = np.array([
    (0.0, 3.5, 1.25 * E), (0.0, 3.2, 0.65 * E), (0.0, 3.2, 0.0), (0.0, 3.5, -0.6 * E), (0.0, 4.5, -1.0 * E),
    (0.0, 9.0, -1.12 * E), (0.5 * E, 24.0, -1.16 * E), (1.25 * E, 50.0, -0.8 * E), (1.35 * E, 58.0, 0.3 * E),
    (0.8 * E, 36.0, 1.4 * E), (0.3 * E, 9.0, 1.33 * E),
])
FLY_PERIOD = 70.0           # seconds per loop
LOOK_AHEAD = 2.5            # seconds: low down, the camera looks where it will be
TOWN_FOCUS = np.array([0.0, 4.0, 0.0])


def _catmull_rom(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Closed uniform Catmull-Rom spline through `points` at parameters u (period len(points))."""
    n = len(points)
    i = np.floor(u).astype(int) % n
    f = (u - np.floor(u))[:, None]
    p0, p1, p2, p3 = (points[(i + k) % n] for k in (-1, 0, 1, 2))
    return 0.5 * ((2 * p1) + (-p0 + p2) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f ** 2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * f ** 3)


class FlyPath:
    """The demo's camera loop at constant speed (arc-length parameterized)."""

    def __init__(self, points: np.ndarray = FLY_POINTS, period: float = FLY_PERIOD, samples: int = 4096):
        self.points, self.period = points, period
        u = np.linspace(0, len(points), samples + 1)
        p = _catmull_rom(points, u)
        length = np.r_[0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
        self._u, self._s = u, length / length[-1]
        self.length = float(length[-1])

    def position(self, t) -> np.ndarray:
        s = np.mod(np.atleast_1d(np.asarray(t, np.float64)) / self.period, 1.0)
        return _catmull_rom(self.points, np.interp(s, self._s, self._u))

    def camera(self, t: float, **camera_args) -> Camera:
        p = self.position(t)[0]
        ahead = _unit(self.position(t + LOOK_AHEAD)[0] + np.array([0.0, -0.9, 0.0]) - p)
        focus = _unit(TOWN_FOCUS - p)
        # High up, swing the view towards the middle of the town -- but only while the
        # town is not behind: blending two opposite directions would flip the view.
        facing = float(np.dot(_unit(ahead * [1, 0, 1]), _unit(focus * [1, 0, 1])))
        w = smoothstep(12.0, 45.0, p[1]) * smoothstep(-0.8, -0.2, facing)
        d = _unit((1 - w) * ahead + w * focus)
        return Camera(tuple(p), yaw=math.atan2(d[0], -d[2]), pitch=math.asin(np.clip(d[1], -1, 1)), **camera_args)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def inside_something(p: np.ndarray, layout: Layout, terrain: Terrain, clearance: float) -> bool:
    """Whether a point is within `clearance` of a building, a tree canopy or the ground."""
    b = layout.building_boxes
    if np.any(np.all((p >= b[:, :3] - clearance) & (p <= b[:, 3:] + clearance), axis=1)):
        return True
    t = layout.tree_spheres
    if np.any(np.linalg.norm(t[:, :3] - p, axis=1) < t[:, 3] + clearance):
        return True
    return p[1] < float(terrain.height(p[0], p[2])) + max(clearance, 1.2)


def random_view(rng: np.random.Generator, layout: Layout, terrain: Terrain, **camera_args) -> Camera:
    """A plausible view: 60 % at street level (eye height on a street, looking
    roughly along it), 40 % elevated (over the roofs or the outskirts, looking down)."""
    lines = np.arange(GRID + 1) * PITCH - EXTENT
    fov = math.radians(rng.uniform(45.0, 70.0))
    for _ in range(100):
        if rng.uniform() < 0.6:
            across = rng.choice(lines) + rng.uniform(-STREET_HALF - 2.5, STREET_HALF + 2.5)
            along = rng.uniform(-ROAD_EDGE, ROAD_EDGE)
            height = rng.uniform(1.5, 6.0)
            heading = rng.choice([0.0, 0.5, 1.0, 1.5]) * math.pi + rng.normal(0, 0.25)
            if rng.uniform() < 0.5:         # a north-south street: x is across
                p = np.array([across, height, along])
            else:
                p = np.array([along, height, across])
                heading += math.pi / 2
            pitch = rng.uniform(-0.25, 0.12)
        else:
            xz = rng.uniform(-1.35 * E, 1.35 * E, 2)
            ground = float(terrain.height(xz[0], xz[1]))
            p = np.array([xz[0], ground + rng.uniform(max(15.0, layout.max_height * 0.5), 95.0), xz[1]])
            # Face the town more often than not, so elevated views are not mostly hills.
            to_town = math.atan2(-p[0], p[2]) if rng.uniform() < 0.7 else rng.uniform(-math.pi, math.pi)
            heading = to_town + rng.normal(0, 0.5)
            pitch = -rng.uniform(0.15, 0.75)
        if not inside_something(p, layout, terrain, clearance=1.0):
            return Camera(tuple(p), yaw=math.remainder(heading, 2 * math.pi), pitch=pitch, fov_y=fov, **camera_args)
    raise RuntimeError("no free camera position found in 100 tries")     # a layout bug, not bad input
