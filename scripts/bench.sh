#!/usr/bin/env bash
# Page benchmarks on the scale data (BENCHMARKS.md says what they mean and what was measured).
#
#   scripts/bench.sh [--scale F] [--backend sqlite|postgres] [--rate R] [--duration D]
#   scripts/bench.sh --approvals --scale 0.5   # 10,000 approvals by 32 approvers at once
#   scripts/bench.sh --expiry --scale 1 --rate 50 [--sweep-only]   # every live assignment expiring
#                                                 # while pages serve (--sweep-only: not awaiting the removals)
#   scripts/bench.sh --delivery [--grants 10000] [--groups 1] [--in-flight 4] [--assign-rate R]   # grants delivered into scim2-server,
#                                                 # beside the same calls made straight to it
#                                                 # (--assign-rate R: assigned R a second, not all at once)
#
# Builds release, seeds (or reuses) a scale database under target/bench, starts the server on
# 127.0.0.1 (demo sign-in, rate limits off, pinned to CPU 0 where `taskset` exists), and drives
# each page with `oha` open-loop at R requests/s for D (latency corrected for coordinated
# omission), beside a trivial page, /healthz and a static file measured in the same run.
# Prints one Markdown table: each page's most requests/s and its share of the trivial page's,
# then p50, p99 and p99.9 open-loop at the chosen rate. Also the server's RSS at rest and after the load, and its
# cold start on the scale database.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=0.1
backend=sqlite
rate=1000
duration=10s
approvals=0
expiry=0
delivery=0
grants=10000
groups=1
in_flight=4
assign_rate=()
sweep_only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --approvals) approvals=1; shift ;;
    --expiry) expiry=1; shift ;;
    --delivery) delivery=1; shift ;;
    --grants) grants="$2"; shift 2 ;;
    --in-flight) in_flight="$2"; shift 2 ;;
    --groups) groups="$2"; shift 2 ;;
    --assign-rate) assign_rate=(--rate "$2"); shift 2 ;;
    --sweep-only) sweep_only=(--sweep-only); shift ;;
    --scale) scale="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [[ "$delivery" == 1 ]]; then
  # benches/delivery.rs: its own database, the delivery workers in its process, a SCIM target
  # started here (scim2-server, as the tests use it) and stopped at the end.
  cargo bench --bench delivery --no-run >&2
  source scripts/scim-peer.sh start >&2
  trap 'scripts/scim-peer.sh stop' EXIT
  cargo bench --bench delivery -- --scim-url "$QM_TEST_SCIM_URL" --scim-token "$QM_TEST_SCIM_TOKEN" \
    --grants "$grants" --groups "$groups" --in-flight "$in_flight" "${assign_rate[@]}"
  exit
fi

scripts/build.sh release >&2
[[ "$approvals" == 1 ]] && cargo bench --bench approvals --no-run >&2
[[ "$expiry" == 1 ]] && cargo bench --bench expiry --no-run >&2
command -v oha >/dev/null || cargo install oha --locked --version '^1' >&2
bin=target/release/quartermaster
mkdir -p target/bench
summary="target/bench/scale-$backend-$scale.json"

cleanup() {
  [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null || true
  if [[ -n "${QM_PG_DATA:-}" && "${started_pg:-}" == 1 ]]; then scripts/pg-cluster.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

case "$backend" in
  sqlite)
    export QM_DATABASE_URL="sqlite://target/bench/scale-$scale.db"
    if [[ ! -f "$summary" ]]; then
      rm -f "target/bench/scale-$scale.db"*
      "$bin" seed-scale --scale "$scale" --summary "$summary" >&2
    fi
    ;;
  postgres)
    if [[ -z "${QM_BENCH_POSTGRES_URL:-}" ]]; then
      # shellcheck source=/dev/null
      source scripts/pg-cluster.sh start
      started_pg=1
      QM_BENCH_POSTGRES_URL="$QM_TEST_POSTGRES_URL"
      rm -f "$summary"
    fi
    export QM_DATABASE_URL="$QM_BENCH_POSTGRES_URL"
    [[ -f "$summary" ]] || "$bin" seed-scale --scale "$scale" --summary "$summary" >&2
    ;;
  *) echo "--backend sqlite|postgres" >&2; exit 2 ;;
esac

