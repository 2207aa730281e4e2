#!/usr/bin/env bash
# Runs a local smsgw cluster on 127.0.0.1 from cluster/<N>-nodes/*.toml.
#
#   cluster/ctl.sh [-n 3|5] start            start every member (in the background)
#   cluster/ctl.sh [-n 3|5] stop             SIGTERM every member (graceful drain), wait up to 30 s
#   cluster/ctl.sh [-n 3|5] status           which members run or are paused, and the cluster view
#   cluster/ctl.sh [-n 3|5] kill ID          kill -9 one member
#   cluster/ctl.sh [-n 3|5] term ID          SIGTERM one member (graceful)
#   cluster/ctl.sh [-n 3|5] pause ID         SIGSTOP one member (frozen, not dead)
#   cluster/ctl.sh [-n 3|5] resume ID        SIGCONT it
#   cluster/ctl.sh [-n 3|5] restart ID       stop one member gracefully if it runs (up to 30 s),
#                                            then start it again (same data dir)
#   cluster/ctl.sh [-n 3|5] wipe             stop everything and delete the data dirs
#
# stop, term and restart resume a paused member first, so that it can drain. The binary is
# $SMSGW_BIN (a relative path is taken from the current directory), else target/release/smsgw
# (built if missing). Logs and pid files go to data/<N>-nodes/. Works from any directory:
# paths in the tomls are relative to the repository root, so the script runs there.
set -euo pipefail

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
bin="${SMSGW_BIN:-}"
if [[ -n "$bin" && "$bin" != /* ]]; then bin="$PWD/$bin"; fi # before the cd below
cd "$(dirname "$script")/.."

size=3
if [[ "${1:-}" == "-n" ]]; then
  size="${2:?-n needs a cluster size (3 or 5)}"
  shift 2
fi
conf_dir="cluster/${size}-nodes"
run_dir="data/${size}-nodes"
token="local-cluster-admin-token"
ctl="cluster/ctl.sh"; [[ "$size" == 3 ]] || ctl+=" -n $size" # for hints in messages
stop_wait_seconds=30 # for a member to drain and exit after SIGTERM
[[ -d "$conf_dir" ]] || { echo "no cluster definition $conf_dir (use -n 3 or -n 5)" >&2; exit 2; }
mkdir -p "$run_dir"

if [[ -z "$bin" ]]; then
  bin="target/release/smsgw"
  if [[ ! -x "$bin" ]]; then
    echo "building $bin ..." >&2
    cargo build --release --bin smsgw >&2
  fi
elif [[ ! -x "$bin" ]]; then
  echo "SMSGW_BIN: $bin is not an executable file" >&2
  exit 2
fi

ids() { for f in "$conf_dir"/node*.toml; do basename "$f" .toml | sed 's/node//'; done | sort -n; }
check_id() { [[ -f "$conf_dir/node$1.toml" ]] || { echo "no node $1 in $conf_dir" >&2; exit 2; }; }
pid_of() { cat "$run_dir/node-$1.pid" 2>/dev/null || true; }

# One-letter process state (R, S, D, T = stopped, Z = zombie, ...), empty if there is none.
state_of() {
  local stat
  if stat="$(cat "/proc/$1/stat" 2>/dev/null)"; then
    stat="${stat##*) }" # field 2 (the name, in parentheses) may hold spaces
    echo "${stat%% *}"
  else
    ps -o stat= -p "$1" 2>/dev/null | cut -c1 || true
  fi
}
paused() { [[ "$(state_of "$1")" == [Tt] ]]; }

# The member's process exists, is not a zombie, and (where /proc shows it) really runs
# this member's config: a stale pid file must not make us signal an unrelated process.
alive() {
  local p; p="$(pid_of "$1")"
  [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 1
  [[ "$(state_of "$p")" != Z ]] || return 1
  [[ ! -r "/proc/$p/cmdline" ]] || grep -qaF -- "$conf_dir/node$1.toml" "/proc/$p/cmdline"
}

# The member's API address: `http = "HOST:PORT"` in its toml, else the old 808N default.
http_of() {
  local addr
  addr="$(sed -n '/^[[:space:]]*http[[:space:]]*=/{s/^[^"]*"\([^"]*\)".*/\1/p;q;}' "$conf_dir/node$1.toml")"
  echo "${addr:-127.0.0.1:$((8080 + $1))}"
}
url_of() { # a wildcard listen address is reached on loopback
  local addr; addr="$(http_of "$1")"
  case "$addr" in
    0.0.0.0:*) addr="127.0.0.1:${addr#0.0.0.0:}" ;;
    "[::]:"*) addr="[::1]:${addr#"[::]:"}" ;;
  esac
  echo "http://$addr"
}

