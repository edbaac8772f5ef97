#!/usr/bin/env bash
# A Kafka-compatible broker that keeps its data across its own restarts, for
# the chaos harness (`cargo bench --bench chaos`): tansu on its SQLite
# (libsql) storage engine, one database file in DIR. The in-memory tansu of
# scripts/broker.sh loses everything when it restarts, and the PyPI build
# of tansu has no durable storage, so this one is built from crates.io
# (once, into .tools/durable). Why not tansu's PostgreSQL engine: its
# schema is not published with the crate (it lives in tansu's repository's
# init scripts), while the SQLite engine creates its own.
#
#   scripts/durable-broker.sh install                  # tansu with libsql storage (cargo) into .tools/durable
#   scripts/durable-broker.sh start DIR KAFKA_PORT     # tansu on 127.0.0.1, its data in DIR (kept)
#   scripts/durable-broker.sh restart DIR KAFKA_PORT   # stop tansu, start it again on the same data
#   scripts/durable-broker.sh stop DIR
#   scripts/durable-broker.sh topic KAFKA_PORT NAME PARTITIONS
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools/durable"
tansu="$tools/bin/tansu"
TANSU_VERSION=0.6.0

install() {
  if [ ! -x "$tansu" ]; then
    echo "durable-broker.sh: building tansu $TANSU_VERSION with SQLite storage (once; several minutes)" >&2
    cargo install tansu --version "$TANSU_VERSION" --features libsql --root "$tools" --locked >&2
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

start_tansu() {
  local dir="$1" kafka="$2"
  mkdir -p "$dir"
  # (In a subshell for the `cd`; the broker itself is what `$!` names.)
  (
    cd "$dir"
    nohup "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$kafka" \
      --advertised-listener-url "tcp://127.0.0.1:$kafka" \
      --storage-engine "sqlite://tansu.db" >>"$dir/tansu.log" 2>&1 &
    echo $! >"$dir/tansu.pid"
  )
  wait_port "$kafka"
}

stop_tansu() {
  local dir="$1"
  if [ -f "$dir/tansu.pid" ]; then
    local pid
    pid="$(cat "$dir/tansu.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/tansu.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start)
    install
    start_tansu "$2" "$3"
    ;;
  restart)
    stop_tansu "$2"
    start_tansu "$2" "$3"
    ;;
  stop)
    stop_tansu "$2"
    ;;
  topic)
    "$tansu" topic create "$3" --broker "tcp://127.0.0.1:$2" --partitions "$4" >/dev/null
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
