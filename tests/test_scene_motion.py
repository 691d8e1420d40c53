"""The demo scene's motion target and the reprojection built on it
(postfx/temporal.py): no motion without movement; the offsets a camera move
gives, against the camera matrices and, for a sideways step, the analytic
shift f * step / depth; moving vehicles reprojected onto themselves, the
pixels they uncover masked; the warping error of a static view is zero."""
import math

import numpy as np
import pytest

from postfx.errors import InputError
from postfx.scene import Camera, Scene, SceneTarget, linear_depth01
from postfx.temporal import reproject, sample_bilinear, warping_error

SIZE = (192, 112)
TIME = 31.0
STEP = 1 / 30                       # one frame at 30 fps


@pytest.fixture(scope="module")
def scene(gl_ctx):
    with Scene(gl_ctx, seed=4) as s:
        yield s


@pytest.fixture(scope="module")
def target(gl_ctx):
    with SceneTarget(gl_ctx, SIZE, motion=True) as t:
        yield t


def street_camera(scene) -> Camera:
    """Low over a street, looking along it: ground, walls, a parked car and sky."""
    return scene.camera_path(5.0)


def camera_on_a_vehicle(scene, time) -> Camera:
    """Nine metres off and six up from the first driving vehicle, looking at it."""
    vehicle = scene.traffic.driving(time)[0][0]
    eye = vehicle + np.array([9.0, 6.0, 9.0])
    d = vehicle - eye
    return Camera(tuple(eye), yaw=math.atan2(d[0], -d[2]), pitch=math.atan2(d[1], math.hypot(d[0], d[2])))


def frame(scene, target, camera, time, **previous):
    scene.render(target, camera, time, **previous)
    depth = linear_depth01(target.read_depth(), camera.near, camera.far)
    return target.read_rgb(), depth, target.read_motion()


def test_no_movement_no_motion(scene, target):
    camera = street_camera(scene)
    _, depth, motion = frame(scene, target, camera, TIME)
    assert np.array_equal(motion[..., :2], np.zeros_like(motion[..., :2]))
    # the depth a surface had is its depth now; the sky is at 1
    np.testing.assert_allclose(motion[..., 2], depth, atol=2e-4)
    assert (motion[..., 2] == 1.0).any() and (motion[..., 2] < 0.05).any()


def world_points(camera: Camera, depth_window: np.ndarray) -> np.ndarray:
    """(H, W, 4) homogeneous world positions of every pixel from the window depth."""
    h, w = depth_window.shape
    rows, cols = np.mgrid[0:h, 0:w]
    ndc = np.stack([(cols + 0.5) / w * 2 - 1, 1 - (rows + 0.5) / h * 2, depth_window * 2 - 1,
                    np.ones_like(depth_window)], axis=-1).astype(np.float64)
    inverse = np.linalg.inv(camera.view_projection(w / h).astype(np.float64))
    points = ndc @ inverse.T
    return points / points[..., 3:]


def test_camera_motion_matches_the_camera_matrices(scene, target):
    """Every near pixel's offset is its world point projected by the previous camera (movers
    held still: previous_time = time)."""
    camera = street_camera(scene)
    previous = camera.moved(forward=-0.6, right=0.25, up=0.1).turned(d_yaw=-0.03, d_pitch=0.02)
    frame(scene, target, camera, TIME, previous_camera=previous)
    motion, window = target.read_motion(), target.read_depth()
    h, w = window.shape
    clip = world_points(camera, window) @ previous.view_projection(w / h).astype(np.float64).T
    rows, cols = np.mgrid[0:h, 0:w]
    expected_x = (clip[..., 0] / clip[..., 3] + 1) / 2 * w - 0.5 - cols
    expected_y = (1 - clip[..., 1] / clip[..., 3]) / 2 * h - 0.5 - rows
    expected_depth = (clip[..., 3] - camera.near) / (camera.far - camera.near)
    near = linear_depth01(window, camera.near, camera.far) < 0.1    # where the 24-bit depth reconstructs well
    assert near.mean() > 0.3
    assert np.abs(motion[..., 0] - expected_x)[near].max() < 0.05
    assert np.abs(motion[..., 1] - expected_y)[near].max() < 0.05
    assert np.abs(motion[..., 2] - expected_depth)[near].max() < 1e-4
    assert np.abs(motion[..., :2])[near].mean() > 2.0                     # it did move


