"""The demo scene: a procedural small town drawn with moderngl into an
offscreen colour + depth target, for the live demo and for dataset capture.

    from postfx.scene import Scene, Camera, SceneTarget
    scene = Scene(ctx, seed=0)                 # geometry, programs, shadow map
    target = SceneTarget(ctx, (640, 360))      # .color RGBA8, .depth D24, .fbo
    scene.render(target, scene.camera_path(t), time=t)
    fx.apply(target.color, target.depth, near=cam.near, far=cam.far)

Modules: mesh (vertex layout, materials, vectorized primitives), town (the
layout and static geometry), movers (traffic and birds), camera (Camera,
depth linearization), views (fly-through path, random views), renderer
(Scene, SceneTarget).
"""
from .camera import Camera, linear_depth01
from .renderer import Scene, SceneTarget

__all__ = ["Scene", "Camera", "SceneTarget", "linear_depth01"]
