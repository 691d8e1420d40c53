"""pix2pix training (postfx.train.trainer, `postfx train`) and what it must survive
(docs/reliability.md D1-D6). Everything trains for real on rendered views of the demo
town with a real filter as the style; the networks are tiny so the file runs in under a
minute on two CPU cores."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import postfx  # noqa: E402
from postfx import cli  # noqa: E402
from postfx.dataset import render_views  # noqa: E402
from postfx.errors import CheckpointError, InputError, NonFiniteLoss, TrainingDataError  # noqa: E402
from postfx.train import trainer, whole_frames  # noqa: E402
from postfx.train.checkpoint import load_checkpoint  # noqa: E402
from postfx.train.config import DiscriminatorConfig, TrainConfig, UNetConfig  # noqa: E402
from postfx.train.data import CropSampler, PairSet, load_folders, to_uint8  # noqa: E402
from postfx.train.models import MultiScaleDiscriminator, PatchGANDiscriminator, build_discriminator  # noqa: E402
from postfx.train.pairs import stylize_dataset  # noqa: E402

SIZE = (64, 64)
VAL_SIZE = (72, 56)         # not a multiple of 2**depth: samples and evaluation take the pad-and-crop path
TINY = dict(generator=UNetConfig(depth=2, ngf=4), discriminator=DiscriminatorConfig(ndf=8), crop=32, batch=2,
            steps=8, checkpoint_every=4, sample_every=0, log_every=1, threads=1)


def ink(rgb: np.ndarray, depth01: np.ndarray) -> np.ndarray:
    """The style of these tests: inverted colour, darker with distance (a depth-dependent look)."""
    return ((255 - rgb) * (1.0 - 0.5 * depth01[..., None])).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    views = render_views(root / "views", 4, SIZE, seed=3, progress=False)
    val_views = render_views(root / "val_views", 2, VAL_SIZE, seed=4, progress=False)
    return {"train": stylize_dataset(views, root / "train", "ink", ink, progress=False),
            "val": stylize_dataset(val_views, root / "val", "ink", ink, progress=False)}


def tiny(tmp_path, folders, **changes) -> TrainConfig:
    return TrainConfig(**{"data": [str(folders["train"])], "out": str(tmp_path / "m.safetensors"), **TINY, **changes})


def logged(run_dir) -> list[dict]:
    """metrics.jsonl without the wall clock."""
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def assert_same_state(a, b, where="checkpoint"):
    """Bitwise equality of two checkpoints' contents (tensors, numbers, nested containers)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def run_state(run_dir) -> dict:
    """What a resumed run must reproduce: the checkpoint less its paths and wall clock."""
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    state["counters"].pop("seconds")
    state.pop("config")
    return state


# --- models --------------------------------------------------------------------------

def test_patchgan_is_pix2pix_70x70():
    d = PatchGANDiscriminator(DiscriminatorConfig(), in_channels=7)
    widths = [getattr(d, f"conv{i}").out_channels for i in range(1, 5)] + [d.out.out_channels]
    assert widths == [64, 128, 256, 512, 1]                              # C64-C128-C256-C512, then 1
    assert [getattr(d, f"conv{i}").stride[0] for i in range(1, 5)] == [2, 2, 2, 1]
    assert not hasattr(d, "conv1_norm") and isinstance(d.conv2_norm, torch.nn.BatchNorm2d)
    assert all("." not in name.removesuffix(".weight").removesuffix(".bias")
               for name, _ in d.named_parameters())                     # flat names
    # the receptive field, measured: which input pixels move the centre logit of a small one
    small = PatchGANDiscriminator(DiscriminatorConfig(ndf=2, norm="none"), in_channels=7)
    x = torch.randn(1, 7, 160, 160, requires_grad=True)
    logits = small(x)[-1]                                                # (1, 1, 18, 18)
    logits[0, 0, 9, 9].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3))).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).flatten()
    assert rows.max() - rows.min() + 1 == 70 == cols.max() - cols.min() + 1
    assert DiscriminatorConfig().receptive_field() == 70


