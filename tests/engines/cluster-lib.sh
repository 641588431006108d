# shellcheck shell=bash
# The verbs of tests/engines/<engine>/cluster.sh, the same for both engines: a real N-node cluster on 127.0.0.1,
# each node started by the engine's own single-node launcher (`node.sh launch|pid|stop STATE_DIR`) with the
# settings that make the nodes one cluster. Sourced by the engine's cluster.sh, which sets first:
#
#   ENGINE           opensearch | elasticsearch
#   PREFIX           OPENSEARCH | ES (the prefix of the environment overrides below)
#   NODE_SH          the engine's node.sh
#   NODE_LOG         a node's log, relative to its state dir
#   DISCOVERY_TYPE   discovery.type of a multi-node cluster
#   INITIAL_NODES    the setting that names the nodes of the first election
#   HEAP_VAR         the variable node.sh reads the heap from
#   HTTP_BASE TRANSPORT_BASE   node I listens on HTTP_BASE+I and TRANSPORT_BASE+I
#   NODE_ENV         (array) extra environment for node.sh
#
# Node I has its own state dir $CDIR/node-I/ (data, log, pid, url) and fixed ports, so `restart I` brings it
# back on its data with the address the others know. Overrides: <PREFIX>_CLUSTER_HEAP (512m),
# <PREFIX>_CLUSTER_HTTP_BASE, <PREFIX>_CLUSTER_TRANSPORT_BASE, <PREFIX>_CLUSTER_START_TIMEOUT (300 s),
# <PREFIX>_CLUSTER_DIR (<repo>/.engines/<engine>-cluster). Only URLs go to stdout; the rest goes to stderr.

set -euo pipefail

