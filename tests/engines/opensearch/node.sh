#!/usr/bin/env bash
# Single-node OpenSearch 3.5.0 (+ k-NN) for the tests, run from the Maven Central jars in target/lib.
#
#   node.sh start [STATE_DIR] [-Ekey=value ...]   prepare jars, start (or reuse) the node, print its URL last
#   node.sh stop  [STATE_DIR]                     TERM (30 s), then KILL; exit 0 if nothing runs
#   node.sh clean [STATE_DIR]                     stop, then delete STATE_DIR
#   node.sh url   [STATE_DIR]                     print the URL of the running node (exit 1 if none)
#   node.sh pid   [STATE_DIR]                     print the PID of the running node (exit 1 if none)
#   node.sh launch [STATE_DIR] [-Ekey=value ...]  start the JVM, print its PID, do not wait (cluster.sh)
#   node.sh jars                                  only prepare target/lib
#
# STATE_DIR defaults to <repo root>/.engines/opensearch and holds data/, logs/, config/, tmp/, node.log,
# pid, url and startup_seconds. Data survive stop/start (and kill -9); only `clean` deletes them.
#
# Environment: OPENSEARCH_JAVA_HOME (a JDK >= 21; default /usr/lib/jvm/temurin-25-jdk-amd64, then
# JAVA_HOME, then java on PATH), OPENSEARCH_HEAP (1g), OPENSEARCH_HTTP_PORTS (9400-9499),
# OPENSEARCH_TRANSPORT_PORTS (9500-9599), OPENSEARCH_START_TIMEOUT (180 s), MVN (mvn), MVN_ARGS (extra
# maven arguments, e.g. -Dmaven.repo.local=DIR for a CI cache), OPENSEARCH_CDS (1: use/create the class
# data sharing archive target/classes.jsa; ro: use it where it exists, never write it; 0: don't).
# Everything but the URL goes to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
LIB="$HERE/target/lib"
STAMP="$LIB/.complete"

HEAP=${OPENSEARCH_HEAP:-1g}
HTTP_PORTS=${OPENSEARCH_HTTP_PORTS:-9400-9499}
TRANSPORT_PORTS=${OPENSEARCH_TRANSPORT_PORTS:-9500-9599}
START_TIMEOUT=${OPENSEARCH_START_TIMEOUT:-180}
MVN=${MVN:-mvn}
read -r -a MVN_EXTRA <<<"${MVN_ARGS:-}"

# name=main class[:extended plugins]; the names are those of the OpenSearch distribution
PLUGINS=(
  transport-netty4=org.opensearch.transport.Netty4ModulePlugin
  lang-painless=org.opensearch.painless.PainlessModulePlugin
  lang-mustache=org.opensearch.script.mustache.MustacheModulePlugin
  lang-expression=org.opensearch.script.expression.ExpressionModulePlugin
  analysis-common=org.opensearch.analysis.common.CommonAnalysisModulePlugin
  mapper-extras=org.opensearch.index.mapper.MapperExtrasModulePlugin
  parent-join=org.opensearch.join.ParentJoinModulePlugin
  percolator=org.opensearch.percolator.PercolatorModulePlugin
  reindex=org.opensearch.index.reindex.ReindexModulePlugin
  rank-eval=org.opensearch.index.rankeval.RankEvalModulePlugin
  aggs-matrix-stats=org.opensearch.search.aggregations.matrix.MatrixAggregationModulePlugin
  ingest-common=org.opensearch.ingest.common.IngestCommonModulePlugin
  ingest-user-agent=org.opensearch.ingest.useragent.IngestUserAgentModulePlugin
  geo=org.opensearch.geo.GeoModulePlugin
  repository-url=org.opensearch.plugin.repository.url.URLRepositoryModulePlugin
  # only k-NN names lang-painless: with one class loader, lang-painless then finds every PainlessExtension
  # on the class path (k-NN's cosineSimilarity & co, analysis-common's and ingest-common's) exactly once
  opensearch-knn=org.opensearch.knn.plugin.KNNPlugin:lang-painless
)

log() { echo "opensearch: $*" >&2; }
die() { log "$*"; exit 1; }

