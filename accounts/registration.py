"""Registration by event (seed 004, option 2): a request comes in on Kafka, a result goes out.

The request is the seed's `UserRegisterRequestedEvent` (proto/registration_events.proto) as
binary protobuf (header `content-type: application/x-protobuf`) or as its proto3 JSON mapping
`{"login", "password", "correlationId"}`; the correlation id may instead come in a
`correlation_id` header. The user is created by `accounts.services.create_user`, the one path
every other way of creating a user takes (salted bcrypt, audit record, `user.created`). The
result, `user.registered` or `user.registrationFailed` with a machine-readable `error`, is
written to the outbox in the same transaction and echoes the correlation id, so the facade
that asked can tell its own request's outcome.

The password is only ever held in `RegistrationRequest.password` (hidden from its repr) on its
way to the hasher: never logged, never put in an outcome, a dead letter or an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import translation
from google.protobuf.message import DecodeError

from accounts import services
from accounts.models import Role, User
from audit import envelope
from audit import services as audit
from audit.registry import EventType
from authproto.registration_events_pb2 import UserRegisterRequestedEvent
from core.bounded_json import MAX_JSON_DEPTH, json_depth_exceeds

MAX_REQUEST_BYTES = 16 * 1024
MAX_CORRELATION_ID = 128
_CORRELATION_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
_PROTOBUF_TYPES = {envelope.PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"}
_REDACTED = "***"
_SECRET_WORDS = ("pass", "secret", "token")


class ErrorCode:
    """The `error` values of `user.registrationFailed` (a contract: append, never rename)."""

    LOGIN_TAKEN = "login_taken"
    INVALID_LOGIN = "invalid_login"
    WEAK_PASSWORD = "weak_password"
    MALFORMED = "malformed"
    INTERNAL_ERROR = "internal_error"


class InvalidRequest(Exception):  # noqa: N818 - it names the request, not the failure
    """The message is not a registration request we can read."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RegistrationRequest:
    login: str
    password: str = field(repr=False)
    correlation_id: str = ""


def _content_type(headers: Mapping[str, str]) -> str:
    raw = headers.get("content-type") or headers.get("ce_datacontenttype") or envelope.JSON
    return raw.split(";", 1)[0].strip().lower()


def _valid_correlation_id(value: str, *, source: str) -> str:
    if value and not _CORRELATION_ID.match(value):
        raise InvalidRequest(
            "bad_correlation_id", f"{source} must be 1-{MAX_CORRELATION_ID} printable ASCII characters"
        )
    return value


