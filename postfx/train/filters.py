"""Offline style filters: the slow, hand-made looks a network learns to imitate.

Each filter turns one rendered frame -- rgb uint8 (H, W, 3), sRGB-encoded, and
depth01 float32 (H, W), normalized linear depth (0 near .. 1 far, the sky at 1) --
into a target rgb uint8 (H, W, 3). `postfx dataset stylize` runs one over a dataset
(postfx.train.pairs.stylize_dataset) and records its parameters in targets.json.

What keeps a filter learnable by a shallow U-Net (depth 3-4, 4x4 stride-2 convs):
only local operations (a few tens of pixels at most), no global statistics of the
frame, and no randomness. The paper grain and pigment turbulence of `watercolor`
and the bristle grooves of `oil` are fixed functions of (pixel position, seed):
deterministic, but not something a translation-invariant network can reproduce, so
they are kept faint -- the network learns their mean (a GAN loss, texture like it).
Sizes in pixels are given for a frame 360 rows tall and scaled with the frame's
height, so a style looks the same at 640x360 and 1280x720.

OpenCV is imported inside the filters (the train extra: opencv-contrib-python-headless),
so postfx imports without it.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from .filter_parts import (
    GRAPHITE,
    PAPER,
    check_frame,
    luminance,
    opencv,
    paper_grain,
    pigment,
    smoothstep,
    to_u8,
    value_noise,
)

# --- watercolor ----------------------------------------------------------------------

@dataclass(frozen=True)
class WatercolorParams:
    sigma_s: float = 30.0          # cv2.stylization spatial extent (px at 360 rows): how far a wash spreads
    sigma_r: float = 0.4           # cv2.stylization range: colour difference that stops a wash
    saturation: float = 1.8        # pigments are purer than the render's colours
    dilution: float = 0.3          # share of water: every colour thinned this far toward the paper
    highlights: float = 0.8        # lightness above which the paper is left unpainted
    soften: float = 1.5            # px at 360 rows: Gaussian that bleeds cv2.stylization's outlines into rims
    edge_darkening: float = 2.0    # pigment pooled at the rim of a wash (density gain on the lifted outline)
    turbulence: float = 0.2        # uneven pigment inside washes (density noise amplitude)
    paper_grain: float = 0.05      # paper tooth: brightness noise amplitude (a fixed function of position)
    paper_tint: float = 0.3        # 0 = white paper, 1 = the full warm PAPER colour under the washes
    seed: int = 0                  # seed of the turbulence and the paper grain
    RANGES: ClassVar[dict] = {"sigma_s": (1, 200), "sigma_r": (0.01, 1), "saturation": (0, 4), "dilution": (0, 1),
                              "highlights": (0, 1), "soften": (0, 20), "edge_darkening": (0, 10),
                              "turbulence": (0, 1), "paper_grain": (0, 1), "paper_tint": (0, 1),
                              "seed": (0, 2 ** 31 - 1)}


def watercolor(rgb: np.ndarray, depth01: np.ndarray, p: WatercolorParams) -> np.ndarray:
    cv2 = opencv()
    scale = rgb.shape[0] / 360.0
    sigma_s = max(p.sigma_s * scale, 1.0)
    stylized = cv2.stylization(rgb, sigma_s=sigma_s, sigma_r=p.sigma_r).astype(np.float32)
    # cv2.stylization is the normalized-convolution edge-preserving filter times
    # (1 - its gradient magnitude): hard dark outlines. Dividing it by the filter
    # recovers that outline map; bled out, it becomes the rim where pigment pooled
    # as a wash dried, drawn in the wash's own colour rather than in black.
    washes = cv2.edgePreservingFilter(rgb, flags=cv2.NORMCONV_FILTER, sigma_s=sigma_s, sigma_r=p.sigma_r)
    outline = 1.0 - (luminance(stylized) + 1.0) / (luminance(washes.astype(np.float32)) + 1.0)   # (H, W) [0, 1]
    rim = cv2.GaussianBlur(np.clip(outline, 0.0, 1.0), (0, 0), max(p.soften * scale, 0.3))
    hsv = cv2.cvtColor(washes, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * p.saturation, 0, 255)
    washes = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    paper_left = smoothstep(p.highlights, min(p.highlights + 0.15, 1.0), luminance(washes))[..., None]
    colour = 1.0 - (1.0 - washes) * (1.0 - p.dilution)                   # (H, W, 3) thinned pigment
    colour = colour * (1.0 - paper_left) + paper_left
    shape = rim.shape
    density = 1.0 + p.edge_darkening * rim + p.turbulence * value_noise(shape, 24.0 * scale + 1.0, p.seed + 7)
    painted = pigment(colour, density)
    grain = 1.0 - p.paper_grain * (0.5 + 0.5 * paper_grain(shape, p.seed))
    paper = 1.0 - p.paper_tint * (1.0 - np.asarray(PAPER, np.float32))
    return to_u8(painted * paper * grain[..., None])


# --- oil -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OilParams:
    size: float = 4.0              # cv2.xphoto.oilPainting radius, px at 360 rows (window 2 * size + 1)
    dyn_ratio: int = 8             # intensity divided by this before the histogram: larger = fewer, bolder dabs
    saturation: float = 1.3        # colour boost of the paint over the render
    impasto: float = 2.5           # relief of the paint lit from the top left (0 = flat)
    relief_blur: float = 0.8       # px at 360 rows: smooths the height map the relief is lit from
    bristles: float = 0.04         # height of the bristle grooves inside each stroke (a fixed function of position)
    stroke_length: float = 9.0     # px at 360 rows: length of the bristle grooves
    seed: int = 0                  # seed of the bristle texture
    RANGES: ClassVar[dict] = {"size": (0.5, 50), "dyn_ratio": (1, 128), "saturation": (0, 4), "impasto": (0, 20),
                              "relief_blur": (0, 20), "bristles": (0, 1), "stroke_length": (1, 64),
                              "seed": (0, 2 ** 31 - 1)}


def _bristle_texture(cv2, luma: np.ndarray, length: float, seed: int) -> np.ndarray:
    """Grooves (H, W), about [-1, 1], running along the local structure the way a painter
    follows a form (diagonal where the image is flat): fine noise smeared along four
    directions, blended per pixel by the orientation of the smoothed structure tensor."""
    shape = luma.shape
    noise = value_noise(shape, 1.3, seed)
    gx, gy = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jxy, jyy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gx * gy, gy * gy))
    # The strokes run across the gradient; where there is no structure (a tensor
    # anisotropy below 0.05, in luma-per-pixel squared) they fall back to 45 degrees.
    coherent = np.clip(np.hypot(jxx - jyy, 2 * jxy) * 20.0, 0.0, 1.0)
    across = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2
    k = max(int(round(length)) | 1, 3)
    textures, weights = [], []
    for index in range(4):
        angle = index * np.pi / 4
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        for t in np.linspace(-c, c, 4 * k):
            kernel[int(round(c - t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
        textures.append(cv2.filter2D(noise, cv2.CV_32F, kernel / kernel.sum()))
        along = np.cos(2.0 * (across - angle))
        flat = 1.0 if index == 1 else 0.0
        weights.append(coherent * np.maximum(along, 0.0) ** 4 + (1.0 - coherent) * flat)
    total = np.maximum(sum(weights), 1e-6)
    # Averaging noise along a line shrinks it; 2.5 brings the grooves back to about [-1, 1].
    return sum(w * t for w, t in zip(weights, textures, strict=True)) / total * 2.5


def oil(rgb: np.ndarray, depth01: np.ndarray, p: OilParams) -> np.ndarray:
    cv2 = opencv(need_contrib=True)
    scale = rgb.shape[0] / 360.0
    # Each pixel takes the mean colour of the most common intensity in its window: dabs of one colour.
    paint = cv2.xphoto.oilPainting(rgb, max(int(round(p.size * scale)), 1), int(p.dyn_ratio))
    hsv = cv2.cvtColor(paint, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * p.saturation, 0, 255)
    paint = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    # Thick paint: lightness plus bristle grooves as height, lit from the top left, so
    # the edge of every dab catches a highlight on one side and a shadow on the other.
    luma = luminance(paint)
    height = luma + p.bristles * _bristle_texture(cv2, luma, p.stroke_length * scale, p.seed)
    height = cv2.GaussianBlur(height, (0, 0), max(p.relief_blur * scale, 0.3))
    slope = (cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) + cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
    lit = paint * (1.0 - p.impasto * slope)[..., None] + 0.5 * p.impasto * np.maximum(-slope, 0.0)[..., None]
    return to_u8(lit)


# --- pencil --------------------------------------------------------------------------

@dataclass(frozen=True)
class PencilParams:
    sigma_s: float = 30.0          # cv2.pencilSketch spatial extent (px at 360 rows)
    sigma_r: float = 0.1           # cv2.pencilSketch range: colour difference that draws a line
    shade_factor: float = 0.04     # cv2.pencilSketch tone: how much of the render's shading survives
    colour: bool = False           # True: cv2.pencilSketch's colour sketch; False: graphite on paper
    pressure: float = 0.65         # graphite only: exponent on the sketch's tone (< 1 lighter, > 1 darker)
    RANGES: ClassVar[dict] = {"sigma_s": (1, 200), "sigma_r": (0.01, 1), "shade_factor": (0, 0.1),
                              "pressure": (0.05, 10)}


def pencil(rgb: np.ndarray, depth01: np.ndarray, p: PencilParams) -> np.ndarray:
    cv2 = opencv()
    scale = rgb.shape[0] / 360.0
    grey, colour = cv2.pencilSketch(rgb, sigma_s=max(p.sigma_s * scale, 1.0), sigma_r=p.sigma_r,
                                    shade_factor=p.shade_factor)
    if p.colour:
        return np.ascontiguousarray(colour)
    # Graphite: the sketch's darkness mixes the paper toward a blue-grey pencil black.
    stroke = 1.0 - (grey.astype(np.float32) / 255.0) ** p.pressure                   # (H, W) 0 paper .. 1 black
    paper, graphite = np.asarray(PAPER, np.float32), np.asarray(GRAPHITE, np.float32)
    return to_u8(paper * (1.0 - stroke[..., None]) + graphite * stroke[..., None])


# --- ink (depth-aware) ---------------------------------------------------------------

@dataclass(frozen=True)
class InkParams:
    levels: int = 5                # posterized lightness bands
    band_softness: float = 0.3     # fraction of a band over which one band blends into the next
    chroma: float = 1.2            # colour boost of the flat fills
    smooth_passes: int = 2         # bilateral passes before posterizing (flattens texture into fills)
    depth_eps: float = 1e-3        # near / (far - near) of the renders: makes 1 / (depth01 + eps) linear on planes
    depth_edge: float = 0.04       # relative second difference of inverse depth that draws a silhouette line
    line_width: float = 4.0        # px at the nearest depth, for a frame 360 px tall (scaled with the frame)
    line_falloff: float = 0.05     # depth01 at which a line is halfway from line_width to one pixel
    colour_edge: float = 0.08      # lightness gradient (per px, in [0, 1] units) that draws a thin line
    colour_line: float = 0.55      # darkness of colour lines (depth lines are full ink)
    fog_max: float = 0.85          # share of the paper colour at the far plane (the sky)
    fog_power: float = 1.0         # fog = fog_max * depth01 ** fog_power (> 1 keeps the middle distance clearer)
    RANGES: ClassVar[dict] = {"levels": (2, 64), "band_softness": (0.01, 1), "chroma": (0, 4),
                              "smooth_passes": (0, 10), "depth_eps": (1e-6, 1), "depth_edge": (1e-3, 10),
                              "line_width": (0, 32), "line_falloff": (1e-4, 10), "colour_edge": (1e-3, 10),
                              "colour_line": (0, 1), "fog_max": (0, 1), "fog_power": (0.05, 20)}


def _posterize(cv2, rgb: np.ndarray, p: InkParams) -> tuple[np.ndarray, np.ndarray]:
    """(flat fills (H, W, 3) float [0, 1], the smoothed frame (H, W, 3) uint8): edge-preserving
    smoothing, then lightness bands with soft borders (Lab)."""
    smooth = rgb
    for _ in range(int(p.smooth_passes)):
        smooth = cv2.bilateralFilter(smooth, 7, 30, 4)
    lab = cv2.cvtColor(smooth.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)    # L in [0, 100], a, b ~[-100, 100]
    x = lab[..., 0] / 100.0 * p.levels
    band = np.floor(x)
    band = band + smoothstep(1.0 - p.band_softness, 1.0, x - band)
    lab[..., 0] = np.clip((band + 0.5) / p.levels, 0.0, 1.0) * 100.0 * 0.96 + 4.0
    lab[..., 1:] *= p.chroma
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0), smooth


def _depth_lines(cv2, depth01: np.ndarray, height: int, p: InkParams) -> np.ndarray:
    """Silhouette lines (H, W) in [0, 1]: drawn on the near side of a depth jump, as
    wide as line_width at the nearest depth and thinning to one pixel far away."""
    # 1 / z is affine in screen space on any plane, so its second difference is zero on
    # walls, roofs and the ground however steeply they recede, and large (negative, on
    # the near side) where one surface occludes another. Dividing by 1 / z makes it a
    # relative jump: the same threshold holds near and far.
    inverse = 1.0 / (depth01 + np.float32(p.depth_eps))
    second = cv2.Laplacian(inverse, cv2.CV_32F, ksize=1)
    jump = np.maximum(-second, 0.0) / inverse
    edge = smoothstep(p.depth_edge, 2.0 * p.depth_edge, jump)                 # (H, W) soft edge on the near side
    widest = max(p.line_width * height / 360.0, 1.0)
    width = 1.0 + (widest - 1.0) / (1.0 + depth01 / p.line_falloff)             # (H, W) px wanted at this depth
    lines = edge
    # Wider lines for nearer edges: a k x k disc around each edge pixel whose depth asks for k pixels.
    for k in range(2, int(np.ceil(widest)) + 1):
        wide = edge * smoothstep(k - 1.0, float(k), width)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        lines = np.maximum(lines, cv2.dilate(wide, disc))
    # A touch of blur: a pen line has soft sides, and a stair-stepped one is harder to learn.
    lines = cv2.GaussianBlur(lines, (0, 0), 0.5)
    return lines


def ink(rgb: np.ndarray, depth01: np.ndarray, p: InkParams) -> np.ndarray:
    cv2 = opencv()
    height = rgb.shape[0]
    flat, smooth = _posterize(cv2, rgb, p)                                        # (H, W, 3) [0, 1]
    depth_lines = _depth_lines(cv2, depth01, height, p)
    luma = luminance(smooth.astype(np.float32) / 255.0)
    gradient = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)) / 4
    colour_lines = p.colour_line * smoothstep(p.colour_edge, 1.5 * p.colour_edge, gradient)
    lines = np.maximum(depth_lines, colour_lines)[..., None]
    inked = flat * (1.0 - lines) + np.asarray(GRAPHITE, np.float32) * lines
    fog = (p.fog_max * depth01 ** p.fog_power)[..., None]
    return to_u8(inked * (1.0 - fog) + np.asarray(PAPER, np.float32) * fog)


@dataclass(frozen=True)
class ToonParams:
    levels: int = 5                # posterized value bands
    saturation: float = 1.15       # colour boost before posterizing
    warmth: float = 0.12           # red up, blue down by this share: a warmer palette
    depth_eps: float = 1 / 119     # near / (far - near): makes 1 / (depth01 + eps) linear on planes
    depth_edge: float = 0.12       # relative second difference of inverse depth that draws an outline
    colour_edge: float = 0.09      # value gradient (per px, in [0, 1] units) that draws an outline
    line: float = 0.85             # darkness of the outlines
    fog_start: float = 0.2         # depth01 where the haze begins
    fog_max: float = 0.45          # share of the haze colour at the far plane
    fog_power: float = 1.5
    RANGES: ClassVar[dict] = {"levels": (2, 64), "saturation": (0, 4), "warmth": (0, 1), "depth_eps": (1e-6, 1),
                              "depth_edge": (1e-3, 10), "colour_edge": (1e-3, 10), "line": (0, 1),
                              "fog_start": (0, 0.99), "fog_max": (0, 1), "fog_power": (0.05, 20)}


TOON_INK = (0.13, 0.09, 0.07)       # outline colour, a warm near-black
TOON_HAZE = (0.92, 0.87, 0.80)      # haze toward the far plane


def toon(rgb: np.ndarray, depth01: np.ndarray, p: ToonParams) -> np.ndarray:
    """Cel shading: value posterized in a warmer palette, thin dark outlines where depth
    or colour changes sharply, light haze toward the far plane."""
    cv2 = opencv()
    smooth = cv2.bilateralFilter(rgb, 7, 40, 5).astype(np.float32) / 255.0
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV)                  # H in degrees, S and V in [0, 1]
    # Value alone is posterized: saturation is noisy in dark 8-bit colours, and bands of
    # it would come out as stripes.
    hsv[..., 1] = np.clip(hsv[..., 1] * p.saturation, 0, 1)
    hsv[..., 2] = np.minimum((np.floor(hsv[..., 2] * p.levels) + 0.75) / p.levels, 1.0)
    tint = np.array([1.0 + p.warmth / 2.4, 1.0, 1.0 - p.warmth], np.float32)
    flat = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * tint, 0, 1)
    # Depth outlines from the second difference of inverse depth: zero on any plane
    # (1 / z is affine in screen space), large where one surface occludes another.
    inverse = 1.0 / (depth01.astype(np.float32) + p.depth_eps)
    second = np.abs(cv2.Laplacian(inverse, cv2.CV_32F, ksize=1))
    depth_edge = second / cv2.dilate(inverse, np.ones((3, 3), np.uint8)) > p.depth_edge
    value = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY)
    gradient = np.hypot(cv2.Sobel(value, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(value, cv2.CV_32F, 0, 1, ksize=3)) / 4
    lines = cv2.dilate((depth_edge | (gradient > p.colour_edge)).astype(np.uint8), np.ones((2, 2), np.uint8))
    lines = cv2.GaussianBlur(lines.astype(np.float32), (3, 3), 0.6)[..., None] * p.line
    inked = flat * (1 - lines) + np.asarray(TOON_INK, np.float32) * lines
    fog = (p.fog_max * np.clip((depth01 - p.fog_start) / (1 - p.fog_start), 0, 1) ** p.fog_power)[..., None]
    return to_u8(inked * (1 - fog) + np.asarray(TOON_HAZE, np.float32) * fog)


# --- the registry ----------------------------------------------------------------------

@dataclass(frozen=True)
class Filter:
    """One registered style filter."""
    name: str
    description: str                        # one line, for `postfx dataset styles`
    uses_depth: bool                        # False: the output ignores depth01
    params_type: type                       # frozen dataclass of the parameters, defaults = the tuned look
    apply: Callable[[np.ndarray, np.ndarray, object], np.ndarray]

    def params(self, **overrides) -> object:
        """The parameters with overrides; unknown names, wrong types and values out of
        range are InputErrors that name the parameter."""
        fields = {f.name: f for f in dataclasses.fields(self.params_type)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise InputError(f"style {self.name!r} has no parameter {', '.join(unknown)}; "
                             f"its parameters are {', '.join(fields)}")
        defaults = self.params_type()
        checked = {}
        for key, value in overrides.items():
            kind = type(getattr(defaults, key))
            if kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise InputError(f"style {self.name!r} parameter {key} must be true or false, got {value!r}")
            elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                    or not np.isfinite(value) or (kind is int and int(value) != value):
                raise InputError(f"style {self.name!r} parameter {key} must be a finite "
                                 f"{'whole number' if kind is int else 'number'}, got {value!r}")
            checked[key] = kind(value)
        return self._check_ranges(self.params_type(**{**dataclasses.asdict(defaults), **checked}))

    def _check_ranges(self, params):
        for key, (low, high) in params.RANGES.items():
            value = getattr(params, key)
            if not low <= value <= high:
                raise InputError(f"style {self.name!r} parameter {key} = {value!r} is out of range [{low}, {high}]")
        return params

    def parse_params(self, assignments) -> object:
        """Parameters from KEY=VALUE strings (the command line's --param)."""
        defaults = dataclasses.asdict(self.params_type())
        overrides = {}
        for text in assignments:
            key, sep, raw = str(text).partition("=")
            key, raw = key.strip().replace("-", "_"), raw.strip()
            if not sep or key not in defaults:
                raise InputError(f"--param {text!r}: expected KEY=VALUE with KEY one of {', '.join(defaults)} "
                                 f"(style {self.name!r})")
            if isinstance(defaults[key], bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise InputError(f"--param {text!r}: {key} is true or false")
                overrides[key] = raw.lower() in ("true", "1", "yes")
            else:
                try:
                    overrides[key] = float(raw) if "." in raw or "e" in raw.lower() else int(raw)
                except ValueError:
                    raise InputError(f"--param {text!r}: {raw!r} is not a number") from None
        return self.params(**overrides)

    def resolve(self, params=None) -> object:
        """None (the defaults), a dict of overrides or a params instance -> a checked params instance."""
        if params is None:
            return self.params_type()
        if isinstance(params, dict):
            return self.params(**params)
        if isinstance(params, self.params_type):
            return self.params(**dataclasses.asdict(params))
        raise InputError(f"style {self.name!r} takes {self.params_type.__name__} or a dict, got {params!r}")

    def __call__(self, rgb, depth01, params=None) -> np.ndarray:
        """Stylize one frame: (H, W, 3) uint8 + (H, W) float depth01 -> (H, W, 3) uint8."""
        params = self.resolve(params)
        rgb, depth01 = check_frame(rgb, depth01)
        cv2 = opencv()
        try:
            out = self.apply(rgb, depth01, params)
        except cv2.error as e:
            raise InputError(f"style {self.name!r} failed in OpenCV on a {rgb.shape[1]}x{rgb.shape[0]} frame "
                             f"with {params}: {e}") from None
        return np.ascontiguousarray(out, dtype=np.uint8)

    def bind(self, params=None) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], dict]:
        """(fn(rgb, depth01) -> rgb, the full parameter dict): what pairs.stylize_dataset takes."""
        params = self.resolve(params)
        # One call on a tiny frame first: it fails early when OpenCV is missing, and it pays
        # OpenCV's one-time set-up (imports, colour-conversion tables), so the ms per frame
        # stylize_dataset records are the filter's own.
        self(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), params)
        return (lambda rgb, depth01: self(rgb, depth01, params)), dataclasses.asdict(params)


