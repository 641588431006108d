"""The ``es-biomed`` command line: one module per command group over a small shared support module.

* :mod:`~es_biomed.cli.main`: the ``es-biomed`` group, where every command is registered;
* :mod:`~es_biomed.cli.search`: ``index``, ``search``;
* :mod:`~es_biomed.cli.eval`: ``eval beir | bioasq`` (``eval qa`` from :mod:`~es_biomed.cli.qa`);
* :mod:`~es_biomed.cli.qa`: ``ask``, ``eval qa``;
* :mod:`~es_biomed.cli.cluster`: ``es ...``, ``opensearch ...``;
* :mod:`~es_biomed.cli.ingest`: ``ingest submit | status | retry-failed``;
* :mod:`~es_biomed.cli.models`: ``models list | fetch``, ``export onnx | eland``;
* :mod:`~es_biomed.cli.report`: ``report``;
* :mod:`~es_biomed.cli.serve`: ``serve``;
* :mod:`~es_biomed.cli.maintenance`: ``check``, ``repair``, ``compact``;
* :mod:`~es_biomed.cli.support`: what they share (error mapping, encoder and cluster loading, options).

A new command goes into the module of its group (or a new module registered in :mod:`~es_biomed.cli.main`).
"""

from es_biomed.cli.main import main
from es_biomed.cli.support import EXIT_REJECTED

__all__ = ["EXIT_REJECTED", "main"]
