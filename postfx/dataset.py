"""Dataset capture: random views of the demo town as colour + depth image pairs,
the input half of the paired data a style is trained on.

Layout of a dataset folder::

    color/000000.png    RGB, 8 bit, sRGB-encoded, rows top-down
    depth/000000.png    16-bit greyscale: normalized linear depth (z - near) / (far - near)
                        in [0, 1] times 65535 -- the model file's depth channel (model_format.py)
    views.json          written last: seed, size, a run id, and per view the camera, the
                        time and the sha256 of its two files (postfx.indexed_folder: a
                        folder whose index does not match its files is refused)

View i depends only on (seed, i): the first 100 views of a 1000-view set are the
100-view set of the same seed. Use different seeds for the training and the
held-out sets (each seed also builds its own town unless town_seed is given).
"""
from __future__ import annotations

import io
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import image_io
from .errors import InputError
from .files import atomic_write
from .frame_size import MAX_SIDE, check_size
from .indexed_folder import begin_writing, content_id, read_index, read_recorded, sha256_hex, write_index

FORMAT = "postfx.dataset"
FORMAT_VERSION = 2          # 2: a sha256 per file and a run id
INDEX = "views.json"
MAX_VIEWS = 1_000_000
DEPTH_SCALE = 65535         # 16-bit PNG value of normalized depth 1.0 (the far plane)
VIEW_TIME_RANGE = 120.0     # seconds: the moving objects' time is drawn from [0, this)
SEQUENCE_FPS = 30.0
MAX_SEQUENCE_FRAMES = 10_000
SEQUENCE_SPEED = (1.5, 6.0)     # metres per second along the ground, drawn per sequence
SEQUENCE_TURN = 0.25            # radians per second: the spread of each sequence's turn rate


