"""Held-out evaluation of a style model: how close the network comes to its
filter, against two baselines, and how much faster it is.

    result = evaluate("watercolor.safetensors", "heldout_targets/", train_targets_dir="train_targets/")
    results = compare(["d2.safetensors", "d3.safetensors"], "heldout_targets/", "train_targets/")
    plot_quality_vs_depth(results, "quality.png")

For every held-out view the network runs through the real GL pass (PostFX, the
optimized kernels, in postfx's headless EGL context) on the full frame -- with
the view's depth for RGBD models, none for RGB models -- and its RGBA8 output
is compared with the filter's target by PSNR and SSIM (postfx.train.metrics),
averaged over the views. Beside it, on the same views:

- input: the unstylized frame vs the target (what doing nothing scores);
- colour transfer: a global colour mapping fitted on the TRAINING pairs only
  (ColourTransfer: a least-squares cubic polynomial in R, G, B -- every monomial
  up to degree 3, 20 terms per output channel -- applied per pixel). It is the
  best any per-pixel colour grade of this family does, so a network that does not
  beat it has learned nothing a colour grade could not. Without training targets
  the baseline is reported missing: fitting it on the held-out views would grade
  it on its own answers.

Speed: the filter's ms per frame comes from the held-out targets.json (wall
clock of the Python filter as `stylize_dataset` measured it, CPU); the network's
is PostFX.apply at the held-out frame size on textures already on the GPU
(pack input + network + present; no upload, no readback), `ctx.finish()` before
and after each frame, median of `runs` frames after `warmup` frames.
"""
from __future__ import annotations

import io
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..api import WINDOW_FAR, WINDOW_NEAR, as_rgba8, window_depth
from ..errors import InputError
from ..files import atomic_write
from ..gl.readback import read_rgb
from ..model import Model
from ..model_file import load
from ..model_format import MODEL_SUFFIX
from ..styles import styles_dir
from ..temporal import texture_motion
from .metrics import SSIM_TAPS, psnr, ssim
from .pairs import load_pair, load_targets_index

TIMING_WHAT = ("PostFX.apply on textures already on the GPU (pack input + network + present; no upload or "
               "readback), ctx.finish() before and after each frame, wall clock")
COLOUR_TRANSFER_METHOD = ("least-squares cubic polynomial colour mapping (all 20 monomials of R, G, B up to "
                          "degree 3, per output channel), fitted on the training pairs, applied per pixel")
NO_TRAIN_REASON = "no training targets given; the baseline is fitted on training pairs only, never on held-out views"


# --- the colour-transfer baseline ---------------------------------------------------

def _monomials(rgb01: np.ndarray, degree: int) -> np.ndarray:
    """(N, 3) colours in [0, 1] -> (N, terms) every monomial of R, G, B up to `degree`.
    Centred on mid-grey, so the terms stay within [-1, 1] and the fit well conditioned."""
    v = rgb01 * 2.0 - 1.0
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    terms = [r ** i * g ** j * b ** k
             for total in range(degree + 1)
             for i in range(total + 1) for j in range(total + 1 - i) for k in (total - i - j,)]
    return np.stack(terms, axis=1)


