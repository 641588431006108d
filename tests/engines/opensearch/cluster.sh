#!/usr/bin/env bash
# A real N-node OpenSearch 3.5.0 (+ k-NN) cluster on 127.0.0.1 for the tests, each node started by node.sh from
# the same Maven Central jars (see README.md).
#
#   cluster.sh start [N]    start N nodes (default 3), wait for green with N nodes, print their URLs
#                           comma-separated as the last stdout line (a running N-node cluster is reused)
#   cluster.sh kill I       SIGKILL node I (1-based); its data stay
#   cluster.sh restart I    start node I again on its data dir and wait until it has rejoined
#   cluster.sh stop         stop every node by its PID (TERM, 30 s, then KILL)
#   cluster.sh status       one line per node and the cluster's health (exit 0: all N run; 3: not)
#   cluster.sh urls         the running nodes' URLs, comma-separated (exit 1 if none)
#   cluster.sh clean        stop, then delete the state dir
#
# Node I: state dir .engines/opensearch-cluster/node-I/ (data/, node.log, pid, url), HTTP port 9700+I,
# transport port 9800+I, name node-I, cluster es-biomed-test-opensearch-cluster (discovery.seed_hosts: every
# node's transport port; cluster.initial_cluster_manager_nodes: every node), heap 512m. The single node
# (node.sh: HTTP 9400-9499, transport 9500-9599) can run beside it.
# Environment: OPENSEARCH_CLUSTER_HEAP (512m), OPENSEARCH_CLUSTER_HTTP_BASE (9700),
# OPENSEARCH_CLUSTER_TRANSPORT_BASE (9800), OPENSEARCH_CLUSTER_START_TIMEOUT (300 s), OPENSEARCH_CLUSTER_DIR,
# and node.sh's (OPENSEARCH_JAVA_HOME, MVN, MVN_ARGS; OPENSEARCH_CDS defaults to ro: the nodes map the
# class-data archive of the single node where it exists and never write it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENGINE=opensearch
PREFIX=OPENSEARCH
NODE_SH="$HERE/node.sh"
NODE_LOG=node.log
DISCOVERY_TYPE=zen
INITIAL_NODES=cluster.initial_cluster_manager_nodes
HEAP_VAR=OPENSEARCH_HEAP
HTTP_BASE=9700
TRANSPORT_BASE=9800
NODE_ENV=("OPENSEARCH_CDS=${OPENSEARCH_CDS:-ro}")
# shellcheck source=../cluster-lib.sh
. "$HERE/../cluster-lib.sh"
cluster_main "$@"
