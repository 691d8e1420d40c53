#!/usr/bin/env bash
# Installs everything the test suite needs and runs it (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
exec python3 -m pytest -q "$@"
