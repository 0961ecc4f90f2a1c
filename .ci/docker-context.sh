#!/usr/bin/env bash
# Checks the broker image's builder stage without a Docker engine. It lays out the build context
# as deploy/Dockerfile.dockerignore filters it, replays the stage's COPY steps in order (each
# source must be in the context), and at each of the stage's `cargo build` steps runs
# `cargo check` on what has been copied so far: the dependency layer with its stub targets
# (every target the manifest names must exist), then the sources (every file they embed, such
# as the web console's bundle, must have been copied).
#
# It also replays deploy/Dockerfile.flink-python's layout step (flink-python into lib/, Beam and
# pemja parent-first) on a copy of the Flink distribution that FLINKBROKER_TEST_FLINK_HOME names
# (`eval "$(.ci/flink.sh)"` sets it; the PyPI distribution has the image's bin/, conf/, lib/ and
# opt/), and checks what it leaves behind. Without that variable it says it skipped the replay.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
context="${work}/context"
build="${work}/build"
mkdir -p "${context}" "${build}"

sed -n 's/^!//p' deploy/Dockerfile.dockerignore | while read -r path; do
  [ -e "${path}" ] || { echo "deploy/Dockerfile.dockerignore lets in ${path}, which does not exist" >&2; exit 1; }
  mkdir -p "${context}/$(dirname "${path}")"
  cp -R "${path}" "${context}/${path}"
done

# Prints a Dockerfile's instructions, one a line: comments left out, continued lines joined.
instructions() {
  python3 - "$1" <<'PY'
import sys
current = ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if line.lstrip().startswith("#"):
        continue
    current += line[:-1] + " " if line.endswith("\\") else line
    if not line.endswith("\\"):
        if current.strip():
            print(current.strip())
        current = ""
PY
}

# The builder stage, as steps: "copy SRC... DEST" and "build" (a RUN that runs cargo build,
# with the stub script when it runs it).
instructions deploy/Dockerfile > "${work}/instructions"
python3 - "${work}/instructions" > "${work}/steps" <<'PY'
import shlex, sys
stage = False
for line in open(sys.argv[1]).read().splitlines():
    words = line.split(None, 1)
    if not words:
        continue
    if words[0] == "FROM":
        stage = line.split()[-1] == "builder"
        continue
    if not stage:
        continue
    if words[0] == "COPY" and "--from" not in line:
        print("copy " + " ".join(shlex.split(words[1])))
    elif words[0] == "RUN" and "cargo build" in line:
        print("build stubs" if "docker-stubs.sh" in line else "build")
PY

builds=0
while read -r kind rest; do
  case "${kind}" in
    copy)
      read -r -a args <<< "${rest}"
      dest="${args[${#args[@]}-1]}"
      for src in "${args[@]:0:${#args[@]}-1}"; do
        [ -e "${context}/${src}" ] || { echo "deploy/Dockerfile copies ${src}, which the build context does not hold" >&2; exit 1; }
        if [ "${dest%/}" != "${dest}" ] || [ "${dest}" = "." ] || [ "${dest}" = "./" ]; then
          mkdir -p "${build}/${dest}"
          cp -R "${context}/${src}" "${build}/${dest}/"
        elif [ -d "${context}/${src}" ]; then
          # Like COPY, a directory's contents merge into the destination directory.
          mkdir -p "${build}/${dest}"
          cp -R "${context}/${src}/." "${build}/${dest}"
        else
          mkdir -p "${build}/$(dirname "${dest}")"
          cp -R "${context}/${src}" "${build}/${dest}"
        fi
      done
      ;;
    build)
      builds=$((builds + 1))
      if [ "${rest}" = "stubs" ]; then
        (cd "${build}" && sh deploy/docker-stubs.sh)
      fi
      echo "builder stage, cargo build #${builds}: cargo check on the files copied so far"
      (cd "${build}" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${root}/target}" \
        cargo check --quiet --locked --bin flinkbroker)
      if [ "${rest}" = "stubs" ]; then rm -rf "${build}/src" "${build}"/crates/*/src; fi
      ;;
  esac
done < "${work}/steps"
[ "${builds}" -ge 2 ] || { echo "expected two cargo build steps in deploy/Dockerfile's builder stage, found ${builds}" >&2; exit 1; }
echo "deploy/Dockerfile's builder stage has every file it needs"

if [ -z "${FLINKBROKER_TEST_FLINK_HOME:-}" ]; then
  echo "skipped deploy/Dockerfile.flink-python's layout step: FLINKBROKER_TEST_FLINK_HOME is not set"
  exit 0
fi
# The RUN step that calls config-parser-utils.sh, as one shell command, with /opt/flink moved to a
# scratch copy (lib/ as symlinks) and chown a no-op: there is no flink user here.
flink="${work}/flink"
mkdir -p "${flink}/lib"
cp -R "${FLINKBROKER_TEST_FLINK_HOME}/bin" "${FLINKBROKER_TEST_FLINK_HOME}/conf" "${FLINKBROKER_TEST_FLINK_HOME}/opt" "${flink}/"
ln -s "${FLINKBROKER_TEST_FLINK_HOME}"/lib/* "${flink}/lib/"
instructions deploy/Dockerfile.flink-python > "${work}/flink-python.instructions"
python3 - "${work}/flink-python.instructions" "${flink}" > "${work}/layout.sh" <<'PY'
import sys
steps = open(sys.argv[1]).read().splitlines()
found = [step for step in steps if step.startswith("RUN ") and "config-parser-utils.sh" in step]
if len(found) != 1:
    sys.exit(f"expected one RUN step calling config-parser-utils.sh in deploy/Dockerfile.flink-python, found {len(found)}")
print("chown() { :; }")
print(found[0][len("RUN "):].replace("/opt/flink", sys.argv[2]))
PY
(sh "${work}/layout.sh" > "${work}/layout.log" 2>&1) || { cat "${work}/layout.log" >&2; echo "deploy/Dockerfile.flink-python's layout step failed" >&2; exit 1; }
jars=("${flink}"/lib/flink-python-*.jar)
[ "${#jars[@]}" -eq 1 ] && [ -f "${jars[0]}" ] && [ ! -L "${jars[0]}" ] || { echo "deploy/Dockerfile.flink-python's layout step left no flink-python jar in lib/" >&2; exit 1; }
grep -A2 '^classloader:' "${flink}/conf/config.yaml" | grep -q 'additional: org.apache.beam.;pemja.$' || {
  echo "deploy/Dockerfile.flink-python's layout step did not set classloader.parent-first-patterns.additional in config.yaml:" >&2
  cat "${flink}/conf/config.yaml" >&2
  exit 1
}
echo "deploy/Dockerfile.flink-python's layout step puts flink-python in lib/ and Beam and pemja parent-first"
