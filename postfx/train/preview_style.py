"""The bundled "toon-preview" style: a small U-Net trained on procedural street scenes.

    python3 -m postfx.train.preview_style --out postfx/styles/toon-preview.safetensors \\
        --steps 9000 --seed 0 --sample examples

It exists so that the quick start shows a real stylization before the demo scene
and the full pix2pix pipeline do (a later issue replaces it with styles trained
on rendered frames). Everything is made here, with no download:

- make_scene: an RGBD street scene (sky, hills, a road, boxes / buildings with
  window grids, trees, lamp posts) ray-cast against axis-aligned planes and
  spheres, so the depth map is exact and consistent with the occlusion;
- toon: the target filter (posterized colour in a warmer palette, dark outlines
  where depth or colour changes sharply, light fog toward the far plane);
- train: UNetGenerator, L1 loss on random crops (no discriminator: a preview);
- evaluate: held-out scenes the training never sees, network and unstylized
  input both compared with the target;
- export: postfx.export_torch with the training config and the quality figures.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .metrics import psnr
from .models import UNetConfig, UNetGenerator

NEAR, FAR = 1.0, 120.0          # metres: depth maps store (z - NEAR) / (FAR - NEAR), clamped to [0, 1]
SUPERSAMPLE = 2                 # scenes are cast at 2x and box-filtered: anti-aliased colour
SAMPLE_SIZE = (384, 512)        # (H, W) of examples/sample.png
# Scene keys seed np.random.default_rng; the first element keeps the streams apart,
# so no training seed ever draws a held-out scene or the sample.
TRAIN_STREAM, HELD_OUT_STREAM, SAMPLE_KEY = 0, 1, (2, 8)

INK = np.array([0.13, 0.09, 0.07], np.float32)        # outline colour, a warm near-black
FOG = np.array([0.92, 0.87, 0.80], np.float32)        # haze colour toward the far plane
WARM = np.array([1.05, 1.0, 0.88], np.float32)        # palette tint, per channel


# --- procedural scenes -----------------------------------------------------------

@dataclass(frozen=True)
class _Camera:
    """Pinhole at (0, height, 0) looking down +Z, no roll or pitch; pixel rows grow downward."""
    focal: float        # px
    cx: float           # principal column, px
    horizon: float      # row of the horizon, px
    height: float       # metres above the ground

    def project(self, x, y, z):
        return self.cx + self.focal * x / z, self.horizon - self.focal * (y - self.height) / z


class _Canvas:
    """Colour and view distance, painted with a depth test (nearer wins)."""

    def __init__(self, height: int, width: int):
        self.rgb = np.zeros((height, width, 3), np.float32)     # (H, W, 3) sRGB-encoded, [0, 1]
        self.z = np.full((height, width), np.inf, np.float32)   # (H, W) view distance, metres; inf = sky

    def box(self, u0, u1, v0, v1):
        """Pixel slices of a bounding box clipped to the canvas, or None when empty."""
        h, w = self.z.shape
        u0, u1 = max(int(np.floor(u0)), 0), min(int(np.ceil(u1)) + 1, w)
        v0, v1 = max(int(np.floor(v0)), 0), min(int(np.ceil(v1)) + 1, h)
        return None if u0 >= u1 or v0 >= v1 else (slice(v0, v1), slice(u0, u1))

    def rays(self, cam: _Camera, box):
        """Ray directions (dx, dy) per pixel centre of box, with dz = 1: a hit at distance
        s along the ray is at view depth Z = s."""
        ys, xs = box
        u = np.arange(xs.start, xs.stop, dtype=np.float32) + 0.5
        v = np.arange(ys.start, ys.stop, dtype=np.float32) + 0.5
        return ((u - cam.cx) / cam.focal)[None, :], (-(v - cam.horizon) / cam.focal)[:, None]

    def paint(self, box, mask, colour, z):
        ys, xs = box
        near = mask & (z < self.z[ys, xs])
        self.z[ys, xs] = np.where(near, z, self.z[ys, xs])
        self.rgb[ys, xs] = np.where(near[..., None], colour, self.rgb[ys, xs])


def _light(normal, sun) -> float:
    return 0.45 + 0.55 * max(0.0, float(np.dot(normal, sun)))


def _hsv(h, s, v) -> np.ndarray:
    """One colour from hue in degrees, saturation and value in [0, 1]."""
    pixel = np.array([[[h % 360.0, s, v]]], np.float32)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0]


def _noise(rng, shape, cell: int) -> np.ndarray:
    """Smooth value noise in about [-1, 1], features `cell` pixels across. It draws
    from its own generator, so the rest of a scene does not depend on the frame size."""
    h, w = shape
    own = np.random.default_rng(rng.integers(0, 1 << 62))
    coarse = own.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 0.5, -1, 1)


def _sky(canvas, cam, rng):
    h, w = canvas.z.shape
    hue = rng.choice([rng.uniform(195, 230), rng.uniform(20, 45)], p=[0.75, 0.25])   # day, or dusk
    zenith = _hsv(hue, rng.uniform(0.45, 0.75), rng.uniform(0.55, 0.8))
    horizon = _hsv(hue + rng.uniform(-15, 15), rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0))
    a = np.clip(np.arange(h, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)[:, None, None] ** 0.8
    canvas.rgb[:] = zenith * (1 - a) + horizon * a
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        sx, sy, r = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.7) * cam.horizon, rng.uniform(0.025, 0.05) * w
        glow = np.clip(1.2 - np.hypot(xx - sx, yy - sy) / r, 0, 1)[..., None] ** 1.5
        canvas.rgb[:] = canvas.rgb * (1 - glow) + np.array([1.0, 0.96, 0.82], np.float32) * glow
    for _ in range(rng.integers(0, 6)):       # clouds: clusters of soft ellipses
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(0.05, 0.8) * cam.horizon
        for _ in range(rng.integers(3, 7)):
            ex, ey = cx + rng.normal(0, 0.04 * w), cy + rng.normal(0, 0.01 * w)
            rx, ry = rng.uniform(0.03, 0.08) * w, rng.uniform(0.012, 0.03) * w
            d = np.hypot((xx - ex) / rx, (yy - ey) / ry)
            puff = np.clip((1 - d) * 4, 0, 1)[..., None] * 0.85
            shade = np.float32(1.0) - 0.12 * np.clip((yy - ey) / ry, 0, 1)[..., None]
            canvas.rgb[:] = canvas.rgb * (1 - puff) + np.float32(0.97) * shade * puff


def _hills(canvas, cam, rng):
    """A distant ridge: a vertical band at one depth, between the ridge line and the ground."""
    h, w = canvas.z.shape
    depth = rng.uniform(0.78, 0.92) * FAR
    u = np.arange(w, dtype=np.float32)
    ridge_m = np.zeros(w, np.float32)
    for octave in range(3):
        freq = rng.uniform(1.0, 3.0) * 2 ** octave / w
        ridge_m += rng.uniform(4, 12) / 2 ** octave * (1 + np.sin(2 * np.pi * freq * u + rng.uniform(0, 6.3)))
    _, ridge = cam.project(0.0, ridge_m, depth)
    _, base = cam.project(0.0, 0.0, depth)
    box = canvas.box(0, w - 1, ridge.min(), base)
    if box is None:
        return
    v = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] + 0.5
    mask = v >= ridge[None, box[1]]
    colour = _hsv(rng.uniform(90, 220), rng.uniform(0.15, 0.35), rng.uniform(0.45, 0.65))
    shade = 1.0 - 0.15 * np.clip((v - ridge[None, box[1]]) / max(base - ridge.min(), 1), 0, 1)
    canvas.paint(box, mask, colour * shade[..., None], np.float32(depth))


def _ground(canvas, cam, rng, road_x, road_half):
    h, w = canvas.z.shape
    box = canvas.box(0, w - 1, cam.horizon, h - 1)
    if box is None:
        return
    dx, dy = canvas.rays(cam, box)
    with np.errstate(divide="ignore"):
        z = np.where(dy < 0, cam.height / -dy, np.inf) + 0 * dx      # (h, w) the plane Y = 0
    x = dx * z
    grass = _hsv(rng.uniform(70, 130), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6))
    asphalt = np.full(3, rng.uniform(0.25, 0.4), np.float32)
    walk = np.full(3, rng.uniform(0.55, 0.7), np.float32) * np.array([1.0, 0.97, 0.92], np.float32)
    paint = np.array([0.95, 0.85, 0.35] if rng.random() < 0.5 else [0.92, 0.92, 0.9], np.float32)
    side = np.abs(x - road_x)
    colour = np.where((side < road_half)[..., None], asphalt,
                      np.where((side < road_half + 2.5)[..., None], walk, grass))
    with np.errstate(invalid="ignore"):
        dash = (np.abs(x - road_x) < 0.12) & (np.mod(z, 8.0) < 3.5)
    colour = np.where(dash[..., None], paint, colour)
    texture = 1.0 + 0.06 * _noise(rng, z.shape, 24)[..., None]
    distance_shade = 1.0 - 0.12 * np.clip(z / FAR, 0, 1)[..., None]
    canvas.paint(box, np.isfinite(z), colour * texture * distance_shade, z.astype(np.float32))


def _face(canvas, cam, axis: int, value: float, lo, hi, colour_fn, corners):
    """One axis-aligned rectangle: the plane coordinate[axis] = value, the other two
    coordinates within [lo, hi] (world order x, y, z with `axis` left out), inside the
    bounding box of `corners` on screen. colour_fn(a, b) gets the two in-plane
    coordinates and returns (h, w, 3) colours, NaN where the shape leaves a hole."""
    us, vs = zip(*(cam.project(*c) for c in corners), strict=True)
    box = canvas.box(min(us), max(us), min(vs), max(vs))
    if box is None:
        return
    dx, dy = canvas.rays(cam, box)
    with np.errstate(divide="ignore", invalid="ignore"):
        if axis == 0:
            s = value / dx + 0 * dy
        elif axis == 1:
            s = (value - cam.height) / dy + 0 * dx
        else:
            s = np.full(dy.shape[:1] + dx.shape[1:], value, np.float32)
        point = [dx * s, cam.height + dy * s, s]
    a, b = [point[i] for i in range(3) if i != axis]
    mask = (s > 0) & (a >= lo[0]) & (a <= hi[0]) & (b >= lo[1]) & (b <= hi[1])
    if mask.any():
        colour = colour_fn(a, b)
        canvas.paint(box, mask & np.isfinite(colour[..., 0]), np.nan_to_num(colour), s.astype(np.float32))


def _windows(a, b, base, origin, rng_key, lit_colour, glass, floor_h, spacing):
    """A grid of windows on a facade: a runs along the facade from origin, b is height."""
    col, row = np.floor((a - origin) / spacing), np.floor(b / floor_h)
    fa, fb = (a - origin) / spacing - col, b / floor_h - row
    inside = (fa > 0.25) & (fa < 0.75) & (fb > 0.3) & (fb < 0.8) & (row >= 1)
    lit = np.mod(col * 7919 + row * 104729 + rng_key, 97) < 25        # a stable per-window hash
    window = np.where(lit[..., None], lit_colour, glass)
    return np.where(inside[..., None], window, base)


def _building(canvas, cam, rng, sun, x0, x1, z0, depth, height, car=False):
    colour = _hsv(rng.uniform(0, 360), rng.uniform(0.15, 0.65), rng.uniform(0.45, 0.9))
    glass = _hsv(rng.uniform(190, 230), 0.35, rng.uniform(0.2, 0.35))
    lit = np.array([1.0, 0.86, 0.45], np.float32)
    key = int(rng.integers(0, 1 << 20))
    floor_h, spacing = (3.0, rng.uniform(2.0, 3.5)) if not car else (0.7, 10.0)
    z1 = z0 + depth

    def facade(normal, along_origin):
        shade = _light(np.array(normal, np.float32), sun)

        def fn(a, b):
            grade = (0.85 + 0.15 * np.clip(b / height, 0, 1))[..., None]    # darker near the ground
            base = colour * shade * grade
            if car:
                band = ((b > 0.75 * height) & (b < 0.95 * height))[..., None]
                return np.where(band, glass, base)
            return _windows(a, b, base, along_origin, key, lit, glass * shade, floor_h, spacing)
        return fn

    _face(canvas, cam, 2, z0, (x0, 0.0), (x1, height), facade((0, 0, -1), x0),
          [(x0, 0, z0), (x1, 0, z0), (x0, height, z0), (x1, height, z0)])
    for x_side, normal in ((x1, 1), (x0, -1)):
        if x_side * normal < 0:       # the side faces the camera's column
            _face(canvas, cam, 0, x_side, (0.0, z0), (height, z1), facade((normal, 0, 0), z0),
                  [(x_side, 0, z0), (x_side, 0, z1), (x_side, height, z0), (x_side, height, z1)])
    if height < cam.height:          # a top seen from above (cars, low boxes)
        top = colour * _light(np.array([0, 1, 0], np.float32), sun) * 1.05
        _face(canvas, cam, 1, height, (x0, z0), (x1, z1), lambda a, b: np.broadcast_to(top, a.shape + (3,)),
              [(x0, height, z0), (x1, height, z0), (x0, height, z1), (x1, height, z1)])
    elif rng.random() < 0.35:        # a gable: a triangle on the front face
        roof_h = rng.uniform(0.25, 0.5) * (x1 - x0)
        roof = _hsv(rng.choice([5, 15, 25, 210]), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.55))
        mid, half = (x0 + x1) / 2, (x1 - x0) / 2 + 0.3

        def gable(a, b):
            outside = np.abs(a - mid) > half * (1 - (b - height) / roof_h)
            return np.where(outside[..., None], np.nan, roof * _light(np.array([0, 0.7, -0.7]), sun))
        _face(canvas, cam, 2, z0, (mid - half, height), (mid + half, height + roof_h), gable,
              [(mid - half, height, z0), (mid + half, height + roof_h, z0)])


def _sphere(canvas, cam, sun, centre, radius, colour):
    """A lit sphere, ray-cast: exact depth and Lambert shading (tree crowns, balls)."""
    cx, cy, cz = centre
    u, v = cam.project(cx, cy, cz)
    r_px = cam.focal * radius / (cz - radius) * 1.1 + 2
    box = canvas.box(u - r_px, u + r_px, v - r_px, v + r_px)
    if box is None:
        return
    dx, dy = canvas.rays(cam, box)
    dz = np.float32(1.0)
    oy = cam.height - cy                           # ray origin relative to the centre: (-cx, oy, -cz)
    qa = dx * dx + dy * dy + dz
    qb = 2 * (dx * -cx + dy * oy - cz)
    qc = cx * cx + oy * oy + cz * cz - radius * radius
    disc = qb * qb - 4 * qa * qc
    hit = disc > 0
    s = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    normal = np.stack([dx * s - cx, cam.height + dy * s - cy, s - cz], -1) / radius
    shade = 0.4 + 0.6 * np.clip(normal @ sun, 0, 1)
    canvas.paint(box, hit & (s > 0), colour * shade[..., None], s.astype(np.float32))


def _tree(canvas, cam, rng, sun, x, z):
    trunk_h, crown = rng.uniform(1.5, 3.5), rng.uniform(1.2, 2.8)
    bark = _hsv(rng.uniform(15, 35), 0.5, rng.uniform(0.25, 0.4))
    _face(canvas, cam, 2, z, (x - 0.18, 0.0), (x + 0.18, trunk_h + crown * 0.5),
          lambda a, b: np.broadcast_to(bark, a.shape + (3,)),
          [(x - 0.2, 0, z), (x + 0.2, trunk_h + crown, z)])
    leaves = _hsv(rng.uniform(75, 140), rng.uniform(0.45, 0.75), rng.uniform(0.35, 0.6))
    _sphere(canvas, cam, sun, (x, trunk_h + crown * 0.8, z), crown, leaves)


def _lamp(canvas, cam, sun, x, z):
    pole = np.array([0.18, 0.19, 0.2], np.float32)
    _face(canvas, cam, 2, z, (x - 0.07, 0.0), (x + 0.07, 5.0), lambda a, b: np.broadcast_to(pole, a.shape + (3,)),
          [(x - 0.1, 0, z), (x + 0.1, 5.0, z)])
    _sphere(canvas, cam, sun, (x, 5.1, z - 0.01), 0.28, np.array([1.0, 0.95, 0.75], np.float32))


def make_scene(key, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural street scene, deterministic per key (an int or tuple of ints).
    Returns rgb (H, W, 3) float32 sRGB-encoded in [0, 1] and depth (H, W) float32,
    linear view distance normalized as (z - NEAR) / (FAR - NEAR), clamped to [0, 1]."""
    rng = np.random.default_rng(key)
    hs, ws = height * SUPERSAMPLE, width * SUPERSAMPLE
    cam = _Camera(focal=ws * rng.uniform(0.75, 1.1), cx=ws * rng.uniform(0.4, 0.6),
                  horizon=hs * rng.uniform(0.35, 0.55), height=rng.uniform(1.5, 2.6))
    sun = np.array([rng.choice([-1, 1]) * rng.uniform(0.3, 0.9), rng.uniform(0.4, 0.9), rng.uniform(-0.6, 0.2)],
                   np.float32)
    sun /= np.linalg.norm(sun)
    canvas = _Canvas(hs, ws)
    _sky(canvas, cam, rng)
    _hills(canvas, cam, rng)
    road_x, road_half = rng.uniform(-2.0, 2.0), rng.uniform(3.0, 5.0)
    _ground(canvas, cam, rng, road_x, road_half)
    for side in (-1, 1):              # a row of buildings along each side of the street
        z = rng.uniform(5, 20)
        while z < 0.8 * FAR:
            width_m, depth_m = rng.uniform(4, 14), rng.uniform(5, 15)
            setback = road_x + side * (road_half + 2.5 + rng.uniform(0, 6))
            x0, x1 = (setback, setback + width_m) if side > 0 else (setback - width_m, setback)
            if rng.random() < 0.85:
                _building(canvas, cam, rng, sun, x0, x1, z, depth_m, rng.uniform(3, 25))
            z += depth_m + rng.uniform(0.5, 8)
        for _ in range(rng.integers(1, 6)):
            _tree(canvas, cam, rng, sun, road_x + side * (road_half + rng.uniform(1.0, 2.2)), rng.uniform(7, 60))
        for z in np.arange(rng.uniform(5, 15), 70, rng.uniform(12, 25)):
            _lamp(canvas, cam, sun, road_x + side * (road_half + 0.5), z)
    for _ in range(rng.integers(0, 4)):     # cars: low boxes on the road
        lane = road_x + rng.choice([-1, 1]) * road_half * 0.5
        _building(canvas, cam, rng, sun, lane - 0.9, lane + 0.9, rng.uniform(6, 50), 4.2, 1.4, car=True)
    for _ in range(rng.integers(0, 4)):     # balls on the pavement
        radius = rng.uniform(0.25, 0.8)
        x = road_x + rng.choice([-1, 1]) * (road_half + rng.uniform(0.3, 2.2))
        _sphere(canvas, cam, sun, (x, radius, rng.uniform(4, 25)), radius, _hsv(rng.uniform(0, 360), 0.7, 0.9))

    rgb = cv2.resize(np.clip(canvas.rgb, 0, 1), (width, height), interpolation=cv2.INTER_AREA)
    z = canvas.z[SUPERSAMPLE // 2::SUPERSAMPLE, SUPERSAMPLE // 2::SUPERSAMPLE]   # depth is point-sampled
    depth = np.clip((np.minimum(z, FAR) - NEAR) / (FAR - NEAR), 0, 1)
    return np.clip(rgb, 0, 1).astype(np.float32), depth.astype(np.float32)


# --- the target filter -------------------------------------------------------------

def toon(rgb: np.ndarray, depth: np.ndarray, levels: int = 5) -> np.ndarray:
    """The style the network imitates: rgb (H, W, 3) and depth (H, W) as make_scene
    returns them -> (H, W, 3) float32 in [0, 1]."""
    depth = np.asarray(depth, np.float32)
    rgb8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    smooth = cv2.bilateralFilter(rgb8, 7, 40, 5).astype(np.float32) / 255
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV)                  # H in degrees, S and V in [0, 1]
    # Value alone is posterized: saturation is noisy in dark 8-bit colours, and bands of
    # it would come out as stripes.
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.15, 0, 1)
    hsv[..., 2] = np.minimum((np.floor(hsv[..., 2] * levels) + 0.75) / levels, 1.0)
    flat = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * WARM, 0, 1)

    # Depth outlines from the second difference of inverse depth: zero on any plane
    # (1/z is affine in screen space), large where one surface occludes another.
    z = NEAR + depth * (FAR - NEAR)
    w = 1.0 / z
    second = np.abs(cv2.Laplacian(w, cv2.CV_32F, ksize=1))
    depth_edge = second / cv2.dilate(w, np.ones((3, 3), np.uint8)) > 0.12
    lum = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY)
    grad = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)) / 4
    colour_edge = grad > 0.09
    lines = cv2.dilate((depth_edge | colour_edge).astype(np.uint8), np.ones((2, 2), np.uint8)).astype(np.float32)
    lines = cv2.GaussianBlur(lines, (3, 3), 0.6)[..., None] * 0.85
    inked = flat * (1 - lines) + INK * lines

    fog = (0.45 * np.clip((depth - 0.2) / 0.8, 0, 1) ** 1.5)[..., None]
    return (inked * (1 - fog) + FOG * fog).astype(np.float32)


