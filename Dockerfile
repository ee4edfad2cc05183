# syntax=docker/dockerfile:1
# tickr's container image: one image for every role (api, worker, scheduler, history, migrate).
#
#   docker build -t tickr .
#   docker run --rm -e TICKR_REDIS_URL=redis://redis:6379/0 -e TICKR_API_TOKEN=... -p 8080:8080 tickr
#   docker run --rm -e TICKR_REDIS_URL=redis://redis:6379/0 tickr worker myapp:app -q default -c 64
#
# Your own tasks: build FROM this image and COPY your package in (or pip install it); `tickr worker mypkg:app`.

# --- builder: the tickr wheel and the wheels of its dependencies (build tools, if any, stay here) ---------------
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- final: python:3.11-slim with tickr installed from those wheels, nothing else ------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKR_DATA_DIR=/var/lib/tickr \
    TICKR_LOG_FORMAT=json
# the wheels are bind-mounted from the builder, so they never become a layer of this image
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels tickr \
    && groupadd --system --gid 10001 tickr \
    && useradd --system --uid 10001 --gid tickr --home-dir /var/lib/tickr --create-home --shell /usr/sbin/nologin tickr
USER 10001:10001
WORKDIR /var/lib/tickr
EXPOSE 8080 9101
# The API's /health (200 when Redis answers, 503 otherwise; public even with TICKR_API_TOKEN). Only the default
# command (`tickr api`) serves it: docker-compose.yml sets its own healthcheck on the other roles, and Kubernetes
# ignores HEALTHCHECK (deploy/k8s uses probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TICKR_API_PORT', '8080'), timeout=4)"]
# SIGTERM drains: no new jobs, running ones get TICKR_SHUTDOWN_GRACE_SECONDS, the rest are handed back.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tickr"]
# beyond loopback the API needs TICKR_API_TOKEN (or --insecure): it refuses to start without one
CMD ["api", "--host", "0.0.0.0", "--port", "8080"]
