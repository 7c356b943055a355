#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds dwbroker and the load harness (release), starts the
# reference brokers if they are not running (../shared/tools/reference-brokers.sh),
# runs every scenario in comparison mode (dwbroker and the reference broker alternately,
# pinned: broker on CPU 1, generator on CPU 0) and rewrites BENCHMARKS.md from the
# harness's SUMMARY lines.
#
#   scripts/benchmarks.sh                      # the full table (~40-70 min on 2 cores)
#   PAIRS=1 MESSAGES=20000 RUN_SECONDS=5 scripts/benchmarks.sh   # a quick, noisy table
#
# Knobs (environment): PAIRS (3), MESSAGES per run (200000), RUN_SECONDS per run (10),
# RATE for the paced variants (10000), CONNECTIONS for mqtt-idle (10000), PIN (1: --pin),
# CARGO (cargo), REF_SCRIPT, REF_DIR, OUT (BENCHMARKS.md), LOG (target/benchmarks.log),
# ONLY (an extended regex: rerun only the matching variants, e.g. ONLY='^nats'; their rows
# replace the ones in LOG and BENCHMARKS.md is rewritten from the whole log).
# Every run is bounded by MESSAGES and RUN_SECONDS; every server is on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
PAIRS=${PAIRS:-3}
MESSAGES=${MESSAGES:-200000}
RUN_SECONDS=${RUN_SECONDS:-10}
RATE=${RATE:-10000}
CONNECTIONS=${CONNECTIONS:-10000}
PIN=${PIN:-1}
REF_SCRIPT=${REF_SCRIPT:-$ROOT/../shared/tools/reference-brokers.sh}
export REF_DIR=${REF_DIR:-/tmp/dwbroker-reference-brokers}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
LOG=${LOG:-$ROOT/target/benchmarks.log}
START=$SECONDS

echo "=== building dwbroker and the load harness (release)"
"$CARGO" build --release --bin dwbroker
LOAD=$("$CARGO" bench --bench load --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])')
[ -x "$LOAD" ] || { echo "benchmarks: the load harness was not built" >&2; exit 1; }

ref_up() {
    local p
    for p in 21883 24222 25673 26614; do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || return 1
    done
}
if ! ref_up; then
    echo "=== starting the reference brokers ($REF_SCRIPT start)"
    bash "$REF_SCRIPT" start
fi

