# syntax=docker/dockerfile:1
# Build: docker build -t kap-outcomes .        (a whole deployment: compose.yaml, docs/deployment.md)
# Migrate (a separate step, once per release):  docker run --rm -e KAP_DATABASE_URL=... kap-outcomes db upgrade
# Serve:                                         docker run -p 8000:8000 -e KAP_DATABASE_URL=... \
#                                                  -e KAP_SIGNING_KEY="$(openssl rand -base64 48)" \
#                                                  -e KAP_PUBLIC_BASE_URL=https://outcomes.example.org kap-outcomes
# The image runs with KAP_ENVIRONMENT=production: it refuses to start without a real signing key
# or while KAP_PUBLIC_BASE_URL is the default (every link it emits is built from it).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    KAP_ENVIRONMENT=production
RUN groupadd --system kap && useradd --system --gid kap --home-dir /data kap \
    && mkdir -p /data && chown kap:kap /data
COPY --from=build /opt/venv /opt/venv
USER kap
WORKDIR /data
# The SQLite default (./kap-outcomes.db, i.e. /data/kap-outcomes.db) outlives the container;
# with PostgreSQL (KAP_DATABASE_URL) nothing is written here.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
ENTRYPOINT ["kap-outcomes"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
