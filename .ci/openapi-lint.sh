#!/usr/bin/env bash
# Lints the OpenAPI document a running bazaar serves with the Redocly CLI (npm, pinned in
# .ci/node/package-lock.json), recommended rules: it must have no error and no warning.
# Usage: .ci/openapi-lint.sh http://127.0.0.1:PORT
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1
if [ ! -x .ci/node/node_modules/.bin/redocly ]; then
  (cd .ci/node && npm ci --no-audit --no-fund --silent)
fi
doc=$(mktemp --suffix=.json)
trap 'rm -f "$doc"' EXIT
python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' "$base/openapi.json" "$doc"
report=$(.ci/node/node_modules/.bin/redocly lint "$doc" --extends recommended --format json 2>/dev/null || true)
python3 - "$report" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
totals = report.get("totals", {})
for p in report.get("problems", []):
    where = ", ".join(l.get("pointer", "") for l in p.get("location", []))
    print(f"  {p.get('severity')}: {p.get('ruleId')}: {p.get('message')} at {where}")
print(f"redocly lint: {totals.get('errors', '?')} errors, {totals.get('warnings', '?')} warnings")
sys.exit(0 if totals.get("errors") == 0 and totals.get("warnings") == 0 else 1)
PY
