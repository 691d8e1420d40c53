"""Property-based bad input (reliability E3, E5, E12): random edits of the dataset and
targets indices, random damage to image files, and random command lines over hostile
files -- only typed errors, no Python traceback, no hang. Bounded for CI (hypothesis
max_examples); scripts/promises.sh records the counts."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from promises import record_promise
from test_model_file import byte_mutations, edit_json

from postfx import cli, image_io
from postfx.dataset import render_views
from postfx.errors import InputError
from postfx.train.pairs import load_pair, load_targets_index, stylize_dataset

MAX_CASE_SECONDS = 1.0
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Tally:
    """Outcomes by kind, and the slowest case."""

    def __init__(self):
        self.outcomes, self.slowest = {}, 0.0

    def add(self, kind: str, seconds: float) -> None:
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1
        self.slowest = max(self.slowest, seconds)

    def figures(self) -> dict:
        return {"cases": sum(self.outcomes.values()), "outcomes": dict(sorted(self.outcomes.items())),
                "slowest_s": round(self.slowest, 3)}


@pytest.fixture(scope="module")
def pair_folders(tmp_path_factory, gl_ctx):
    root = tmp_path_factory.mktemp("fuzz")
    views = render_views(root / "views", 2, (24, 16), seed=1, progress=False)
    targets = stylize_dataset(views, root / "targets", "invert", lambda rgb, d: 255 - rgb, progress=False)
    return root, views, targets


def test_E3_random_index_edits_raise_only_input_errors(pair_folders, tmp_path):
    _, views, targets = pair_folders
    scratch_views, scratch_targets = tmp_path / "views", tmp_path / "targets"
    shutil.copytree(views, scratch_views)
    shutil.copytree(targets, scratch_targets)
    originals = {name: json.loads((folder / name).read_text())
                 for folder, name in ((scratch_views, "views.json"), (scratch_targets, "targets.json"))}
    tally = Tally()

    @FUZZ
    @given(data=st.data())
    def edit(data):
        which = data.draw(st.sampled_from(sorted(originals)))
        root = json.loads(json.dumps(originals[which]))
        edit_json(data, root)
        folder = scratch_views if which == "views.json" else scratch_targets
        for name, doc in originals.items():
            target = scratch_views if name == "views.json" else scratch_targets
            (target / name).write_text(json.dumps(root if name == which else doc))
        started = time.perf_counter()
        try:
            info = load_targets_index(scratch_targets)
            rgb, depth, target = load_pair(scratch_targets, 0, info)
            assert rgb.shape == target.shape and depth.shape == rgb.shape[:2]
            kind = "still valid"
        except InputError as e:
            kind = type(e).__name__
        tally.add(kind, time.perf_counter() - started)
        assert folder.is_dir()

    edit()
    figures = tally.figures()
    assert tally.slowest < MAX_CASE_SECONDS and figures["cases"] >= 100
    assert "InputError" in figures["outcomes"]
    record_promise("input_fuzz", key="index_edits", figures=figures)


def image_files(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (16, 24, 3), np.uint8)
    pictures = {"colour.png": Image.fromarray(rgb), "colour.jpg": Image.fromarray(rgb),
                "grey16.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
                "depth.tif": Image.fromarray(rng.uniform(0, 1, (16, 24)).astype(np.float32)),
                "palette.png": Image.fromarray(rgb).convert("P")}
    out = {}
    for name, image in pictures.items():
        buffer = io.BytesIO()
        image.save(buffer, format={"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[name.rsplit(".", 1)[1]])
        out[name] = buffer.getvalue()
    return out


def test_E5_random_damage_to_image_files_raises_only_input_errors(tmp_path):
    originals = image_files(tmp_path)
    tally = Tally()

    @FUZZ
    @given(data=st.data())
    def damage(data):
        name = data.draw(st.sampled_from(sorted(originals)))
        damaged = data.draw(byte_mutations(originals[name]))
        assume(damaged != originals[name])
        path = tmp_path / name
        path.write_bytes(damaged)
        for read in (image_io.read_color, image_io.read_depth):
            started = time.perf_counter()
            try:
                result = read(path)
                assert result.ndim in (2, 3) and result.shape[0] >= 1 and result.shape[1] >= 1
                kind = "read"
            except InputError:
                kind = "InputError"
            tally.add(kind, time.perf_counter() - started)

    damage()
    figures = tally.figures()
    assert tally.slowest < MAX_CASE_SECONDS, figures
    record_promise("input_fuzz", key="image_damage", figures=figures)


# --- the command line over hostile files ---------------------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory, pair_folders):
    """Paths a user might type, by mistake or on purpose."""
    root = tmp_path_factory.mktemp("hostile")
    Image.new("RGB", (24, 16), (90, 30, 200)).save(root / "ok.png")
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.png").write_bytes(os.urandom(300))
    (root / "truncated.png").write_bytes((root / "ok.png").read_bytes()[:40])
    (root / "text.json").write_text("{\"format\": ")
    (root / "folder").mkdir()
    os.mkfifo(root / "fifo.png")
    (root / "views_garbage").mkdir()
    (root / "views_garbage" / "views.json").write_text("[" * 5000)
    _, views, targets = pair_folders
    paths = {"ok.png", "empty.png", "garbage.png", "truncated.png", "text.json", "folder", "fifo.png",
             "views_garbage", "missing.png", "out.msp", "out.png", "missing/out.png"}
    return root, sorted(str(root / p) for p in paths) + [str(views), str(targets), "ink", "-", ""]


NUMBERS = ["0", "-1", "1", "2", "nan", "inf", "-inf", "1e9", "x", "0.5", "99999999999999999999"]
SIZES = ["32x24", "0x0", "-4x4", "x", "99999x2", "3", "1x1", "4097x10", ""]


def command_lines(paths: list[str]):
    """Whole command lines -- each command with its required arguments -- whose values come
    from the hostile pools, plus a few options drawn from the same pools."""
    path = st.sampled_from(paths)
    number = st.sampled_from(NUMBERS)
    size = st.sampled_from(SIZES)
    word = st.sampled_from(["ink", "watercolor", "nope", "auto", "naive", "é", "x" * 300])
    option = st.lists(st.sampled_from(["--depth", "--model", "--strength", "--scale", "--kernels", "--tuning-budget",
                                       "--fp16", "--overwrite"]).flatmap(
        lambda flag: st.just([flag]) if flag in ("--fp16", "--overwrite") else
        st.tuples(st.just(flag), st.one_of(path, number, word)).map(list)), max_size=2)
    tune_models = st.sampled_from([p for p in paths if p != "ink"])      # a real tuning is a test of its own
    small = st.sampled_from(["0", "1", "2", "-1", "x"])
    commands = [
        st.tuples(st.just(["info"]), path, st.sampled_from([[], ["--json"], ["--gl"]])),
        st.tuples(st.just(["info", "--gl"]), path, st.just(["--size"]), size),
        st.tuples(st.just(["stylize"]), path, st.just(["-o"]), path, option),
        st.tuples(st.just(["dataset", "render", "--views"]), small, st.just(["--size"]), size, st.just(["--seed"]),
                  number, path),
        st.tuples(st.just(["dataset", "stylize"]), path, path, st.sampled_from(["--style", "--from"]),
                  st.one_of(word, path)),
        st.tuples(st.just(["train"]), path, st.just(["--out"]), path,
                  st.just(["--steps", "2", "--no-progress", "--crop"]), st.sampled_from(["8", "16", "0", "x"])),
        st.tuples(st.just(["eval"]), st.one_of(path, word), path, st.sampled_from([[], ["--train"], ["--json"]]),
                  path),
        st.tuples(st.just(["export"]), path, path, st.just(["--input-range"]), number, number),
        st.tuples(st.just(["tune"]), tune_models, st.just(["--size"]), size),
        st.tuples(st.just(["demo", "--headless", "--frames"]), small, st.just(["--size"]), size, st.just(["--out"]),
                  path),
    ]

    def flatten(parts):
        argv = []
        for part in parts:
            argv += flatten(part) if isinstance(part, (list, tuple)) else [part]
        return argv
    return st.one_of(*commands).map(flatten)


def test_E12_no_command_line_ends_in_a_traceback(hostile, monkeypatch):
    root, paths = hostile
    monkeypatch.chdir(root)
    tally = Tally()

    @settings(FUZZ, max_examples=300)
    @given(argv=command_lines(paths))
    def run(argv):
        started = time.perf_counter()
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            status = cli.main(argv)           # an exception escaping here is the traceback a user would see
        assert status in (0, 2), (argv, status, sink.getvalue()[-2000:])
        tally.add(f"exit {status}", time.perf_counter() - started)

    run()
    figures = tally.figures()
    assert figures["cases"] >= 100 and "exit 2" in figures["outcomes"]
    with contextlib.suppress(OSError):
        print(f"\nCLI fuzz: {figures['cases']} command lines, {figures['outcomes']}", file=os.fdopen(
            os.dup(2), "w"))
    record_promise("input_fuzz", key="command_lines", figures=figures)
