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
import sys
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
    width, height = check_size(size)
    town_seed = seed if town_seed is None else town_seed

    from .gl.context import headless_context
    from .scene import Scene, SceneTarget, linear_depth01
    ctx = ctx or headless_context()
    begin_writing(out, INDEX)           # from here until the new index, the folder reads as unfinished
    for sub in ("color", "depth"):
        try:
            (out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{out / sub}: cannot make the folder ({e})") from None
    records = []
    scene = Scene(ctx, seed=int(town_seed))
    bar = _Progress(views, progress)
    try:
        with SceneTarget(ctx, (width, height)) as target:
            for index in range(views):
                rng = np.random.default_rng([int(seed), index])
                camera = scene.random_camera(rng)
                time = float(rng.uniform(0.0, VIEW_TIME_RANGE))
                scene.render(target, camera, time=time)
                rgb = target.read_rgb()                                                  # (H, W, 3) uint8
                depth01 = linear_depth01(target.read_depth(), camera.near, camera.far)   # (H, W) float32
                depth16 = np.round(depth01 * DEPTH_SCALE).astype(np.uint16)              # (H, W) uint16
                name = f"{index:06d}.png"
                record = {"index": index, "color": f"color/{name}", "depth": f"depth/{name}", "time": time,
                          **camera.to_dict()}
                for key, image in (("color", rgb), ("depth", depth16)):
                    data = png_bytes(image)
                    atomic_write(out / record[key], data)
                    record[f"{key}_sha256"] = sha256_hex(data)
                records.append(record)
                bar.step()
    finally:
        bar.close()
        scene.release()
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "run": content_id(records), "seed": int(seed),
            "town_seed": int(town_seed), "size": [width, height], "count": views,
            "depth": {"encoding": "uint16 png", "scale": DEPTH_SCALE, "value": "(z - near) / (far - near)",
                      "z": "view-space distance along the camera axis"},
            "camera": {"angles": "radians", "yaw": "0 looks along -z, positive turns right",
                       "pitch": "positive looks up"},
            "views": records}
    write_index(out, INDEX, info)
    return out


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
    for view in views:
        view.relative_file("color")
        view.relative_file("depth")
        view.sha256("color_sha256")
        view.sha256("depth_sha256")
    info = dict(fields.doc, size=list(size), folder=folder)
    return info


def load_view(out_dir, index: int, info: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """View `index` of a dataset: (rgb uint8 (H, W, 3), depth01 float32 (H, W) in [0, 1]),
    each file checked against the sha256 views.json recorded. Pass `info` (load_index's
    result) to skip re-reading views.json in a loop."""
    info = info or load_index(out_dir)
    count = len(info["views"])
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < count:
        raise InputError(f"view index must be 0..{count - 1} for {out_dir}, got {index!r}")
    view, folder = info["views"][index], Path(out_dir)
    color = read_recorded(folder, view["color"], view["color_sha256"], INDEX, "colour image")
    depth = read_recorded(folder, view["depth"], view["depth_sha256"], INDEX, "depth map")
    size = tuple(info["size"])
    rgb = image_io.read_color(folder / view["color"], what="colour image", size=size, data=color)
    return rgb, image_io.read_depth(folder / view["depth"], size=size, data=depth)
