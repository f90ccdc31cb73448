# The production image: granian (WSGI) serving the identity provider. DEBUG is off here, so the
# container refuses to start without SECRET_KEY, ALLOWED_HOSTS and its other secrets.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBUG=0 \
    IDP_DATA_DIR=/var/lib/idp \
    IDP_STATIC_ROOT=/app/staticfiles \
    GRANIAN_HOST=0.0.0.0 \
    GRANIAN_PORT=8000 \
    GRANIAN_WORKERS=2 \
    GRANIAN_BLOCKING_THREADS=4 \
    GRANIAN_BLOCKING_THREADS_IDLE_TIMEOUT=600 \
    GRANIAN_LOG_ACCESS_ENABLED=false

WORKDIR /app
# xmlsec1: pysaml2 signs and verifies SAML messages with this binary (clients.saml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends xmlsec1 \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings that load; these build-time values never reach a running container.
RUN SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput -v0 \
 && useradd --system --uid 10001 --home-dir /var/lib/idp --create-home idp

USER idp
EXPOSE 8000 50051
# Workers: one per core. Threads: a 235 ms password check holds one thread, not a worker; they are
# kept through pauses of up to 10 minutes (granian's longest; its default is 30 s), since a new
# thread opens its own database connection anew (bench/compare/RESULTS.md, step 14). Keep-alive
# connections (the gateway keeps 32 open) and Rust's HTTP parsing: bench/compare/RESULTS.md.
# No access log of its own by default: the gateway logs every request, and /metrics counts and
# times each by route and status; granian's line per request cost a quarter of introspection's
# throughput (bench/compare/RESULTS.md, step 6). GRANIAN_LOG_ACCESS_ENABLED=true turns it on.
CMD ["granian", "--interface", "wsgi", "--respawn-failed-workers", "idp.wsgi:application"]
