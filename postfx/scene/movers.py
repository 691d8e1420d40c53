"""What moves: cars and buses driving loops around the street grid (keeping
to the right-hand lane), parked cars, and a flock of birds circling over the
roofs. Positions are a pure function of (seed, time), so a frame at time t is
the same however it was reached.

Each kind is one small mesh in its own frame (forward = +x, up = +y) drawn
instanced; per instance: (x, y, z, yaw, tint r, g, b, flap) as float32.
"""
from __future__ import annotations

import numpy as np

from .mesh import M, Mesh, boxes, instances, srgb_to_linear
from .town import EXTENT, GRID, PITCH, STREET_HALF

INSTANCE_FORMAT = "4f 4f/i"
INSTANCE_ATTRIBUTES = ("in_offset", "in_tint")
PREVIOUS_INSTANCE_ATTRIBUTES = ("in_prev_offset", "in_prev_tint")     # the same rows at the previous frame's time
LANE = STREET_HALF / 2          # lane centre, right of the street centre line
PARKED = STREET_HALF - 1.1      # parked cars hug the kerb
CORNER = 7.0                    # turning radius at the centre line (> LANE, so the inner lane still turns)

PAINTS = srgb_to_linear([(0.75, 0.12, 0.10), (0.92, 0.92, 0.90), (0.65, 0.67, 0.70), (0.10, 0.10, 0.12),
                         (0.15, 0.30, 0.62), (0.95, 0.75, 0.10), (0.20, 0.42, 0.28), (0.55, 0.10, 0.20)])
BUS_PAINTS = srgb_to_linear([(0.90, 0.55, 0.08), (0.80, 0.15, 0.12)])
TYRE = srgb_to_linear((0.08, 0.08, 0.08))
GULL = srgb_to_linear((0.85, 0.85, 0.82))


def _wheels(length, width, radius) -> Mesh:
    x, z = length * 0.32, width / 2 - 0.1
    c = np.array([[x, 0, z], [x, 0, -z], [-x, 0, z], [-x, 0, -z]], np.float32)
    return boxes(c, np.tile([2 * radius, 2 * radius, 0.26], (4, 1)), TYRE, M.PLAIN)


def car_mesh() -> Mesh:
    white = np.ones(3, np.float32)
    body = boxes([[0, 0.3, 0]], [[4.2, 0.72, 1.8]], white, M.PAINT)
    cabin = boxes([[-0.25, 1.02, 0]], [[2.3, 0.58, 1.62]], srgb_to_linear((0.2, 0.22, 0.25)), M.GLASS,
                  top_material=M.PAINT, top_color=white)
    return Mesh.concat([body, cabin, _wheels(4.2, 1.8, 0.33)])


def bus_mesh() -> Mesh:
    white = np.ones(3, np.float32)
    body = boxes([[0, 0.35, 0]], [[11.0, 1.25, 2.5]], white, M.PAINT)
    band = boxes([[0, 1.6, 0]], [[10.7, 0.95, 2.42]], srgb_to_linear((0.2, 0.22, 0.25)), M.GLASS)
    roof = boxes([[0, 2.55, 0]], [[11.0, 0.3, 2.5]], white, M.PAINT)
    return Mesh.concat([body, band, roof, _wheels(11.0, 2.5, 0.5)])


def bird_mesh() -> Mesh:
    # Two wings (span along z), each drawn from both sides: no face culling trouble.
    lead, trail, tip_r, tip_l = [0.35, 0, 0], [-0.3, 0, 0], [-0.1, 0, 1.0], [-0.1, 0, -1.0]
    wings = np.array([[lead, tip_r, trail], [lead, trail, tip_r], [lead, trail, tip_l], [lead, tip_l, trail]],
                     np.float32)
    return instances(wings, [[0, 0, 0]], [[0.8, 1.0, 0.8]], GULL, M.BIRD)


def _loop_point(s, rect, radius):
    """Point and unit heading at arc length s along the rounded rectangle
    rect (N, 4) = (x0, z0, x1, z1), counter-clockwise in (x, z) from (x0 + r, z0)."""
    x0, z0, x1, z1 = rect.T
    r = radius
    lx, lz, arc = (x1 - x0) - 2 * r, (z1 - z0) - 2 * r, np.full(len(s), np.pi * r / 2)
    lengths = np.stack([lx, arc, lz, arc, lx, arc, lz, arc], 1)               # (N, 8)
    ends = np.cumsum(lengths, 1)
    s = np.mod(s, ends[:, -1])
    seg = np.minimum((s[:, None] >= ends).sum(1), 7)
    local = s - (ends - lengths)[np.arange(len(s)), seg]
    # Straights: start point and direction; arcs: centre and start angle.
    starts = [(x0 + r, z0, 1, 0), (x1, z0 + r, 0, 1), (x1 - r, z1, -1, 0), (x0, z1 - r, 0, -1)]
    centres = [(x1 - r, z0 + r, -np.pi / 2), (x1 - r, z1 - r, 0.0), (x0 + r, z1 - r, np.pi / 2),
               (x0 + r, z0 + r, np.pi)]
    px, pz, tx, tz = (np.zeros(len(s)) for _ in range(4))
    for k in range(4):
        sx, sz, dx, dz = starts[k]
        on = seg == 2 * k
        px = np.where(on, sx + dx * local, px)
        pz = np.where(on, sz + dz * local, pz)
        tx, tz = np.where(on, dx, tx), np.where(on, dz, tz)
        cx, cz, a0 = centres[k]
        on = seg == 2 * k + 1
        a = a0 + local / r
        px = np.where(on, cx + r * np.cos(a), px)
        pz = np.where(on, cz + r * np.sin(a), pz)
        tx, tz = np.where(on, -np.sin(a), tx), np.where(on, np.cos(a), tz)
    return np.stack([px, pz], 1), np.stack([tx, tz], 1)


