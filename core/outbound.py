"""Outbound HTTP made on behalf of configuration: the one way this server fetches a URL that a
tenant or an operator wrote down (a client's corporate SSO provider, the SMS gateway, a relying
party's back-channel logout URI).

Such a URL is someone else's choice, so every fetch defends against server-side request forgery
(OWASP Top 10 2021 A10; ASVS 4.0.3 V5.2.6, V12.6.1; the OWASP SSRF Prevention Cheat Sheet):

- https only; plain http only to loopback, and loopback only when `IDP_OUTBOUND_ALLOW_LOOPBACK`
  is on (development, tests);
- no redirects, ever: a 3xx answer is refused, never followed (a redirect is how a harmless
  looking URL points at an internal one);
- the host name is resolved once, and every address it resolves to must be globally routable
  (`address_refusal`): no loopback, private, link-local (cloud metadata), unique-local, shared
  (100.64/10), multicast, unspecified or reserved address, nor an IPv4-mapped, IPv4-compatible,
  NAT64 or 6to4 form of one. One refused address refuses the fetch (DNS rebinding with mixed
  answers). The connection goes to the checked address itself, TLS still verifies the
  certificate against the host name (SNI), and the connected peer is checked again;
- a caller may pass networks it allows besides (operator-configured endpoints on a private
  network: the SMS gateway); tenant-controlled configuration never gets any;
- bounded size (the body is streamed and reading stops past the limit) and time (connect, read,
  and a total deadline that closes the socket);
- no proxies, no netrc, nothing from the environment (`trust_env = False`).

Everything that goes wrong is a `FetchError` with a machine-readable `Reason` and a message in our
own words: never a byte of the remote answer (body, headers, reason phrase), so callers may put it
in audit records and on error pages.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from core.bounded_json import json_depth_exceeds

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_CHUNK = 16 * 1024


class Reason(StrEnum):
    """Why a fetch did not happen or did not complete."""

    INVALID_URL = "invalid_url"
    INSECURE_SCHEME = "insecure_scheme"
    FORBIDDEN_ADDRESS = "forbidden_address"
    REDIRECT = "redirect"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    BAD_STATUS = "bad_status"
    BAD_RESPONSE = "bad_response"


class AddressKind(StrEnum):
    """What a refused address is."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    SHARED = "shared"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"


ADDRESS_KIND_LABELS: dict[AddressKind, str] = {
    AddressKind.LOOPBACK: "loopback",
    AddressKind.PRIVATE: "private network",
    AddressKind.LINK_LOCAL: "link-local, where cloud metadata services answer",
    AddressKind.SHARED: "shared address space 100.64.0.0/10",
    AddressKind.MULTICAST: "multicast",
    AddressKind.UNSPECIFIED: "unspecified address",
    AddressKind.RESERVED: "reserved, not globally routable",
}


class FetchError(Exception):
    """A fetch refused or failed. `message` is in our words and holds nothing the remote sent."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        address_kind: AddressKind | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.address_kind = address_kind
        self.status = status  # the HTTP status code, for BAD_STATUS and REDIRECT


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1024 * 1024
    connect_seconds: float = 5.0
    read_seconds: float = 10.0  # between two reads, as sockets count it
    total_seconds: float = 20.0  # the whole request: connect, send, headers and body
    # JSON answers nested deeper than this are refused before any parser (ours or a library's,
    # such as Authlib's token response) can recurse into them.
    max_json_depth: int = 64


DEFAULT_LIMITS = Limits()


# --- which addresses may be contacted -------------------------------------------------------------

_PRIVATE_V4 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598; Alibaba Cloud's metadata is here
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")  # RFC 4193
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: translated as the operator chose


def _kind_v4(address: ipaddress.IPv4Address) -> AddressKind | None:
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:  # `is_global` says True for most of 224.0.0.0/4
        return AddressKind.MULTICAST
    if any(address in network for network in _PRIVATE_V4):
        return AddressKind.PRIVATE
    if address in _SHARED_V4:
        return AddressKind.SHARED
    if address.is_reserved or not address.is_global:
        return AddressKind.RESERVED
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in the forms a host or a gateway translates."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour  # RFC 3056


def _kind_v6(address: ipaddress.IPv6Address) -> AddressKind | None:
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        kind = _kind_v4(embedded)
        # IPv4-compatible addresses are deprecated and routed nowhere: refused even when global.
        return kind or (AddressKind.RESERVED if address in _IPV4_COMPATIBLE else None)
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:
        return AddressKind.MULTICAST
    if address in _UNIQUE_LOCAL:
        return AddressKind.PRIVATE
    if address in _NAT64_LOCAL or address.is_site_local or address.is_reserved or not address.is_global:
        return AddressKind.RESERVED
    return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(
    address: IPAddress | str,
    *,
    allow_loopback: bool = False,
    allowed_networks: Iterable[IPNetwork] = (),
) -> AddressKind | None:
    """Why this server may not connect to `address` (what kind of address it is), or None if it may.

    Only globally routable addresses pass; loopback passes when allowed, and any address but an
    unspecified or multicast one passes when it lies in `allowed_networks`.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    kind = _kind_v4(address) if isinstance(address, ipaddress.IPv4Address) else _kind_v6(address)
    if kind is None or kind in (AddressKind.UNSPECIFIED, AddressKind.MULTICAST):
        return kind  # never a server, whatever a list says
    plain = _unmapped(address)
    if any(plain in network or address in network for network in allowed_networks):
        return None
    if kind is AddressKind.LOOPBACK and allow_loopback:
        return None
    return kind


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Networks from strings such as "10.20.0.0/16" or "192.168.1.7"; raises ValueError."""
    return tuple(
        value if isinstance(value, IPNetwork) else ipaddress.ip_network(value.strip(), strict=False)
        for value in values
    )


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to: the one DNS look-up of a fetch. Raises FetchError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise FetchError(Reason.UNREACHABLE, "the host name does not resolve") from None
    addresses = [
        ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    if not addresses:
        raise FetchError(Reason.UNREACHABLE, "the host name does not resolve")
    return list(dict.fromkeys(addresses))


@dataclass(frozen=True)
class _Policy:
    allow_loopback: bool
    allowed_networks: tuple[IPNetwork, ...]

    def check(self, host: str, addresses: list[IPAddress], *, plain_http: bool) -> None:
        """Every address must pass, or nothing is fetched (DNS rebinding with mixed answers)."""
        for address in addresses:
            kind = address_refusal(
                address, allow_loopback=self.allow_loopback, allowed_networks=self.allowed_networks
            )
            if kind is not None:
                # The address is for operators' logs only: a tenant must not map our network.
                log.warning("outbound fetch refused: %s resolves to %s (%s)", host, address, kind)
                raise FetchError(
                    Reason.FORBIDDEN_ADDRESS,
                    f"the address is not allowed ({ADDRESS_KIND_LABELS[kind]})",
                    address_kind=kind,
                )
        if plain_http and not (self.allow_loopback and all(_unmapped(a).is_loopback for a in addresses)):
            raise FetchError(
                Reason.INSECURE_SCHEME, "the URL must use https (plain http goes to loopback only)"
            )


def _policy(allowed_networks: Iterable[str | IPNetwork]) -> _Policy:
    return _Policy(
        allow_loopback=bool(getattr(settings, "IDP_OUTBOUND_ALLOW_LOOPBACK", False)),
        allowed_networks=parse_networks(allowed_networks),
    )


def _target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL we may try; raises FetchError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError(Reason.INVALID_URL, "the URL is not usable") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(Reason.INSECURE_SCHEME, "only https URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise FetchError(Reason.INVALID_URL, "the URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchError(Reason.INVALID_URL, "the URL has no host")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")  # RFC 6761 §6.3: always loopback


def check_url(
    url: str, *, allowed_networks: Iterable[str | IPNetwork] = (), resolve_host: bool = True
) -> None:
    """Whether `url` may be fetched, as far as can be told before connecting (configuration time);
    raises FetchError. A literal address is judged as it stands; a host name by what it resolves to
    now (a name that does not resolve yet passes). The real guard is at connection time: DNS changes.
    """
    scheme, host, port = _target(url)
    policy = _policy(allowed_networks)
    if scheme == "http" and not policy.allow_loopback:
        raise FetchError(Reason.INSECURE_SCHEME, "the URL must use https")
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = []
        if _is_localhost_name(host):
            addresses = [ipaddress.IPv4Address("127.0.0.1")]
        elif resolve_host:
            with contextlib.suppress(FetchError):  # not in DNS (yet): judged when it is fetched
                addresses = resolve(host, port)
    if addresses:
        policy.check(host, addresses, plain_http=scheme == "http")
    elif scheme == "http":
        raise FetchError(Reason.INSECURE_SCHEME, "the URL must use https (plain http goes to loopback only)")


# --- the connection: resolve once, check, connect to the checked address ------------------------


class _Attempt:
    """One request through the adapter: its policy, and the total deadline that ends it by
    shutting its sockets down (socket timeouts bound each read, not a server that drips)."""

    def __init__(self, policy: _Policy, total_seconds: float) -> None:
        self.policy = policy
        self.total_seconds = total_seconds
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(total_seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Attempt:
        self._token = _ATTEMPT.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _ATTEMPT.reset(self._token)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("outbound_attempt", default=None)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _open_socket(connection: HTTPConnection, *, tls: bool) -> socket.socket:
    """urllib3's `_new_conn`, guarded: resolve once, check every address, connect to a checked one."""
    attempt = _ATTEMPT.get()
    if attempt is None:  # only GuardedAdapter mounts these connections, and it always sets one
        raise FetchError(Reason.UNREACHABLE, "a guarded connection was opened outside a guarded request")
    host, port = connection.host, connection.port or (443 if tls else 80)
    addresses = resolve(host, port)
    attempt.policy.check(host, addresses, plain_http=not tls)
    timeout = connection.timeout if isinstance(connection.timeout, int | float) else None
    failure = FetchError(Reason.UNREACHABLE, "no connection could be made")
    for address in addresses:
        # A numeric look-up (no DNS) gives the socket address, scope id included for IPv6.
        family, _, _, _, sockaddr = socket.getaddrinfo(
            str(address), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in connection.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            attempt.watch(sock)
            sock.connect(sockaddr)
            _check_peer(sock, address, attempt.policy)
            return sock
        except TimeoutError:
            sock.close()
            failure = FetchError(Reason.TIMEOUT, f"no connection within {timeout or 0:g} s")
        except OSError:
            sock.close()
            failure = FetchError(Reason.UNREACHABLE, "no connection could be made")
        except BaseException:
            sock.close()
            raise
    raise failure


def _check_peer(sock: socket.socket, address: IPAddress, policy: _Policy) -> None:
    """The peer we are connected to is the address we checked (and still passes)."""
    peer = ipaddress.ip_address(sock.getpeername()[0])
    refused = address_refusal(
        peer, allow_loopback=policy.allow_loopback, allowed_networks=policy.allowed_networks
    )
    same = int(_unmapped(peer)) == int(_unmapped(address)) and _unmapped(peer).version == address.version
    if refused is not None or not same:
        log.warning("outbound fetch refused: connected to %s, not the checked %s", peer, address)
        raise FetchError(
            Reason.FORBIDDEN_ADDRESS,
            "the connected address is not the checked one",
            address_kind=refused,
        )


class _GuardedConnectionMixin:
    host: str
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        return _open_socket(self, tls=isinstance(self, HTTPSConnection))  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = _ATTEMPT.get()
        if self.sock is not None and attempt is not None:
            attempt.watch(self.sock)  # a kept-alive connection: this request's deadline covers it
        super().request(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


# --- the requests side: an adapter any requests.Session can mount ------------------------------


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


class GuardedAdapter(HTTPAdapter):
    """A requests transport adapter that only fetches under this module's policy: every request
    resolves, checks and pins its address, refuses a redirect, and reads at most `limits.max_bytes`
    within `limits.total_seconds`. The body is always read before `send` returns."""

    def __init__(
        self, *, allowed_networks: Iterable[str | IPNetwork] = (), limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.allowed_networks = parse_networks(allowed_networks)
        self.limits = limits
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # A proxy would resolve and connect in our place, out of this policy's reach.
        raise FetchError(Reason.INVALID_URL, "outbound fetches never go through a proxy")

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        scheme, _, _ = _target(request.url or "")
        policy = _policy(self.allowed_networks)
        if scheme == "http" and not policy.allow_loopback:
            raise FetchError(Reason.INSECURE_SCHEME, "the URL must use https")
        if verify is False:
            raise FetchError(Reason.TLS, "certificate verification cannot be turned off")
        # Nothing compressed: the size limit counts what arrives, and no bomb can expand.
        request.headers["Accept-Encoding"] = "identity"
        connect, read = self._timeouts(timeout)
        with _Attempt(policy, self.limits.total_seconds) as attempt:
            try:
                response = super().send(
                    request, stream=True, timeout=(connect, read), verify=verify, cert=cert, proxies=proxies
                )
            except (FetchError, requests.RequestException, Urllib3Error, OSError) as exc:
                raise _translate(exc, attempt, connect, read) from None
            try:
                if 300 <= response.status_code < 400:
                    raise FetchError(
                        Reason.REDIRECT,
                        f"the answer was a redirect (HTTP {response.status_code}), and redirects are never "
                        "followed",
                        status=response.status_code,
                    )
                self._read_body(response)
            except (FetchError, requests.RequestException, Urllib3Error, OSError) as exc:
                response.close()
                raise _translate(exc, attempt, connect, read) from None
            except BaseException:
                response.close()
                raise
        return response

    def _timeouts(self, asked: Any) -> tuple[float, float]:
        """The caller's timeouts, never longer than ours."""
        connect, read = self.limits.connect_seconds, self.limits.read_seconds
        if isinstance(asked, int | float):
            asked = (asked, asked)
        if isinstance(asked, tuple) and len(asked) == 2:
            connect = min(connect, asked[0]) if isinstance(asked[0], int | float) else connect
            read = min(read, asked[1]) if isinstance(asked[1], int | float) else read
        return connect, read

    def _read_body(self, response: requests.Response) -> None:
        limit = self.limits.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(Reason.TOO_LARGE, f"the answer is larger than {_size(limit)}")
        body = bytearray()
        for chunk in response.raw.stream(_CHUNK, decode_content=True):
            body += chunk
            if len(body) > limit:
                raise FetchError(Reason.TOO_LARGE, f"the answer is larger than {_size(limit)}")
        if json_depth_exceeds(body.decode("utf-8", "replace"), self.limits.max_json_depth):
            raise FetchError(
                Reason.BAD_RESPONSE, f"the answer nests deeper than {self.limits.max_json_depth} levels"
            )
        # requests' own record of a read body: what .content, .text and .json() return.
        response._content = bytes(body)
        response._content_consumed = True


def _translate(exc: BaseException, attempt: _Attempt, connect: float, read: float) -> FetchError:
    """Our words for what went wrong; never the exception's text (it may quote the remote)."""
    if attempt.expired:
        return FetchError(Reason.TIMEOUT, f"no complete answer within {attempt.total_seconds:g} s")
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, requests.ConnectTimeout):
        return FetchError(Reason.TIMEOUT, f"no connection within {connect:g} s")
    if isinstance(exc, requests.ReadTimeout | ReadTimeoutError | TimeoutError):
        return FetchError(Reason.TIMEOUT, f"no answer within {read:g} s")
    if isinstance(exc, requests.exceptions.SSLError | Urllib3SSLError):
        return FetchError(
            Reason.TLS, "the TLS handshake failed: the certificate is not trusted or not for this host"
        )
    if isinstance(exc, requests.ConnectionError | ProtocolError | OSError):
        return FetchError(Reason.UNREACHABLE, "the connection failed or broke off")
    return FetchError(Reason.BAD_RESPONSE, "the answer is not valid HTTP")


# --- what callers use ----------------------------------------------------------------------------

SessionT = TypeVar("SessionT", bound=requests.Session)


def guard_session(
    session: SessionT,
    *,
    allowed_networks: Iterable[str | IPNetwork] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> SessionT:
    """Put a requests session under the fetch policy, also one a library made (Authlib's
    OAuth2Session): every request it sends goes through GuardedAdapter, and only http(s) URLs."""
    session.trust_env = False  # no proxies, CA bundle or netrc credentials from the environment
    session.proxies.clear()
    session.max_redirects = 0  # a second lock: GuardedAdapter already refuses every 3xx
    for adapter in session.adapters.values():
        adapter.close()
    session.adapters.clear()
    adapter = GuardedAdapter(allowed_networks=allowed_networks, limits=limits)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def fetch(
    method: str,
    url: str,
    *,
    allowed_networks: Iterable[str | IPNetwork] = (),
    limits: Limits = DEFAULT_LIMITS,
    **kwargs: Any,
) -> requests.Response:
    """One request under the policy, its body read (bounded). Raises FetchError, also when the
    answer is not 2xx. `kwargs` go to requests (`headers`, `json`, `data`, `timeout`...)."""
    _target(url)
    with guard_session(requests.Session(), allowed_networks=allowed_networks, limits=limits) as session:
        try:
            response = session.request(method, url, allow_redirects=False, **kwargs)
        except requests.RequestException:  # raised before the adapter: a URL requests cannot use
            raise FetchError(Reason.INVALID_URL, "the URL is not usable") from None
    if not 200 <= response.status_code < 300:
        raise FetchError(
            Reason.BAD_STATUS, f"the answer was HTTP {response.status_code}", status=response.status_code
        )
    return response
