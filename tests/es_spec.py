"""Offline validation of request bodies against the official Elasticsearch API specification.

Loads ``../shared/es-spec/es-serverless-openapi.json`` when present, else the vendored copy in
``tests/data/es-spec``, and patches the known flaws listed in the spec's README:

1. container ``allOf`` members carry ``min/maxProperties: 1``: removed;
2. ``_types.Script.params`` values are typed ``object``: any value allowed (``query_vector`` is an array);
   the same for every bare ``{"type": "object"}`` value slot (the generator's rendering of
   ``UserDefinedValue``: search-template params, mapping ``_meta``, the ``set`` processor's value);
3. nothing is strict: here every named object schema is closed (``additionalProperties: false``), its
   ``allOf`` members merged into one object first (closing a member alone would reject its siblings' keys),
   so a misspelled key fails anywhere, not only in the two schemas the README names;
4. overlapping ``oneOf`` alternatives: treated as ``anyOf``;
5. shorthand forms (``{"term": {"f": "v"}}``) are allowed.
"""

from __future__ import annotations

import copy
import gzip
import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEC = REPO.parent / "shared" / "es-spec" / "es-serverless-openapi.json"
VENDORED_SPEC = REPO / "tests" / "data" / "es-spec" / "es-serverless-openapi.json.gz"

SEARCH = "#/components/requestBodies/search/content/application~1json/schema"
PUT_INDEX_TEMPLATE = "#/components/requestBodies/indices.put_index_template/content/application~1json/schema"
PUT_SCRIPT = "#/components/requestBodies/put_script/content/application~1json/schema"
SEARCH_TEMPLATE = "#/components/requestBodies/search_template/content/application~1json/schema"
BULK_ACTION = "#/components/schemas/_global.bulk.OperationContainer"
PIPELINE = "#/components/schemas/ingest._types.Pipeline"
REINDEX = "#/components/requestBodies/reindex/content/application~1json/schema"


def _load_spec() -> dict[str, Any]:
    if SHARED_SPEC.exists():
        return json.loads(SHARED_SPEC.read_text())
    with gzip.open(VENDORED_SPEC, "rt") as fh:
        return json.load(fh)


