"""The fault matrix (docs/reliability.md) against the suite: every row is listed there
with its promise, and every row has at least one test named test_<ROW>_... in tests/.

Test names are read with ast from the files, so a row counts as kept only by a test
function that exists in the source (pytest is not asked which tests it collects).
With POSTFX_PROMISES_OUT=DIR set, writes DIR/rows.json: each row's promise and tests.
"""
import ast
import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "docs" / "reliability.md"
ROWS = ([f"A{i}" for i in range(1, 12)] + [f"B{i}" for i in range(1, 7)] + [f"C{i}" for i in range(1, 22)]
        + [f"D{i}" for i in range(1, 7)] + [f"E{i}" for i in range(1, 13)])
ROW_LINE = re.compile(r"- \*\*([A-Z]\d+)\*\* (.+)")
ROW_TEST = re.compile(r"test_([A-Z]\d+)_\w+")


def matrix() -> dict[str, str]:
    """Row id -> its one-line promise, in the order docs/reliability.md lists them."""
    rows = {}
    for line in MATRIX.read_text(encoding="utf-8").splitlines():
        match = ROW_LINE.fullmatch(line.strip())
        if match:
            assert match[1] not in rows, f"{MATRIX}: row {match[1]} is listed twice"
            rows[match[1]] = match[2]
    return rows


def collected_test_names(path: Path) -> list[str]:
    """Names of the test functions pytest would collect from one file: module level,
    and methods of Test* classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = [node.name for node in tree.body if isinstance(node, functions)]
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.startswith("Test")):
        names += [node.name for node in cls.body if isinstance(node, functions)]
    return [name for name in names if name.startswith("test_")]


def row_tests() -> dict[str, list[str]]:
    """Row id -> ["file.py::test_name", ...] for every test named after a row."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for name in collected_test_names(path):
            match = ROW_TEST.fullmatch(name)
            if match:
                found.setdefault(match[1], []).append(f"{path.name}::{name}")
    return found


def test_the_matrix_lists_every_row_once_with_its_promise():
    rows = matrix()
    assert list(rows) == ROWS, f"{MATRIX} lists {list(rows)}, expected {ROWS}"
    short = [row for row, promise in rows.items() if len(promise.split()) < 6]
    assert not short, f"rows without a real promise: {short}"


def test_every_row_has_a_named_test():
    found = row_tests()
    missing = [row for row in ROWS if row not in found]
    assert not missing, (f"rows with no test named test_<ROW>_...: {missing}\n"
                         + "\n".join(f"  {row}: {matrix().get(row, '?')}" for row in missing))
    out = os.environ.get("POSTFX_PROMISES_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        rows = {row: {"promise": promise, "tests": found[row]} for row, promise in matrix().items()}
        (Path(out) / "rows.json").write_text(json.dumps(rows, indent=1) + "\n")


def test_no_test_names_a_row_that_does_not_exist():
    unknown = {row: names for row, names in row_tests().items() if row not in ROWS}
    assert not unknown, f"tests named after rows the matrix does not have: {unknown}"


def test_the_audit_sees_tests_in_classes_and_ignores_helpers(tmp_path):
    # The audit itself must be able to fail: a file with a row test in a class, a
    # helper that only looks like one and a test of an unknown row.
    sample = tmp_path / "test_sample.py"
    sample.write_text("def test_A1_x(): pass\n"
                      "def helper_B2_y(): pass\n"
                      "class TestThing:\n    def test_C3_z(self): pass\n"
                      "class Other:\n    def test_D4_w(self): pass\n")
    assert collected_test_names(sample) == ["test_A1_x", "test_C3_z"]
    assert ROW_TEST.fullmatch("test_A10_every_flipped_byte").group(1) == "A10"
    assert ROW_TEST.fullmatch("test_A1") is None and ROW_TEST.fullmatch("test_a1_lowercase") is None
