// es-biomed search page. Every piece of document text goes into the page through textContent; highlights are
// character ranges from the server, turned into <mark> elements here. Nothing is parsed as HTML; no third-party code.
"use strict";

const $ = (id) => document.getElementById(id);
let qaAvailable = false;
let qaReason = "";
let seq = 0; // answers of an older query never overwrite a newer one

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// text with [start, end) ranges wrapped in <mark>, as DOM nodes appended to parent
function appendMarked(parent, text, ranges) {
  let pos = 0;
  for (const [start, end] of ranges || []) {
    if (start < pos || end > text.length || end <= start) continue;
    parent.appendChild(document.createTextNode(text.slice(pos, start)));
    parent.appendChild(el("mark", null, text.slice(start, end)));
    pos = end;
  }
  parent.appendChild(document.createTextNode(text.slice(pos)));
  return parent;
}

function fmt(x, digits) {
  return x === null || x === undefined ? null : Number(x).toFixed(digits);
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    const msg = body && body.message ? body.message : `HTTP ${resp.status}`;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function params() {
  const p = new URLSearchParams();
  p.set("q", $("q").value);
  p.set("mode", document.querySelector("input[name=mode]:checked").value);
  p.set("k", $("k").value);
  if ($("source").value) p.set("source", $("source").value);
  if ($("year-from").value) p.set("year_from", $("year-from").value);
  if ($("year-to").value) p.set("year_to", $("year-to").value);
  return p;
}

function renderHit(hit) {
  const li = el("li", "hit");
  const h3 = el("h3");
  h3.appendChild(el("span", "rank", `${hit.rank}.`));
  const titleText = hit.title || hit.doc_id;
  const link = hit.doi_url || hit.pubmed_url;
  const title = link ? el("a") : el("span");
  if (link) {
    title.href = link;
    title.rel = "noopener noreferrer";
    title.target = "_blank";
  }
  appendMarked(title, titleText, hit.title ? hit.title_highlights : []);
  h3.appendChild(title);
  li.appendChild(h3);

  const meta = el("div", "meta");
  if (hit.year) meta.appendChild(el("span", null, hit.year));
  if (hit.source) meta.appendChild(el("span", null, hit.source));
  if (hit.journal) meta.appendChild(el("span", null, hit.journal));
  for (const [label, url] of [["DOI", hit.doi_url], ["PubMed", hit.pubmed_url]]) {
    if (!url) continue;
    const a = el("a", null, label === "DOI" ? `doi:${hit.doi}` : `PubMed ${hit.pmid}`);
    a.href = url;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    meta.appendChild(a);
  }
  meta.appendChild(el("span", null, `id ${hit.doc_id}`));
  li.appendChild(meta);

  if (hit.snippet && hit.snippet.text) {
    li.appendChild(appendMarked(el("p", "snippet"), hit.snippet.text, hit.snippet.highlights));
  }

  const scores = el("div", "scores");
  scores.appendChild(el("span", "final", `score ${fmt(hit.scores.final, 4)}`));
  for (const [label, value, digits] of [
    ["BM25", hit.scores.bm25, 3],
    ["cosine", hit.scores.cosine, 4],
    ["RRF", hit.scores.rrf, 5],
  ]) {
    if (value !== null && value !== undefined) scores.appendChild(el("span", null, `${label} ${fmt(value, digits)}`));
  }
  li.appendChild(scores);
  return li;
}

function renderAnswer(ans) {
  const li = el("li");
  li.appendChild(el("span", "answer-text", ans.text));
  li.appendChild(el("span", "muted", `  score ${fmt(ans.score, 3)}`));
  const ev = el("div", "answer-evidence");
  if (ans.sentence) {
    const s = ans.sentence;
    const at = s.toLowerCase().indexOf(String(ans.text).toLowerCase());
    ev.appendChild(appendMarked(el("q"), s, at >= 0 ? [[at, at + String(ans.text).length]] : []));
    ev.appendChild(document.createTextNode(" — "));
  }
  ev.appendChild(el("span", null, `${ans.title || ans.doc_id}${ans.year ? ` (${ans.year})` : ""}`));
  li.appendChild(ev);
  return li;
}

async function runSearch() {
  const q = $("q").value;
  if (!q.trim()) {
    showError("Type a query first.");
    return;
  }
  const p = params();
  history.replaceState(null, "", `/?${p.toString()}`);
  showError("");
  $("status").textContent = "searching…";
  const mine = ++seq;
  askAnswers(q, p.get("mode"), mine);
  try {
    const data = await getJSON(`/search?${p.toString()}`);
    if (mine !== seq) return;
    const list = $("hits");
    list.replaceChildren(...data.hits.map(renderHit));
    const n = data.hits.length;
    $("status").textContent = `${n} result${n === 1 ? "" : "s"} · ${data.mode} · ${data.took_ms.toFixed(1)} ms`;
  } catch (e) {
    if (mine !== seq) return;
    $("hits").replaceChildren();
    $("status").textContent = "";
    showError(e.message);
  }
}

async function askAnswers(q, mode, mine) {
  const panel = $("answers-panel");
  if (!$("want-answers").checked) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  $("answers").replaceChildren();
  if (!qaAvailable) {
    $("answers-status").textContent = `Answers are not available: ${qaReason}`;
    return;
  }
  $("answers-status").textContent = "finding answers…";
  try {
    const data = await getJSON(`/ask?${new URLSearchParams({ q, mode }).toString()}`);
    if (mine !== seq) return;
    $("answers").replaceChildren(...data.answers.map(renderAnswer));
    $("answers-status").textContent = data.answers.length
      ? `${data.answers.length} answers · ${data.took_ms.toFixed(0)} ms`
      : "no answer found in the top passages";
  } catch (e) {
    if (mine !== seq) return;
    $("answers-status").textContent = `Answers failed: ${e.message}`;
  }
}

async function loadHealth() {
  try {
    const h = await getJSON("/health");
    const idx = h.index;
    const years = idx.years ? ` · ${idx.years[0]}–${idx.years[1]}` : "";
    $("index-info").textContent = `${idx.documents} documents${years} · encoder ${h.encoder.name}`;
    const select = $("source");
    for (const [name, count] of Object.entries(idx.sources || {})) {
      const opt = el("option", null, `${name} (${count})`);
      opt.value = name;
      select.appendChild(opt);
    }
    qaAvailable = h.qa.available;
    qaReason = h.qa.error || "";
    if (!qaAvailable) {
      $("answers-toggle").title = `Answers are not available: ${qaReason}`;
    }
  } catch (e) {
    showError(`The service does not answer: ${e.message}`);
  }
}

function restoreFromURL() {
  const p = new URLSearchParams(location.search);
  if (!p.get("q")) return false;
  $("q").value = p.get("q");
  const mode = document.querySelector(`input[name=mode][value="${CSS.escape(p.get("mode") || "rerank")}"]`);
  if (mode) mode.checked = true;
  for (const [id, key] of [["k", "k"], ["year-from", "year_from"], ["year-to", "year_to"]]) {
    if (p.get(key)) $(id).value = p.get(key);
  }
  if (p.get("source")) $("source").value = p.get("source");
  return true;
}

document.addEventListener("DOMContentLoaded", async () => {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSearch();
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => $("q").value.trim() && runSearch());
  }
  for (const id of ["source", "k"]) {
    $(id).addEventListener("change", () => $("q").value.trim() && runSearch());
  }
  await loadHealth();
  if (restoreFromURL()) runSearch();
  $("q").focus();
});
