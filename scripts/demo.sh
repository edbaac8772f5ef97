#!/usr/bin/env bash
# The newcomer's first command: the main job end to end on this machine.
# Builds ossnotify, checks the demo rules, starts the local MNS endpoint
# (`ossnotify mns-dev`), runs the sample operation logs through the pipeline
# into an MNS queue there, and prints the notifications that arrived,
# decoded from their Base64. Needs only what `cargo build` fetches.
#
# The Kafka source is not built yet: the pipeline reads the sample logs
# from a file. When it is, this script will also start the test broker
# (scripts/broker.sh) and produce the logs to it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/ossnotify
work=target/demo
rm -rf "$work" && mkdir -p "$work"

echo "== ossnotify validate -c configs/demo.toml"
"$bin" validate -c configs/demo.toml
echo

export MNS_ACCESS_KEY_ID=LTAIdemo MNS_ACCESS_KEY_SECRET=demo-secret
"$bin" mns-dev --listen 127.0.0.1:0 --access-key-id "$MNS_ACCESS_KEY_ID" \
  --access-key-secret "$MNS_ACCESS_KEY_SECRET" --queues oss-events \
  --record "$work/mns-received.ndjson" >"$work/mns-dev.out" 2>"$work/mns-dev.log" &
mns_pid=$!
trap 'kill $mns_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do grep -q listening "$work/mns-dev.out" 2>/dev/null && break; sleep 0.1; done
export OSSNOTIFY_DEMO_MNS
OSSNOTIFY_DEMO_MNS="$(awk '{print $4}' "$work/mns-dev.out")"
echo "== $(cat "$work/mns-dev.out")"
echo

echo "== ossnotify run -c configs/demo-run.toml   (sample logs -> rules -> MNS queue on mns-dev)"
"$bin" run -c configs/demo-run.toml
echo

echo "== what mns-dev received, decoded:"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)["body"])
' "$work/mns-received.ndjson" | python3 scripts/show-notifications.py
echo
echo "Invalid records are in $work/dead-letter/dead-letter.ndjson, with their line."
