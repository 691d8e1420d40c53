"""`postfx info` through the installed console script, and main() in-process."""
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from postfx import cli, save_model
from postfx.exporters.builder import build_model
from postfx.model_format import Layer

LAYERS = [Layer("enc1", "conv2d", ("input",), activation="leaky_relu", negative_slope=0.2,
                out_channels=8, kernel=4, stride=2, padding=1),
          Layer("dec1", "conv_transpose2d", ("enc1",), activation="tanh", out_channels=3, kernel=4, stride=2,
                padding=1)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    weights = {"enc1": (rng.standard_normal((8, 4, 4, 4)), rng.standard_normal(8)),
               "dec1": (rng.standard_normal((8, 3, 4, 4)), rng.standard_normal(3))}
    model = build_model(LAYERS, weights, input_channels=4, output="dec1", name="tiny_ink",
                        training={"epochs": 12, "loss": "l1+cgan"}, quality={"psnr_db": 28.25})
    path = tmp_path_factory.mktemp("cli") / "tiny_ink.safetensors"
    save_model(model, path)
    return path


def console_script() -> str:
    """The installed `postfx` entry point (beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name("postfx")
    found = str(beside) if beside.exists() else shutil.which("postfx")
    if not found:
        pytest.fail("the `postfx` console script is not installed; run `pip install -e .`")
    return found


def postfx_command(*args):
    return subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_info_prints_graph_parameters_and_cost(model_path):
    result = postfx_command("info", model_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("tiny_ink", "enc1", "dec1", "conv_transpose2d", "4 -> 8", "8 -> 3",
                     "params     907", "MACs/px    224", "r, g, b, depth", "epochs", "l1+cgan", "psnr_db", "28.25"):
        assert expected in out, f"{expected!r} missing from:\n{out}"


def test_info_json_prints_the_metadata(model_path):
    result = postfx_command("info", "--json", model_path)
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert meta["format"] == "postfx.model"
    assert [layer["name"] for layer in meta["layers"]] == ["enc1", "dec1"]


def test_info_on_a_pickle_fails_cleanly(tmp_path):
    path = tmp_path / "generator.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    result = postfx_command("info", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"postfx: error: {path}: this is a Python pickle")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_python_dash_m_postfx(model_path):
    result = subprocess.run([sys.executable, "-m", "postfx", "info", model_path], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MACs/px" in result.stdout


def test_main_returns_exit_codes(model_path, capsys):
    assert cli.main(["info", str(model_path)]) == 0
    assert cli.main(["info", "no_such_style"]) == 2
    assert "postfx: error: no bundled style 'no_such_style'" in capsys.readouterr().err
    assert cli.main([]) == 2                    # no command: usage error
    assert cli.main(["--version"]) == 0
    assert cli.main(["info", "--help"]) == 0


def test_info_escapes_control_characters(tmp_path, capsys):
    # The loader refuses control characters in the model name; other metadata
    # text (training notes, say) is free-form and must not reach the terminal raw.
    rng = np.random.default_rng(0)
    weights = {"enc1": (rng.standard_normal((8, 4, 4, 4)), None), "dec1": (rng.standard_normal((8, 3, 4, 4)), None)}
    model = build_model(LAYERS, weights, input_channels=4, output="dec1", training={"note": "\x1b]0;owned\x07"})
    save_model(model, tmp_path / "m.safetensors")
    assert cli.main(["info", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;owned\\x07" in out


def test_stylize_writes_the_stylized_picture(tmp_path, model_path):
    from PIL import Image
    rgb = np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    depth = np.linspace(0, 65535, 30 * 45).reshape(30, 45).astype(np.uint16)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    out = tmp_path / "out.png"
    result = postfx_command("stylize", str(tmp_path / "in.png"), "--depth", str(tmp_path / "depth.png"),
                            "-o", str(out), "--model", str(model_path))
    assert result.returncode == 0, result.stderr
    stylized = np.asarray(Image.open(out))
    assert stylized.shape == (30, 45, 3) and not np.array_equal(stylized, rgb)


def test_stylize_bad_input_is_a_clean_error(tmp_path, model_path):
    result = postfx_command("stylize", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"),
                            "--model", str(model_path))
    assert result.returncode == 2 and "missing.png: no such file (the image)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.png").exists()


def test_dataset_stylize_takes_options_between_its_folders(tmp_path, capsys, gl_ctx):
    from postfx import cli
    from postfx.dataset import render_views
    from postfx.train.pairs import load_targets_index
    views = render_views(tmp_path / "views", 1, (32, 24), seed=0, progress=False)
    assert cli.main(["dataset", "stylize", str(views), "--style", "ink", str(tmp_path / "t"), "--no-progress"]) == 0
    assert load_targets_index(tmp_path / "t")["style"] == "ink"
    assert cli.main(["dataset", "stylize", str(views), "--style", "ink", "--no-progress"]) == 2
    assert "needs SRC" in capsys.readouterr().err
    assert cli.main(["dataset", "stylize", str(views), str(tmp_path / "t"), "--bogus"]) == 2


def test_what_the_file_system_refuses_is_a_clean_error(tmp_path, capsys, gl_ctx):
    """A path the OS refuses outright (a name past NAME_MAX) is reported with the OS's
    reason and exit status 2, not a traceback; nothing is written."""
    from postfx import cli
    from postfx.dataset import render_views
    views = render_views(tmp_path / "views", 1, (32, 24), seed=0, progress=False)
    too_long = "x" * 300
    status = cli.main(["dataset", "stylize", str(views), str(tmp_path / "t"), "--from", too_long, "--no-progress"])
    assert status == 2
    assert "File name too long" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
