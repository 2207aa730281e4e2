#!/usr/bin/env bash
# Runs a local smsgw cluster on 127.0.0.1 from cluster/<N>-nodes/*.toml.
#
#   cluster/ctl.sh [-n 3|5] start            start every member (in the background)
#   cluster/ctl.sh [-n 3|5] stop             SIGTERM every member (graceful drain)
#   cluster/ctl.sh [-n 3|5] status           which members run, and the cluster view
#   cluster/ctl.sh [-n 3|5] kill ID          kill -9 one member
#   cluster/ctl.sh [-n 3|5] term ID          SIGTERM one member (graceful)
#   cluster/ctl.sh [-n 3|5] pause ID         SIGSTOP one member (frozen, not dead)
#   cluster/ctl.sh [-n 3|5] resume ID        SIGCONT it
#   cluster/ctl.sh [-n 3|5] restart ID       start one member again (same data dir)
#   cluster/ctl.sh [-n 3|5] wipe             stop everything and delete the data dirs
#
# The binary is $SMSGW_BIN, else target/release/smsgw (built if missing). Logs and pid
# files go to data/<N>-nodes/. Run from the repository root.
set -euo pipefail

size=3
if [[ "${1:-}" == "-n" ]]; then
  size="$2"
  shift 2
fi
conf_dir="cluster/${size}-nodes"
run_dir="data/${size}-nodes"
token="local-cluster-admin-token"
[[ -d "$conf_dir" ]] || { echo "no cluster definition $conf_dir (use -n 3 or -n 5)" >&2; exit 2; }
mkdir -p "$run_dir"

bin="${SMSGW_BIN:-target/release/smsgw}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin ..." >&2
  cargo build --release --bin smsgw >&2
fi

pid_of() { cat "$run_dir/node-$1.pid" 2>/dev/null || true; }
alive() { local p; p="$(pid_of "$1")"; [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }
ids() { for f in "$conf_dir"/node*.toml; do basename "$f" .toml | sed 's/node//'; done | sort -n; }

start_one() {
  local id="$1"
  if alive "$id"; then echo "node $id already runs (pid $(pid_of "$id"))"; return; fi
  nohup "$bin" start --config "$conf_dir/node$id.toml" >>"$run_dir/node-$id.log" 2>&1 &
  echo $! >"$run_dir/node-$id.pid"
  echo "node $id started (pid $!, log $run_dir/node-$id.log, http 127.0.0.1:$((8080 + id)))"
}

signal_one() {
  local sig="$1" id="$2"
  if ! alive "$id"; then echo "node $id is not running"; return; fi
  kill "-$sig" "$(pid_of "$id")"
  echo "node $id: sent SIG$sig"
}

case "${1:-}" in
  start) for id in $(ids); do start_one "$id"; done ;;
  stop)
    for id in $(ids); do alive "$id" && kill -TERM "$(pid_of "$id")" && echo "node $id: draining"; done
    for _ in $(seq 1 150); do
      any=0; for id in $(ids); do alive "$id" && any=1; done
      [[ $any == 0 ]] && break; sleep 0.2
    done
    ;;
  status)
    for id in $(ids); do
      if alive "$id"; then echo "node $id: running (pid $(pid_of "$id"))"; else echo "node $id: stopped"; fi
    done
    for id in $(ids); do
      if alive "$id"; then
        "$bin" cluster status --url "http://127.0.0.1:$((8080 + id))" --token "$token" && break
      fi
    done
    ;;
  kill) signal_one KILL "${2:?node id}" ;;
  term) signal_one TERM "${2:?node id}" ;;
  pause) signal_one STOP "${2:?node id}" ;;
  resume) signal_one CONT "${2:?node id}" ;;
  restart) start_one "${2:?node id}" ;;
  wipe)
    "$0" -n "$size" stop || true
    rm -rf "$run_dir"
    echo "removed $run_dir"
    ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
