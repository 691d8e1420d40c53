"""Style filters (postfx.train.filters), `postfx dataset stylize`, and targets from a
user's folder (postfx.train.pairs.targets_from_folder, reliability D4)."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from postfx import cli
from postfx.dataset import load_index, load_view, render_views
from postfx.errors import InputError
from postfx.train.filter_parts import check_frame, value_noise
from postfx.train.filters import FILTERS, describe_filters, get_filter
from postfx.train.pairs import load_pair, load_targets_index, targets_from_folder

SIZE = (96, 64)         # (width, height)
VIEWS = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, gl_ctx):
    return render_views(tmp_path_factory.mktemp("filters") / "src", VIEWS, SIZE, seed=3, progress=False)


@pytest.fixture(scope="module")
def frames(dataset):
    info = load_index(dataset)
    return [load_view(dataset, i, info) for i in range(VIEWS)]


def test_registry_has_the_styles_and_describes_them():
    assert {"watercolor", "oil", "pencil", "ink", "toon"} <= set(FILTERS)
    assert [name for name, f in FILTERS.items() if f.uses_depth] == ["ink", "toon"]
    text = describe_filters()
    for name, f in FILTERS.items():
        assert f.name == name and f.description and "\n" not in f.description
        assert name in text and f.description in text
        defaults = dataclasses.asdict(f.params_type())
        assert defaults and all(f"{k}={v}" in text for k, v in defaults.items())
    assert "folder" in text


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filter_output_shape_determinism_and_effect(name, frames):
    style = FILTERS[name]
    for rgb, depth01 in frames:
        out = style(rgb, depth01)
        assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
        assert style(rgb.copy(), depth01.copy()).tobytes() == out.tobytes(), "same input, same bytes"
        change = np.abs(out.astype(np.int16) - rgb.astype(np.int16)).mean()
        assert change > 10.0, f"{name} barely changes the frame (mean |diff| {change:.2f} levels)"
        assert out.std() > 5, f"{name} flattened the frame to one colour"


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_only_depth_styles_read_depth(name, frames):
    rgb, depth01 = frames[0]
    other_depth = np.ascontiguousarray(depth01[:, ::-1])        # same values, other places
    same = FILTERS[name](rgb, depth01).tobytes() == FILTERS[name](rgb, other_depth).tobytes()
    assert same != FILTERS[name].uses_depth


def test_ink_fogs_toward_paper_with_depth(frames):
    rgb, _ = frames[0]
    near = FILTERS["ink"](rgb, np.full(rgb.shape[:2], 0.01, np.float32)).astype(np.float32)
    far = FILTERS["ink"](rgb, np.full(rgb.shape[:2], 0.9, np.float32)).astype(np.float32)
    # A flat depth has no silhouettes, so only the fog differs: far is paler and flatter.
    assert far.mean() > near.mean() + 40 and far.std() < 0.5 * near.std()


def _box_frame(box_depth: float, height: int = 360, width: int = 160):
    """A uniform grey frame whose depth holds a box at box_depth in front of a wall at 0.95:
    only depth can draw its outline."""
    rgb = np.full((height, width, 3), 140, np.uint8)
    depth = np.full((height, width), 0.95, np.float32)
    depth[100:260, 40:120] = box_depth
    return rgb, depth


def test_ink_outlines_depth_jumps_thinner_when_far():
    widths = {}
    for box_depth in (0.003, 0.5):
        rgb, depth = _box_frame(box_depth)
        out = FILTERS["ink"](rgb, depth).astype(np.int16).sum(axis=2)
        # The same frame with depth lines switched off: the same fog, no outline.
        unlined = FILTERS["ink"](rgb, depth, {"depth_edge": 10.0}).astype(np.int16).sum(axis=2)
        inked = out < unlined - 150
        assert inked[100:260, 40:120].any(), f"no outline around a box at depth {box_depth}"
        assert not inked[110:250, 50:110].any() and not inked[:90].any(), "lines only along the silhouette"
        widths[box_depth] = inked[180].sum()        # one row across the box: its two sides
    assert widths[0.003] >= 2 * widths[0.5] >= 2, f"near lines should be wider than far ones: {widths}"


def test_params_defaults_overrides_and_bad_values():
    ink = get_filter("ink")
    assert ink.params() == ink.params_type()
    assert ink.params(levels=3).levels == 3 and ink.params(fog_max=1).fog_max == 1.0
    assert ink.parse_params(["levels=4", "fog-max=0.5"]) == ink.params(levels=4, fog_max=0.5)
    assert get_filter("pencil").parse_params(["colour=true"]).colour is True
    for bad in ({"levels": 1}, {"levels": 2.5}, {"levels": "3"}, {"fog_max": float("nan")}, {"fog_max": True},
                {"nope": 1}):
        with pytest.raises(InputError):
            ink.params(**bad)
    for text in (["levels"], ["levels=x"], ["colour=maybe"]):
        with pytest.raises(InputError):
            (get_filter("pencil") if "colour" in text[0] else ink).parse_params(text)
    with pytest.raises(InputError, match="levels"):
        ink(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), ink.params_type(levels=0))
    fn, params = ink.bind({"levels": 3})
    assert params["levels"] == 3 and params == dataclasses.asdict(ink.params(levels=3))


def test_params_change_the_output(frames):
    rgb, depth01 = frames[0]
    for name, overrides in (("watercolor", {"seed": 1}), ("oil", {"seed": 1}), ("pencil", {"colour": True}),
                            ("ink", {"levels": 3})):
        assert not np.array_equal(FILTERS[name](rgb, depth01), FILTERS[name](rgb, depth01, overrides)), name


def test_unknown_style_names_the_styles():
    with pytest.raises(InputError) as info:
        get_filter("watercolour")
    assert all(name in str(info.value) for name in FILTERS)


def test_frame_contract_is_checked():
    rgb, depth = np.zeros((16, 24, 3), np.uint8), np.zeros((16, 24), np.float32)
    for bad_rgb, bad_depth in ((rgb.astype(np.float32), depth), (rgb[..., :2], depth), (rgb, depth[:, :20]),
                               (rgb, depth.astype(np.uint16)), (rgb, depth + 1.5), (rgb, depth * np.nan),
                               (rgb[:2], depth[:2])):
        with pytest.raises(InputError):
            check_frame(bad_rgb, bad_depth)
        with pytest.raises(InputError):
            FILTERS["ink"](bad_rgb, bad_depth)


def test_paper_noise_is_a_fixed_function_of_position():
    whole = value_noise((40, 60), 5.0, seed=2)
    assert np.array_equal(value_noise((20, 30), 5.0, seed=2), whole[:20, :30])
    assert not np.array_equal(value_noise((40, 60), 5.0, seed=3), whole)
    assert whole.dtype == np.float32 and -1 <= whole.min() < -0.3 and 0.3 < whole.max() <= 1


# --- the command line --------------------------------------------------------------

def test_cli_stylize_writes_targets_and_records_the_filter(dataset, tmp_path, capsys):
    out = tmp_path / "ink"
    assert cli.main(["dataset", "stylize", str(dataset), str(out), "--style", "ink", "--param", "levels=4",
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "stylized 'ink'" in printed and "ms / frame" in printed
    index = json.loads((out / "targets.json").read_text())
    assert index["style"] == "ink" and index["count"] == VIEWS and index["size"] == list(SIZE)
    assert index["params"] == dataclasses.asdict(get_filter("ink").params(levels=4))
    assert index["filter_ms_per_frame"]["mean"] > 0 and len(index["filter_ms_per_frame"]["per_view"]) == VIEWS
    info = load_targets_index(out)
    for i in range(VIEWS):
        assert (out / "target" / f"00000{i}.png").is_file()
        rgb, depth01, target = load_pair(out, i, info)
        assert np.array_equal(target, FILTERS["ink"](rgb, depth01, {"levels": 4}))


def test_cli_lists_styles_and_rejects_bad_use(dataset, tmp_path, capsys):
    for argv in (["dataset", "styles"], ["dataset", "stylize", "--list"]):
        assert cli.main(argv) == 0
        listed = capsys.readouterr().out
        assert all(name in listed for name in (*FILTERS, "folder"))
    for argv, expected in ((["--style", "inky"], "the styles are watercolor, oil, pencil, ink"),
                           (["--style", "ink", "--param", "level=3"], "levels"),
                           ([], "--style NAME"),
                           (["--style", "folder"], "--from DIR"),
                           (["--style", "oil", "--from", str(tmp_path)], "folder")):
        assert cli.main(["dataset", "stylize", str(dataset), str(tmp_path / "out"), *argv]) == 2
        assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- targets made elsewhere (reliability D4) ---------------------------------------------

def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)


def test_targets_from_folder_lists_every_bad_file_before_writing(dataset, tmp_path):
    width, height = SIZE
    folder = tmp_path / "photoshop"
    folder.mkdir()
    _save(folder / "000000.png", np.zeros((height + 1, width, 3), np.uint8))          # size mismatch
    (folder / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")        # corrupt
    # view 2 is missing
    views = 6
    many = render_views(tmp_path / "src6", views, SIZE, seed=3, progress=False)
    _save(folder / "000003.tif", np.zeros((height, width), np.float32) + 0.5)           # float grey
    good = np.asarray(Image.open(dataset / "color" / "000000.png"))
    png = folder / "000004.png"
    _save(png, good)
    truncated = png.read_bytes()[:len(png.read_bytes()) // 2]
    png.write_bytes(truncated)                                                        # truncated data
    _save(folder / "000005.png", good)                                                # two candidates
    _save(folder / "000005.jpg", good)
    out = tmp_path / "targets"
    with pytest.raises(InputError) as info:
        targets_from_folder(many, folder, out, progress=False)
    message = str(info.value)
    assert message.startswith(f"6 of {views} targets")
    for fragment in ("000000.png: the target is 96x65, expected 96x64", "000001.png: not an image file",
                     "000002.*: missing", "000003.tif: the target is a 32-bit float image",
                     "000004.png: cannot decode the target", "000005.*: 2 candidates"):
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert not out.exists(), "nothing is written when any target is bad"


def test_targets_from_an_empty_folder(dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as info:
        targets_from_folder(dataset, tmp_path / "empty", tmp_path / "out", progress=False)
    assert f"{VIEWS} of {VIEWS} targets" in str(info.value) and "holds no images" in str(info.value)
    assert all(f"00000{i}.*: missing" in str(info.value) for i in range(VIEWS))
    with pytest.raises(InputError, match="not a folder"):
        targets_from_folder(dataset, tmp_path / "nowhere", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_targets_from_a_good_folder_png_jpeg_and_grey(dataset, frames, tmp_path, capsys):
    folder = tmp_path / "made_elsewhere"
    folder.mkdir()
    inverted = [255 - rgb for rgb, _ in frames]
    _save(folder / "000000.png", inverted[0])
    _save(folder / "000001.JPG", inverted[1], quality=95)
    _save(folder / "000002.png", inverted[2][..., 1])                                  # 8-bit grey
    out = tmp_path / "targets"
    assert cli.main(["dataset", "stylize", str(dataset), str(out), "--from", str(folder), "--no-progress"]) == 0
    assert f"{VIEWS} targets from" in capsys.readouterr().out
    info = load_targets_index(out)
    assert info["style"] == "folder" and info["params"] == {"folder": "../made_elsewhere"}   # no machine paths
    assert info["filter_ms_per_frame"]["mean"] is None
    targets = [load_pair(out, i, info)[2] for i in range(VIEWS)]
    assert np.array_equal(targets[0], inverted[0])
    assert np.array_equal(targets[1], np.asarray(Image.open(folder / "000001.JPG").convert("RGB")))
    assert np.abs(targets[1].astype(np.int16) - inverted[1]).mean() < 4
    assert np.array_equal(targets[2], np.repeat(inverted[2][..., 1:2], 3, axis=2))
