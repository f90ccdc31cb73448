"""Registration by event (seed 004, option 2): request in, user + result out, never twice, never lost."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from confluent_kafka import Producer
from django.conf import settings

from accounts import registration
from accounts.consumers import RegistrationRequestHandler
from accounts.models import Role, User
from audit import consumer, consumer_runner
from audit.models import AuditLog, DeadLetter, OutboxEvent, ProcessedMessage
from audit.registry import EventType
from authproto.registration_events_pb2 import UserRegisterRequestedEvent
from tests import events

PASSWORD = "Zebra-Kettle-Quartz-41"  # distinctive, so a leak anywhere is found


@pytest.fixture
def topics(settings) -> events.Topics:
    return events.fresh_topics(settings)


def request(value: bytes | None, offset: int = 0, **headers: str) -> consumer.Message:
    return consumer.Message(
        topic=settings.KAFKA_TOPIC_REGISTRATION_REQUESTS, value=value, offset=offset, headers=headers
    )


def as_json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def handle(message: consumer.Message) -> consumer.Outcome:
    return consumer.process(RegistrationRequestHandler(), message)


def results() -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(topic=settings.KAFKA_TOPIC_REGISTRATION_RESULTS).order_by("created_at")
    )


def counts() -> tuple[int, int, int]:
    return User.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count()


pytestmark = pytest.mark.django_db


def test_a_json_request_registers_an_individual_account_and_answers_with_the_correlation_id():
    outcome = handle(request(as_json(login="ivan", password=PASSWORD, correlationId="session-1")))

    user = User.objects.get(username="ivan")
    assert outcome.status == "handled"
    assert outcome.detail == {"userId": str(user.id)}
    assert (user.role, user.organisation, user.status) == (Role.CLIENT_USER, None, User.Status.ACTIVE)
    assert user.check_password(PASSWORD)
    assert user.password.startswith("bcrypt_sha256$")  # salted bcrypt, through create_user
    (result,) = results()
    assert result.type == EventType.USER_REGISTERED
    assert result.payload == {"userId": str(user.id), "correlationId": "session-1"}
    assert result.headers == {"correlation_id": "session-1"}
    assert result.key == "session-1"
    events.assert_valid("user.registered", result.payload)
    # The same path as every other creation: audit record and user.created.
    assert AuditLog.objects.filter(action="user.created", target_id=str(user.id)).exists()
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED, key=str(user.id)).exists()


def test_the_correlation_id_may_come_in_a_header():
    handle(request(as_json(login="ivan", password=PASSWORD), correlation_id="session-2"))
    (result,) = results()
    assert result.payload["correlationId"] == "session-2"
    assert result.headers == {"correlation_id": "session-2"}


def test_the_seeds_protobuf_message_is_accepted():
    value = UserRegisterRequestedEvent(login="petr", password=PASSWORD, correlation_id="session-3")
    outcome = handle(request(value.SerializeToString(), **{"content-type": "application/x-protobuf"}))

    assert outcome.status == "handled"
    assert User.objects.get(username="petr").check_password(PASSWORD)
    assert results()[0].payload["correlationId"] == "session-3"


def test_the_seeds_message_without_a_correlation_id_still_registers():
    value = UserRegisterRequestedEvent(login="petr", password=PASSWORD).SerializeToString()
    handle(request(value, **{"content-type": "application/x-protobuf"}))
    (result,) = results()
    user = User.objects.get(username="petr")
    assert result.payload == {"userId": str(user.id), "correlationId": None}
    assert result.key == str(user.id)
    assert result.headers == {}


def test_the_same_request_delivered_twice_creates_one_user_and_one_answer():
    value = as_json(login="ivan", password=PASSWORD, correlationId="session-1")
    first = handle(request(value, offset=1))
    before = counts()

    again = handle(request(value, offset=2))  # a second copy on the topic: another offset

    assert (first.status, again.status) == ("handled", "duplicate")
    assert again.detail == first.detail  # the same outcome, not "login taken"
    assert counts() == before
    assert len(results()) == 1


def test_a_redelivered_event_id_is_a_duplicate_even_with_other_content():
    handle(request(as_json(login="ivan", password=PASSWORD), ce_id="req-1"))
    again = handle(request(as_json(login="ivan2", password=PASSWORD), ce_id="req-1"))
    assert again.status == "duplicate"
    assert not User.objects.filter(username="ivan2").exists()


def test_a_taken_login_yields_a_failure_event_and_no_user(acme):
    handle(request(as_json(login="ivan", password=PASSWORD, correlationId="first")))
    before_users = User.objects.count()
    before_audit = AuditLog.objects.count()

    outcome = handle(request(as_json(login="IVAN", password="Another-Long-Pass-99", correlationId="second")))

    assert outcome.detail == {"error": "login_taken"}
    assert User.objects.count() == before_users
    assert AuditLog.objects.count() == before_audit
    failure = results()[-1]
    assert failure.type == EventType.USER_REGISTRATION_FAILED
    assert failure.payload == {
        "error": "login_taken",
        "message": "this login is taken",
        "correlationId": "second",
    }
    assert failure.headers == {"correlation_id": "second"}
    events.assert_valid("user.registrationFailed", failure.payload)
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED).count() == 1


def test_a_login_used_inside_a_b2b_client_is_free_for_an_individual_account(acme):
    User.objects.create_user("ivan", "x-long-password", organisation=acme)
    assert handle(request(as_json(login="ivan", password=PASSWORD))).status == "handled"
    assert User.objects.filter(username="ivan").count() == 2


@pytest.mark.parametrize(
    ("login", "password", "error"),
    [
        ("ivan", "12345", "weak_password"),
        ("ivan", "password123", "weak_password"),
        ("x" * 151, PASSWORD, "invalid_login"),
    ],
)
def test_a_refused_request_writes_only_its_failure_event(login, password, error):
    before = counts()

    outcome = handle(request(as_json(login=login, password=password, correlationId="session-9")))

    assert outcome.detail == {"error": error}
    assert counts() == (before[0], before[1], before[2] + 1)  # the failure result, nothing else
    (failure,) = results()
    assert failure.payload["error"] == error
    assert password not in failure.payload["message"]
    events.assert_valid("user.registrationFailed", failure.payload)


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"\xff\xfe\x00garbage", {}, "not_utf8"),
        (b"{not json", {}, "not_json"),
        (b'["ivan"]', {}, "not_an_object"),
        (None, {}, "empty"),
        (as_json(login="ivan"), {}, "missing_password"),
        (as_json(password=PASSWORD), {}, "missing_login"),
        (as_json(login="ivan", password=12345678901), {}, "bad_field"),
        (as_json(login="ivan", password=PASSWORD, correlationId="has spaces"), {}, "bad_correlation_id"),
        (b"\x0a\xff\xff\xff", {"content-type": "application/x-protobuf"}, "not_protobuf"),
        (b"x" * (registration.MAX_REQUEST_BYTES + 1), {}, "too_large"),
    ],
)
def test_an_unreadable_request_is_dead_lettered_and_creates_nothing(value, headers, reason):
    outcome = handle(request(value, **headers))

    assert outcome.status == "dead_lettered"
    assert outcome.detail["reason"] == reason
    assert not User.objects.exists()
    assert not AuditLog.objects.exists()
    assert DeadLetter.objects.get().reason == reason
    assert OutboxEvent.objects.get().type == EventType.MESSAGE_DEAD_LETTERED  # and no result: no one to tell


def test_an_unreadable_request_with_a_correlation_id_is_also_answered():
    outcome = handle(request(b"\xff garbage", correlation_id="session-7"))

    assert outcome.detail == {"deadLettered": True, "reason": "not_utf8", "error": "malformed"}
    (failure,) = results()
    assert failure.payload == {
        "error": "malformed",
        "message": "not_utf8: the value is not UTF-8 text",
        "correlationId": "session-7",
    }
    assert OutboxEvent.objects.filter(topic=settings.KAFKA_TOPIC_DEAD_LETTER).count() == 1


def test_a_dead_letter_keeps_the_request_with_its_password_masked():
    handle(
        request(as_json(login=["ivan"], password=PASSWORD, nested={"Password": PASSWORD}, correlationId="s"))
    )

    letter = DeadLetter.objects.get()
    assert letter.value_kept
    assert json.loads(letter.value) == {
        "login": ["ivan"],
        "password": "***",
        "nested": {"Password": "***"},
        "correlationId": "s",
    }
    payload = OutboxEvent.objects.get(type=EventType.MESSAGE_DEAD_LETTERED).payload
    assert json.loads(payload["value"])["password"] == "***"


def test_protobuf_dead_letters_are_masked_too():
    value = UserRegisterRequestedEvent(login="", password=PASSWORD, correlation_id="s").SerializeToString()
    handle(request(value, **{"content-type": "application/x-protobuf"}))
    kept = DeadLetter.objects.get()
    assert PASSWORD not in kept.value
    assert UserRegisterRequestedEvent.FromString(kept.value.encode()).password == "***"


def test_the_password_is_never_logged_or_stored_outside_its_hash(caplog, acme):
    messages = [
        request(as_json(login="ivan", password=PASSWORD, correlationId="a")),
        request(as_json(login="ivan", password=PASSWORD, correlationId="b")),  # login taken
        request(as_json(login="solo", password=PASSWORD[:4], correlationId="c")),  # weak
        request(as_json(login=7, password=PASSWORD, correlationId="d")),  # malformed
        request(b'{"login": "x", "password": "' + PASSWORD.encode() + b'", oops', correlation_id="e"),
    ]
    with caplog.at_level(logging.DEBUG):
        for message in messages:
            handle(message)

    stored = json.dumps(
        [
            list(OutboxEvent.objects.values("payload", "headers", "key", "subject")),
            list(AuditLog.objects.values("details", "target_label")),
            list(ProcessedMessage.objects.values("message_id", "outcome")),
            list(DeadLetter.objects.values("value", "detail", "headers", "value_digest")),
            [repr(registration.parse_request(messages[0].value, {}))],
        ]
    )
    for secret in (PASSWORD, PASSWORD[:4] + '"'):
        assert secret not in stored
        assert secret not in caplog.text
    assert User.objects.get(username="ivan").password.startswith("bcrypt_sha256$")


# --- against the broker ---------------------------------------------------------------------------


@pytest.mark.needs("postgresql", "kafka")
def test_registration_requests_on_kafka_get_their_answers_on_kafka(topics):
    producer = Producer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    valid = as_json(login="ivan", password=PASSWORD, correlationId="session-a")
    sent = [
        (valid, []),
        (valid, []),  # delivered twice
        (as_json(login="ivan", password="Other-Long-Pass-77", correlationId="session-b"), []),  # taken
        (b"\xff\x01 not a request", [("correlation_id", b"session-c")]),  # garbage
        (
            UserRegisterRequestedEvent(login="petr", password=PASSWORD).SerializeToString(),
            [("content-type", b"application/x-protobuf"), ("correlation_id", b"session-d")],
        ),
    ]
    for value, headers in sent:
        producer.produce(topics.requests, value=value, headers=headers)
    assert producer.flush(10) == 0

    stats = consumer_runner.EventConsumer(
        [RegistrationRequestHandler()], group_id=f"test-{uuid.uuid4().hex[:8]}", poll_timeout=0.2
    ).run(max_messages=len(sent), idle_timeout=45)

    assert (stats.handled, stats.duplicates, stats.dead_lettered) == (3, 1, 1)
    answers = events.read_topic(topics.results, expect=4)
    by_session = {r.headers["correlation_id"]: r for r in answers}
    assert sorted(by_session) == ["session-a", "session-b", "session-c", "session-d"]
    assert len(answers) == 4  # one per request, none for the duplicate
    ivan, petr = User.objects.get(username="ivan"), User.objects.get(username="petr")
    assert by_session["session-a"].type == "user.registered"
    assert by_session["session-a"].data == {"userId": str(ivan.id), "correlationId": "session-a"}
    assert by_session["session-b"].data["error"] == "login_taken"
    assert by_session["session-c"].data["error"] == "malformed"
    assert by_session["session-d"].data == {"userId": str(petr.id), "correlationId": "session-d"}
    for record in answers:
        events.assert_valid(record.type, record.data)
    (letter,) = events.read_topic(topics.dead_letter, expect=1)
    assert letter.data["reason"] == "not_utf8"
    assert letter.data["source"]["topic"] == topics.requests
    assert User.objects.filter(username__in=["ivan", "petr"]).count() == 2
