#!/usr/bin/env bash
# A/B of two dwbroker binaries through the load harness: broker CPU per delivered
# message (and throughput) for each scenario, the binaries alternating A B A B ...
#
#   scripts/ab.sh /tmp/dwbroker-before target/release/dwbroker
#
# Knobs (environment): PAIRS (3), MESSAGES (100000), PIN (1: --pin), SCENARIOS (a
# newline-separated list of `cargo bench --bench load --` argument lists).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
A=$1
B=$2
PAIRS=${PAIRS:-3}
MESSAGES=${MESSAGES:-100000}
PIN=${PIN:-1}
SCENARIOS=${SCENARIOS:-"mqtt-qos0 --size 64 --subs 1
mqtt-qos1 --size 64 --subs 1
nats-pubsub --size 64 --subs 1
amqp-queue --size 64
amqp-queue --size 64 --confirms
stomp-queue --size 64
stomp-topic --size 64 --subs 10"}
LOAD=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])')
pin=()
if [ "$PIN" = 1 ]; then pin=(--pin); fi
while IFS= read -r scenario; do
    [ -n "$scenario" ] || continue
    for _ in $(seq "$PAIRS"); do
        for bin in "$A" "$B"; do
            # shellcheck disable=SC2086 # the scenario is a word list on purpose
            "$LOAD" $scenario --messages "$MESSAGES" --broker dwbroker --dwbroker-bin "$bin" "${pin[@]}" 2>&1 \
                | python3 -c '
import json, sys
bin, scenario = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
        cpu, tput, lost = r["broker_cpu_us_per_msg"], r["throughput"], r["lost"]
        print(f"{scenario:<40} {bin:<32} cpu_us_per_msg {cpu:7.2f}  throughput {tput:9.0f}  lost {lost}")
' "$bin" "$scenario"
        done
    done
done <<< "$SCENARIOS"
