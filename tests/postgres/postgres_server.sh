#!/usr/bin/env bash
# A private PostgreSQL server for tests (Debian's postgresql-15 binaries), on loopback only.
#
#   postgres_server.sh start STATE_DIR   start it; prints one line (also written to STATE_DIR/env)
#       url=postgresql://signround:PASSWORD@127.0.0.1:PORT/postgres
#     once pg_isready answers; exit 1 with the log's tail on failure
#   postgres_server.sh stop STATE_DIR    stop everything that start started (idempotent)
#
# Everything lives under STATE_DIR: the cluster (data/, initdb'd with a random password for
# the superuser `signround`, scram-sha-256 for every connection), the Unix socket and lock
# file (s/), logs (log/), pid files (run/). The port is a free loopback port picked at the
# first start. A start after a stop in the same STATE_DIR restarts the same cluster on the
# same port with the same password (tests of reconnection). fsync is off: the data is
# scratch.
#
# Postgres refuses to run as root: run as root, this script runs initdb and the server as the
# `postgres` system user (setpriv) and hands STATE_DIR to that user.
#
# Environment:
#   POSTGRES_BIN_DIR         where initdb, postgres and pg_isready are (default: the newest
#                            /usr/lib/postgresql/*/bin, else the ones on PATH)
#   POSTGRES_SERVER_TIMEOUT  seconds to wait for the server to answer (default 60)
#   POSTGRES_SERVER_WATCH_PID  if set, a watchdog stops the server once that process is gone
#                            (a test killed by a timeout or a crash leaves nothing running)
#   POSTGRES_SERVER_WATCH_CLEANUP=1  ... and then also deletes STATE_DIR
set -euo pipefail

readonly DB_USER=signround

die() {
  echo "postgres_server: error: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
}

# proc_id, alive, spawn, log_tails
# shellcheck source=tests/testing/server_script_lib.sh
. "$(dirname "$(realpath "$0")")/../testing/server_script_lib.sh"

# Runs "$@" as the user that owns the cluster: `postgres` when we are root, else ourselves.
# setpriv execs the command: a spawned server's pid is the server's own.
AS_OWNER=()
if [ "$(id -u)" -eq 0 ]; then
  AS_OWNER=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
as_owner() {
  "${AS_OWNER[@]+"${AS_OWNER[@]}"}" "$@"
}

# Sends $1 to the process of pid file $2 and waits up to $3 tenths of a second for it to go.
signal_and_wait() {
  local sig=$1 file=$2 tenths=$3 pid start i
  alive "$file" || return 0
  read -r pid start <"$file"
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < tenths; i++)); do
    alive "$file" || return 0
    sleep 0.1
  done
  return 1
}

