#!/usr/bin/env bash
# Build and run the portal on http://127.0.0.1:3000 with a SQLite file under ./data, demo
# data and demo sign-in.   scripts/run.sh [extra `serve` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
export QM_DATABASE_URL="${QM_DATABASE_URL:-sqlite://data/quartermaster.db}"
export QM_SITE_ROOT="${QM_SITE_ROOT:-target/site}"
# The key that seals connector secrets (an administrator adding a SCIM, LDAP or webhook
# system): made once for this demo under ./data, readable by this user only, unless one is given.
if [[ -z "${QM_SECRET_KEY:-}" && -z "${QM_SECRET_KEY_FILE:-}" ]]; then
  mkdir -p data
  if [[ ! -s data/secret.key ]]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >data/secret.key)
  fi
  export QM_SECRET_KEY_FILE=data/secret.key
fi
exec target/release/quartermaster serve --demo --addr 127.0.0.1:3000 "$@"
