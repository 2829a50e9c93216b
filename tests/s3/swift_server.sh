#!/usr/bin/env bash
# A private, single-node S3 API server for tests: OpenStack Swift (Debian 12 packages) with
# its s3api middleware, which validates AWS Signature V4 like AWS does.
#
#   swift_server.sh start STATE_DIR   start it; prints one line (also written to STATE_DIR/env)
#       endpoint=http://127.0.0.1:PORT access_key=test:tester secret_key=testing region=us-east-1
#     once the server answers a signed ListBuckets; exit 1 with the log tails on failure
#   swift_server.sh stop STATE_DIR    stop everything that start started (idempotent)
#
# Everything lives under STATE_DIR: configs, rings, storage, logs, pid files. Ports are
# free loopback ports picked at start, so several servers can run side by side.
#
# Swift reads its cluster config from /etc/swift/swift.conf, a module constant
# (swift.common.utils.SWIFT_CONF_FILE) with no environment override. Every server therefore
# runs through a small launcher that calls swift.common.utils.set_swift_dir(STATE_DIR/etc)
# before any other Swift module is imported (constraints and storage policies read the file
# at import), then runs the packaged /usr/bin/swift-*-server script. Nothing under /etc is
# read or written.
#
# Environment:
#   SWIFT_SERVER_TIMEOUT    seconds to wait for the server to answer (default 120)
#   SWIFT_SERVER_WATCH_PID  if set, a watchdog stops the server once that process is gone
#                           (a test killed by a timeout or a crash leaves nothing running)
#   SWIFT_SERVER_WATCH_CLEANUP=1  ... and then also deletes STATE_DIR
set -euo pipefail

readonly PY=/usr/bin/python3  # Debian's: the python3 on PATH may lack Swift
readonly ACCESS_KEY="test:tester"
readonly SECRET_KEY="testing"
readonly REGION="us-east-1"
# curl 7.88 signs but does not send x-amz-content-sha256, which s3api requires.
readonly EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
readonly SERVERS=(account container object proxy)

die() {
  echo "swift_server: error: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
}

# proc_id, alive, spawn, log_tails
# shellcheck source=tests/testing/server_script_lib.sh
. "$(dirname "$(realpath "$0")")/../testing/server_script_lib.sh"

