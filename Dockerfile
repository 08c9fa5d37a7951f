# syntax=docker/dockerfile:1
# Build stage: install the locked runtime dependencies into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.lock

# Final stage: the virtual environment and the application, run by an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1 \
    DATABASE_URL=sqlite:////app/data/cdmo-metrics.db
RUN groupadd --system --gid 10001 api \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin api
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY pyproject.toml ./
COPY api ./api
COPY migrations ./migrations
COPY seed ./seed
# Bytecode compiled here: PYTHONDONTWRITEBYTECODE (and a read-only /app) would otherwise make
# every start compile api/ from source again (docs/benchmarks.md, "Start-up").
RUN python -m compileall -q api migrations \
    && mkdir -p /app/data && chown 10001:10001 /app/data
USER 10001:10001
# The SQLite database: mount a volume here (docker run -v cdmo-data:/app/data ...), or writes
# made through the API go with the container.
VOLUME ["/app/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/healthz', timeout=2)"]
# Migrate, load the seed dataset (idempotent), then serve on $PORT.
CMD ["sh", "-c", "python -m api.cli migrate && python -m api.cli seed && exec python -m api.cli serve"]