def test_multiscale_discriminator_features():
    cfg = DiscriminatorConfig(kind="multiscale", ndf=4, layers=2, scales=3)
    d = build_discriminator(cfg, in_channels=6)
    assert isinstance(d, MultiScaleDiscriminator) and {"scale1", "scale2", "scale3"} <= dict(d.named_children()).keys()
    scales = d(torch.randn(2, 6, cfg.min_input(), cfg.min_input()))
    assert len(scales) == 3
    for k, features in enumerate(scales):
        assert len(features) == 4 and features[-1].shape[:2] == (2, 1)        # 3 activations, then the logit map
        assert features[0].shape[-1] == cfg.min_input() // 2 ** (k + 1)        # scale k+1 sees the pair pooled k times
    assert scales[-1][-1].shape[-2:] == (1, 1)                                # min_input is the smallest that works
    with pytest.raises(RuntimeError):
        d(torch.randn(2, 6, cfg.min_input() - 8, cfg.min_input() - 8))     # the coarsest scale has no logit left


def test_sampler_ranks_see_disjoint_pairs():
    sizes = [(64, 64)] * 10
    ranks = [CropSampler(sizes, 32, 1, seed=5, rank=r, world=2) for r in range(2)]
    first_epoch = [[s.draw(step)[0][0] for step in range(1, 6)] for s in ranks]     # 5 steps x batch 1 = one epoch
    assert sorted(first_epoch[0] + first_epoch[1]) == list(range(10))
    # a pure function of the step: drawing again, or out of order, gives the same crops
    assert ranks[0].draw(3) == CropSampler(sizes, 32, 1, seed=5, rank=0, world=2).draw(3)
    assert ranks[0].draw(7) != ranks[1].draw(7)


# --- end to end ------------------------------------------------------------------------

def test_train_export_and_run_on_gl(folders, tmp_path):
    out = tmp_path / "ink.safetensors"
    status = cli.main(["train", str(folders["train"]), "--out", str(out), "--val", str(folders["val"]),
                       "--depth", "2", "--ngf", "4", "--ndf", "8", "--crop", "32", "--batch", "2", "--steps", "6",
                       "--sample-every", "3", "--checkpoint-every", "3", "--log-every", "2", "--threads", "1",
                       "--no-progress"])
    assert status == 0
    run_dir = tmp_path / "ink.run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "samples"]
    assert [line["step"] for line in logged(run_dir)] == [2, 4, 6]
    grid = np.asarray(Image.open(run_dir / "samples" / "step_000006.png"))
    assert grid.shape == (2 * VAL_SIZE[1], 3 * VAL_SIZE[0], 3)              # 2 held-out rows: input | output | target

    model = postfx.load(out)
    assert model.is_style and model.uses_depth and model.name == "ink"
    training, quality = model.meta["training"], model.meta["quality"]
    assert training["steps"] == training["steps_done"] == 6 and training["generator"]["depth"] == 2
    assert quality["final_losses"].keys() >= {"d", "g", "g_l1"} and quality["nonfinite_steps"] == 0
    # provenance: the filter that made the targets, names and content ids, no path of this machine
    assert training["targets"] == {"filter": "ink", "params": {}}
    assert [d["name"] for d in training["data"]] == ["train"] and training["data"][0]["dataset"]["views"] == 4
    assert training["val"][0]["name"] == "val" and quality["val_data"] == training["val"]
    assert (training["out"], training["run_dir"]) == ("ink.safetensors", "ink.run")
    assert str(tmp_path.parent.parent) not in json.dumps(model.meta), "an absolute path of this machine"

    generator = trainer.load_generator(run_dir)
    val = load_folders([folders["val"]])
    assert quality["val_psnr_db"] == round(whole_frames.held_out_quality(generator, val)["val_psnr_db"], 3)
    # the file on the GL runtime reproduces the torch generator on a whole held-out frame
    x = val.frame(0, 4)[0]                                                    # (4, 56, 72) in [-1, 1]
    expected = whole_frames.generate(generator, x).transpose(1, 2, 0)             # (56, 72, 3)
    got = postfx.run(model, x.transpose(1, 2, 0), backend="gl")
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-3
    # and the pass, fed the frame as a renderer would (8-bit colour, 16-bit depth), sees what training saw
    depth16 = np.round(val.depth[0] * 65535).astype(np.uint16)
    stylized = postfx.stylize(val.rgb[0], depth16, model=model)
    assert np.abs(stylized.astype(int) - to_uint8(expected.transpose(2, 0, 1))).max() <= 1


