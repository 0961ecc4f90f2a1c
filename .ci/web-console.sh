#!/usr/bin/env bash
# Builds the web console from clients/web (TypeScript generated from proto/, typecheck, bundle),
# checks that the bundle the broker embeds (clients/web/dist) is exactly what the sources build,
# then drives the console in Debian's Chromium (playwright-core) against the built broker and
# stand-in. Expects target/debug/flinkbroker and the stand-in example to be built. Screenshots
# are left in target/console-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  ${sudo} apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    ${sudo} apt-get update -q >/dev/null
    ${sudo} apt-get install -y -q --no-install-recommends chromium >/dev/null
  }
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"

cd clients/web
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
if ! git diff --quiet -- dist || [ -n "$(git status --porcelain -- dist)" ]; then
  git status --short -- dist
  echo "clients/web/dist differs from what the sources build: run 'npm run build' in clients/web and commit dist/" >&2
  exit 1
fi

target="${CARGO_TARGET_DIR:-${root}/target}"
FLINKBROKER_BIN="${target}/debug/flinkbroker" \
FLINKBROKER_STANDIN_BIN="${target}/debug/sql_gateway_standin" \
  timeout 600 node --test --test-timeout=120000 --test-reporter=spec tests/
