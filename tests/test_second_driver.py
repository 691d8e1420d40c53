"""The GL parity tests on a second OpenGL implementation: zink (OpenGL 4.6 over
Vulkan) on lavapipe, Mesa's CPU Vulkan driver. A different front end, a
different compiler path (GLSL -> NIR -> SPIR-V -> lavapipe): a kernel that only
works because of llvmpipe's leniency shows here. Runs the tests in a child
process (the suite's own context is llvmpipe); CI runs a subset, the full set
with POSTFX_ZINK_FULL=1 (scripts/promises.sh sets it)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# pytest runs, each a list of arguments (one -k per run: a second would replace the first)
SUBSET = [["tests/test_gl_ops.py", "-k", "B1_conv and (naive or blocked or cooperative) or B4 or B5"],
          ["tests/test_gl_network.py", "-k", "B2 and not 256x256 and not 1280"],
          ["tests/test_temporal_pass.py", "-k", "B1"]]
FULL = [["tests/test_gl_ops.py", "tests/test_gl_network.py", "tests/test_gl_norm.py", "tests/test_tuner.py"],
        ["tests/test_driver.py", "-k", "not C20"], ["tests/test_temporal_pass.py", "tests/test_scene_motion.py"]]
LAVAPIPE = glob.glob("/usr/share/vulkan/icd.d/lvp_icd*.json")


def zink_environment(tmp_path) -> dict:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    return dict(os.environ, LIBGL_ALWAYS_SOFTWARE="1", MESA_LOADER_DRIVER_OVERRIDE="zink",
                XDG_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1")


@pytest.mark.skipif(not LAVAPIPE, reason="no lavapipe Vulkan driver (Debian: mesa-vulkan-drivers; "
                                         "scripts/install.sh dev installs it)")
def test_gl_parity_on_zink_over_lavapipe(tmp_path, capsys):
    env = zink_environment(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "from postfx.gl.context import headless_context, renderer; "
                            "print(renderer(headless_context()))"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0 and "zink" in probe.stdout, f"not on zink: {probe.stdout}{probe.stderr}"
    for group in FULL if os.environ.get("POSTFX_ZINK_FULL") else SUBSET:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *group],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        tail = "\n".join(result.stdout.splitlines()[-15:])
        with capsys.disabled():
            print(f"\nzink ({probe.stdout.strip()}): {' '.join(group)}: {tail.splitlines()[-1] if tail else ''}")
        assert result.returncode == 0, f"{' '.join(group)} failed on zink:\n{tail}\n{result.stderr[-2000:]}"