stop_all() {
  local file pid start
  # Fast shutdown (SIGINT) first: it ends the sessions and takes well under a second.
  if [ -f "$STATE/run/postgres.pid" ]; then
    signal_and_wait INT "$STATE/run/postgres.pid" 100 ||
      signal_and_wait QUIT "$STATE/run/postgres.pid" 30 ||
      signal_and_wait KILL "$STATE/run/postgres.pid" 30 || true
  fi
  for file in "$STATE"/run/*.pid; do
    [ -f "$file" ] || continue
    read -r pid start <"$file" || continue
    # Not the watchdog when it is the one stopping (it is our parent then).
    if [ "$pid" != "$PPID" ] && alive "$file"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  rm -f "$STATE"/run/*.pid
}

find_bin_dir() {
  if [ -n "${POSTGRES_BIN_DIR:-}" ]; then
    echo "$POSTGRES_BIN_DIR"
    return
  fi
  local dir
  # shellcheck disable=SC2012  # version directories: plain names
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then
      echo "$dir"
      return
    fi
  done
  dir=$(command -v initdb 2>/dev/null) || return 0
  dirname "$dir"
}

# A free loopback port (the kernel's pick), or a random one in 20000-59999 without Python.
free_port() {
  local py
  for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' && return
    fi
  done
  echo $((20000 + RANDOM % 40000))
}

# Creates the cluster: password, port, initdb.
init_cluster() {
  rm -rf "${STATE:?}/data" "$STATE/password" "$STATE/port"
  (
    umask 077
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$STATE/password"
  )
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$STATE/password"; fi
  free_port >"$STATE/port"
  if ! as_owner "$BIN/initdb" -D "$STATE/data" -U "$DB_USER" --auth=scram-sha-256 \
    --pwfile="$STATE/password" --encoding=UTF8 --locale=C --no-sync \
    >"$STATE/log/initdb.log" 2>&1; then
    echo "initdb failed: $(tail -n 5 "$STATE/log/initdb.log")" >"$STATE/run/error"
    return 1
  fi
}

# One start attempt of the cluster in data/; returns 1 with the reason in run/error.
start_once() {
  local port sockets deadline
  port=$(cat "$STATE/port")
  # A Unix socket path has at most 107 bytes; a longer STATE_DIR gets TCP only.
  sockets="$STATE/s"
  if [ $((${#sockets} + 20)) -gt 107 ]; then sockets=""; fi
  : >"$STATE/log/postgres.log"
  spawn postgres "${AS_OWNER[@]+"${AS_OWNER[@]}"}" "$BIN/postgres" -D "$STATE/data" \
    -p "$port" -k "$sockets" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c shared_buffers=16MB -c max_connections=50 \
    -c dynamic_shared_memory_type=mmap -c logging_collector=off
  deadline=$((SECONDS + TIMEOUT))
  while true; do
    if ! alive "$STATE/run/postgres.pid"; then
      echo "postgres exited during start-up" >"$STATE/run/error"
      return 1
    fi
    if "$BIN/pg_isready" -h 127.0.0.1 -p "$port" -t 2 -q; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "no answer from pg_isready within ${TIMEOUT}s" >"$STATE/run/error"
      return 1
    fi
    sleep 0.05
  done
  echo "url=postgresql://$DB_USER:$(cat "$STATE/password")@127.0.0.1:$port/postgres" \
    >"$STATE/env"
}

start() {
  cd "$STATE"  # the server user may not be allowed into our working directory
  BIN=$(find_bin_dir)
  local tool
  for tool in initdb postgres pg_isready; do
    [ -x "$BIN/$tool" ] || die "no $tool in '${BIN:-PATH}' (run scripts/install-deps.sh)"
  done
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "run as root, this needs the 'postgres' system user"
    chown postgres: "$STATE"
    as_owner test -w "$STATE" -a -x "$STATE" ||
      die "the postgres user cannot write $STATE (a parent directory closed to it?)"
  fi
  if alive "$STATE/run/postgres.pid"; then die "a server is already running in $STATE"; fi
  TIMEOUT=${POSTGRES_SERVER_TIMEOUT:-60}
  mkdir -p "$STATE/log" "$STATE/run" "$STATE/s"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$STATE/s"; fi
  rm -f "$STATE/env" "$STATE/run/error"

  local attempt reuse=0
  if [ -f "$STATE/data/PG_VERSION" ] && [ -s "$STATE/port" ] && [ -s "$STATE/password" ]; then
    reuse=1
  fi
  for attempt in 1 2 3; do
    if [ "$reuse" = 1 ] || init_cluster; then
      if start_once; then
        start_watchdog "${POSTGRES_SERVER_WATCH_PID:-}" "${POSTGRES_SERVER_WATCH_CLEANUP:-0}"
        cat "$STATE/env"
        return 0
      fi
    fi
    stop_all
    # A free port taken by someone else between picking and binding: a new cluster, new port.
    if [ "$reuse" = 0 ] && grep -qs -e "could not bind" -e "Address already in use" \
      "$STATE/log/postgres.log"; then
      echo "postgres_server: port conflict on attempt $attempt, retrying" >&2
      continue
    fi
    break
  done
  {
    echo "postgres_server: error: the server in $STATE did not start: $(cat "$STATE/run/error")"
    log_tails
  } >&2
  exit 1
}

server_script_main "$@"
