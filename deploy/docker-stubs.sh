#!/bin/sh
# Empty stand-ins for every target Cargo.toml names, for the Docker build's dependency layer:
# cargo reads each target the manifest declares, so the layer that builds only the dependencies
# needs a file at each target's path. Run in the build directory, next to Cargo.toml.
set -eu
mkdir -p src benches examples
echo 'fn main() {}' > src/main.rs
touch src/lib.rs
# [[bench]] name = "x" lives at benches/x.rs; [[example]] path = "…" where it says.
awk '
  /^\[\[bench\]\]/   { section = "bench"; next }
  /^\[\[example\]\]/ { section = "example"; next }
  /^\[/              { section = ""; next }
  section == "bench" && /^name *=/ { split($0, q, "\""); print "benches/" q[2] ".rs" }
  section == "example" && /^path *=/ { split($0, q, "\""); print q[2] }
' Cargo.toml | while read -r target; do
  mkdir -p "$(dirname "${target}")"
  echo 'fn main() {}' > "${target}"
done
