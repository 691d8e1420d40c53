"""postfx inside a renderer of your own: plain moderngl + glfw, OpenGL 4.3 core.

The scene (lit boxes turning on a ground plane) stands for your renderer: it draws
into an offscreen framebuffer with an RGBA8 colour texture, a depth texture and, as
renderers with temporal anti-aliasing do, an RG32F motion texture (each pixel's
previous minus current texture coordinate, from each box's previous transform).
The three lines marked `postfx` are all the pass adds.

    python3 examples/plain_glfw.py                                  # a window; Esc quits
    python3 examples/plain_glfw.py --temporal 0.5                   # steadier: history, moved by the motion
    python3 examples/plain_glfw.py --frames 30 --screenshot shot.png --size 320x192
"""
import argparse
import sys
import time

import glfw
import moderngl
import numpy as np
from PIL import Image

import postfx

NEAR, FAR = 0.5, 100.0          # the camera's clip planes: the pass linearizes depth with them
SPIN = 0.03                     # radians per frame: a fixed step, so --frames runs are reproducible
BOXES = [  # (centre, size, colour, turn rate)
    ((0.0, 0.75, 0.0), (1.5, 1.5, 1.5), (0.85, 0.25, 0.2), 1.0),
    ((-2.6, 0.5, 1.2), (1.0, 1.0, 1.0), (0.2, 0.55, 0.85), -1.5),
    ((2.4, 1.1, -1.0), (1.0, 2.2, 1.0), (0.95, 0.8, 0.25), 0.7),
    ((1.2, 0.35, 2.4), (0.7, 0.7, 0.7), (0.3, 0.75, 0.35), 2.0),
    ((0.0, -0.05, 0.0), (40.0, 0.1, 40.0), (0.55, 0.58, 0.5), 0.0),     # the ground
]
VERTEX_SHADER = """
#version 430
uniform mat4 view_projection;
uniform mat4 model;
uniform mat4 previous_model;                // last frame's transform (the camera stands still here)
in vec3 in_position;
in vec3 in_normal;
out vec3 normal;
out vec4 clip_now;
out vec4 clip_before;
void main() {
    normal = mat3(model) * in_normal;       // rotations and axis scales keep box normals right
    clip_now = view_projection * model * vec4(in_position, 1.0);
    clip_before = view_projection * previous_model * vec4(in_position, 1.0);
    gl_Position = clip_now;
}
"""
FRAGMENT_SHADER = """
#version 430
uniform vec3 color;
in vec3 normal;
in vec4 clip_now;
in vec4 clip_before;
layout(location = 0) out vec4 frag_color;
layout(location = 1) out vec2 frag_motion;  // texture coordinate then minus now (y up)
void main() {
    float sun = max(dot(normalize(normal), normalize(vec3(0.4, 0.8, 0.3))), 0.0);
    frag_color = vec4(color * (0.3 + 0.7 * sun), 1.0);
    frag_motion = 0.5 * (clip_before.xy / clip_before.w - clip_now.xy / clip_now.w);
}
"""


