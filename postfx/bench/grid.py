"""The measurement loops of `postfx bench`: the network grid (reference U-Net
depth x ngf x frame size x backend) and the whole frame (demo scene + pass).

A grid group is one (depth, ngf, frame size): its backends are built, run once
(the first run, which decides whether the cell is too slow to time), warmed up,
then timed round after round -- every backend once per round, a compute-ceiling
probe between rounds -- so load from other processes hits them alike. Figures
per cell: min / median / max of the timed runs; fps, GFLOP/s and the fraction
of the ceiling from the median; the ceiling is the best probe of the group.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from postfx import model_format as fmt
from postfx.errors import DeviceLimitError, FrameTooLarge

from ..gl.timing import timer_query
from ..testing.unet import reference_unet, torch_unet
from . import runners
from .ceiling import measure_ceiling, saturating_work_groups

CELL_FIELDS = (
    "kind", "backend", "family", "kernels", "precision", "device", "copies",
    "depth", "ngf", "width", "height", "run_width", "run_height", "macs_per_pixel", "gflop_per_frame",
    "status", "skip_reason", "first_run_ms", "warmup_runs", "runs", "times_ms",
    "min_ms", "median_ms", "max_ms", "fps", "gflops", "gflops_best", "ceiling_gflops", "ceiling_fraction",
    "device_timer_median_ms", "tuning_s", "kernel_choices",
)
WHOLE_FRAME_FIELDS = (
    "kind", "depth", "ngf", "width", "height", "kernels", "precision", "status", "skip_reason",
    "first_run_ms", "warmup_runs", "runs", "times_ms", "min_ms", "median_ms", "max_ms", "fps",
    "scene_median_ms", "pass_median_ms", "pass_timing",
)
CALIBRATION_SIZE = (256, 256)       # (W, H) of the frame a slow backend's speed is estimated on
ESTIMATE_MARGIN = 2.0               # skip unseen only when the estimate is this far past the limit
WHOLE_FRAME_TIME = 4.0              # seconds into the demo fly-through: the view every whole-frame cell draws


@dataclass
class GridConfig:
    depths: list[int]
    ngfs: list[int]
    sizes: list[tuple[int, int]]                 # (W, H), measured smallest first
    backends: list[str]
    repeat: int = 5                              # timed runs per cell
    warmup: int = 2                              # runs after the first, not timed
    max_seconds: float = 10.0                    # a cell whose first run takes longer is skipped
    seed: int = 0
    keep: Callable[[str, int, int, tuple], bool] | None = None   # (backend, depth, ngf, size) -> measured?
    log: Callable[[str], None] = print


class Ceiling:
    """The compute-ceiling probe, sized once for the device, sampled between rounds."""

    def __init__(self, ctx, programs):
        self.ctx, self.programs = ctx, programs
        self.work_groups = saturating_work_groups(ctx, programs=programs)
        self.samples: list[float] = []
        self.best_by_chains: dict = {}

    def probe(self) -> float:
        result = measure_ceiling(self.ctx, programs=self.programs, seconds=0.05, work_groups=self.work_groups,
                                 repeats=2)
        if not self.samples or result["gflops"] > max(self.samples):
            self.best_by_chains = result["by_chains"]
        self.samples.append(result["gflops"])
        return result["gflops"]

    def summary(self) -> dict:
        return {"what": "shaders/ceiling_probe.comp (postfx/bench/ceiling.py): independent mat4*vec4 "
                        "multiply-add chains, nothing else; sampled between timing rounds",
                "work_groups": self.work_groups, "local_size": 64, "probes": len(self.samples),
                "best_gflops": max(self.samples, default=None), "worst_gflops": min(self.samples, default=None),
                "best_by_chains": {str(k): v for k, v in self.best_by_chains.items()}}


def is_software_renderer(renderer: str) -> bool:
    return any(name in renderer.lower() for name in ("llvmpipe", "softpipe", "swrast", "swiftshader", "lavapipe"))


def _stats(cell: dict, times: list[float], ceiling: float | None, ceiling_applies: bool) -> None:
    ms = [t * 1e3 for t in times]
    median = statistics.median(ms)
    cell.update(status="ok", runs=len(ms), times_ms=[round(t, 4) for t in ms], min_ms=min(ms), median_ms=median,
                max_ms=max(ms), fps=1e3 / median, gflops=cell["gflop_per_frame"] / (median / 1e3),
                gflops_best=cell["gflop_per_frame"] / (min(ms) / 1e3))
    if ceiling and ceiling_applies:
        cell.update(ceiling_gflops=ceiling, ceiling_fraction=cell["gflops"] / ceiling)


def _skip(cell: dict, reason: str) -> None:
    cell.update(status="skipped", skip_reason=reason)


def _new_cell(backend: runners.Backend, depth: int, ngf: int, size, run_size, macs_per_pixel: float) -> dict:
    (width, height), (run_h, run_w) = size, run_size
    cell = dict.fromkeys(CELL_FIELDS)
    cell.update(kind="network", backend=backend.name, family=backend.family, kernels=backend.kernels or None,
                precision=backend.precision, device=backend.device, copies=runners.COPIES if backend.copies else None,
                depth=depth, ngf=ngf, width=width, height=height, run_width=run_w, run_height=run_h,
                macs_per_pixel=macs_per_pixel, gflop_per_frame=2 * macs_per_pixel * run_h * run_w / 1e9,
                status="pending", warmup_runs=0, runs=0, times_ms=[])
    return cell


class Grid:
    def __init__(self, ctx, programs, config: GridConfig, ceiling: Ceiling):
        self.ctx, self.programs, self.config, self.ceiling = ctx, programs, config, ceiling
        self.timer_query = timer_query(ctx)
        self.rates: dict = {}                     # (backend, depth, ngf) -> (GFLOP/s, frame it was seen at)
        self.cells: list[dict] = []

    @staticmethod
    def ceiling_applies(backend: runners.Backend) -> bool:
        """The probe bounds compute shaders (fp32 vector FMAs) on the GL device. torch's
        kernels are not bound by it: oneDNN uses the CPU's full vector width, which
        llvmpipe's shaders do not reach, and cuDNN fp16 runs on tensor cores."""
        return backend.family == "gl"

    def make_runner(self, backend, model, depth, ngf, run_h, run_w):
        frame = runners.input_frame(run_h, run_w, self.config.seed)
        if backend.family == "gl":
            return runners.GLRunner(self.ctx, self.programs, model, run_h, run_w, backend, frame, self.timer_query)
        return runners.TorchRunner(self.ctx, lambda: torch_unet(depth, ngf, seed=self.config.seed), model,
                                   run_h, run_w, backend, frame)

    def estimate_seconds(self, backend, model, depth, ngf, gflop) -> tuple[float, str] | None:
        """Seconds one frame of `gflop` should take, from this backend's speed on the same
        network at a smaller frame (measured earlier or by a calibration frame now)."""
        key = (backend.name, depth, ngf)
        if key not in self.rates:
            cal_h, cal_w = fmt.run_size(model.graph, CALIBRATION_SIZE[1], CALIBRATION_SIZE[0])
            cal_gflop = 2 * model.macs_per_pixel * cal_h * cal_w / 1e9
            if gflop < 4 * cal_gflop:
                return None                                           # as cheap as calibrating: just run it
            try:
                runner = self.make_runner(backend, model, depth, ngf, cal_h, cal_w)
            except runners.Skip:
                return None
            try:
                runner.run()                                          # compiles, allocates
                self.rates[key] = (cal_gflop / runner.run(), f"{cal_w}x{cal_h}, calibration frame")
            except runners.Skip:
                return None
            finally:
                runner.release()
        rate, seen_at = self.rates[key]
        return gflop / rate, f"{rate:.3g} GFLOP/s at {seen_at}"

    def run(self) -> list[dict]:
        cfg = self.config
        sizes = sorted(cfg.sizes, key=lambda s: (s[0] * s[1], s))
        for depth in cfg.depths:
            for ngf in cfg.ngfs:
                model = reference_unet(depth, ngf, seed=cfg.seed)
                for size in sizes:
                    self.run_group(model, depth, ngf, size)
        return self.cells

    def run_group(self, model, depth: int, ngf: int, size) -> None:
        cfg = self.config
        width, height = size
        run_h, run_w = fmt.run_size(model.graph, height, width)
        group, active = [], []
        for name in cfg.backends:
            if cfg.keep is not None and not cfg.keep(name, depth, ngf, size):
                continue
            backend = runners.BACKENDS[name]
            cell = _new_cell(backend, depth, ngf, size, (run_h, run_w), model.macs_per_pixel)
            group.append(cell)
            runner = self.first_run(cell, backend, model, depth, ngf, run_h, run_w)
            if runner is not None:
                active.append((cell, runner))
        times = {id(cell): [] for cell, _ in active}

        def run_all(record: bool) -> None:
            for cell, runner in list(active):
                try:
                    seconds = runner.run()
                except runners.Skip as e:              # CUDA out of memory after all
                    _skip(cell, str(e))
                    runner.release()
                    active.remove((cell, runner))
                    continue
                if record:
                    times[id(cell)].append(seconds)

        for _ in range(cfg.warmup):
            run_all(record=False)
        for cell, _ in active:
            cell["warmup_runs"] = cfg.warmup
        probes = []
        for _ in range(cfg.repeat):
            if active:
                probes.append(self.ceiling.probe())
            run_all(record=True)
        if active:
            probes.append(self.ceiling.probe())
        for cell, runner in active:
            _stats(cell, times[id(cell)], max(probes), self.ceiling_applies(runners.BACKENDS[cell["backend"]]))
            if runner.timer_ms:
                cell["device_timer_median_ms"] = statistics.median(runner.timer_ms[-cell["runs"]:])
            self.rates[cell["backend"], depth, ngf] = (cell["gflops_best"], f"{width}x{height}")
            runner.release()
        self.cells += group
        for cell in group:
            cfg.log(describe(cell))

    def first_run(self, cell, backend, model, depth, ngf, run_h, run_w):
        """The backend built and run once; None (and the cell skipped, saying why) if it cannot
        run here or is too slow to time."""
        limit = self.config.max_seconds
        reason = runners.unavailable(backend)
        if reason:
            _skip(cell, reason)
            return None
        try:
            runner = self.make_runner(backend, model, depth, ngf, run_h, run_w)     # may not fit: Skip
        except runners.Skip as e:
            _skip(cell, str(e))
            return None
        if backend.family == "gl":
            # What ran: kernels="auto" tuned (or read its cache) while the runner was built.
            cell["tuning_s"] = runner.tuning_seconds
            cell["kernel_choices"] = {layer: str(choice) for layer, choice in runner.network.choices.items()}
        estimate = self.estimate_seconds(backend, model, depth, ngf, cell["gflop_per_frame"])
        if estimate is not None and estimate[0] > ESTIMATE_MARGIN * limit:
            runner.release()
            _skip(cell, f"estimated {estimate[0]:.3g} s per frame ({cell['gflop_per_frame']:.3g} GFLOP at "
                        f"{estimate[1]}) > {ESTIMATE_MARGIN:g} x --max-seconds-per-cell {limit:g}; not run")
            return None
        try:
            seconds = runner.run()
        except runners.Skip as e:
            runner.release()
            _skip(cell, str(e))
            return None
        cell["first_run_ms"] = seconds * 1e3
        self.rates[backend.name, depth, ngf] = (cell["gflop_per_frame"] / seconds,
                                                f"{cell['width']}x{cell['height']}, first run")
        if seconds > limit:
            runner.release()
            _skip(cell, f"first run took {seconds:.1f} s > --max-seconds-per-cell {limit:g}")
            return None
        return runner


