"""Temporal training (postfx train --temporal W --init MODEL): a model file back into
its generator, consecutive-frame crops whose grid lands each pixel where it was, the
temporal loss, and a fine-tuning run on rendered sequences of the demo town."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import postfx  # noqa: E402
from postfx import cli  # noqa: E402
from postfx.dataset import render_sequences, render_views  # noqa: E402
from postfx.errors import InputError, TrainingDataError  # noqa: E402
from postfx.exporters.builder import build_model  # noqa: E402
from postfx.model_format import Layer  # noqa: E402
from postfx.train.config import DiscriminatorConfig, TrainConfig, UNetConfig  # noqa: E402
from postfx.train.data import PairSet, load_folders  # noqa: E402
from postfx.train.init_model import generator_from_model  # noqa: E402
from postfx.train.losses import temporal_loss  # noqa: E402
from postfx.train.models import UNetGenerator  # noqa: E402
from postfx.train.pairs import stylize_dataset  # noqa: E402
from postfx.train.trainer import train  # noqa: E402

SIZE = (64, 64)
TINY = dict(generator=UNetConfig(depth=2, ngf=4), discriminator=DiscriminatorConfig(ndf=8), crop=32, batch=2,
            steps=4, checkpoint_every=4, sample_every=0, log_every=1, threads=1)


def inverted(rgb, depth01):
    return (255 - rgb).astype(np.uint8)


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal-train")
    source = render_sequences(root / "seq", 2, 3, SIZE, seed=9, progress=False)
    return stylize_dataset(source, root / "seq-inv", "inverted", inverted, progress=False)


def test_a_model_file_gives_back_its_generator(tmp_path):
    torch.manual_seed(0)
    net = UNetGenerator(UNetConfig(depth=3, ngf=6)).eval()      # 6 channels: lanes padded to 8
    training = {"generator": {"depth": 3, "ngf": 6, "in_channels": 4, "out_channels": 3, "norm": "none",
                              "dropout": 0.0}}
    model = postfx.export_torch(net, tmp_path / "g.safetensors", name="g", training=training)
    again = generator_from_model(model)
    for (name, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    raw = build_model([Layer("out", "conv2d", ("input",), out_channels=3, kernel=1, stride=1, padding=0)],
                      {"out": (np.ones((3, 4, 1, 1), np.float32), None)}, input_channels=4, output="out")
    with pytest.raises(InputError, match="not written by `postfx train`"):
        generator_from_model(raw)


def test_consecutive_crops_land_each_pixel_where_it_was():
    """Frame t is frame t - 1 moved 3 px left and 2 px up (motion +3, +2): sampling the
    previous crop at the grid gives the current crop wherever the grid stays inside, flipped
    or not; pixels whose source left the crop have no history."""
    rng = np.random.default_rng(1)
    before = rng.integers(0, 256, (40, 48, 3), np.uint8)
    now = np.roll(before, (-2, -3), axis=(0, 1))
    depth = np.full((40, 48), 0.5, np.float32)
    motion = np.zeros((40, 48, 3), np.float32)
    motion[..., 0], motion[..., 1], motion[..., 2] = 3.0, 2.0, 0.5
    pairs = PairSet([before, now], [depth, depth], [before, now], ["a", "b"], [], previous=[None, 0],
                    motion=[None, motion], history=[None, np.ones((40, 48), bool)])
    assert pairs.consecutive == [1]
    for flip in (False, True):
        current, previous, grid, valid = pairs.consecutive_crops([(1, 4, 6, flip)], 32, 3)
        warped = torch.nn.functional.grid_sample(torch.from_numpy(previous), torch.from_numpy(grid),
                                                 align_corners=True)[0].numpy()
        inside = valid[0, 0].astype(bool)
        assert inside.sum() == 30 * 29
        np.testing.assert_allclose(warped[:, inside], current[0][:, inside], atol=1e-5)


def test_temporal_loss_is_zero_when_the_output_changes_as_the_input_does():
    rng = np.random.default_rng(2)
    now, before = (torch.from_numpy(rng.normal(size=(2, 3, 16, 16)).astype(np.float32)) for _ in range(2))
    grid = torch.from_numpy(rng.uniform(-1, 1, (2, 16, 16, 2)).astype(np.float32))
    valid = torch.ones(2, 1, 16, 16)
    assert temporal_loss(now * 0.5 + 0.1, before * 0.5 + 0.1, now * 0.5, before * 0.5, grid, valid) < 1e-10
    flicker = torch.from_numpy(rng.normal(size=(2, 3, 16, 16)).astype(np.float32))
    assert temporal_loss(now + flicker, before, now, before, grid, valid) > 0.5
    assert temporal_loss(now + flicker, before, now, before, grid, torch.zeros_like(valid)) == 0.0


def test_fine_tuning_with_the_temporal_loss(sequences, tmp_path):
    base = train(TrainConfig(data=[str(sequences)], out=str(tmp_path / "base.safetensors"), **TINY),
                 progress=False)
    assert base.model.meta["training"]["init"] is None
    cfg = TrainConfig(data=[str(sequences)], out=str(tmp_path / "tuned.safetensors"),
                      **{**TINY, "temporal": 5.0, "init": str(tmp_path / "base.safetensors")})
    tuned = train(cfg, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "tuned.run" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["g_temporal"] > 0 for line in lines)
    record = tuned.model.meta["training"]
    assert record["init"] == {"model": "base", "file": "base.safetensors",
                              "checksum": base.model.meta["checksum"]["value"]}
    assert "5.0 x temporal" in record["losses"] and record["temporal"] == 5.0
    # only the fine-tuning moved the weights: the run started from the base model's
    start = generator_from_model(base.model).state_dict()
    assert any(not torch.equal(start[k], v) for k, v in generator_from_model(tuned.model).state_dict().items())


def test_temporal_needs_sequences_and_init_keeps_the_generator(sequences, tmp_path, capsys):
    views = render_views(tmp_path / "views", 2, SIZE, seed=2, progress=False)
    single = stylize_dataset(views, tmp_path / "single", "inverted", inverted, progress=False)
    with pytest.raises(TrainingDataError, match="--sequences"):
        train(TrainConfig(data=[str(single)], out=str(tmp_path / "m.safetensors"), **{**TINY, "temporal": 1.0}),
              progress=False)
    assert load_folders([single], motion=False).consecutive == []
    status = cli.main(["train", str(sequences), "--out", str(tmp_path / "x.safetensors"), "--init", "ink",
                       "--depth", "3", "--no-progress"])
    assert status == 2 and "drop --depth" in capsys.readouterr().err


def test_a_fine_tune_toward_another_filter_gets_a_notice(sequences, tmp_path, capsys):
    """Fine-tuning one look toward another filter's targets is allowed, and said: it is also
    what a mixed-up targets folder looks like."""
    from postfx.train.provenance import other_look_notice
    assert other_look_notice("ink", [{"filter": "ink"}]) is None
    assert other_look_notice(None, [{"filter": "inverted"}]) is None
    assert other_look_notice("ink", [{"filter": "folder"}, {"filter": "inverted"}]) == (
        "note: --init ink learned the 'ink' filter; these targets are 'folder', 'inverted'")
    status = cli.main(["train", str(sequences), "--out", str(tmp_path / "x.safetensors"), "--init", "ink",
                       "--steps", "1", "--crop", "32", "--batch", "1", "--no-progress", "--sample-every", "0"])
    assert status == 0
    assert "note: --init ink learned the 'ink' filter; these targets are 'inverted'" in capsys.readouterr().err