def cube_mesh() -> np.ndarray:
    """A unit cube centred on the origin: (36, 6) float32, position and normal per vertex."""
    rows = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.eye(3)[axis] * sign
            u, v = np.roll(normal, 1), np.roll(normal, 2)          # the face's two edge directions
            corners = [0.5 * (normal + a * u + b * v) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            rows += [np.concatenate([corners[i], normal]) for i in (0, 1, 2, 0, 2, 3)]
    return np.array(rows, np.float32)


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(fov_y / 2)
    return np.array([[f / aspect, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    forward = np.subtract(target, eye) / np.linalg.norm(np.subtract(target, eye))
    right = np.cross(forward, up) / np.linalg.norm(np.cross(forward, up))
    true_up = np.cross(right, forward)
    view = np.eye(4)
    view[:3, :3] = [right, true_up, -forward]
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def box_matrix(centre, size, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    model = np.eye(4)
    model[:3, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.diag(size)     # turn about y, then scale
    model[:3, 3] = centre
    return model


def draw_scene(ctx, fbo, motion_fbo, program, cube, size, frame: int) -> None:
    fbo.clear(0.55, 0.72, 0.9, 1.0, depth=1.0)          # the sky (a clear sets every colour attachment)
    motion_fbo.clear(0.0, 0.0, 0.0, 0.0)                 # the sky does not move
    fbo.use()
    ctx.viewport = (0, 0, *size)
    ctx.enable(moderngl.DEPTH_TEST)
    camera = perspective(np.radians(50), size[0] / size[1], NEAR, FAR) @ look_at((1.0, 4.5, 7.5), (0.0, 0.6, 0.0))
    program["view_projection"].write(camera.T.astype("f4").tobytes())    # GLSL reads matrices column by column
    for centre, box_size, colour, rate in BOXES:
        program["model"].write(box_matrix(centre, box_size, rate * (0.5 + SPIN * frame)).T.astype("f4").tobytes())
        before = box_matrix(centre, box_size, rate * (0.5 + SPIN * (frame - 1)))
        program["previous_model"].write(before.T.astype("f4").tobytes())
        program["color"] = colour
        cube.render()


def on_key(window, key, scancode, action, mods) -> None:
    if key == glfw.KEY_ESCAPE:
        glfw.set_window_should_close(window, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x384", help="window size WxH")
    parser.add_argument("--frames", type=int, help="quit after N frames (default: run until closed)")
    parser.add_argument("--screenshot", help="save the last frame shown in the window as this PNG")
    parser.add_argument("--style", default=postfx.DEFAULT_STYLE, help="bundled style name or .safetensors file")
    parser.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = stylized")
    parser.add_argument("--no-effect", action="store_true", help="show the raw render (no pass)")
    parser.add_argument("--temporal", type=float, default=0.0,
                        help="history weight of the pass's temporal mode (0 = off; 0.5 is its default)")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))

    if not glfw.init():
        sys.exit("glfw could not start: no display? Try `Xvfb :99 & export DISPLAY=:99`")
    for hint, value in ((glfw.CONTEXT_VERSION_MAJOR, 4), (glfw.CONTEXT_VERSION_MINOR, 3),
                        (glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE), (glfw.OPENGL_FORWARD_COMPAT, True),
                        (glfw.RESIZABLE, False)):     # fixed size: moderngl's ctx.screen keeps its first size
        glfw.window_hint(hint, value)
    window = glfw.create_window(width, height, "postfx: plain glfw", None, None)
    if not window:
        sys.exit("could not open an OpenGL 4.3 core window")
    glfw.make_context_current(window)
    glfw.set_key_callback(window, on_key)
    ctx = moderngl.create_context(require=430)
    size = glfw.get_framebuffer_size(window)   # pixels, which HiDPI screens make larger than the window

    # Your renderer: an offscreen frame with an RGBA8 colour texture, an RG32F motion
    # texture and a depth texture.
    color, motion, depth = ctx.texture(size, 4), ctx.texture(size, 2, dtype="f4"), ctx.depth_texture(size)
    scene_fbo = ctx.framebuffer(color_attachments=[color, motion], depth_attachment=depth)
    color_fbo = ctx.framebuffer(color_attachments=[color])    # the colour alone, to show the raw frame
    motion_fbo = ctx.framebuffer(color_attachments=[motion])  # the motion alone, to clear it to 0
    program = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
    cube = ctx.vertex_array(program, [(ctx.buffer(cube_mesh()), "3f 3f", "in_position", "in_normal")])

    fx = postfx.PostFX(ctx, postfx.load(args.style), strength=args.strength,   # postfx 1/3: once
                       temporal=args.temporal)

    frame, start = 0, time.perf_counter()
    while not glfw.window_should_close(window) and frame != args.frames:
        glfw.poll_events()
        draw_scene(ctx, scene_fbo, motion_fbo, program, cube, size, frame)
        if args.no_effect:
            ctx.copy_framebuffer(ctx.screen, color_fbo)
        else:
            fx.apply(color, depth, near=NEAR, far=FAR, target=ctx.screen,   # postfx 2/3: every frame
                     motion_tex=motion)                     # read in temporal mode only
        frame += 1
        if frame == args.frames and args.screenshot:     # the back buffer, before the swap shows it
            pixels = np.frombuffer(ctx.screen.read(viewport=(0, 0, *size), components=3), np.uint8)
            Image.fromarray(pixels.reshape(size[1], size[0], 3)[::-1]).save(args.screenshot)
        glfw.swap_buffers(window)

    ctx.finish()
    print(f"{frame} frames at {size[0]}x{size[1]}, {(time.perf_counter() - start) / max(frame, 1) * 1000:.1f} ms "
          f"each, on {ctx.info['GL_RENDERER']}")
    fx.release()                                                                 # postfx 3/3
    glfw.terminate()


if __name__ == "__main__":
    main()
