#!/usr/bin/env bash
# Build and run the portal on http://127.0.0.1:3000 with a SQLite file under ./data, demo
# data and demo sign-in.   scripts/run.sh [extra `serve` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
# The debug build: its dependencies compile in about a third of the time of a release build's
# (measured on 2 cores: 3 minutes against 8.5 at opt-level 1, more at 3). It serves the demo's
# pages in about 10 ms (release: 3 ms). For production, `scripts/build.sh release` (README).
scripts/build.sh debug
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
# Email: the demo's notifications go to a local mail catcher (maildev, installed with the
# build's npm packages), whose inbox is a web page; unless a mail server is given.
mail_pid=
if [[ -z "${QM_SMTP_URL:-}" && -x end2end/node_modules/.bin/maildev ]]; then
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
  port_free() { python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $1))" 2>/dev/null; }
  smtp_port=1025; web_port=1080
  port_free $smtp_port || smtp_port=$(free_port)
  port_free $web_port || web_port=$(free_port)
  end2end/node_modules/.bin/maildev --ip 127.0.0.1 --web-ip 127.0.0.1 -s "$smtp_port" -w "$web_port" --silent >/dev/null 2>&1 &
  mail_pid=$!
  trap 'kill "$mail_pid" 2>/dev/null || true' EXIT
  export QM_SMTP_URL="smtp://127.0.0.1:$smtp_port" QM_MAIL_FROM="${QM_MAIL_FROM:-Quartermaster <quartermaster@localhost>}"
  echo "Emails the demo sends: http://127.0.0.1:$web_port"
fi
target/debug/quartermaster serve --demo --addr 127.0.0.1:3000 "$@"
