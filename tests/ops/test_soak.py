"""The soak with faults in its short mode (bench/soak/run.py --short, issue 16): the whole stack
on its own PostgreSQL, Redis and Kafka, under load while they restart and its processes are
killed. About three minutes; deselect with `-m "not soak"`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.soak,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        shutil.which("nginx") is None and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="the soak's gateway is Debian's nginx, which is not installed",
    ),
]


def test_short_soak_keeps_every_guarantee(tmp_path):
    # The soak starts its own stores: the suite's service addresses must not leak into it.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "DJANGO_SETTINGS_MODULE",
            "CELERY_BROKER_URL",  # a parallel worker's own broker (tests/worker_env.py)
            "IDP_REDIS_CHANNEL_PREFIX",
        )
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/soak/run.py"), "--short", "--out", str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    report_file = tmp_path / "report.json"
    assert report_file.exists(), done.stderr[-4000:]
    report = json.loads(report_file.read_text())
    broken = {name: value for name, value in report["must_be_zero"].items() if value != 0}
    assert broken == {}, (tmp_path / "report.md").read_text()
    assert report["append_only"]["refused"] == 4
    assert all(fault["at_s"] is not None for fault in report["faults"])  # every fault was injected
    assert report["events"]["outbox_rows"] > 0
    assert report["events"]["distinct_event_ids_on_kafka"] >= report["events"]["outbox_rows"]
    assert report["tokens"]["checked"] > 0
    assert done.returncode == 0, done.stderr[-4000:]
