"""postfx inside a moderngl-window application (`pip install postfx[examples]`).

A WindowConfig draws its scene into an offscreen colour + depth framebuffer, runs
the pass on it every frame and shows the stylized texture on a full-window quad,
which keeps working as the window is resized (on_resize hands the new size to the
pass). moderngl-window parses the command line: its own flags (--window, --size,
--backend, ...) and the ones added below.

    python3 examples/moderngl_window_app.py                        # a glfw window; Esc quits
    python3 examples/moderngl_window_app.py --window headless --backend egl \\
        --size 320x192 --frames 10 --screenshot shot.png           # no display needed
"""
import glm
import moderngl
import moderngl_window
import numpy as np
from moderngl_window import geometry
from PIL import Image

import postfx

NEAR, FAR = 0.5, 100.0          # the camera's clip planes: the pass linearizes depth with them
SPIN = 0.03                     # radians per frame: a fixed step, so --frames runs are reproducible
BOXES = [  # (centre, size, colour, turn rate); the last one is the ground
    ((0.0, 0.75, 0.0), (1.5, 1.5, 1.5), (0.85, 0.25, 0.2), 1.0),
    ((-2.6, 0.5, 1.2), (1.0, 1.0, 1.0), (0.2, 0.55, 0.85), -1.5),
    ((2.4, 1.1, -1.0), (1.0, 2.2, 1.0), (0.95, 0.8, 0.25), 0.7),
    ((0.0, -0.05, 0.0), (40.0, 0.1, 40.0), (0.55, 0.58, 0.5), 0.0),
]
SCENE_VERTEX = """
#version 430
uniform mat4 view_projection;
uniform mat4 model;
in vec3 in_position;
in vec3 in_normal;
out vec3 normal;
void main() {
    normal = mat3(model) * in_normal;
    gl_Position = view_projection * model * vec4(in_position, 1.0);
}
"""
SCENE_FRAGMENT = """
#version 430
uniform vec3 color;
in vec3 normal;
out vec4 frag_color;
void main() {
    float sun = max(dot(normalize(normal), normalize(vec3(-0.5, 0.8, 0.4))), 0.0);
    frag_color = vec4(color * (0.3 + 0.7 * sun), 1.0);
}
"""
SHOW_VERTEX = """
#version 430
in vec3 in_position;
in vec2 in_texcoord_0;
out vec2 uv;
void main() { uv = in_texcoord_0; gl_Position = vec4(in_position, 1.0); }
"""
SHOW_FRAGMENT = """
#version 430
uniform sampler2D frame;
in vec2 uv;
out vec4 frag_color;
void main() { frag_color = texture(frame, uv); }
"""


class StylizedScene(moderngl_window.WindowConfig):
    gl_version = (4, 3)             # compute shaders
    title = "postfx: moderngl-window"
    window_size = (640, 384)
    aspect_ratio = None             # the frame fills the window at any shape
    vsync = False

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--frames", type=int, help="quit after N frames (default: run until closed)")
        parser.add_argument("--screenshot", help="save the last frame shown as this PNG")
        parser.add_argument("--style", default=postfx.DEFAULT_STYLE, help="bundled style name or .safetensors file")
        parser.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = stylized")
        parser.add_argument("--no-effect", action="store_true", help="show the raw render (no pass)")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scene = self.ctx.program(vertex_shader=SCENE_VERTEX, fragment_shader=SCENE_FRAGMENT)
        self.show = self.ctx.program(vertex_shader=SHOW_VERTEX, fragment_shader=SHOW_FRAGMENT)
        self.cube = geometry.cube(size=(1.0, 1.0, 1.0))
        self.quad = geometry.quad_fs()
        self.fx = postfx.PostFX(self.ctx, postfx.load(self.argv.style), strength=self.argv.strength)
        self.frame, self.scene_fbo = 0, None
        self.on_resize(*self.wnd.buffer_size)

    def on_resize(self, width: int, height: int):
        if width < 1 or height < 1:
            return                  # minimized: keep the last frame's buffers
        if self.scene_fbo is not None:
            for gl_object in (self.scene_fbo, self.color, self.depth):
                gl_object.release()
        self.color = self.ctx.texture((width, height), 4)        # RGBA8
        self.depth = self.ctx.depth_texture((width, height))
        self.scene_fbo = self.ctx.framebuffer(color_attachments=[self.color], depth_attachment=self.depth)
        self.fx.resize(width, height)       # apply() would do it too; here the allocation is not mid-frame

    def draw_scene(self):
        width, height = self.color.size
        self.scene_fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.scene_fbo.clear(0.55, 0.72, 0.9, 1.0, depth=1.0)
        camera = (glm.perspective(glm.radians(50.0), width / height, NEAR, FAR)
                  * glm.lookAt(glm.vec3(-1.0, 4.5, 7.5), glm.vec3(0.0, 0.6, 0.0), glm.vec3(0.0, 1.0, 0.0)))
        self.scene["view_projection"].write(camera)
        for centre, size, colour, rate in BOXES:
            model = (glm.translate(glm.vec3(centre)) * glm.rotate(rate * (0.5 + SPIN * self.frame), glm.vec3(0, 1, 0))
                     * glm.scale(glm.vec3(size)))
            self.scene["model"].write(model)
            self.scene["color"] = colour
            self.cube.render(self.scene)

    def on_render(self, time: float, frame_time: float):
        self.draw_scene()
        if self.argv.no_effect:
            shown = self.color
        else:
            shown = self.fx.apply(self.color, self.depth, near=NEAR, far=FAR)      # the pass's RGBA8 texture
        self.wnd.use()
        self.ctx.disable(moderngl.DEPTH_TEST)
        shown.use(0)
        self.quad.render(self.show)
        self.frame += 1
        if self.frame == self.argv.frames:
            if self.argv.screenshot:
                width, height = self.wnd.buffer_size
                pixels = np.frombuffer(self.wnd.fbo.read(viewport=(0, 0, width, height), components=3), np.uint8)
                Image.fromarray(pixels.reshape(height, width, 3)[::-1]).save(self.argv.screenshot)
            self.wnd.close()

    def on_close(self):
        self.fx.release()


if __name__ == "__main__":
    moderngl_window.run_window_config(StylizedScene)
