from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class LoginRequest(_message.Message):
    __slots__ = ("login", "password")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    login: str
    password: str
    def __init__(self, login: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("error", "token", "refresh_token", "expires_in")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    error: str
    token: str
    refresh_token: str
    expires_in: int
    def __init__(self, error: _Optional[str] = ..., token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expires_in: _Optional[int] = ...) -> None: ...

class TokenValidateRequest(_message.Message):
    __slots__ = ("token", "dpop_proof", "http_method", "http_url")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DPOP_PROOF_FIELD_NUMBER: _ClassVar[int]
    HTTP_METHOD_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    token: str
    dpop_proof: str
    http_method: str
    http_url: str
    def __init__(self, token: _Optional[str] = ..., dpop_proof: _Optional[str] = ..., http_method: _Optional[str] = ..., http_url: _Optional[str] = ...) -> None: ...

class TokenValidateResponse(_message.Message):
    __slots__ = ("error", "userId", "role", "client_id", "scope", "expires_at")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    error: str
    userId: str
    role: str
    client_id: str
    scope: str
    expires_at: int
    def __init__(self, error: _Optional[str] = ..., userId: _Optional[str] = ..., role: _Optional[str] = ..., client_id: _Optional[str] = ..., scope: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class CheckPermissionRequest(_message.Message):
    __slots__ = ("user_id", "permission", "client_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    permission: str
    client_id: str
    def __init__(self, user_id: _Optional[str] = ..., permission: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class CheckPermissionResponse(_message.Message):
    __slots__ = ("allowed", "reason")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