# A copy of the kept SQLite scale data, for a run that changes it (`expiry` or `approvals`).
use_copy() {
  rm -f "target/bench/$1-$scale.db"*
  for f in "target/bench/scale-$scale.db"{,-wal}; do
    [[ -f "$f" ]] && cp "$f" "target/bench/$1-${f#target/bench/scale-}"
  done
  # The copy's gigabytes are written out now, not by the kernel during the run, where they
  # would compete with the server's own writes.
  sync
  export QM_DATABASE_URL="sqlite://target/bench/$1-$scale.db"
}
# The approvals decide pending requests: on SQLite they run on a copy, so every run decides
# the same requests and the kept data stays as seeded.
[[ "$approvals" == 1 && "$backend" == sqlite ]] && use_copy approvals
if [[ "$expiry" == 1 ]]; then
  # The sweep ends every live assignment: it runs on a copy (SQLite) or a fresh cluster's
  # database (PostgreSQL, seeded above), never on the kept scale data.
  if [[ "$backend" == sqlite ]]; then
    use_copy expiry
  else
    [[ "${started_pg:-}" == 1 ]] || echo "the sweep ends the assignments of $QM_BENCH_POSTGRES_URL: seed anew before the next run" >&2
  fi
  cargo bench --bench expiry -- prepare --database-url "$QM_DATABASE_URL" --baseline target/bench/expiry-baseline >&2
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
export QM_SITE_ROOT=target/site QM_RATE_SIGN_IN_PER_MINUTE=0 QM_RATE_API_PER_SESSION=0 QM_RATE_API_PER_ADDRESS=0
start=$(date +%s.%N)
"${pin[@]}" "$bin" serve --demo --addr "127.0.0.1:$port" >target/bench/server.log 2>&1 &
server_pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do
  kill -0 "$server_pid" 2>/dev/null || { cat target/bench/server.log >&2; exit 1; }
  sleep 0.05
done
cold_start=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")
rss() { awk '/VmRSS/ {printf "%.0f MB", $2/1024}' "/proc/$server_pid/status"; }
rss_rest=$(rss)

# Who to be, from the seed's summary.
read -r heavy approver package admin audit_type audit_id heavy_email approver_email admin_email <<<"$(python3 - "$summary" <<'EOF'
import json, sys
ids = json.load(open(sys.argv[1]))["ids"]
print(ids["heavy_person"]["id"], ids["busiest_approver"]["id"], ids["big_package"]["id"],
      ids["administrator"]["id"], ids["audit_object"]["object_type"], ids["audit_object"]["object_id"],
      ids["heavy_person"]["email"], ids["busiest_approver"]["email"], ids["administrator"]["email"])
EOF
)"
cookie_of() {
  curl -s -o /dev/null -D - -X POST -H "origin: $base" --data "user_id=$1" "$base/auth/demo" \
    | awk -F'[ ;]' 'tolower($1) == "set-cookie:" {print $2}'
}
if [[ "$approvals" == 1 ]]; then
  # 10,000 approvals by the 32 busiest approvers at once (benches/approvals.rs checks that each
  # request got exactly one decision). On PostgreSQL it uses up pending requests: the next run
  # seeds anew.
  status=0
  # SQLite: the log's largest size during the run (the server checkpoints it in the background
  # and starts it over once copied; a log that only grows would show here).
  wal="${QM_DATABASE_URL#sqlite://}-wal"
  if [[ "$backend" == sqlite ]]; then
    rm -f target/bench/wal-peak
    (peak=0; while kill -0 "$server_pid" 2>/dev/null; do
      size=$(stat -c %s "$wal" 2>/dev/null || echo 0); ((size > peak)) && peak=$size && echo "$peak" >target/bench/wal-peak
      sleep 0.2
    done) &
    wal_watch=$!
  fi
  cargo bench --bench approvals -- --base "$base" --database-url "$QM_DATABASE_URL" --approvers 32 --requests 10000 \
    || status=$?
  if [[ "$backend" == sqlite ]]; then
    kill "$wal_watch" 2>/dev/null || true
    wait "$wal_watch" 2>/dev/null || true
    peak=$(cat target/bench/wal-peak 2>/dev/null || true)
    # The file's size: once the log has started over it keeps up to 64 MiB of old frames.
    echo "SQLite log file: largest $((${peak:-0} / 1048576)) MiB during the approvals, $(($(stat -c %s "$wal" 2>/dev/null || echo 0) / 1048576)) MiB after"
  fi
  [[ "$backend" == postgres ]] && rm -f "$summary"
  if [[ "$backend" == postgres && "${started_pg:-}" != 1 ]]; then
    echo "the approvals used up pending requests: empty $QM_BENCH_POSTGRES_URL before the next run" >&2
  fi
  echo "server RSS after the approvals: $(rss)"
  exit $status