@dataclass
class ColourTransfer:
    """A global per-pixel colour mapping: target ~ polynomial(input colour)."""
    coefficients: np.ndarray        # (terms, 3) float64
    degree: int
    train_views: int
    train_pixels: int

    @classmethod
    def fit(cls, pairs, degree: int = 3, pixels_per_view: int = 16384, seed: int = 0) -> ColourTransfer:
        """Least squares over (input rgb uint8, target rgb uint8) pairs: up to
        `pixels_per_view` pixels of each (a seeded random subset of larger frames),
        accumulated as normal equations, so any number of views fits in memory."""
        rng = np.random.default_rng(seed)
        gram, moment, views, pixels = None, None, 0, 0
        for rgb, target in pairs:
            x = rgb.reshape(-1, 3).astype(np.float64) / 255.0           # (N, 3)
            y = target.reshape(-1, 3).astype(np.float64) / 255.0        # (N, 3)
            if len(x) > pixels_per_view:
                keep = rng.choice(len(x), pixels_per_view, replace=False)
                x, y = x[keep], y[keep]
            features = _monomials(x, degree)                            # (N, terms)
            gram = features.T @ features if gram is None else gram + features.T @ features
            moment = features.T @ y if moment is None else moment + features.T @ y
            views, pixels = views + 1, pixels + len(x)
        if views == 0:
            raise InputError("the colour-transfer baseline needs at least one training pair")
        # A whisker of ridge keeps a training set with few distinct colours solvable.
        ridge = 1e-9 * np.trace(gram) / len(gram)
        coefficients = np.linalg.solve(gram + ridge * np.eye(len(gram)), moment)
        return cls(coefficients, degree, views, pixels)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W, 3) uint8."""
        x = rgb.reshape(-1, 3).astype(np.float64) / 255.0
        y = _monomials(x, self.degree) @ self.coefficients
        return np.round(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(rgb.shape)


# --- data -----------------------------------------------------------------------------

def targets_info(folder, what: str) -> dict:
    """A targets folder's index (load_targets_index), refused with `what` named when it is missing
    or its frames are too small for SSIM."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{path}: the {what} targets folder does not exist (a folder written by "
                         "`postfx dataset stylize`, with targets.json)")
    info = load_targets_index(path)
    width, height = info["dataset"]["size"]
    if min(width, height) < SSIM_TAPS:
        raise InputError(f"{path}: the {what} frames are {width}x{height}; SSIM needs at least "
                         f"{SSIM_TAPS}x{SSIM_TAPS} pixels. Render the held-out views larger")
    return info


def _check_disjoint(heldout: Path, held: dict, train: Path, trained: dict) -> None:
    """Held-out views must not be training views: same rendered dataset, or the same
    seeds (view i depends only on (seed, i)), would grade the baseline on its own data."""
    a, b = held["dataset"], trained["dataset"]
    same_source = Path(held["source_dir"]).resolve() == Path(trained["source_dir"]).resolve()
    seeds = [(d.get("seed"), d.get("town_seed")) for d in (a, b)]
    same_seeds = seeds[0] == seeds[1] and None not in seeds[0]
    if same_source or same_seeds:
        why = "the same rendered dataset" if same_source else f"datasets of the same seed {a.get('seed')}"
        raise InputError(f"{heldout} and {train} are targets of {why}: held-out views would be training "
                         "views. Render the held-out set with another seed (`postfx dataset render --seed`)")


def _pairs(folder: Path, info: dict):
    """(index, rgb uint8 (H, W, 3), depth01 float32 (H, W), target uint8 (H, W, 3)) per view."""
    for index in range(info["count"]):
        yield (index, *load_pair(folder, index, info))


# --- the figures ------------------------------------------------------------------------

def _mean_scores(scores: list[tuple[float, float]]) -> dict:
    return {"psnr_db": float(np.mean([p for p, _ in scores])), "ssim": float(np.mean([s for _, s in scores]))}


def baselines(heldout_targets_dir, train_targets_dir=None, *, degree: int = 3) -> dict:
    """The two baselines on the held-out views: {"input": {psnr_db, ssim},
    "colour_transfer": {psnr_db, ssim, method, fitted_on, train_views, train_pixels} or None,
    "missing": {name: reason}}."""
    heldout = Path(heldout_targets_dir)
    held = targets_info(heldout, "held-out")
    transfer, missing = None, {}
    if train_targets_dir is None:
        missing["colour_transfer"] = NO_TRAIN_REASON
    else:
        train = Path(train_targets_dir)
        trained = targets_info(train, "training")
        _check_disjoint(heldout, held, train, trained)
        transfer = ColourTransfer.fit(((rgb, target) for _, rgb, _, target in _pairs(train, trained)), degree)
    input_scores, transfer_scores = [], []
    for _, rgb, _, target in _pairs(heldout, held):
        input_scores.append((psnr(rgb, target), ssim(rgb, target)))
        if transfer is not None:
            graded = transfer.apply(rgb)
            transfer_scores.append((psnr(graded, target), ssim(graded, target)))
    result = {"input": _mean_scores(input_scores), "colour_transfer": None, "missing": missing}
    if transfer is not None:
        result["colour_transfer"] = {**_mean_scores(transfer_scores), "method": COLOUR_TRANSFER_METHOD,
                                     "fitted_on": str(train_targets_dir), "train_views": transfer.train_views,
                                     "train_pixels": transfer.train_pixels}
    return result


