#!/usr/bin/env bash
# Fuzzes the automation service's served OpenAPI document with schemathesis (PyPI, pinned), once
# per role (operate and read tokens), for a fixed budget: no 5xx, every response (status, content
# type, body) as the document says. The service runs on the real Pulumi engine (file backend, the
# cloud-free test program) when scripts/install-pulumi-engine.sh has built it, else on the scripted
# engine. The venv lives outside the repository: ${XDG_CACHE_HOME:-~/.cache}/udpmesh/schemathesis-<v>.
# Usage: scripts/run-schemathesis.sh [max examples per operation, default 30]
#        scripts/run-schemathesis.sh --install   (only create the venv; .ci/run does this before the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
MAX_EXAMPLES=${1:-30}
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/udpmesh/schemathesis-$VERSION"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "run-schemathesis: installing schemathesis $VERSION into $VENV" >&2
  python3 -m venv "$VENV" || { echo "run-schemathesis: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION" || { echo "run-schemathesis: pip install failed" >&2; exit 1; }
fi
[ "$MAX_EXAMPLES" = "--install" ] && { echo "run-schemathesis: schemathesis $VERSION ready in $VENV" >&2; exit 0; }
NODE=node_modules/.bin/node
OUT=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$PWD/$NODE" --import tsx test/automation/support/fuzzServer.ts >"$OUT/server.json" 2>"$OUT/server.log" &
SERVER=$!
for _ in $(seq 1 120); do [ -s "$OUT/server.json" ] && break; sleep 0.5; done
[ -s "$OUT/server.json" ] || { echo "run-schemathesis: the service did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }
field() { "$NODE" -e "process.stdout.write(JSON.parse(require('fs').readFileSync('$OUT/server.json','utf8')).$1)"; }
URL=$(field url)
echo "run-schemathesis: service at $URL on $(field engine)" >&2
status=0
for role in read operate; do
  TOKEN=$(field "$role")
  echo "run-schemathesis: role $role, $MAX_EXAMPLES examples per operation" >&2
  # Run from the temporary directory: schemathesis leaves a .schemathesis/ cache where it runs.
  (cd "$OUT" && "$VENV/bin/schemathesis" run "$URL/openapi.json" \
    --url "$URL" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --seed 11 \
    --no-color \
    --suppress-health-check all \
    --exclude-path /v1/jobs/{id}/events) \
    || status=1
done
exit $status
