"""The bundled toon-preview style, the sample pictures it is shown on in the
README, and the script that trains it (postfx.train.preview_style)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import postfx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def read_sample():
    rgb = np.asarray(Image.open(EXAMPLES / "sample.png").convert("RGB"))         # (H, W, 3) uint8
    depth = np.asarray(Image.open(EXAMPLES / "sample_depth.png"))                # (H, W) uint16
    return rgb, depth


def test_sample_pictures():
    rgb, depth = read_sample()
    assert rgb.shape == (384, 512, 3) and rgb.dtype == np.uint8
    assert depth.shape == rgb.shape[:2] and depth.dtype == np.uint16
    # the sky is at the far plane, the road at the bottom is near
    assert depth[0].max() == 65535 and depth[-1].max() < 65535 // 10


def test_bundled_style_loads():
    assert "toon-preview" in postfx.bundled_styles()
    model = postfx.load("toon-preview")
    assert model.is_style and model.uses_depth and model.name == "toon-preview"
    assert Path(model.path).stat().st_size < 1 << 20
    quality = model.meta["quality"]
    # the network is closer to the target than the unstylized input is
    assert quality["held_out_psnr_db"] > quality["input_psnr_db"]


def test_stylize_sample():
    rgb, depth = read_sample()
    out = postfx.stylize(rgb, depth, model="toon-preview")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.int16) - rgb).mean() > 4            # it changed the picture
    assert out.reshape(-1, 3).std(axis=0).min() > 20                 # and did not flatten it


def test_training_code_path(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("cv2")
    from postfx.train import preview_style

    cfg = preview_style.PreviewConfig(steps=3, crop=32, batch=2, scenes=2, scene_height=48, scene_width=64,
                                      held_out=1, threads=1)
    net, summary = preview_style.train(cfg, log=None)
    quality = preview_style.evaluate(net, cfg)
    path = tmp_path / "tiny.safetensors"
    preview_style.export(net, path, cfg, summary, quality)

    model = postfx.load(path)
    assert model.name == "toon-preview" and model.uses_depth
    assert model.meta["training"]["steps"] == 3 and model.meta["training"]["seed"] == cfg.seed
    assert np.isfinite(model.meta["quality"]["held_out_psnr_db"])
    rgb, depth = preview_style.make_scene((9, 9), 40, 56)
    out = postfx.run(model, preview_style.network_input(rgb, depth).transpose(1, 2, 0), backend="numpy")
    assert out.shape == (40, 56, 3) and np.all(np.abs(out) <= 1)


def test_scenes_are_deterministic_and_the_sample_is_one():
    pytest.importorskip("cv2")
    from postfx.train import preview_style

    a, b = preview_style.make_scene((0, 0, 1), 48, 64), preview_style.make_scene((0, 0, 1), 48, 64)
    c = preview_style.make_scene((0, 0, 2), 48, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    target = preview_style.toon(*a)
    assert target.shape == a[0].shape and 0 <= target.min() and target.max() <= 1

    rgb, depth = read_sample()
    made_rgb, made_depth = preview_style.make_scene(preview_style.SAMPLE_KEY, *preview_style.SAMPLE_SIZE)
    # loose: opencv's colour conversions may round differently across versions
    assert np.abs(np.round(made_rgb * 255) - rgb).mean() < 0.5
    assert np.abs(np.round(made_depth * 65535) - depth).max() <= 1