def describe(cell: dict) -> str:
    """One progress line per cell."""
    where = f"d{cell['depth']} ngf{cell['ngf']} {cell['width']}x{cell['height']}"
    if cell["kind"] == "whole_frame":
        where = f"whole frame {cell['width']}x{cell['height']} " + (f"d{cell['depth']}" if cell["depth"]
                                                                      else "scene only")
        name = ""
    else:
        name = f" {cell['backend']}"
    if cell["status"] != "ok":
        return f"  {where}{name}: skipped ({cell['skip_reason']})"
    line = (f"  {where}{name}: {cell['min_ms']:.2f} / {cell['median_ms']:.2f} / {cell['max_ms']:.2f} ms "
            f"(min / median / max of {cell['runs']}), {cell['fps']:.2f} fps")
    if cell.get("gflops") is not None:
        line += f", {cell['gflops']:.2f} GFLOP/s"
    if cell.get("ceiling_fraction") is not None:
        line += f", {cell['ceiling_fraction']:.1%} of ceiling"
    return line


# --- whole frame ---------------------------------------------------------------------

def run_whole_frame(ctx, depths: list[int], sizes: list[tuple[int, int]], *, ngf: int = 16, repeat: int = 5,
                    warmup: int = 2, max_seconds: float = 10.0, seed: int = 0, log=print) -> list[dict]:
    """The demo town drawn and stylized by the reference U-Net of each depth (random
    weights, optimized kernels, fp32): one DemoFrame per size, the style swapped per
    depth; plus a scene-only row (depth 0). Times are one frame's wall clock,
    ctx.finish() before and after."""
    from postfx.demo.frame import DemoFrame
    cells = []
    for width, height in sizes:
        frame = DemoFrame(ctx, (width, height), style=reference_unet(depths[0], ngf, seed=seed), seed=seed)
        camera = frame.scene.camera_path(WHOLE_FRAME_TIME)
        try:
            for depth in (0, *depths):
                cell = dict.fromkeys(WHOLE_FRAME_FIELDS)
                cell.update(kind="whole_frame", depth=depth, ngf=ngf if depth else None, width=width, height=height,
                            kernels="optimized" if depth else None, precision="fp32" if depth else None,
                            status="pending", warmup_runs=0, runs=0, times_ms=[])
                cells.append(cell)
                if depth:
                    try:
                        frame.set_style(reference_unet(depth, ngf, seed=seed))
                    except (FrameTooLarge, DeviceLimitError) as e:
                        _skip(cell, f"{type(e).__name__}: {e}")
                        log(describe(cell))
                        continue
                _time_whole_frame(ctx, frame, camera, cell, stylize=bool(depth), repeat=repeat, warmup=warmup,
                                  max_seconds=max_seconds)
                log(describe(cell))
        finally:
            frame.release()
    return cells


