#!/usr/bin/env bash
# Installs everything the test suite needs, checks the code with the linter configured in
# pyproject.toml (zero findings), and runs the suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
python3 -m ruff check postfx exporters benchmarks tests examples
exec python3 -m pytest -q "$@"
