"""Kafka handlers of the accounts app; `manage.py consume_events` runs them (see audit.consumer)."""

from __future__ import annotations

from typing import Any

from accounts import registration
from audit import consumer


@consumer.register
class RegistrationRequestHandler(consumer.Handler):
    """`UserRegisterRequestedEvent` in, a user and `user.registered` (or a failure) out."""

    name = "registration"
    topic_setting = "KAFKA_TOPIC_REGISTRATION_REQUESTS"

    def handle(self, message: consumer.Message) -> dict[str, Any]:
        try:
            request = registration.parse_request(message.value, message.headers)
        except registration.InvalidRequest as exc:
            raise consumer.Malformed(exc.reason, exc.detail) from None
        outcome = registration.register_requested_user(request=request, request_id=self.message_id(message))
        return outcome.as_dict()

    def redact(self, message: consumer.Message) -> bytes | None:
        return registration.redact_request(message.value, message.headers)

    def on_dead_letter(self, message: consumer.Message, error: consumer.Malformed) -> dict[str, Any]:
        # A facade waiting on its correlation id hears of the failure too, not only the DLQ.
        correlation_id = registration.correlation_id_of(message.value, message.headers)
        if not correlation_id:
            return {}
        code = (
            registration.ErrorCode.INTERNAL_ERROR
            if error.reason == "handler_error"
            else registration.ErrorCode.MALFORMED
        )
        registration.publish_failure(
            code=code,
            message=f"{error.reason}: {error.detail}" if error.detail else error.reason,
            correlation_id=correlation_id,
            fallback_key=message.coordinates,
        )
        return {"error": code}