find_java() {
  local home
  for home in "${OPENSEARCH_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 "${JAVA_HOME:-}"; do
    if [ -n "$home" ] && [ -x "$home/bin/java" ]; then JAVA="$home/bin/java"; break; fi
  done
  if [ -z "${JAVA:-}" ]; then JAVA=$(command -v java) || die "no java found (set OPENSEARCH_JAVA_HOME)"; fi
  JAVA_MAJOR=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
  [ "${JAVA_MAJOR:-0}" -ge 21 ] 2>/dev/null || die "$JAVA is Java ${JAVA_MAJOR:-?}; OpenSearch 3 needs >= 21"
}

pom_hash() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

# Fill target/lib once per pom.xml version. Maven runs offline first: after the first download, preparing
# the jars again (e.g. after `rm -rf target`) downloads nothing.
prepare_jars() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(pom_hash)" ]; then return 0; fi
  command -v "$MVN" >/dev/null || die "maven ($MVN) is needed to fetch the OpenSearch jars"
  mkdir -p "$HERE/target"
  (
    flock 8
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(pom_hash)" ]; then exit 0; fi
    rm -rf "$LIB" "$HERE/target/markers" "$HERE/target/classes.jsa"
    log "preparing jars in $LIB"
    if ! "$MVN" "${MVN_EXTRA[@]}" -B -q -o -f "$HERE/pom.xml" validate >"$HERE/target/mvn.log" 2>&1; then
      log "not all jars in ~/.m2 yet: downloading from Maven Central"
      rm -rf "$LIB" "$HERE/target/markers"
      "$MVN" "${MVN_EXTRA[@]}" -B -q -f "$HERE/pom.xml" validate >"$HERE/target/mvn.log" 2>&1 \
        || { cat "$HERE/target/mvn.log" >&2; die "maven failed (see $HERE/target/mvn.log)"; }
    fi
    pom_hash >"$STAMP"
  ) 8>"$HERE/target/.lock"
}

# PID of the node of STATE if it runs (checks that the PID is still that JVM), else fails
running_pid() {
  local pid
  [ -f "$STATE/pid" ] || return 1
  pid=$(cat "$STATE/pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--state $STATE " || return 1
  echo "$pid"
}

healthy() {  # URL: health answers and is at least yellow
  local body
  body=$(curl -sf --max-time 10 "$1/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null) || return 1
  case "$body" in *'"status":"green"'* | *'"status":"yellow"'*) return 0 ;; *) return 1 ;; esac
}

rss_mb() { awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

kill_node() {  # PID: TERM, wait up to 30 s, then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  log "pid $pid still running after 30 s: KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
}

# wait until the node of PID answers health (yellow); print URL; fails if it died or timed out
wait_healthy() {
  local pid=$1 deadline=$(($(date +%s) + START_TIMEOUT)) url
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -s "$STATE/url" ]; then
      url=$(cat "$STATE/url")
      if healthy "$url"; then echo "$url"; return 0; fi
    fi
    sleep 0.5
  done
  return 1
}

