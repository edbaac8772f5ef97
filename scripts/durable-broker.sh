#!/usr/bin/env bash
# A Kafka-compatible broker that keeps its data across its own restarts, for
# the chaos harness (`cargo bench --bench chaos`): tansu on its PostgreSQL
# storage engine, with PostgreSQL from Debian's packages. (The in-memory
# tansu of scripts/broker.sh loses everything when it restarts, and the
# PyPI build of tansu has no PostgreSQL storage, so this one is built from
# crates.io with it.)
#
#   scripts/durable-broker.sh install                      # postgresql (apt) and tansu+postgres (cargo) into .tools/durable
#   scripts/durable-broker.sh start DIR PG_PORT KAFKA_PORT  # PostgreSQL (its data in DIR, created once) and tansu on 127.0.0.1
#   scripts/durable-broker.sh restart DIR KAFKA_PORT         # stop tansu, start it again on the same data
#   scripts/durable-broker.sh stop DIR                       # stop both
#   scripts/durable-broker.sh topic KAFKA_PORT NAME PARTITIONS
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools/durable"
tansu="$tools/bin/tansu"
TANSU_VERSION=0.6.0

pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && echo "$d"
}

install() {
  if [ -z "$(pg_bin)" ]; then
    echo "durable-broker.sh: installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  if [ ! -x "$tansu" ]; then
    echo "durable-broker.sh: building tansu $TANSU_VERSION with PostgreSQL storage (once; several minutes)" >&2
    cargo install tansu --version "$TANSU_VERSION" --features postgres --root "$tools" --locked >&2
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
  local dir="$1" kafka="$2" pg
  pg="$(cat "$dir/pg.port")"
  nohup "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$kafka" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka" \
    --storage-engine "postgres://postgres@127.0.0.1:$pg/postgres" >>"$dir/tansu.log" 2>&1 &
  echo $! >"$dir/tansu.pid"
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
    dir="$2" pg="$3" kafka="$4"
    install
    bin="$(pg_bin)"
    mkdir -p "$dir"
    # PostgreSQL refuses to run as root: its data belongs to the postgres
    # user that Debian's package creates.
    chown postgres "$dir"
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
      runuser -u postgres -- "$bin/initdb" -D "$dir/pg" -U postgres --auth=trust >"$dir/initdb.log" 2>&1
    fi
    echo "$pg" >"$dir/pg.port"
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg/postgres.log" -w \
      -o "-p $pg -k $dir -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
    start_tansu "$dir" "$kafka"
    ;;
  restart)
    stop_tansu "$2"
    start_tansu "$2" "$3"
    ;;
  stop)
    dir="$2"
    stop_tansu "$dir"
    if [ -f "$dir/pg/postmaster.pid" ]; then
      runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null || true
    fi
    ;;
  topic)
    "$tansu" topic create "$3" --broker "tcp://127.0.0.1:$2" --partitions "$4" >/dev/null
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
