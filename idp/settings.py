"""The one settings module: every value comes from the environment, with embedded defaults.

With nothing set, the service runs on SQLite, a local-memory cache, eager Celery tasks and an
outbox that is only shown in the admin (no Kafka). Production sets DEBUG=0 and must then name a
strong SECRET_KEY, its ALLOWED_HOSTS and the key that encrypts signing keys.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy

from core.config import ConfigError, env_bool, env_int, env_list, env_optional_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
IDP_DATA_DIR = Path(env_str("IDP_DATA_DIR") or BASE_DIR / "var")

# The checkout runs in development mode by default; the Docker image sets DEBUG=0.
DEBUG = env_bool("DEBUG", True)


def _dev_file(name: str, make: Callable[[], str]) -> str:
    """A development secret kept in IDP_DATA_DIR, made by the first process that needs it. Several
    may start at once (the test suite's parallel workers, runserver and a Celery worker): the file
    appears whole or not at all (a link of a finished file), and the first one made wins."""
    path = IDP_DATA_DIR / name
    if not path.exists():
        IDP_DATA_DIR.mkdir(parents=True, exist_ok=True)
        draft = IDP_DATA_DIR / f".{name}.{os.getpid()}"
        draft.touch(mode=0o600)  # never readable by others, not even for a moment
        draft.write_text(make())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: everyone uses its file
        finally:
            draft.unlink()
    return path.read_text().strip()


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if not DEBUG and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
            raise ConfigError("SECRET_KEY is too weak for DEBUG=0: use at least 50 random characters")
        return key
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG=0 (50+ random characters)")
    # Development only: a random key kept beside the SQLite file, so restarts keep sessions.
    return _dev_file("dev-secret-key", lambda: secrets.token_urlsafe(50))


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and (not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS):
    raise ConfigError("ALLOWED_HOSTS must list this service's host names when DEBUG=0 (not '*')")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Proxies (IPs or CIDRs) whose X-Forwarded-For names the client: the gateway's address only.
IDP_TRUSTED_PROXIES = env_list("IDP_TRUSTED_PROXIES")
for _proxy in IDP_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ConfigError(f"IDP_TRUSTED_PROXIES: {_proxy!r} is not an IP address or network") from None

# Where this provider is reached from outside; the `iss` of every token it signs.
IDP_ISSUER = env_str("IDP_ISSUER", "http://127.0.0.1:8000").rstrip("/")


def _key_encryption_keys() -> list[str]:
    """Fernet keys that encrypt the signing keys at rest; the first encrypts, all decrypt."""
    keys = env_list("IDP_KEY_ENCRYPTION_KEY")
    if keys:
        return keys
    if not DEBUG:
        raise ConfigError(
            "IDP_KEY_ENCRYPTION_KEY must be set when DEBUG=0 (a Fernet key: "
            'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        )
    import base64

    return [
        _dev_file(
            "dev-key-encryption-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        )
    ]


IDP_KEY_ENCRYPTION_KEYS = _key_encryption_keys()
IDP_KEY_ROTATION_DAYS = env_int("IDP_KEY_ROTATION_DAYS", 30, minimum=1)
IDP_KEY_RETIRED_GRACE_HOURS = env_int("IDP_KEY_RETIRED_GRACE_HOURS", 24, minimum=0)
# The `aud` of access tokens: the platform's APIs that accept them (RFC 9068 §2.2).
IDP_ACCESS_TOKEN_AUDIENCE = env_str("IDP_ACCESS_TOKEN_AUDIENCE", "parcel-platform")
# The public first-party client that gRPC `Login` and REST `auth/login` issue tokens to.
# Each process keeps its own copy of the revocation blacklist, fed by Redis pub/sub, so token
# validation needs no Redis round trip (off: one Redis lookup per validation).
IDP_BLACKLIST_LOCAL_COPY = env_bool("IDP_BLACKLIST_LOCAL_COPY", True)
IDP_DIRECT_LOGIN_CLIENT_ID = env_str("IDP_DIRECT_LOGIN_CLIENT_ID", "direct-login")
GRPC_BIND = env_str("GRPC_BIND", "127.0.0.1:50051")
GRPC_MAX_WORKERS = env_int("GRPC_MAX_WORKERS", 16, minimum=1)
GRPC_PROCESSES = env_int("GRPC_PROCESSES", 1, minimum=1)
GRPC_TLS_CERT = env_str("GRPC_TLS_CERT")
GRPC_TLS_KEY = env_str("GRPC_TLS_KEY")

INSTALLED_APPS = [
    "idp.console",  # first: its createsuperuser and changepassword replace Django's
    # The admin's pages are registered by the URLconf (idp/urls.py), which only the web tier
    # loads: the worker, beat, consumer and gRPC processes do without the admin modules and
    # what they import (the passkey library among them).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Third-party apps through AppConfig subclasses of ours: readable, translated admin sections.
    "idp.oidc.toolkit.OAuthToolkitConfig",  # oauth2_provider
    "django_otp",
    "accounts.otp_apps.TOTPConfig",  # django_otp.plugins.otp_totp
    "accounts.otp_apps.StaticConfig",  # django_otp.plugins.otp_static
    "accounts.otp_apps.EmailConfig",  # django_otp.plugins.otp_email
    "audit",
    "clients",
    "accounts",
    "idp.oidc",
    "idp.api",
]

MIDDLEWARE = [
    # Outermost: counts and times every answer, those of the middleware below included.
    "core.http_metrics.RequestMetricsMiddleware",
    "core.client_ip.ClientIPMiddleware",  # first: everything after sees the client's address
    "django.middleware.security.SecurityMiddleware",
    "idp.security_headers.SecurityHeadersMiddleware",  # CSP and no-store on every HTML page
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.context.RequestContextMiddleware",
    "idp.nul_bytes.RejectNulBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # A signed-in session that no longer meets the 2FA policy asks for the second factor again.
    "accounts.mfa_views.StepUpMiddleware",
    "accounts.session_registry.SessionActivityMiddleware",  # the sessions page's "last active"
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.outages.StoreOutageMiddleware",  # last: its process_exception sees the view's errors
]

ROOT_URLCONF = "idp.urls"
WSGI_APPLICATION = "idp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "idp.oidc.branding.brand",  # a B2B client's look on its sign-in pages
            ],
        },
    },
]

# --- Stores -----------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{IDP_DATA_DIR / 'db.sqlite3'}"
try:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            # Kept open until one fails its health check (None), unless capped: a thread that opens
            # a connection anew pays the backend's start, its catalog reads and the first plans of
            # the hot statements; eight at once after a minute's pause made the first 30 refresh
            # grants wait 40-115 ms (bench/compare/RESULTS.md, step 14).
            conn_max_age=env_optional_int("DB_CONN_MAX_AGE", minimum=0),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ConfigError(f"DATABASE_URL is not a database URL this service understands: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
else:
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
    # Django's backend, with the health check (a `SELECT 1` before a request's first query) run
    # at most once per DB_HEALTH_CHECK_INTERVAL seconds per connection (core/pgbackend).
    DATABASES["default"]["ENGINE"] = "core.pgbackend"
    # Parameters bound by the server and psycopg's prepared statements (Django turns both off for
    # connection poolers): a statement a connection has run DB_PREPARE_THRESHOLD times is planned
    # once, not per request (the refresh grant's lookup took 2 ms to plan and 0.2 ms to run).
    # 0 turns it off, e.g. behind PgBouncer < 1.21 in transaction mode.
    _prepare_threshold = env_int("DB_PREPARE_THRESHOLD", 5, minimum=0)
    if _prepare_threshold:
        DATABASES["default"]["OPTIONS"].update(server_side_binding=True, prepare_threshold=_prepare_threshold)
DB_HEALTH_CHECK_INTERVAL = env_int("DB_HEALTH_CHECK_INTERVAL", 1, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "idp",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    # Sessions read from Redis and survive its restart through the database copy (Django's
    # cached_db, without its lookup of each new key: accounts.session_store).
    SESSION_ENGINE = "accounts.session_store"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Pub/sub channels are shared by every database of a Redis server: processes that share a cache
# but not their announcements (the test suite's parallel workers) each take a prefix of their own.
IDP_REDIS_CHANNEL_PREFIX = env_str("IDP_REDIS_CHANNEL_PREFIX", "idp:")

KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS")
KAFKA_TOPIC_USER_EVENTS = env_str("KAFKA_TOPIC_USER_EVENTS", "auth.user-events")
KAFKA_TOPIC_AUDIT = env_str("KAFKA_TOPIC_AUDIT", "auth.audit")
KAFKA_TOPIC_REGISTRATION_REQUESTS = env_str("KAFKA_TOPIC_REGISTRATION_REQUESTS", "auth.registration-requests")
KAFKA_TOPIC_REGISTRATION_RESULTS = env_str("KAFKA_TOPIC_REGISTRATION_RESULTS", "auth.registration-results")
KAFKA_TOPIC_DEAD_LETTER = env_str("KAFKA_TOPIC_DEAD_LETTER", "auth.dead-letter")
# CloudEvents `source` of every event this service publishes.
IDP_EVENT_SOURCE = env_str("IDP_EVENT_SOURCE", "urn:idp:auth-service")


# Celery: Redis is the broker; without one, tasks run in-process right away.
def _redis_database(url: str, number: int) -> str:
    """The same Redis server, another database: cache flushes and evictions must not eat tasks."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{number}")) if url else ""


CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or _redis_database(REDIS_URL, 1)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# --- Events (Kafka): outbox relay, consumer, retention, metrics --------------------------------
# The contract (topics, envelope, payloads) is in the README, "Events (Kafka)". Without
# KAFKA_BOOTSTRAP_SERVERS nothing here runs: events wait in the outbox, shown in the admin.
KAFKA_CONSUMER_GROUP = env_str("KAFKA_CONSUMER_GROUP", "auth-service")
# Topics are created at start-up when missing; -1 takes the broker's defaults.
KAFKA_TOPIC_PARTITIONS = env_int("KAFKA_TOPIC_PARTITIONS", -1, minimum=-1)
KAFKA_TOPIC_REPLICATION_FACTOR = env_int("KAFKA_TOPIC_REPLICATION_FACTOR", -1, minimum=-1)
# Seconds the relay waits for Kafka (metadata, delivery reports) before it backs off.
KAFKA_DELIVERY_TIMEOUT = env_int("KAFKA_DELIVERY_TIMEOUT", 10, minimum=1)
IDP_OUTBOX_BATCH_SIZE = env_int("IDP_OUTBOX_BATCH_SIZE", 500, minimum=1)
IDP_OUTBOX_SWEEP_SECONDS = env_int("IDP_OUTBOX_SWEEP_SECONDS", 10, minimum=1)
IDP_OUTBOX_BACKOFF_MAX = env_int("IDP_OUTBOX_BACKOFF_MAX", 60, minimum=1)
IDP_OUTBOX_RETENTION_DAYS = env_int("IDP_OUTBOX_RETENTION_DAYS", 7, minimum=1)
IDP_OUTBOX_LAG_WARNING = env_int("IDP_OUTBOX_LAG_WARNING", 60, minimum=1)
IDP_PROCESSED_RETENTION_DAYS = env_int("IDP_PROCESSED_RETENTION_DAYS", 30, minimum=1)
# When set, /metrics asks for `Authorization: Bearer <token>`. Without a token it is open only
# when IDP_METRICS_PUBLIC is true: by default in development, never by default in production.
IDP_METRICS_TOKEN = env_str("IDP_METRICS_TOKEN")
IDP_METRICS_PUBLIC = env_bool("IDP_METRICS_PUBLIC", DEBUG)
# The processes that serve no HTTP serve their metrics on these ports (0: not at all), on
# IDP_METRICS_BIND, behind IDP_METRICS_TOKEN when set. PROMETHEUS_MULTIPROC_DIR: core.metrics.
IDP_METRICS_BIND = env_str("IDP_METRICS_BIND", "127.0.0.1")
IDP_METRICS_PORT_GRPC = env_int("IDP_METRICS_PORT_GRPC", 0, minimum=0)
IDP_METRICS_PORT_WORKER = env_int("IDP_METRICS_PORT_WORKER", 0, minimum=0)
IDP_METRICS_PORT_CONSUMER = env_int("IDP_METRICS_PORT_CONSUMER", 0, minimum=0)
IDP_METRICS_PORT_RELAY = env_int("IDP_METRICS_PORT_RELAY", 0, minimum=0)
# OpenTelemetry tracing (core.tracing), off unless asked for; the standard OTEL_* variables
# configure the OTLP exporter (endpoint, headers, OTEL_SERVICE_NAME).
IDP_OTEL = env_bool(
    "IDP_OTEL", bool(env_str("OTEL_EXPORTER_OTLP_ENDPOINT") or env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
)

# Celery beat: everything periodic, in one schedule.
CELERY_BEAT_SCHEDULE = {
    "oidc-rotate-keys-if-due": {"task": "oidc.rotate_keys_if_due", "schedule": 3600.0},
    "oidc-clear-expired": {"task": "oidc.clear_expired", "schedule": 3600.0},
    "oidc-resync-blacklist": {"task": "oidc.resync_blacklist", "schedule": 60.0},
    "outbox-relay-sweep": {"task": "audit.relay_outbox", "schedule": float(IDP_OUTBOX_SWEEP_SECONDS)},
    "outbox-prune": {"task": "audit.prune_outbox", "schedule": 3600.0},
    "audit-seal-chain": {"task": "audit.seal_chain", "schedule": 60.0},  # audit.chain
}
# Task modules not named `tasks` (autodiscovery finds those).
CELERY_IMPORTS = ["audit.chain"]

# --- Authentication ---------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.authentication.LoginBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"

# bcrypt per the seed; the others stay so that older hashes still verify and are upgraded on login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "idp.oidc.hashers.ClientSecretHasher",  # client secrets only (CLIENT_SECRET_HASHER)
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("IDP_PASSWORD_MIN_LENGTH", 10, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Seconds a password reset link works (accounts.passwords); it also dies once used.
PASSWORD_RESET_TIMEOUT = env_int("IDP_PASSWORD_RESET_TIMEOUT", 3600, minimum=60)

# Brute-force defence (core.ratelimit, accounts.lockout). A limit is (requests, seconds).
IDP_RATE_LIMITS_ENABLED = env_bool("IDP_RATE_LIMITS_ENABLED", True)
IDP_RATE_LIMITS = {
    "login-ip": (env_int("IDP_RL_LOGIN_PER_IP", 30, minimum=1), 60),
    "login-account": (env_int("IDP_RL_LOGIN_PER_ACCOUNT", 10, minimum=1), 60),
    "token-client": (env_int("IDP_RL_TOKEN_PER_CLIENT", 60000, minimum=1), 60),
    "token-ip": (env_int("IDP_RL_TOKEN_PER_IP", 60000, minimum=1), 60),
    "password-reset-ip": (env_int("IDP_RL_RESET_PER_IP", 10, minimum=1), 900),
    "password-reset-account": (env_int("IDP_RL_RESET_PER_ACCOUNT", 3, minimum=1), 3600),
    "otp-verify": (env_int("IDP_RL_OTP_PER_USER", 5, minimum=1), 300),
    # the account console's password checks and phone codes (accounts.profile)
    "profile-change": (env_int("IDP_RL_PROFILE_PER_USER", 10, minimum=1), 3600),
    "registration-ip": (env_int("IDP_RL_REGISTRATION_PER_IP", 20, minimum=1), 3600),
    # user codes typed on the device page (RFC 8628 §5.1: the short code must not be guessable)
    "device-code-user": (env_int("IDP_RL_DEVICE_CODE_PER_USER", 10, minimum=1), 600),
    "device-code-ip": (env_int("IDP_RL_DEVICE_CODE_PER_IP", 30, minimum=1), 600),
    # SCIM provisioning (idp.scim): per token, and per address before the token is known
    "scim-token": (env_int("IDP_RL_SCIM_PER_TOKEN", 1200, minimum=1), 60),
    "scim-ip": (env_int("IDP_RL_SCIM_PER_IP", 2400, minimum=1), 60),
    # passkey sign-in options (a challenge kept in a session each): one per login page shown
    "passkey-options-ip": (env_int("IDP_RL_PASSKEY_OPTIONS_PER_IP", 60, minimum=1), 60),
}
# Lockout after this many failed logins in a row; the lock doubles with each repeat, up to the max.
IDP_LOCKOUT_THRESHOLD = env_int("IDP_LOCKOUT_THRESHOLD", 5, minimum=1)
IDP_LOCKOUT_BASE_SECONDS = env_int("IDP_LOCKOUT_BASE_SECONDS", 60, minimum=1)
IDP_LOCKOUT_MAX_SECONDS = env_int("IDP_LOCKOUT_MAX_SECONDS", 24 * 3600, minimum=1)
# After this many locks (0 = never) the account stays locked until an operator unlocks it.
IDP_LOCKOUT_PERMANENT_AFTER = env_int("IDP_LOCKOUT_PERMANENT_AFTER", 0, minimum=0)

IDP_INVITATION_TTL = env_int(
    "IDP_INVITATION_TTL", 7 * 24 * 3600, minimum=3600
)  # invitation/verification links

# Two-factor authentication (accounts.mfa): roles that must always pass a second factor (B2B
# clients can require it for all their users), code lifetime, and how SMS are sent.
IDP_MFA_REQUIRED_ROLES = env_list("IDP_MFA_REQUIRED_ROLES", ["internal_admin", "operator"])
IDP_MFA_PENDING_SECONDS = env_int("IDP_MFA_PENDING_SECONDS", 300, minimum=30)
IDP_OTP_CODE_VALIDITY = env_int("IDP_OTP_CODE_VALIDITY", 300, minimum=30)
OTP_EMAIL_TOKEN_VALIDITY = IDP_OTP_CODE_VALIDITY
# In the language of the page that asked for the code, unless the operator sets one.
OTP_EMAIL_SUBJECT = env_str("IDP_OTP_EMAIL_SUBJECT", "") or gettext_lazy("Your sign-in code")
OTP_EMAIL_BODY_TEMPLATE_PATH = "accounts/email/otp_code.txt"
OTP_EMAIL_BODY_HTML_TEMPLATE_PATH = "accounts/email/otp_code.html"
OTP_TOTP_ISSUER = env_str("IDP_OTP_TOTP_ISSUER", "Auth & User Service")
# Passkeys (accounts.passkeys, WebAuthn Level 3). The relying party ID and the origins pages are
# served from default to IDP_ISSUER's host and origin (so a test's live server works as it is);
# set them when the pages are reached at other origins (e.g. the gateway and a direct address).
IDP_WEBAUTHN_RP_ID = env_str("IDP_WEBAUTHN_RP_ID")
IDP_WEBAUTHN_ORIGINS = env_list("IDP_WEBAUTHN_ORIGINS")
IDP_WEBAUTHN_RP_NAME = env_str("IDP_WEBAUTHN_RP_NAME", OTP_TOTP_ISSUER)
# A passkey ceremony's challenge is good for this long, once, in the session that asked for it.
IDP_PASSKEY_CHALLENGE_SECONDS = env_int("IDP_PASSKEY_CHALLENGE_SECONDS", 120, minimum=30)
# Roles whose second factor must be a passkey (B2B clients can require it of all their users).
IDP_PASSKEY_REQUIRED_ROLES = env_list("IDP_PASSKEY_REQUIRED_ROLES")
IDP_SMS_BACKEND = env_str("IDP_SMS_BACKEND", "accounts.sms.ConsoleGateway")
IDP_SMS_HTTP_URL = env_str("IDP_SMS_HTTP_URL")
IDP_SMS_HTTP_TOKEN = env_str("IDP_SMS_HTTP_TOKEN")
IDP_SMS_SENDER = env_str("IDP_SMS_SENDER", "IDP")

# Outbound HTTP made on behalf of configuration (core.outbound: corporate SSO, the SMS gateway):
# https to globally routable addresses only. Loopback addresses, and plain http to them, only when
# this is on (development, tests).
IDP_OUTBOUND_ALLOW_LOOPBACK = env_bool("IDP_OUTBOUND_ALLOW_LOOPBACK", DEBUG)
# SAML 2.0 upstream providers (clients.saml): the xmlsec1 program pysaml2 signs and verifies with.
IDP_SAML_XMLSEC1 = env_str("IDP_SAML_XMLSEC1", "xmlsec1")
# private_key_jwt (idp.oidc.client_assertion): how far ahead a client assertion's `exp` may be.
# Short: a captured assertion is a credential until then (its `jti` is refused a second time).
IDP_CLIENT_ASSERTION_MAX_SECONDS = env_int("IDP_CLIENT_ASSERTION_MAX_SECONDS", 300, minimum=30)
# DPoP (idp.oidc.dpop): ask token requests for a server nonce in their proofs (RFC 9449 §8), so a
# proof made ahead of time by a stolen key's holder is useless. Off: a proof's `iat` window suffices.
IDP_DPOP_REQUIRE_NONCE = env_bool("IDP_DPOP_REQUIRE_NONCE", False)
# Networks (IPs or CIDRs) the operator's SMS gateway may sit on besides public addresses, e.g. an
# internal gateway at 10.20.0.0/16. Only endpoints that operators set get such a list; tenants' SSO
# providers never.
IDP_SMS_HTTP_ALLOWED_NETWORKS = env_list("IDP_SMS_HTTP_ALLOWED_NETWORKS")
# Networks the relying parties' back-channel logout URIs may sit on besides public addresses (the
# platform's own apps on an internal network); operators register applications, tenants do not.
IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS = env_list("IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS")
for _name, _networks in (
    ("IDP_SMS_HTTP_ALLOWED_NETWORKS", IDP_SMS_HTTP_ALLOWED_NETWORKS),
    ("IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS", IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS),
):
    for _network in _networks:
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise ConfigError(f"{_name}: {_network!r} is not an IP address or network") from None

# A login name may repeat across B2B clients (seed 004), so it is unique per client, not globally;
# the login backend handles the search.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

# --- OAuth 2.0 / OpenID Connect (django-oauth-toolkit) ----------------------------------------

OAUTH2_PROVIDER_APPLICATION_MODEL = "oidc.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oidc.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oidc.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oidc.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oidc.Grant"
OAUTH2_PROVIDER_DEVICE_GRANT_MODEL = "oidc.DeviceGrant"


def gettext_noop(message: str) -> str:
    """Marks a string for the catalogue (makemessages finds the name) without translating it:
    Django's own would read the settings while they are still being loaded."""
    return message


OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": IDP_ISSUER,
    "OAUTH2_VALIDATOR_CLASS": "idp.oidc.validators.Validator",
    "ACCESS_TOKEN_GENERATOR": "idp.oidc.tokens.generate_access_token",
    # Without this, refresh tokens would be JWTs too (DOT reuses the access token generator).
    "REFRESH_TOKEN_GENERATOR": "idp.oidc.tokens.generate_refresh_token",
    "CLIENT_SECRET_HASHER": "hmac_sha256",
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    "OIDC_JWKS_MAX_AGE_SECONDS": env_int("IDP_JWKS_MAX_AGE", 3600, minimum=60),
    "PKCE_REQUIRED": True,
    # DOT's non-standard approval_prompt=auto skips consent whenever a live token exists; consent
    # is decided by idp.oidc.models.Consent.covers alone (the view also drops the parameter).
    "REQUEST_APPROVAL_PROMPT": "force",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int("IDP_ACCESS_TOKEN_TTL", 300, minimum=30),
    "REFRESH_TOKEN_EXPIRE_SECONDS": env_int("IDP_REFRESH_TOKEN_TTL", 30 * 24 * 3600, minimum=60),
    "ID_TOKEN_EXPIRE_SECONDS": env_int("IDP_ID_TOKEN_TTL", 300, minimum=30),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"] if DEBUG else ["https"],
    # RFC 9700 behaviour gates: reject implicit, password and PKCE `plain`; tokens only in headers.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # the database keeps token hashes, not tokens
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": not DEBUG,
    # Said to people on the consent screen and the account console, in their language there
    # (gettext_noop: marked for the catalogue here, translated where shown).
    "SCOPES": {
        "openid": gettext_noop("Sign you in"),
        "profile": gettext_noop("Your name and role"),
        "email": gettext_noop("Your e-mail address"),
        "phone": gettext_noop("Your phone number"),
        "offline_access": gettext_noop("Stay signed in"),
        "permissions": gettext_noop("What you are allowed to do"),
    },
    "DEFAULT_SCOPES": ["openid"],
    # The device grant (idp.oidc.device): our server adds its ID token, our validator checks the
    # device code (DOT's pre-token hook looked the code up by its raw value, unchecked).
    "OAUTH2_SERVER_CLASS": "idp.oidc.device.Server",
    "OAUTH_PRE_TOKEN_VALIDATION": [],
    "DEVICE_FLOW_INTERVAL": env_int("IDP_DEVICE_POLL_INTERVAL", 5, minimum=1),
}
# How long a device authorization (its device code and user code) waits for the person (RFC 8628 §3.2).
IDP_DEVICE_CODE_TTL = env_int("IDP_DEVICE_CODE_TTL", 600, minimum=60)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "idp.api.authentication.AssuredOAuth2Authentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    # JSON only, size- and depth-bounded (no endpoint takes forms or files).
    "DEFAULT_PARSER_CLASSES": ["idp.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "idp.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Auth & User Service API",
    "DESCRIPTION": "Users, B2B clients, roles and permissions, audit search, login and token validation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: no CDN, and the CSP holds
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Web security -----------------------------------------------------------------------------

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # Lax, not Strict: the OIDC redirect back from an RP is top-level
SESSION_COOKIE_AGE = env_int("IDP_SESSION_TTL", 12 * 3600, minimum=300)
CSRF_COOKIE_HTTPONLY = True
if env_bool("IDP_BEHIND_PROXY", False):
    # Only behind a proxy that overwrites this header; otherwise a client could claim https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("IDP_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("IDP_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("IDP_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("IDP_HSTS_PRELOAD", False)

# --- Internationalisation, static files, logging ----------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("IDP_STATIC_ROOT") or IDP_DATA_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"]  # the pages' stylesheet (no inline styles: see the CSP)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Mail is queued to Celery (accounts.mail); the delivery backend is what really sends it.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "accounts.mail.CeleryEmailBackend")
IDP_EMAIL_DELIVERY_BACKEND = env_str(
    "IDP_EMAIL_DELIVERY_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@idp.localhost")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or None  # for the file-based delivery backend
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# json: one JSON object per line, with the request id (core.logs).
IDP_LOG_FORMAT = env_str("IDP_LOG_FORMAT", "plain").lower()
if IDP_LOG_FORMAT not in ("plain", "json"):
    raise ConfigError(f"IDP_LOG_FORMAT must be plain or json, not {IDP_LOG_FORMAT!r}")
# Celery's worker replaces the root logger's handlers with its own format unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = IDP_LOG_FORMAT == "plain"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": IDP_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # pysaml2 logs every refused SAML Response at ERROR (quoting it) and NameIDs and whole
        # messages below that; the refusals are ours to report (accounts.sso.saml: an audit record
        # and an INFO line with the reason code), so only its critical lines are kept.
        "saml2": {"level": "CRITICAL"},
        "xmlschema": {"level": "WARNING"},
    },
}
