#!/usr/bin/env bash
# An SMTP sink for the tests: npm maildev (end2end/node_modules, installed by setup.sh) on free
# loopback ports, keeping what it receives in a private folder and showing it over HTTP.
#   source scripts/mail-peer.sh start   -> exports QM_TEST_SMTP_URL, QM_TEST_MAIL_API, QM_MAIL_PID, QM_MAIL_DIR
#   scripts/mail-peer.sh stop           (uses QM_MAIL_PID and QM_MAIL_DIR)
# Tests read `GET $QM_TEST_MAIL_API/api/email?from.address=…` (maildev 3's API).
# Sourced, it leaves the caller's shell options as it found them.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then qm_mail_caller_options=$(set +o); fi
set -euo pipefail
qm_mail_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case "${1:-}" in
  start)
    maildev="$qm_mail_root/end2end/node_modules/.bin/maildev"
    if [[ ! -x "$maildev" ]]; then
      echo "maildev is not installed: run scripts/setup.sh (scripts/test.sh does)" >&2
      return 1 2>/dev/null || exit 1
    fi
    read -r smtp web < <(python3 -c 'import socket
a = socket.socket(); a.bind(("127.0.0.1", 0)); b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1]); a.close(); b.close()')
    dir=$(mktemp -d /tmp/qm-mail-XXXXXX)
    # The .bin itself rather than npx, so the PID is maildev's.
    "$maildev" --ip 127.0.0.1 --web-ip 127.0.0.1 -s "$smtp" -w "$web" --mail-directory "$dir/mail" >"$dir/log" 2>&1 &
    export QM_MAIL_PID=$!
    export QM_MAIL_DIR="$dir"
    ready=
    # Up to 60 s: Node reads maildev's packages from disk first, which after a big build has
    # pushed them out of the page cache took more than 10 s here once.
    for _ in $(seq 1 600); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$web/api/healthz" 2>/dev/null; then ready=1; break; fi
      if ! kill -0 "$QM_MAIL_PID" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if [[ -z "$ready" ]]; then
      kill "$QM_MAIL_PID" 2>/dev/null || true
      cat "$dir/log" >&2
      echo "maildev did not answer on 127.0.0.1:$web" >&2
      rm -rf "$dir"
      return 1 2>/dev/null || exit 1
    fi
    export QM_TEST_SMTP_URL="smtp://127.0.0.1:$smtp"
    export QM_TEST_MAIL_API="http://127.0.0.1:$web"
    echo "SMTP sink (maildev) on 127.0.0.1:$smtp (API on $web), pid $QM_MAIL_PID"
    ;;
  stop)
    if [[ -n "${QM_MAIL_PID:-}" ]]; then kill "$QM_MAIL_PID" 2>/dev/null || true; fi
    if [[ -n "${QM_MAIL_DIR:-}" && -d "$QM_MAIL_DIR" ]]; then rm -rf "$QM_MAIL_DIR"; fi
    ;;
  *)
    echo "usage: source scripts/mail-peer.sh start | scripts/mail-peer.sh stop" >&2
    exit 2
    ;;
esac
if [[ -n "${qm_mail_caller_options:-}" ]]; then eval "$qm_mail_caller_options"; unset qm_mail_caller_options; fi
