"""`postfx demo`: headless through EGL, a real glfw window under Xvfb, and no display (C2)."""
import os
import subprocess
import sys

import numpy as np
from gl_objects import difference, live_gl_objects
from PIL import Image

from postfx.demo.frame import DemoFrame
from postfx.demo.headless import render_headless
from postfx.gl.context import headless_context
from postfx.scene import linear_depth01


def _not_flat(img):
    return img.std() > 5 and img.max() > img.min()


def test_headless_writes_video_and_contact_sheet(tmp_path):
    summary = render_headless(4, (96, 64), tmp_path / "demo.mp4", log=None)
    assert (tmp_path / "demo.mp4").stat().st_size > 0
    sheet = np.asarray(Image.open(summary["contact_sheet"]).convert("RGB")).astype(int)
    before, after = sheet[:64, :96], sheet[:64, 100:]
    assert _not_flat(before) and _not_flat(after) and np.abs(before - after).mean() > 2


def _render_demo_frames(ctx, size):
    demo = DemoFrame(ctx, size, temporal=0.5)
    try:
        assert demo.render(demo.scene.camera_path(0.0), 0.0) is not None
        demo.render(demo.scene.camera_path(0.1), 0.1)         # with history
        demo.resize((size[0] - 7, size[1] + 5))
        demo.fx.internal_scale = 0.5
        demo.render(demo.scene.camera_path(0.5), 0.5)
        demo.cut()
        demo.fx.temporal = 0
        demo.render(demo.scene.camera_path(0.6), 0.6)
    finally:
        demo.release()


def test_demo_frames_leave_no_gl_objects_behind(gl_ctx):
    """The headless demo runs in postfx's long-lived context: a DemoFrame made, resized,
    rendered and released there leaves nothing behind (reliability C10 / C15)."""
    _render_demo_frames(gl_ctx, (64, 48))          # what a context keeps once (the shared timer query)
    baseline = live_gl_objects()
    for _ in range(2):
        _render_demo_frames(gl_ctx, (64, 48))
    assert difference(live_gl_objects(), baseline) == {}


def test_headless_temporal_demo_is_steadier(tmp_path):
    """The same frames with the temporal mode on change less from frame to frame, where the
    motion says the picture is the same (reprojected, disocclusions masked)."""
    from postfx.temporal import warping_error
    errors = {}
    for weight in (0.0, 0.7):
        demo = DemoFrame(headless_context(), (96, 64), temporal=weight)
        try:
            frames = []
            for k in range(3):
                t = 2.0 + k / 30
                out = demo.render(demo.scene.camera_path(t), t)
                w, h = out.size
                rgb = np.flipud(np.frombuffer(out.read(), np.uint8).reshape(h, w, 4))[..., :3]
                frames.append((rgb, demo.target.read_motion(), linear_depth01(
                    demo.target.read_depth(), demo.previous[0].near, demo.previous[0].far)))
        finally:
            demo.release()
        errors[weight] = np.mean([warping_error(frames[k - 1][0], frames[k][0], frames[k][1], frames[k - 1][2])[0]
                                  for k in (1, 2)])
    assert errors[0.7] < 0.7 * errors[0.0]


def test_headless_png_frames(tmp_path):
    render_headless(2, (64, 48), tmp_path / "frames", log=None)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["contact.png", "frame_00000.png",
                                                                       "frame_00001.png"]


def test_C2_no_display_gives_a_clear_message_and_nonzero_exit():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "postfx", "demo"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "--headless" in result.stderr and "Traceback" not in result.stderr


WINDOW_SCRIPT = """
import sys
import numpy as np
from PIL import Image
from postfx.demo.window import DemoWindow

window = DemoWindow((160, 96), screenshot_dir=sys.argv[1])
try:
    assert window.run(max_frames=3) == 3
    stylized = np.asarray(Image.open(window.screenshot())).astype(int)
    window.handle_key(" ", window.glfw.KEY_SPACE)           # effect off
    window.run(max_frames=1)
    raw = np.asarray(Image.open(window.screenshot())).astype(int)
    window.handle_key(" ", window.glfw.KEY_SPACE)
    for name in ("v", "3", "-", "="):                        # split, scale 1/2, strength
        window.handle_key(name)
    assert window.demo.fx.internal_scale == 0.5
    assert window.run(max_frames=1) == 1
    assert "fps" in window.title(10.0) and "[Space]" in window.title(10.0)
    window.handle_key("t")                                   # temporal mode, fed the scene's motion
    assert window.demo.fx.temporal > 0 and window.run(max_frames=2) == 2 and "temporal" in window.title(10.0)
    window.handle_key("m")                                   # the motion debug view
    window.run(max_frames=1)
    motion = np.asarray(Image.open(window.screenshot())).astype(int)
    window.handle_key("m")
    window.handle_key("t")
    assert window.demo.fx.temporal == 0
    window._framebuffer_size = lambda: None                  # minimized (C5): nothing drawn
    assert window.draw_frame(0.0, 0.0) is False
finally:
    window.close()
assert stylized.std() > 5 and raw.std() > 5 and np.abs(stylized - raw).mean() > 2
# grey where still, red / green where moved, blue the depth: the camera path moves
assert np.abs(motion[..., :2] - 128).max() > 20 and motion[..., 2].std() > 5
print("ok")
"""


