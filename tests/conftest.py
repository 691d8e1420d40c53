import os
import shutil
import subprocess
import tempfile
import time

import pytest

# kernels="auto" (the default) times kernels at a network's first build at each size.
# The suite builds hundreds of networks: it runs them on cached or static choices (no
# timing), and keeps the user's kernel cache out of reach. The tuner's own tests pass a
# budget and a cache file of their own. Subprocesses (CLI, examples) inherit both.
os.environ["POSTFX_TUNING_BUDGET_S"] = "0"
os.environ["POSTFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="postfx-test-cache-")


@pytest.fixture(scope="session")
def gl_ctx():
    """The one headless GL context of the suite (the same one postfx.run uses)."""
    from postfx.gl.context import headless_context
    return headless_context()


@pytest.fixture(autouse=True)
def no_pending_gl_error():
    """After every test, no GL error is left pending in the shared context."""
    yield
    from postfx.gl import context
    ctx = getattr(context._local, "ctx", None)
    if ctx is not None and context.is_live(ctx):
        context.headless_context()          # current again, if a test made a window's context current
        assert ctx.error == "GL_NO_ERROR", "a GL error was left pending"


@pytest.fixture(scope="session")
def xvfb_display():
    """A private X server (Xvfb) for tests that open real glfw windows; each such test
    runs its window in a subprocess with DISPLAY set to this (GLX and the suite's EGL
    context do not mix in one process)."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed; scripts/install.sh installs it")
    display = ":87"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    yield display
    proc.terminate()
    proc.wait(timeout=10)
