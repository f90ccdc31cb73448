"""Registration by event, end to end: requests per second from request in to result event out.

Compares three rates on this machine, with the production hasher (bcrypt_sha256, 12 rounds):

1. bare hash: `make_password` alone, in one process and in one process per core;
2. service: `consume_events`' handler called in-process (parse, create_user, audit, outbox), no Kafka;
3. end to end: N requests on Kafka, K `manage.py consume_events` processes (K partitions), the
   time from the first request produced to the last `user.registered` read back.

Wall-clock rates suffer from anything else running on the machine, so each is also given as CPU
seconds per operation (the consumers' own CPU, read from /proc), which does not: the share of a
registration's CPU that is the hash is the figure that says "dominated by the hash".

Needs PostgreSQL and Kafka (`eval "$(scripts/services start)"`); creates users named
bench-<run>-<n> in that database and topics named bench.<run>.*. Usage:

    .venv/bin/python bench/registration/run.py [--requests 80] [--consumers 1 2] [--hashes 16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

PASSWORD = "Bench-Password-For-Registration-42"


def _setup_django() -> None:
    import django

    django.setup()


def _hash_batch(n: int) -> tuple[float, float]:
    """(wall, cpu) seconds for n hashes."""
    _setup_django()
    from django.contrib.auth.hashers import make_password

    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        make_password(PASSWORD)
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_hash_rates(n: int, repeats: int = 3) -> dict[str, Any]:
    from django.contrib.auth.hashers import get_hasher

    hasher = get_hasher()
    runs = [_hash_batch(n) for _ in range(repeats)]
    cores = os.cpu_count() or 1
    parallel = 0.0
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        pool.map(_hash_batch, [1] * cores)  # warm: imports, django.setup()
        for _ in range(repeats):
            started = time.perf_counter()
            pool.map(_hash_batch, [n] * cores)
            parallel = max(parallel, n * cores / (time.perf_counter() - started))
    return {
        "hasher": f"{hasher.algorithm} (rounds={hasher.rounds})",
        "one_process": max(n / wall for wall, _ in runs),  # best of `repeats`
        "all_cores": parallel,
        "cpu_seconds": min(cpu for _, cpu in runs) / n,
    }


def _cpu_seconds(pid: int) -> float:
    # /proc/<pid>/stat: utime and stime are fields 14 and 15, in clock ticks.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_rate(n: int, run: str) -> dict[str, float]:
    """The handler in-process: what a consumer does per message, minus Kafka."""
    from accounts.consumers import RegistrationRequestHandler
    from audit import consumer
    from audit.outbox import kick

    handler = RegistrationRequestHandler()
    messages = [
        consumer.Message(
            topic="bench",
            offset=i,
            value=json.dumps(
                {"login": f"bench-{run}-svc-{i}", "password": PASSWORD, "correlationId": f"{run}-svc-{i}"}
            ).encode(),
        )
        for i in range(n)
    ]
    with kick.relaying_inline():
        consumer.process(handler, messages[0])  # warm
        wall, cpu = time.perf_counter(), time.process_time()
        for message in messages[1:]:
            assert consumer.process(handler, message).status == "handled"
    return {
        "per_second": (n - 1) / (time.perf_counter() - wall),
        "cpu_seconds": (time.process_time() - cpu) / (n - 1),
    }


def end_to_end(requests: int, consumers: int, run: str) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    prefix = f"bench.{run}.k{consumers}"
    topics = {
        "KAFKA_TOPIC_USER_EVENTS": f"{prefix}.users",
        "KAFKA_TOPIC_AUDIT": f"{prefix}.audit",
        "KAFKA_TOPIC_REGISTRATION_REQUESTS": f"{prefix}.requests",
        "KAFKA_TOPIC_REGISTRATION_RESULTS": f"{prefix}.results",
        "KAFKA_TOPIC_DEAD_LETTER": f"{prefix}.dlq",
    }
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [
            NewTopic(
                topics["KAFKA_TOPIC_REGISTRATION_REQUESTS"], num_partitions=consumers, replication_factor=1
            )
        ]
    ).values():
        future.result(30)

    env = {**os.environ, **topics}
    group = f"bench-{run}-k{consumers}"
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "consume_events", "--group", group],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(consumers)
    ]
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{group}-reader", "auto.offset.reset": "earliest"}
    )
    reader.subscribe([topics["KAFKA_TOPIC_REGISTRATION_RESULTS"]])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    arrived: dict[str, float] = {}

    def send(tag: str, count: int) -> dict[str, float]:
        sent: dict[str, float] = {}
        for i in range(count):
            correlation = f"{run}-{tag}-{i}"
            value = {
                "login": f"bench-{run}-k{consumers}-{tag}-{i}",
                "password": PASSWORD,
                "correlationId": correlation,
            }
            producer.produce(
                topics["KAFKA_TOPIC_REGISTRATION_REQUESTS"],
                value=json.dumps(value).encode(),
                partition=i % consumers,
            )
            sent[correlation] = time.perf_counter()
        producer.flush(30)
        return sent

    def wait_for(wanted: dict[str, float], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not wanted.keys() <= arrived.keys():
            if time.monotonic() > deadline:
                missing = len(wanted.keys() - arrived.keys())
                raise SystemExit(f"{missing} result(s) missing after {timeout}s")
            message = reader.poll(0.1)
            if message is None or message.error():
                continue
            headers = dict(message.headers() or [])
            assert headers.get("ce_type") == b"user.registered", (headers, message.value())
            arrived[headers["correlation_id"].decode()] = time.perf_counter()

    try:
        # Warm-up: every consumer has joined the group and answered once.
        wait_for(send("warm", consumers), timeout=120)
        cpu_before = sum(_cpu_seconds(proc.pid) for proc in procs)
        sent = send("timed", requests)
        wait_for(sent, timeout=requests * 2 + 60)
        cpu = sum(_cpu_seconds(proc.pid) for proc in procs) - cpu_before
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        reader.close()
    first_sent = min(sent.values())
    last_result = max(arrived[c] for c in sent)
    latencies = sorted(arrived[c] - sent[c] for c in sent)
    return {
        "consumers": consumers,
        "requests": requests,
        "seconds": last_result - first_sent,
        "per_second": requests / (last_result - first_sent),
        "first_result_s": min(arrived[c] for c in sent) - first_sent,
        "latency_p50_s": statistics.median(latencies),
        "consumer_cpu_seconds": cpu / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=80)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hashes", type=int, default=16)
    args = parser.parse_args()
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or not os.environ.get("DATABASE_URL", "").startswith(
        "postgres"
    ):
        raise SystemExit('needs PostgreSQL and Kafka: eval "$(scripts/services start)"')

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    _setup_django()
    run = uuid.uuid4().hex[:8]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, run {run}")
    # Another busy process on a 2-core machine halves every figure: say so in the record.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    hashes = bare_hash_rates(args.hashes)
    hash_cpu = hashes["cpu_seconds"]
    print(
        f"bare hash ({hashes['hasher']}): {hashes['one_process']:.2f}/s in one process, "
        f"{hashes['all_cores']:.2f}/s on all {os.cpu_count()} cores; {hash_cpu * 1000:.0f} ms CPU each"
    )
    service = service_rate(args.hashes, run)
    print(
        "service in-process (parse, create_user, audit, outbox), one process: "
        f"{service['per_second']:.2f}/s; {service['cpu_seconds'] * 1000:.0f} ms CPU each, "
        f"{hash_cpu / service['cpu_seconds']:.0%} of it the hash"
    )
    results = []
    for consumers in args.consumers:
        result = end_to_end(args.requests, consumers, run)
        results.append(result)
        share = result["per_second"] / (hashes["one_process"] * min(consumers, os.cpu_count() or 1))
        print(
            f"end to end, {consumers} consumer(s) / {consumers} partition(s): {result['requests']} "
            f"requests in {result['seconds']:.1f}s = {result['per_second']:.2f}/s ({share:.0%} of the "
            f"one-process hash rate times {consumers}); first result after {result['first_result_s']:.2f}s; "
            f"{result['consumer_cpu_seconds'] * 1000:.0f} ms consumer CPU per registration, "
            f"{hash_cpu / result['consumer_cpu_seconds']:.0%} of it the hash"
        )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(json.dumps({"run": run, "hash": hashes, "service": service, "end_to_end": results}))


if __name__ == "__main__":
    main()
