# The production image: gunicorn serving the identity provider. DEBUG is off here, so the
# container refuses to start without SECRET_KEY, ALLOWED_HOSTS and its other secrets.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBUG=0 \
    IDP_DATA_DIR=/var/lib/idp \
    IDP_STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings that load; these build-time values never reach a running container.
RUN SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput -v0 \
 && useradd --system --uid 10001 --home-dir /var/lib/idp --create-home idp

USER idp
EXPOSE 8000 50051
CMD ["gunicorn", "idp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
