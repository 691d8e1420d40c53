"""The demo scene: a non-trivial picture, depth that linearizes to true distances,
determinism per seed, animation, the camera path, and clean GL use."""
import math
import re

import numpy as np
import pytest

from postfx.errors import FrameTooLarge, FrameTooSmall, InputError
from postfx.gl.programs import shader_source
from postfx.scene import Camera, Scene, SceneTarget, linear_depth01
from postfx.scene.mesh import MATERIALS
from postfx.scene.town import ROAD_EDGE
from postfx.scene.views import FlyPath, inside_something

SIZE = (160, 90)


@pytest.fixture(scope="module")
def scene(gl_ctx):
    with Scene(gl_ctx, seed=0) as s:
        yield s


@pytest.fixture(scope="module")
def target(gl_ctx):
    with SceneTarget(gl_ctx, SIZE) as t:
        yield t


def frame(scene, target, camera, time=0.0):
    scene.render(target, camera, time=time)
    return target.read_rgb(), target.read_depth()


def street_camera():
    """Standing on the central north-south street, looking north along it."""
    return Camera((0.0, 3.0, 60.0), yaw=0.0, pitch=-0.05)


def outward_camera():
    """On the grass south of the town, looking south over the hills, slightly up."""
    return Camera((0.0, 3.0, ROAD_EDGE + 10.0), yaw=math.pi, pitch=0.1)


# --- the picture ---------------------------------------------------------------------

def test_materials_agree_with_the_shaders():
    for name in ("scene_world.frag", "scene_world.vert"):
        declared = dict(re.findall(r"#define MATERIAL_(\w+) (\d+)", shader_source(name)))
        assert declared, name
        for material, number in declared.items():
            assert MATERIALS[material] == int(number), (name, material)
    assert set(dict(re.findall(r"#define MATERIAL_(\w+) (\d+)", shader_source("scene_world.frag")))) == set(MATERIALS)


@pytest.mark.parametrize("t", [5.0, 40.0])
def test_frames_are_rich_pictures(scene, target, t):
    rgb, depth = frame(scene, target, scene.camera_path(t), t)
    assert rgb.shape == (SIZE[1], SIZE[0], 3) and rgb.dtype == np.uint8
    assert rgb.std() > 25, "a nearly flat picture"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000, "too few distinct colours"
    # Some sky (the far plane), mostly geometry, ground at the bottom, and depth in between.
    assert 0.05 < (depth == 1.0).mean() < 0.7 and (depth[-1] < 1.0).all()
    linear = linear_depth01(depth, 0.5, 600.0)[depth < 1]
    assert np.percentile(linear, 95) - np.percentile(linear, 5) > 0.1, "depth from near to far"


