"""Tiny Celery app for ``benchmarks/celery_facts.py``: one task that records each start in Redis and sleeps.

The settings start from the project's own :func:`es_biomed.ingest.queue.celery_settings` (JSON only, acks_late,
reject on worker lost, prefetch 1, ...) and the benchmark overrides a few from the environment:

==================================  ============================================================================
variable                            meaning
==================================  ============================================================================
``BROKER_URL``                      Redis broker (also read by ``celery_settings``)
``RESULT_BACKEND``                  result backend (default: the broker)
``ES_BIOMED_VISIBILITY_TIMEOUT``    kombu ``visibility_timeout`` in seconds (read by ``celery_settings``)
``CELERY_FACTS_RESTORE_INTERVAL``   ``unacked_restore_interval``; ``default`` removes the key (kombu's 10 s)
``CELERY_FACTS_RESTORE_THROTTLE``   ``unacked_restore_throttle``; ``default`` removes the key (kombu's 10)
``CELERY_FACTS_REJECT_ON_LOST``     ``1``/``0``: ``task_reject_on_worker_lost`` (default ``1``, the project's)
==================================  ============================================================================

Run a worker from the repository root::

    python -m celery -A benchmarks.celery_facts_app worker -c 1 --without-gossip --without-mingle
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import redis
from celery import Celery

from es_biomed.ingest.queue import celery_settings

__all__ = ["app", "sleep_count", "settings_from_env"]


def settings_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The project's Celery settings with the benchmark's overrides from ``environ`` (default ``os.environ``)."""
    env = dict(os.environ if environ is None else environ)
    conf = celery_settings(env)
    options = dict(conf["broker_transport_options"])
    for var, key in (
        ("CELERY_FACTS_RESTORE_INTERVAL", "unacked_restore_interval"),
        ("CELERY_FACTS_RESTORE_THROTTLE", "unacked_restore_throttle"),
    ):
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if raw == "default":
            options.pop(key, None)
        else:
            options[key] = int(raw)
    conf["broker_transport_options"] = options
    raw_reject = env.get("CELERY_FACTS_REJECT_ON_LOST", "1")
    if raw_reject not in ("0", "1"):
        raise ValueError(f"CELERY_FACTS_REJECT_ON_LOST must be 0 or 1, got {raw_reject!r}")
    conf["task_reject_on_worker_lost"] = raw_reject == "1"
    return conf


app = Celery("celery_facts")
app.conf.update(settings_from_env())
_redis: redis.Redis | None = None


def _client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(app.conf.broker_url)
    return _redis


@app.task(bind=True, name="celery_facts.sleep_count")
def sleep_count(self: Any, key: str, seconds: float) -> int:
    """Record this start (time, pids, worker, delivery) under ``key``, INCR ``key:count``, sleep ``seconds``.

    Returns:
        The execution number of this run (1 for the first execution of the message).
    """
    client = _client()
    info = self.request.delivery_info or {}
    start = {
        "t": time.time(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "hostname": self.request.hostname or socket.gethostname(),
        "task_id": self.request.id,
        "redelivered": bool(info.get("redelivered")),
    }
    n = int(client.incr(f"{key}:count"))
    start["n"] = n
    client.rpush(f"{key}:starts", json.dumps(start))
    time.sleep(seconds)
    client.rpush(f"{key}:ends", json.dumps({"t": time.time(), "pid": os.getpid(), "n": n}))
    return n
