#!/usr/bin/env bash
# Builds the Pulumi engine (the `pulumi` CLI and `pulumi-language-nodejs`) from Go modules, at the
# release of the @pulumi/pulumi in package-lock.json, into a cache outside the repository:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/udpmesh/pulumi/<version>/bin
# Why: our machines reach the Go module proxy but not GitHub releases or get.pulumi.com, so the official
# installer cannot run here. Users who already have the official Pulumi CLI on PATH need none of this.
# Only Go modules are downloaded (through the configured GOPROXY); nothing else.
set -euo pipefail

say() { printf '[engine] %s\n' "$*" >&2; }
fail() {
  printf '[engine] FAILED at step "%s": %s\n' "$STEP" "$1" >&2
  [ -n "${2:-}" ] && printf '[engine] try: %s\n' "$2" >&2
  exit 1
}
STEP="prerequisites"
trap 'rc=$?; [ $rc -ne 0 ] && printf "[engine] FAILED at step \"%s\" (exit %s); see the output above\n" "$STEP" "$rc" >&2' EXIT

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v go >/dev/null 2>&1 || fail "Go is not installed" "apt-get install golang-go, or install Go >= 1.24 from the Go site"
command -v node >/dev/null 2>&1 || fail "node is not on PATH" "run npm ci first"

STEP="read the @pulumi/pulumi version from package-lock.json"
VERSION="${PULUMI_ENGINE_VERSION:-$(node -e '
  const lock = require(process.argv[1]);
  const p = lock.packages && lock.packages["node_modules/@pulumi/pulumi"];
  if (!p) { process.exit(3); }
  process.stdout.write(p.version);
' "$ROOT/package-lock.json")}" || fail "no node_modules/@pulumi/pulumi entry in package-lock.json" "check package-lock.json"
TAG="v${VERSION#v}"


# The language host: the Go module proxy serves pkg/v3 and sdk/v3 but not the untagged module of the official
# pulumi-language-nodejs (403 for every version query, and no release commit in the proxy's answers), so we
# install our own Node.js host that speaks the same protocol (scripts/pulumi-engine/language-host.mjs), plus a
# pulumi-resource-pulumi-nodejs launcher for dynamic providers that uses the project's Node.js 24.
install_language_host() {
  STEP="install the language host"
  cp "$ROOT/scripts/pulumi-engine/language-host.mjs" "$BIN/language-host.mjs"
  cat > "$BIN/pulumi-language-nodejs" <<SH
#!/bin/sh
# udpmesh's Pulumi language host for Node.js (source: scripts/pulumi-engine/language-host.mjs in udpmesh).
NODE=node
[ -x ./node_modules/.bin/node ] && NODE=./node_modules/.bin/node
UDPMESH_PULUMI_VERSION=${TAG#v} exec "\$NODE" "\$(dirname "\$0")/language-host.mjs" "\$@"
SH
  cat > "$BIN/pulumi-resource-pulumi-nodejs" <<'SH'
#!/bin/sh
# Runs Pulumi dynamic providers with the project's Node.js (as @pulumi/pulumi's own launcher does with `node`).
NODE=node
[ -x ./node_modules/.bin/node ] && NODE=./node_modules/.bin/node
SCRIPT=$("$NODE" -e "console.log(require.resolve('@pulumi/pulumi/cmd/dynamic-provider'))") || exit 1
exec "$NODE" "$SCRIPT" "$@"
SH
  chmod +x "$BIN/pulumi-language-nodejs" "$BIN/pulumi-resource-pulumi-nodejs"
}

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/udpmesh/pulumi/${TAG#v}"
BIN="$CACHE/bin"
if [ -x "$BIN/pulumi" ] && [ "$("$BIN/pulumi" version 2>/dev/null)" = "$TAG" ]; then
  install_language_host
  say "pulumi $TAG already built: $BIN (nothing to build; language host refreshed)"
  trap - EXIT
  exit 0
fi

START=$(date +%s)
say "building pulumi $TAG into $BIN (cold: ~1-1.5 GB of modules and 10-20 min on 2 cores; warm: 1-2 min)"
WORK="$CACHE/build"
mkdir -p "$WORK" "$BIN"
cd "$WORK"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

STEP="create the throwaway main module"
say "$STEP"
PKGMOD="$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$TAG" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).GoMod||""))')" ||
  fail "the Go module proxy did not serve github.com/pulumi/pulumi/pkg/v3@$TAG" "check GOPROXY ($(go env GOPROXY)) or pick a served version with PULUMI_ENGINE_VERSION"
rm -f go.mod go.sum
go mod init local/pulumi-engine >/dev/null 2>&1
# Replaces in dependencies are ignored by Go, so copy pkg/v3's non-local replace directives.
node -e '
  const fs = require("fs");
  const mod = fs.readFileSync(process.argv[1], "utf8");
  const lines = [];
  for (const b of mod.match(/replace\s*\(([\s\S]*?)\)/g) || []) lines.push(...b.replace(/^replace\s*\(/, "").replace(/\)$/, "").split("\n"));
  for (const m of mod.matchAll(/^replace\s+([^(].*)$/gm)) lines.push(m[1]);
  const out = lines.map((l) => l.trim()).filter((t) => t && !t.startsWith("//") && t.includes("=>") && !t.split("=>")[1].trim().startsWith("."));
  fs.appendFileSync("go.mod", out.map((t) => "replace " + t).join("\n") + "\n");
' "$PKGMOD"
cat > tools.go <<GO
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO

STEP="download modules (go get)"
say "$STEP"
go get "github.com/pulumi/pulumi/pkg/v3@$TAG" "github.com/pulumi/pulumi/sdk/v3@$TAG" ||
  fail "go get could not resolve the modules" "retry (a proxy time-out is not final); or set GOTOOLCHAIN if a newer Go is asked for"
STEP="go mod tidy"
say "$STEP"
go mod tidy || fail "go mod tidy failed" "retry; if a module is not served, pick another version with PULUMI_ENGINE_VERSION"

FLAGS=(-trimpath -tags osusergo,grpcnotrace -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$TAG")
STEP="compile pulumi"
say "$STEP (the long step)"
go build "${FLAGS[@]}" -o "$BIN/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ||
  fail "go build of pulumi failed" "check free disk space (df -h) and memory; re-run: finished packages are cached in $(go env GOCACHE)"
mv "$BIN/pulumi.tmp" "$BIN/pulumi"
install_language_host

STEP="check the built CLI"
GOT="$("$BIN/pulumi" version)" || fail "the built pulumi does not run" "delete $CACHE and re-run"
[ "$GOT" = "$TAG" ] || fail "built pulumi reports '$GOT', expected $TAG" "delete $CACHE and re-run"
trap - EXIT
say "done in $(( $(date +%s) - START )) s: $BIN/pulumi ($GOT) and the language host"