def test_a_sideways_step_shifts_by_focal_length_times_step_over_depth(scene, target):
    """A camera that only steps right by s metres saw each point f * s / z pixels further right,
    z its distance along the view axis, f the focal length in pixels; nothing moves vertically."""
    camera = street_camera(scene)
    step = 0.4
    _, depth, motion = frame(scene, target, camera, TIME, previous_camera=camera.moved(right=-step))
    w, h = SIZE
    focal = (h / 2) / math.tan(camera.fov_y / 2)          # square pixels: the same along x
    z = camera.near + depth * (camera.far - camera.near)
    geometry = depth < 0.2
    np.testing.assert_allclose(motion[..., 0][geometry], (focal * step / z)[geometry], rtol=2e-3, atol=2e-3)
    assert np.abs(motion[..., 1][geometry]).max() < 2e-3
    sky = depth >= 1.0
    assert sky.any() and np.abs(motion[..., :2][sky]).max() < 1e-3        # infinitely far: no parallax


def test_moving_vehicles_reproject_onto_themselves(scene, target):
    """A still camera, the traffic a frame apart: warping the previous colour with the motion
    brings every pixel with history back to the current colour, and the pixels a vehicle
    uncovered lose their history."""
    camera = camera_on_a_vehicle(scene, TIME)
    rgb0, depth0, _ = frame(scene, target, camera, TIME - STEP * 4)
    rgb1, depth1, motion = frame(scene, target, camera, TIME, previous_camera=camera, previous_time=TIME - STEP * 4)
    moving = np.abs(motion[..., :2]).max(axis=-1) > 0.5
    assert moving.sum() > 30, "no vehicle in view: choose another camera"
    warped, valid = reproject(rgb0, motion, depth0)
    current = rgb1.astype(np.float32) / 255
    err_warped = np.abs(warped - current).mean(axis=-1)
    err_still = np.abs(rgb0.astype(np.float32) / 255 - current).mean(axis=-1)
    inside = moving & valid
    inside &= ~np.pad(~inside, 1)[2:, 1:-1] & ~np.pad(~inside, 1)[:-2, 1:-1]   # not on the vehicle's outline
    assert err_warped[inside].mean() < 0.25 * err_still[inside].mean()
    # still background the vehicle stood in front of a frame ago (its shadow, which moved
    # too, changes colours without uncovering anything: history stays valid there)
    uncovered = ~moving & (depth0 < 0.9 * depth1)
    assert uncovered.sum() > 10 and (~valid[uncovered]).mean() > 0.95


def test_a_still_view_has_zero_warping_error(scene, target):
    camera = street_camera(scene)
    rgb, depth, motion = frame(scene, target, camera, 0.0, previous_time=0.0)
    error, count = warping_error(rgb, rgb, motion, depth)
    assert error == 0.0 and count == SIZE[0] * SIZE[1]


def test_reproject_is_an_exact_shift_for_whole_pixel_motion():
    rng = np.random.default_rng(0)
    previous = rng.random((9, 12, 3)).astype(np.float32)
    motion = np.zeros((9, 12, 3), np.float32)
    motion[..., 0], motion[..., 1] = 2.0, -1.0               # was 2 right and 1 up
    warped, valid = reproject(previous, motion)
    np.testing.assert_array_equal(warped[1:, :-2], previous[:-1, 2:])
    assert valid[1:, :-2].all() and not valid[0].any() and not valid[:, -2:].any()
    x, y = np.array([[0.25]]), np.array([[0.5]])
    np.testing.assert_allclose(sample_bilinear(previous, x, y)[0, 0],
                               0.5 * (0.75 * previous[0, 0] + 0.25 * previous[0, 1])
                               + 0.5 * (0.75 * previous[1, 0] + 0.25 * previous[1, 1]), rtol=1e-6)


def test_reproject_refuses_mismatched_motion():
    with pytest.raises(InputError, match="motion must be float"):
        reproject(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.float32))
    with pytest.raises(InputError, match="NaN"):
        reproject(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="motion target"):
        from postfx.gl.context import headless_context
        with SceneTarget(headless_context(), (8, 8)) as plain:
            plain.read_motion()
