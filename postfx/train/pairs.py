"""Paired data: a rendered dataset (postfx.dataset) plus a folder of style targets,
one per view -- the (input, target) pairs a style is trained and evaluated on.

Layout of a targets folder::

    target/000000.png   RGB, 8 bit, sRGB-encoded, same name and size as the source's color/000000.png
    targets.json        written last: the source dataset, the style and its parameters,
                        the filter's milliseconds per frame

The source dataset is referenced by path (absolute, as it was when the targets
were made), so a targets folder is small and the renders are not duplicated.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset import _Progress, load_index, load_view, png_bytes, read_json_index
from ..errors import InputError
from ..model_file import atomic_write

FORMAT = "postfx.targets"
FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# (rgb uint8 (H, W, 3), depth01 float32 (H, W)) -> target rgb uint8 (H, W, 3)
StyleFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _prepare_out(out_dir, src: Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; pass a folder for the targets")
    if out.resolve() == src.resolve():
        raise InputError(f"{out}: the targets folder must not be the source dataset itself")
    try:
        (out / "target").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out / 'target'}: cannot make the folder ({e})") from None
    return out


def _write_index(out: Path, src: Path, info: dict, style: str, params: dict, ms: list[float]) -> None:
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "source": str(src.resolve()),
             "style": style, "params": params, "size": info["size"], "count": len(info["views"]),
             "filter_ms_per_frame": {"mean": round(float(np.mean(ms)), 3) if ms else None,
                                     "per_view": [round(v, 3) for v in ms]},
             "targets": [f"target/{Path(v['color']).name}" for v in info["views"]]}
    atomic_write(out / "targets.json", (json.dumps(index, indent=1) + "\n").encode("utf-8"))


def _check_target(rgb, size, what: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    width, height = size
    if rgb.dtype != np.uint8 or rgb.shape != (height, width, 3):
        raise InputError(f"{what}: the style returned {rgb.dtype} {rgb.shape}, expected uint8 ({height}, {width}, 3)")
    return rgb


def stylize_dataset(src_dir, out_dir, style: str, fn: StyleFn, params: dict | None = None,
                    progress: bool = True) -> Path:
    """Run the offline filter `fn` over every view of the dataset src_dir; writes out_dir."""
    src = Path(src_dir)
    info = load_index(src)
    out = _prepare_out(out_dir, src)
    ms = []
    bar = _Progress(len(info["views"]), progress, unit="view", desc=f"stylizing ({style})")
    try:
        for index, view in enumerate(info["views"]):
            rgb, depth01 = load_view(src, index, info)
            start = time.perf_counter()
            target = fn(rgb, depth01)
            ms.append((time.perf_counter() - start) * 1000.0)
            target = _check_target(target, info["size"], f"{style} on {view['color']}")
            atomic_write(out / "target" / Path(view["color"]).name, png_bytes(target))
            bar.step()
    finally:
        bar.close()
    _write_index(out, src, info, style, dict(params or {}), ms)
    return out


def _find_images(folder: Path, stem: str) -> list[Path]:
    """Every file in folder named stem + an image suffix (any case), each file once."""
    found: list[Path] = []
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / (stem + suffix), folder / (stem + suffix.upper())):
            # On a case-insensitive file system both spellings name the same file.
            if candidate.is_file() and not any(candidate.samefile(seen) for seen in found):
                found.append(candidate)
    return found


# Pillow modes of at most 8 bits per channel: they convert to RGB without losing range
# (a 16-bit grey image would be clipped, so it is refused rather than converted).
_EIGHT_BIT_MODES = ("RGB", "RGBA", "RGBX", "P", "PA", "L", "LA", "1")


def _read_target(path: Path, size) -> tuple[np.ndarray | None, str | None]:
    """(rgb uint8 (H, W, 3), None) or (None, what is wrong with the file)."""
    from PIL import Image, UnidentifiedImageError
    width, height = size
    try:
        with Image.open(path) as img:
            if img.size != (width, height):
                return None, f"{img.size[0]}x{img.size[1]}, the dataset's views are {width}x{height}"
            if img.mode not in _EIGHT_BIT_MODES:
                what = {"I;16": "16-bit grey", "I;16B": "16-bit grey", "I;16L": "16-bit grey", "I": "32-bit integer",
                        "F": "32-bit float", "CMYK": "CMYK"}.get(img.mode, f"mode {img.mode}")
                return None, f"{what} image; save targets as 8-bit RGB (or 8-bit grey)"
            img.load()          # decodes the whole file: a truncated one fails here
            return np.asarray(img.convert("RGB")), None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f"cannot read it ({e})"


def targets_from_folder(src_dir, folder, out_dir, progress: bool = True) -> Path:
    """Targets made elsewhere (e.g. a Photoshop batch over color/): folder holds one image
    per view with the view's file stem (000000.png, 000000.jpg, ...). Every file is
    decoded and checked before anything is written; all problems are listed in one
    error (reliability D4). The images are read again to be written, so memory stays
    one frame whatever the number of views."""
    src, folder = Path(src_dir), Path(folder)
    info = load_index(src)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of target images")
    size = info["size"]
    paths, problems = [], []
    bar = _Progress(len(info["views"]), progress, unit="view", desc="checking targets")
    try:
        for view in info["views"]:
            stem = Path(view["color"]).stem
            found = _find_images(folder, stem)
            if not found:
                problems.append(f"{folder / stem}.*: missing (one image per view, named like color/{stem}.png)")
            elif len(found) > 1:
                problems.append(f"{folder / stem}.*: {len(found)} candidates ({', '.join(p.name for p in found)}); "
                                "keep one image per view")
            else:
                _, problem = _read_target(found[0], size)
                if problem:
                    problems.append(f"{found[0]}: {problem}")
                paths.append(found[0])
            bar.step()
    finally:
        bar.close()
    if problems:
        empty = "" if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()) else \
            f" ({folder} holds no images at all)"
        raise InputError(f"{len(problems)} of {len(info['views'])} targets in {folder} are unusable{empty}; "
                         "nothing was written:\n  " + "\n  ".join(problems))
    out = _prepare_out(out_dir, src)
    bar = _Progress(len(paths), progress, unit="view", desc="copying targets")
    try:
        for view, path in zip(info["views"], paths):
            rgb, problem = _read_target(path, size)
            if problem:         # changed since it was checked a moment ago
                raise InputError(f"{path}: {problem}")
            atomic_write(out / "target" / Path(view["color"]).name, png_bytes(rgb))
            bar.step()
    finally:
        bar.close()
    _write_index(out, src, info, "folder", {"folder": str(folder.resolve())}, [])
    return out


def load_targets_index(out_dir) -> dict:
    """The parsed targets.json of a targets folder, with 'dataset' (the source's views.json) added."""
    path = Path(out_dir) / "targets.json"
    index = read_json_index(path, FORMAT, FORMAT_VERSION, "postfx dataset stylize")
    index["dataset"] = load_index(index["source"])
    if len(index["dataset"]["views"]) != index.get("count") or len(index.get("targets", [])) != index.get("count"):
        raise InputError(f"{path}: its count does not match the source dataset {index['source']}; "
                         "re-run `postfx dataset stylize`")
    return index


def load_pair(out_dir, index: int, info: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair `index`: (rgb uint8 (H, W, 3), depth01 float32 (H, W), target uint8 (H, W, 3)).
    Pass `info` (load_targets_index's result) to skip re-reading the indexes in a loop."""
    from PIL import Image, UnidentifiedImageError
    info = info or load_targets_index(out_dir)
    rgb, depth01 = load_view(info["source"], index, info["dataset"])
    path = Path(out_dir) / info["targets"][index]
    try:
        with Image.open(path) as img:
            if img.mode != "RGB" or img.size != (rgb.shape[1], rgb.shape[0]):
                raise InputError(f"{path}: {img.mode} {img.size[0]}x{img.size[1]}, expected RGB "
                                 f"{rgb.shape[1]}x{rgb.shape[0]}; re-run `postfx dataset stylize`")
            target = np.asarray(img)
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    return rgb, depth01, target