_cluster_env() { local v="${PREFIX}_CLUSTER_$1"; echo "${!v:-$2}"; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CDIR=$(realpath -m -- "$(_cluster_env DIR "$REPO_ROOT/.engines/$ENGINE-cluster")")
CLUSTER_HEAP=$(_cluster_env HEAP 512m)
HTTP_BASE=$(_cluster_env HTTP_BASE "$HTTP_BASE")
TRANSPORT_BASE=$(_cluster_env TRANSPORT_BASE "$TRANSPORT_BASE")
CLUSTER_TIMEOUT=$(_cluster_env START_TIMEOUT 300)
CLUSTER_NAME="es-biomed-test-$ENGINE-cluster"
MAX_NODES=49 # the port bases of the two engines are 50 apart
STARTED=()   # nodes this command launched: stopped again if it fails or is interrupted

say() { echo "cluster.sh ($ENGINE): $*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

node_dir() { echo "$CDIR/node-$1"; }
http_port() { echo $((HTTP_BASE + $1)); }
transport_port() { echo $((TRANSPORT_BASE + $1)); }
node_url() { echo "http://127.0.0.1:$(http_port "$1")"; }
# node.sh never gets the cluster lock (fd 7): a JVM that inherited it would hold it for its whole life
nodesh() { "$NODE_SH" "$@" 7>&-; }
node_pid() { nodesh pid "$(node_dir "$1")" 2>/dev/null; }
rss_mb() { awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
size() { cat "$CDIR/size" 2>/dev/null || echo 0; }
known_nodes() { local d; for d in "$CDIR"/node-*; do [ -d "$d" ] && echo "${d##*/node-}"; done | sort -n; }
running_nodes() { local i; for i in $(known_nodes); do node_pid "$i" >/dev/null && echo "$i"; done; return 0; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

lock() {
  mkdir -p "$CDIR"
  exec 7>"$CDIR/.lock"
  flock -w 600 7 || die "another cluster.sh holds $CDIR/.lock"
}

check_index() { # I: a node number of this cluster
  [[ "$1" =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$(size)" ] || die "no node $1: the cluster in $CDIR has $(size) node(s)"
}

urls_of() { local i out=""; for i in "$@"; do out+="${out:+,}$(node_url "$i")"; done; echo "$out"; }

# the nodes' health seen from the first node that answers ($1: query); prints the body
health() {
  local i
  for i in $(running_nodes); do
    curl -sf --max-time 10 "$(node_url "$i")/_cluster/health?$1" 2>/dev/null && return 0
  done
  return 1
}

check_ports() { # I...: refuse a node whose HTTP or transport port another process holds
  local i p
  for i in "$@"; do
    for p in "$(http_port "$i")" "$(transport_port "$i")"; do
      if port_busy "$p"; then
        die "port $p of node $i is taken by another process (\`ss -ltnp | grep :$p\`); set ${PREFIX}_CLUSTER_HTTP_BASE / ${PREFIX}_CLUSTER_TRANSPORT_BASE"
      fi
    done
  done
}

launch() { # I N: start node I of an N-node cluster (does not wait)
  local i=$1 n=$2 j seeds="" names=""
  for j in $(seq "$n"); do
    seeds+="${seeds:+,}127.0.0.1:$(transport_port "$j")"
    names+="${names:+,}node-$j"
  done
  check_ports "$i"
  STARTED+=("$i")
  env "$HEAP_VAR=$CLUSTER_HEAP" "${NODE_ENV[@]}" "$NODE_SH" launch "$(node_dir "$i")" \
    -Ecluster.name="$CLUSTER_NAME" -Enode.name="node-$i" -Ediscovery.type="$DISCOVERY_TYPE" \
    -Ehttp.port="$(http_port "$i")" -Etransport.port="$(transport_port "$i")" \
    -Ediscovery.seed_hosts="$seeds" -E"$INITIAL_NODES"="$names" 7>&- >/dev/null
}

stop_nodes() { # I...: TERM (30 s), then KILL, all at once
  local i
  for i in "$@"; do nodesh stop "$(node_dir "$i")" & done
  wait
}

# on a failed or interrupted start/restart: stop what this command launched
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ ${#STARTED[@]} -gt 0 ]; then
    say "stopping the node(s) this command started: ${STARTED[*]}"
    stop_nodes "${STARTED[@]}"
  fi
}

# wait until health answers `query` (200) with N nodes; fails when a node of WATCHED dies or time runs out
wait_health() { # N QUERY WATCHED...
  local n=$1 query=$2 deadline=$(($(date +%s) + CLUSTER_TIMEOUT)) i body
  shift 2
  while [ "$(date +%s)" -lt "$deadline" ]; do
    for i in "$@"; do
      if ! node_pid "$i" >/dev/null; then
        say "node $i (pid $(cat "$(node_dir "$i")/pid" 2>/dev/null || echo ?)) exited; last lines of $(node_dir "$i")/$NODE_LOG:"
        tail -n 40 "$(node_dir "$i")/$NODE_LOG" >&2 2>/dev/null || true
        return 1
      fi
    done
    if body=$(health "$query&wait_for_nodes=$n&timeout=2s") && [ "$(json_field number_of_nodes "$body")" = "$n" ]; then
      return 0
    fi
    sleep 1
  done
  say "not there within ${CLUSTER_TIMEOUT} s (${PREFIX}_CLUSTER_START_TIMEOUT); health: ${body:-no node answers}"
  return 1
}

report_nodes() {
  local i pid
  for i in "$@"; do
    pid=$(node_pid "$i") || continue
    say "node $i: pid $pid, $(node_url "$i"), transport $(transport_port "$i"), RSS $(rss_mb "$pid") MB"
  done
}

cmd_start() {
  local n=${1:-3} running i t0 secs
  [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$MAX_NODES" ] || die "start N: N must be a number from 1 to $MAX_NODES, got '$n'"
  lock
  mapfile -t running < <(running_nodes)
  if [ ${#running[@]} -gt 0 ]; then
    if [ "$(size)" = "$n" ] && [ ${#running[@]} = "$n" ]; then
      say "already running: nodes ${running[*]} (pid files in $CDIR); waiting for green"
      wait_health "$n" "wait_for_status=green" || die "the running cluster is not green; \`cluster.sh status\`"
      urls_of $(seq "$n")
      return 0
    fi
    die "node(s) ${running[*]} of a $(size)-node cluster run in $CDIR: \`cluster.sh stop\` first (or \`cluster.sh restart I\` for a missing node)"
  fi
  if [ "$(size)" != 0 ] && [ "$(size)" != "$n" ] && [ -n "$(known_nodes)" ]; then
    die "$CDIR holds the data of a $(size)-node cluster: \`cluster.sh start $(size)\` reuses it, \`cluster.sh clean\` deletes it"
  fi
  check_ports $(seq "$n")
  echo "$n" >"$CDIR/size"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  t0=$(now)
  for i in $(seq "$n"); do launch "$i" "$n"; done
  say "launched $n nodes (heap $CLUSTER_HEAP each, logs $CDIR/node-*/$NODE_LOG); waiting for green with $n nodes"
  wait_health "$n" "wait_for_status=green" $(seq "$n") || die "the cluster did not form"
  secs=$(since "$t0")
  STARTED=()
  echo "$secs" >"$CDIR/startup_seconds"
  say "cluster $CLUSTER_NAME green with $n nodes in $secs s"
  report_nodes $(seq "$n")
  urls_of $(seq "$n") | tee "$CDIR/urls"
}

cmd_kill() {
  local i=${1:-} pid k
  check_index "$i"
  lock
  pid=$(node_pid "$i") || die "node $i is not running"
  kill -KILL "$pid"
  for k in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && die "pid $pid of node $i is still there after SIGKILL"
  rm -f "$(node_dir "$i")/pid" "$(node_dir "$i")/url"
  say "killed node $i (pid $pid, SIGKILL); its data stay in $(node_dir "$i")"
}

cmd_restart() {
  local i=${1:-} n t0 secs
  check_index "$i"
  n=$(size)
  lock
  if node_pid "$i" >/dev/null; then
    say "node $i runs: stopping it first"
    stop_nodes "$i"
  fi
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  t0=$(now)
  launch "$i" "$n"
  # node i answers health with all n nodes only once it is in the cluster
  local deadline=$(($(date +%s) + CLUSTER_TIMEOUT)) body=""
  while :; do
    node_pid "$i" >/dev/null || { tail -n 40 "$(node_dir "$i")/$NODE_LOG" >&2 || true; die "node $i exited"; }
    body=$(curl -sf --max-time 10 "$(node_url "$i")/_cluster/health?wait_for_nodes=$n&timeout=2s" 2>/dev/null) \
      && [ "$(json_field number_of_nodes "$body")" = "$n" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "node $i did not rejoin within ${CLUSTER_TIMEOUT} s"
    sleep 1
  done
  secs=$(since "$t0")
  STARTED=()
  say "node $i rejoined in $secs s (cluster $(json_field status "$body"), $n nodes)"
  report_nodes "$i"
  urls_of $(seq "$n")
}

cmd_stop() {
  local nodes
  mapfile -t nodes < <(running_nodes)
  [ ${#nodes[@]} -gt 0 ] || { say "no node runs ($CDIR)"; return 0; }
  stop_nodes "${nodes[@]}"
  mapfile -t nodes < <(running_nodes)
  [ ${#nodes[@]} -eq 0 ] || die "node(s) ${nodes[*]} still run"
}

cmd_status() {
  local n i pid body all=0
  n=$(size)
  [ "$n" != 0 ] || { echo "no cluster in $CDIR"; return 3; }
  for i in $(seq "$n"); do
    if pid=$(node_pid "$i"); then
      echo "node $i: running, pid $pid, $(node_url "$i"), transport $(transport_port "$i"), RSS $(rss_mb "$pid") MB"
    else
      echo "node $i: stopped (data in $(node_dir "$i"))"
      all=3
    fi
  done
  if body=$(health "timeout=2s"); then
    echo "cluster $CLUSTER_NAME: $(json_field status "$body"), $(json_field number_of_nodes "$body") of $n nodes"
  else
    echo "cluster $CLUSTER_NAME: no node answers"
  fi
  return "$all"
}

cmd_urls() {
  local nodes
  mapfile -t nodes < <(running_nodes)
  [ ${#nodes[@]} -gt 0 ] || die "no node runs ($CDIR)"
  urls_of "${nodes[@]}"
}

cmd_clean() {
  cmd_stop
  [ -d "$CDIR" ] || return 0
  case "$CDIR" in */.engines/*-cluster | *-cluster) ;; *) die "refusing to delete $CDIR (not a *-cluster dir)" ;; esac
  rm -rf "$CDIR"
  say "deleted $CDIR"
}

cluster_main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case "$cmd" in
    start) [ $# -le 1 ] || usage; cmd_start "$@" ;;
    kill) [ $# -eq 1 ] || usage; cmd_kill "$1" ;;
    restart) [ $# -eq 1 ] || usage; cmd_restart "$1" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    urls) cmd_urls ;;
    clean) cmd_clean ;;
    *) usage ;;
  esac
}
