"""`postfx demo --headless`: render N frames of the animated fly-through through
EGL (no display), write them as an MP4 (imageio-ffmpeg) or PNG frames, plus a
before | after contact sheet."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..files import atomic_write
from ..gl.context import headless_context
from ..gl.readback import read_rgb
from .frame import DemoFrame

CONTACT_ROWS = 4          # frames shown on the contact sheet
FPS = 30


def _save_png(path: Path, rgb: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


class _VideoSink:
    """MP4 through imageio-ffmpeg, or numbered PNGs when `out` is a folder / .png pattern."""

    @staticmethod
    def check(out: Path) -> None:
        """Refuse an output that cannot be written, before any frame is rendered."""
        if out.suffix.lower() == ".mp4":
            parent = out.parent if str(out.parent) else Path(".")
            if out.is_dir() or not parent.is_dir():
                raise InputError(f"--out {out}: " + ("is a folder; name the .mp4 file" if out.is_dir() else
                                                     f"the folder {parent} does not exist; create it first"))
        elif out.suffix != "":
            raise InputError(f"--out {out}: use a .mp4 file or a folder for PNG frames")
        elif out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: exists and is not a folder for PNG frames")

    def __init__(self, out: Path, size):
        self.check(out)
        self.out, self.size, self.frames_written = out, size, 0
        self.png_dir = None
        if out.suffix.lower() == ".mp4":
            try:
                import imageio_ffmpeg
            except ImportError:
                raise InputError("writing MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                                 "or pass --out FOLDER/ for PNG frames") from None
            self.tmp = out.with_name(f".tmp-{out.name}")
            self.writer = imageio_ffmpeg.write_frames(str(self.tmp), size, fps=FPS, quality=7,
                                                      macro_block_size=1, ffmpeg_log_level="error")
            self.writer.send(None)
        elif out.suffix == "":
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(f"--out {out}: cannot make the folder for PNG frames ({e})") from None
            self.png_dir = out

    def write(self, rgb: np.ndarray) -> None:
        if self.png_dir is not None:
            _save_png(self.png_dir / f"frame_{self.frames_written:05d}.png", rgb)
        else:
            self.writer.send(np.ascontiguousarray(rgb))
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        if self.png_dir is None:
            self.writer.close()
            if ok:
                self.tmp.replace(self.out)
            else:
                self.tmp.unlink(missing_ok=True)


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], gap: int = 4) -> np.ndarray:
    """Rows of before | after, white gaps."""
    h, w = pairs[0][0].shape[:2]
    sheet = np.full((len(pairs) * (h + gap) - gap, 2 * w + gap, 3), 255, np.uint8)
    for i, (before, after) in enumerate(pairs):
        y = i * (h + gap)
        sheet[y:y + h, :w] = before
        sheet[y:y + h, w + gap:] = after
    return sheet


def render_headless(frames: int, size, out, *, style=None, seed: int = 0, internal_scale: float = 1.0,
                    strength: float = 1.0, fp16: bool = False, frame_budget_ms: float | None = None,
                    temporal: float = 0.0, log="stderr") -> dict:
    """Returns a summary: output paths, frames, mean / median ms for scene and pass, fps.
    log: a text stream for the per-frame line, None for none; "stderr" is the sys.stderr
    of the moment of the call (not of the import, which a redirect may since have closed)."""
    if log == "stderr":
        log = sys.stderr
    if frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    out = Path(out)
    _VideoSink.check(out)
    ctx = headless_context()
    demo = DemoFrame(ctx, size, style=style, seed=seed, internal_scale=internal_scale, strength=strength, fp16=fp16,
                     frame_budget_ms=frame_budget_ms, temporal=temporal)
    sink = _VideoSink(out, demo.size)
    contact_at = set(np.linspace(0, frames - 1, min(CONTACT_ROWS, frames)).round().astype(int).tolist())
    pairs, scene_ms, pass_ms, frame_ms = [], [], [], []
    # A terminal gets one line rewritten each frame; a log file or pipe a line per tenth of the run.
    live = log is not None and hasattr(log, "isatty") and log.isatty()
    logged_at = set(np.linspace(1, frames, min(10, frames)).round().astype(int).tolist())
    ok = False
    try:
        for i in range(frames):
            t = i / FPS
            start = time.perf_counter()
            stylized = demo.render(demo.scene.camera_path(t), t)
            rgb = read_rgb(stylized)
            frame_ms.append((time.perf_counter() - start) * 1000)
            scene_ms.append(demo.times.scene_ms)
            pass_ms.append(demo.times.pass_ms)
            sink.write(rgb)
            if i in contact_at:
                pairs.append((read_rgb(demo.target.color), rgb))
            if log is not None and (live or i + 1 in logged_at):
                line = f"frame {i + 1}/{frames}  scene {scene_ms[-1]:.1f} ms  pass {pass_ms[-1]:.1f} ms"
                print("\r" + line if live else line, end="" if live else "\n", file=log, flush=True)
        ok = True
    finally:
        sink.close(ok)
        demo.release()
        if live:
            print(file=log)
    sheet_path = (out.with_suffix(".contact.png") if out.suffix else out / "contact.png")
    _save_png(sheet_path, contact_sheet(pairs))
    return {"out": str(out), "contact_sheet": str(sheet_path), "frames": frames, "size": list(demo.size),
            "style": demo.style, "scene_ms_median": float(np.median(scene_ms)),
            "pass_ms_median": float(np.median(pass_ms)), "frame_ms_median": float(np.median(frame_ms)),
            "fps": 1000.0 / float(np.median(frame_ms))}
