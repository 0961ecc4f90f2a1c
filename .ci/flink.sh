#!/usr/bin/env bash
# Prepares a real Flink (from PyPI's apache-flink; 1.20.3 unless FLINKBROKER_FLINK_VERSION
# names another, e.g. 1.19.3 or 2.1.3) for the end-to-end tests, cached in a virtualenv per
# version, and prints the variables the tests read, for the caller to eval:
#
#   eval "$(.ci/flink.sh)"
#   eval "$(FLINKBROKER_FLINK_VERSION=2.1.3 .ci/flink.sh)"
#
# stdout carries only `export NAME=value` lines; progress goes to stderr. A fresh install
# takes about 70 s (apache-flink-libraries builds from a 231 MB sdist); later runs reuse it.
#
# The installation is left as pip made it: flink-python stays in opt/ only. The tests' clusters
# (tests/it/support/flink_cluster.rs) each assemble a private lib/ of symlinks, the
# distribution's jars plus that one, and start their daemons with it as FLINK_LIB_DIR, so they
# run in the layout of deploy/ while the venv stays usable as it is by anything else.
set -euo pipefail

flink_version="${FLINKBROKER_FLINK_VERSION:-1.20.3}"
if [ "${flink_version}" = "1.20.3" ]; then
  default_venv="${HOME}/.cache/flinkbroker/venv"
else
  default_venv="${HOME}/.cache/flinkbroker/venv-${flink_version}"
fi
venv="${FLINKBROKER_FLINK_VENV:-${default_venv}}"
debian_java_home="/usr/lib/jvm/java-17-openjdk-amd64"

log() { printf 'flink.sh: %s\n' "$*" >&2; }

# Java: Flink's scripts use JAVA_HOME, else `java` from PATH.
if [ -z "${JAVA_HOME:-}" ] && [ -x "${debian_java_home}/bin/java" ]; then
  JAVA_HOME="${debian_java_home}"
fi
if [ -n "${JAVA_HOME:-}" ]; then
  java="${JAVA_HOME}/bin/java"
else
  java="$(command -v java || true)"
fi
if [ -z "${java}" ] || ! "${java}" -version >/dev/null 2>&1; then
  log "no usable java (set JAVA_HOME or install openjdk-17-jre-headless)"
  exit 1
fi

installed_version() {
  "${venv}/bin/python" -c 'from importlib.metadata import version; print(version("apache-flink"))' 2>/dev/null || true
}

if [ "$(installed_version)" != "${flink_version}" ]; then
  log "installing apache-flink==${flink_version} into ${venv} (about 70 s)"
  if [ -e "${venv}" ] && [ ! -f "${venv}/pyvenv.cfg" ]; then
    log "${venv} exists and is not a virtualenv; refusing to install into it"
    exit 1
  fi
  mkdir -p "$(dirname "${venv}")"
  # On an existing venv (e.g. left by an interrupted run) this is a no-op; pip completes it.
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "apache-flink==${flink_version}" >&2
  if [ "$(installed_version)" != "${flink_version}" ]; then
    log "apache-flink ${flink_version} did not install into ${venv}"
    exit 1
  fi
else
  log "apache-flink ${flink_version} already in ${venv}"
fi

flink_home="$("${venv}/bin/python" -c 'import os, pyflink; print(os.path.dirname(os.path.abspath(pyflink.__file__)))')"
if [ ! -x "${flink_home}/bin/flink" ]; then
  log "${flink_home} has no bin/flink"
  exit 1
fi
python_jars=("${flink_home}"/opt/flink-python-*.jar)
if [ "${#python_jars[@]}" -ne 1 ] || [ ! -f "${python_jars[0]}" ]; then
  log "expected one opt/flink-python-*.jar in ${flink_home}, found: ${python_jars[*]}"
  exit 1
fi
log "FLINK_HOME ${flink_home}; $("${java}" -version 2>&1 | head -n 1)"

printf 'export FLINKBROKER_TEST_FLINK_HOME=%q\n' "${flink_home}"
printf 'export FLINKBROKER_TEST_PYTHON=%q\n' "${venv}/bin/python"
if [ -n "${JAVA_HOME:-}" ]; then
  printf 'export JAVA_HOME=%q\n' "${JAVA_HOME}"
fi
