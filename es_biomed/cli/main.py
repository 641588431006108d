"""The ``es-biomed`` command line: ``index``, ``search``, ``eval``, ``es`` and ``ingest``.

The CLI parses arguments and calls library functions; heavy modules are imported inside each command so
``es-biomed --help`` stays fast. Exit codes: 0 success, 1 error, 3 records were rejected (quarantined).

Backends: ``--backend embedded`` (default; ``--index`` is a directory), ``--backend es`` (Elasticsearch;
connection from ``ES_URL``, ``ES_API_KEY`` or ``ES_USERNAME``/``ES_PASSWORD``, ``ES_CA_CERTS``) or
``--backend opensearch`` (``OPENSEARCH_URL``, ``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD``,
``OPENSEARCH_CA_CERTS``); for a cluster ``--index`` names the alias, default ``es-biomed``.
"""

from __future__ import annotations

import os

import click

from es_biomed.cli.cluster import es_group, opensearch_group
from es_biomed.cli.eval import eval_group
from es_biomed.cli.ingest import ingest_group
from es_biomed.cli.maintenance import ann_group, check, compact, repair
from es_biomed.cli.models import export_group, models_group
from es_biomed.cli.qa import ask, qa_eval
from es_biomed.cli.report import report
from es_biomed.cli.search import index, search
from es_biomed.cli.serve import serve

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="es-biomed")
def main() -> None:
    """Biomedical literature search: BM25 retrieval plus cosine rerank with a biomedical encoder."""
    # transformers imports TensorFlow whenever it is installed (2.6 s here), though the torch backend never
    # needs it and the TF backend does not go through transformers. The CLI exports no TF model, so it opts
    # out; library users (and the TF exporter) keep transformers' default.
    os.environ.setdefault("USE_TF", "0")


for _command in (
    index,
    search,
    export_group,
    eval_group,
    es_group,
    opensearch_group,
    ingest_group,
    models_group,
    serve,
    check,
    repair,
    compact,
    ann_group,
    ask,
    report,
):
    main.add_command(_command)
eval_group.add_command(qa_eval)
