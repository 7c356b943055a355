#!/usr/bin/env bash
# A PNG of the dashboard at 1280x800, for a person to look at:
#
#   scripts/dashboard-screenshot.sh [OUT.png]     (default: docs/dashboard.png)
#
# Starts target/release/dwbroker (or $DWBROKER_BIN) on free loopback ports with a
# temporary data dir, puts some load on it (tests/interop/browser/dashboard-load.mjs:
# MQTT.js and nats.ws over WebSocket, a STOMP queue holding messages), opens the
# dashboard in headless Chromium (tests/interop/browser/dashboard.mjs) and stops
# everything it started. Needs node, /usr/bin/chromium and
# `npm ci --prefix tests/interop/browser`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=$(realpath -m "${1:-docs/dashboard.png}")
BIN=${DWBROKER_BIN:-target/release/dwbroker}
BROWSER=tests/interop/browser
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 1; }
[ -d "$BROWSER/node_modules/playwright-core" ] || { echo "run: npm ci --prefix $BROWSER" >&2; exit 1; }

work=$(mktemp -d)
broker=""
load=""
cleanup() {
    if [ -n "$load" ]; then kill "$load" 2>/dev/null || true; fi
    if [ -n "$broker" ]; then kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

NO_COLOR=1 "$BIN" --mqtt 127.0.0.1:0 --amqp 127.0.0.1:0 --stomp 127.0.0.1:0 --nats 127.0.0.1:0 \
    --kafka-rest off --mqtt-ws 127.0.0.1:0 --stomp-ws off --nats-ws 127.0.0.1:0 \
    --http 127.0.0.1:0 --nats-monitor off --data-dir "$work/data" --log info 2>"$work/log" &
broker=$!

# The port the listener named $1 logged that it listens on.
port() {
    local p
    for _ in $(seq 100); do
        p=$(sed -n "s/.*listening protocol=\"\\?$1\"\\? addr=\"\\?[0-9.]*:\\([0-9]*\\).*/\\1/p" "$work/log" | head -1)
        if [ -n "$p" ]; then echo "$p"; return; fi
        sleep 0.1
    done
    echo "dwbroker did not listen on $1:" >&2
    cat "$work/log" >&2
    exit 1
}
http=$(port http)
mqtt_ws=$(port mqtt-ws)
nats_ws=$(port nats-ws)
stomp=$(port stomp)

(cd "$BROWSER" && exec node dashboard-load.mjs "$mqtt_ws" "$nats_ws" "$stomp") >"$work/load.log" 2>&1 &
load=$!
sleep 3
mkdir -p "$(dirname "$OUT")"
(cd "$BROWSER" && node dashboard.mjs "http://127.0.0.1:$http" - "$OUT")
echo "wrote $OUT"