common=(--broker both --pairs "$PAIRS" --messages "$MESSAGES" --seconds "$RUN_SECONDS")
if [ "$PIN" = 1 ]; then common+=(--pin); fi
variants=(
    "mqtt-qos0 --size 64 --subs 1"
    "mqtt-qos0 --size 64 --subs 10"
    "mqtt-qos0 --size 1024 --subs 1"
    "mqtt-qos0 --size 1024 --subs 10"
    "mqtt-qos0 --size 64 --subs 1 --rate $RATE"
    "mqtt-qos0 --size 64 --subs 10 --rate $RATE"
    "mqtt-qos0 --size 1024 --subs 1 --rate $RATE"
    "mqtt-qos1 --size 64 --subs 1"
    "mqtt-qos1 --size 64 --subs 10"
    "mqtt-qos1 --size 1024 --subs 1"
    "mqtt-qos1 --size 1024 --subs 10"
    "mqtt-qos1 --size 64 --subs 1 --rate $RATE"
    "mqtt-qos1 --size 64 --subs 10 --rate $RATE"
    "mqtt-qos1 --size 1024 --subs 1 --rate $RATE"
    "mqtt-session --size 64"
    "mqtt-session --size 1024"
    "nats-pubsub --size 64 --subs 1"
    "nats-pubsub --size 64 --subs 10"
    "nats-pubsub --size 64 --subs 1 --rate $RATE"
    "nats-pubsub --size 64 --subs 10 --rate $RATE"
    "nats-queue --size 64 --subs 3"
    "nats-queue --size 64 --subs 3 --rate $RATE"
    "nats-reqrep --size 64"
    "mqtt-reqrep --size 64"
    "amqp-reqrep --size 64"
    "stomp-reqrep --size 64"
    "amqp-queue --size 64"
    "amqp-queue --size 64 --confirms"
    "amqp-queue --size 1024"
    "amqp-queue --size 1024 --confirms"
    "amqp-queue --size 64 --rate $RATE"
    "amqp-queue --size 64 --confirms --rate $RATE"
    "amqp-queue --size 64 --persistent --confirms"
    "amqp-queue --size 1024 --persistent --confirms"
    "amqp-queue --size 64 --persistent --confirms --publishers 4"
    "amqp-queue --size 1024 --persistent --confirms --publishers 4"
    "stomp-queue --size 64"
    "stomp-queue --size 64 --rate $RATE"
    "stomp-topic --size 64 --subs 1"
    "stomp-topic --size 64 --subs 10"
    "stomp-topic --size 64 --subs 1 --rate $RATE"
    "js-publish --size 64"
    "js-publish --size 1024"
    "js-publish --size 64 --memory"
    "js-publish --size 1024 --memory"
    "js-publish-sync --size 64"
    "js-publish-sync --size 64 --memory"
    "js-consume --size 64"
    "js-consume --size 64 --memory"
    "js-consume --size 1024"
    "mqtt-idle --connections $CONNECTIONS"
    "mqtt-qos0 --size 64 --subs 1 --tls"
    "mqtt-qos0 --size 1024 --subs 1 --tls"
    "mqtt-qos1 --size 64 --subs 1 --tls"
    "nats-pubsub --size 64 --subs 1 --tls"
    "nats-pubsub --size 64 --subs 10 --tls"
)
# No reference broker speaks these (there is no Kafka REST proxy on this machine), or
# they measure dwbroker against itself (access control: 100 rules per user, beside the
# rows without): dwbroker alone, absolute figures and the broker's CPU per record.
dw_only=(
    "kafka-produce --size 64 --batch 1"
    "kafka-produce --size 64 --batch 1 --publishers 4"
    "kafka-produce --size 64 --batch 100"
    "kafka-produce --size 1024 --batch 100"
    "kafka-produce --size 64 --batch 1 --avro"
    "kafka-produce --size 64 --batch 100 --avro"
    "kafka-consume --size 64"
    "kafka-consume --size 1024"
    "kafka-consume --size 64 --avro"
    "mqtt-qos0 --size 64 --subs 1 --acl 100"
    "nats-pubsub --size 64 --subs 1 --acl 100"
)
dw_common=(--broker dwbroker --messages "$MESSAGES" --seconds "$RUN_SECONDS")
if [ "$PIN" = 1 ]; then dw_common+=(--pin); fi

mkdir -p "$(dirname "$LOG")"
# A full run starts the log afresh; with ONLY, the rows it reruns replace theirs.
if [ -z "${ONLY:-}" ] || [ ! -f "$LOG" ]; then : > "$LOG"; fi
all_variants=("${variants[@]}" "${dw_only[@]}")
for v in "${all_variants[@]}"; do
    if [ -n "${ONLY:-}" ] && ! grep -qE -- "$ONLY" <<< "$v"; then continue; fi
    # shellcheck disable=SC2206 # the variant is a word list on purpose
    if [[ " ${dw_only[*]} " == *" $v "* ]]; then args=($v "${dw_common[@]}"); else args=($v "${common[@]}"); fi
    cmd="cargo bench --bench load -- ${args[*]}"
    echo "COMMAND $cmd" >> "$LOG"
    echo
    echo "=== $cmd   (t+$((SECONDS - START))s)"
    if ! "$LOAD" "${args[@]}" 2>&1 | tee -a "$LOG"; then
        echo "FAILED $cmd" | tee -a "$LOG"
    fi
done

echo
echo "=== writing $OUT"
DW_REV="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src codecs Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')" \
NPROC="$(nproc)" \
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
KERNEL="$(uname -r)" \
RUSTC="$(rustc --version)" \
MOSQUITTO="$(mosquitto -h 2>&1 | head -1 || true)" \
NATS="$(nats-server --version 2>&1 || true)" \
RABBIT="$(dpkg -s rabbitmq-server 2>/dev/null | sed -n 's/^Version: /rabbitmq-server /p')" \
RATE="$RATE" \
SETTINGS="${ONLY:+ONLY=$ONLY }PAIRS=$PAIRS MESSAGES=$MESSAGES RUN_SECONDS=$RUN_SECONDS RATE=$RATE CONNECTIONS=$CONNECTIONS PIN=$PIN" \
ELAPSED="$((SECONDS - START))" \
python3 - "$LOG" "$OUT" <<'PY'
import datetime, json, os, sys

