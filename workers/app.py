"""The Celery app the workers run: ``celery -A workers.app worker -Q es-biomed`` (and, for the embedded
engine, one ``-Q es-biomed-write --concurrency 1`` writer). Configuration: :mod:`es_biomed.ingest.queue`."""

from __future__ import annotations

import os

from celery.signals import worker_process_init

from es_biomed.ingest.queue import make_app

# transformers imports TensorFlow whenever it is installed; the torch encoder never needs it.
os.environ.setdefault("USE_TF", "0")

app = make_app()
app.conf.include = ["workers.tasks"]


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Per pool process: one compute thread by default (scale with processes, ``--concurrency``, not threads),
    and the encoders named in ``ES_BIOMED_PRELOAD_ENCODER`` (comma-separated) loaded before the first batch."""
    threads = int(os.environ.get("ES_BIOMED_WORKER_THREADS", "1"))
    os.environ["ES_BIOMED_THREADS"] = str(threads)  # the ONNX Runtime / OpenVINO encoders' thread count
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - TF-only workers
        pass
    from es_biomed.ingest.steps import cluster_for_worker, load_worker_encoder

    cluster_for_worker.cache_clear()  # a client made before the fork is not this process's: connect afresh

    for name in filter(None, os.environ.get("ES_BIOMED_PRELOAD_ENCODER", "").split(",")):
        load_worker_encoder(name.strip())
