#!/usr/bin/env bash
# Install what building and testing Quartermaster needs, idempotently. Only the registries
# this machine can reach are used: crates.io, npm, Debian apt.
#   scripts/setup.sh          build prerequisites (wasm target, wasm-bindgen-cli, npm packages)
#   scripts/setup.sh --test   also what the tests need (Chromium, PostgreSQL server binaries)
#   scripts/setup.sh --wasm-target   only the wasm target (scripts/build.sh, before the client's
#                                    build, which needs nothing else until it is linked)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# 1. The wasm target (rust-toolchain.toml names it; rustup adds it on first use, but be explicit).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
[[ "${1:-}" == "--wasm-target" ]] && exit 0

# The two tools below are debug builds without debug info: they compile in a fraction of the
# time of a release build (they are on the way to a first page on a new machine) and still do
# their work on the client in seconds.
export CARGO_PROFILE_DEV_DEBUG=false
# One target folder for both, kept: the splitter compiles only what it does not share with
# wasm-bindgen-cli (clap and its derive, regex, rayon, …), and a reinstall compiles only what
# changed. Both resolve their dependencies to the newest compatible versions (wasm-bindgen-cli
# cannot take its lockfile: it pins a webpki-roots the registry no longer has), so they share.
tools_target="$PWD/target/tools"
# Floating versions, but only ones that build with this toolchain (rust-toolchain.toml).
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

# 2. wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]]; then
  log "installing wasm-bindgen-cli $wbg_version (about three minutes beside the builds, once)"
  cargo install --debug --target-dir "$tools_target" wasm-bindgen-cli --version "$wbg_version"
fi

# 3. The wasm splitter (wasm_split_cli_support, the tool cargo-leptos uses as a library): it cuts
#    the lazy pages' modules out of the client (scripts/build.sh).
split_version=0.2.4
if ! command -v wasm-split-cli >/dev/null || ! cargo install --list | grep -qx "wasm_split_cli_support v$split_version:"; then
  log "installing wasm-split-cli $split_version (a minute, once)"
  cargo install --debug --target-dir "$tools_target" wasm_split_cli_support --version "$split_version" --features build-binary
fi

# 4. npm packages: Playwright (driving Debian's Chromium), binaryen's wasm-opt, the test peers.
if [[ ! -d end2end/node_modules ]] || [[ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]]; then
  log "installing npm packages (end2end/)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if $want_test; then
  need_apt=()
  [[ -x /usr/bin/chromium ]] || need_apt+=(chromium fonts-liberation)
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || need_apt+=(postgresql)
  # The LDAP target of the provisioning tests (scripts/ldap-peer.sh), not configured as a
  # service: the tests start their own.
  [[ -x /usr/sbin/slapd ]] || need_apt+=(slapd ldap-utils)
  # The LDAP peer makes a CA and a server certificate for its TLS ports.
  command -v openssl >/dev/null || need_apt+=(openssl)
  if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} (apt)"
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  fi
fi
