#!/bin/sh
# Empty stand-ins for every target the workspace's manifests name, for the Docker build's
# dependency layer: cargo reads each target of every member, so the layer that builds only the
# dependencies needs a file at each target's path. Run in the build directory, next to
# Cargo.toml, with each crates/*/Cargo.toml copied.
set -eu
mkdir -p src benches
echo 'fn main() {}' > src/main.rs
touch src/lib.rs
for manifest in crates/*/Cargo.toml; do
  crate="$(dirname "${manifest}")"
  mkdir -p "${crate}/src"
  touch "${crate}/src/lib.rs"
done
# [[bench]] name = "x" lives at benches/x.rs; [[bin]] and [[example]] path = "…" where it says.
for manifest in Cargo.toml crates/*/Cargo.toml; do
  dir="$(dirname "${manifest}")"
  awk -v dir="${dir}" '
    /^\[\[bench\]\]/   { section = "bench"; next }
    /^\[\[(bin|example)\]\]/ { section = "path"; next }
    /^\[/              { section = ""; next }
    section == "bench" && /^name *=/ { split($0, q, "\""); print dir "/benches/" q[2] ".rs" }
    section == "path" && /^path *=/ { split($0, q, "\""); print dir "/" q[2] }
  ' "${manifest}" | while read -r target; do
    mkdir -p "$(dirname "${target}")"
    echo 'fn main() {}' > "${target}"
  done
done