def _check_args(out_dir, views, seed, town_seed) -> Path:
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or not 1 <= views <= MAX_VIEWS:
        raise InputError(f"views must be a whole number from 1 to {MAX_VIEWS}, got {views!r}")
    for name, value in (("seed", seed), ("town_seed", town_seed)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise InputError(f"{name} must be a whole number >= 0, got {value!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; pass a folder for the dataset")
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """An image array (uint8 grey / RGB, uint16 grey) as PNG file bytes."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class _Progress:
    """tqdm when it is installed, else a plain counter on stderr."""

    def __init__(self, total: int, enabled: bool, unit: str = "view", desc: str = "rendering"):
        self.total, self.done, self._bar = total, 0, None
        self.enabled, self.unit, self.desc = enabled, unit, desc
        if enabled:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, unit=unit, desc=desc)
            except ImportError:
                pass

    def step(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.enabled and (self.done == self.total or self.done % max(1, self.total // 100) == 0):
            print(f"\r{self.desc} {self.done}/{self.total} {self.unit}s", end="\n" if self.done == self.total else "",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def render_views(out_dir, views: int, size, seed: int, progress: bool = True, *, town_seed: int | None = None,
                 ctx=None) -> Path:
    """Render `views` random views (colour + depth) of the town into out_dir; returns its path.

    size: (width, height) or one number for a square. ctx: a moderngl context
    (default: postfx's headless EGL context)."""
    out = _check_args(out_dir, views, seed, town_seed)

    def shots(scene):
        for index in range(views):
            rng = np.random.default_rng([int(seed), index])
            camera = scene.random_camera(rng)
            yield {"index": index}, camera, float(rng.uniform(0.0, VIEW_TIME_RANGE)), None
    return _render(out, size, seed, town_seed, views, shots, progress, ctx, extra={})


def render_sequences(out_dir, sequences: int, frames: int, size, seed: int, progress: bool = True, *,
                     town_seed: int | None = None, fps: float = SEQUENCE_FPS, ctx=None) -> Path:
    """Render `sequences` runs of `frames` consecutive frames each (colour, depth and motion)
    along smooth camera paths, the traffic moving, into out_dir; returns its path.

    Each sequence starts at a random view (as render_views draws them) and flies on at a
    steady speed, turning slowly. Every view records its sequence and frame and a motion
    file (motion/NNNNNN.npy, float32 (H, W, 3), SceneTarget.read_motion's units: the
    offset in pixels, x right and y down, to where each pixel's surface was in the
    previous frame, and the normalized linear depth it had there). Frame 0's motion
    points into the frame before the sequence, which is not stored."""
    for name, value, top in (("sequences", sequences, MAX_VIEWS), ("frames", frames, MAX_SEQUENCE_FRAMES)):
        if not _whole(value) or not 1 <= value <= top:
            raise InputError(f"{name} must be a whole number from 1 to {top}, got {value!r}")
    out = _check_args(out_dir, sequences * frames, seed, town_seed)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not 1 <= fps <= 240:
        raise InputError(f"fps must be a number from 1 to 240, got {fps!r}")
    fps = float(fps)

    def shots(scene):
        for sequence in range(sequences):
            rng = np.random.default_rng([int(seed), sequence])
            start, start_time = scene.random_camera(rng), float(rng.uniform(0.0, VIEW_TIME_RANGE))
            flight = (start, start_time, rng.uniform(*SEQUENCE_SPEED), rng.normal(0.0, SEQUENCE_TURN),
                      rng.normal(0.0, SEQUENCE_TURN / 3))
            for frame in range(frames):
                camera, time = _flown(*flight, frame / fps)
                yield ({"index": sequence * frames + frame, "sequence": sequence, "frame": frame}, camera, time,
                       _flown(*flight, (frame - 1) / fps))
    extra = {"sequences": sequences, "frames": frames, "fps": fps,
             "motion": {"encoding": "float32 npy (H, W, 3)", "xy": "pixels to the previous frame's position, "
                        "x right, y down", "z": "normalized linear depth in the previous frame"}}
    return _render(out, size, seed, town_seed, sequences * frames, shots, progress, ctx, extra=extra)


def _flown(start, start_time: float, speed: float, turn: float, pitch_rate: float, seconds: float):
    """(camera, time) `seconds` into a sequence: flown along the start's heading over the
    ground at `speed`, turning at `turn` (yaw) and `pitch_rate` radians per second."""
    camera = start.turned(d_yaw=turn * seconds, d_pitch=pitch_rate * seconds)
    level = np.array([math.sin(start.yaw), 0.0, -math.cos(start.yaw)])
    position = np.asarray(start.position) + level * speed * seconds
    return replace(camera, position=tuple(position)), start_time + seconds


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _render(out: Path, size, seed, town_seed, count: int, shots, progress: bool, ctx, *, extra: dict) -> Path:
    """Render what `shots(scene)` yields -- (record, camera, time, (previous camera, previous
    time) or None) -- as the views of a dataset folder; motion files when previous is given."""
    width, height = check_size(size)
    town_seed = seed if town_seed is None else town_seed
    with_motion = bool(extra)

    from .gl.context import headless_context
    from .scene import Scene, SceneTarget, linear_depth01
    ctx = ctx or headless_context()
    begin_writing(out, INDEX)           # from here until the new index, the folder reads as unfinished
    for sub in ("color", "depth") + (("motion",) if with_motion else ()):
        try:
            (out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{out / sub}: cannot make the folder ({e})") from None
    records = []
    scene = Scene(ctx, seed=int(town_seed))
    bar = _Progress(count, progress)
    try:
        with SceneTarget(ctx, (width, height), motion=with_motion) as target:
            for record, camera, time, previous in shots(scene):
                if previous is None:
                    scene.render(target, camera, time=time)
                else:
                    scene.render(target, camera, time=time, previous_camera=previous[0], previous_time=previous[1])
                depth01 = linear_depth01(target.read_depth(), camera.near, camera.far)   # (H, W) float32
                files = {"color": target.read_rgb(),                                     # (H, W, 3) uint8
                         "depth": np.round(depth01 * DEPTH_SCALE).astype(np.uint16)}     # (H, W) uint16
                if with_motion:
                    files["motion"] = target.read_motion()                               # (H, W, 3) float32
                stem = f"{record['index']:06d}"
                record.update(time=time, **camera.to_dict())
                for key, data in files.items():
                    suffix, payload = (".npy", npy_bytes(data)) if key == "motion" else (".png", png_bytes(data))
                    record[key] = f"{key}/{stem}{suffix}"
                    atomic_write(out / record[key], payload)
                    record[f"{key}_sha256"] = sha256_hex(payload)
                records.append(record)
                bar.step()
    finally:
        bar.close()
        scene.release()
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "run": content_id(records), "seed": int(seed),
            "town_seed": int(town_seed), "size": [width, height], "count": count,
            "depth": {"encoding": "uint16 png", "scale": DEPTH_SCALE, "value": "(z - near) / (far - near)",
                      "z": "view-space distance along the camera axis"},
            "camera": {"angles": "radians", "yaw": "0 looks along -z, positive turns right",
                       "pitch": "positive looks up"},
            **extra, "views": records}
    write_index(out, INDEX, info)
    return out


def npy_bytes(array: np.ndarray) -> bytes:
    """A numeric array as .npy file bytes (no pickled objects: np.load(allow_pickle=False) reads it)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def checked_size(fields, key: str = "size") -> tuple[int, int]:
    """An index's [width, height] field, each side 1..MAX_SIDE."""
    size = fields.get(key, list)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                                 for v in size):
        raise InputError(f"{fields.path}: field {key!r} must be [width, height], each 1..{MAX_SIDE}, got {size!r}")
    return size[0], size[1]


def load_index(out_dir) -> dict:
    """The views.json of a dataset folder, read through its schema (every field the loaders
    use, with its type; at least one view): a dict with "folder" (its Path) added."""
    folder = Path(out_dir)
    fields = read_index(folder / INDEX, FORMAT, FORMAT_VERSION, "postfx dataset render")
    size = checked_size(fields)
    count = fields.whole("count", 1, MAX_VIEWS)
    views = fields.objects("views", at_least=1)
    if len(views) != count:
        raise InputError(f"{fields.path}: 'views' holds {len(views)} entries, 'count' says {count}; render the "
                         "dataset again")
    fields.get("run", str)
    for name in ("seed", "town_seed"):
        fields.whole(name, optional=True)
    sequences = fields.whole("sequences", 1, MAX_VIEWS, optional=True)
    if sequences is not None:
        frames = fields.whole("frames", 1, MAX_SEQUENCE_FRAMES)
        if sequences * frames != count:
            raise InputError(f"{fields.path}: {sequences} sequences of {frames} frames are not {count} views; "
                             "render the dataset again")
    for i, view in enumerate(views):
        view.relative_file("color")
        view.relative_file("depth")
        view.sha256("color_sha256")
        view.sha256("depth_sha256")
        if sequences is not None:
            view.relative_file("motion")
            view.sha256("motion_sha256")
            if (view.whole("sequence"), view.whole("frame")) != divmod(i, frames):
                raise InputError(f"{fields.path}: view {i} is not frame {i % frames} of sequence {i // frames}; "
                                 "render the dataset again")
    info = dict(fields.doc, size=list(size), folder=folder)
    return info


def load_motion(out_dir, index: int, info: dict | None = None) -> np.ndarray:
    """The motion of view `index` of a sequence dataset (render_sequences): float32 (H, W, 3),
    checked against the sha256 views.json recorded."""
    info = info or load_index(out_dir)
    _check_view_index(out_dir, index, info)
    if "sequences" not in info:
        raise InputError(f"{out_dir}: a dataset of single views has no motion; render sequences "
                         "(postfx dataset render --sequences N --frames K)")
    view, folder = info["views"][index], Path(out_dir)
    data = read_recorded(folder, view["motion"], view["motion_sha256"], INDEX, "motion file")
    w, h = info["size"]
    try:
        motion = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{folder / view['motion']}: not a .npy array ({e})") from None
    if motion.shape != (h, w, 3) or motion.dtype != np.float32 or not np.isfinite(motion).all():
        raise InputError(f"{folder / view['motion']}: expected finite float32 {(h, w, 3)}, got {motion.dtype} "
                         f"{motion.shape}")
    return motion


def _check_view_index(out_dir, index, info) -> None:
    count = len(info["views"])
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < count:
        raise InputError(f"view index must be 0..{count - 1} for {out_dir}, got {index!r}")


def load_view(out_dir, index: int, info: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """View `index` of a dataset: (rgb uint8 (H, W, 3), depth01 float32 (H, W) in [0, 1]),
    each file checked against the sha256 views.json recorded. Pass `info` (load_index's
    result) to skip re-reading views.json in a loop."""
    info = info or load_index(out_dir)
    _check_view_index(out_dir, index, info)
    view, folder = info["views"][index], Path(out_dir)
    color = read_recorded(folder, view["color"], view["color_sha256"], INDEX, "colour image")
    depth = read_recorded(folder, view["depth"], view["depth_sha256"], INDEX, "depth map")
    size = tuple(info["size"])
    rgb = image_io.read_color(folder / view["color"], what="colour image", size=size, data=color)
    return rgb, image_io.read_depth(folder / view["depth"], size=size, data=depth)
