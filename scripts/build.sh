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
# Content-hashed copies, which the pages name and browsers cache for a year: one hash over the
# script, the wasm and the stylesheet, written to pkg/hash.txt for the server to read at start.
hash=$(cat "$site/pkg/quartermaster.js" "$site/pkg/quartermaster_bg.wasm" "$site/pkg/quartermaster.css" \
  | sha256sum | cut -c1-16)
# Earlier builds' copies stay a week: a server started before this build still names them.
find "$site/pkg" -maxdepth 1 -name 'quartermaster.????????????????*' ! -name "quartermaster.$hash*" -mtime +7 -delete
cp -p "$site/pkg/quartermaster.js" "$site/pkg/quartermaster.$hash.js"
cp -p "$site/pkg/quartermaster_bg.wasm" "$site/pkg/quartermaster.${hash}_bg.wasm"
cp -p "$site/pkg/quartermaster.css" "$site/pkg/quartermaster.$hash.css"
echo "$hash" > "$site/pkg/hash.txt"
# Precompressed copies: the server sends brotli or gzip to browsers that accept them (the wasm
# shrinks to about a quarter). Brotli through Node's zlib, which setup.sh's Node brings.
for f in "$site"/pkg/*.wasm "$site"/pkg/*.js "$site"/pkg/*.css; do
  [[ -f "$f.gz" && "$f.gz" -nt "$f" ]] || gzip -9 -k -f "$f"
  if [[ ! -f "$f.br" || "$f" -nt "$f.br" ]]; then
    rm -f "$f.br"
    # Written aside and moved into place: an interrupted build leaves no truncated copy.
    command -v node >/dev/null && node -e 'const z = require("zlib"), fs = require("fs"), f = process.argv[1];
      fs.writeFileSync(f + ".br.tmp", z.brotliCompressSync(fs.readFileSync(f),
        { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11, [z.constants.BROTLI_PARAM_SIZE_HINT]: fs.statSync(f).size } }));
      fs.renameSync(f + ".br.tmp", f + ".br");' "$f"
  fi
done

log "waiting for the server's build"
wait "$server_build"
trap - EXIT