stop_all() {
  local file pid start i
  local pids=()
  for file in "$STATE"/run/*.pid; do
    [ -f "$file" ] || continue
    read -r pid start <"$file" || continue
    # Not the watchdog when it is the one stopping (it is our parent then).
    if [ "$pid" != "$PPID" ] && alive "$file"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$file")
    fi
  done
  for ((i = 0; i < 50; i++)); do
    local left=()
    for file in "${pids[@]+"${pids[@]}"}"; do
      if alive "$file"; then left+=("$file"); fi
    done
    pids=("${left[@]+"${left[@]}"}")
    [ "${#pids[@]}" -eq 0 ] && break
    sleep 0.1
  done
  for file in "${pids[@]+"${pids[@]}"}"; do
    read -r pid start <"$file" || continue
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$STATE"/run/*.pid
}

write_launcher() {
  cat >"$STATE/etc/launch.py" <<'EOF'
# launch.py SWIFT_DIR SCRIPT ARGS...: runs a packaged Swift server script with swift.conf
# read from SWIFT_DIR instead of /etc/swift.
import runpy
import sys

from swift.common import utils

utils.set_swift_dir(sys.argv[1])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
EOF
}

# Prints five free loopback ports (account container object proxy memcached) and builds the
# three rings for the first three, in one interpreter (swift-ring-builder takes ~1.5 s each).
ports_and_rings() {
  "$PY" - "$STATE/etc" <<'EOF'
import socket
import sys

from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.ring import RingBuilder  # noqa: E402 (reads swift.conf at import)

socks = []
for _ in range(5):
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
for s in socks:
    s.close()
for name, port in zip(('account', 'container', 'object'), ports):
    b = RingBuilder(0, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
               'device': 'd1', 'weight': 1.0, 'meta': ''})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (sys.argv[1], name))
print(' '.join(map(str, ports)))
EOF
}

# [DEFAULT] lines shared by the four servers.
common_conf() {
  local name=$1 port=$2
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
bind_timeout = 10
workers = 0
user = $USER_NAME
swift_dir = $STATE/etc
devices = $STATE/srv/$name
mount_check = false
disable_fallocate = true
fallocate_reserve = 0
log_name = $name-server
log_level = INFO
# not /dev/log: keep the host's syslog clean; -v sends the log to the console (log file)
log_address = $STATE/log/no-syslog
EOF
}

write_swift_conf() {
  local prefix suffix
  prefix=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  suffix=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  cat >"$STATE/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = $prefix
swift_hash_path_suffix = $suffix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
max_meta_value_length = 2048
max_meta_overall_size = 4096
EOF
}

write_configs() {
  local pa=$1 pc=$2 po=$3 pp=$4 pm=$5 name
  local -A port=([account]=$pa [container]=$pc [object]=$po)
  for name in account container object; do
    mkdir -p "$STATE/srv/$name/d1"
    {
      common_conf "$name" "${port[$name]}"
      cat <<EOF

[pipeline:main]
pipeline = healthcheck $name-server

[app:$name-server]
use = egg:swift#$name

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
    } >"$STATE/etc/$name-server.conf"
  done
  {
    common_conf proxy "$pp"
    cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$pm

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
  } >"$STATE/etc/proxy-server.conf"
}

# A signed S3 ListBuckets; prints the HTTP status (000 when nothing answered). The access key
# goes URL-encoded into the URL: curl's --user splits "test:tester:testing" at the first colon.
list_buckets() {
  local endpoint=$1
  curl -sS -o "$STATE/run/ready.out" -w '%{http_code}' --max-time 5 \
    -H "x-amz-content-sha256: $EMPTY_SHA256" --aws-sigv4 "aws:amz:$REGION:s3" \
    "${endpoint/http:\/\//http://${ACCESS_KEY//:/%3A}:$SECRET_KEY@}/" 2>/dev/null || true
}

# One start attempt; returns 1 with the reason in run/error.
start_once() {
  local ports pa pc po pp pm name
  mkdir -p "$STATE/etc" "$STATE/srv" "$STATE/log" "$STATE/run"
  write_launcher
  write_swift_conf
  if ! ports=$(ports_and_rings 2>"$STATE/log/rings.log"); then
    echo "building the rings failed: $(tail -n 5 "$STATE/log/rings.log")" >"$STATE/run/error"
    return 1
  fi
  read -r pa pc po pp pm <<<"$ports"
  write_configs "$pa" "$pc" "$po" "$pp" "$pm"

  spawn memcached memcached -l 127.0.0.1 -p "$pm" -U 0 -m 16 -t 1 -u "$USER_NAME"
  for name in "${SERVERS[@]}"; do
    spawn "$name" "$PY" "$STATE/etc/launch.py" "$STATE/etc" "/usr/bin/swift-$name-server" \
      "$STATE/etc/$name-server.conf" -v
  done

  local endpoint="http://127.0.0.1:$pp" deadline code="" file
  local -A healthy=() port=([account]=$pa [container]=$pc [object]=$po)
  deadline=$((SECONDS + TIMEOUT))
  while true; do
    for file in "$STATE"/run/*.pid; do
      if ! alive "$file"; then
        name=$(basename "$file" .pid)
        echo "$name exited during start-up" >"$STATE/run/error"
        return 1
      fi
    done
    # Every backend answers its own healthcheck (ListBuckets only reaches the account server).
    for name in account container object; do
      if [ -z "${healthy[$name]:-}" ] &&
        [ "$(curl -sS --max-time 2 "http://127.0.0.1:${port[$name]}/healthcheck" \
          2>/dev/null || true)" = "OK" ]; then
        healthy[$name]=1
      fi
    done
    if [ "${#healthy[@]}" -eq 3 ]; then
      code=$(list_buckets "$endpoint")
      [ "$code" = "200" ] && break
      # Up but refusing (a 4xx): waiting longer will not help.
      if [ "${code:0:1}" = "4" ]; then
        {
          echo "signed ListBuckets answered $code:"
          head -c 500 "$STATE/run/ready.out"
        } >"$STATE/run/error"
        return 1
      fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      {
        echo "no answer within ${TIMEOUT}s (healthy backends: ${!healthy[*]};" \
          "last ListBuckets status: ${code:-none})"
        if [ -s "$STATE/run/ready.out" ]; then head -c 500 "$STATE/run/ready.out"; fi
      } >"$STATE/run/error"
      return 1
    fi
    sleep 0.1
  done

  echo "endpoint=$endpoint access_key=$ACCESS_KEY secret_key=$SECRET_KEY region=$REGION" \
    >"$STATE/env"
}

start() {
  if ! "$PY" -c 'import swift.common.middleware.s3api' 2>/dev/null; then
    die "Swift is not installed for $PY (run scripts/install-deps.sh)"
  fi
  command -v memcached >/dev/null || die "memcached is not installed (run scripts/install-deps.sh)"
  command -v curl >/dev/null || die "curl is not installed (run scripts/install-deps.sh)"
  if [ -f "$STATE/env" ] && alive "$STATE/run/proxy.pid"; then
    die "a server is already running in $STATE"
  fi
  USER_NAME=$(id -un)
  TIMEOUT=${SWIFT_SERVER_TIMEOUT:-120}

  local attempt
  for attempt in 1 2 3; do
    rm -rf "${STATE:?}/etc" "$STATE/srv" "$STATE/log" "$STATE/run" "$STATE/env"
    if start_once; then
      start_watchdog "${SWIFT_SERVER_WATCH_PID:-}" "${SWIFT_SERVER_WATCH_CLEANUP:-0}"
      cat "$STATE/env"
      return 0
    fi
    stop_all
    # A free port taken by someone else between picking and binding: pick again.
    if grep -qs -e "Could not bind" -e "Address already in use" "$STATE"/log/*.log; then
      echo "swift_server: port conflict on attempt $attempt, retrying" >&2
      continue
    fi
    break
  done
  {
    echo "swift_server: error: the S3 server in $STATE did not start: $(cat "$STATE/run/error")"
    log_tails
  } >&2
  exit 1
}

server_script_main "$@"
