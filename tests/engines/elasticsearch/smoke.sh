#!/usr/bin/env bash
# Smoke test of a running node:  smoke.sh URL   (URL from `node.sh start`)
#
# "core" checks must pass (exit 1 otherwise); "module" checks probe features that live in
# modules Maven Central does not serve and are reported as AVAILABLE / MISSING with the
# server's error, without failing the run.
set -uo pipefail

URL="${1:?usage: smoke.sh URL}"
URL="${URL%/}"
IDX="smoke-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
ALIAS="$IDX-alias"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

# req METHOD PATH [JSON-BODY | @FILE] -> $STATUS, body in $TMP/body, headers in $TMP/headers
req() {
    local ctype="application/json"
    [[ "$2" == *_bulk* || "$2" == *_msearch* ]] && ctype="application/x-ndjson"
    if [ "$1" = HEAD ]; then
        STATUS="$(curl -sS -m 60 -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -I "$URL$2")"
    elif [ $# -ge 3 ]; then
        STATUS="$(curl -sS -m 60 -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$1" -H "Content-Type: $ctype" \
            --data-binary "$3" "$URL$2")"
    else
        STATUS="$(curl -sS -m 60 -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$1" "$URL$2")"
    fi
}

# jcheck PYTHON-EXPR: evaluated with d = the JSON body; true -> exit 0
jcheck() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$TMP/body" "$1" 2>/dev/null
}

err() { # the error of the last response, on one line
    python3 - "$TMP/body" <<'EOF' 2>/dev/null || head -c 400 "$TMP/body"
import json, sys
d = json.load(open(sys.argv[1]))
e = d.get("error", d)
if isinstance(e, dict):
    rc = (e.get("root_cause") or [{}])[0]
    print(f'{e.get("type")}: {e.get("reason")}' + (f' (root cause {rc.get("type")}: {rc.get("reason")})' if rc and rc.get("reason") != e.get("reason") else ""))
else:
    print(e)
EOF
}

core() { # NAME EXPECTED-STATUS PYTHON-EXPR
    if [ "$STATUS" = "$2" ] && jcheck "$3"; then
        echo "PASS  $1"
        passed=$((passed + 1))
    else
        echo "FAIL  $1: HTTP $STATUS $(err)"
        failed=$((failed + 1))
    fi
}

module() { # NAME PYTHON-EXPR   (informational)
    if [ "${STATUS:0:1}" = "2" ] && jcheck "$2"; then
        echo "AVAILABLE  $1"
    else
        echo "MISSING    $1: HTTP $STATUS $(err)"
    fi
}

echo "smoke test of $URL (index $IDX)"

# --- GET / ------------------------------------------------------------------------------------
req GET /
core "GET / answers with version 9.x" 200 'd["version"]["number"].startswith("9.")'
if grep -qi '^x-elastic-product: *Elasticsearch' "$TMP/headers"; then
    echo "PASS  X-Elastic-Product: Elasticsearch header"; passed=$((passed + 1))
else
    echo "FAIL  X-Elastic-Product header missing"; failed=$((failed + 1))
fi
VERSION="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"]["number"])' "$TMP/body" 2>/dev/null)"
echo "      version $VERSION"

req GET "/_cluster/health?wait_for_status=yellow&timeout=30s"
core "cluster health yellow/green" 200 'd["status"] in ("yellow", "green")'

# --- index template + index ---------------------------------------------------------------------
req PUT "/_index_template/$IDX-tpl" '{
  "index_patterns": ["'"$IDX"'-tpl-*"], "priority": 500,
  "_meta": {"description": "smoke template", "schema": 1},
  "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
               "mappings": {"dynamic": "strict", "properties": {"t": {"type": "keyword"}}}}}'
