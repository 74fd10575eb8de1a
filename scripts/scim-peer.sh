#!/usr/bin/env bash
# A SCIM 2.0 target for the tests: PyPI scim2-server (in memory) on a free loopback port.
#   source scripts/scim-peer.sh start   -> exports QM_TEST_SCIM_URL, QM_TEST_SCIM_TOKEN, QM_SCIM_PID
#   scripts/scim-peer.sh stop           (uses QM_SCIM_PID)
# The server is installed once into target/peers/scim (a virtualenv; PyPI is reachable here).
# Sourced, it leaves the caller's shell options as it found them.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then qm_scim_caller_options=$(set +o); fi
set -euo pipefail
qm_scim_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
qm_scim_venv="$qm_scim_root/target/peers/scim"

case "${1:-}" in
  start)
    if [[ ! -x "$qm_scim_venv/bin/scim2-server" ]]; then
      python3 -m venv "$qm_scim_venv"
      "$qm_scim_venv/bin/pip" install --quiet 'scim2-server>=0.8,<0.9'
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    log=$(mktemp /tmp/qm-scim-XXXXXX.log)
    "$qm_scim_venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" >"$log" 2>&1 &
    export QM_SCIM_PID=$!
    # Ready when it answers (it starts in well under a second; give it ten).
    for _ in $(seq 1 100); do
      if curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/ServiceProviderConfig" 2>/dev/null; then break; fi
      if ! kill -0 "$QM_SCIM_PID" 2>/dev/null; then cat "$log" >&2; echo "scim2-server did not start" >&2; exit 1; fi
      sleep 0.1
    done
    export QM_TEST_SCIM_URL="http://127.0.0.1:$port/v2"
    export QM_TEST_SCIM_TOKEN="$token"
    echo "SCIM target (scim2-server) on 127.0.0.1:$port, pid $QM_SCIM_PID"
    ;;
  stop)
    if [[ -n "${QM_SCIM_PID:-}" ]]; then kill "$QM_SCIM_PID" 2>/dev/null || true; fi
    ;;
  *)
    echo "usage: source scripts/scim-peer.sh start | scripts/scim-peer.sh stop" >&2
    exit 2
    ;;
esac
if [[ -n "${qm_scim_caller_options:-}" ]]; then eval "$qm_scim_caller_options"; unset qm_scim_caller_options; fi
