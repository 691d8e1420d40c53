"""What a user installs: the wheel's contents, and the runtime without torch."""
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib

from postfx import save_model
from postfx.exporters.builder import build_model
from postfx.model_format import Layer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the wheel is built from: build/ and *.egg-info then never land
    in the working tree, and files added meanwhile do not race the comparison."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "pyproject.toml", src)
    for extra in ("README.md", "LICENSE", "MANIFEST.in"):
        if (REPO / extra).exists():
            shutil.copy(REPO / extra, src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in set(project["tool"]["setuptools"]["package-dir"].values()):
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: use the installed setuptools rather than fetch one (tests run offline).
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("postfx-*.whl")
    with zipfile.ZipFile(path) as z:
        yield z


def test_wheel_ships_the_shaders(source, wheel):
    shaders = sorted(p.name for p in (source / "shaders").iterdir() if p.suffix in (".comp", ".glsl"))
    assert shaders, "no .comp / .glsl files in shaders/"
    missing = [s for s in shaders if f"postfx/shaders/{s}" not in wheel.namelist()]
    assert not missing, f"shaders missing from the wheel: {missing}"


def test_wheel_ships_every_module(source, wheel):
    # The package list in pyproject.toml is explicit: a new subpackage that is
    # not added there would silently be left out of the wheel.
    names = set(wheel.namelist())
    expected = {f"postfx/exporters/{p.name}" for p in (source / "exporters").glob("*.py")}
    expected |= {f"postfx/{p.relative_to(source / 'postfx').as_posix()}" for p in (source / "postfx").rglob("*.py")}
    expected |= {f"postfx/styles/{p.name}" for p in (source / "postfx" / "styles").glob("*.safetensors")
                 if not p.is_symlink()}
    assert "postfx/exporters/builder.py" in expected and "postfx/bench/command.py" in expected
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"


def test_benchmarks_run_from_the_installed_wheel(wheel, tmp_path):
    # `postfx bench` from a wheel: the ceiling probe's shader comes from postfx.shaders, and
    # results default to ./postfx-bench/ (there is no checkout to put them in).
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                             str(site), wheel.filename], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    script = textwrap.dedent(f"""
        from pathlib import Path
        from postfx.bench import ceiling, report
        from postfx.gl.context import headless_context
        assert Path(ceiling.__file__).is_relative_to({str(site)!r}), ceiling.__file__
        assert not report.is_checkout()
        assert report.default_out_dir("llvmpipe") == Path.cwd() / "postfx-bench"
        result = ceiling.measure_ceiling(headless_context(), seconds=0.01, repeats=1)
        assert result["gflops"] > 0, result
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_wheel_declares_the_console_script(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    config = configparser.ConfigParser()
    config.read_string(wheel.read(entry_points).decode())
    assert config["console_scripts"]["postfx"].strip() == "postfx.cli:main"


def test_runtime_works_without_torch(tmp_path):
    rng = np.random.default_rng(0)
    layers = [Layer("enc1", "conv2d", ("input",), activation="relu", out_channels=8, kernel=4, stride=2, padding=1),
              Layer("dec1", "conv_transpose2d", ("enc1",), activation="tanh", out_channels=3, kernel=4, stride=2,
                    padding=1)]
    weights = {"enc1": (rng.standard_normal((8, 4, 4, 4)), None), "dec1": (rng.standard_normal((8, 3, 4, 4)), None)}
    path = tmp_path / "m.safetensors"
    save_model(build_model(layers, weights, input_channels=4, output="dec1"), path)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        import numpy as np
        import postfx
        import postfx.reference
        model = postfx.load({str(path)!r})
        x = np.random.default_rng(1).uniform(-1, 1, (7, 5, 4)).astype(np.float32)
        y = postfx.reference.run(model, x)
        assert y.shape == (7, 5, 3) and np.isfinite(y).all(), y.shape
        y_gl = postfx.run(model, x, backend="gl")                 # the GL runtime, EGL context
        assert np.abs(y_gl - y).max() < 1e-4, np.abs(y_gl - y).max()
        img = postfx.stylize(np.zeros((9, 11, 3), np.uint8), model=model)
        assert img.shape == (9, 11, 3)
        assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules
                       if sys.modules[name] is not None)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- what is committed records no machine -------------------------------------------------

ABSOLUTE_PATH = re.compile(r"^(/|[A-Za-z]:[\\/]|~)")


def strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def test_committed_metadata_and_results_hold_no_absolute_path():
    """The bundled styles and the results files name datasets, files and folders as the user
    typed them or by name -- never a machine's absolute layout -- and the styles name the
    filter whose look they imitate."""
    import postfx
    for name in postfx.bundled_styles():
        meta = postfx.load(name).meta
        found = [s for s in strings(meta) if ABSOLUTE_PATH.match(s)]
        assert not found, f"style {name}: {found[:3]}"
        assert meta["training"]["targets"]["filter"] == name        # each bundled style is its filter's look
    for path in sorted((REPO / "benchmarks" / "results").rglob("*.json")):
        found = [s for s in strings(json.loads(path.read_text())) if ABSOLUTE_PATH.match(s)]
        assert not found, f"{path.relative_to(REPO)}: {found[:3]}"