core "PUT _index_template with _meta" 200 'd.get("acknowledged") is True'
req PUT "/$IDX-tpl-1"
core "index created from the template" 200 'd.get("acknowledged") is True'
req GET "/$IDX-tpl-1/_mapping"
core "template mapping applied (dynamic strict)" 200 'list(d.values())[0]["mappings"]["dynamic"] == "strict"'
req DELETE "/$IDX-tpl-1"
req DELETE "/_index_template/$IDX-tpl"

VEC='"type": "dense_vector", "dims": 3, "similarity": "cosine", "index": true, "index_options": {"type": "int8_hnsw", "m": 16, "ef_construction": 100}'
req PUT "/$IDX" '{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "aliases": {"'"$ALIAS"'": {}},
  "mappings": {
    "dynamic": "strict",
    "_meta": {"es_biomed_schema": 1, "note": "smoke"},
    "properties": {
      "id": {"type": "keyword"},
      "title": {"type": "text", "analyzer": "standard"},
      "year": {"type": "integer"},
      "embedding": {'"$VEC"'},
      "passages": {"type": "nested", "properties": {
        "text": {"type": "text"},
        "embedding": {'"$VEC"'}}}}}}'
core "create index: dense_vector int8_hnsw + nested + _meta + alias" 200 'd.get("acknowledged") is True'
req GET "/$IDX/_mapping"
core "_meta and int8_hnsw stored" 200 \
    'list(d.values())[0]["mappings"]["_meta"]["es_biomed_schema"] == 1 and list(d.values())[0]["mappings"]["properties"]["embedding"]["index_options"]["type"] == "int8_hnsw"'
req GET "/_alias/$ALIAS"
core "alias resolves to the index" 200 "'$IDX' in d"

cat >"$TMP/bulk.ndjson" <<EOF
{"index": {"_index": "$ALIAS", "_id": "1"}}
{"id": "1", "title": "aspirin reduces fever", "year": 2001, "embedding": [1, 0, 0], "passages": [{"text": "aspirin fever", "embedding": [1, 0, 0]}, {"text": "side effects", "embedding": [0, 1, 0]}]}
{"index": {"_index": "$ALIAS", "_id": "2"}}
{"id": "2", "title": "ibuprofen and inflammation", "year": 2010, "embedding": [0, 1, 0], "passages": [{"text": "inflammation", "embedding": [0, 1, 0]}]}
{"index": {"_index": "$ALIAS", "_id": "3"}}
{"id": "3", "title": "fever in children", "year": 2020, "embedding": [0, 0, 1], "passages": [{"text": "children fever", "embedding": [0.1, 0, 1]}]}
EOF
req POST "/_bulk?refresh=true" "@$TMP/bulk.ndjson"
core "bulk 3 docs through the alias" 200 'd["errors"] is False and len(d["items"]) == 3'
req GET "/$ALIAS/_count"
core "count = 3" 200 'd["count"] == 3'

# --- searches -------------------------------------------------------------------------------------
req POST "/$ALIAS/_search" '{"query": {"match": {"title": "fever"}}}'
core "BM25 match query" 200 'd["hits"]["total"]["value"] == 2'

req POST "/$ALIAS/_search" '{"knn": {"field": "embedding", "query_vector": [0.9, 0.1, 0], "k": 2, "num_candidates": 10}, "_source": ["id"]}'
core "top-level knn" 200 'd["hits"]["hits"][0]["_id"] == "1" and len(d["hits"]["hits"]) == 2'

req POST "/$ALIAS/_search" '{"knn": {"field": "passages.embedding", "query_vector": [0.1, 0.0, 1.0], "k": 2, "num_candidates": 10,
  "inner_hits": {"size": 1, "_source": false, "fields": ["passages.text"]}}, "_source": ["id"]}'
core "nested knn (passages.embedding) + inner_hits" 200 \
    'd["hits"]["hits"][0]["_id"] == "3" and d["hits"]["hits"][0]["inner_hits"]["passages"]["hits"]["hits"]'