# --- D2: determinism and resume -------------------------------------------------------------

@pytest.mark.parametrize("variant", [
    dict(generator=UNetConfig(depth=2, ngf=4, norm="batch", dropout=0.5)),                # BN buffers, dropout RNG
    dict(discriminator=DiscriminatorConfig(kind="multiscale", ndf=4, layers=2, scales=3), crop=48,
         gan_loss="lsgan", feature_matching=10.0),
], ids=["patch-batchnorm-dropout", "multiscale-lsgan-fm"])
def test_D2_resume_is_bitwise_identical(folders, tmp_path, variant):
    straight = trainer.train(tiny(tmp_path / "straight", folders, **variant), progress=False)
    split_cfg = tiny(tmp_path / "split", folders, **variant)
    first = trainer.train(split_cfg, stop_after=4, progress=False)
    assert first.step == 4 and first.model is None and not Path(split_cfg.out).exists()
    # what a kill leaves behind (D1): a log line cut short, a half-written checkpoint temp file
    with open(first.run_dir / "metrics.jsonl", "a") as log:
        log.write('{"step": 5, "d": 0.3')
    stale = first.run_dir / ".checkpoint.pt.0123456789ab.tmp"
    stale.write_bytes(b"PK\x03\x04 half a zip")
    resumed = trainer.train(split_cfg, resume=True, progress=False)
    assert not stale.exists()
    assert resumed.step == 8 and Path(split_cfg.out).exists()

    losses = logged(straight.run_dir)
    assert [line["step"] for line in losses] == list(range(1, 9))
    assert len({line["g"] for line in losses}) == 8                    # the losses do move
    assert logged(resumed.run_dir) == losses
    assert_same_state(run_state(resumed.run_dir), run_state(straight.run_dir))
    a, b = postfx.load(straight.model.path), postfx.load(split_cfg.out)
    assert all(np.array_equal(a.tensors[name], b.tensors[name]) for name in a.tensors)