def network_input(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The model's input contract: (H, W, 3) [0, 1] + (H, W) [0, 1] -> (4, H, W) in [-1, 1]."""
    return (np.concatenate([rgb.transpose(2, 0, 1), depth[None]]) * 2 - 1).astype(np.float32)


def pairs(keys, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, 4, H, W) and targets (N, 3, H, W), both in [-1, 1]."""
    xs, ys = [], []
    for key in keys:
        rgb, depth = make_scene(key, height, width)
        xs.append(network_input(rgb, depth))
        ys.append(toon(rgb, depth).transpose(2, 0, 1) * 2 - 1)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.float32))


def write_sample(directory, key=SAMPLE_KEY, size=SAMPLE_SIZE) -> tuple[Path, Path]:
    """examples/sample.png (8-bit sRGB) and sample_depth.png (16-bit normalized linear depth)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rgb, depth = make_scene(key, *size)
    colour_path, depth_path = directory / "sample.png", directory / "sample_depth.png"
    cv2.imwrite(str(colour_path), cv2.cvtColor(np.round(rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(depth_path), np.round(depth * 65535).astype(np.uint16))
    return colour_path, depth_path


# --- training ----------------------------------------------------------------------

@dataclass
class PreviewConfig:
    steps: int = 9000           # Adam steps (about 6 min on 2 CPU cores)
    seed: int = 0               # torch init, crop sampling and the training scenes
    depth: int = 3              # U-Net levels
    ngf: int = 16               # channels at the first level
    crop: int = 96              # px, square training crops
    batch: int = 16             # crops per step
    lr: float = 1e-3            # Adam, cosine-decayed to lr / 20
    scenes: int = 48            # training scenes, all made before the first step
    scene_height: int = 384     # px, training and held-out scenes (the sample's size)
    scene_width: int = 512
    held_out: int = 8           # held-out scenes for the quality figures
    threads: int = 2            # torch CPU threads


def train(cfg: PreviewConfig, log=print) -> tuple[UNetGenerator, dict]:
    """Train the generator with L1 on random crops; returns it (eval mode) and a summary."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, log)
    finally:
        torch.set_num_threads(threads)      # process-wide: leave it as the caller had it


def _train(cfg: PreviewConfig, log) -> tuple[UNetGenerator, dict]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([TRAIN_STREAM, cfg.seed, 1 << 16])
    start = time.perf_counter()
    inputs, targets = pairs([(TRAIN_STREAM, cfg.seed, i) for i in range(cfg.scenes)],
                            cfg.scene_height, cfg.scene_width)
    data_s = time.perf_counter() - start
    net = UNetGenerator(UNetConfig(depth=cfg.depth, ngf=cfg.ngf, in_channels=4))
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(cfg.steps, 1), eta_min=cfg.lr / 20)
    crop = min(cfg.crop, cfg.scene_height, cfg.scene_width)
    recent = []
    start = time.perf_counter()
    net.train()
    for step in range(1, cfg.steps + 1):
        idx = rng.integers(0, cfg.scenes, cfg.batch)
        top = rng.integers(0, cfg.scene_height - crop + 1, cfg.batch)
        left = rng.integers(0, cfg.scene_width - crop + 1, cfg.batch)
        flip = rng.random(cfg.batch) < 0.5
        windows = [(i, slice(t, t + crop), slice(x0, x0 + crop)) for i, t, x0 in zip(idx, top, left, strict=True)]
        x = torch.stack([inputs[i, :, rows, cols] for i, rows, cols in windows])       # (B, 4, c, c)
        y = torch.stack([targets[i, :, rows, cols] for i, rows, cols in windows])      # (B, 3, c, c)
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = F.l1_loss(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [loss.item()])[-100:]
        if log and (step % 250 == 0 or step == cfg.steps):
            elapsed = time.perf_counter() - start
            log(f"step {step}/{cfg.steps}  L1 {np.mean(recent):.4f}  {elapsed:.0f} s")
    net.eval()
    return net, {"final_l1": round(float(np.mean(recent)), 5) if recent else None,
                 "train_seconds": round(time.perf_counter() - start, 1), "data_seconds": round(data_s, 1)}


def _unit_range(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(-1, 1).numpy() + 1) / 2


def evaluate(net: UNetGenerator, cfg: PreviewConfig) -> dict:
    """Quality on held-out scenes: the network and the unstylized input, each against the target."""
    inputs, targets = pairs([(HELD_OUT_STREAM, i) for i in range(cfg.held_out)], cfg.scene_height, cfg.scene_width)
    with torch.no_grad():
        outputs = torch.cat([net(inputs[i:i + 1]) for i in range(len(inputs))])       # (N, 3, H, W) in [-1, 1]
    out, target, source = (_unit_range(t) for t in (outputs, targets, inputs[:, :3]))
    return {"held_out_l1": round(float(np.abs(out - target).mean() * 2), 5),
            "held_out_psnr_db": round(float(np.mean([psnr(o, t) for o, t in zip(out, target, strict=True)])), 2),
            "input_psnr_db": round(float(np.mean([psnr(s, t) for s, t in zip(source, target, strict=True)])), 2),
            "held_out_scenes": cfg.held_out,
            "notes": "procedural street scenes unseen in training; L1 in the output range [-1, 1], "
                     "PSNR on RGB in [0, 1] (mean over scenes); input_psnr_db: the unstylized input vs the target"}


def export(net: UNetGenerator, path, cfg: PreviewConfig, summary: dict, quality: dict):
    from postfx.exporters.torch_export import export_torch
    training = {**asdict(cfg), **summary, "loss": "l1", "optimizer": "adam(0.5, 0.999), cosine lr",
                "data": "procedural street scenes (postfx.train.preview_style.make_scene)",
                "target": "postfx.train.preview_style.toon"}
    return export_torch(net, path, name="toon-preview", raw=False, training=training, quality=quality)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument("--steps", type=int, default=PreviewConfig.steps)
    p.add_argument("--seed", type=int, default=PreviewConfig.seed)
    p.add_argument("--ngf", type=int, default=PreviewConfig.ngf)
    p.add_argument("--scenes", type=int, default=PreviewConfig.scenes)
    p.add_argument("--threads", type=int, default=PreviewConfig.threads)
    p.add_argument("--sample", metavar="DIR", help="also write DIR/sample.png and DIR/sample_depth.png")
    args = p.parse_args(argv)
    if args.sample:
        print("wrote", *write_sample(args.sample))
    cfg = PreviewConfig(steps=args.steps, seed=args.seed, ngf=args.ngf, scenes=args.scenes, threads=args.threads)
    net, summary = train(cfg)
    quality = evaluate(net, cfg)
    model = export(net, args.out, cfg, summary, quality)
    print(f"wrote {args.out}: {Path(args.out).stat().st_size / 1024:.0f} KiB, {model.parameters} parameters; "
          f"train {summary['train_seconds']} s; held-out PSNR {quality['held_out_psnr_db']} dB "
          f"(input {quality['input_psnr_db']} dB), L1 {quality['held_out_l1']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
