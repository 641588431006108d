#!/usr/bin/env bash
# Smoke test of a node started by node.sh: the features es-biomed needs from OpenSearch.
#
#   smoke.sh URL [STATE_DIR]
#
# Creates smoke-<random> (index.knn, english text, lucene/cosinesimil knn_vector, nested passages with a
# knn_vector) and indexes 3 docs, then checks: (a) script_score with painless cosineSimilarity, (b) match +
# rescore with that script_score, (c) knn queries (top level and nested), (d) a stored mustache template
# via _search/template, (e) _reindex into smoke-<random>-copy, (f) an ingest pipeline (_simulate).
# Deletes exactly what it created (two indices by name, one stored script). Exit 0 only if all passed.
# Prints the node's start-up time and RSS when STATE_DIR (default <repo>/.engines/opensearch) has them.
set -euo pipefail

URL=${1:?usage: smoke.sh URL [STATE_DIR]}
URL=${URL%/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(realpath -m -- "${2:-$HERE/../../../.engines/opensearch}")
SUFFIX=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
INDEX="smoke-$SUFFIX"
COPY="smoke-$SUFFIX-copy"
TEMPLATE="smoke-$SUFFIX-template"
TMP=$(mktemp -d)
FAILED=0

cleanup() {
  curl -s -o /dev/null -X DELETE "$URL/$INDEX" || true
  curl -s -o /dev/null -X DELETE "$URL/$COPY" || true
  curl -s -o /dev/null -X DELETE "$URL/_scripts/$TEMPLATE" || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# req NAME METHOD PATH [JSON]: response body in $TMP/NAME.json; fails on transport error or HTTP >= 300
req() {
  local name=$1 method=$2 path=$3 body=${4:-} code
  local args=(-s -o "$TMP/$name.json" -w '%{http_code}' -X "$method" "$URL$path")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  code=$(curl "${args[@]}") || { echo "FAIL $name: curl could not reach $URL$path" >&2; exit 1; }
  if [ "$code" -ge 300 ]; then
    echo "FAIL $name: HTTP $code from $method $path" >&2
    head -c 2000 "$TMP/$name.json" >&2
    echo >&2
    exit 1
  fi
}

# check NAME DESCRIPTION PYTHON_EXPR: r is the parsed response of NAME, ids the ids of its hits
check() {
  local name=$1 what=$2 expr=$3
  if python3 - "$TMP/$name.json" "$expr" <<'EOF'; then
import json, sys
r = json.load(open(sys.argv[1]))
hits = r.get("hits", {}).get("hits", [])
ids = [h["_id"] for h in hits]
ok = eval(sys.argv[2])
if not ok:
    print(json.dumps(r)[:2000], file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
    echo "ok   $what"
  else
    echo "FAIL $what" >&2
    FAILED=1
  fi
}

T0=$(date +%s.%N)

req create PUT "/$INDEX" '{
  "settings": {"index": {"knn": true, "number_of_shards": 1, "number_of_replicas": 0}},
  "mappings": {"properties": {
    "title": {"type": "keyword"},
    "text": {"type": "text", "analyzer": "english"},
    "embedding": {"type": "knn_vector", "dimension": 3,
      "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}},
    "passages": {"type": "nested", "properties": {
      "text": {"type": "text", "analyzer": "english"},
      "embedding": {"type": "knn_vector", "dimension": 3,
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}}}}}'
check create "create $INDEX (knn, english, lucene hnsw, nested)" 'r.get("acknowledged") is True'

# the same mapping for the reindex target, so that its vectors are knn_vector fields too
req mapping GET "/$INDEX/_mapping"
COPY_BODY=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))[sys.argv[2]]["mappings"]
print(json.dumps({"settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
                  "mappings": m}))' "$TMP/mapping.json" "$INDEX")
check mapping "mapping of embedding is knn_vector/lucene" \
  'r["'"$INDEX"'"]["mappings"]["properties"]["embedding"]["method"]["engine"] == "lucene"'

BULK="$TMP/bulk.ndjson"
cat >"$BULK" <<'EOF'
{"index":{"_id":"d1"}}
{"title":"d1","text":"Ribosomal proteins regulate tumour growth in cancer cells","embedding":[1.0,0.0,0.0],"passages":[{"text":"ribosome biogenesis","embedding":[1.0,0.1,0.0]},{"text":"tumor suppressors","embedding":[0.0,1.0,0.0]}]}
{"index":{"_id":"d2"}}
{"title":"d2","text":"Cancer immunotherapy with checkpoint inhibitors","embedding":[0.0,1.0,0.0],"passages":[{"text":"PD-1 blockade","embedding":[0.0,1.0,0.1]}]}
{"index":{"_id":"d3"}}
{"title":"d3","text":"Insulin resistance and type 2 diabetes","embedding":[0.0,0.0,1.0],"passages":[{"text":"glucose uptake","embedding":[0.1,0.0,1.0]}]}
EOF
code=$(curl -s -o "$TMP/bulk.json" -w '%{http_code}' -X POST "$URL/$INDEX/_bulk?refresh=true" \
  -H 'Content-Type: application/x-ndjson' --data-binary "@$BULK")
[ "$code" = 200 ] || { echo "FAIL bulk: HTTP $code" >&2; cat "$TMP/bulk.json" >&2; exit 1; }
check bulk "bulk-index 3 docs" 'r["errors"] is False and len(r["items"]) == 3'

# (a) script_score with the k-NN painless function
req script POST "/$INDEX/_search" '{
  "query": {"script_score": {"query": {"match_all": {}}, "script": {"lang": "painless",
    "source": "1.0 + cosineSimilarity(params.query_value, doc[\u0027embedding\u0027])",
    "params": {"query_value": [0.9, 0.1, 0.0]}}}}}'
check script "(a) script_score 1.0 + cosineSimilarity" \
  'r["hits"]["total"]["value"] == 3 and ids[0] == "d1" and 1.9 < hits[0]["_score"] <= 2.0 and hits[-1]["_score"] >= 1.0'

# (b) BM25 match, rescored by the cosine script_score: d1 and d2 match "cancer", the vector favours d2
req rescore POST "/$INDEX/_search" '{
  "query": {"match": {"text": "cancers"}},
  "rescore": {"window_size": 10, "query": {"query_weight": 0.0, "rescore_query_weight": 1.0,
    "rescore_query": {"script_score": {"query": {"match_all": {}}, "script": {
      "source": "1.0 + cosineSimilarity(params.query_value, doc[\u0027embedding\u0027])",
      "params": {"query_value": [0.1, 0.9, 0.0]}}}}}}}'