def _parse_json(value: bytes) -> dict[str, Any]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("not_utf8", "the value is not UTF-8 text") from None
    # Python's parser recurses per level: a message of `[[[[…` must be refused, not crash the loop.
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise InvalidRequest("not_json", f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only: the message text could quote the password.
        raise InvalidRequest("not_json", f"not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(document, dict):
        raise InvalidRequest("not_an_object", f"expected a JSON object, got {type(document).__name__}")
    return document


def _json_fields(document: dict[str, Any]) -> tuple[Any, Any, Any]:
    # The proto3 JSON mapping: the lowerCamelCase name or the proto field name; null or absent
    # is the field's default, "".
    def get(*names: str) -> Any:
        values = [document[name] for name in names if document.get(name) is not None]
        return values[0] if values else ""

    return get("login"), get("password"), get("correlationId", "correlation_id")


def parse_request(value: bytes | None, headers: Mapping[str, str]) -> RegistrationRequest:
    """The request in a message, or InvalidRequest with a reason code (no secret in the detail)."""
    if not value:
        raise InvalidRequest("empty", "the message has no value")
    if len(value) > MAX_REQUEST_BYTES:
        raise InvalidRequest("too_large", f"{len(value)} bytes, at most {MAX_REQUEST_BYTES}")
    if _content_type(headers) in _PROTOBUF_TYPES:
        try:
            message = UserRegisterRequestedEvent.FromString(value)
        except DecodeError:
            raise InvalidRequest("not_protobuf", "not a UserRegisterRequestedEvent") from None
        login, password, correlation = message.login, message.password, message.correlation_id
    else:
        login, password, correlation = _json_fields(_parse_json(value))
    for name, field_value in (("login", login), ("password", password), ("correlationId", correlation)):
        if not isinstance(field_value, str):
            raise InvalidRequest("bad_field", f"{name} must be a string")
    if not login.strip():
        raise InvalidRequest("missing_login", "login is required")
    if not password:
        raise InvalidRequest("missing_password", "password is required")
    correlation = _valid_correlation_id(correlation, source="correlationId") or _valid_correlation_id(
        headers.get(envelope.CORRELATION_ID, ""), source="the correlation_id header"
    )
    return RegistrationRequest(login=login, password=password, correlation_id=correlation)


def correlation_id_of(value: bytes | None, headers: Mapping[str, str]) -> str:
    """Best effort, for a request that failed to parse: whom to tell that it failed."""
    candidates = [headers.get(envelope.CORRELATION_ID, "")]
    if value and len(value) <= MAX_REQUEST_BYTES:
        try:
            if _content_type(headers) in _PROTOBUF_TYPES:
                candidates.insert(0, UserRegisterRequestedEvent.FromString(value).correlation_id)
            else:
                candidates.insert(0, _json_fields(_parse_json(value))[2])
        except (InvalidRequest, DecodeError):
            pass
    for candidate in candidates:
        if isinstance(candidate, str) and _CORRELATION_ID.match(candidate):
            return candidate
    return ""


def redact_request(value: bytes | None, headers: Mapping[str, str]) -> bytes | None:
    """The message with its password masked, for a dead letter; None when it cannot be parsed
    (then nobody can tell where a password might be, so none of it is kept)."""
    if not value or len(value) > MAX_REQUEST_BYTES:
        return None
    try:
        if _content_type(headers) in _PROTOBUF_TYPES:
            message = UserRegisterRequestedEvent.FromString(value)
            if message.password:
                message.password = _REDACTED
            return message.SerializeToString()
        document = _parse_json(value)
    except (InvalidRequest, DecodeError):
        return None
    return json.dumps(_mask_secrets(document), ensure_ascii=False).encode()


def _mask_secrets(value: Any) -> Any:
    # Any key that looks like a secret, at any depth: a sender may nest or misspell things.
    if isinstance(value, dict):
        return {
            key: _REDACTED if any(word in str(key).lower() for word in _SECRET_WORDS) else _mask_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_secrets(item) for item in value]
    return value


# --- the outcome --------------------------------------------------------------------------------


def _classify(error: ValidationError) -> tuple[str, str]:
    """A create_user refusal as (error code, message); the messages never contain the password."""
    # The message goes out in the result event: English, whatever language may be active.
    with translation.override(None):
        return _classified(error)


def _classified(error: ValidationError) -> tuple[str, str]:
    if hasattr(error, "error_dict"):
        login_errors = error.error_dict.get("username", [])
        codes = {item.code for item in login_errors}
        if "login_taken" in codes:
            return ErrorCode.LOGIN_TAKEN, "this login is taken"
        if login_errors:
            return ErrorCode.INVALID_LOGIN, "; ".join(item.messages[0] for item in login_errors)
        return ErrorCode.MALFORMED, "; ".join(error.messages)
    # validate_password raises a plain list: one entry per rule the password breaks.
    return ErrorCode.WEAK_PASSWORD, " ".join(error.messages)


def result_key(*, correlation_id: str, fallback: str) -> str:
    # Results are keyed by the facade's correlation id: one request's answers stay together.
    return correlation_id or fallback


def publish_failure(*, code: str, message: str, correlation_id: str, fallback_key: str) -> None:
    audit.publish(
        EventType.USER_REGISTRATION_FAILED,
        topic=settings.KAFKA_TOPIC_REGISTRATION_RESULTS,
        key=result_key(correlation_id=correlation_id, fallback=fallback_key),
        subject=correlation_id or fallback_key,
        payload={"error": code, "message": message[:500], "correlationId": correlation_id or None},
        headers={envelope.CORRELATION_ID: correlation_id} if correlation_id else None,
    )


@dataclass(frozen=True)
class RegistrationOutcome:
    user: User | None
    error: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.user is not None:
            return {"userId": str(self.user.id)}
        return {"error": self.error}


@transaction.atomic
def register_requested_user(*, request: RegistrationRequest, request_id: str) -> RegistrationOutcome:
    """Create the individual account a facade asked for and queue the answer for it."""
    try:
        user = services.create_user(
            actor=None, username=request.login, password=request.password, role=Role.CLIENT_USER
        )
    except ValidationError as exc:
        code, message = _classify(exc)
        publish_failure(
            code=code, message=message, correlation_id=request.correlation_id, fallback_key=request_id
        )
        return RegistrationOutcome(user=None, error=code, message=message)
    audit.publish(
        EventType.USER_REGISTERED,
        topic=settings.KAFKA_TOPIC_REGISTRATION_RESULTS,
        key=result_key(correlation_id=request.correlation_id, fallback=str(user.id)),
        subject=str(user.id),
        payload={"userId": str(user.id), "correlationId": request.correlation_id or None},
        headers={envelope.CORRELATION_ID: request.correlation_id} if request.correlation_id else None,
    )
    return RegistrationOutcome(user=user)
