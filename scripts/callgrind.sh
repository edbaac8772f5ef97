#!/usr/bin/env bash
# Instruction counts (valgrind's callgrind) of `match` and `run` over 20,000
# demo records (configs/demo-oplogs.ndjson, cycled), for each build given:
# the check that a change to the code's shape cost nothing on the hot path
# (issue 23: within 1 %). `run` reads a file into a null sink with one
# worker, so the counts repeat to within about 0.05 %.
#
#   bash scripts/callgrind.sh BUILD...      # e.g. an old and a new binary
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CALLGRIND_DIR:-target/callgrind}
mkdir -p "$dir"
root=$(pwd)
python3 - "$dir" "$root" <<'PY'
import sys
d, root = sys.argv[1], sys.argv[2]
lines = [l for l in open(f"{root}/configs/demo-oplogs.ndjson").read().splitlines() if l.strip()]
with open(f"{d}/demo20k.ndjson", "w") as f:
    for i in range(20000):
        f.write(lines[i % len(lines)] + "\n")
open(f"{d}/run.toml", "w").write(f'''rules_dir = "{root}/configs/rules.d"

[source]
type = "file"
path = "{root}/{d}/demo20k.ndjson"
key_encoding = "url"

[dead_letter]
path = "{root}/{d}/dead-letter"

[pipeline]
workers = 1

[sinks.console]
type = "null"
''')
PY
for bin in "$@"; do
  for cmd in match run; do
    rm -rf "$dir/dead-letter"
    out="$dir/out.$cmd"
    if [ "$cmd" = match ]; then
      args=(match -c configs/demo.toml "$dir/demo20k.ndjson")
    else
      args=(run --no-check-sinks -c "$dir/run.toml")
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "${args[@]}" >/dev/null 2>"$dir/err.$cmd"
    echo "$bin $cmd $(grep -h '^summary:' "$out" | cut -d' ' -f2) instructions"
  done
done