def architecture(model: Model) -> tuple[int, int]:
    """(depth, ngf): from the training config in the file when it records them, else from
    the graph -- depth = stride-2 conv2d layers (U-Net levels down), ngf = the first
    layer's output channels."""
    training = model.meta.get("training") or {}
    encoder = [layer for layer in model.graph.layers if layer.op == "conv2d" and layer.stride == 2]
    depth = training.get("depth") if isinstance(training.get("depth"), int) else len(encoder)
    ngf = training.get("ngf") if isinstance(training.get("ngf"), int) else model.graph.layers[0].out_channels
    return depth, ngf


def model_source(model: Model) -> str | None:
    """Where a model came from, for results files: its path as the caller gave it, or "bundled
    style NAME" (a bundled file's path would record this machine's install folder)."""
    if model.path is None:
        return None
    path = Path(model.path)
    if path.parent.resolve() == styles_dir().resolve():
        return f"bundled style {path.name[: -len(MODEL_SUFFIX)]}"
    return model.path


def row_labels(results: list[dict]) -> list[str]:
    """A table label per result: the model's name, with its file added where names repeat (the
    fine-tunes of one style keep that style's name; one file run twice keeps its name)."""
    sources: dict[str, set] = {}
    for r in results:
        sources.setdefault(r["model"], set()).add(r.get("model_path"))
    return [f"{r['model']} ({_short_source(r['model_path'])})" if len(sources[r["model"]]) > 1 and r.get("model_path")
            else r["model"] for r in results]


def _short_source(model_path: str) -> str:
    return "bundled" if model_path.startswith("bundled style ") else Path(model_path).name


def check_style(model: Model) -> None:
    if not model.is_style:
        raise InputError(f"model {model.name!r} takes {model.meta['input']['channels']} and gives "
                         f"{model.meta['output']['channels']}; held-out pairs are RGB (+ depth) in, RGB out. "
                         "Evaluate a style model (RGB or RGBD in, RGB out at the frame size)")


class PassFrames:
    """One colour and one depth texture of the frame size, rewritten per view, and the pass;
    with temporal > 0 also a motion texture, and the pass in temporal mode (frames in order);
    frame_budget_ms: the network spread over frames, as PostFX does it."""

    def __init__(self, ctx, model: Model, size: tuple[int, int], fp16: bool, temporal: float = 0.0,
                 frame_budget_ms: float | None = None):
        from ..postfx_pass import PostFX
        self.ctx, self.size = ctx, size
        self.color = ctx.texture(size, 4)                   # RGBA8, rows bottom-up
        self.depth = ctx.depth_texture(size) if model.uses_depth else None
        self.motion = ctx.texture(size, 4, dtype="f4") if temporal else None
        try:
            self.fx = PostFX(ctx, model, fp16=fp16, temporal=temporal, frame_budget_ms=frame_budget_ms)
        except BaseException:
            self.release()
            raise

    def write(self, rgb: np.ndarray, depth01: np.ndarray, motion=None) -> None:
        self.color.write(np.flipud(as_rgba8(rgb)).tobytes())
        if self.depth is not None:
            self.depth.write(np.flipud(window_depth(depth01)).tobytes())     # postfx.stylize's encoding
        if self.motion is not None:
            if motion is None:
                raise InputError("a temporal pass needs each frame's motion")
            self.motion.write(texture_motion(motion).tobytes())

    def apply(self):
        extra = {} if self.motion is None else {"motion_tex": self.motion}
        if self.depth is None:
            return self.fx.apply(self.color, **extra)
        return self.fx.apply(self.color, self.depth, near=WINDOW_NEAR, far=WINDOW_FAR, **extra)

    def stylize(self, rgb: np.ndarray, depth01: np.ndarray, motion=None) -> np.ndarray:
        self.write(rgb, depth01, motion)
        return read_rgb(self.apply())

    def reset(self) -> None:
        """A cut: the next frame starts without history."""
        self.fx.reset_history()

    def time(self, runs: int, warmup: int) -> dict:
        for _ in range(warmup):
            self.apply()
        self.ctx.finish()
        ms = []
        for _ in range(runs):
            start = time.perf_counter()
            self.apply()
            self.ctx.finish()
            ms.append((time.perf_counter() - start) * 1000.0)
        return {"median": float(np.median(ms)), "min": float(np.min(ms)), "max": float(np.max(ms)),
                "runs": runs, "warmup": warmup, "what": TIMING_WHAT}

    def release(self) -> None:
        for obj in (getattr(self, "fx", None), self.color, self.depth, self.motion):
            if obj is not None:
                obj.release()


