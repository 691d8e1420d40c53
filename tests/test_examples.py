"""Every example in examples/ runs, headless, and shows a stylized frame.

Each example runs as a subprocess of its own, as a user would start it: a GLX window
and the suite's EGL context cannot share one process (Mesa's GLX refuses MakeCurrent).
"""
import os
import subprocess
import sys
from pathlib import Path

import moderngl
import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TESTED = {"plain_glfw.py", "moderngl_window_app.py", "stylize_photo.py"}
SIZE = (160, 96)            # (W, H): small, llvmpipe runs the network on the CPU
FRAMES = 3


def run_example(name, *args, cwd, display=None):
    """Run examples/<name> with no display unless one is given; returns its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if display is not None:
        env["DISPLAY"] = display
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def assert_picture(img, size=SIZE):
    """A real frame of the requested size: not blank, not one flat colour."""
    assert img.shape == (size[1], size[0], 3)
    assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) >= 8


def assert_stylized(stylized, raw):
    assert_picture(stylized)
    assert_picture(raw)
    assert np.abs(stylized - raw).mean() > 5


def window_shots(name, tmp_path, *window_args, display=None):
    """Screenshots of the same frame: stylized, raw (--no-effect), and at strength 0."""
    shots = {}
    for label, extra in (("stylized", []), ("raw", ["--no-effect"]), ("strength0", ["--strength", "0"])):
        path = tmp_path / f"{label}.png"
        run_example(name, *window_args, "--frames", FRAMES, "--screenshot", path, *extra, cwd=tmp_path,
                    display=display)
        shots[label] = read_rgb(path)
    return shots


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


def test_plain_glfw_shows_the_stylized_frame(xvfb_display, tmp_path):
    shots = window_shots("plain_glfw.py", tmp_path, "--size", "{}x{}".format(*SIZE), display=xvfb_display)
    assert_stylized(shots["stylized"], shots["raw"])
    # strength 0 blends all the way back: the pass drew the raw frame into the window
    assert np.abs(shots["strength0"] - shots["raw"]).max() <= 1


def test_plain_glfw_temporal_mode_with_its_own_motion_vectors(xvfb_display, tmp_path):
    """The example renders motion as a TAA renderer does (RG32F, from each box's previous
    transform) and feeds it to the temporal mode: the frame blends in its history, and
    stays the stylized frame (history moved to the right place, not smeared)."""
    shots = {}
    for label, extra in (("stylized", []), ("temporal", ["--temporal", "0.5"])):
        path = tmp_path / f"{label}.png"
        run_example("plain_glfw.py", "--size", "{}x{}".format(*SIZE), "--frames", 6, "--screenshot", path, *extra,
                    cwd=tmp_path, display=xvfb_display)
        shots[label] = read_rgb(path)
    assert_picture(shots["temporal"])
    difference = np.abs(shots["temporal"] - shots["stylized"])
    assert difference.max() > 8                        # the history did something
    assert difference.mean() < 4, difference.mean()    # and it is this frame, not a smear of the last ones


def test_plain_glfw_motion_vectors_reproject_its_frames(gl_ctx):
    """The example's motion texture is right: where the boxes turn, the previous frame moved
    by it matches the current one far better than unmoved or moved the other way. Its scene
    code, in this process's EGL context (the window is not needed to draw into textures)."""
    import importlib.util

    from postfx.temporal import reproject
    spec = importlib.util.spec_from_file_location("plain_glfw_example", EXAMPLES / "plain_glfw.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    size = (192, 128)
    color, motion = gl_ctx.texture(size, 4), gl_ctx.texture(size, 2, dtype="f4")
    depth = gl_ctx.depth_texture(size)
    fbo = gl_ctx.framebuffer(color_attachments=[color, motion], depth_attachment=depth)
    motion_fbo = gl_ctx.framebuffer(color_attachments=[motion])
    program = gl_ctx.program(vertex_shader=example.VERTEX_SHADER, fragment_shader=example.FRAGMENT_SHADER)
    cube = gl_ctx.vertex_array(program, [(gl_ctx.buffer(example.cube_mesh()), "3f 3f", "in_position", "in_normal")])
    frames, viewport = [], gl_ctx.viewport
    try:
        for frame in (20, 21):                 # the boxes turn by SPIN x their rate between the two
            example.draw_scene(gl_ctx, fbo, motion_fbo, program, cube, size, frame)
            rgb = np.frombuffer(color.read(), np.uint8).reshape(size[1], size[0], 4)[::-1, :, :3]
            uv = np.frombuffer(motion.read(), np.float32).reshape(size[1], size[0], 2)[::-1]
            pixels = np.stack([uv[..., 0] * size[0], -uv[..., 1] * size[1], np.zeros(uv.shape[:2])], axis=-1)
            frames.append((rgb, pixels.astype(np.float32)))
    finally:
        for obj in (cube, program, fbo, motion_fbo, color, motion, depth):
            obj.release()
        gl_ctx.disable(moderngl.DEPTH_TEST)
        gl_ctx.viewport = viewport
    (before, _), (now, moved) = frames
    moving = np.hypot(moved[..., 0], moved[..., 1]) >= 0.5           # the turning boxes' edges and faces
    assert moving.sum() > 100

    def error(motion_px):
        warped, valid = reproject(before, motion_px)
        return float(((now / 255.0 - warped) ** 2).mean(axis=-1)[moving & valid].mean())
    # shading changes as the faces turn, so moved is not exact; it is much closer than unmoved or reversed
    assert error(moved) < 0.6 * error(np.zeros_like(moved)) and error(moved) < error(-moved)


def test_moderngl_window_headless_egl(tmp_path):
    shots = window_shots("moderngl_window_app.py", tmp_path, "--window", "headless", "--backend", "egl",
                         "--size", "{}x{}".format(*SIZE))
    assert_stylized(shots["stylized"], shots["raw"])
    assert np.abs(shots["strength0"] - shots["raw"]).max() <= 1


def test_moderngl_window_glfw_window(xvfb_display, tmp_path):
    path = tmp_path / "glfw.png"
    run_example("moderngl_window_app.py", "--window", "glfw", "--size", "{}x{}".format(*SIZE), "--frames", FRAMES,
                "--screenshot", path, cwd=tmp_path, display=xvfb_display)
    assert_picture(read_rgb(path))


RESIZE_SCRIPT = """
import importlib.util, sys
import moderngl_window, numpy as np
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
config = moderngl_window.create_window_config_instance(app.StylizedScene, args=["--window", "glfw", "--size", "160x96"])
window = config.wnd

def frame():
    window.clear(0.0, 0.0, 0.0, 1.0)
    window.use()
    window.render(0.0, 0.0)
    w, h = window.buffer_size
    shot = np.frombuffer(window.fbo.read(viewport=(0, 0, w, h), components=3), np.uint8).reshape(h, w, 3)
    window.swap_buffers()
    return shot

frame()
window.size = (200, 120)
for _ in range(10):                      # the resize arrives as a window-system event
    window.swap_buffers()
    if window.buffer_size == (200, 120):
        break
assert window.buffer_size == (200, 120), window.buffer_size
shot = frame()
assert config.color.size == (200, 120) and config.fx.output.size == (200, 120)
assert shot.shape == (120, 200, 3)
# the frame fills the grown window: no black band right of / above the old 160x96
assert (shot[:, 160:].sum(axis=2) > 0).all() and (shot[96:].sum(axis=2) > 0).all()
window.close()
print("ok")
"""


def test_moderngl_window_resize(xvfb_display, tmp_path):
    env = dict(os.environ, DISPLAY=xvfb_display)
    result = subprocess.run([sys.executable, "-c", RESIZE_SCRIPT, str(EXAMPLES / "moderngl_window_app.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_stylize_photo_with_and_without_depth(tmp_path):
    out = run_example("stylize_photo.py", "--out", "depth.png", "--out-no-depth", "rgb.png", cwd=tmp_path)
    assert "with depth" in out and "without depth" in out and " ms" in out
    original = read_rgb(EXAMPLES / "sample.png")
    with_depth, without_depth = read_rgb(tmp_path / "depth.png"), read_rgb(tmp_path / "rgb.png")
    for img in (with_depth, without_depth):
        assert img.shape == original.shape and img.std() > 10
        assert np.abs(img - original).mean() > 5
    assert np.abs(with_depth - without_depth).mean() > 5