def _time_whole_frame(ctx, frame, camera, cell, *, stylize, repeat, warmup, max_seconds) -> None:
    def one():
        ctx.finish()
        start = time.perf_counter()
        frame.render(camera, WHOLE_FRAME_TIME, stylize=stylize)
        ctx.finish()
        return time.perf_counter() - start

    try:
        first = one()
    except (FrameTooLarge, DeviceLimitError) as e:
        _skip(cell, f"{type(e).__name__}: {e}")
        return
    cell["first_run_ms"] = first * 1e3
    if first > max_seconds:
        _skip(cell, f"first run took {first:.1f} s > --max-seconds-per-cell {max_seconds:g}")
        return
    for _ in range(warmup):
        one()
    cell["warmup_runs"] = warmup
    times, scene_ms, pass_ms = [], [], []
    for _ in range(repeat):
        times.append(one())
        scene_ms.append(frame.times.scene_ms)
        pass_ms.append(frame.times.pass_ms if stylize else 0.0)
    ms = [t * 1e3 for t in times]
    median = statistics.median(ms)
    cell.update(status="ok", runs=len(ms), times_ms=[round(t, 4) for t in ms], min_ms=min(ms), median_ms=median,
                max_ms=max(ms), fps=1e3 / median, scene_median_ms=statistics.median(scene_ms),
                pass_median_ms=statistics.median(pass_ms) if stylize else None,
                pass_timing=frame.times.source if stylize else None)