def _sample_sheet(rgb, stylized, target) -> bytes:
    from PIL import Image
    gap = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate([rgb, gap, stylized, gap, target], axis=1)).save(buffer, format="PNG")
    return buffer.getvalue()


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"


def evaluate(model, heldout_targets_dir, train_targets_dir=None, *, runs: int = 10, warmup: int = 3,
             samples_dir=None, samples: int = 3, fp16: bool = False, baseline: dict | None = None) -> dict:
    """Quality and speed of `model` (path, bundled name or Model) on a held-out targets folder.

    train_targets_dir: the training pairs, for the colour-transfer baseline (else reported missing).
    runs / warmup: frames timed / frames run first. samples_dir: write input | network | target
    sheets of the first `samples` views there. baseline: baselines(...) already computed for
    these folders (compare() shares one). Returns a JSON-ready dict (see the module docstring)."""
    from ..gl.context import headless_context, renderer
    model = load(model)
    check_style(model)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1 or not isinstance(warmup, int) or warmup < 0:
        raise InputError(f"runs must be >= 1 and warmup >= 0 (whole numbers), got {runs!r}, {warmup!r}")
    heldout = Path(heldout_targets_dir)
    held = targets_info(heldout, "held-out")
    if baseline is None:
        baseline = baselines(heldout, train_targets_dir)
    size = tuple(held["dataset"]["size"])                   # (W, H)
    out_dir = None if samples_dir is None else Path(samples_dir)
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{out_dir}: cannot make the samples folder ({e})") from None
    ctx = headless_context()
    frames = PassFrames(ctx, model, size, fp16)
    scores, sample_paths = [], []
    try:
        for index, rgb, depth01, target in _pairs(heldout, held):
            stylized = frames.stylize(rgb, depth01)
            scores.append((psnr(stylized, target), ssim(stylized, target)))
            if out_dir is not None and index < samples:
                path = out_dir / f"{_file_stem(model.name)}_{index:06d}.png"
                atomic_write(path, _sample_sheet(rgb, stylized, target))
                sample_paths.append(str(path))
        network_ms = frames.time(runs, warmup)
    finally:
        frames.release()
    depth, ngf = architecture(model)
    filter_ms = (held.get("filter_ms_per_frame") or {}).get("mean")
    quality = _mean_scores(scores)
    return {
        "model": model.name, "model_path": model_source(model), "depth": depth, "ngf": ngf,
        "parameters": model.parameters, "macs_per_pixel": model.macs_per_pixel,
        "input_channels": list(model.meta["input"]["channels"]), "uses_depth": model.uses_depth,
        "heldout": str(heldout), "train": None if train_targets_dir is None else str(train_targets_dir),
        "style": held.get("style"), "frame_size": list(size), "views": len(scores),
        **quality, "per_view_psnr_db": [p for p, _ in scores], "per_view_ssim": [s for _, s in scores],
        "baselines": {"input": baseline["input"], "colour_transfer": baseline["colour_transfer"]},
        "baselines_missing": dict(baseline["missing"]),
        "network_ms": network_ms, "filter_ms": filter_ms,
        "speedup": filter_ms / network_ms["median"] if filter_ms and network_ms["median"] > 0 else None,
        "renderer": renderer(ctx), "kernels": "optimized", "fp16": fp16, "samples": sample_paths,
    }