def test_rows_are_top_down(scene, target):
    # Sky (blue, far) in the top rows, grass at the camera's feet in the bottom rows.
    rgb, depth = frame(scene, target, outward_camera())
    middle = slice(SIZE[0] // 3, 2 * SIZE[0] // 3)
    sky = rgb[:5, middle].reshape(-1, 3).astype(int)
    assert (depth[:5, middle] == 1.0).all() and sky[:, 2].mean() > sky[:, 0].mean(), \
        "the top rows should be sky (blue, or white clouds)"
    assert (linear_depth01(depth[-5:], 0.5, 600.0) < 0.05).all(), "the bottom rows should be the nearby ground"


def test_depth_linearizes_to_the_true_distance(scene, gl_ctx):
    # Looking straight down at flat grass just outside the town (no trees, no traffic):
    # every ground pixel lies at view-space depth = the camera's height.
    height = 37.0
    cam = Camera((0.0, height, ROAD_EDGE + 6.0), yaw=0.0, pitch=-math.pi / 2, fov_y=math.radians(20), near=0.5,
                 far=600.0)
    with SceneTarget(gl_ctx, (64, 64)) as small:
        scene.render(small, cam)
        linear = linear_depth01(small.read_depth(), cam.near, cam.far)
    expected = (height - cam.near) / (cam.far - cam.near)
    np.testing.assert_allclose(linear[24:40, 24:40], expected, rtol=0, atol=2e-5)


def test_same_seed_same_pixels_other_seed_other_town(gl_ctx, scene, target):
    cam = scene.camera_path(50.0)
    rgb, depth = frame(scene, target, cam, 3.0)
    with Scene(gl_ctx, seed=0) as again:
        rgb2, depth2 = frame(again, target, cam, 3.0)
    with Scene(gl_ctx, seed=1) as other:
        rgb3, _ = frame(other, target, cam, 3.0)
    assert np.array_equal(rgb, rgb2) and np.array_equal(depth, depth2)
    assert np.abs(rgb.astype(int) - rgb3).mean() > 5


def test_traffic_moves_with_time(scene, target):
    cars0 = scene.traffic.instances(10.0)["car"]
    cars1 = scene.traffic.instances(11.0)["car"]
    moved = np.linalg.norm(cars1[:, :3] - cars0[:, :3], axis=1)
    assert (moved > 4).sum() >= 10, "moving cars should cover metres per second"
    assert (moved == 0).sum() >= 1, "parked cars stay put"
    # Cars stay on the asphalt: within the town's road surface, at road level.
    assert (np.abs(cars0[:, [0, 2]]) < ROAD_EDGE).all() and (cars0[:, 1] == 0).all()
    # And the picture changes: an elevated view over the streets at two times.
    cam = Camera((60.0, 60.0, 60.0), yaw=math.radians(-135), pitch=-0.7)
    a, _ = frame(scene, target, cam, 10.0)
    b, _ = frame(scene, target, cam, 11.0)
    changed = np.abs(a.astype(int) - b).max(axis=2) > 30
    assert 10 < changed.sum() < changed.size * 0.2


def test_camera_path_is_continuous_loops_and_stays_clear(scene):
    path = scene.path
    ts = np.linspace(0.0, path.period, 2801)
    cams = [scene.camera_path(t) for t in ts]
    positions = np.array([c.position for c in cams])
    forwards = np.array([c.forward for c in cams])
    step = path.period / 2800
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=1) / step
    assert speed.max() < 1.05 * path.length / path.period + 0.5, "the path is walked at constant speed"
    turn = np.degrees(np.arccos(np.clip((forwards[1:] * forwards[:-1]).sum(1), -1, 1))) / step
    assert turn.max() < 60, f"the view swings {turn.max():.0f} deg/s"
    np.testing.assert_allclose(positions[0], positions[-1], atol=1e-6)
    np.testing.assert_allclose(forwards[0], forwards[-1], atol=1e-6)
    assert positions[:, 1].min() < 5 and positions[:, 1].max() > scene.town.layout.max_height, \
        "street level and above the roofs"
    for p in positions[::4]:
        assert not inside_something(p, scene.town.layout, scene.town.terrain, clearance=1.0), p


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_camera_path_clears_other_towns(seed):
    from postfx.scene.town import Town
    town = Town(seed)
    path = FlyPath()
    for p in path.position(np.linspace(0, path.period, 700, endpoint=False)):
        assert not inside_something(p, town.layout, town.terrain, clearance=1.0), p


def test_random_cameras_are_deterministic_and_free(scene):
    def views(seed):
        rng = np.random.default_rng(seed)
        return [scene.random_camera(rng) for _ in range(40)]
    a, b, c = views(7), views(7), views(8)
    assert a == b and a != c
    heights = np.array([cam.position[1] for cam in a])
    assert (heights < 7).sum() >= 10 and (heights > 15).sum() >= 5, "street-level and elevated views"
    for cam in a:
        assert not inside_something(np.array(cam.position), scene.town.layout, scene.town.terrain, 0.9)


# --- the camera -------------------------------------------------------------------------

def test_camera_matrices():
    cam = Camera((3.0, 2.0, -1.0), yaw=math.radians(90), pitch=0.0, near=0.5, far=100.0)
    view = cam.view_matrix()
    assert view.dtype == np.float32 and view.shape == (4, 4)
    np.testing.assert_allclose(view @ [3, 2, -1, 1], [0, 0, 0, 1], atol=1e-6)
    # yaw +90 deg looks along +x: a point ahead is at view-space -z.
    np.testing.assert_allclose(view @ [13, 2, -1, 1], [0, 0, -10, 1], atol=1e-5)
    proj = cam.projection_matrix(16 / 9)
    for z, ndc in ((-0.5, -1.0), (-100.0, 1.0)):
        clip = proj @ [0, 0, z, 1]
        assert clip[2] / clip[3] == pytest.approx(ndc, abs=1e-5)
    # window depth -> linear 0..1 is the inverse
    clip = proj @ [0, 0, -30.0, 1]
    window = (clip[2] / clip[3]) * 0.5 + 0.5
    assert linear_depth01(window, 0.5, 100.0) == pytest.approx((30 - 0.5) / 99.5, abs=1e-5)


def test_free_fly_moves_and_turns():
    cam = Camera((0.0, 2.0, 0.0))
    ahead = cam.moved(forward=5.0)
    np.testing.assert_allclose(ahead.position, (0, 2, -5), atol=1e-12)
    np.testing.assert_allclose(cam.moved(right=2.0, up=1.0).position, (2, 3, 0), atol=1e-12)
    right = cam.turned(d_yaw=math.pi / 2)
    np.testing.assert_allclose(right.forward, (1, 0, 0), atol=1e-12)
    assert cam.turned(d_pitch=10.0).pitch < math.pi / 2 and cam.turned(d_pitch=-10.0).pitch > -math.pi / 2
    assert abs(cam.turned(d_yaw=7.0).yaw) <= math.pi
    assert cam.position == (0.0, 2.0, 0.0), "cameras are immutable"
    assert Camera.from_dict(cam.to_dict()) == cam


