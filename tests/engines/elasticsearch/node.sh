#!/usr/bin/env bash
# A real single-node Elasticsearch 9 for the tests, from Maven Central jars (see README.md).
#
#   node.sh start [STATE_DIR] [-Ekey=value ...]   start (or reuse) the node; the URL is the last line on stdout
#   node.sh launch [STATE_DIR] [-Ekey=value ...]  start the JVM, print its PID, do not wait (cluster.sh)
#   node.sh pid   [STATE_DIR]   print the PID of the running node (exit 1 if none)
#   node.sh stop  [STATE_DIR]   TERM, 30 s, then KILL
#   node.sh clean [STATE_DIR]   stop + delete STATE_DIR
#   node.sh url   [STATE_DIR]   print the URL of the running node (exit 1 if none)
#   node.sh status [STATE_DIR]  print "running URL" / "stopped" (exit 0 / 3)
#   node.sh prepare             only fetch the jars (cached in ~/.m2; offline once complete)
#
# STATE_DIR defaults to <repo root>/.engines/elasticsearch; data is kept there between restarts.
# Environment: ES_JAVA (a java >= 21; else $JAVA_HOME/bin/java when that is 21+, else Temurin 25 under
# /usr/lib/jvm, else any 21+ found there or on PATH), ES_HEAP (default 1g), ES_JAVA_OPTS (extra JVM flags),
# ES_SETTINGS (extra "key=value key=value" node settings; -Ekey=value arguments come after them),
# ES_START_TIMEOUT (seconds, default 180).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../../.." && pwd)"
cmd="${1:-}"
STATE_DIR="${2:-$REPO_ROOT/.engines/elasticsearch}"
[[ "$STATE_DIR" == -E* ]] && STATE_DIR="$REPO_ROOT/.engines/elasticsearch" && set -- "$1" "" "${@:2}"
# -Ekey=value arguments after STATE_DIR: node settings, as key=value words for the launcher
EXTRA_SETTINGS=()
for a in "${@:3}"; do
    [[ "$a" == -E?*=* ]] || { echo "node.sh: expected -Ekey=value, got [$a]" >&2; exit 2; }
    EXTRA_SETTINGS+=("${a#-E}")
done
mkdir -p "$(dirname "$STATE_DIR")"
STATE_DIR="$(cd "$(dirname "$STATE_DIR")" && pwd)/$(basename "$STATE_DIR")"
PID_FILE="$STATE_DIR/pid"
URL_FILE="$STATE_DIR/url"
LOG_FILE="$STATE_DIR/logs/launcher.log"
TIMEOUT="${ES_START_TIMEOUT:-180}"

say() { echo "node.sh: $*" >&2; }

es_version() { sed -n 's:.*<es.version>\(.*\)</es.version>.*:\1:p' "$HERE/pom.xml"; }

find_java() {
    local c v
    for c in "${ES_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" /usr/lib/jvm/temurin-25-jdk-amd64/bin/java \
        /usr/lib/jvm/temurin-2[1-9]*/bin/java /usr/lib/jvm/java-2[1-9]*/bin/java "$(command -v java || true)"; do
        [ -n "$c" ] && [ -x "$c" ] || continue
        v="$("$c" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
        if [ -n "$v" ] && [ "${v%%.*}" -ge 21 ] 2>/dev/null; then echo "$c"; return 0; fi
    done
    say "no Java >= 21 found (Elasticsearch 9 needs 21+); set ES_JAVA"
    return 1
}

# Fetch the jars once; a stamp names the version so a pom change refetches. Offline first so
# a machine with a warm ~/.m2 never touches the network.
prepare() {
    local ver stamp
    ver="$(es_version)"
    stamp="$HERE/target/.jars-$ver.ok"
    [ -f "$stamp" ] && return 0
    command -v mvn >/dev/null || { say "mvn not found (needed once to fetch the jars)"; return 1; }
    rm -rf "$HERE/target/lib" "$HERE/target/modules"
    say "fetching Elasticsearch $ver jars from Maven Central (once) ..."
    if ! mvn -B -q -o -f "$HERE/pom.xml" generate-resources >/dev/null 2>&1; then
        mvn -B -q -f "$HERE/pom.xml" generate-resources >&2 || { say "mvn failed"; return 1; }
    fi
    [ -f "$HERE/target/lib/elasticsearch-$ver.jar" ] && [ -f "$HERE/target/modules/transport-netty4/transport-netty4-$ver.jar" ] \
        || { say "jars missing after mvn"; return 1; }
    touch "$stamp"
}

# The PID in STATE_DIR/pid, if that process is alive and is our launcher for this STATE_DIR.
live_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-Des.biomed.state=$STATE_DIR" || return 1
    echo "$pid"
}

