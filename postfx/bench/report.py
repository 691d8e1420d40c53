"""What `postfx bench` writes: the environment it ran in, every cell as CSV and
JSON, markdown tables, and fps-vs-depth plots (matplotlib, imported lazily)."""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from ..files import json_ready

SCHEMA = "postfx-bench/1"
CHECKOUT = Path(__file__).resolve().parents[2]          # postfx/bench/report.py -> the repository


def is_checkout() -> bool:
    """True when these modules run from a source checkout (editable install or
    script), not from an installed wheel."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "benchmarks").is_dir()


def renderer_slug(gl_renderer: str) -> str:
    """'llvmpipe (LLVM 15.0.6, 256 bits)' -> 'llvmpipe';
    'NVIDIA H100 80GB HBM3/PCIe/SSE2' -> 'nvidia-h100-80gb-hbm3'."""
    name = re.split(r"[/(]", gl_renderer, maxsplit=1)[0]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-renderer"


def default_out_dir(gl_renderer: str) -> Path:
    if is_checkout():
        return CHECKOUT / "benchmarks" / "results" / renderer_slug(gl_renderer)
    return Path.cwd() / "postfx-bench"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_state() -> dict | None:
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "uncommitted_changes": bool(dirty)}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment(ctx, torch_settings: dict | None) -> dict:
    """The machine, GL device and libraries a run measured."""
    import moderngl
    import numpy

    import postfx
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = ctx.info
    env = {
        "gl": {"renderer": str(info.get("GL_RENDERER")), "version": str(info.get("GL_VERSION")),
               "vendor": str(info.get("GL_VENDOR"))},
        "host": {"cpu": _cpu_model(), "cores_usable": cores, "cpu_count": os.cpu_count(),
                 "platform": platform.platform(), "python": sys.version.split()[0]},
        "libraries": {"postfx": postfx.__version__, "moderngl": moderngl.__version__, "numpy": numpy.__version__},
        "source": {"checkout": CHECKOUT.name if is_checkout() else None,     # its folder name: no machine paths
                   "git": _git_state() if is_checkout() else None},
        "load_average_at_start": load_average(),
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if torch_settings is not None:
        import torch
        t = {"version": torch.__version__, **torch_settings,
             "mkldnn": bool(torch.backends.mkldnn.is_available()), "cuda_available": torch.cuda.is_available()}
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            t.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), device=props.name,
                     capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1))
        env["torch"] = t
    return env


# --- files -------------------------------------------------------------------------

def write_json(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(json_ready(record), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, cells: list[dict], fields: tuple) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        for cell in cells:
            row = {}
            for name in fields:
                value = cell.get(name)
                if isinstance(value, list):
                    value = " ".join(f"{v:.4f}" for v in value)
                elif isinstance(value, float):
                    value = f"{value:.6g}"
                row[name] = "" if value is None else value
            writer.writerow(row)
    return path


# --- markdown ------------------------------------------------------------------------

def _num(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _frame(cell: dict) -> str:
    text = f"{cell['width']}×{cell['height']}"
    if cell.get("run_width") and (cell["run_width"], cell["run_height"]) != (cell["width"], cell["height"]):
        text += f" (run {cell['run_width']}×{cell['run_height']})"
    return text


def grid_table(cells: list[dict]) -> str:
    groups: dict = {}
    for cell in cells:
        groups.setdefault((cell["depth"], cell["ngf"], cell["width"], cell["height"]), []).append(cell)
    with_naive = any(c["backend"] == "gl-naive" and c["status"] == "ok" for c in cells)
    lines = ["| depth | ngf | frame | GFLOP / frame | backend | min ms | median ms | max ms | fps | GFLOP/s "
             "| % of ceiling |" + (" × gl-naive |" if with_naive else "") + " note |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if with_naive else "") + "---|"]
    for key in sorted(groups):
        members = groups[key]
        naive = next((c for c in members if c["backend"] == "gl-naive" and c["status"] == "ok"), None)
        for cell in members:
            ok = cell["status"] == "ok"
            speedup = naive["median_ms"] / cell["median_ms"] if ok and naive else None
            fraction = None if cell["ceiling_fraction"] is None else 100 * cell["ceiling_fraction"]
            note = "" if ok else f"skipped: {cell['skip_reason']}"
            lines.append(f"| {cell['depth']} | {cell['ngf']} | {_frame(cell)} | {cell['gflop_per_frame']:.3g} "
                         f"| {cell['backend']} | {_num(cell['min_ms'], '.2f')} | {_num(cell['median_ms'], '.2f')} "
                         f"| {_num(cell['max_ms'], '.2f')} | {_num(cell['fps'], '.2f')} "
                         f"| {_num(cell['gflops'], '.2f')} | {_num(fraction, '.1f', ' %')} |"
                         + (f" {_num(speedup, '.1f', '×')} |" if with_naive else "")
                         + f" {note.replace('|', '/')} |")
    return "\n".join(lines)


def gl_vs_torch_table(cells: list[dict]) -> str | None:
    """torch median ÷ GL optimized median, per group: > 1 means the GL pass is faster."""
    groups: dict = {}
    for cell in cells:
        if cell["status"] == "ok":
            groups.setdefault((cell["depth"], cell["ngf"], cell["width"], cell["height"]), {})[cell["backend"]] = cell
    rows = []
    for key in sorted(groups):
        members = groups[key]
        for gl in ("gl-opt", "gl-opt-fp16"):
            if gl not in members:
                continue
            for name, cell in members.items():
                if cell["family"] == "torch":
                    rows.append(f"| {key[0]} | {key[1]} | {_frame(cell)} | {gl} | {name} "
                                f"| {members[gl]['median_ms']:.2f} | {cell['median_ms']:.2f} "
                                f"| {cell['median_ms'] / members[gl]['median_ms']:.2f}× |")
    if not rows:
        return None
    return "\n".join(["| depth | ngf | frame | GL | torch | GL median ms | torch median ms | torch ÷ GL |",
                      "|---|---|---|---|---|---|---|---|", *rows])


def whole_frame_table(cells: list[dict]) -> str:
    lines = ["| frame | depth | min ms | median ms | max ms | fps | scene ms (median) | pass ms (median) | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cell in sorted(cells, key=lambda c: (c["width"] * c["height"], c["depth"])):
        ok = cell["status"] == "ok"
        note = "" if ok else f"skipped: {cell['skip_reason']}"
        lines.append(f"| {cell['width']}×{cell['height']} | {cell['depth'] or 'scene only'} "
                     f"| {_num(cell['min_ms'], '.2f')} | {_num(cell['median_ms'], '.2f')} "
                     f"| {_num(cell['max_ms'], '.2f')} "
                     f"| {_num(cell['fps'], '.2f')} | {_num(cell['scene_median_ms'], '.2f')} "
                     f"| {_num(cell['pass_median_ms'], '.2f')} | {note.replace('|', '/')} |")
    return "\n".join(lines)


def markdown(record: dict) -> str:
    env, cfg = record["environment"], record["config"]
    parts = [f"# postfx bench: {env['gl']['renderer']}", "",
             f"- GL: {env['gl']['renderer']}, OpenGL {env['gl']['version']} ({env['gl']['vendor']})",
             f"- host: {env['host']['cpu']}, {env['host']['cores_usable']} cores usable, {env['host']['platform']}"]
    if "torch" in env:
        t = env["torch"]
        parts.append(f"- torch {t['version']}: {t['num_threads']} CPU threads"
                     + (f"; CUDA {t['cuda']}, cuDNN {t['cudnn']}, {t['device']} (sm {t['capability']})"
                        if t.get("cuda_available") else "; no CUDA"))
    ceiling = record.get("ceiling")
    if ceiling and ceiling.get("best_gflops"):
        parts.append(f"- compute ceiling: best {ceiling['best_gflops']:.1f} GFLOP/s, worst "
                     f"{ceiling['worst_gflops']:.1f} over {ceiling['probes']} probes "
                     f"({ceiling['work_groups']} work groups of 64)")
    parts.append(f"- command: `{cfg['command']}`")
    parts.append(f"- {cfg['warmup']} warm-up + {cfg['repeat']} timed runs per cell, after a first run; "
                 f"--max-seconds-per-cell {cfg['max_seconds_per_cell']:g}")
    load = [env.get("load_average_at_start"), record.get("load_average_at_end")]
    if all(load):
        parts.append(f"- load average (1 / 5 / 15 min) at start {load[0]}, at end {load[1]}")
    if record.get("cells"):
        parts += ["", "## Network (reference U-Net, RGBD -> RGB)", "", grid_table(record["cells"])]
        versus = gl_vs_torch_table(record["cells"])
        if versus:
            parts += ["", "## GL optimized vs torch (same weights, same frame)", "", versus]
    if record.get("whole_frame"):
        parts += ["", "## Whole frame (demo town + postfx pass, reference U-Net ngf 16, optimized fp32)", "",
                  whole_frame_table(record["whole_frame"])]
    parts += ["", "## Notes", ""] + [f"- {note}" for note in record["notes"]]
    return "\n".join(parts) + "\n"


# --- plots ---------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_grid(cells: list[dict], path: Path) -> Path | None:
    """fps vs depth, one line per frame size x backend, one panel per ngf; None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    ok = [c for c in cells if c["status"] == "ok"]
    ngfs = sorted({c["ngf"] for c in ok}) or [None]
    fig, axes = plt.subplots(1, len(ngfs), figsize=(6.5 * len(ngfs), 4.8), squeeze=False)
    for ax, ngf in zip(axes[0], ngfs, strict=True):
        lines: dict = {}
        for c in ok:
            if c["ngf"] == ngf:
                lines.setdefault((c["width"] * c["height"], c["width"], c["height"], c["backend"]), []).append(c)
        for (_, width, height, backend), members in sorted(lines.items()):
            members.sort(key=lambda c: c["depth"])
            ax.plot([c["depth"] for c in members], [c["fps"] for c in members], marker="o",
                    linestyle="--" if backend.startswith("torch") else "-", label=f"{width}×{height} {backend}")
        ax.set_yscale("log")
        _integer_ticks(ax)
        ax.set_xlabel("U-Net depth")
        ax.set_ylabel("fps (median frame time)")
        ax.set_title(f"reference U-Net, ngf {ngf}")
        ax.grid(True, which="both", alpha=0.3)
        if lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_whole_frame(cells: list[dict], path: Path) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for width, height in sorted({(c["width"], c["height"]) for c in cells}, key=lambda s: s[0] * s[1]):
        members = sorted((c for c in cells if (c["width"], c["height"]) == (width, height) and c["status"] == "ok"),
                         key=lambda c: c["depth"])
        stylized = [c for c in members if c["depth"]]
        line = ax.plot([c["depth"] for c in stylized], [c["fps"] for c in stylized], marker="o",
                       label=f"{width}×{height} scene + pass")
        for c in members:
            if not c["depth"]:
                ax.axhline(c["fps"], linestyle=":", color=line[0].get_color(), label=f"{width}×{height} scene only")
    ax.set_yscale("log")
    _integer_ticks(ax)
    ax.set_xlabel("U-Net depth (ngf 16)")
    ax.set_ylabel("fps (median frame time)")
    ax.set_title("whole frame: demo town + postfx pass")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
