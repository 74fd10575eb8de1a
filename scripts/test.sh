#!/usr/bin/env bash
# Every test: unit tests, integration tests on SQLite and on PostgreSQL, and the browser tests
# in Debian's Chromium. Installs what it needs first (idempotent).
#   QM_TEST_POSTGRES_URL=postgres://…/postgres  use that server instead of a private cluster
#   QM_TEST_SCIM_URL=http://…/v2 QM_TEST_SCIM_TOKEN=…  use that SCIM target instead of starting scim2-server
#   QM_TEST_LDAP_URL=ldap://… QM_TEST_LDAP_BASE=dc=… QM_TEST_LDAP_BIND_DN=… QM_TEST_LDAP_PASSWORD=…
#                                   use that directory instead of starting slapd
#   QM_TEST_SMTP_URL=smtp://… QM_TEST_MAIL_API=http://…  use that maildev instead of starting one
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# A full disk fails tests in ways that look like bugs (a database that resets its connections,
# a file that cannot be created): say so first. A cold build and the suite need about 12 GB.
free_gb=$(df -Pk . | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
log "free disk: ${free_gb} GB"
if (( free_gb < 12 )); then
  echo "warning: only ${free_gb} GB free here; a cold build and the tests need about 12 GB" >&2
fi

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

if [[ -z "${QM_TEST_SCIM_URL:-}" ]]; then
  log "starting a SCIM target (scim2-server)"
  source scripts/scim-peer.sh start
  peers_started+=("QM_SCIM_PID=$QM_SCIM_PID scripts/scim-peer.sh stop")
fi
export QM_TEST_SCIM_URL QM_TEST_SCIM_TOKEN QM_TEST_SCIM_TESTER

if [[ -z "${QM_TEST_LDAP_URL:-}" ]]; then
  log "starting an LDAP target (slapd)"
  source scripts/ldap-peer.sh start
  peers_started+=("QM_LDAP_PID=$QM_LDAP_PID QM_LDAP_DIR=$QM_LDAP_DIR scripts/ldap-peer.sh stop")
fi
export QM_TEST_LDAP_URL QM_TEST_LDAP_BASE QM_TEST_LDAP_BIND_DN QM_TEST_LDAP_PASSWORD
export QM_TEST_LDAPS_URL QM_TEST_LDAP_CA

if [[ -z "${QM_TEST_SMTP_URL:-}" ]]; then
  log "starting an SMTP sink (maildev)"
  source scripts/mail-peer.sh start
  peers_started+=("QM_MAIL_PID=$QM_MAIL_PID QM_MAIL_DIR=$QM_MAIL_DIR scripts/mail-peer.sh stop")
fi
export QM_TEST_SMTP_URL QM_TEST_MAIL_API

logs=$(mktemp -d)
status=0

log "unit and integration tests (SQLite and PostgreSQL)"
# The LDAP peer's CA trusted as an operator trusts an internal one (LDAPS and StartTLS
# read the system's trust store, or SSL_CERT_FILE): for the tests only, built first without
# it (cargo's own downloads trust the system's store).
if ! cargo nextest run --no-run >"$logs/nextest-build.log" 2>&1; then
  cat "$logs/nextest-build.log"
  status=1
fi
if [[ -n "${QM_TEST_LDAP_CA:-}" ]]; then export SSL_CERT_FILE="$QM_TEST_LDAP_CA"; fi
cargo nextest run --no-fail-fast 2>&1 | tee "$logs/nextest.log" || status=1
unset SSL_CERT_FILE

log "browser tests (Playwright, Debian Chromium; with and without JavaScript)"
# Free loopback ports for the portals and the OpenID provider the browser tests start.
export E2E_PORT="${E2E_PORT:-$(free_port)}"
export E2E_OIDC_PORTAL_PORT="${E2E_OIDC_PORTAL_PORT:-$(free_port)}"
export E2E_OIDC_PROVIDER_PORT="${E2E_OIDC_PROVIDER_PORT:-$(free_port)}"
(cd end2end && npx playwright test) 2>&1 | tee "$logs/playwright.log" || status=1

# One closing line over both runners.
# nextest: its "Summary [...] N tests run: N passed, N failed, N skipped" line;
# Playwright: its closing "  N passed (…)", "  N failed", "  N skipped" lines.
nextest_count() { grep -E '^ *Summary ' "$logs/nextest.log" | tail -n 1 | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
playwright_count() { grep -E "^ +[0-9]+ $1" "$logs/playwright.log" | tail -n 1 | grep -oE '[0-9]+' | head -n 1 || echo 0; }
passed=$(( $(nextest_count passed) + $(playwright_count passed) ))
failed=$(( $(nextest_count failed) + $(playwright_count failed) ))
skipped=$(( $(nextest_count skipped) + $(playwright_count skipped) ))
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
