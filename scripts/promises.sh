#!/usr/bin/env bash
# The figures behind README's "What postfx promises": runs every test of the reliability
# matrix (named test_<ROW>_..., e.g. test_C7_...) with POSTFX_PROMISES_OUT set, the soak
# at its full length (10000 frames), then prints the JSON figures the tests wrote (the
# folder's old *.json are removed first, so every figure printed is from this run).
#
#   bash scripts/promises.sh [pytest args]       figures in build/promises/ (or $POSTFX_PROMISES_OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${POSTFX_PROMISES_OUT:-$PWD/build/promises}"
mkdir -p "$out"
rm -f "$out"/*.json

rows=""
for row in A{1..11} B{1..6} C{1..21} D{1..6} E{1..12}; do
    rows="${rows:+$rows or }test_${row}_"
done

status=0
POSTFX_PROMISES_OUT="$out" POSTFX_SOAK_FRAMES="${POSTFX_SOAK_FRAMES:-10000}" \
    python3 -m pytest -q -k "$rows" "$@" tests/ || status=$?

python3 - "$out" <<'EOF'
import json
import sys
from pathlib import Path


def shown(value):
    if isinstance(value, list) and len(value) > 8 and all(isinstance(v, (int, float)) for v in value):
        return f"[{len(value)} values, {min(value)} .. {max(value)}]"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


files = sorted(Path(sys.argv[1]).glob("*.json"))
print(f"\n{len(files)} figure file(s) in {sys.argv[1]}")
for path in files:
    print(f"\n{path.name}")
    figures = json.loads(path.read_text())
    for key, value in (figures.items() if isinstance(figures, dict) else [("", figures)]):
        print(f"  {key:28} {shown(value)}")
EOF
exit $status
