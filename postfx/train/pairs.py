"""Paired data: a rendered dataset (postfx.dataset) plus a folder of style targets,
one per view -- the (input, target) pairs a style is trained and evaluated on.

Layout of a targets folder::

    target/000000.png   RGB, 8 bit, sRGB-encoded, the size of the source's views; view i's
                        target is target/{i:06d}.png whatever its colour file is called
    targets.json        written last: the source dataset (its path relative to this folder,
                        and its run id), the style and its parameters, the filter's
                        milliseconds per frame, and the sha256 of every target file

The source dataset is referenced, not copied, so a targets folder is small. Readers
refuse a targets folder whose index does not match its files, or whose source was
rendered again since (another run id): postfx.indexed_folder.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import image_io
from ..dataset import INDEX as VIEWS_INDEX
from ..dataset import _Progress, checked_size, load_index, load_view, png_bytes
from ..errors import InputError
from ..files import atomic_write
from ..indexed_folder import begin_writing, read_index, read_recorded, sha256_hex, write_index

FORMAT = "postfx.targets"
FORMAT_VERSION = 2          # 2: a sha256 per target, the source's run id, targets named by view
INDEX = "targets.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# (rgb uint8 (H, W, 3), depth01 float32 (H, W)) -> target rgb uint8 (H, W, 3)
StyleFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def target_name(index: int) -> str:
    """Where view `index`'s target goes: by index, so two views whose colour files share a
    name (in different folders) never share a target."""
    return f"target/{index:06d}.png"


def _prepare_out(out_dir, src: Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; pass a folder for the targets")
    if out.resolve() == src.resolve():
        raise InputError(f"{out}: the targets folder must not be the source dataset itself")
    begin_writing(out, INDEX)           # from here until the new index, the folder reads as unfinished
    try:
        (out / "target").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out / 'target'}: cannot make the folder ({e})") from None
    return out


def _source_reference(out: Path, src: Path) -> str:
    """The source dataset as seen from the targets folder: a relative path (the two folders
    move together, and no machine's absolute path is recorded), absolute only where no
    relative path exists (another drive)."""
    try:
        return Path(os.path.relpath(src.resolve(), out.resolve())).as_posix()
    except ValueError:
        return str(src.resolve())


def _write_index(out: Path, src: Path, info: dict, style: str, params: dict, ms: list[float],
                 hashes: list[str]) -> None:
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "source": _source_reference(out, src),
             "source_run": info["run"], "style": style, "params": params, "size": info["size"],
             "count": len(info["views"]),
             "filter_ms_per_frame": {"mean": round(float(np.mean(ms)), 3) if ms else None,
                                     "per_view": [round(v, 3) for v in ms]},
             "targets": [{"file": target_name(i), "sha256": h} for i, h in enumerate(hashes)]}
    write_index(out, INDEX, index)


def _write_target(out: Path, index: int, rgb: np.ndarray) -> str:
    data = png_bytes(rgb)
    atomic_write(out / target_name(index), data)
    return sha256_hex(data)


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
    ms, hashes = [], []
    bar = _Progress(len(info["views"]), progress, unit="view", desc=f"stylizing ({style})")
    try:
        for index, view in enumerate(info["views"]):
            rgb, depth01 = load_view(src, index, info)
            start = time.perf_counter()
            target = fn(rgb, depth01)
            ms.append((time.perf_counter() - start) * 1000.0)
            target = _check_target(target, info["size"], f"{style} on {view['color']}")
            hashes.append(_write_target(out, index, target))
            bar.step()
    finally:
        bar.close()
    _write_index(out, src, info, style, dict(params or {}), ms, hashes)
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


def _read_target(path: Path, size) -> tuple[np.ndarray | None, str | None]:
    """(rgb uint8 (H, W, 3), None) or (None, what is wrong with the file): postfx.image_io's
    rules for a colour picture (a 16-bit grey target is scaled to 8 bits, not clipped)."""
    try:
        return image_io.read_color(path, what="target", size=size), None
    except InputError as e:
        return None, str(e).removeprefix(f"{path}: ")


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
    stems = [Path(view["color"]).stem for view in info["views"]]
    shared = sorted({stem for stem in stems if stems.count(stem) > 1})
    if shared:
        raise InputError(f"{src / VIEWS_INDEX}: views share colour file names ({', '.join(shared[:5])}"
                         f"{' ...' if len(shared) > 5 else ''}), so a folder of targets named after them is "
                         "ambiguous; nothing was written")
    paths, problems = [], []
    bar = _Progress(len(info["views"]), progress, unit="view", desc="checking targets")
    try:
        for stem in stems:
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
    hashes = []
    bar = _Progress(len(paths), progress, unit="view", desc="copying targets")
    try:
        for index, path in enumerate(paths):
            rgb, problem = _read_target(path, size)
            if problem:         # changed since it was checked a moment ago
                raise InputError(f"{path}: {problem}")
            hashes.append(_write_target(out, index, rgb))
            bar.step()
    finally:
        bar.close()
    _write_index(out, src, info, "folder", {"folder": _source_reference(out, folder)}, [], hashes)
    return out


def load_targets_index(out_dir) -> dict:
    """The targets.json of a targets folder, read through its schema, with "dataset" (the
    source's views.json), "source_dir" (the source folder) and "folder" added. Refused:
    no index (never finished, or a run over it interrupted), fields of the wrong type, no
    targets, a source rendered again since (another run id), counts that disagree."""
    folder = Path(out_dir)
    fields = read_index(folder / INDEX, FORMAT, FORMAT_VERSION, "postfx dataset stylize")
    source = Path(fields.get("source", str))
    source_dir = Path(os.path.normpath(source if source.is_absolute() else folder / source))
    dataset = load_index(source_dir)
    if fields.get("source_run", str) != dataset["run"]:
        raise InputError(f"{fields.path}: its source {source_dir} was rendered again since these targets were "
                         "made (another run id): run `postfx dataset stylize` again")
    count = fields.whole("count", 1)
    targets = fields.objects("targets", at_least=1)
    if not len(targets) == count == dataset["count"]:
        raise InputError(f"{fields.path}: {len(targets)} targets, 'count' {count}, and the source dataset has "
                         f"{dataset['count']} views; run `postfx dataset stylize` again")
    for target in targets:
        target.relative_file("file")
        target.sha256("sha256")
    if checked_size(fields) != tuple(dataset["size"]):
        raise InputError(f"{fields.path}: 'size' {fields.doc['size']} is not the source's {dataset['size']}")
    fields.get("style", str)
    fields.get("params", dict)
    fields.object("filter_ms_per_frame").get("mean", (int, float), optional=True)
    return dict(fields.doc, dataset=dataset, source_dir=source_dir, folder=folder)


def load_pair(out_dir, index: int, info: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair `index`: (rgb uint8 (H, W, 3), depth01 float32 (H, W), target uint8 (H, W, 3)),
    every file checked against the sha256 its index recorded. Pass `info`
    (load_targets_index's result) to skip re-reading the indexes in a loop."""
    info = info or load_targets_index(out_dir)
    rgb, depth01 = load_view(info["source_dir"], index, info["dataset"])
    record = info["targets"][index]
    data = read_recorded(Path(out_dir), record["file"], record["sha256"], INDEX, "target")
    target = image_io.read_color(Path(out_dir) / record["file"], what="target", size=rgb.shape[1::-1], data=data)
    return rgb, depth01, target
