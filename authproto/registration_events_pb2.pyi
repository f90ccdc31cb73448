from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class UserRegisterRequestedEvent(_message.Message):
    __slots__ = ("login", "password", "correlation_id")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    login: str
    password: str
    correlation_id: str
    def __init__(self, login: _Optional[str] = ..., password: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class UserRegisteredEvent(_message.Message):
    __slots__ = ("user_id", "correlation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    correlation_id: str
    def __init__(self, user_id: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class UserRegistrationFailedEvent(_message.Message):
    __slots__ = ("error", "message", "correlation_id")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    error: str
    message: str
    correlation_id: str
    def __init__(self, error: _Optional[str] = ..., message: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...
