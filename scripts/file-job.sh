#!/usr/bin/env bash
# The file → null job that memory and speed are compared on (issue 21):
# 2,000,000 synthetic records (100,000 distinct, their buckets folded onto
# the 8 that the 16 rules watch, so ~10 % yield a message), a `file` source
# and a `null` sink. Prints the run's summary, wall time and peak RSS, for
# each build given (default: target/release/ossnotify), RUNS times each,
# and after each build's runs the one-thread simd-json DOM parse of the same
# input (benches/parse_floor.rs): the whole job's records/s over the
# floor's is the ratio issue 21 sets at 2 or more.
#
#   bash scripts/file-job.sh [BUILD...]      # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${FILE_JOB_DIR:-target/file-job}
mkdir -p "$dir"
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=(target/release/ossnotify)
if [ ! -s "$dir/in.ndjson" ]; then
  "${builds[0]}" loadgen --file "$dir/seed.ndjson" --records 100000 >/dev/null
  python3 - "$dir" <<'PY'
import re, sys
d = sys.argv[1]
buckets = [0, 125, 250, 375, 500, 625, 750, 875]
with open(f"{d}/seed.ndjson") as src, open(f"{d}/base.ndjson", "w") as out:
    for i, line in enumerate(src):
        out.write(re.sub(r"bucket-\d{6}", "bucket-%06d" % buckets[i % 8], line))
types = [["ObjectCreated:*", "ObjectDownloaded:GetObject"],
         ["ObjectDownloaded:GetObject", "ObjectRemoved:*"]]
text = f'[source]\ntype = "file"\npath = "{d}/in.ndjson"\n\n[dead_letter]\npath = "{d}/dead-letter"\n\n[sinks.discard]\ntype = "null"\n\n'
for b in buckets:
    for j in range(2):
        events = ", ".join(f'"{t}"' for t in types[j])
        text += f'[[rules]]\nid = "rule-{b}-{j}"\nbucket = "bucket-{b:06d}"\nevents = [{events}]\nresources = ["dir{j}/*"]\nsinks = ["discard"]\n'
open(f"{d}/job.toml", "w").write(text)
PY
  "${builds[0]}" loadgen --input "$dir/base.ndjson" --file "$dir/in.ndjson" --records 2000000 >/dev/null
fi
# The one-thread simd-json DOM parse of the same input, in the same run:
# the floor the whole job's speed is a multiple of.
cargo bench -q --bench parse_floor --no-run 2>/dev/null
floor=$(cargo bench -q --bench parse_floor --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("target", {}).get("name") == "parse_floor" and m.get("executable"):
        print(m["executable"])')
for build in "${builds[@]}"; do
  for _ in $(seq "${RUNS:-3}"); do
    rm -rf "$dir/dead-letter"
    echo "$build: $(/usr/bin/time -f '%e s, peak RSS %M KiB' "$build" run -c "$dir/job.toml" 2>&1 | grep -v INFO | tr '\n' ' ')"
  done
  "$floor" "$dir/in.ndjson"
done
