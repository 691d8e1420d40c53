"""Training data: the pre-flight check of the paired folders (reliability D4), the pairs
kept decoded in memory (10 bytes a pixel: 1000 frames of 256x256 take 650 MiB in each
process), the encoding onto the model file's input contract, and the crop sampler that
decides what each step of each process sees.

Input contract (model_format.py, as the runtime feeds it): sRGB-encoded colour in
[0, 1] and normalized linear depth in [0, 1], both mapped linearly onto [-1, 1]:
colour / 127.5 - 1 and depth01 * 2 - 1 (depth dropped for RGB-only models).
Targets are mapped the same way; the generator's tanh output is in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import image_io
from ..dataset import INDEX as VIEWS_INDEX
from ..dataset import load_motion
from ..errors import InputError, TrainingDataError
from ..indexed_folder import content_id, read_recorded
from ..temporal import reproject
from .pairs import INDEX as TARGETS_INDEX
from .pairs import load_pair, load_targets_index

# np.random.default_rng keys: the first element keeps the streams apart
SHUFFLE_STREAM, CROP_STREAM = 11, 12


def encode_input(rgb: np.ndarray, depth01: np.ndarray, in_channels: int) -> np.ndarray:
    """rgb (H, W, 3) uint8 + depth01 (H, W) float -> (in_channels, H, W) float32 in [-1, 1]."""
    colour = rgb.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0        # (3, H, W)
    if in_channels == 3:
        return colour
    return np.concatenate([colour, depth01[None].astype(np.float32) * 2.0 - 1.0])   # (4, H, W)


def encode_target(target: np.ndarray) -> np.ndarray:
    """target (H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return target.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8, as the pass quantizes its output."""
    return np.round((np.clip(image, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8).transpose(1, 2, 0)


# --- the pre-flight check -------------------------------------------------------------

def _pair_problems(folder: Path, index: int, info: dict) -> list[str]:
    """Every problem with the three files of pair `index`: each checked against the sha256
    its index recorded, then decoded."""
    view, record = info["dataset"]["views"][index], info["targets"][index]
    size = tuple(info["size"])
    files = [(info["source_dir"], view["color"], view["color_sha256"], VIEWS_INDEX, "colour image",
              image_io.read_color),
             (info["source_dir"], view["depth"], view["depth_sha256"], VIEWS_INDEX, "depth map", image_io.read_depth),
             (folder, record["file"], record["sha256"], TARGETS_INDEX, "target", image_io.read_color)]
    problems = []
    for base, name, sha256, index_name, what, read in files:
        try:
            data = read_recorded(Path(base), name, sha256, index_name, what)
            read(Path(base) / name, what=what, size=size, data=data)
        except InputError as e:
            problems.append(str(e))
    return problems


@dataclass
class PairSet:
    """Paired frames, decoded once and kept in memory; for sequences (loaded with motion=True)
    also each frame's predecessor, motion and which pixels have history."""
    rgb: list[np.ndarray]          # per pair (H, W, 3) uint8, sRGB-encoded
    depth: list[np.ndarray]        # per pair (H, W) float32, normalized linear depth in [0, 1]
    target: list[np.ndarray]       # per pair (H, W, 3) uint8, the style's output
    names: list[str]               # per pair, for messages: "<folder>#<index>"
    sources: list[dict]            # what they came from (describe_folder), for the model file's provenance
    previous: list[int | None] = field(default_factory=list)        # the pair of the frame before, if loaded
    motion: list[np.ndarray | None] = field(default_factory=list)   # (H, W, 3) float32 (postfx.temporal's units)
    history: list[np.ndarray | None] = field(default_factory=list)  # (H, W) bool: not off-screen, not disoccluded

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) per pair."""
        return [image.shape[:2] for image in self.rgb]

    def frame(self, index: int, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair `index` whole: input (in_channels, H, W) and target (3, H, W), float32 in [-1, 1]."""
        return (encode_input(self.rgb[index], self.depth[index], in_channels),
                encode_target(self.target[index]))

    def crops(self, draws, crop: int, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """draws: (pair, top, left, flip) per sample -> inputs (B, in_channels, crop, crop) and
        targets (B, 3, crop, crop), float32 in [-1, 1]."""
        xs = np.empty((len(draws), in_channels, crop, crop), np.float32)
        ys = np.empty((len(draws), 3, crop, crop), np.float32)
        for b, (index, top, left, flip) in enumerate(draws):
            columns = slice(left, left + crop) if not flip else slice(left + crop - 1, left - 1 if left else None, -1)
            window = (slice(top, top + crop), columns)        # a flipped window reads its columns right to left
            xs[b] = encode_input(self.rgb[index][window], self.depth[index][window], in_channels)
            ys[b] = encode_target(self.target[index][window])
        return xs, ys

    @property
    def consecutive(self) -> list[int]:
        """The pairs whose previous frame is loaded too (what the temporal loss trains on)."""
        return [i for i, p in enumerate(self.previous) if p is not None]

    def consecutive_crops(self, draws, crop: int, in_channels: int):
        """draws: (pair, top, left, flip) of consecutive pairs -> the inputs of frame t and of
        frame t - 1 in the same window (B, in_channels, crop, crop) each, where each pixel was
        in the previous crop as a grid_sample grid (B, crop, crop, 2: x, y in [-1, 1],
        align_corners=True), and the pixels with history inside the crop (B, 1, crop, crop)."""
        current = np.empty((len(draws), in_channels, crop, crop), np.float32)
        before = np.empty_like(current)
        grid = np.empty((len(draws), crop, crop, 2), np.float32)
        valid = np.empty((len(draws), 1, crop, crop), np.float32)
        steps = np.arange(crop, dtype=np.float32)
        for b, (index, top, left, flip) in enumerate(draws):
            previous = self.previous[index]
            columns = slice(left, left + crop) if not flip else slice(left + crop - 1, left - 1 if left else None, -1)
            window = (slice(top, top + crop), columns)
            current[b] = encode_input(self.rgb[index][window], self.depth[index][window], in_channels)
            before[b] = encode_input(self.rgb[previous][window], self.depth[previous][window], in_channels)
            motion = self.motion[index][window]
            x = steps[None, :] + (-motion[..., 0] if flip else motion[..., 0])     # a mirrored crop: dx mirrors
            y = steps[:, None] + motion[..., 1]
            inside = (x >= 0) & (x <= crop - 1) & (y >= 0) & (y <= crop - 1)
            grid[b] = np.stack([x, y], axis=-1) * (2.0 / max(crop - 1, 1)) - 1.0
            valid[b, 0] = self.history[index][window] & inside
        return current, before, grid, valid

    @classmethod
    def from_arrays(cls, rgb, depth, target, name: str = "arrays") -> PairSet:
        """Pairs from memory: rgb (N, H, W, 3) uint8, depth (N, H, W) float in [0, 1], target
        (N, H, W, 3) uint8 (or lists of such frames, sizes may differ between pairs). Shapes and
        dtypes are checked; values are not scanned: a NaN / Inf in depth reaches the loss, where
        the trainer's non-finite guard skips that step."""
        rgb, depth, target = list(rgb), list(depth), list(target)
        problems = []
        if not len(rgb) == len(depth) == len(target):
            problems.append(f"{name}: {len(rgb)} colour, {len(depth)} depth and {len(target)} target frames")
        for i, (c, d, t) in enumerate(zip(rgb, depth, target, strict=False)):
            c, d, t = np.asarray(c), np.asarray(d), np.asarray(t)
            if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3:
                problems.append(f"{name}#{i}: colour is {c.dtype} {c.shape}, expected uint8 (H, W, 3)")
            elif d.shape != c.shape[:2] or not np.issubdtype(d.dtype, np.floating):
                problems.append(f"{name}#{i}: depth is {d.dtype} {d.shape}, expected float {c.shape[:2]}")
            elif t.dtype != np.uint8 or t.shape != c.shape:
                problems.append(f"{name}#{i}: target is {t.dtype} {t.shape}, expected uint8 {c.shape}")
        if not rgb:
            problems.append(f"{name}: no pairs")
        if problems:
            raise TrainingDataError(describe_problems(problems, f"{len(rgb)} in-memory pairs"), problems)
        return cls([np.asarray(c) for c in rgb], [np.asarray(d, np.float32) for d in depth],
                   [np.asarray(t) for t in target], [f"{name}#{i}" for i in range(len(rgb))],
                   [{"name": name, "pairs": len(rgb)}])


def describe_folder(folder: Path, info: dict) -> dict:
    """A targets folder as a model file's provenance records it: names, counts, the filter
    and its parameters, content ids -- no path of the machine it was on."""
    dataset = info["dataset"]
    return {"name": folder.name, "pairs": info["count"], "size": list(info["size"]), "filter": info["style"],
            "params": info["params"], "targets_id": content_id(info["targets"]),
            "dataset": {"name": Path(info["source_dir"]).name, "views": dataset["count"], "run": dataset["run"],
                        **{key: dataset[key] for key in ("seed", "town_seed") if dataset.get(key) is not None}}}


def describe_problems(problems: list[str], what: str) -> str:
    return (f"pre-flight check of {what}: {len(problems)} problem{'s' if len(problems) > 1 else ''}; fix or "
            "remove these (re-run `postfx dataset stylize` for targets, `postfx dataset render` for views):\n  "
            + "\n  ".join(problems))


def load_folders(folders, crop: int | None = None, role: str = "training", motion: bool = False) -> PairSet:
    """Pre-flight check and load of targets folders (postfx.train.pairs): every pair of every
    folder is decoded, and every unreadable, missing, wrongly sized or wrongly typed file
    (grey or 16-bit targets, 8-bit depth ...), every empty folder and every folder whose
    frames are smaller than `crop` is listed in one TrainingDataError. motion=True: the
    folders of sequences also give each frame's predecessor and motion (the temporal loss);
    then at least one folder must hold sequences."""
    folders = [Path(f) for f in folders]
    problems = [] if folders else [f"no {role} folders given"]
    rgb, depth, target, names, sources = [], [], [], [], []
    previous, motions = [], []
    for folder in folders:
        if not folder.is_dir():
            problems.append(f"{folder}: not a folder; pass a targets folder written by `postfx dataset stylize`")
            continue
        try:
            info = load_targets_index(folder)
        except InputError as e:
            problems.append(str(e))
            continue
        width, height = info["size"]
        if crop is not None and crop > min(width, height):
            problems.append(f"{folder}: frames are {width}x{height}, smaller than the {crop} px training crop; "
                            "pass a smaller crop or render larger frames")
        in_sequence = motion and "sequences" in info["dataset"]
        for index in range(info["count"]):
            try:
                pair = load_pair(folder, index, info)
                frame = info["dataset"]["views"][index].get("frame", 0) if in_sequence else 0
                moved = load_motion(info["source_dir"], index, info["dataset"]) if frame > 0 else None
            except InputError as e:     # list every bad file of the pair, not only the first load_pair met
                problems += _pair_problems(folder, index, info) or [str(e)]
                continue
            previous.append(len(rgb) - 1 if frame > 0 and names and names[-1] == f"{folder}#{index - 1}" else None)
            motions.append(moved)
            rgb.append(pair[0])
            depth.append(pair[1])
            target.append(pair[2])
            names.append(f"{folder}#{index}")
        sources.append(describe_folder(folder, info))
    if motion and not problems and not any(p is not None for p in previous):
        problems.append(f"no folder of {', '.join(map(str, folders))} holds sequences: the temporal loss needs "
                        "targets of `postfx dataset render --sequences N --frames K` (K >= 2)")
    if problems:
        what = f"the {role} data ({', '.join(map(str, folders)) or 'none'})"
        raise TrainingDataError(describe_problems(problems, what), problems)
    history = [None if p is None else reproject(depth[p], m, depth[p])[1] for p, m in zip(previous, motions,
                                                                                          strict=True)]
    return PairSet(rgb, depth, target, names, sources, previous, motions, history)


# --- which crops each step sees --------------------------------------------------------

class CropSampler:
    """What step `step` of process `rank` trains on: a pure function of (seed, world, rank,
    step), so the sampler's whole state is the step and a resumed run draws exactly what the
    uninterrupted one would (reliability D2).

    As torch's DistributedSampler: epoch e is one permutation of the pairs, seeded by (seed, e)
    and the same on every rank, padded by wrapping to a multiple of the world size; rank r
    takes positions r, r + world, r + 2 world, ... so the ranks see disjoint pairs. Crop
    windows and horizontal flips are drawn per (seed, rank, step). (No vertical flips: a
    rendered frame has its sky at the top.)"""

    def __init__(self, sizes: list[tuple[int, int]], crop: int, batch: int, seed: int, rank: int = 0,
                 world: int = 1):
        self.sizes, self.crop, self.batch = list(sizes), crop, batch
        self.seed, self.rank, self.world = seed, rank, world
        self.shard = -(-len(self.sizes) // world)         # pairs per rank per epoch
        self._epoch, self._order = -1, None

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            order = np.random.default_rng([SHUFFLE_STREAM, self.seed, epoch]).permutation(len(self.sizes))
            order = np.resize(order, self.shard * self.world)          # wrap-pad, as DistributedSampler
            self._epoch, self._order = epoch, order[self.rank::self.world]
        return self._order

    def draw(self, step: int) -> list[tuple[int, int, int, bool]]:
        """Step `step` (1-based): (pair, top, left, flip) for each of the batch's samples."""
        rng = np.random.default_rng([CROP_STREAM, self.seed, self.rank, step])
        draws = []
        for k in range((step - 1) * self.batch, step * self.batch):
            pair = int(self._epoch_order(k // self.shard)[k % self.shard])
            height, width = self.sizes[pair]
            top = int(rng.integers(0, height - self.crop + 1))
            left = int(rng.integers(0, width - self.crop + 1))
            draws.append((pair, top, left, bool(rng.random() < 0.5)))
        return draws

    def state_dict(self, step: int) -> dict:
        """What a checkpoint records: enough to check that a resume draws the same stream."""
        return {"seed": self.seed, "world_size": self.world, "batch": self.batch, "crop": self.crop,
                "pairs": len(self.sizes), "next_step": step + 1, "epoch": step * self.batch // self.shard}