req POST "/$ALIAS/_search" '{"retriever": {"standard": {"query": {"match": {"title": "fever"}}, "filter": {"range": {"year": {"gte": 2010}}}}}}'
core "retriever: standard (+ filter)" 200 'd["hits"]["total"]["value"] == 1 and d["hits"]["hits"][0]["_id"] == "3"'

req POST "/$ALIAS/_search" '{"retriever": {"knn": {"field": "embedding", "query_vector": [0, 1, 0], "k": 1, "num_candidates": 10}}}'
core "retriever: knn" 200 'd["hits"]["hits"][0]["_id"] == "2"'

req POST "/$ALIAS/_search" '{"size": 3, "retriever": {"rescorer": {
  "retriever": {"standard": {"query": {"match": {"title": "fever"}}}},
  "rescore": {"window_size": 10, "query": {"rescore_query": {"match": {"title": "children"}}, "query_weight": 1.0, "rescore_query_weight": 5.0}}}}}'
core "retriever: rescorer (rescore_query = match)" 200 'd["hits"]["hits"][0]["_id"] == "3"'

req POST "/$ALIAS/_search" '{"size": 3, "retriever": {"rescorer": {
  "retriever": {"standard": {"query": {"match": {"title": "fever"}}}},
  "rescore": {"window_size": 10, "query": {"rescore_query": {"function_score": {"query": {"match_all": {}},
     "functions": [{"field_value_factor": {"field": "year", "factor": 0.001}}], "boost_mode": "replace"}},
     "query_weight": 0.0, "rescore_query_weight": 1.0}}}}}'
core "retriever: rescorer (function_score, no script)" 200 'd["hits"]["hits"][0]["_id"] == "3"'

req POST "/$ALIAS/_search" '{"query": {"match": {"title": "fever"}},
  "rescore": {"window_size": 10, "query": {"rescore_query": {"match": {"title": "aspirin"}}, "rescore_query_weight": 5}}}'
core "classic rescore section" 200 'd["hits"]["hits"][0]["_id"] == "1"'

# Painless-free cosine rescoring: a knn query as the rescore_query scores the window by (1 + cos) / 2
req POST "/$ALIAS/_search" '{"size": 3, "_source": false, "retriever": {"rescorer": {
  "retriever": {"standard": {"query": {"match": {"title": "fever"}}}},
  "rescore": {"window_size": 10, "query": {"rescore_query": {"knn": {"field": "embedding", "query_vector": [0.1, 0, 1], "k": 10, "num_candidates": 10}},
     "query_weight": 0.0, "rescore_query_weight": 1.0}}}}}'
core "retriever: rescorer with a knn rescore_query (cosine rescore, no script)" 200 'd["hits"]["hits"][0]["_id"] == "3" and abs(d["hits"]["hits"][0]["_score"] - (1 + 0.995) / 2) < 0.01'

req POST "/$ALIAS/_search" '{"_source": false, "knn": {"field": "embedding", "query_vector": [0.9, 0.1, 0], "k": 2, "num_candidates": 10, "rescore_vector": {"oversample": 3}}}'
core "knn with rescore_vector (oversample, float rescoring of int8)" 200 'd["hits"]["hits"][0]["_id"] == "1"'

req POST "/$ALIAS/_search" '{"query": {"nested": {"path": "passages", "query": {"match": {"passages.text": "fever"}}, "inner_hits": {}}}}'
core "nested query + inner_hits" 200 'd["hits"]["total"]["value"] == 2'

printf '{"index":"%s"}\n{"query":{"match_all":{}}}\n' "$ALIAS" >"$TMP/msearch.ndjson"
req POST "/_msearch" "@$TMP/msearch.ndjson"
core "msearch" 200 'd["responses"][0]["hits"]["total"]["value"] == 3'

req POST "/$ALIAS/_search" '{"size": 0, "aggs": {"y": {"terms": {"field": "year"}}}}'
core "terms aggregation" 200 'len(d["aggregations"]["y"]["buckets"]) == 3'

