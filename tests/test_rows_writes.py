"""Reliability D1: a kill, a crash or a full disk while writing a model file or a training
checkpoint leaves the old or the new complete file, never a torn one, and a temp file
left behind is never taken for the file.

Writers are real processes killed for real: a helper process imports postfx and torch
once, then forks one writer per trial that saves two versions of a file in turn, as
fast as it can, until the test kills it (SIGKILL, or SIGINT for a crash: an exception
in the middle of the write). The test kills either the moment the writer's temp file
has bytes in it, or after a random delay. A full disk is a 256 kB tmpfs (needs mount,
i.e. root) and, everywhere, a file size limit (RLIMIT_FSIZE: writes fail with EFBIG).
"""
import errno
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from promises import record_promise  # noqa: E402

import postfx  # noqa: E402
from postfx import errors  # noqa: E402
from postfx.exporters.builder import build_model  # noqa: E402
from postfx.model_file import serialize  # noqa: E402
from postfx.model_format import Layer  # noqa: E402
from postfx.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint  # noqa: E402

MODEL_NAME = "style.safetensors"
BIG_FLOATS = 1 << 20          # a 4 MiB checkpoint tensor: long enough a write to land kills in
SMALL_FLOATS = 16

# The forking helper. Commands on stdin, one JSON line each; replies on stdout.
#   {"op": "writer", "kind": "model" | "checkpoint", "dir": D}: fork a writer that saves
#     version 2 then version 1 of D's file, forever; reply {"pid"}, then {"signal"} or
#     {"exit"} once the test has stopped it.
#   {"op": "fsize", "kind": ..., "dir": D, "limit": N}: fork a process limited to N-byte
#     files that saves the small version, then the big one; replies {"pid"}, {"results"}
#     (what each save did; the two in either order) and {"exit"}.
HELPER = r"""
import json, os, resource, signal, sys
import torch
torch.set_num_threads(1)        # no OpenMP pool before fork
import postfx
from postfx.train.checkpoint import CHECKPOINT_NAME, save_checkpoint

models = {v: postfx.load(p) for v, p in json.loads(sys.argv[1]).items()}
states = {v: {"step": step, "weights": torch.full((n,), float(step))}
          for v, (step, n) in json.loads(sys.argv[2]).items()}

def save(kind, folder, version):
    if kind == "model":
        postfx.save_model(models[version], os.path.join(folder, "style.safetensors"))
    else:
        save_checkpoint(os.path.join(folder, CHECKPOINT_NAME), states[version])

def reply(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()

def fork(body):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            body()
        except KeyboardInterrupt:
            code = 130
        except BaseException as e:
            reply(crash=f"{type(e).__name__}: {e}")
            code = 1
        finally:
            os._exit(code)
    return pid

def write_forever(kind, folder):
    while True:
        save(kind, folder, "2")
        save(kind, folder, "1")

def fill_the_limit(kind, folder, limit):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    results = []
    for version in ("small", "big"):
        try:
            save(kind, folder, version)
            results.append({"ok": True})
        except Exception as e:
            results.append({"error": type(e).__name__, "errno": getattr(e, "errno", None),
                            "postfx": isinstance(e, postfx.errors.PostFXError), "message": str(e)})
    reply(results=results)

reply(ready=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "writer":
        pid = fork(lambda: write_forever(cmd["kind"], cmd["dir"]))
    else:
        pid = fork(lambda: fill_the_limit(cmd["kind"], cmd["dir"], cmd["limit"]))
    reply(pid=pid)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        reply(signal=os.WTERMSIG(status))
    else:
        reply(exit=os.WEXITSTATUS(status))
"""


