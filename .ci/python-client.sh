#!/usr/bin/env bash
# Installs the Python client from clients/python (its gRPC stubs are generated from proto/ while
# it is built) into the CI virtualenv and runs its tests against the built broker and stand-in.
# Expects target/debug/flinkbroker and the stand-in example to be built.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FLINKBROKER_CI_VENV:-${HOME}/.cache/flinkbroker/ci-venv}"
[ -x "${venv}/bin/python" ] || python3 -m venv "${venv}"
# Uninstalled first so that the package (and its stubs) is always built from this checkout.
"${venv}/bin/pip" uninstall --quiet --yes flinkbroker-client 2>/dev/null || true
"${venv}/bin/pip" install --quiet --disable-pip-version-check "./clients/python[test,pandas]"
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
FLINKBROKER_BIN="${target}/debug/flinkbroker" \
FLINKBROKER_STANDIN_BIN="${target}/debug/sql_gateway_standin" \
  "${venv}/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests
