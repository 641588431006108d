"""Celery configuration shared by the producer (``es-biomed ingest``) and the workers (``workers/``).

Everything comes from the environment, so every worker on every machine, and the CLI that submits, agree:

========================================  ==========================  =============================================
variable                                  default                     meaning
========================================  ==========================  =============================================
``BROKER_URL``                            ``redis://127.0.0.1:6379/0``  the Redis broker
``RESULT_BACKEND``                        ``BROKER_URL``               where batch states and results live
``ES_BIOMED_VISIBILITY_TIMEOUT``          ``3600``                     seconds before an unacked batch is redelivered
``ES_BIOMED_RESTORE_INTERVAL``            ``10``                       seconds between redelivery sweeps
``ES_BIOMED_PREFETCH``                    ``1``                        messages each worker process reserves
``ES_BIOMED_RETRY_MAX``                   ``8``                        retries of a batch on transient errors
========================================  ==========================  =============================================

Reliability choices (measured in ``benchmarks/celery_facts.py``; see ``benchmarks/RESULTS.md``):

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a batch is acknowledged only after it is written, and a
  worker process killed mid-batch puts the message back at once instead of marking the batch failed.
* kombu's Redis transport redelivers a message whose consumer vanished (a whole worker SIGKILLed, a machine lost)
  only after ``visibility_timeout``, and scans for such messages every ``unacked_restore_interval *
  unacked_restore_throttle`` seconds (kombu defaults 10 x 10 = 100 s). We set the throttle to 1, so the sweep runs
  every ``ES_BIOMED_RESTORE_INTERVAL`` seconds. A visibility timeout shorter than a batch makes the batch run
  twice (harmless here, since ids are deterministic, but wasted work): keep it well above the longest batch.
* JSON only: pickle is never accepted, by the workers or in results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from es_biomed.errors import require

__all__ = ["DEFAULT_BROKER_URL", "QUEUE", "WRITE_QUEUE", "celery_settings", "make_app"]

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
#: Queue of read-validate-embed(-bulk-write) tasks: run as many worker processes as you have cores.
QUEUE = "es-biomed"
#: Queue of the embedded engine's write tasks: exactly one worker process (tantivy allows one writer).
WRITE_QUEUE = "es-biomed-write"


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {key} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"environment variable {key} must be >= 1, got {value}")
    return value


def celery_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Celery settings (lowercase names) from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    broker = env.get("BROKER_URL") or DEFAULT_BROKER_URL
    visibility = _int(env, "ES_BIOMED_VISIBILITY_TIMEOUT", 3600)
    restore = _int(env, "ES_BIOMED_RESTORE_INTERVAL", 10)
    return {
        "broker_url": broker,
        "result_backend": env.get("RESULT_BACKEND") or broker,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "result_extended": True,
        "result_expires": 7 * 24 * 3600,
        "worker_prefetch_multiplier": _int(env, "ES_BIOMED_PREFETCH", 1),
        "task_default_queue": QUEUE,
        "task_routes": {"es_biomed.write_batch": {"queue": WRITE_QUEUE}},
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": restore,
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "task_publish_retry_policy": {"max_retries": 20, "interval_start": 0, "interval_step": 0.5, "interval_max": 3},
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "es_biomed_retry_max": _int(env, "ES_BIOMED_RETRY_MAX", 8),
    }


def make_app(environ: Mapping[str, str] | None = None, **overrides: Any) -> Any:
    """A Celery app configured by :func:`celery_settings` (tasks are registered by ``workers.tasks``).

    The producer side (``es-biomed ingest submit``) only needs this app to send tasks by name.
    """
    celery = require("celery", "workers")
    app = celery.Celery("es_biomed")
    app.conf.update(celery_settings(environ), **overrides)
    return app
