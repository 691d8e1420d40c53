"""The bundled toon style (the toon filter learned from rendered views of the demo
town) and the sample pictures the examples and the README show it on: a view of
the demo scene, colour and depth, that `postfx dataset render` makes again."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import postfx
from postfx.dataset import render_views

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# examples/sample.png, sample_depth.png: view SAMPLE_VIEW of this render
SAMPLE_SEED, SAMPLE_VIEWS, SAMPLE_VIEW, SAMPLE_SIZE = 7, 5, 4, (512, 384)


def read_sample():
    rgb = np.asarray(Image.open(EXAMPLES / "sample.png").convert("RGB"))         # (H, W, 3) uint8
    depth = np.asarray(Image.open(EXAMPLES / "sample_depth.png"))                # (H, W) uint16
    return rgb, depth


def test_sample_pictures_are_a_view_of_the_demo_scene(tmp_path, gl_ctx):
    rgb, depth = read_sample()
    assert rgb.shape == (384, 512, 3) and rgb.dtype == np.uint8
    assert depth.shape == rgb.shape[:2] and depth.dtype == np.uint16
    # the sky is at the far plane, the road at the bottom is near
    assert depth[0].max() == 65535 and depth[-1].max() < 65535 // 10
    folder = render_views(tmp_path / "views", SAMPLE_VIEWS, SAMPLE_SIZE, seed=SAMPLE_SEED, progress=False)
    name = f"{SAMPLE_VIEW:06d}.png"
    again = np.asarray(Image.open(folder / "color" / name).convert("RGB"))
    again_depth = np.asarray(Image.open(folder / "depth" / name))
    # loose: another Mesa may rasterize an edge pixel differently
    assert np.abs(again.astype(np.int16) - rgb).mean() < 1.0
    assert np.abs(again_depth.astype(np.int32) - depth).mean() < 64


def test_bundled_toon_loads_with_its_provenance():
    assert "toon" in postfx.bundled_styles()
    model = postfx.load("toon")
    assert model.is_style and model.uses_depth and model.name == "toon"
    assert Path(model.path).stat().st_size < 1 << 20
    training, quality = model.meta["training"], model.meta["quality"]
    assert training["targets"]["filter"] == "toon" and training["steps_done"] == training["steps"]
    assert [d["dataset"]["seed"] for d in training["data"]] != [d["dataset"]["seed"] for d in training["val"]]
    # the network is closer to the held-out targets than the unstylized input is
    assert quality["val_psnr_db"] > quality["input_psnr_db"] + 5


def test_stylize_sample_with_toon():
    rgb, depth = read_sample()
    out = postfx.stylize(rgb, depth, model="toon")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.int16) - rgb).mean() > 4            # it changed the picture
    assert out.reshape(-1, 3).std(axis=0).min() > 20                 # and did not flatten it


def test_toon_network_is_nearer_its_filter_than_the_input_is(gl_ctx):
    """On the sample (a view the network never saw: another town seed), the stylized
    picture is nearer the toon filter's own output than the unstylized picture is."""
    pytest.importorskip("cv2")
    from postfx.train.filters import get_filter
    from postfx.train.metrics import psnr
    rgb, depth = read_sample()
    depth01 = depth.astype(np.float32) / 65535.0
    target = get_filter("toon")(rgb, depth01)
    out = postfx.stylize(rgb, depth, model="toon")
    assert psnr(out, target) > psnr(rgb, target) + 3
