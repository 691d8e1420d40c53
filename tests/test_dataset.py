"""Dataset capture: files, formats, determinism, the loader, bad arguments, the CLI."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postfx.dataset import DEPTH_SCALE, load_index, load_motion, load_view, render_sequences, render_views
from postfx.errors import InputError
from postfx.frame_size import parse_size
from postfx.indexed_folder import FileMismatch
from postfx.temporal import reproject

SIZE = (64, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, gl_ctx):
    return render_views(tmp_path_factory.mktemp("ds") / "train", 4, SIZE, seed=5, progress=False)


def files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_writes_colour_depth_and_index(dataset):
    assert sorted(files(dataset)) == ([f"color/00000{i}.png" for i in range(4)]
                                      + [f"depth/00000{i}.png" for i in range(4)] + ["views.json"])
    for i in range(4):
        with Image.open(dataset / "color" / f"00000{i}.png") as img:
            assert img.mode == "RGB" and img.size == SIZE
        with Image.open(dataset / "depth" / f"00000{i}.png") as img:
            assert img.mode == "I;16" and img.size == SIZE
            assert np.asarray(img).dtype == np.uint16
    info = json.loads((dataset / "views.json").read_text())
    assert info["seed"] == 5 and info["size"] == list(SIZE) and info["count"] == len(info["views"]) == 4
    for i, view in enumerate(info["views"]):
        assert view["index"] == i and view["color"] == f"color/00000{i}.png"
        assert 0 < view["near"] < view["far"] and 0 <= view["time"]
        assert len(view["position"]) == 3 and all(np.isfinite(view["position"]))
        assert {"yaw", "pitch", "fov_y"} <= set(view)
    assert not list(dataset.rglob(".*.tmp")), "no temporary files left behind"


def test_load_view_round_trips(dataset):
    info = load_index(dataset)
    saw_sky = False
    for i in range(4):
        rgb, depth01 = load_view(dataset, i, info)
        assert rgb.shape == (SIZE[1], SIZE[0], 3) and rgb.dtype == np.uint8
        assert depth01.shape == (SIZE[1], SIZE[0]) and depth01.dtype == np.float32
        assert 0.0 <= depth01.min() and depth01.max() <= 1.0 and depth01.std() > 0
        assert rgb.std() > 5
        with Image.open(dataset / "color" / f"00000{i}.png") as img:
            assert np.array_equal(rgb, np.asarray(img))
        with Image.open(dataset / "depth" / f"00000{i}.png") as img:
            np.testing.assert_array_equal(depth01, np.asarray(img).astype(np.float32) / DEPTH_SCALE)
        saw_sky |= bool((depth01 == 1.0).any())
    assert saw_sky, "the sky is at the far plane: depth 1.0"


def test_same_seed_same_files_other_seed_other_views(dataset, tmp_path):
    again = render_views(tmp_path / "again", 4, SIZE, seed=5, progress=False)
    assert files(again) == files(dataset)
    prefix = render_views(tmp_path / "prefix", 2, SIZE, seed=5, progress=False)
    same = files(dataset)
    assert all(same[k] == v for k, v in files(prefix).items() if k != "views.json"), \
        "view i depends only on (seed, i)"
    held_out = render_views(tmp_path / "held_out", 4, SIZE, seed=6, progress=False)
    other = files(held_out)
    assert all(other[f"color/00000{i}.png"] != same[f"color/00000{i}.png"] for i in range(4))


def test_town_seed_is_separate(tmp_path):
    a = render_views(tmp_path / "a", 1, SIZE, seed=9, town_seed=2, progress=False)
    assert load_index(a)["town_seed"] == 2 and load_index(a)["seed"] == 9


@pytest.mark.parametrize("views, size", [(0, 8), (-1, 8), (True, 8), (2.5, 8), (2, 0), (2, (0, 10)),
                                         (2, (10, 5000)), (2, 100_000), (2, (8.5, 8)), (2, "64")])
def test_bad_arguments_are_refused(tmp_path, views, size):
    with pytest.raises(InputError):
        render_views(tmp_path / "out", views, size, seed=0, progress=False)
    assert not (tmp_path / "out").exists(), "nothing is created for bad arguments"


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        render_views(tmp_path / "file", 1, 8, seed=0, progress=False)
    with pytest.raises(InputError, match="cannot make the folder"):
        render_views(tmp_path / "file" / "sub", 1, 8, seed=0, progress=False)


def test_parse_size():
    assert parse_size("640x360") == (640, 360) and parse_size("256") == (256, 256) and parse_size("8X4") == (8, 4)
    assert parse_size("720p") == (1280, 720) and parse_size(" 4K ") == (3840, 2160)
    for bad in ("", "x", "12x", "1x2x3", "axb", "0", "0x10", "-5", "99999"):
        with pytest.raises(InputError):
            parse_size(bad)


def test_loader_errors(dataset, tmp_path):
    with pytest.raises(InputError, match="views.json"):
        load_view(tmp_path, 0)
    with pytest.raises(InputError, match="0..3"):
        load_view(dataset, 4)
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    (broken / "depth" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="000001.png"):
        load_view(broken, 1)
    (broken / "views.json").write_text("{")
    with pytest.raises(InputError):
        load_index(broken)


def test_progress_counter_without_tqdm(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)       # `import tqdm` now fails
    render_views(tmp_path / "p", 2, 8, seed=0, progress=True)
    assert "rendering 2/2 views" in capsys.readouterr().err


def _postfx(*args):
    beside = Path(sys.executable).with_name("postfx")
    exe = str(beside) if beside.exists() else shutil.which("postfx")
    if not exe:
        pytest.fail("the `postfx` console script is not installed; run `pip install -e .`")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_dataset_render(tmp_path):
    out = tmp_path / "cli"
    result = _postfx("dataset", "render", "--views", 2, "--size", 64, "--seed", 1, out)
    assert result.returncode == 0, result.stderr
    assert "2 views of 64x64" in result.stdout
    rgb, depth01 = load_view(out, 1)
    assert rgb.shape == (64, 64, 3) and depth01.shape == (64, 64)
    assert load_index(out)["seed"] == 1


@pytest.mark.parametrize("size, message", [("0", "out of range"), ("64x", "is not WIDTHxHEIGHT")])
def test_cli_bad_size_exits_2(tmp_path, size, message):
    result = _postfx("dataset", "render", "--views", 2, "--size", size, tmp_path / "bad")
    assert result.returncode == 2
    assert result.stderr.startswith("postfx: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bad").exists()


# --- sequences (colour, depth and motion of consecutive frames) ----------------------------

@pytest.fixture(scope="module")
def sequences(tmp_path_factory, gl_ctx):
    return render_sequences(tmp_path_factory.mktemp("seq") / "seq", 2, 4, SIZE, seed=8, progress=False)


def test_sequences_are_consecutive_frames_with_motion(sequences):
    info = load_index(sequences)
    assert (info["sequences"], info["frames"], info["fps"], info["count"]) == (2, 4, 30.0, 8)
    views = info["views"]
    assert [(v["sequence"], v["frame"]) for v in views] == [(s, f) for s in range(2) for f in range(4)]
    for s in range(2):
        run = views[4 * s: 4 * s + 4]
        np.testing.assert_allclose(np.diff([v["time"] for v in run]), 1 / 30, rtol=1e-9)
        steps = np.linalg.norm(np.diff([v["position"] for v in run], axis=0), axis=1)
        assert np.all(steps > 0.01) and np.ptp(steps) < 1e-6            # a steady flight, no jumps
    assert views[3]["position"] != views[4]["position"]                 # each sequence starts afresh
    for i in (1, 2, 3, 5):
        previous_rgb, previous_depth = load_view(sequences, i - 1, info)
        rgb, _ = load_view(sequences, i, info)
        motion = load_motion(sequences, i, info)
        assert motion.shape == (SIZE[1], SIZE[0], 3) and motion.dtype == np.float32
        warped, valid = reproject(previous_rgb, motion, previous_depth)
        backwards = reproject(previous_rgb, motion * np.float32([-1, -1, 1]))[0]
        current = rgb / np.float32(255)
        error = {name: float(((current - image) ** 2).mean(axis=-1)[valid].mean())
                 for name, image in (("warped", warped), ("still", previous_rgb / np.float32(255)),
                                     ("backwards", backwards))}
        # the motion explains the change, and better than the same motion the wrong way round
        # (sub-pixel steps at 64x48: bilinear resampling of an aliased frame keeps part of it)
        assert valid.mean() > 0.8
        assert error["warped"] < 0.85 * error["still"] and error["warped"] < 0.8 * error["backwards"]


def test_sequences_are_deterministic(sequences, tmp_path):
    again = render_sequences(tmp_path / "again", 2, 4, SIZE, seed=8, progress=False)
    assert files(again) == files(sequences)


@pytest.mark.parametrize("args, message", [((0, 4), "sequences"), ((2, 0), "frames"), ((2, True), "frames"),
                                           ((2, 2.5), "frames")])
def test_bad_sequence_arguments_are_refused(tmp_path, args, message):
    with pytest.raises(InputError, match=message):
        render_sequences(tmp_path / "s", *args, SIZE, seed=0, progress=False)
    with pytest.raises(InputError, match="fps"):
        render_sequences(tmp_path / "s", 1, 2, SIZE, seed=0, progress=False, fps=0)
    assert not (tmp_path / "s").exists()


def test_motion_is_checked_against_the_index(sequences, dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sequences, copy)
    info = load_index(copy)
    motion = copy / info["views"][2]["motion"]
    data = bytearray(motion.read_bytes())
    data[-5] ^= 0x40
    motion.write_bytes(bytes(data))
    with pytest.raises(FileMismatch, match="motion file"):
        load_motion(copy, 2, info)
    with pytest.raises(InputError, match="no motion"):
        load_motion(dataset, 0)
    doc = json.loads((copy / "views.json").read_text())
    doc["views"][5]["frame"] = 0
    (copy / "views.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not frame 1 of sequence 1"):
        load_index(copy)


def test_cli_dataset_render_sequences(tmp_path):
    out = tmp_path / "seq"
    result = subprocess.run([sys.executable, "-m", "postfx", "dataset", "render", str(out), "--sequences", "2",
                             "--frames", "3", "--size", "32x24", "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 sequences of 3 frames of 32x24" in result.stdout
    assert len(list((out / "motion").glob("*.npy"))) == 6
    both = subprocess.run([sys.executable, "-m", "postfx", "dataset", "render", str(tmp_path / "x"), "--views", "2",
                           "--sequences", "2"], capture_output=True, text=True)
    assert both.returncode == 2 and "not allowed with" in both.stderr