req POST "/$IDX/_update/1?refresh=true" '{"doc": {"year": 2002}}'
core "partial update (no script)" 200 'd["result"] == "updated"'

req POST "/$ALIAS/_analyze" '{"analyzer": "standard", "text": "Aspirin-Fever"}'
core "_analyze standard" 200 '[t["token"] for t in d["tokens"]] == ["aspirin", "fever"]'

# --- features from modules that are not on Maven Central (informational) -------------------------
req POST "/_analyze" '{"analyzer": "english", "text": "fevers running"}'
module "english analyzer (analysis-common)" '"tokens" in d'
req POST "/$ALIAS/_search" '{"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "cosineSimilarity(params.v, \u0027embedding\u0027) + 1.0", "params": {"v": [1, 0, 0]}}}}}'
module "script_score with painless (lang-painless)" '"hits" in d'
req POST "/$ALIAS/_search/template" '{"source": "{\"query\": {\"match\": {\"title\": \"{{q}}\"}}}", "params": {"q": "fever"}}'
module "search template (lang-mustache)" '"hits" in d'
req POST "/$ALIAS/_search" '{"retriever": {"rrf": {"retrievers": [{"standard": {"query": {"match": {"title": "fever"}}}}, {"knn": {"field": "embedding", "query_vector": [1, 0, 0], "k": 2, "num_candidates": 10}}]}}}'
module "retriever: rrf (x-pack rank-rrf)" '"hits" in d'
req POST "/$ALIAS/_search" '{"retriever": {"linear": {"retrievers": [{"retriever": {"standard": {"query": {"match": {"title": "fever"}}}}, "weight": 1}, {"retriever": {"knn": {"field": "embedding", "query_vector": [1, 0, 0], "k": 2, "num_candidates": 10}}, "weight": 1}]}}}'
module "retriever: linear (x-pack rank-rrf)" '"hits" in d'
req POST "/_reindex" '{"source": {"index": "'"$IDX"'"}, "dest": {"index": "'"$IDX"'-copy"}}'
module "_reindex (reindex)" '"created" in d'
req POST "/$ALIAS/_delete_by_query" '{"query": {"term": {"id": "nope"}}}'
module "_delete_by_query (reindex)" '"deleted" in d'
req PUT "/_ingest/pipeline/$IDX-pipe" '{"processors": [{"set": {"field": "x", "value": 1}}]}'
module "ingest pipeline with a set processor (ingest-common)" 'd.get("acknowledged") is True'
req DELETE "/_ingest/pipeline/$IDX-pipe"
req PUT "/$IDX-zstd" '{"settings": {"index.codec": "best_compression", "number_of_replicas": 0}}'
req PUT "/$IDX-zstd/_doc/1?refresh=true" '{"t": "zstd stored fields"}'
module "index.codec best_compression (zstd: system libzstd linked by the launcher)" 'd.get("result") == "created"'
req DELETE "/$IDX-zstd"
req GET "/_license"
module "_license (x-pack)" '"license" in d'

# --- destructive_requires_name ----------------------------------------------------------------------
req DELETE "/smoke-*"
if [ "$STATUS" = "400" ] && grep -q "Wildcard expressions or all indices are not allowed" "$TMP/body"; then
    echo "PASS  DELETE /smoke-* refused (action.destructive_requires_name): $(err)"; passed=$((passed + 1))
else
    echo "FAIL  DELETE /smoke-* was not refused: HTTP $STATUS $(err)"; failed=$((failed + 1))
fi
req DELETE "/$IDX-copy"
req DELETE "/$IDX"
core "DELETE by exact name" 200 'd.get("acknowledged") is True'
req HEAD "/$IDX"
if [ "$STATUS" = "404" ]; then echo "PASS  index gone"; passed=$((passed + 1)); else echo "FAIL  index still there ($STATUS)"; failed=$((failed + 1)); fi

echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