def compare(models, heldout_targets_dir, train_targets_dir=None, **options) -> list[dict]:
    """evaluate() for each model on the same folders; the baselines are computed once."""
    models = [load(m) for m in models]
    if not models:
        raise InputError("compare needs at least one model")
    for model in models:
        check_style(model)
    shared = baselines(heldout_targets_dir, train_targets_dir)
    return [evaluate(m, heldout_targets_dir, train_targets_dir, baseline=shared, **options) for m in models]


# --- reporting ---------------------------------------------------------------------------

def _fmt(value, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def markdown_table(results: list[dict]) -> str:
    """One row per model: depth, width, parameters, quality, both baselines, speed."""
    header = ("| model | depth | ngf | params | PSNR dB | SSIM | input PSNR / SSIM | colour transfer PSNR / SSIM "
              "| network ms | filter ms | speed-up |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for label, r in zip(row_labels(results), results, strict=True):
        base, transfer = r["baselines"]["input"], r["baselines"]["colour_transfer"]
        transfer_text = ("missing" if transfer is None
                         else f"{_fmt(transfer['psnr_db'], 2)} / {_fmt(transfer['ssim'], 4)}")
        speedup = "—" if r["speedup"] is None else f"{r['speedup']:.3g}x"
        lines.append(f"| {label} | {r['depth']} | {r['ngf']} | {r['parameters']:,} | {_fmt(r['psnr_db'], 2)} "
                     f"| {_fmt(r['ssim'], 4)} | {_fmt(base['psnr_db'], 2)} / {_fmt(base['ssim'], 4)} "
                     f"| {transfer_text} | {_fmt(r['network_ms']['median'], 2)} | {_fmt(r['filter_ms'], 2)} "
                     f"| {speedup} |")
    return "\n".join(lines)


def plot_quality_vs_depth(results: list[dict], path) -> Path:
    """PSNR (left) and SSIM (right) against network depth, one line per width (ngf),
    the baselines as horizontal lines; written as a PNG. Needs matplotlib (the bench extra)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("plotting needs matplotlib: pip install 'postfx[bench]'") from None
    if not results:
        raise InputError("nothing to plot: no results")
    figure = Figure(figsize=(10, 4.2), dpi=110)
    FigureCanvasAgg(figure)              # an off-screen canvas: no pyplot, no global backend
    first = results[0]
    for axis, key, label in zip(figure.subplots(1, 2), ("psnr_db", "ssim"), ("PSNR (dB)", "SSIM"), strict=True):
        for ngf in sorted({r["ngf"] for r in results}):
            row = sorted((r for r in results if r["ngf"] == ngf), key=lambda r: r["depth"])
            axis.plot([r["depth"] for r in row], [r[key] for r in row], "o-", label=f"network, ngf {ngf}")
            for r in row:
                axis.annotate(r["model"], (r["depth"], r[key]), textcoords="offset points", xytext=(4, 4),
                              fontsize=7)
        for name, style, text in (("input", "--", "input (unstylized)"),
                                  ("colour_transfer", ":", "global colour transfer")):
            figures = first["baselines"][name]
            if figures is not None and math.isfinite(figures[key]):
                axis.axhline(figures[key], linestyle=style, color="grey" if name == "input" else "tab:orange",
                             label=text)
        axis.set_xlabel("network depth (levels)")
        axis.set_ylabel(label)
        axis.set_xticks(sorted({r["depth"] for r in results}))
        axis.margins(y=0.08)             # a baseline at SSIM ~1 stays off the frame's edge
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    width, height = first["frame_size"]
    figure.suptitle(f"{first['style']}: {first['views']} held-out views, {width}x{height}", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())
    return Path(path)
