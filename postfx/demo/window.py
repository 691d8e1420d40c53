"""`postfx demo`: a glfw window (OpenGL 4.3 core) showing the demo scene with
a style applied live by PostFX.

Keys (also in the window title):
  Space  effect on / off          V      split screen before | after
  Tab    next bundled style       1-4    internal scale 1, 3/4, 1/2, 1/4
  - / =  effect strength          F      free-fly (WASD + mouse, Q/E down/up) / camera path
  T      temporal mode on / off   M      show the motion vectors (debug view)
  P      save a screenshot        Esc    quit
"""
from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import PostFXError
from ..files import atomic_write
from ..gl.context import release_current
from ..gl.programs import shader_source
from ..temporal import TEMPORAL_WEIGHT
from .frame import DemoFrame

HELP = ("[Space] effect  [V] split  [Tab] style  [1-4] scale  [-/=] strength  [T] temporal  [M] motion  [F] fly  "
        "[P] shot  [Esc] quit")
MOTION_GAIN = 25.0          # the debug view: grey + this x the motion in texture coordinates
SCALES = {"1": 1.0, "2": 0.75, "3": 0.5, "4": 0.25}
FLY_SPEED = 12.0            # metres per second
MOUSE_TURN = 0.0025         # radians per pixel


class NoDisplay(PostFXError):
    """No window system to open a window on."""


@dataclass
class DemoState:
    effect: bool = True
    split: bool = False
    free_fly: bool = False
    show_motion: bool = False
    frames: int = 0


def _no_display_message() -> str:
    return ("no display to open a window on (DISPLAY / WAYLAND_DISPLAY unset or unusable). Run headless: "
            "`postfx demo --headless --frames 120 --out demo.mp4`, or start a virtual display "
            "(`Xvfb :99 & export DISPLAY=:99`)")