def test_D2_same_seed_same_losses(folders, tmp_path):
    runs = [trainer.train(tiny(tmp_path / name, folders, seed=seed, steps=4), progress=False)
            for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    a, b, c = (logged(r.run_dir) for r in runs)
    assert a == b and a != c
    assert_same_state(run_state(runs[0].run_dir), run_state(runs[1].run_dir))


def test_rgb_only_model(folders, tmp_path):
    result = trainer.train(tiny(tmp_path, folders, steps=2, generator=UNetConfig(depth=2, ngf=4, in_channels=3)),
                           progress=False)
    model = postfx.load(result.model.path)
    assert not model.uses_depth and model.input_channels == 3
    val = load_folders([folders["val"]])
    x = val.frame(1, 3)[0]                                                    # (3, H, W): colour only
    got = postfx.run(model, x.transpose(1, 2, 0), backend="numpy")
    assert np.abs(got - whole_frames.generate(result.generator, x).transpose(1, 2, 0)).max() < 1e-4


def test_D2_resume_refuses_another_config_and_fresh_run_refuses_a_used_dir(folders, tmp_path):
    cfg = tiny(tmp_path, folders, steps=4)
    trainer.train(cfg, stop_after=2, progress=False)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        trainer.train(cfg, progress=False)
    with pytest.raises(CheckpointError, match=r"lr: checkpoint 0.0002, now 0.001"):
        trainer.train(TrainConfig(**{**cfg.__dict__, "lr": 1e-3}), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        trainer.train(tiny(tmp_path / "other", folders), resume=True, progress=False)
    with pytest.raises(InputError, match="crop 30 is not a multiple of 2\\*\\*depth = 4"):
        trainer.train(tiny(tmp_path, folders, crop=30), progress=False)


# --- D3: non-finite losses ------------------------------------------------------------------

def test_D3_nonfinite_steps_are_skipped_and_counted(folders, tmp_path):
    good = load_folders([folders["train"]])
    depth = [d.copy() for d in good.depth]
    depth[2][:] = np.inf                            # one frame whose depth never got clamped: every crop is Inf
    data = PairSet.from_arrays(good.rgb, depth, good.target)
    cfg = tiny(tmp_path, folders, batch=1, generator=UNetConfig(depth=2, ngf=4, norm="batch"), max_nonfinite=3)
    sampler = CropSampler(data.sizes, cfg.crop, cfg.batch, cfg.seed)
    expected = [step for step in range(1, 9) if sampler.draw(step)[0][0] == 2]
    assert len(expected) == 2                                            # drawn once per epoch of 4

    result = trainer.train(cfg, data=data, progress=False)
    log = logged(result.run_dir)
    assert [line["step"] for line in log if line["nonfinite"]] == expected
    assert all(line["g"] is None for line in log if line["nonfinite"])
    assert result.nonfinite_steps == 2 and log[-1]["nonfinite_total"] == 2
    # skipped means skipped: no optimizer step, and the norm statistics put back
    state = load_checkpoint(result.run_dir / "checkpoint.pt")
    finite = 8 - len(expected)
    assert int(state["optimizer_g"]["state"][0]["step"]) == finite == int(state["optimizer_d"]["state"][0]["step"])
    assert int(state["generator"]["dec2_norm.num_batches_tracked"]) == finite
    assert int(state["discriminator"]["conv2_norm.num_batches_tracked"]) == 3 * finite   # fake, real, judged
    model = postfx.load(cfg.out)
    assert model.meta["quality"]["nonfinite_steps"] == 2
    assert all(np.isfinite(t).all() for t in model.tensors.values())


def test_D3_diverging_run_aborts_naming_step_and_last_good_checkpoint(folders, tmp_path):
    # A learning rate of 1e30 is a real divergence: Adam's first step moves every weight by ~1e30,
    # the next forward overflows to Inf, and Inf - Inf gives NaN.
    cfg = tiny(tmp_path, folders, lr=1e30, steps=20, checkpoint_every=1, max_nonfinite=3)
    with pytest.raises(NonFiniteLoss) as caught:
        trainer.train(cfg, progress=False)
    error = caught.value
    assert error.step == 4 and "step 4: 3 consecutive" in str(error)
    assert error.checkpoint == str(tmp_path / "m.run" / "checkpoint.pt") and "(step 1)" in str(error)
    assert load_checkpoint(error.checkpoint)["step"] == 1
    assert not Path(cfg.out).exists()                                     # nothing exported
    assert [line["nonfinite_total"] for line in logged(tmp_path / "m.run")] == [0, 1, 2, 3]


# --- D4: pre-flight ------------------------------------------------------------------------

def test_D4_preflight_lists_every_bad_file(tmp_path, capsys):
    import cv2
    views = render_views(tmp_path / "views", 6, (32, 32), seed=9, progress=False)
    targets = stylize_dataset(views, tmp_path / "targets", "ink", ink, progress=False)
    small = stylize_dataset(render_views(tmp_path / "small_views", 1, (16, 16), seed=9, progress=False),
                            tmp_path / "small", "ink", ink, progress=False)
    (tmp_path / "empty").mkdir()
    colour0, depth5 = views / "color" / "000000.png", views / "depth" / "000005.png"
    target = [targets / "target" / f"00000{i}.png" for i in range(6)]
    colour0.write_bytes(colour0.read_bytes()[:200])                                       # truncated
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(target[1])                      # 8-bit grey
    Image.fromarray(np.full((32, 32), 30000, np.uint16)).save(target[2])                   # 16-bit grey
    cv2.imwrite(str(target[3]), np.full((32, 32, 3), 30000, np.uint16))                    # 16-bit RGB
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(target[4])                       # wrong size
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(depth5)                             # 8-bit depth
    target[5].write_bytes(b"not a picture")                                                # and its target
    out = tmp_path / "m.safetensors"
    status = cli.main(["train", str(targets), str(small), str(tmp_path / "empty"), "--out", str(out),
                       "--val", str(tmp_path / "missing"), "--crop", "32", "--depth", "2", "--no-progress"])
    assert status == 2
    message = capsys.readouterr().err
    bad = [colour0, target[1], target[2], target[3], target[4], depth5, target[5], small, tmp_path / "empty",
           tmp_path / "missing"]
    assert "10 problems" in message
    for path in bad:
        assert str(path) in message, path
    # Each changed file is caught by the checksum its index recorded (views.json / targets.json).
    assert message.count("is not the one targets.json recorded") == 5 and "not the one views.json recorded" in message
    assert "smaller than the 32 px training crop" in message
    assert not out.exists() and not (tmp_path / "m.run").exists()           # nothing ran

    with pytest.raises(TrainingDataError) as caught:
        trainer.train(TrainConfig(data=[str(targets)], out=str(out), **{**TINY, "crop": 32}), progress=False)
    assert len(caught.value.problems) == 7 and isinstance(caught.value, InputError)


# --- D6: torchrun -------------------------------------------------------------------------

TORCHRUN_STEPS = 60
TORCHRUN_ARGS = ["--depth", "2", "--ngf", "4", "--norm", "batch", "--dropout", "0.5", "--ndf", "8", "--crop", "32",
                 "--batch", "2", "--steps", str(TORCHRUN_STEPS), "--checkpoint-every", "10", "--sample-every", "0",
                 "--log-every", "1", "--threads", "1", "--no-progress"]


def torchrun(folders, out: Path, *extra) -> subprocess.Popen:
    """`postfx train` under torchrun, two CPU processes (gloo). cwd: the repo's own postfx/
    folder would shadow the installed package."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--module", "postfx", "train", str(folders["train"]), "--out", str(out), *TORCHRUN_ARGS, *extra]
    return subprocess.Popen(command, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout=120) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def rank_pid(launcher: int, rank: int) -> int:
    """The worker process of `rank` among the launcher's children (Linux /proc)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for child in children:
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no worker of rank {rank} among {children}")


@pytest.fixture(scope="module")
def uninterrupted(folders, tmp_path_factory):
    """A two-process run left to finish, started in the background so that the kill test's
    runs overlap it."""
    out = tmp_path_factory.mktemp("ddp_straight") / "m.safetensors"
    proc = torchrun(folders, out)
    yield out, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_D6_torchrun_worker_killed_then_resumed(folders, tmp_path, uninterrupted):
    out = tmp_path / "m.safetensors"
    checkpoint = tmp_path / "m.run" / "checkpoint.pt"
    proc = torchrun(folders, out)
    deadline = time.monotonic() + 90
    while not checkpoint.exists():
        assert proc.poll() is None, f"the run ended before its first checkpoint:\n{finish(proc)[1]}"
        assert time.monotonic() < deadline, "no checkpoint after 90 s"
        time.sleep(0.01)
    os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
    status, output = finish(proc)
    assert status != 0, output
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 10 <= killed_at < TORCHRUN_STEPS and not out.exists(), "the kill came too late to test a resume"

    status, output = finish(torchrun(folders, out, "--resume"))
    assert status == 0, output
    assert f"{TORCHRUN_STEPS}/{TORCHRUN_STEPS} steps" in output

    straight_out, straight = uninterrupted
    status, output = finish(straight)
    assert status == 0, output
    # resumed after a dead worker == never interrupted: every weight, optimizer and RNG state, every loss
    assert_same_state(run_state(tmp_path / "m.run"), run_state(straight_out.with_suffix(".run")))
    assert logged(tmp_path / "m.run") == logged(straight_out.with_suffix(".run"))
    a, b = postfx.load(out), postfx.load(straight_out)
    assert all(np.array_equal(a.tensors[name], b.tensors[name]) for name in a.tensors)


def test_D6_torchrun_two_processes_rank0_writes(uninterrupted):
    out, proc = uninterrupted
    status, output = finish(proc)
    assert status == 0, output
    assert output.count(f"{TORCHRUN_STEPS}/{TORCHRUN_STEPS} steps") == 1                     # rank 0 reports
    run_dir = out.with_suffix(".run")
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.run", "m.safetensors"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]   # no stray temp files
    log = logged(run_dir)
    assert [line["step"] for line in log] == list(range(1, TORCHRUN_STEPS + 1))            # one writer, one line each
    assert all(line["world_size"] == 2 for line in log)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    model = postfx.load(out)
    assert model.meta["training"]["world_size"] == 2 and model.meta["training"]["steps_done"] == TORCHRUN_STEPS
