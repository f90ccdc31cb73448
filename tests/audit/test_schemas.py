"""The JSON Schemas in audit/schemas are the contract: one per event type, valid, in step with the code."""

from __future__ import annotations

import json

import jsonschema
import pytest

from accounts import registration
from accounts.events import user_payload
from accounts.models import Role, User
from audit.models import OutboxEvent
from audit.registry import EventType
from tests import events


def test_every_event_type_has_a_schema_and_every_schema_an_event_type():
    files = {path.stem for path in events.SCHEMAS.glob("*.json")}
    assert files == set(EventType.values)


@pytest.mark.parametrize("event_type", EventType.values)
def test_each_schema_is_a_valid_draft_2020_12_schema(event_type):
    schema = events.schema(event_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:idp:events:{event_type}"
    assert schema["additionalProperties"] is False


USER_LIFE_CYCLE = [
    t
    for t in EventType.values
    if t.startswith("user.") and t not in {EventType.USER_REGISTERED, EventType.USER_REGISTRATION_FAILED}
]


@pytest.mark.parametrize("event_type", USER_LIFE_CYCLE)
def test_user_schemas_know_every_role_and_status(event_type):
    properties = events.schema(event_type)["properties"]
    assert properties["role"]["enum"] == Role.values
    assert properties["status"]["enum"] == User.Status.values


def test_the_failure_codes_are_the_ones_the_code_sends():
    codes = {value for name, value in vars(registration.ErrorCode).items() if name.isupper()}
    assert set(events.schema("user.registrationFailed")["properties"]["error"]["enum"]) == codes


@pytest.mark.django_db
def test_a_user_payload_fits_the_user_schemas(acme):
    payload = user_payload(
        User.objects.create_user("ivan", "x-long-password", email="i@acme.example", organisation=acme)
    )
    events.assert_valid("user.created", payload)
    events.assert_valid("user.blocked", {**payload, "reason": "fraud"})
    events.assert_valid("user.locked", {**payload, "lockCount": 1, "permanent": True, "lockedUntil": None})
    events.assert_valid("user.updated", {**payload, "changedFields": ["email"]})


@pytest.mark.django_db
def test_every_event_the_services_publish_fits_its_schema(operator, acme, settings):
    """Drive each producer of user events and check everything it put in the outbox."""
    from accounts import lockout, services

    settings.IDP_LOCKOUT_THRESHOLD = 1
    user = services.create_user(
        actor=operator, username="ivan", password="a-long-enough-pass", organisation=acme
    )
    services.update_user(actor=operator, user=user, changes={"email": "ivan@acme.example"})
    services.block_user(actor=operator, user=user, reason="fraud")
    services.unblock_user(actor=operator, user=user, reason="cleared")
    services.change_role(actor=operator, user=user, role=Role.CLIENT_ADMIN, reason="promoted")
    assert lockout.record_failure(user)
    lockout.unlock_user(actor=operator, user=user, reason="called the help desk")

    published = {event.type: event.payload for event in OutboxEvent.objects.all()}
    assert set(published) >= {
        "user.created",
        "user.updated",
        "user.blocked",
        "user.unblocked",
        "user.roleChanged",
        "user.locked",
        "user.unlocked",
        "audit.recorded",
    }
    for event in OutboxEvent.objects.all():
        events.assert_valid(event.type, event.payload)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("user.registered", {"userId": "not-a-uuid", "correlationId": "c"}),
        ("user.registered", {"userId": "9f1c3f4e-0d7a-4b8e-9a51-3c1f0e2b7d64"}),
        ("user.registrationFailed", {"error": "oops", "message": "", "correlationId": None}),
        ("user.created", {"userId": "9f1c3f4e-0d7a-4b8e-9a51-3c1f0e2b7d64", "password": "x"}),
    ],
)
def test_payloads_that_break_the_contract_are_refused(event_type, payload):
    with pytest.raises(jsonschema.ValidationError):
        events.assert_valid(event_type, payload)


def test_schema_files_are_formatted_json():
    for path in events.SCHEMAS.glob("*.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", path.name
