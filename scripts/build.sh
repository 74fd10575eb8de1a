#!/usr/bin/env bash
# Build the portal without cargo-leptos (which would download tools from outside the registries):
# the server (ssr) and, beside it, the wasm client (hydrate, split at the lazy pages),
# wasm-bindgen, binaryen, CSS and assets into target/site.
#   scripts/build.sh [debug|release]   (default: debug)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-debug}"
site=target/site

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# The server, the client and the client's tools build at once: none needs another until the
# client is linked, their target folders differ, and each one's single-threaded stretches
# (a crate's type checking, the client's link-time optimization) leave a core to the others.
log "building the server ($profile), and beside it the wasm client"
case "$profile" in
  debug) mode=() ;;
  release) mode=(--release) ;;
  *) echo "scripts/build.sh [debug|release]" >&2; exit 2 ;;
esac
setsid -w cargo build "${mode[@]}" --features ssr --bin quartermaster &
server_build=$!
# Each build runs in a process group of its own (setsid): stopping it stops its compilers too,
# which killing cargo alone would leave running.
stop() { for group in "$@"; do kill -TERM -- "-$group" 2>/dev/null || true; done; }
trap 'stop "$server_build"' EXIT

scripts/setup.sh --wasm-target
# The relocations stay in the wasm for the splitter to move code between modules
# (`--emit-relocs`, given to this crate's link only: in RUSTFLAGS it would rebuild every
# dependency).
setsid -w cargo rustc --lib --crate-type cdylib --target wasm32-unknown-unknown --no-default-features --features hydrate \
  --profile wasm-release --target-dir target/wasm -- -C link-args=--emit-relocs &
client_build=$!
trap 'stop "$server_build" "$client_build"' EXIT
scripts/setup.sh
wait "$client_build"
trap 'stop "$server_build"' EXIT
wasm=target/wasm/wasm32-unknown-unknown/wasm-release/quartermaster.wasm

# The bundle goes into a folder named by a hash of everything it is made from (the compiled
# wasm, the stylesheet, the scripts that make it and the tools' versions): every file in it
# keeps its name for good, so browsers cache the folder for a year and the files name each
# other by relative paths. pkg/hash.txt names the current folder for the server to read at
# start.
binaryen_version=$(node -p 'require("./end2end/node_modules/binaryen/package.json").version' 2>/dev/null || echo none)
hash=$({
  cat "$wasm" style/main.css scripts/build.sh scripts/wasm-opt.mjs
  wasm-bindgen --version
  cargo install --list | grep -x 'wasm_split_cli_support v.*:'
  echo "binaryen $binaryen_version"
} | sha256sum | cut -c1-16)
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
  if [[ "$binaryen_version" != none ]]; then
    log "optimizing the wasm (binaryen)"
    # The modules by size, dealt between two processes (scripts/wasm-opt.mjs optimizes many in
    # one: binaryen takes longer to start than to optimize a small one). Binaryen's warnings
    # about the split modules' name sections, one per module, are noise.
    mapfile -t modules < <(ls -S "$work"/*.wasm)
    evens=() odds=()
    for i in "${!modules[@]}"; do
      if ((i % 2)); then odds+=("${modules[i]}"); else evens+=("${modules[i]}"); fi
    done
    optimize() {
      (($#)) || return 0
      node scripts/wasm-opt.mjs "$@" 2>&1 | { grep -v "unknown name subsection" || true; }
    }
    optimize "${odds[@]}" &
    other=$!
    trap 'stop "$server_build"; pkill -P "$other" 2>/dev/null || true; kill "$other" 2>/dev/null || true' EXIT
    optimize "${evens[@]}"
    wait "$other"
    trap 'stop "$server_build"' EXIT
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
# The bundle this one replaces stays a week from now (its folder touched): a server started
# before this build, and the pages it served, still name it. Older ones are removed.
previous=$(cat "$site/pkg/hash.txt" 2>/dev/null || true)
if [[ -n "$previous" && "$previous" != "$hash" && "$previous" =~ ^[0-9a-f]{16}$ ]]; then
  touch -c "$site/pkg/$previous" "$site/pkg/quartermaster.$previous"*
fi
# Written aside and moved into place: a server starting meanwhile reads the old name or the
# new one, never half of one.
echo "$hash" > "$site/pkg/.hash.txt.partial" && mv "$site/pkg/.hash.txt.partial" "$site/pkg/hash.txt"
find "$site/pkg" -mindepth 1 -maxdepth 1 ! -name "$hash" ! -name hash.txt -mtime +7 -exec rm -rf {} +
cp -r public/. "$site/"

log "waiting for the server's build"
wait "$server_build"
trap - EXIT
