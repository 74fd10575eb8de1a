#!/usr/bin/env bash
# Build and run the portal on http://127.0.0.1:3000 with a SQLite file under ./data, demo
# data and demo sign-in.   scripts/run.sh [extra `serve` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
export QM_DATABASE_URL="${QM_DATABASE_URL:-sqlite://data/quartermaster.db}"
export QM_SITE_ROOT="${QM_SITE_ROOT:-target/site}"
exec target/release/quartermaster serve --demo --addr 127.0.0.1:3000 "$@"
