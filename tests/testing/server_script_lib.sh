# shellcheck shell=bash
# Shell helpers shared by the test server scripts (tests/s3/swift_server.sh,
# tests/postgres/postgres_server.sh): pid files that survive pid reuse, background
# servers with their logs and the logs' tails, the watchdog, and the scripts'
# `start|stop STATE_DIR` command line. Sourced; expects $STATE (the state dir,
# with log/ and run/).

# "PID STARTTIME" of a process, STARTTIME from /proc/PID/stat (guards against reused pids).
proc_id() {
  local pid=$1 stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }  # fields after "(comm) ": state is field 3 overall, start time 22
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != "Z" ] || return 1  # a zombie has exited (nobody reaped it yet)
  echo "$pid ${20}"
}

# Whether the process recorded in pid file $1 is still the one we started.
alive() {
  local file=$1 pid start now
  [ -f "$file" ] || return 1
  read -r pid start <"$file" || return 1
  now=$(proc_id "$pid") || return 1
  [ "$now" = "$pid $start" ]
}

# Starts "$@" in the background as server $name: log in log/$name.log, pid in run/$name.pid.
spawn() {
  local name=$1
  shift
  "$@" </dev/null >>"$STATE/log/$name.log" 2>&1 &
  local pid=$!
  proc_id "$pid" >"$STATE/run/$name.pid" || echo "$pid 0" >"$STATE/run/$name.pid"
}

# The last lines of every non-empty log, for error messages.
log_tails() {
  local f
  for f in "$STATE"/log/*.log; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f:"
    tail -n 15 "$f"
  done
}

# With a pid $1 to watch: a background watchdog that runs `SCRIPT stop STATE` once that
# process is gone, and then deletes STATE when $2 is 1 (a test killed by a timeout or a
# crash leaves nothing running).
start_watchdog() {
  [ -n "${1:-}" ] || return 0
  # shellcheck disable=SC2016  # expanded by the watchdog's own shell
  spawn watchdog bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
    "$2" stop "$3"
    if [ "$4" = 1 ]; then rm -rf "$3"; fi' watchdog "$1" "$SELF" "$STATE" "${2:-0}"
}

# The scripts' command line, `start STATE_DIR` or `stop STATE_DIR`: sets SELF and STATE and
# calls the script's start / stop_all (usage otherwise).
server_script_main() {
  [ "$#" -eq 2 ] || usage
  SELF=$(realpath "$0")
  case "$1" in
    start)
      mkdir -p "$2"
      STATE=$(realpath "$2")
      start
      ;;
    stop)
      [ -d "$2" ] || exit 0
      STATE=$(realpath "$2")
      stop_all
      ;;
    *) usage ;;
  esac
}
