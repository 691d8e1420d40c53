"""`postfx bench` (postfx.bench): the quick grid through the CLI, the cell
schema, skipped cells saying why, the whole-frame table, the kernel ladder, and
the scripts run from a checkout. No timing is asserted: only that each run
completes and records what it measured."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from postfx import cli, reference
from postfx.bench import command, runners
from postfx.bench.grid import CELL_FIELDS, WHOLE_FRAME_FIELDS
from postfx.bench.sizes import parse_ints, parse_sizes
from postfx.testing.parity import FP32, assert_close, seeded
from postfx.testing.unet import reference_unet

REPO = Path(__file__).resolve().parent.parent
TIMINGS = ("first_run_ms", "min_ms", "median_ms", "max_ms", "fps", "gflops")


def _record(folder: Path, label: str) -> dict:
    return json.loads((folder / f"{label}.json").read_text())


def _check_cell(cell: dict, fields) -> None:
    assert set(cell) == set(fields), f"cell fields {sorted(set(cell) ^ set(fields))} differ from the schema"
    if cell["status"] == "ok":
        assert cell["runs"] == len(cell["times_ms"]) >= 1, cell
        assert cell["min_ms"] <= cell["median_ms"] <= cell["max_ms"], cell
        assert cell["fps"] > 0 and cell["skip_reason"] is None, cell
    else:
        assert cell["status"] == "skipped", cell
        assert isinstance(cell["skip_reason"], str) and cell["skip_reason"].strip(), f"skipped without a reason: {cell}"
        assert cell["median_ms"] is None and cell["fps"] is None, cell


def test_quick_runs_through_the_cli(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| depth | ngf | frame |" in printed and "gl-opt" in printed
    for suffix in (".json", ".csv", ".md", ".png"):
        assert (tmp_path / f"quick{suffix}").stat().st_size > 0, f"quick{suffix} not written"

    record = _record(tmp_path, "quick")
    assert record["schema"] == "postfx-bench/1"
    assert record["environment"]["gl"]["renderer"]
    assert record["ceiling"]["best_gflops"] > 0
    cells = record["cells"]
    for cell in cells:
        _check_cell(cell, CELL_FIELDS)
    assert {(c["backend"], c["depth"]) for c in cells} == {
        ("gl-opt", 2), ("gl-opt", 4), ("torch-cpu", 2), ("torch-cpu", 4), ("gl-naive", 2)}
    assert all((c["ngf"], c["width"], c["height"]) == (16, 256, 256) for c in cells)
    assert all(c["status"] == "ok" for c in cells if c["family"] == "gl")
    if runners.torch_or_none() is None:
        assert all(c["status"] == "skipped" for c in cells if c["family"] == "torch")
    assert record["config"]["command"].startswith("postfx bench --quick")

    with open(tmp_path / "quick.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cells) and tuple(rows[0]) == CELL_FIELDS
    assert "## Notes" in (tmp_path / "quick.md").read_text()


def test_skipped_cells_say_why(tmp_path):
    # A zero time limit: every cell that can run is run once and then skipped as too slow;
    # torch-cuda is skipped earlier on a machine without CUDA.
    argv = ["bench", "--depths", "1", "--ngf", "8", "--sizes", "32x32", "--backends", "gl-opt", "torch-cuda",
            "--repeat", "1", "--warmup", "0", "--max-seconds-per-cell", "0", "--no-plot", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    cells = _record(tmp_path, "bench")["cells"]
    assert [c["backend"] for c in cells] == ["gl-opt", "torch-cuda"]
    for cell in cells:
        _check_cell(cell, CELL_FIELDS)
        assert cell["status"] == "skipped"
    assert "--max-seconds-per-cell 0" in cells[0]["skip_reason"] and cells[0]["first_run_ms"] > 0
    assert "skipped: " in (tmp_path / "bench.md").read_text()


def test_whole_frame_table(tmp_path):
    argv = ["bench", "--no-grid", "--whole-frame", "--depths", "1", "--whole-frame-sizes", "64x48",
            "--repeat", "1", "--warmup", "0", "--no-plot", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    record = _record(tmp_path, "bench")
    assert record["cells"] == []
    cells = record["whole_frame"]
    assert [(c["depth"], c["width"], c["height"]) for c in cells] == [(0, 64, 48), (1, 64, 48)]
    for cell in cells:
        _check_cell(cell, WHOLE_FRAME_FIELDS)
        assert cell["status"] == "ok" and cell["scene_median_ms"] > 0
    assert cells[1]["pass_median_ms"] > 0 and cells[0]["pass_median_ms"] is None
    assert (tmp_path / "bench_whole_frame.csv").exists()


def test_kernel_ladder_through_the_cli(capsys):
    assert cli.main(["bench", "--ladder", "--sizes", "64x64", "--repeat", "1"]) == 0
    printed = capsys.readouterr().out
    assert "blocked" in printed and " ok" in printed
    assert "FAILED" not in printed and "not checked" not in printed


def test_bad_arguments_are_errors(tmp_path, capsys):
    assert cli.main(["bench", "--backends", "gl-fast", "--out", str(tmp_path)]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert cli.main(["bench", "--no-grid", "--out", str(tmp_path)]) == 2


def test_arguments_parse():
    assert parse_ints("1-3,5") == [1, 2, 3, 5]
    assert parse_sizes("720p,256,64x32,4k") == [(1280, 720), (256, 256), (64, 32), (3840, 2160)]
    assert command.BACKEND_NAMES == tuple(runners.BACKENDS)


def test_torch_unet_holds_the_reference_weights():
    torch = pytest.importorskip("torch")
    from postfx.testing.unet import torch_unet
    x = seeded((24, 40, 4), seed=3)
    with torch.no_grad():
        got = torch_unet(3, 8)(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    assert_close(got, reference.run(reference_unet(3, 8), x), what="torch_unet vs reference_unet d3 ngf8", tol=FP32)


def test_development_scripts_import_the_installed_package(tmp_path):
    """benchmarks/ holds scripts that import postfx like any user code: run from
    elsewhere, with no path set up for them."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_runtime.py"), "--size", "32x32",
                             "--depth", "2", "--ngf", "8", "--repeats", "1"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "renderer:" in result.stdout
    result = subprocess.run([sys.executable, "-m", "postfx.bench.ceiling"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "compute ceiling:" in result.stdout


def test_demo_flicker_script(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "demo_flicker.py"), "--frames", "3", "--size",
                             "64x48", "--temporal", "0", "0.5", "--json", "f.json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "f.json").read_text())
    assert [r["temporal"] for r in figures] == [0.0, 0.5]
    assert all(r["raw_change"] > 0 and r["ratio"] == r["stylized_change"] / r["raw_change"] for r in figures)
    assert "| ink | 0.5 |" in result.stdout


def test_spread_temporal_script(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "spread_temporal.py"), "--size", "64x48",
                             "--frames", "12", "--start", "5", "--json", "s.json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (figures,) = json.loads((tmp_path / "s.json").read_text())
    assert figures["frames_per_result"] > 1 and figures["scored_frames"] > 0
    assert set(figures["psnr_db_vs_whole_network"]) == {"spread", "spread, temporal 0.5",
                                                        "spread, temporal 0.5, unmoved"}


def test_bench_demo_script_with_the_temporal_mode(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_demo.py"), "--size", "64x48",
                             "--scales", "1", "--no-fp16", "--temporal", "0", "0.5", "--warmup", "1", "--frames", "2",
                             "--rounds", "1", "--json", "d.json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "d.json").read_text())["results"]
    assert [r["temporal"] for r in rows] == [0.0, 0.5] and all(r["frames"] == 2 for r in rows)