check rescore "(b) match (english stemming) + rescore with the cosine script_score" \
  'sorted(ids) == ["d1", "d2"] and ids[0] == "d2" and hits[0]["_score"] > 1.9'

# (c) knn query (lucene engine), top level and on the nested passages
req knn POST "/$INDEX/_search" '{"size": 2, "query": {"knn": {"embedding": {"vector": [0.0, 0.1, 1.0], "k": 2}}}}'
check knn "(c) knn query on embedding" 'len(ids) == 2 and ids[0] == "d3"'
req knn_nested POST "/$INDEX/_search" '{"size": 3, "query": {"nested": {"path": "passages", "score_mode": "max",
  "query": {"knn": {"passages.embedding": {"vector": [1.0, 0.0, 0.0], "k": 3}}}}}}'
check knn_nested "(c) nested knn query on passages.embedding" 'len(ids) >= 1 and ids[0] == "d1"'

# (d) stored mustache search template
req tpl_put PUT "/_scripts/$TEMPLATE" '{"script": {"lang": "mustache", "source":
  "{\"size\": {{size}}, \"query\": {\"match\": {\"text\": \"{{q}}\"}}}"}}'
check tpl_put "(d) store mustache template $TEMPLATE" 'r.get("acknowledged") is True'
req tpl POST "/$INDEX/_search/template" "{\"id\": \"$TEMPLATE\", \"params\": {\"q\": \"diabetes\", \"size\": 2}}"
check tpl "(d) _search/template with the stored template" 'ids == ["d3"]'

# (e) _reindex into a second index with the same mapping
req copy_create PUT "/$COPY" "$COPY_BODY"
req reindex POST "/_reindex?refresh=true" "{\"source\": {\"index\": \"$INDEX\"}, \"dest\": {\"index\": \"$COPY\"}}"
check reindex "(e) _reindex $INDEX -> $COPY" 'r["created"] == 3 and not r["failures"]'
req copy_knn POST "/$COPY/_search" '{"size": 1, "query": {"knn": {"embedding": {"vector": [1.0, 0.0, 0.0], "k": 1}}}}'
check copy_knn "(e) knn query on the reindexed copy" 'ids == ["d1"]'

# (f) ingest pipeline (ingest-common), simulated: creates nothing
req ingest POST "/_ingest/pipeline/_simulate" '{"pipeline": {"processors": [{"lowercase": {"field": "t"}},
  {"split": {"field": "t", "separator": " "}}]}, "docs": [{"_source": {"t": "Ribosome BIOGENESIS"}}]}'
check ingest "(f) ingest pipeline lowercase + split (_simulate)" \
  'r["docs"][0]["doc"]["_source"]["t"] == ["ribosome", "biogenesis"]'

T1=$(date +%s.%N)
echo "smoke checks took $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", b - a}') s"

if [ -f "$STATE/pid" ]; then
  PID=$(cat "$STATE/pid")
  RSS=$(awk '/^VmRSS:/ {printf "%d MB", $2 / 1024}' "/proc/$PID/status" 2>/dev/null || echo "?")
  echo "node: pid $PID, start-up $(cat "$STATE/startup_seconds" 2>/dev/null || echo '?') s, RSS $RSS"
fi

if [ "$FAILED" -ne 0 ]; then
  echo "smoke: FAILED" >&2
  exit 1
fi
echo "smoke: all checks passed"