fi

heavy_cookie=$(cookie_of "$heavy")
approver_cookie=$(cookie_of "$approver")
admin_cookie=$(cookie_of "$admin")
# REST: a token each, made as the operator does (`quartermaster token create`), for a day.
token_of() { # email scopes
  "$bin" token create --user "$1" --name "bench $(date +%s%N)" --scopes "$2" --days 1 2>/dev/null | sed -n 2p
}
heavy_token=$(token_of "$heavy_email" read)
approver_token=$(token_of "$approver_email" read)
admin_token=$(token_of "$admin_email" read,admin)

client_pin=()
command -v taskset >/dev/null && client_pin=(taskset -c 1)

if [[ "$expiry" == 1 ]]; then
  # The server's workers sweep from their first round; benches/expiry.rs follows them in the
  # database while My Access is measured open loop at the chosen rate in 5-second windows.
  "${client_pin[@]}" cargo bench --bench expiry -- watch --database-url "$QM_DATABASE_URL" \
    --baseline target/bench/expiry-baseline "${sweep_only[@]}" >target/bench/expiry.out &
  watch_pid=$!
  # Beside the page, a write: demo sign-in (a session stored) at 5 a second.
  summarize='import json, sys; d = json.loads(sys.argv[1]); p = d["latencyPercentiles"]
print(d["summary"]["requestsPerSec"], p["p50"], p["p99"], p["p99.9"], ",".join(sorted(d.get("statusCodeDistribution", {}))))'
  windows=""
  writes=""
  while kill -0 "$watch_pid" 2>/dev/null; do
    "${client_pin[@]}" oha --no-tui --output-format json -z 5s -q 5 --latency-correction -c 2 --redirect 0 -m POST \
      -H "origin: $base" -T application/x-www-form-urlencoded -d "user_id=$heavy" "$base/auth/demo" \
      >target/bench/expiry-write.json &
    write_pid=$!
    window=$("${client_pin[@]}" oha --no-tui --output-format json -z 5s -q "$rate" --latency-correction -c 16 \
      -H "cookie: $heavy_cookie" "$base/")
    wait "$write_pid"
    windows+="$(python3 -c "$summarize" "$window")"$'\n'
    writes+="$(python3 -c "$summarize" "$(cat target/bench/expiry-write.json)")"$'\n'
  done
  status=0
  wait "$watch_pid" || status=$?
  # The PostgreSQL data has expired now (the SQLite run used a copy).
  [[ "$backend" == postgres ]] && rm -f "$summary"
  cat target/bench/expiry.out
  python3 - "$windows" "$writes" "$rate" <<'EOF'
import sys
pages = [r.split() for r in sys.argv[1].strip().splitlines() if r.strip()]
writes = [r.split() for r in sys.argv[2].strip().splitlines() if r.strip()]
print(f"\nDuring the sweep, 5-second windows (ms): My Access (the person with 50 assignments) open loop at {sys.argv[3]}/s; demo sign-in (a write) at 5/s\n")
print("| window | My Access achieved/s | p50 | p99 | p99.9 | statuses | sign-in p50 | p99 | statuses |")
print("|---|---|---|---|---|---|---|---|---|")
ms = lambda v: f"{float(v) * 1000:.1f}"
for i, (page, write) in enumerate(zip(pages, writes)):
    print(f"| {i * 5}–{i * 5 + 5} s | {float(page[0]):.0f} | {ms(page[1])} | {ms(page[2])} | {ms(page[3])} | {page[4]} "
          f"| {ms(write[1])} | {ms(write[2])} | {write[4]} |")
if pages:
    print(f"\nworst window p99: My Access {max(float(r[2]) for r in pages) * 1000:.1f} ms, "
          f"sign-in {max(float(r[2]) for r in writes) * 1000:.1f} ms")
EOF
  echo "server RSS at the sweep's end: $(rss)"
  exit $status