FILTERS: dict[str, Filter] = {f.name: f for f in (
    Filter("watercolor", "washes of thinned colour (cv2.stylization), darker pooled rims, paper tint and grain",
           False, WatercolorParams, watercolor),
    Filter("oil", "oil paint: dabs from cv2.xphoto.oilPainting, boosted colour, lit impasto and bristle grooves",
           False, OilParams, oil),
    Filter("pencil", "graphite pencil sketch on paper (cv2.pencilSketch; colour=True for its colour sketch)",
           False, PencilParams, pencil),
    Filter("ink", "ink and flat colour: posterized fills, depth silhouettes thinning with distance, "
                  "colour-edge lines, depth fog toward the paper", True, InkParams, ink),
    Filter("toon", "cel shading: posterized value in a warm palette, thin outlines at depth and colour edges, "
                   "light haze with depth", True, ToonParams, toon),
)}

# Targets made outside postfx (pairs.targets_from_folder) are recorded under this style name.
FOLDER_STYLE = "folder"


def get_filter(name: str) -> Filter:
    try:
        return FILTERS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown style {name!r}; the styles are {', '.join(FILTERS)} "
                         f"(or {FOLDER_STYLE!r} with --from DIR for targets made elsewhere)") from None


def describe_filters() -> str:
    """The registry as text: one block per filter, its parameters and their defaults."""
    lines = []
    for f in FILTERS.values():
        lines.append(f"{f.name:<11} {'RGB + depth' if f.uses_depth else 'RGB':<12} {f.description}")
        defaults = dataclasses.asdict(f.params_type())
        lines.append(" " * 12 + " ".join(f"{k}={v}" for k, v in defaults.items()))
    lines.append(f"{FOLDER_STYLE:<11} {'-':<12} targets made elsewhere, one image per view: --from DIR")
    return "\n".join(lines)
