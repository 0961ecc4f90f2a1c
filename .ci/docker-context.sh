#!/usr/bin/env bash
# Checks the broker image's builder stage without a Docker engine. It lays out the build context
# as deploy/Dockerfile.dockerignore filters it, replays the stage's COPY steps in order (each
# source must be in the context), and at each of the stage's `cargo build` steps runs
# `cargo check` on what has been copied so far: the dependency layer with its stub targets
# (every target the manifest names must exist), then the sources (every file they embed, such
# as the web console's bundle, must have been copied).
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

# The builder stage, as steps: "copy SRC... DEST" and "build" (a RUN that runs cargo build,
# with the stub script when it runs it).
python3 - deploy/Dockerfile > "${work}/steps" <<'PY'
import shlex, sys
lines, current = [], ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if line.lstrip().startswith("#"):
        continue
    current += line[:-1] + " " if line.endswith("\\") else line
    if not line.endswith("\\"):
        lines.append(current.strip())
        current = ""
stage = False
for line in lines:
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