def yaw_of(heading) -> np.ndarray:
    """The yaw that turns local +x onto the (x, z) heading (see mesh.rotate_y)."""
    return np.arctan2(-heading[..., 1], heading[..., 0])


class Traffic:
    """Moving and parked vehicles and birds of one seed."""

    KINDS = ("car", "bus", "bird")

    def __init__(self, seed: int, cars: int = 18, buses: int = 2, parked: int = 14, birds: int = 14):
        rng = np.random.default_rng([seed, 0x7AFF1C])
        self.meshes = {"car": car_mesh(), "bus": bus_mesh(), "bird": bird_mesh()}
        lines = np.arange(GRID + 1) * PITCH - EXTENT

        def rectangles(count, min_span):
            i0 = rng.integers(0, GRID + 1 - min_span, count)
            j0 = rng.integers(0, GRID + 1 - min_span, count)
            i1 = np.minimum(GRID, i0 + rng.integers(min_span, GRID + 1, count))
            j1 = np.minimum(GRID, j0 + rng.integers(min_span, GRID + 1, count))
            return np.stack([lines[i0], lines[j0], lines[i1], lines[j1]], 1)

        driving = cars + buses
        self._rect = np.concatenate([rectangles(cars, 1), rectangles(buses, 3)])
        self._direction = rng.choice([-1.0, 1.0], driving)
        self._speed = np.concatenate([rng.uniform(7, 12, cars), rng.uniform(5, 7, buses)])
        self._phase = rng.uniform(0, 1e4, driving)
        self._is_bus = np.arange(driving) >= cars
        self._tint = np.concatenate([PAINTS[rng.integers(0, len(PAINTS), cars)],
                                     BUS_PAINTS[rng.integers(0, len(BUS_PAINTS), buses)]])
        # Parked cars: along a street, at the kerb, facing the traffic of that side.
        street = rng.integers(0, GRID + 1, parked)
        along = (rng.integers(0, GRID, parked) + rng.uniform(0.25, 0.75, parked)) * PITCH - EXTENT
        side = rng.choice([-1.0, 1.0], parked)
        vertical = rng.uniform(size=parked) < 0.5
        across = lines[street] + side * PARKED
        px, pz = np.where(vertical, across, along), np.where(vertical, along, across)
        yaw = np.where(vertical, np.where(side > 0, np.pi / 2, -np.pi / 2), np.where(side > 0, 0.0, np.pi))
        tint = PAINTS[rng.integers(0, len(PAINTS), parked)]
        self._parked = np.c_[px, np.zeros(parked), pz, yaw, tint, np.zeros(parked)].astype(np.float32)
        # A flock circling over the town.
        centre = rng.uniform(-EXTENT * 0.5, EXTENT * 0.5, 2)
        self._bird_centre = np.r_[centre[0], rng.uniform(40, 60), centre[1]]
        self._bird_radius = rng.uniform(25, 80, birds)
        self._bird_height = rng.normal(0, 5, birds)
        self._bird_phase = rng.uniform(0, 2 * np.pi, birds)
        self._bird_speed = rng.uniform(0.09, 0.16) * rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.1, birds)

    def driving(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions (N, 3) and yaws (N,) of the moving vehicles at `time` seconds."""
        s = self._phase + self._direction * self._speed * time
        point, heading = _loop_point(s, self._rect, CORNER)
        heading = heading * self._direction[:, None]
        right = np.stack([-heading[:, 1], heading[:, 0]], 1)      # (x, z) to the right of the heading
        # Offsetting the centre line by the lane keeps arcs concentric: the car turns on radius CORNER -+ LANE.
        point = point + right * LANE
        return np.c_[point[:, 0], np.zeros(len(point)), point[:, 1]], yaw_of(heading)

    def instances(self, time: float) -> dict[str, np.ndarray]:
        """Per kind, (N, 8) float32 instance rows at `time` seconds."""
        pos, yaw = self.driving(time)
        moving = np.c_[pos, yaw, self._tint, np.zeros(len(pos))].astype(np.float32)
        angle = self._bird_phase + self._bird_speed * time
        bx = self._bird_centre[0] + self._bird_radius * np.cos(angle)
        bz = self._bird_centre[2] + self._bird_radius * np.sin(angle)
        by = self._bird_centre[1] + self._bird_height + 1.5 * np.sin(0.7 * time + self._bird_phase)
        heading = np.stack([-np.sin(angle), np.cos(angle)], 1) * np.sign(self._bird_speed)[..., None]
        flap = 0.45 * np.sin(9.0 * time + 3.0 * self._bird_phase)
        bird = np.c_[bx, by, bz, yaw_of(heading), np.ones((len(bx), 3)), flap].astype(np.float32)
        return {"car": np.concatenate([moving[~self._is_bus], self._parked]), "bus": moving[self._is_bus],
                "bird": bird}
