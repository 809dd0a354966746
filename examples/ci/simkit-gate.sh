#!/usr/bin/env bash
# Gate a CI job on simkit against your own WebSocket server (plain shell, any CI).
#
#   SERVER_CMD   how to start your server (left empty: it is already running)
#   TARGET       its WebSocket URL, ws://HOST:PORT/PATH ({user} in it is the claimed id)
#   SCENARIO     the kit's scenario (python -m simkit list)
#   STRATEGY     the client policy the tabs play (postmortem-safe: the fixed client)
#   TABS, DURATION, KEEPALIVE (your server's ping interval + timeout), OUT
#   SETTLE       seconds to watch after the workload (default: from KEEPALIVE)
#   CHECKS       the gates, space-separated (docs/ci.md): by default the run is valid, the
#                invariants hold after settling, no tab is unroutable at the end and no
#                live tab was kicked off by its own reload
#
# Exit status: simkit's (0 pass, 1 a check failed, 2 the run is invalid or the input bad),
# or 3 if the server never came up. The server is stopped however the script ends.
set -euo pipefail

SERVER_CMD=${SERVER_CMD-"uvicorn examples.fixed_app:app --host 127.0.0.1 --port 8001"}
TARGET=${TARGET:-ws://127.0.0.1:8001/ws}
SCENARIO=${SCENARIO:-flaky-network}
STRATEGY=${STRATEGY:-postmortem-safe}
TABS=${TABS:-20}
DURATION=${DURATION:-60}
KEEPALIVE=${KEEPALIVE:-40}
OUT=${OUT:-simkit-output}
SETTLE=${SETTLE:-}
CHECKS=${CHECKS:-"valid invariants final_unroutable==0 kicked_live_tabs==0"}
PYTHON=${PYTHON:-python}

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap stop_server EXIT

if [[ -n "$SERVER_CMD" ]]; then
    $SERVER_CMD &
    server_pid=$!
    # wait (at most 30 s) until the server accepts TCP on the target's host and port
    hostport=${TARGET#ws://}
    hostport=${hostport%%/*}
    host=${hostport%:*}
    port=${hostport##*:}
    for _ in $(seq 1 60); do
        if "$PYTHON" -c "import socket,sys; socket.create_connection(('$host', $port), 1)" \
            2>/dev/null; then
            break
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "simkit-gate: the server exited before listening" >&2
            exit 3
        fi
        sleep 0.5
    done
fi

settle=()
if [[ -n "$SETTLE" ]]; then settle=(--settle "$SETTLE"); fi
checks=()
for check in $CHECKS; do checks+=(--check "$check"); done

status=0
"$PYTHON" -m simkit run --scenario "$SCENARIO" --strategy "$STRATEGY" \
    --target "$TARGET" --target-keepalive "$KEEPALIVE" \
    --tabs "$TABS" --duration "$DURATION" "${settle[@]}" \
    "${checks[@]}" \
    --junit "$OUT/junit.xml" --out "$OUT" || status=$?

case $status in
    0) echo "simkit-gate: passed" ;;
    1) echo "simkit-gate: a check failed (see $OUT/junit.xml)" >&2 ;;
    2) echo "simkit-gate: the run is invalid or the input bad (see above)" >&2 ;;
    *) echo "simkit-gate: simkit exited with $status" >&2 ;;
esac
exit "$status"
