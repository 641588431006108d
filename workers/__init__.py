"""Celery workers of es-biomed: ``celery -A workers.app worker``. Thin: see :mod:`workers.tasks`."""
