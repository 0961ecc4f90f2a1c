#!/usr/bin/env bash
# Installs what CI needs beyond the Rust toolchain into a cached virtualenv.
set -euo pipefail
venv="${FLINKBROKER_CI_VENV:-${HOME}/.cache/flinkbroker/ci-venv}"
if [ ! -x "${venv}/bin/kubernetes-validate" ]; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
echo "python tools in ${venv}"
