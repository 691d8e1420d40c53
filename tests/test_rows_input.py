"""Bad input, tried on purpose (reliability rows E1-E12): datasets and targets folders
that cannot lie, one image reader and writer, arrays in with stated ranges, JSON indices
read through a schema, GL messages that say the real cause, a CLI with no tracebacks."""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import postfx
from postfx import cli, image_io
from postfx.dataset import load_index, load_view, render_views
from postfx.errors import FrameTooLarge, InputError
from postfx.indexed_folder import FileMismatch
from postfx.train.pairs import load_pair, load_targets_index, stylize_dataset, targets_from_folder

SIZE = (32, 24)


def invert(rgb, depth01):
    return 255 - rgb


def swap(rgb, depth01):
    return np.ascontiguousarray(rgb[..., ::-1])


@pytest.fixture(scope="module")
def folders(tmp_path_factory, gl_ctx):
    root = tmp_path_factory.mktemp("input")
    views = render_views(root / "views", 3, SIZE, seed=4, progress=False)
    targets = stylize_dataset(views, root / "targets", "invert", invert, progress=False)
    return root, views, targets


def fresh_copy(folders, tmp_path) -> tuple[Path, Path]:
    """A private copy of the dataset and its targets, side by side (the targets find their
    source at the same relative path)."""
    _, views, targets = folders
    shutil.copytree(views, tmp_path / "views")
    shutil.copytree(targets, tmp_path / "targets")
    return tmp_path / "views", tmp_path / "targets"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


# --- E1: an interrupted writer leaves a folder that reads as the old state or is refused -----

def test_E1_an_interrupted_restylize_leaves_a_folder_every_reader_refuses(folders, tmp_path, capsys):
    views, targets = fresh_copy(folders, tmp_path)
    assert load_targets_index(targets)["style"] == "invert"
    calls = []

    def interrupted(rgb, depth01):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return swap(rgb, depth01)
    with pytest.raises(KeyboardInterrupt):
        stylize_dataset(views, targets, "swap", interrupted, progress=False)
    assert not (targets / "targets.json").exists(), "the old index claiming 'invert' is gone"
    with pytest.raises(InputError, match="targets.json: not found"):
        load_targets_index(targets)
    for argv in (["eval", postfx.load("ink").path or "ink", targets],
                 ["train", targets, "--out", tmp_path / "m.safetensors", "--steps", "1", "--no-progress"]):
        status, _, err = run_cli(capsys, *argv)
        assert status == 2 and "targets.json: not found" in err, err
    stylize_dataset(views, targets, "swap", swap, progress=False)           # finished: readable again
    rgb, _, target = load_pair(targets, 1)
    assert np.array_equal(target, rgb[..., ::-1])