# Start the JVM of STATE in the background with the default settings, then "$@" (-Ekey=value); sets pid
# and t0 and writes STATE/pid. The caller holds the lock of STATE and has checked that no node runs there.
launch_jvm() {
  rm -f "$STATE/pid" "$STATE/url"
  find_java
  prepare_jars
  mkdir -p "$STATE/tmp"
  [ -f "$STATE/node.log" ] && mv -f "$STATE/node.log" "$STATE/node.log.1"

  local jvm=(
    -Xms"$HEAP" -Xmx"$HEAP" -Xss1m
    -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow
    -XX:ErrorFile="$STATE/logs/hs_err_pid%p.log"
    -Djava.io.tmpdir="$STATE/tmp"
    -Dfile.encoding=UTF-8 -Djava.awt.headless=true -Djna.nosys=true
    -Djava.locale.providers=SPI,CLDR
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true
    --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED
  )
  # Class data sharing (about 40 % off the start-up): the first node to stop cleanly writes the classes it
  # loaded to target/classes.jsa (~100 MB, a few seconds), later starts map it; the JVM rebuilds a stale one.
  # Logging off: with --add-modules the JDK's base archive always reports a harmless module mismatch.
  # `ro` (the cluster's nodes, which start and stop together): map an existing archive, never write one.
  if [ "${OPENSEARCH_CDS:-1}" = 1 ]; then
    jvm+=(-XX:+AutoCreateSharedArchive -XX:SharedArchiveFile="$HERE/target/classes.jsa" -Xlog:cds=off)
    [ "$JAVA_MAJOR" -ge 24 ] && jvm+=(-Xlog:aot=off)
  elif [ "${OPENSEARCH_CDS:-1}" = ro ] && [ -f "$HERE/target/classes.jsa" ]; then
    jvm+=(-XX:SharedArchiveFile="$HERE/target/classes.jsa" -Xlog:cds=off)
    [ "$JAVA_MAJOR" -ge 24 ] && jvm+=(-Xlog:aot=off)
  fi
  # Java 23+ warns at run time about sun.misc.Unsafe memory access (Guava, Netty, ...)
  [ "$JAVA_MAJOR" -ge 23 ] && jvm+=(--sun-misc-unsafe-memory-access=allow)
  local args=(--state "$STATE" -Ehttp.port="$HTTP_PORTS" -Etransport.port="$TRANSPORT_PORTS")
  local p
  for p in "${PLUGINS[@]}"; do args+=(--plugin "$p"); done
  args+=("$@")

  t0=$(date +%s.%N)
  # setsid: the node outlives the shell or test session that started it; fd 9 (the lock) stays here
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  (cd "$STATE" && exec "${launcher[@]}" "$JAVA" "${jvm[@]}" -cp "$LIB/*" "$HERE/Launcher.java" "${args[@]}" \
    </dev/null >>"$STATE/node.log" 2>&1 9>&-) &
  pid=$!
  echo "$pid" >"$STATE/pid"
}

cmd_start() {
  local pid url t0 t1 secs
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9  # one `start` at a time per state dir
  if pid=$(running_pid); then
    if url=$(wait_healthy "$pid"); then
      log "already running: pid $pid, $url"
      echo "$url"
      return 0
    fi
    die "pid $pid runs but is not healthy within ${START_TIMEOUT} s; see $STATE/node.log (or node.sh stop)"
  fi
  launch_jvm "$@"
  if ! url=$(wait_healthy "$pid"); then
    if kill -0 "$pid" 2>/dev/null; then
      log "not healthy within ${START_TIMEOUT} s: stopping pid $pid"
      kill_node "$pid"
    fi
    rm -f "$STATE/pid" "$STATE/url"
    log "failed to start; last lines of $STATE/node.log:"
    tail -n 60 "$STATE/node.log" >&2 || true
    exit 1
  fi
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  echo "$secs" >"$STATE/startup_seconds"
  log "started in ${secs} s: pid $pid, RSS $(rss_mb "$pid") MB, log $STATE/node.log"
  echo "$url"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    log "stopping pid $pid"
    kill_node "$pid"
  fi
  rm -f "$STATE/pid" "$STATE/url"
}

cmd_clean() {
  cmd_stop
  [ -d "$STATE" ] || return 0
  # refuse to delete something that is not a node state dir
  case "$STATE" in / | "$ROOT" | "$HOME") die "refusing to delete $STATE" ;; esac
  if [ -n "$(ls -A "$STATE")" ] && [ ! -e "$STATE/config/log4j2.properties" ] && [ ! -d "$STATE/data" ] \
    && [ ! -e "$STATE/node.log" ]; then
    die "$STATE does not look like a node state dir; not deleting it"
  fi
  rm -rf "$STATE"
  log "deleted $STATE"
}

cmd_launch() {
  local pid
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  if pid=$(running_pid); then die "a node already runs in $STATE (pid $pid)"; fi
  launch_jvm "$@"
  echo "$pid"
}

cmd_pid() { running_pid || die "not running ($STATE)"; }

cmd_url() {
  running_pid >/dev/null && [ -s "$STATE/url" ] || die "not running ($STATE)"
  cat "$STATE/url"
}

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
CMD=$1
shift
STATE_ARG="$ROOT/.engines/opensearch"
if [ $# -ge 1 ] && [[ "$1" != -E* ]]; then STATE_ARG=$1; shift; fi
STATE=$(realpath -m -- "$STATE_ARG")

case "$CMD" in
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  clean) cmd_clean ;;
  url) cmd_url ;;
  pid) cmd_pid ;;
  launch) cmd_launch "$@" ;;
  jars) find_java; prepare_jars ;;
  *) usage ;;
esac
