#!/usr/bin/env bash
# A real N-node Elasticsearch 9 cluster on 127.0.0.1 for the tests, each node started by node.sh from the same
# Maven Central jars (server + transport-netty4; see README.md).
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
# Node I: state dir .engines/elasticsearch-cluster/node-I/ (data/, logs/launcher.log, pid, url), HTTP port
# 9750+I, transport port 9850+I, name node-I, cluster es-biomed-test-elasticsearch-cluster (discovery.type
# multi-node, discovery.seed_hosts: every node's transport port, cluster.initial_master_nodes: every node),
# heap 512m. The single node (node.sh: HTTP 9500-9599, transport 9600-9699) can run beside it.
# Environment: ES_CLUSTER_HEAP (512m), ES_CLUSTER_HTTP_BASE (9750), ES_CLUSTER_TRANSPORT_BASE (9850),
# ES_CLUSTER_START_TIMEOUT (300 s), ES_CLUSTER_DIR, and node.sh's (ES_JAVA, ES_JAVA_OPTS).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENGINE=elasticsearch
PREFIX=ES
NODE_SH="$HERE/node.sh"
NODE_LOG=logs/launcher.log
DISCOVERY_TYPE=multi-node
INITIAL_NODES=cluster.initial_master_nodes
HEAP_VAR=ES_HEAP
HTTP_BASE=9750
TRANSPORT_BASE=9850
NODE_ENV=("ES_SETTINGS=")  # the single node's extra settings are not the cluster's
# shellcheck source=../cluster-lib.sh
. "$HERE/../cluster-lib.sh"
cluster_main "$@"