fi
# One page: its most requests/s (closed loop, 16 connections, 5 s), then its latency open-loop
# at the chosen rate (corrected for coordinated omission).
run() { # name path [header]   (a header "name: value"; a bare value is a cookie)
  local max open header=()
  if [[ -n "${3:-}" ]]; then
    if [[ "$3" == *": "* ]]; then header=(-H "$3"); else header=(-H "cookie: $3"); fi
  fi
  max=$("${client_pin[@]}" oha --no-tui --output-format json -z 5s -c 16 "${header[@]}" "$base$2")
  open=$("${client_pin[@]}" oha --no-tui --output-format json -z "$duration" -q "$rate" --latency-correction -c 16 \
    "${header[@]}" "$base$2")
  python3 - "$1" "$max" "$open" <<'EOF'
import json, sys
name, top, doc = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
p = doc["latencyPercentiles"]
codes = doc.get("statusCodeDistribution", {})
print(f'{name}\t{top["summary"]["requestsPerSec"]:.0f}\t{doc["summary"]["requestsPerSec"]:.0f}\t'
      f'{p["p50"]*1000:.1f}\t{p["p99"]*1000:.1f}\t{p["p99.9"]*1000:.1f}\t{",".join(sorted(codes))}')
EOF
}

# The stylesheet in the current bundle's folder (scripts/build.sh writes its name).
css="/pkg/$(cat target/site/pkg/hash.txt)/quartermaster.css"
results=$(
  run "trivial page (404)" "/no-such-page"
  run "/healthz" "/healthz"
  run "static file (CSS)" "$css"
  run "My Access (heavy person)" "/" "$heavy_cookie"
  run "package page (big package)" "/packages/$package" "$heavy_cookie"
  run "Approvals (busiest approver)" "/approvals" "$approver_cookie"
  run "audit log, one object" "/admin/audit?object_type=$audit_type&object_id=$audit_id" "$admin_cookie"
  run "audit CSV export, one object" "/admin/audit.csv?object_type=$audit_type&object_id=$audit_id" "$admin_cookie"
  run "admin assignments list (big package)" "/admin/packages/$package" "$admin_cookie"
  run "REST GET /assignments (heavy person)" "/api/v1/assignments" "authorization: Bearer $heavy_token"
  run "REST GET /requests (heavy person)" "/api/v1/requests" "authorization: Bearer $heavy_token"
  run "REST GET /packages (heavy person)" "/api/v1/packages" "authorization: Bearer $heavy_token"
  run "REST GET /approvals (busiest approver)" "/api/v1/approvals" "authorization: Bearer $approver_token"
  run "REST GET /packages/{id}/assignments (big package)" "/api/v1/packages/$package/assignments" "authorization: Bearer $admin_token"
  run "REST GET /audit-events, one object" "/api/v1/audit-events?object_type=$audit_type&object_id=$audit_id" "authorization: Bearer $admin_token"
  # Again at the end: this machine's speed can change within minutes, and a share read
  # against a trivial page measured at another speed means nothing.
  run "trivial page (404), again at the end" "/no-such-page"
)
rss_load=$(rss)

python3 - "$results" "$backend" "$scale" "$rate" "$duration" <<'EOF'
import sys
rows = [r.split("\t") for r in sys.argv[1].strip().splitlines()]
backend, scale, rate, duration = sys.argv[2:6]
first, last = float(rows[0][1]), float(rows[-1][1])
trivial = (first + last) / 2 or 1.0
print(f"\n{backend}, scale {scale}: most requests/s (16 connections, 5 s), then latency open loop at {rate}/s for {duration} (ms)\n")
print(f"Shares are of the trivial page's mean: {first:.0f} requests/s at the start, {last:.0f} at the end.")
if abs(first - last) > 0.2 * trivial:
    print("They differ by more than a fifth: the machine's speed changed during the run, so its shares are not to be trusted. Run again.")
print()
print("| page | max requests/s | share of trivial | achieved at rate | p50 | p99 | p99.9 | statuses |")
print("|---|---|---|---|---|---|---|---|")
for name, top, achieved, p50, p99, p999, codes in rows:
    print(f"| {name} | {top} | {float(top) / trivial:.0%} | {achieved} | {p50} | {p99} | {p999} | {codes} |")
EOF
echo
echo "server RSS at rest: $rss_rest; after the load: $rss_load; cold start to ready: ${cold_start}s"
