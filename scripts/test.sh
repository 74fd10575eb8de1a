#!/usr/bin/env bash
# Every test: unit tests, integration tests on SQLite and on PostgreSQL, and the browser tests
# in Debian's Chromium. Installs what it needs first (idempotent).
#   QM_TEST_POSTGRES_URL=postgres://…/postgres  use that server instead of a private cluster
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

scripts/setup.sh --test
scripts/build.sh debug

peers_started=()
cleanup() {
  for stop in "${peers_started[@]}"; do eval "$stop" || true; done
}
trap cleanup EXIT

if [[ -z "${QM_TEST_POSTGRES_URL:-}" ]]; then
  log "starting a private PostgreSQL cluster"
  source scripts/pg-cluster.sh start
  peers_started+=("QM_PG_DATA=$QM_PG_DATA scripts/pg-cluster.sh stop")
fi
export QM_TEST_POSTGRES_URL
export QM_REQUIRE_SITE=1

log "unit and integration tests (SQLite and PostgreSQL)"
cargo nextest run --no-fail-fast

log "browser tests (Playwright, Debian Chromium; with and without JavaScript)"
(cd end2end && npx playwright test)
