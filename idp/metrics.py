"""Prometheus metrics at /metrics: what the web processes counted, and the outbox relay's lag
and the dead letters.

The counts (requests, audit records, tokens...) are the web processes' own: all of granian's
workers' with PROMETHEUS_MULTIPROC_DIR (core.metrics). The lag and the dead letters are read
from the database at scrape time, not counted in memory: the relay runs in Celery workers and
the consumer, other processes than the one Prometheus scrapes, and every replica must report the
same numbers. The other process types serve their own counts on their own ports (core.metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from audit.models import DeadLetter
from audit.outbox import backoff
from audit.outbox.lag import outbox_lag
from core.metrics import bearer_token_allows, exposition_registry

log = logging.getLogger(__name__)


class OutboxCollector:
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("idp_events_metrics_up", "1 if the outbox figures below could be read")
        try:
            lag = outbox_lag()
            dead = list(DeadLetter.objects.values("consumer", "reason").annotate(n=Count("id")))
        except DatabaseError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        state = backoff.relay_state()
        yield GaugeMetricFamily(
            "idp_outbox_unsent_events", "Outbox events not yet acknowledged by Kafka", value=lag.unsent
        )
        yield GaugeMetricFamily(
            "idp_outbox_oldest_unsent_age_seconds",
            "Age of the oldest outbox event not yet acknowledged by Kafka (0 when none)",
            value=lag.oldest_age_seconds,
        )
        yield GaugeMetricFamily(
            "idp_outbox_failing_events", "Unsent outbox events that failed at least once", value=lag.failing
        )
        yield GaugeMetricFamily(
            "idp_outbox_relay_consecutive_failures",
            "Relay passes in a row that could not reach Kafka (0 when healthy)",
            value=state.failures,
        )
        yield GaugeMetricFamily(
            "idp_outbox_relay_last_success_timestamp_seconds",
            "When a relay pass last reached Kafka (Unix time; 0 if never since the cache was emptied)",
            value=state.last_success,
        )
        dead_letters = CounterMetricFamily(
            "idp_dead_letters",
            "Consumed messages sent to the dead-letter topic",
            labels=["consumer", "reason"],
        )
        for row in dead:
            dead_letters.add_metric([row["consumer"], row["reason"]], row["n"])
        yield dead_letters


# In multiprocess mode the process_* figures are left out: they would be one worker's only.
registry = exposition_registry(OutboxCollector())


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None if this request may read the metrics. With IDP_METRICS_TOKEN, the bearer token is
    required; without one, the metrics are open only if IDP_METRICS_PUBLIC (DEBUG by default):
    process figures and outbox lag are reconnaissance, so production starts closed."""
    token = settings.IDP_METRICS_TOKEN
    if token:
        if bearer_token_allows(request.headers.get("Authorization", ""), token):
            return None
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if settings.IDP_METRICS_PUBLIC:
        return None
    return HttpResponse(
        "metrics are closed: set IDP_METRICS_TOKEN (scrapers send Authorization: Bearer <token>) "
        "or IDP_METRICS_PUBLIC=1\n",
        status=403,
        content_type="text/plain",
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
