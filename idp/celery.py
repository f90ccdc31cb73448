import os
import time
from contextlib import ExitStack
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_init
from django.conf import settings
from prometheus_client import Counter, Histogram

from core import context
from core.metrics import DURATION_BUCKETS, start_process_exporter
from idp import worker_steps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
# Celery's Django fixup runs every system check when a worker or beat starts, the URL checks
# among them, which import the URLconf and every view (the SAML and SCIM libraries with them).
# The checks run where they belong: `manage.py migrate` before any process starts, and CI.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("idp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
worker_steps.install(app)  # --beat-thread, --consume-events

# --- Observability: every task runs under a request id, is counted and timed; the worker exports.

TASKS = Counter("idp_celery_tasks", "Celery tasks run, by task name and final state", ["task", "state"])
TASK_DURATION = Histogram(
    "idp_celery_task_duration_seconds", "Time a task ran, by task name", ["task"], buckets=DURATION_BUCKETS
)
# The request id of whoever queued the task travels as a message header: the task's log lines and
# audit records carry it, as the request's own do.
REQUEST_ID_HEADER = "idp_request_id"
_running: dict[str, tuple[ExitStack, float]] = {}


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = context.current().request_id
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def _bind_request_id(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    stack = ExitStack()
    # An eager task (no broker) runs inside the request that asked for it: it keeps its context.
    if task is not None and not task.request.is_eager:
        request_id = context.request_id(str(task.request.get(REQUEST_ID_HEADER) or ""))
        stack.enter_context(context.bind(context.RequestContext(request_id=request_id, user_agent="celery")))
    _running[task_id] = (stack, time.perf_counter())


@task_postrun.connect
def _unbind_request_id(task_id: str = "", task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    stack, started = _running.pop(task_id, (None, 0.0))
    if stack is None:
        return
    stack.close()
    name = getattr(task, "name", None) or "unknown"
    TASKS.labels(name, state or "UNKNOWN").inc()
    TASK_DURATION.labels(name).observe(time.perf_counter() - started)


exporter = None


@worker_init.connect
def _start_metrics_exporter(**kwargs: Any) -> None:
    """In the worker's main process, before its pool starts: with a prefork pool, the children's
    counts reach it through PROMETHEUS_MULTIPROC_DIR only (core.metrics)."""
    global exporter
    # Here, not above: every process imports this module (idp/__init__.py), the gRPC supervisor
    # before it has made PROMETHEUS_MULTIPROC_DIR, and audit.metrics makes metrics on import.
    from audit.metrics import consumer_lag

    # The consumer group's lag, when this worker runs the consumer too (--consume-events).
    exporter = start_process_exporter(settings.IDP_METRICS_PORT_WORKER, collectors=[consumer_lag])
