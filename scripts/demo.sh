#!/usr/bin/env bash
# The newcomer's first command: builds ossnotify, checks the demo config and
# runs the sample operation logs through it, printing each notification that
# would be sent (decoded JSON) and, on stderr, why the other records sent
# nothing. It installs nothing beyond what cargo fetches.
#
# Today this is the dry run (`ossnotify match`): the Kafka source, the sinks
# and mns-dev are the next issues, and this script will grow to start the
# broker, mns-dev and the pipeline once they exist.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/ossnotify

echo "== ossnotify validate -c configs/demo.toml"
"$bin" validate -c configs/demo.toml
echo
echo "== ossnotify match -c configs/demo.toml configs/demo-oplogs.ndjson --explain"
"$bin" match -c configs/demo.toml configs/demo-oplogs.ndjson --explain \
  | python3 scripts/show-notifications.py