def test_E1_an_interrupted_rerender_leaves_no_index(folders, tmp_path, monkeypatch):
    views, _ = fresh_copy(folders, tmp_path)
    import postfx.dataset as dataset
    real, written = dataset.atomic_write, []

    def interrupted(path, data):
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt
        real(path, data)
    monkeypatch.setattr(dataset, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_views(views, 3, SIZE, seed=99, progress=False)
    with pytest.raises(InputError, match="views.json: not found"):
        load_index(views)


def test_E1_ctrl_c_in_the_cli_is_one_line_and_exit_130(tmp_path):
    out = tmp_path / "big"
    proc = subprocess.Popen([sys.executable, "-m", "postfx", "dataset", "render", "--views", "500", "--size",
                             "64x48", "--seed", "1", "--no-progress", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "color" / "000002.png").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "postfx: interrupted" and "Traceback" not in err
    with pytest.raises(InputError, match="views.json: not found"):
        load_index(out)


# --- E2: a file that is not what the index recorded is named -----------------------------

@pytest.mark.parametrize("what", ["target", "colour", "depth", "missing target"])
def test_E2_a_changed_file_is_refused_by_every_reader(folders, tmp_path, what, capsys):
    views, targets = fresh_copy(folders, tmp_path)
    path = {"target": targets / "target" / "000001.png", "colour": views / "color" / "000001.png",
            "depth": views / "depth" / "000001.png", "missing target": targets / "target" / "000001.png"}[what]
    if what == "missing target":
        path.unlink()
    else:
        image = np.asarray(Image.open(path)).copy()
        image.flat[0] ^= 1                                   # one value, one bit: still a valid picture
        Image.fromarray(image).save(path)
    with pytest.raises(FileMismatch, match=str(path.name)):
        load_pair(targets, 1)
    if what != "missing target":
        assert load_pair(targets, 0) is not None, "the other pairs still read"
    status, _, err = run_cli(capsys, "train", targets, "--out", tmp_path / "m.safetensors", "--steps", "1",
                             "--no-progress")
    assert status == 2 and str(path) in err
    if what in ("colour", "depth"):
        with pytest.raises(FileMismatch, match="views.json"):
            load_view(views, 1)
        status, _, err = run_cli(capsys, "dataset", "stylize", views, tmp_path / "again", "--style", "ink",
                                 "--no-progress")
        assert status == 2 and "not the one views.json recorded" in err


def test_E2_targets_of_a_dataset_rendered_again_are_refused(folders, tmp_path):
    views, targets = fresh_copy(folders, tmp_path)
    render_views(views, 3, SIZE, seed=5, progress=False)       # other pictures, same file names
    with pytest.raises(InputError, match="rendered again"):
        load_targets_index(targets)


# --- E3: every JSON index through a schema -----------------------------------------------

def mutated_views(views: Path, edit) -> None:
    path = views / "views.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)


VIEWS_EDITS = {
    "size as a string": lambda d: d.update(size="32x24"),
    "size too large": lambda d: d.update(size=[100000, 24]),
    "a view without color": lambda d: d["views"][0].pop("color"),
    "a view that is a string": lambda d: d["views"].__setitem__(1, "000001"),
    "a colour path outside": lambda d: d["views"][0].update(color="../../etc/passwd"),
    "an absolute colour path": lambda d: d["views"][0].update(color="/etc/passwd"),
    "a bad checksum": lambda d: d["views"][0].update(color_sha256="abc"),
    "count disagrees": lambda d: d.update(count=7),
    "count as true": lambda d: d.update(count=True),
    "zero views": lambda d: d.update(views=[], count=0),
    "views as an object": lambda d: d.update(views={}),
}


@pytest.mark.parametrize("edit", list(VIEWS_EDITS), ids=list(VIEWS_EDITS))
def test_E3_a_malformed_views_index_is_a_typed_error_naming_the_field(folders, tmp_path, edit, capsys):
    views, targets = fresh_copy(folders, tmp_path)
    mutated_views(views, VIEWS_EDITS[edit])
    with pytest.raises(InputError, match="views.json") as caught:
        load_index(views)
    assert not isinstance(caught.value, (KeyError, TypeError))
    status, _, err = run_cli(capsys, "dataset", "stylize", views, tmp_path / "t", "--style", "ink", "--no-progress")
    assert status == 2 and "views.json" in err


def test_E3_deep_nesting_and_garbage_are_typed_errors(folders, tmp_path):
    views, targets = fresh_copy(folders, tmp_path)
    (views / "views.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="views.json"):
        load_index(views)
    (targets / "targets.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(InputError, match="targets.json"):
        load_targets_index(targets)


@pytest.mark.parametrize("edit", ["no source", "source a number", "targets a string", "no targets",
                                  "target file outside"])
def test_E3_a_malformed_targets_index_is_a_typed_error(folders, tmp_path, edit):
    _, targets = fresh_copy(folders, tmp_path)
    path = targets / "targets.json"
    doc = json.loads(path.read_text())
    {"no source": lambda: doc.pop("source"), "source a number": lambda: doc.update(source=3),
     "targets a string": lambda: doc.update(targets="target/"), "no targets": lambda: doc.update(targets=[]),
     "target file outside": lambda: doc["targets"][0].update(file="../views/color/000000.png")}[edit]()
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="targets.json"):
        load_targets_index(targets)


# --- E4: views sharing a colour file name ----------------------------------------------------

def test_E4_views_sharing_a_file_name_do_not_share_a_target(folders, tmp_path):
    views, _ = fresh_copy(folders, tmp_path)
    (views / "color" / "b").mkdir()
    shutil.copy(views / "color" / "000001.png", views / "color" / "b" / "000000.png")
    doc = json.loads((views / "views.json").read_text())
    doc["views"][1]["color"] = "color/b/000000.png"           # the same base name as view 0's
    (views / "views.json").write_text(json.dumps(doc))
    targets = stylize_dataset(views, tmp_path / "t2", "invert", invert, progress=False)
    for i in range(3):
        rgb, _, target = load_pair(targets, i)
        assert np.array_equal(target, 255 - rgb), f"view {i} has its own target"
    with pytest.raises(InputError, match="share colour file names"):
        targets_from_folder(views, views / "color", tmp_path / "t3", progress=False)


# --- E5: one image reader ---------------------------------------------------------------------

def test_E5_modes_are_read_by_rule(tmp_path):
    grey16 = (np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    colour = image_io.read_color(tmp_path / "grey16.png")
    assert colour.shape == (24, 32, 3) and np.array_equal(colour[..., 0], ((grey16.astype(int) + 128) // 257))
    assert colour.max() < 255, "scaled to 8 bits, not clipped to white"
    np.testing.assert_allclose(image_io.read_depth(tmp_path / "grey16.png"), grey16 / 65535.0, atol=1e-7)
    Image.fromarray((grey16 // 257).astype(np.uint8)).save(tmp_path / "grey8.png")
    np.testing.assert_allclose(image_io.read_depth(tmp_path / "grey8.png"), (grey16 // 257) / 255.0, atol=1e-7)
    ramp = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray(ramp).save(tmp_path / "depth.tif")
    assert np.array_equal(image_io.read_depth(tmp_path / "depth.tif"), ramp), "float TIFF in [0, 1] as it is"
    Image.fromarray(ramp * 3).save(tmp_path / "far.tif")
    with pytest.raises(InputError, match=r"in \[0, 1\].*0 \.\. 3"):
        image_io.read_depth(tmp_path / "far.tif")
    palette = Image.fromarray((grey16 // 4096).astype(np.uint8), "P")
    palette.putpalette([v for i in range(256) for v in (i * 15 % 256, 255 - i, 7)])
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(image_io.read_color(tmp_path / "palette.png"),
                          np.asarray(palette.convert("RGB"))), "through its palette"
    Image.new("CMYK", (32, 24)).save(tmp_path / "cmyk.jpg")
    with pytest.raises(InputError, match="CMYK"):
        image_io.read_color(tmp_path / "cmyk.jpg")
    Image.new("RGB", (32, 24)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="one channel"):
        image_io.read_depth(tmp_path / "rgb.png")


def test_E5_exif_orientation_is_applied(tmp_path):
    upright = np.zeros((24, 32, 3), np.uint8)
    upright[:4, :, 0] = 255                                   # a red band along the top
    stored = np.rot90(upright, k=1)                           # what a camera held sideways stores
    img = Image.fromarray(np.ascontiguousarray(stored))
    exif = img.getexif()
    exif[0x0112] = 6                                          # "rotate 90 clockwise to show"
    img.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    assert image_io.probe(tmp_path / "phone.jpg")[1:3] == (32, 24)
    shown = image_io.read_color(tmp_path / "phone.jpg")
    assert shown.shape == (24, 32, 3) and shown[:4, :, 0].mean() > 200 and shown[-4:, :, 0].mean() < 50


# --- E6: sizes from the header, FIFOs ---------------------------------------------------------

def png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_E6_a_bomb_and_an_oversize_frame_are_refused_from_the_header(tmp_path, capsys):
    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    Image.new("L", (10000, 10000)).save(tmp_path / "big.png")       # 100 MP of zeros: a small file
    Image.new("RGB", (32, 24)).save(tmp_path / "small.png")
    for argv, expected in ((["bomb.png"], "GL_MAX_TEXTURE_SIZE"),
                           (["small.png", "--depth", "bomb.png"], "20000x20000"),
                           (["big.png"], "GL_MAX_SHADER_STORAGE_BLOCK_SIZE")):
        started = time.perf_counter()
        status, _, err = run_cli(capsys, "stylize", *[tmp_path / a if a.endswith(".png") else a for a in argv],
                                 "-o", tmp_path / "out.png")
        assert status == 2 and expected in err and "Traceback" not in err, err
        assert time.perf_counter() - started < 5, "refused from the header, nothing decoded"
    with pytest.raises(InputError, match="20000x20000.*limit is 16384"):
        image_io.read_color(tmp_path / "bomb.png")


def test_E6_a_fifo_is_refused_not_read(tmp_path, capsys):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    Image.new("RGB", (32, 24)).save(tmp_path / "ok.png")
    for argv in (["stylize", fifo, "-o", tmp_path / "o.png"], ["stylize", tmp_path / "ok.png", "--depth", fifo,
                                                               "-o", tmp_path / "o.png"]):
        status, _, err = run_cli(capsys, *argv)
        assert status == 2 and "not a regular file" in err


# --- E7: the output is checked before any work ------------------------------------------------

@pytest.mark.parametrize("out", ["o.msp", "o.xbm", "o.fits", "o", "."])
def test_E7_an_output_that_cannot_be_written_is_refused_first(tmp_path, capsys, out, monkeypatch):
    Image.new("RGB", (32, 24)).save(tmp_path / "in.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(postfx.api, "Stylizer", None)         # nothing may run before the refusal
    status, _, err = run_cli(capsys, "stylize", "in.png", "-o", out)
    assert status == 2 and "Traceback" not in err and ("is a folder" in err or "writes the output image as" in err)


def test_E7_the_input_is_not_overwritten_unless_asked(tmp_path, capsys):
    Image.new("RGB", (32, 24), (10, 200, 30)).save(tmp_path / "in.png")
    before = (tmp_path / "in.png").read_bytes()
    status, _, err = run_cli(capsys, "stylize", tmp_path / "in.png", "-o", tmp_path / "in.png")
    assert status == 2 and "also an input" in err and (tmp_path / "in.png").read_bytes() == before
    status, _, err = run_cli(capsys, "stylize", tmp_path / "in.png", "-o", tmp_path / "missing" / "o.png")
    assert status == 2 and "does not exist" in err
    status, _, err = run_cli(capsys, "stylize", tmp_path / "in.png", "-o", tmp_path / "in.png", "--overwrite")
    assert status == 0 and (tmp_path / "in.png").read_bytes() != before


# --- E8: arrays in --------------------------------------------------------------------------------

def test_E8_arrays_outside_their_dtype_range_are_refused_with_what_they_look_like(gl_ctx):
    rgb8 = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    with pytest.raises(InputError, match="Divide by 255"):
        postfx.stylize(rgb8.astype(np.float32))
    with pytest.raises(InputError, match="8-bit picture"):
        postfx.stylize(rgb8.astype(np.uint16))
    with pytest.raises(InputError, match="down to"):
        postfx.stylize(rgb8.astype(np.float32) / 127.5 - 1.0)
    want = postfx.stylize(rgb8)
    assert np.array_equal(postfx.stylize(rgb8.astype(np.float32), rgb_range=(0, 255)), want)
    assert np.array_equal(postfx.stylize(rgb8.astype(np.uint16) * 257), want)
    depth = np.full((24, 32), 30.0, np.float32)
    with pytest.raises(InputError, match="view distances"):
        postfx.stylize(rgb8, depth)
    with pytest.raises(InputError, match="without depth"):
        postfx.stylize(rgb8, near=0.1, far=100.0)
    with pytest.raises(InputError, match="drop near and far"):
        postfx.stylize(rgb8, (depth * 1000).astype(np.uint16), near=0.1, far=100.0)
    assert postfx.stylize(rgb8, depth, near=1.0, far=100.0).shape == (24, 32, 3)


def test_E8_near_far_without_a_depth_texture_are_refused_by_the_pass(gl_ctx):
    color = gl_ctx.texture((32, 24), 4)
    try:
        with postfx.PostFX(gl_ctx, "ink", kernels="optimized") as fx:
            with pytest.raises(InputError, match="without depth_tex"):
                fx.apply(color, near=-1.0, far=0.0)
    finally:
        color.release()


# --- E9: zero-view folders --------------------------------------------------------------------------

def test_E9_a_folder_of_zero_views_is_refused_everywhere(folders, tmp_path, capsys):
    views, targets = fresh_copy(folders, tmp_path)
    mutated_views(views, lambda d: d.update(views=[], count=0))
    checks = [["dataset", "stylize", views, tmp_path / "t", "--style", "ink", "--no-progress"],
              ["train", targets, "--out", tmp_path / "m.safetensors", "--no-progress"],
              ["eval", "ink", targets]]
    for argv in checks:
        status, out, err = run_cli(capsys, *argv)
        assert status == 2 and "'count' is 0, expected 1" in err and "nan" not in out, (argv, err)


# --- E10: the GL messages say the real cause ------------------------------------------------------

def test_E10_a_frame_beyond_the_texture_limit_is_refused_before_any_texture(gl_ctx):
    limit = gl_ctx.info["GL_MAX_TEXTURE_SIZE"]
    with pytest.raises(FrameTooLarge, match=f"GL_MAX_TEXTURE_SIZE {limit}"):
        postfx.stylize(np.zeros((8, limit + 1, 3), np.uint8))
    assert gl_ctx.error == "GL_NO_ERROR"


@pytest.mark.parametrize("released", ["color", "depth", "target"])
def test_E10_a_released_texture_is_refused_before_binding(gl_ctx, released):
    textures = {"color": gl_ctx.texture((32, 24), 4), "depth": gl_ctx.depth_texture((32, 24)),
                "target": gl_ctx.texture((32, 24), 4)}
    textures[released].release()
    try:
        with postfx.PostFX(gl_ctx, "ink", kernels="optimized") as fx:
            with pytest.raises(InputError, match="released"):
                fx.apply(textures["color"], textures["depth"], near=0.1, far=10.0, target=textures["target"])
        assert gl_ctx.error == "GL_NO_ERROR"
    finally:
        for name, texture in textures.items():
            if name != released:
                texture.release()


def test_E10_hints_name_options_the_cli_has(tmp_path, capsys):
    Image.new("L", (6000, 6000)).save(tmp_path / "wide.png")
    status, _, err = run_cli(capsys, "stylize", tmp_path / "wide.png", "-o", tmp_path / "o.png")
    assert status == 2 and "internal scale" in err
    parser_help = cli.build_parser()._subparsers._group_actions[0].choices["stylize"].format_help()
    for option in ("--scale", "--fp16", "--kernels"):
        assert option in parser_help, f"the hint may name {option}: the CLI must have it"


# --- E11: flags and paths the CLI checks by name -------------------------------------------------------

def test_E11_bad_flags_and_paths_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.onnx").mkdir()
    cases = [(["export", "x.onnx", "y.safetensors", "--input-range", "nan", "1"], "--input-range nan 1"),
             (["export", "x.onnx", "y.safetensors", "--input-range", "1", "1"], "LO < HI"),
             (["export", "x.onnx", "y.safetensors", "--output-range", "0", "inf"], "--output-range"),
             (["export", "dir.onnx", "y.safetensors"], "is a folder"),
             (["demo", "--headless", "--frames", "1", "--size", "32x24", "--out", "missing_dir/d.mp4"],
              "does not exist")]
    for argv, expected in cases:
        status, _, err = run_cli(capsys, *argv)
        assert status == 2 and expected in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "missing_dir").exists()


def test_E8_an_rgbd_model_given_no_depth_warns_once(gl_ctx):
    import warnings

    from postfx.errors import MissingDepthWarning
    rgb = np.zeros((16, 24, 3), np.uint8)
    with pytest.warns(MissingDepthWarning, match="far plane"):
        postfx.stylize(rgb, model="ink")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")           # Python's own filter: once per place
        for _ in range(3):
            postfx.stylize(rgb, model="ink")
    assert sum(issubclass(w.category, MissingDepthWarning) for w in caught) == 1