def test_window_renders_stylized_frames_and_keys(xvfb_display, tmp_path):
    # A process of its own, as `postfx demo` runs: a GLX window beside the suite's EGL
    # context in one process is refused by Mesa's GLX (BadAccess on MakeCurrent).
    env = dict(os.environ, DISPLAY=xvfb_display)
    result = subprocess.run([sys.executable, "-c", WINDOW_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
    assert len(list(tmp_path.glob("postfx-*.png"))) == 3


FREE_FLY_SCRIPT = """
import ctypes
import math
import sys
import time
from postfx.demo.window import DemoWindow, MOUSE_TURN

# Real X input through the XTest extension: the X server -> glfw -> the demo's callbacks.
try:
    x11, xtst = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXtst.so.6")
except OSError as e:
    sys.exit(f"this test sends X input through libXtst (Debian: libxtst6, scripts/install.sh): {e}")
x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
x11.XStringToKeysym.restype, x11.XStringToKeysym.argtypes = ctypes.c_ulong, [ctypes.c_char_p]
x11.XKeysymToKeycode.restype, x11.XKeysymToKeycode.argtypes = ctypes.c_ubyte, [ctypes.c_void_p, ctypes.c_ulong]
x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
display = x11.XOpenDisplay(None)
assert display, "no X display"

window = DemoWindow((160, 96))
glfw = window.glfw


def settle(what, done):
    # Events reach glfw asynchronously: poll until the demo has seen them.
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "X event never arrived: " + what
        glfw.poll_events()
        time.sleep(0.005)


def key(name, glfw_key, down):
    code = x11.XKeysymToKeycode(display, x11.XStringToKeysym(name.encode()))
    xtst.XTestFakeKeyEvent(display, code, int(down), 0)
    x11.XSync(display, 0)
    settle(f"{name} {'down' if down else 'up'}", lambda: (glfw_key in window._keys_down) == down)


wx, wy = glfw.get_window_pos(window.window)


def pointer(x, y):
    xtst.XTestFakeMotionEvent(display, -1, wx + x, wy + y, 0)
    x11.XSync(display, 0)
    settle(f"pointer to {x},{y}", lambda: window._mouse == (x, y))


try:
    # The glfw callbacks are the demo's handlers.
    assert glfw.set_key_callback(window.window, window._on_key) == window._on_key
    assert glfw.set_cursor_pos_callback(window.window, window._on_mouse) == window._on_mouse
    glfw.focus_window(window.window)
    pointer(20, 20)                      # keys go to the window under the pointer
    assert window.run(max_frames=1) == 1

    key("f", glfw.KEY_F, True)
    key("f", glfw.KEY_F, False)
    assert window.state.free_fly and window._mouse is None
    start = window.camera
    window.run(max_frames=2)
    assert window.camera == start, "free-fly with no key held must keep the camera still"

    key("w", glfw.KEY_W, True)
    window.run(max_frames=3)
    key("w", glfw.KEY_W, False)
    moved = window.camera
    delta = [b - a for a, b in zip(start.position, moved.position)]
    ahead = sum(d * f for d, f in zip(delta, start.forward))
    sideways = math.sqrt(max(0.0, sum(d * d for d in delta) - ahead * ahead))
    assert ahead > 0.05 and sideways < 1e-6 * ahead, (start.position, moved.position, start.forward)
    assert (moved.yaw, moved.pitch) == (start.yaw, start.pitch)
    window.run(max_frames=1)
    assert window.camera == moved, "W released: the camera must stop"

    pointer(40, 50)                      # the first position only anchors the mouse
    assert window.camera == moved
    pointer(100, 30)                     # 60 px right, 20 px up
    turned = window.camera
    assert math.isclose(turned.yaw - moved.yaw, 60 * MOUSE_TURN, rel_tol=1e-9), (moved.yaw, turned.yaw)
    assert math.isclose(turned.pitch - moved.pitch, 20 * MOUSE_TURN, rel_tol=1e-9), (moved.pitch, turned.pitch)
    assert turned.position == moved.position

    for name, glfw_key, sign in (("e", glfw.KEY_E, 1), ("q", glfw.KEY_Q, -1)):
        before = window.camera
        key(name, glfw_key, True)
        window.run(max_frames=2)
        key(name, glfw_key, False)
        after = window.camera
        rise = after.position[1] - before.position[1]
        assert sign * rise > 0.05, (name, before.position, after.position)
        assert after.position[0] == before.position[0] and after.position[2] == before.position[2], name
finally:
    window.close()
print("ok")
"""


def test_free_fly_keys_and_mouse_move_the_camera(xvfb_display):
    """F, then W / mouse / E / Q as real X input events (XTest) under Xvfb."""
    env = dict(os.environ, DISPLAY=xvfb_display)
    result = subprocess.run([sys.executable, "-c", FREE_FLY_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_headless_demo_time_slices_a_network_with_a_frame_budget(tmp_path):
    """`postfx demo --frame-budget-ms`: the pass spreads the network over several frames."""
    out = subprocess.run([sys.executable, "-m", "postfx", "demo", "--headless", "--frames", "4", "--size", "64x48",
                          "--out", str(tmp_path / "frames"), "--frame-budget-ms", "0.001"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 4
    from postfx.demo.frame import DemoFrame
    from postfx.gl.context import headless_context
    from postfx.scene.camera import Camera
    demo = DemoFrame(headless_context(), (64, 48), frame_budget_ms=0.001, fp16=True, temporal=0.5)
    try:
        demo.render(Camera((0.0, 2.0, 10.0)), 0.0)
        assert demo.fx.frames_per_result == len(demo.fx._network.dispatches) > 1
        demo.set_style("watercolor")                   # keeps the pass's settings
        assert (demo.fx.frame_budget_ms, demo.fx.fp16, demo.fx.temporal) == (0.001, True, 0.5)
    finally:
        demo.release()


def test_the_window_demo_can_be_scripted(xvfb_display, tmp_path):
    """--frames N draws N frames and exits; --screenshot keeps the last one (under Xvfb)."""
    shot = tmp_path / "last.png"
    env = dict(os.environ, DISPLAY=xvfb_display)
    result = subprocess.run([sys.executable, "-m", "postfx", "demo", "--frames", "3", "--size", "160x96",
                             "--screenshot", str(shot)], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 frames drawn" in result.stdout
    with Image.open(shot) as img:
        pixels = np.asarray(img)
    assert pixels.shape == (96, 160, 3) and pixels.std() > 5, "the stylized town, not a blank frame"


def test_the_headless_log_is_the_stderr_of_the_call(tmp_path, capsys):
    """The per-frame line goes to sys.stderr as it is when called (a redirect made after
    import, then closed, must not be written to)."""
    import contextlib
    import io
    closed = io.StringIO()
    with contextlib.redirect_stderr(closed):
        import importlib

        from postfx.demo import headless
        importlib.reload(headless)
    closed.close()
    headless.render_headless(1, (32, 24), tmp_path / "one")
    assert "frame 1/1" in capsys.readouterr().err


def test_first_demo_frame_tunes_inside_the_timed_frame(gl_ctx, monkeypatch, tmp_path):
    """A new user's first frame: no kernel cache, a tuning budget. The tuner times kernels
    while the demo times the frame (one GL timer query per context can run at a time)."""
    monkeypatch.setenv("POSTFX_TUNING_BUDGET_S", "5")
    monkeypatch.setenv("POSTFX_CACHE_DIR", str(tmp_path))
    demo = DemoFrame(gl_ctx, (64, 48))
    try:
        assert demo.render(demo.scene.camera_path(0.0), 0.0) is not None
        assert demo.times.pass_ms > 0
        assert any(tmp_path.iterdir()), "the tuner ran and cached its choices"
    finally:
        demo.release()
    assert gl_ctx.error == "GL_NO_ERROR"


def test_headless_progress_is_lines_in_a_log_and_one_rewritten_line_on_a_terminal(tmp_path):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    piped, terminal = io.StringIO(), Terminal()
    render_headless(20, (32, 24), tmp_path / "piped", log=piped)
    render_headless(3, (32, 24), tmp_path / "terminal", log=terminal)
    lines = piped.getvalue().splitlines()
    assert "\r" not in piped.getvalue() and len(lines) == 10
    assert lines[0].startswith("frame 1/20 ") and lines[-1].startswith("frame 20/20 ")
    assert terminal.getvalue().count("\r") == 3 and terminal.getvalue().endswith("\n")