class DemoWindow:
    def __init__(self, size=(1280, 720), *, style=None, seed: int = 0, internal_scale: float = 1.0,
                 strength: float = 1.0, fp16: bool = False, frame_budget_ms: float | None = None,
                 temporal: float = 0.0, screenshot_dir: str | os.PathLike = "."):
        import glfw
        import moderngl
        self.glfw = glfw
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or not glfw.init():
            raise NoDisplay(_no_display_message())
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 4)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.SCALE_TO_MONITOR, True)
        self.window = glfw.create_window(int(size[0]), int(size[1]), "postfx demo", None, None)
        if not self.window:
            glfw.terminate()
            raise NoDisplay("could not create an OpenGL 4.3 core window: " + _no_display_message())
        release_current()           # an EGL context current on this thread makes GLX refuse ours
        glfw.make_context_current(self.window)
        glfw.swap_interval(0)
        self.ctx = moderngl.create_context(require=430)
        # HiDPI: render at the framebuffer's pixel size, not the window's point size.
        self.demo = DemoFrame(self.ctx, self._framebuffer_size() or (1, 1), style=style, seed=seed,
                              internal_scale=internal_scale, strength=strength, fp16=fp16,
                              frame_budget_ms=frame_budget_ms, temporal=temporal)
        self.composite = self.ctx.program(vertex_shader=shader_source("demo_composite.vert"),
                                          fragment_shader=shader_source("demo_composite.frag"))
        self.empty_vao = self.ctx.vertex_array(self.composite, [])
        self.state = DemoState()
        self.camera = self.demo.scene.camera_path(0.0)
        self.screenshot_dir = Path(screenshot_dir)
        self.last_screenshot: Path | None = None
        self._keys_down: set[int] = set()
        self._mouse = None
        glfw.set_key_callback(self.window, self._on_key)
        glfw.set_cursor_pos_callback(self.window, self._on_mouse)

    # --- input --------------------------------------------------------------------

    def _framebuffer_size(self):
        w, h = self.glfw.get_framebuffer_size(self.window)
        return (w, h) if w > 0 and h > 0 else None      # None while minimized

    def _on_key(self, window, key, scancode, action, mods):
        glfw = self.glfw
        if action == glfw.PRESS:
            self._keys_down.add(key)
            self.handle_key(glfw.get_key_name(key, scancode) or "", key)
        elif action == glfw.RELEASE:
            self._keys_down.discard(key)

    def handle_key(self, name: str, key: int | None = None) -> None:
        """One key press (also called by tests)."""
        glfw, fx = self.glfw, self.demo.fx
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(self.window, True)
        elif key == glfw.KEY_SPACE:
            self.state.effect = not self.state.effect
        elif key == glfw.KEY_TAB:
            styles = self.demo.styles or [self.demo.style]
            current = styles.index(self.demo.style) if self.demo.style in styles else -1
            self.demo.set_style(styles[(current + 1) % len(styles)])
        elif name == "v":
            self.state.split = not self.state.split
        elif name in SCALES:
            fx.internal_scale = SCALES[name]
        elif name == "-":
            fx.strength = max(0.0, round(fx.strength - 0.1, 2))
        elif name == "=":
            fx.strength = min(1.0, round(fx.strength + 0.1, 2))
        elif name == "t":
            fx.temporal = 0.0 if fx.temporal else TEMPORAL_WEIGHT
        elif name == "m":
            self.state.show_motion = not self.state.show_motion
        elif name == "f":
            self.state.free_fly = not self.state.free_fly
            self._mouse = None
            self.demo.cut()                 # the camera jumps between the path and free-fly
        elif name == "p":
            self.screenshot()

    def _on_mouse(self, window, x, y):
        if self.state.free_fly and self._mouse is not None:
            dx, dy = x - self._mouse[0], y - self._mouse[1]
            self.camera = self.camera.turned(dx * MOUSE_TURN, -dy * MOUSE_TURN)
        self._mouse = (x, y)

    def _fly(self, dt: float) -> None:
        glfw, keys = self.glfw, self._keys_down
        axis = lambda plus, minus: float(plus in keys) - float(minus in keys)   # noqa: E731
        step = FLY_SPEED * dt
        self.camera = self.camera.moved(forward=axis(glfw.KEY_W, glfw.KEY_S) * step,
                                        right=axis(glfw.KEY_D, glfw.KEY_A) * step,
                                        up=axis(glfw.KEY_E, glfw.KEY_Q) * step)

    # --- frames --------------------------------------------------------------------

    def draw_frame(self, t: float, dt: float) -> bool:
        """Render one frame; False when minimized (nothing drawn, reliability C5)."""
        size = self._framebuffer_size()
        if size is None:
            return False
        self.demo.resize(size)
        if self.state.free_fly:
            self._fly(dt)
        else:
            self.camera = self.demo.scene.camera_path(t)
        stylized = self.demo.render(self.camera, t, stylize=self.state.effect)
        screen = self.ctx.screen
        screen.use()
        self.ctx.viewport = (0, 0, *size)
        self.demo.target.color.use(0)
        (stylized or self.demo.target.color).use(1)
        self.demo.target.motion.use(2)
        self.composite["raw_frame"] = 0
        self.composite["stylized_frame"] = 1
        self.composite["motion_frame"] = 2
        self.composite["motion_gain"] = MOTION_GAIN if self.state.show_motion else 0.0
        effect = self.state.effect
        self.composite["split"] = 0.5 if (self.state.split and effect) else (0.0 if effect else 1.0)
        self.composite["divider_width"] = 1.0 / size[0]
        self.empty_vao.render(vertices=3)
        self.state.frames += 1
        return True

    def title(self, fps: float) -> str:
        fx, times = self.demo.fx, self.demo.times
        effect = (f"{self.demo.style}  pass {times.pass_ms:.1f} ms ({times.source})  scale {fx.internal_scale:g}  "
                  f"strength {fx.strength:.1f}" + (f"  temporal {fx.temporal:g}" if fx.temporal else "")
                  if self.state.effect else "effect off")
        return f"postfx demo  {fps:.1f} fps  {effect}   {HELP}"

    def screenshot(self, path: Path | None = None) -> Path:
        """The window's current frame as a PNG: at `path`, or a time-stamped file in the
        screenshot folder (key P)."""
        size = self._framebuffer_size()
        if size is None:
            raise PostFXError("the window is minimized: nothing to save")
        data = self.ctx.screen.read(viewport=(0, 0, *size), components=3)
        rgb = np.frombuffer(data, np.uint8).reshape(size[1], size[0], 3)[::-1]
        if path is None:
            self.screenshot_dir.mkdir(parents=True, exist_ok=True)
            path = self.screenshot_dir / f"postfx-{time.strftime('%Y%m%d-%H%M%S')}-{self.state.frames:05d}.png"
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
        atomic_write(path, buffer.getvalue())
        self.last_screenshot = path
        print(f"saved {path}", file=sys.stderr)
        return path

    def run(self, max_frames: int | None = None, screenshot: Path | None = None) -> int:
        """The main loop; returns frames drawn. max_frames bounds it (scripts, tests,
        benchmarks); screenshot: save the last frame drawn there (read before it is shown)."""
        glfw = self.glfw
        start = last = last_title = time.perf_counter()
        frames_since_title, drawn = 0, 0
        while not glfw.window_should_close(self.window):
            glfw.poll_events()
            now = time.perf_counter()
            if self.draw_frame(now - start, now - last):
                drawn += 1
                if screenshot is not None and max_frames is not None and drawn >= max_frames:
                    self.screenshot(screenshot)
                glfw.swap_buffers(self.window)
                frames_since_title += 1
            else:
                glfw.wait_events_timeout(0.1)            # minimized: idle instead of spinning
            last = now
            if now - last_title > 0.5 and frames_since_title:
                glfw.set_window_title(self.window, self.title(frames_since_title / (now - last_title)))
                last_title, frames_since_title = now, 0
            if max_frames is not None and drawn >= max_frames:
                break
        return drawn

    def close(self) -> None:
        self.demo.release()
        self.empty_vao.release()
        self.composite.release()
        self.ctx.release()
        self.glfw.destroy_window(self.window)
        self.glfw.terminate()