def model(width: int, kernel: int, seed: int):
    """conv 4 -> width (3x3), conv width -> width (kernel), transposed conv back to RGB."""
    layers = [Layer("enc1", "conv2d", ("input",), activation="relu", out_channels=width, kernel=3, padding=1),
              Layer("enc2", "conv2d", ("enc1",), activation="relu", out_channels=width, kernel=kernel,
                    padding=kernel // 2),
              Layer("dec1", "conv_transpose2d", ("enc2",), activation="tanh", out_channels=3, kernel=2, stride=2)]
    rng = np.random.default_rng(seed)
    weights = {"enc1": (rng.standard_normal((width, 4, 3, 3)), rng.standard_normal(width)),
               "enc2": (rng.standard_normal((width, width, kernel, kernel)), rng.standard_normal(width)),
               "dec1": (rng.standard_normal((width, 3, 2, 2)), rng.standard_normal(3))}
    return build_model(layers, weights, input_channels=4, output="dec1", name=f"seed{seed}")


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Model files by version: "1" and "2" (5.3 MB each) for the kills, "small" and "big"
    for the full disk; their exact bytes, as save_model writes them."""
    folder = tmp_path_factory.mktemp("versions")
    paths, contents = {}, {}
    for version, (channels, kernel, seed) in {"1": (128, 9, 1), "2": (128, 9, 2), "small": (4, 1, 3),
                                              "big": (128, 9, 4)}.items():
        m = model(channels, kernel, seed)
        paths[version] = str(folder / f"{version}.safetensors")
        postfx.save_model(m, paths[version])
        contents[version] = serialize(m.meta, m.tensors)
    assert len(contents["1"]) > 4 << 20 and len(contents["small"]) < 4 << 10
    return paths, contents


# version: (step, floats in its "weights" tensor)
CHECKPOINTS = {"1": (1, BIG_FLOATS), "2": (2, BIG_FLOATS), "small": (10, SMALL_FLOATS), "big": (11, BIG_FLOATS)}


class Helper:
    """The HELPER process: one JSON line per command, replies read one at a time."""

    def __init__(self, model_paths: dict):
        self.proc = subprocess.Popen([sys.executable, "-c", HELPER, json.dumps(model_paths),
                                      json.dumps(CHECKPOINTS)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.read() == {"ready": True}

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the helper process died (exit {self.proc.wait()})"
        return json.loads(line)

    def send(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def helper(versions):
    h = Helper(versions[0])
    yield h
    h.close()


def temp_files(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != name]


def wait_for_bytes_in_a_temp_file(folder: Path, name: str, timeout=5.0) -> None:
    """Returns once a temp file beside `name` holds data, or after `timeout` (a writer
    that makes no temp file is then killed anyway, and judged by what it left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in temp_files(folder, name):
            try:
                if p.stat().st_size > 0:
                    return
            except FileNotFoundError:       # renamed into place meanwhile
                pass


def kill_trials(helper, folder: Path, kind: str, name: str, trials: int, check):
    """Kill `trials` writers (even trials the moment a temp file has bytes, odd ones at a
    random time); after each, check(folder) judges the file. Returns figures."""
    rng = random.Random(1)
    figures = {"kills": 0, "killed_mid_write": 0, "torn_temp_files": 0}
    for trial in range(trials):
        pid = helper.send(op="writer", kind=kind, dir=str(folder))["pid"]
        try:
            if trial % 2 == 0:
                wait_for_bytes_in_a_temp_file(folder, name)
            else:
                time.sleep(rng.uniform(0.0, 0.4))
        finally:
            os.kill(pid, signal.SIGKILL)
        status = helper.read()
        assert status == {"signal": signal.SIGKILL}, status
        figures["kills"] += 1
        litter = temp_files(folder, name)
        figures["killed_mid_write"] += bool(litter)
        figures["torn_temp_files"] += check(folder, litter)
        for p in litter:
            p.unlink()
    return figures


def check_model_folder(contents):
    def check(folder: Path, litter: list[Path]) -> int:
        data = (folder / MODEL_NAME).read_bytes()
        assert data in (contents["1"], contents["2"]), f"a torn model file: {len(data)} bytes"
        assert postfx.load(folder / MODEL_NAME).meta["name"] in ("seed1", "seed2")
        # What a kill leaves is a hidden temp file, never a second model beside the real one.
        assert sorted(p.name for p in folder.glob("*.safetensors")) == [MODEL_NAME]
        torn = 0
        for p in litter:
            assert re.fullmatch(rf"\.{re.escape(MODEL_NAME)}\.[0-9a-f]{{12}}\.tmp", p.name), p.name
            if p.read_bytes() not in (contents["1"], contents["2"]):
                torn += 1
                with pytest.raises(errors.ModelFileError):
                    postfx.load(p)
        return torn
    return check


def check_checkpoint_folder(folder: Path, litter: list[Path]) -> int:
    state = load_checkpoint(folder / CHECKPOINT_NAME)
    assert state["step"] in (1, 2) and torch.equal(state["weights"], torch.full((BIG_FLOATS,), float(state["step"])))
    torn = 0
    for p in litter:
        # The trainer deletes exactly these when it resumes (trainer.Trainer.restore).
        assert fnmatch.fnmatch(p.name, f".{CHECKPOINT_NAME}.*.tmp") and p.name != CHECKPOINT_NAME, p.name
        try:
            load_checkpoint(p)
        except errors.CheckpointError:
            torn += 1
    return torn


def test_D1_model_file_killed_while_written(tmp_path, versions, helper):
    _, contents = versions
    (tmp_path / MODEL_NAME).write_bytes(contents["1"])
    figures = kill_trials(helper, tmp_path, "model", MODEL_NAME, 12, check=check_model_folder(contents))
    assert figures["killed_mid_write"] >= 3, figures      # the kills did land inside writes
    record_promise("writes", key="model_file_sigkill", figures=figures)


def test_D1_checkpoint_killed_while_written(tmp_path, helper):
    save_checkpoint(tmp_path / CHECKPOINT_NAME, {"step": 1, "weights": torch.full((BIG_FLOATS,), 1.0)})
    figures = kill_trials(helper, tmp_path, "checkpoint", CHECKPOINT_NAME, 8, check=check_checkpoint_folder)
    assert figures["killed_mid_write"] >= 2, figures
    record_promise("writes", key="checkpoint_sigkill", figures=figures)


def test_D1_exception_mid_write_removes_the_temp_file(tmp_path, versions, helper):
    # SIGINT raises KeyboardInterrupt inside the writer, wherever it is: the write is
    # abandoned, its temp file deleted, and the file keeps its last complete version.
    _, contents = versions
    (tmp_path / MODEL_NAME).write_bytes(contents["1"])
    rng = random.Random(2)
    for _ in range(6):
        pid = helper.send(op="writer", kind="model", dir=str(tmp_path))["pid"]
        try:
            wait_for_bytes_in_a_temp_file(tmp_path, MODEL_NAME)
            time.sleep(rng.uniform(0.0, 0.02))
        finally:
            os.kill(pid, signal.SIGINT)
        assert helper.read() == {"exit": 130}
        data = (tmp_path / MODEL_NAME).read_bytes()
        assert data in (contents["1"], contents["2"]), f"a torn model file: {len(data)} bytes"
        assert [p.name for p in tmp_path.iterdir()] == [MODEL_NAME]


# --- a full disk ---------------------------------------------------------------------------

def assert_refused_and_kept(error: errors.FileWriteError, path: Path, old: bytes, code: int):
    assert error.errno == code, error
    message = str(error)
    assert str(path) in message and "previous file is unchanged" in message, message
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == [path.name], "the failed write left a temp file"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 kB tmpfs: writes beyond it fail with ENOSPC."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    why = "no mount command"
    if shutil.which("mount"):
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        why = None if result.returncode == 0 else result.stderr.strip()
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why}); test_D1_file_size_limit_keeps_the_old_file "
                    "covers the failed write")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_D1_disk_full_keeps_the_old_model_file_and_checkpoint(tiny_disk, versions):
    _, contents = versions
    path = tiny_disk / MODEL_NAME
    path.write_bytes(contents["small"])
    with pytest.raises(errors.FileWriteError) as info:
        postfx.save_model(postfx.load(versions[0]["big"]), path)
    assert_refused_and_kept(info.value, path, contents["small"], errno.ENOSPC)
    assert isinstance(info.value, OSError)
    path.unlink()

    path = tiny_disk / CHECKPOINT_NAME
    save_checkpoint(path, {"step": 1, "weights": torch.zeros(SMALL_FLOATS)})
    old = path.read_bytes()
    with pytest.raises(errors.FileWriteError) as info:
        save_checkpoint(path, {"step": 2, "weights": torch.zeros(BIG_FLOATS)})
    assert_refused_and_kept(info.value, path, old, errno.ENOSPC)
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("kind,name", [("model", MODEL_NAME), ("checkpoint", CHECKPOINT_NAME)])
def test_D1_file_size_limit_keeps_the_old_file(tmp_path, helper, kind, name):
    limit = 64 << 10
    replies = helper.send(op="fsize", kind=kind, dir=str(tmp_path), limit=limit)
    for _ in range(2):
        replies.update(helper.read())
    assert replies["exit"] == 0, replies
    small, big = replies["results"]
    assert small == {"ok": True}
    assert big["error"] == "FileWriteError" and big["postfx"] and big["errno"] == errno.EFBIG, big
    path = tmp_path / name
    assert "previous file is unchanged" in big["message"] and str(path) in big["message"]
    assert [p.name for p in tmp_path.iterdir()] == [name], "the failed write left a temp file"
    if kind == "model":
        assert postfx.load(path).meta["name"] == "seed3"
    else:
        assert load_checkpoint(path)["step"] == CHECKPOINTS["small"][0]


def test_D1_missing_folder_is_a_typed_error(tmp_path, versions):
    path = tmp_path / "no" / "such" / MODEL_NAME
    with pytest.raises(errors.FileWriteError, match="nothing was written"):
        postfx.save_model(postfx.load(versions[0]["small"]), path)
    assert not (tmp_path / "no").exists()
