#!/usr/bin/env bash
# Build the portal without cargo-leptos (which would download tools from outside the registries):
# the wasm client (hydrate), wasm-bindgen, wasm-opt, CSS and assets into target/site, then the
# server (ssr).   scripts/build.sh [debug|release]   (default: debug)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-debug}"
site=target/site

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

scripts/setup.sh

log "building the wasm client"
cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate \
  --profile wasm-release --target-dir target/wasm
wasm=target/wasm/wasm32-unknown-unknown/wasm-release/quartermaster.wasm
mkdir -p "$site/pkg"
# Only regenerate the bindings when the wasm changed.
if [[ ! -f "$site/pkg/quartermaster_bg.wasm" || "$wasm" -nt "$site/pkg/quartermaster_bg.wasm" ]]; then
  wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" --out-name quartermaster "$wasm"
  if [[ -x end2end/node_modules/.bin/wasm-opt ]]; then
    log "optimizing the wasm (binaryen)"
    end2end/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals \
      "$site/pkg/quartermaster_bg.wasm" -o "$site/pkg/quartermaster_bg.wasm"
  fi
fi
cp style/main.css "$site/pkg/quartermaster.css"
cp -r public/. "$site/"
# Precompressed copies: the server sends them to browsers that accept gzip (the wasm shrinks
# to about a third).
for f in "$site"/pkg/*.wasm "$site"/pkg/*.js "$site"/pkg/*.css; do
  [[ -f "$f.gz" && "$f.gz" -nt "$f" ]] || gzip -9 -k -f "$f"
done

log "building the server ($profile)"
if [[ "$profile" == "release" ]]; then
  cargo build --release --features ssr --bin quartermaster
else
  cargo build --features ssr --bin quartermaster
fi