def _bare_object(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "object" and not (set(node) - {"type", "description"})


def _walk(node: Any, fn: Any) -> None:
    if isinstance(node, dict):
        fn(node)
        for v in list(node.values()):
            _walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            _walk(v, fn)


def _flatten(
    name: str, schemas: dict[str, Any], memo: dict[str, dict[str, Any] | None], stack: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A closed copy of a named object schema: properties merged over ``allOf`` (through ``$ref``),
    ``additionalProperties: false``. None when the schema is open (a map) or not a plain object."""
    if name in memo:
        return memo[name]
    if name in stack or name not in schemas:
        return None
    schema = schemas[name]
    merged: dict[str, Any] = {}
    required: list[str] = []
    parts = [schema, *schema.get("allOf", [])]
    for part in parts:
        if "$ref" in part:
            sub = _flatten(part["$ref"].rsplit("/", 1)[-1], schemas, memo, (*stack, name))
            if sub is None:
                memo[name] = None
                return None
            part = sub
        if part.get("additionalProperties") not in (None, False) or "anyOf" in part or "oneOf" in part:
            memo[name] = None
            return None
        if part is not schema and ("allOf" in part or "properties" not in part):
            # a nested allOf, or a bare {"type": "object"} member: an open map (e.g. TermsQuery's field -> values)
            memo[name] = None
            return None
        merged.update(part.get("properties", {}))
        required += [r for r in part.get("required", []) if r not in required]
    if not merged or schema.get("type", "object") != "object":
        memo[name] = None
        return None
    flat = {k: v for k, v in schema.items() if k not in ("allOf", "properties", "required")}
    flat.update({"type": "object", "properties": merged, "additionalProperties": False})
    if required:
        flat["required"] = required
    memo[name] = flat
    return flat


#: Request bodies the spec gives inline under ``paths`` (not in ``components``), copied there under these names.
INLINE_BODIES = {"reindex": ("/_reindex", "post")}


@lru_cache(maxsize=1)
def components() -> dict[str, Any]:
    spec = _load_spec()
    comps = copy.deepcopy(spec["components"])
    schemas = comps["schemas"]
    for name, (path, method) in INLINE_BODIES.items():
        comps["requestBodies"].setdefault(name, copy.deepcopy(spec["paths"][path][method]["requestBody"]))

    def container_fix(n: dict[str, Any]) -> None:
        for m in n.get("allOf", []):
            if isinstance(m, dict) and m.get("maxProperties") == 1:
                m.pop("maxProperties")
                m.pop("minProperties", None)

    _walk(comps, container_fix)

    def one_of(n: dict[str, Any]) -> None:
        if "oneOf" in n:
            n["anyOf"] = n.pop("oneOf")

    _walk(comps, one_of)
    qc = schemas["_types.query_dsl.QueryContainer"]["properties"]
    for q in (
        "term",
        "match",
        "match_phrase",
        "prefix",
        "wildcard",
        "fuzzy",
        "match_bool_prefix",
        "match_phrase_prefix",
    ):
        prop = qc.get(q)
        if prop and "additionalProperties" in prop:
            prop["additionalProperties"] = {
                "anyOf": [prop["additionalProperties"], {"type": "string"}, {"type": "number"}, {"type": "boolean"}]
            }
    schemas["_types.Script"]["properties"]["params"]["additionalProperties"] = {}

    # Patch 2, generalized: the generator renders UserDefinedValue ("any JSON") as a bare {"type": "object"};
    # search-template params, mapping _meta and the set processor's value hold arrays, numbers and strings.
    def any_value(n: dict[str, Any]) -> None:
        if _bare_object(n.get("additionalProperties")):
            n["additionalProperties"] = {}
        for key, prop in list(n.get("properties", {}).items()):
            if _bare_object(prop):
                n["properties"][key] = {}

    _walk(comps, any_value)
    memo: dict[str, dict[str, Any] | None] = {}
    flat = {name: _flatten(name, schemas, memo) for name in list(schemas)}
    # a base that other schemas extend through allOf (QueryBase...) stays open: closing it would reject the
    # keys of an open extension such as TermsQuery's field map; closed extensions inline its properties anyway
    bases = set()

    def collect_bases(n: dict[str, Any]) -> None:
        members = n.get("allOf", [])
        if len(members) < 2:  # a one-member allOf only wraps a $ref to attach a description
            return
        for m in members:
            if isinstance(m, dict) and "$ref" in m:
                bases.add(m["$ref"].rsplit("/", 1)[-1])

    _walk(schemas, collect_bases)
    for name, closed in flat.items():
        if closed is not None and name not in bases:
            schemas[name] = closed
    # the request bodies themselves (the _search root, put template...) are inline: close them too
    for rb in comps["requestBodies"].values():
        schema = rb.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return comps


@cache
def _validator(ref: str) -> Any:
    from openapi_schema_validator import OAS30Validator

    return OAS30Validator({"components": components(), "$ref": ref})


def _leaves(error: Any) -> list[Any]:
    """The innermost errors under an anyOf/oneOf failure (the actual causes), else the error itself."""
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def errors(body: Any, ref: str = SEARCH) -> list[str]:
    """Validation errors of ``body`` against the schema at ``ref`` (empty list: valid).

    For an ``anyOf`` failure the innermost causes are listed, e.g.
    ``['rescore', 'query']: Additional properties are not allowed ('rescore_query_wieght' was unexpected)``.
    """
    out = []
    for e in _validator(ref).iter_errors(body):
        for leaf in _leaves(e):
            msg = f"{list(leaf.absolute_path)}: {leaf.message[:300]}"
            if msg not in out:
                out.append(msg)
    return out