log, out = sys.argv[1:3]
# The log holds `COMMAND <command>` before each harness run, then its output; a row rerun
# later (ONLY=...) replaces the earlier one and keeps its place.
latest, command_of, failed, cur = {}, {}, {}, None
alone = {}  # dwbroker-only runs (no reference broker): label -> RESULT
for line in open(log, encoding="utf-8"):
    if line.startswith("COMMAND "):
        cur = line[len("COMMAND "):].strip()
        failed[cur] = False
    elif line.startswith("RESULT ") and cur and "--broker dwbroker" in cur:
        r = json.loads(line[len("RESULT "):])
        alone[r["label"]] = r
        command_of[r["label"]] = cur
    elif line.startswith("SUMMARY "):
        s = json.loads(line[len("SUMMARY "):])
        latest[s["label"]] = s
        command_of[s["label"]] = cur
    elif line.startswith("FAILED "):
        failed[line[len("FAILED "):].strip()] = True
summaries = list(latest.values())
shown = [command_of[s["label"]] for s in summaries] + [command_of[l] for l in alone]
failed = [c for c, f in failed.items() if f]
env = os.environ


def num(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"


def pair(a, b, d=0):
    return f"{num(a, d)} / {num(b, d)}"


rows, idle, notes, own = [], [], [], []
for label, r in alone.items():
    if not r["ok"]:
        notes.append(f"`{label}`: the run failed or lost records ({'; '.join(r['errors']) or 'lost ' + str(r['lost'])})")
    own.append(f"| {label} | {num(r['throughput'])} | {num(r['p50_us'], 1)} | {num(r['p99_us'], 1)} | "
               f"{num(r['broker_cpu_us_per_msg'], 2)} | {r['lost']} | {num(r['gen_cpu_pct'])} |")
for s in summaries:
    d, r, q = s["dwbroker"], s["reference"], s["ratio"]
    if not (d["all_ok"] and r["all_ok"]):
        notes.append(f"`{s['label']}`: a run failed or lost messages where none may be lost "
                     f"(dwbroker ok: {d['all_ok']}, {r['broker']} ok: {r['all_ok']})")
    if s["scenario"] == "mqtt-idle":
        idle.append(f"| {s['label']} | {r['broker']} | {num(d['rss_per_conn_kib'], 2)} | "
                    f"{num(r['rss_per_conn_kib'], 2)} | {num(q['rss_per_conn'], 2)} | "
                    f"{pair(d['rss_mib'], r['rss_mib'], 1)} |")
        continue
    rows.append(
        f"| {s['label']} | {r['broker']} | {pair(d['throughput'], r['throughput'])} | "
        f"{num(q['throughput'], 2)} | {pair(d['p50_us'], r['p50_us'], 1)} | "
        f"{pair(d['p99_us'], r['p99_us'], 1)} | "
        f"{pair(d['cpu_us_per_msg'], r['cpu_us_per_msg'], 2)} | {num(q['cpu_per_msg'], 2)} | "
        f"{d['lost_max']} / {r['lost_max']} | {pair(d['gen_cpu_pct'], r['gen_cpu_pct'])} |")

pairs = summaries[0]["pairs"] if summaries else "?"
pinned = summaries[0]["pinned"] if summaries else False
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
cmds = "\n".join(dict.fromkeys([c for c in shown if c] + failed))
md = f"""# Benchmarks

dwbroker side by side with the broker each user would otherwise pick, on the same machine,
measured by the load harness in `benches/load/` (`cargo bench --bench load -- --help`).
Generated by `scripts/benchmarks.sh` (last run {now}, {env['ELAPSED']} s, settings
`{env['SETTINGS']}`; each row's own command is listed below); do not edit by hand, rerun
the script.

## Machine

- {env['NPROC']} CPUs: {env['CPU_MODEL']}; Linux {env['KERNEL']}

## Versions

- dwbroker {env['DW_REV']} (release build; {env['RUSTC']})
- {env['MOSQUITTO']} (MQTT reference)
- {env['NATS']} (NATS reference)
- {env['RABBIT']} with its MQTT and STOMP plugins (AMQP and STOMP reference)

## Method

- Each scenario runs alternately on dwbroker and on the reference broker (A B A B ...,
  {pairs} pair(s)); the table gives the median of each and the ratio dwbroker / reference.
- {"Pinned: every broker thread on CPU 1 (`taskset -a -cp 1 <pid>`), the generator on CPU 0, for both brokers alike; every broker is started on all CPUs first (so each sizes its thread pool as it would unpinned: tokio and Go one worker per CPU, Erlang one scheduler per CPU), then pinned. The brokers not being measured sit idle on CPU 1 too." if pinned else "Not pinned: brokers and generator share the CPUs."}
- Clients: rumqttc (MQTT 3.1.1), async-nats, lapin; STOMP through the harness's raw-socket
  client on `dwbroker_codecs::stomp` (no maintained async STOMP client crate exists).
- Throughput: messages received per second (all subscribers together for 1→N), from the
  first send to the last receive. Latency: receive time minus the send time carried in the
  payload (unpaced latency is mostly queueing; the `{env.get('RATE', '10000')}/s` rows are at a fixed offered rate).
  The *-reqrep rows: round trips, one at a time.
- Broker CPU: utime+stime of the broker process (/proc/<pid>/stat, 10 ms ticks) over the
  run, per delivered message. Generator CPU near 100 % marks a generator-bound run, where
  throughput says little and CPU per message still compares the brokers.
- Lost: expected minus the distinct messages received (by the sequence number in the
  payload; a duplicate cannot hide a loss), the most in one run (must be 0 for MQTT QoS 1,
  AMQP and STOMP queues).
- Ratios are dwbroker / reference: above 1 is better for msg/s, below 1 is better for CPU
  per message and RSS.
- dwbroker runs with `max_queued_messages = 1000000` and `max_queued_bytes = 1 GiB`, as the
  reference mosquitto is configured (`max_queued_messages 1000000`, `max_queued_bytes 0`).
- JetStream (`js-*` rows, a stream of the run's own): on a `file` stream dwbroker sends a
  PubAck only after the fsync that covers the message (one fsync serves every publish
  that arrived meanwhile); nats-server by default acknowledges before it syncs (every 2
  minutes), so `js-publish-sync ... file` compares an fsync per publish with none. The
  `js-publish` rows keep 256 PubAcks in flight; `js-consume` fills the stream first and
  measures one pull consumer fetching batches of 500 and acking each message.
- Kafka REST (`kafka-*` rows): no reference proxy runs on this machine, so these rows are
  dwbroker's alone (one run each). `kafka-produce` POSTs `--batch` records per request
  over HTTP/1.1 keep-alive (one request in flight per connection) and counts a record
  when its offset comes back, which is after the fsync that covers it; latency is the
  request's round trip. `kafka-consume` fills the topic first and measures one consumer
  instance reading it all with `GET .../records`. `--avro` registers a value schema and
  sends the records in Avro's JSON encoding (the broker encodes and decodes them).

## Commands

```sh
{cmds}
```

## Results

| scenario | reference | msg/s dwbroker / ref | ratio | p50 µs dwbroker / ref | p99 µs dwbroker / ref | broker CPU µs/msg dwbroker / ref | ratio | lost dwbroker / ref | generator CPU % dwbroker / ref |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(rows) + """

## Idle MQTT connections

| scenario | reference | RSS KiB per connection dwbroker | ref | ratio | broker RSS MiB dwbroker / ref |
| --- | --- | --- | --- | --- | --- |
""" + "\n".join(idle) + """

## Kafka REST (dwbroker alone)

| scenario | records/s | p50 µs | p99 µs | broker CPU µs/record | lost | generator CPU % |
| --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(own) + "\n"
if notes or failed:
    md += "\n## Failures\n\n" + "\n".join(f"- {n}" for n in notes + [f"`{f}` exited non-zero" for f in failed]) + "\n"
open(out, "w", encoding="utf-8").write(md)
print(f"{out}: {len(rows)} scenario rows, {len(idle)} idle rows, {len(notes) + len(failed)} failures")
PY