start_one() {
  local id="$1"
  if alive "$id"; then echo "node $id already runs (pid $(pid_of "$id"))"; return; fi
  nohup "$bin" start --config "$conf_dir/node$id.toml" >>"$run_dir/node-$id.log" 2>&1 &
  echo $! >"$run_dir/node-$id.pid"
  echo "node $id started (pid $!, log $run_dir/node-$id.log, http $(http_of "$id"))"
}

signal_one() {
  local sig="$1" id="$2"
  if ! alive "$id"; then echo "node $id is not running"; return; fi
  kill "-$sig" "$(pid_of "$id")"
  echo "node $id: sent SIG$sig"
}

# SIGTERM one member, resuming it first if paused (a stopped process cannot drain).
# Returns 1 if it was not running.
term_one() {
  local id="$1" p
  alive "$id" || return 1
  p="$(pid_of "$id")"
  if paused "$p"; then kill -CONT "$p" 2>/dev/null || true; echo "node $id: was paused, sent SIGCONT"; fi
  kill -TERM "$p" 2>/dev/null || true
}

# Wait up to stop_wait_seconds until none of the given members is alive; then name
# every one still alive and return 1.
wait_gone() {
  local id left deadline=$((SECONDS + stop_wait_seconds))
  while ((SECONDS < deadline)); do
    left=0; for id in "$@"; do if alive "$id"; then left=1; fi; done
    [[ $left == 0 ]] && return 0
    sleep 0.2
  done
  left=0
  for id in "$@"; do
    if alive "$id"; then
      left=1
      echo "node $id did not stop in time (pid $(pid_of "$id")); kill it with: $ctl kill $id" >&2
    fi
  done
  return "$left"
}

stop_all() {
  local id sent=()
  for id in $(ids); do
    if term_one "$id"; then echo "node $id: draining"; sent+=("$id"); fi
  done
  [[ ${#sent[@]} == 0 ]] || wait_gone "${sent[@]}"
}

restart_one() {
  local id="$1"
  if term_one "$id"; then
    echo "node $id: draining (restart)"
    wait_gone "$id" || exit 1
    echo "node $id stopped"
  fi
  start_one "$id"
}

status() {
  local id p asked=0
  for id in $(ids); do
    if ! alive "$id"; then echo "node $id: stopped"; continue; fi
    p="$(pid_of "$id")"
    if paused "$p"; then echo "node $id: paused (pid $p)"; else echo "node $id: running (pid $p)"; fi
  done
  # The cluster view, from the first member that can answer (a paused one cannot).
  for id in $(ids); do
    if alive "$id" && ! paused "$(pid_of "$id")"; then
      asked=1
      if "$bin" cluster status --url "$(url_of "$id")" --token "$token"; then return 0; fi
    fi
  done
  if [[ $asked == 1 ]]; then echo "no running member answered" >&2; return 1; fi
}

case "${1:-}" in
  start) for id in $(ids); do start_one "$id"; done ;;
  stop) stop_all ;;
  status) status ;;
  kill) check_id "${2:?node id}"; signal_one KILL "$2" ;;
  term)
    check_id "${2:?node id}"
    if term_one "$2"; then echo "node $2: sent SIGTERM"; else echo "node $2 is not running"; fi
    ;;
  pause) check_id "${2:?node id}"; signal_one STOP "$2" ;;
  resume) check_id "${2:?node id}"; signal_one CONT "$2" ;;
  restart) check_id "${2:?node id}"; restart_one "$2" ;;
  wipe)
    stop_all || { echo "not removing $run_dir while members still run" >&2; exit 1; }
    rm -rf "$run_dir"
    echo "removed $run_dir"
    ;;
  *) sed -n '2,/^set -euo/{/^#/p}' "$script"; exit 2 ;;
esac
