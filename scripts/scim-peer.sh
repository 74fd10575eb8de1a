#!/usr/bin/env bash
# A SCIM 2.0 target for the tests: PyPI scim2-server (in memory) on a free loopback port; and
# PyPI scim2-tester (through scim2-cli), which the tests run against Quartermaster's own SCIM
# service provider.
#   source scripts/scim-peer.sh start   -> exports QM_TEST_SCIM_URL, QM_TEST_SCIM_TOKEN, QM_SCIM_PID,
#                                          QM_TEST_SCIM_TESTER (the scim2 command)
#   scripts/scim-peer.sh stop           (uses QM_SCIM_PID)
# The server is installed once into target/peers/scim (a virtualenv; PyPI is reachable here).
# Sourced, it leaves the caller's shell options as it found them.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then qm_scim_caller_options=$(set +o); fi
set -euo pipefail
qm_scim_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
qm_scim_venv="$qm_scim_root/target/peers/scim"

case "${1:-}" in
  start)
    # Pinned, with what it pulls in, so a new release elsewhere cannot change the target; a
    # changed pin reinstalls.
    pins="scim2-server==0.8.3 scim2-models==0.12.3 scim2-tester==0.5.2 scim2-cli==0.6.0 scim2-client==0.13.2"
    if [[ "$(cat "$qm_scim_venv/.pins" 2>/dev/null)" != "$pins" ]]; then
      rm -rf "$qm_scim_venv"
      python3 -m venv "$qm_scim_venv"
      # shellcheck disable=SC2086
      "$qm_scim_venv/bin/pip" install --quiet $pins
      echo "$pins" >"$qm_scim_venv/.pins"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    log=$(mktemp /tmp/qm-scim-XXXXXX.log)
    "$qm_scim_venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" >"$log" 2>&1 &
    export QM_SCIM_PID=$!
    # Ready when it answers (it starts in well under a second; give it ten).
    ready=
    for _ in $(seq 1 100); do
      if curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/ServiceProviderConfig" 2>/dev/null; then ready=1; break; fi
      if ! kill -0 "$QM_SCIM_PID" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if [[ -z "$ready" ]]; then
      kill "$QM_SCIM_PID" 2>/dev/null || true
      cat "$log" >&2
      echo "scim2-server did not answer on 127.0.0.1:$port" >&2
      rm -f "$log"
      return 1 2>/dev/null || exit 1
    fi
    rm -f "$log"
    export QM_TEST_SCIM_URL="http://127.0.0.1:$port/v2"
    export QM_TEST_SCIM_TOKEN="$token"
    export QM_TEST_SCIM_TESTER="$qm_scim_venv/bin/scim2"
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
