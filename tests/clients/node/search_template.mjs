#!/usr/bin/env node
// The stored search template es-biomed-rescore from Node.js, with the official OpenSearch client and no Python:
// query vectors come from POST /embed of a running `es-biomed serve`, the search from the client's searchTemplate.
//
// Usage:  npm ci --prefix tests/clients/node
//         node tests/clients/node/search_template.mjs job.json      (or the job on stdin)
//
// The job (JSON):
//   {
//     "node": "http://127.0.0.1:9400",            OpenSearch URL, or a list of them (required)
//     "index": "es-biomed",                       index or alias (required)
//     "template": "es-biomed-rescore",            stored template id (default es-biomed-rescore)
//     "embed_url": "http://127.0.0.1:8000",       es-biomed serve; needed when a search has no query_vector
//     "username": "...", "password": "...",       optional basic auth; "ca_certs": "/path/ca.pem" optional
//     "searches": [{"id": "1049", "params": {"query": "...", "k": 10}}, ...]
//   }
// Each search's params go to the template as they are; a missing params.query_vector is filled from
// POST {embed_url}/embed {"texts": [params.query], "kind": "query"} (one request for all of them).
//
// Prints one JSON object on stdout:
//   {"client": "@opensearch-project/opensearch 3.9.0", "encoder": {...} | null,
//    "results": [{"id": "1049", "took": 12, "hits": [{"id": "12486491", "score": 76.4}, ...]}, ...]}
// Exits 1 with the reason on stderr when the job is malformed, /embed refuses or the engine answers an error.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Client } from '@opensearch-project/opensearch';

const require = createRequire(import.meta.url);
const CLIENT = `@opensearch-project/opensearch ${require('@opensearch-project/opensearch/package.json').version}`;

function fail(message) {
  process.stderr.write(`search_template.mjs: ${message}\n`);
  process.exit(1);
}

function readJob() {
  const text = process.argv[2] ? readFileSync(process.argv[2], 'utf8') : readFileSync(0, 'utf8');
  let job;
  try {
    job = JSON.parse(text);
  } catch (err) {
    fail(`the job is not JSON: ${err.message}`);
  }
  const nodes = [job.node].flat();
  if (nodes.length === 0 || !nodes.every((u) => typeof u === 'string' && u)) {
    fail('the job needs "node" (a URL, or a list of URLs)');
  }
  if (typeof job.index !== 'string' || !job.index) fail('the job needs "index" (a string)');
  if (!Array.isArray(job.searches) || job.searches.length === 0) fail('the job needs "searches" (a non-empty list)');
  for (const [i, s] of job.searches.entries()) {
    if (!s || typeof s.params !== 'object' || typeof s.params.query !== 'string') {
      fail(`searches[${i}] needs "params" with "query" (a string)`);
    }
  }
  return job;
}

// POST /embed once for every search that has no query_vector yet.
async function fillQueryVectors(job) {
  const missing = job.searches.filter((s) => s.params.query_vector === undefined);
  if (missing.length === 0) return null;
  if (!job.embed_url) fail('a search has no params.query_vector and the job has no "embed_url" (es-biomed serve)');
  const url = `${job.embed_url.replace(/\/+$/, '')}/embed`;
  const resp = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ texts: missing.map((s) => s.params.query), kind: 'query' }),
  });
  const body = await resp.json().catch(() => null);
  if (!resp.ok || !body || !Array.isArray(body.vectors)) {
    fail(`POST ${url} answered ${resp.status}: ${JSON.stringify(body)}`);
  }
  missing.forEach((s, i) => {
    s.params.query_vector = body.vectors[i];
  });
  return body.encoder;
}

async function main() {
  const job = readJob();
  const encoder = await fillQueryVectors(job);
  const options = { node: job.node };
  if (job.username) options.auth = { username: job.username, password: job.password ?? '' };
  if (job.ca_certs) options.ssl = { ca: readFileSync(job.ca_certs) };
  const client = new Client(options);
  const results = [];
  try {
    for (const s of job.searches) {
      const resp = await client.searchTemplate({
        index: job.index,
        body: { id: job.template ?? 'es-biomed-rescore', params: s.params },
      });
      const hits = resp.body.hits.hits.map((h) => ({ id: h._id, score: h._score }));
      results.push({ id: s.id ?? null, took: resp.body.took, hits });
    }
  } catch (err) {
    const detail = err.meta?.body ? JSON.stringify(err.meta.body.error ?? err.meta.body) : err.message;
    fail(`searchTemplate on ${job.index} failed (${err.meta?.statusCode ?? err.name}): ${detail}`);
  } finally {
    await client.close();
  }
  process.stdout.write(`${JSON.stringify({ client: CLIENT, encoder: encoder ?? null, results })}\n`);
}

main().catch((err) => fail(err.stack ?? String(err)));
