#!/usr/bin/env bash
# The newcomer's first command: the main job end to end on this machine.
# Builds ossnotify, starts the test Kafka broker (tansu, installed into
# .tools/ on first use) and the local MNS endpoint (`ossnotify mns-dev`),
# produces the sample operation logs to Kafka, runs the pipeline until every
# notification has reached the MNS queue, stops it with SIGTERM, and prints
# the notifications that arrived, decoded from their Base64.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/ossnotify
work=target/demo
rm -rf "$work" && mkdir -p "$work"

echo "== ossnotify validate -c configs/demo.toml"
"$bin" validate -c configs/demo.toml
echo

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== test broker (tansu) on 127.0.0.1:$port"
bash scripts/broker.sh start "$port" $$
bash scripts/broker.sh topic "$port" oss-oplog 3
export OSSNOTIFY_DEMO_BROKERS="127.0.0.1:$port"

export MNS_ACCESS_KEY_ID=LTAIdemo MNS_ACCESS_KEY_SECRET=demo-secret
"$bin" mns-dev --listen 127.0.0.1:0 --access-key-id "$MNS_ACCESS_KEY_ID" \
  --access-key-secret "$MNS_ACCESS_KEY_SECRET" --queues oss-events \
  --record "$work/mns-received.ndjson" >"$work/mns-dev.out" 2>"$work/mns-dev.log" &
mns_pid=$!
run_pid=
trap 'kill $mns_pid $run_pid 2>/dev/null || true; bash scripts/broker.sh stop '"$port" EXIT
for _ in $(seq 1 50); do grep -q listening "$work/mns-dev.out" 2>/dev/null && break; sleep 0.1; done
export OSSNOTIFY_DEMO_MNS
OSSNOTIFY_DEMO_MNS="$(awk '{print $4}' "$work/mns-dev.out")"
echo "== $(cat "$work/mns-dev.out")"
echo

records=$(grep -c . configs/demo-oplogs.ndjson)
echo "== ossnotify loadgen: the $records sample records to topic oss-oplog"
"$bin" loadgen --brokers "$OSSNOTIFY_DEMO_BROKERS" --topic oss-oplog --input configs/demo-oplogs.ndjson --records "$records"
expected=$("$bin" match -c configs/demo.toml configs/demo-oplogs.ndjson 2>/dev/null | grep -c .)
echo

echo "== ossnotify run -c configs/demo-run.toml   (Kafka -> rules -> MNS queue on mns-dev)"
echo "   (joining the consumer group can take ~25 s on the test broker)"
"$bin" run -c configs/demo-run.toml 2>"$work/run.log" &
run_pid=$!
for _ in $(seq 1 600); do
  got=$(cat "$work/mns-received.ndjson" 2>/dev/null | grep -c . || true)
  [ "${got:-0}" -ge "$expected" ] && break
  sleep 0.2
done
sleep 1
kill -TERM "$run_pid"
wait "$run_pid" || { echo "run failed:"; cat "$work/run.log"; exit 1; }
run_pid=
grep -v "^\s*$" "$work/run.log" | tail -3
echo

echo "== what mns-dev received, decoded ($expected expected):"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)["body"])
' "$work/mns-received.ndjson" | python3 scripts/show-notifications.py
echo
echo "== ossnotify dead-letter ls -c configs/demo-run.toml   (the invalid records, with their Kafka coordinates)"
"$bin" dead-letter ls -c configs/demo-run.toml
echo
echo "== ossnotify backlog stats -c configs/demo-run.toml   (what waits for a sink that failed; empty here)"
"$bin" backlog stats -c configs/demo-run.toml
