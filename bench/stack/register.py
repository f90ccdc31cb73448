"""Registration requests for bench/stack/run.py's consumer: COUNT requests on this run's request
topic, then wait for COUNT results; prints how many came back. Run with the stack's environment."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

count = int(sys.argv[1])
bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
requests, results = (
    os.environ["KAFKA_TOPIC_REGISTRATION_REQUESTS"],
    os.environ["KAFKA_TOPIC_REGISTRATION_RESULTS"],
)
run = uuid.uuid4().hex[:8]
reader = Consumer(
    {"bootstrap.servers": bootstrap, "group.id": f"stack-reader-{run}", "auto.offset.reset": "earliest"}
)
reader.subscribe([results])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
for i in range(count):
    value = {"login": f"stack-{run}-{i}", "password": "Bench-stack-password-1", "correlationId": f"{run}-{i}"}
    producer.produce(requests, value=json.dumps(value).encode())
producer.flush(30)
seen: set[str] = set()
deadline = time.monotonic() + 60 + count * 2
while len(seen) < count and time.monotonic() < deadline:
    message = reader.poll(0.2)
    if message is None or message.error():
        continue
    correlation = dict(message.headers() or []).get("correlation_id", b"").decode()
    if correlation.startswith(run):
        seen.add(correlation)
reader.close()
print(len(seen))