@pytest.mark.parametrize("kwargs", [dict(near=0.0), dict(near=5.0, far=5.0), dict(fov_y=0.0), dict(fov_y=4.0),
                                    dict(yaw=float("nan"))])
def test_bad_cameras_are_refused(kwargs):
    with pytest.raises(InputError):
        Camera((0.0, 1.0, 0.0), **kwargs)
    with pytest.raises(InputError):
        Camera((0.0, float("inf"), 0.0))


# --- GL hygiene ---------------------------------------------------------------------------

def test_target_sizes(gl_ctx):
    with pytest.raises(FrameTooSmall):
        SceneTarget(gl_ctx, (0, 10))
    with pytest.raises(FrameTooLarge):
        SceneTarget(gl_ctx, (10, 10 ** 6))
    with pytest.raises(InputError):
        SceneTarget(gl_ctx, (10.5, 10))
    with SceneTarget(gl_ctx, 17) as square:
        assert square.size == (17, 17) and square.color.size == square.depth.size == (17, 17)


def test_render_in_the_shared_context_is_clean(gl_ctx, scene, target):
    with SceneTarget(gl_ctx, (33, 17)) as odd, SceneTarget(gl_ctx, (8, 8)) as callers:   # odd sizes
        callers.fbo.use()
        scene.render(odd, scene.camera_path(12.0), time=12.0)
        assert gl_ctx.error == "GL_NO_ERROR"
        assert gl_ctx.fbo.glo == callers.fbo.glo, "the caller's framebuffer is bound again"
        assert tuple(gl_ctx.viewport) == (0, 0, 8, 8)
        assert odd.read_rgb().std() > 5
    # The caller's target was current when released: nothing deleted is bound again.
    scene.render(target, street_camera())
    assert gl_ctx.error == "GL_NO_ERROR"


def test_survives_a_released_current_framebuffer(gl_ctx, scene):
    # A caller released the framebuffer that is still current (moderngl does not unbind it).
    texture = gl_ctx.texture((4, 4), 4)
    fbo = gl_ctx.framebuffer(color_attachments=[texture])
    fbo.use()
    fbo.release()
    texture.release()
    with SceneTarget(gl_ctx, (16, 9)) as small:
        scene.render(small, street_camera())
        assert gl_ctx.error == "GL_NO_ERROR"


def test_scene_feeds_the_postfx_pass(gl_ctx, scene, target):
    from postfx import PostFX
    from postfx.exporters.builder import build_model
    from postfx.model_format import Layer
    layers = [Layer("enc1", "conv2d", ("input",), activation="leaky_relu", negative_slope=0.2, out_channels=8,
                    kernel=4, stride=2, padding=1),
              Layer("dec1", "conv_transpose2d", ("enc1",), activation="tanh", out_channels=3, kernel=4, stride=2,
                    padding=1)]
    rng = np.random.default_rng(0)
    weights = {"enc1": (rng.standard_normal((8, 4, 4, 4)) * 0.3, np.zeros(8)),
               "dec1": (rng.standard_normal((8, 3, 4, 4)) * 0.3, np.zeros(3))}
    model = build_model(layers, weights, input_channels=4, output="dec1", name="scene_smoke")
    cam = scene.camera_path(20.0)
    scene.render(target, cam, time=20.0)
    with PostFX(gl_ctx, model) as fx:
        out = fx.apply(target.color, target.depth, near=cam.near, far=cam.far)
        stylized = np.frombuffer(out.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)[::-1, :, :3]
    assert stylized.std() > 1 and not np.array_equal(stylized, target.read_rgb())


def test_release_is_idempotent_and_final(gl_ctx):
    s = Scene(gl_ctx, seed=3)
    t = SceneTarget(gl_ctx, (8, 8))
    s.render(t, s.camera_path(0.0))
    s.release()
    s.release()
    with pytest.raises(InputError):
        s.render(t, s.camera_path(0.0))
    t.release()
    t.release()
    with Scene(gl_ctx, seed=4) as other, pytest.raises(InputError):
        other.render(t, Camera((0.0, 2.0, 0.0)))


def test_bad_scene_arguments(gl_ctx, scene, target):
    with pytest.raises(InputError):
        Scene(gl_ctx, seed=-1)
    with pytest.raises(InputError):
        scene.render(target, "camera")
    with pytest.raises(InputError):
        scene.render(target, street_camera(), time=float("nan"))


def test_triangle_budget(scene):
    assert 10_000 < scene.triangles < 60_000
