#!/usr/bin/env bash
# Build the portal without cargo-leptos (which would download tools from outside the registries):
# the server (ssr) and, beside it, the wasm client (hydrate), wasm-bindgen, wasm-opt, CSS and
# assets into target/site.   scripts/build.sh [debug|release]   (default: debug)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-debug}"
site=target/site

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

scripts/setup.sh

# The server builds in the background while the client is made: their target folders differ,
# and the client's long single-threaded steps (link-time optimization, wasm-opt) leave a core
# free that the server's build uses.
log "building the server ($profile), and beside it the wasm client"
if [[ "$profile" == "release" ]]; then
  cargo build --release --features ssr --bin quartermaster &
else
  cargo build --features ssr --bin quartermaster &
fi
server_build=$!
trap 'kill "$server_build" 2>/dev/null || true' EXIT

# The relocations stay in the wasm for the splitter to move code between modules
# (`--emit-relocs`, given to this crate's link only: in RUSTFLAGS it would rebuild every
# dependency).
cargo rustc --lib --crate-type cdylib --target wasm32-unknown-unknown --no-default-features --features hydrate \
  --profile wasm-release --target-dir target/wasm -- -C link-args=--emit-relocs
wasm=target/wasm/wasm32-unknown-unknown/wasm-release/quartermaster.wasm

# The bundle goes into a folder named by a hash of what it is made from (the compiled wasm,
# the stylesheet, this script): every file in it keeps its name for good, so browsers cache
# the folder for a year and the files name each other by relative paths. pkg/hash.txt names
# the current folder for the server to read at start.
hash=$(cat "$wasm" style/main.css scripts/build.sh | sha256sum | cut -c1-16)
bundle="$site/pkg/$hash"
if [[ ! -f "$bundle/quartermaster_bg.wasm" ]]; then
  work="$site/pkg/.$hash.partial"
  rm -rf "$work" && mkdir -p "$work/split"
  # Split: each lazy page (`ui::lazy`) becomes a module of its own with the code only it
  # uses, fetched when the page is first shown; the rest is the main module.
  log "splitting the wasm at the lazy pages"
  wasm-split-cli "$wasm" "$work/split" --target web --out-name quartermaster
  wasm-bindgen --target web --no-typescript --keep-lld-exports --no-demangle \
    --out-dir "$work" --out-name quartermaster "$work/split/quartermaster.wasm"
  rm "$work/split/quartermaster.wasm"
  mv "$work"/split/* "$work/" && rmdir "$work/split"
  if [[ -d end2end/node_modules/binaryen ]]; then
    log "optimizing the wasm (binaryen)"
    # The modules by size, dealt between two processes (scripts/wasm-opt.mjs optimizes many in
    # one: binaryen takes longer to start than to optimize a small one). Binaryen's warnings
    # about the split modules' name sections, one per module, are noise.
    mapfile -t modules < <(ls -S "$work"/*.wasm)
    halves=("" "")
    for i in "${!modules[@]}"; do halves[i % 2]+="${modules[i]}"$'\n'; done
    optimize() { xargs -d '\n' node scripts/wasm-opt.mjs 2>&1 <<<"${1%$'\n'}" | { grep -v "unknown name subsection" || true; }; }
    optimize "${halves[1]}" &
    other=$!
    optimize "${halves[0]}"
    wait "$other"
  fi
  cp style/main.css "$work/quartermaster.css"
  # Precompressed copies: the server sends brotli or gzip to browsers that accept them (the
  # wasm shrinks to about a quarter), made by Node's zlib (setup.sh's Node) in one process.
  node -e 'const z = require("zlib"), fs = require("fs");
    for (const f of process.argv.slice(1)) {
      const data = fs.readFileSync(f);
      fs.writeFileSync(f + ".gz", z.gzipSync(data, { level: 9 }));
      fs.writeFileSync(f + ".br", z.brotliCompressSync(data,
        { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11, [z.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }));
    }' "$work"/*.wasm "$work"/*.js "$work"/*.css
  # Moved into place whole: an interrupted build leaves no half-made bundle under its name.
  rm -rf "$bundle" && mv "$work" "$bundle"
fi
echo "$hash" > "$site/pkg/hash.txt"
# Earlier builds' bundles stay a week: a server started before this build still names them.
find "$site/pkg" -mindepth 1 -maxdepth 1 ! -name "$hash" ! -name hash.txt -mtime +7 -exec rm -rf {} +
cp -r public/. "$site/"

log "waiting for the server's build"
wait "$server_build"
trap - EXIT