# Compile Launcher.java once into target/launcher (the single-file source launcher would spend ~4 s
# compiling it on every start); fall back to the source launcher where there is no javac.
launcher_main() { # JAVA -> sets MAIN (the words that name the main class)
    local javac out="$HERE/target/launcher"
    javac="$(dirname "$1")/javac"
    if [ -x "$javac" ]; then
        if [ ! -f "$out/Launcher.class" ] || [ "$HERE/Launcher.java" -nt "$out/Launcher.class" ]; then
            rm -rf "$out"
            "$javac" -nowarn -d "$out" --module-path "$HERE/target/lib" --add-modules ALL-MODULE-PATH "$HERE/Launcher.java" >&2 \
                || { say "javac failed"; return 1; }
        fi
        MAIN=(-cp "$out" Launcher)
    else
        MAIN=("$HERE/Launcher.java")
    fi
}

healthy() { # URL
    curl -fsS -m 10 "$1/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1
}

stop_node() {
    local pid i
    if pid="$(live_pid)"; then
        say "stopping pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid still alive after 30 s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
    fi
    rm -f "$PID_FILE" "$URL_FILE"
}

fail_start() {
    say "Elasticsearch did not start: $*"
    if [ -f "$LOG_FILE" ]; then
        say "---- last lines of $LOG_FILE ----"
        tail -n 60 "$LOG_FILE" >&2 || true
    fi
    stop_node
    exit 1
}

# Start the JVM in the background (sets pid, writes PID_FILE); the caller has checked that no node runs here.
launch_jvm() {
    local java
    rm -f "$PID_FILE" "$URL_FILE"
    prepare
    java="$(find_java)"
    launcher_main "$java"
    mkdir -p "$STATE_DIR/logs" "$STATE_DIR/tmp"
    local heap="${ES_HEAP:-1g}"
    # shellcheck disable=SC2086
    (
        cd "$HERE"
        exec nohup "$java" \
            -Xms"$heap" -Xmx"$heap" -Xss1m \
            -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow \
            -XX:ErrorFile="$STATE_DIR/logs/hs_err_pid%p.log" \
            -Djava.io.tmpdir="$STATE_DIR/tmp" \
            -Dfile.encoding=UTF-8 -Djava.awt.headless=true -Djava.locale.providers=CLDR \
            -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
            -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
            -Des.biomed.state="$STATE_DIR" -Des.path.home="$STATE_DIR" -Des.distribution.type=tar \
            -Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false \
            -Des.netty.dir="$HERE/target/modules/transport-netty4" \
            --module-path "$HERE/target/lib" \
            --add-modules ALL-MODULE-PATH,jdk.incubator.vector \
            --enable-native-access=org.elasticsearch.nativeaccess,org.elasticsearch.foreign,org.apache.lucene.core,ALL-UNNAMED \
            ${ES_JAVA_OPTS:-} \
            "${MAIN[@]}" "$STATE_DIR" ${ES_SETTINGS:-} "${EXTRA_SETTINGS[@]}" \
            </dev/null >>"$LOG_FILE" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    say "started pid $pid (log: $LOG_FILE)"
}

start_node() {
    local pid url deadline
    if pid="$(live_pid)"; then
        url="$(cat "$URL_FILE" 2>/dev/null || true)"
        if [ -n "$url" ] && healthy "$url"; then
            say "already running (pid $pid)"
            echo "$url"
            return 0
        fi
        say "pid $pid is running but not healthy yet; waiting"
    else
        launch_jvm
    fi

    deadline=$((SECONDS + TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || fail_start "the JVM (pid $pid) exited"
        url="$(cat "$URL_FILE" 2>/dev/null || true)"
        if [ -n "$url" ] && healthy "$url"; then
            echo "$url"
            return 0
        fi
        sleep 1
    done
    fail_start "not healthy after ${TIMEOUT}s"
}

case "$cmd" in
    start) start_node ;;
    stop) stop_node ;;
    clean)
        stop_node
        rm -rf "$STATE_DIR"
        say "removed $STATE_DIR"
        ;;
    url)
        live_pid >/dev/null && [ -s "$URL_FILE" ] || { say "not running ($STATE_DIR)"; exit 1; }
        cat "$URL_FILE"
        ;;
    status)
        if live_pid >/dev/null && [ -s "$URL_FILE" ]; then echo "running $(cat "$URL_FILE")"; else echo stopped; exit 3; fi
        ;;
    launch)
        if pid="$(live_pid)"; then say "a node already runs in $STATE_DIR (pid $pid)"; exit 1; fi
        launch_jvm
        echo "$pid"
        ;;
    pid) live_pid || { say "not running ($STATE_DIR)"; exit 1; } ;;
    prepare) prepare ;;
    *)
        echo "usage: $0 start|launch [STATE_DIR] [-Ekey=value ...] | stop|clean|url|status|pid [STATE_DIR] | prepare" >&2
        exit 2
        ;;
esac
