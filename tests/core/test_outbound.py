"""core.outbound: which addresses a fetch may reach, and every refusal against real servers on
127.0.0.1 (tests.core.network). Loopback is allowed only where a test says so; the refusals run
with the setting off, as production does."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from core import outbound
from core.outbound import AddressKind, FetchError, Limits, Reason
from tests.core.network import (
    FakeDNS,
    LocalServer,
    answer,
    certificate_authority,
    chunked,
    drip,
    redirect,
    slow,
)

MARKER = "REMOTE-MARKER-7f3a9c"  # in remote bodies and headers: never in one of our messages
BODY = b'{"secret": "' + MARKER.encode() + b'"}'


@pytest.fixture
def loopback(settings) -> None:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True


@pytest.fixture
def no_loopback(settings) -> None:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    return FakeDNS(monkeypatch)


def _refused(exc: pytest.ExceptionInfo[FetchError]) -> FetchError:
    """The error, after checking nothing of the remote got into its words."""
    assert MARKER not in exc.value.message
    assert MARKER not in str(exc.value)
    return exc.value


# --- the address policy ------------------------------------------------------------------------

REFUSED = {
    "127.0.0.1": AddressKind.LOOPBACK,
    "127.255.0.9": AddressKind.LOOPBACK,
    "::1": AddressKind.LOOPBACK,
    "10.0.0.5": AddressKind.PRIVATE,
    "172.16.0.1": AddressKind.PRIVATE,
    "172.31.255.254": AddressKind.PRIVATE,
    "192.168.1.1": AddressKind.PRIVATE,
    "fc00::1": AddressKind.PRIVATE,
    "fd00::1": AddressKind.PRIVATE,
    "169.254.169.254": AddressKind.LINK_LOCAL,  # AWS, GCP, Azure metadata
    "fe80::1": AddressKind.LINK_LOCAL,
    "fe80::1%1": AddressKind.LINK_LOCAL,
    "100.64.0.1": AddressKind.SHARED,
    "100.100.100.200": AddressKind.SHARED,  # Alibaba Cloud metadata
    "0.0.0.0": AddressKind.UNSPECIFIED,  # noqa: S104 (an address to refuse, not to bind)
    "::": AddressKind.UNSPECIFIED,
    "224.0.0.1": AddressKind.MULTICAST,
    "239.255.255.250": AddressKind.MULTICAST,
    "ff02::1": AddressKind.MULTICAST,
    "0.1.2.3": AddressKind.RESERVED,  # "this network"
    "192.0.2.1": AddressKind.RESERVED,  # documentation
    "198.18.0.1": AddressKind.RESERVED,  # benchmarking
    "240.0.0.1": AddressKind.RESERVED,
    "255.255.255.255": AddressKind.RESERVED,
    "2001:db8::1": AddressKind.RESERVED,
    "fec0::1": AddressKind.RESERVED,  # site-local, deprecated
    "2001::1": AddressKind.RESERVED,  # Teredo
    # IPv4-mapped (RFC 4291 §2.5.5.2): what a dual-stack socket connects to over IPv4
    "::ffff:127.0.0.1": AddressKind.LOOPBACK,
    "::ffff:10.0.0.5": AddressKind.PRIVATE,
    "::ffff:169.254.169.254": AddressKind.LINK_LOCAL,
    "::ffff:100.64.0.1": AddressKind.SHARED,
    "::ffff:0.0.0.0": AddressKind.UNSPECIFIED,
    # IPv4-compatible (deprecated): refused even around a public address
    "::127.0.0.1": AddressKind.LOOPBACK,
    "::10.0.0.5": AddressKind.PRIVATE,
    "::8.8.8.8": AddressKind.RESERVED,
    # NAT64 (RFC 6052, RFC 8215) and 6to4 (RFC 3056): a gateway translates to the IPv4 inside
    "64:ff9b::127.0.0.1": AddressKind.LOOPBACK,
    "64:ff9b::10.0.0.5": AddressKind.PRIVATE,
    "64:ff9b::169.254.169.254": AddressKind.LINK_LOCAL,
    "64:ff9b:1::a00:5": AddressKind.RESERVED,
    "2002:a00:5::1": AddressKind.PRIVATE,
    "2002:a9fe:a9fe::1": AddressKind.LINK_LOCAL,
}


@pytest.mark.parametrize(("address", "kind"), REFUSED.items(), ids=REFUSED.keys())
def test_addresses_off_the_public_internet_are_refused(address, kind):
    assert outbound.address_refusal(address) is kind


GLOBAL = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", GLOBAL)
def test_globally_routable_addresses_pass(address):
    assert outbound.address_refusal(address) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_loopback_passes_only_when_allowed(address):
    assert outbound.address_refusal(address) is AddressKind.LOOPBACK
    assert outbound.address_refusal(address, allow_loopback=True) is None


def test_allowing_loopback_allows_nothing_else():
    for address in ("10.0.0.5", "169.254.169.254", "fd00::1", "0.0.0.0"):  # noqa: S104
        assert outbound.address_refusal(address, allow_loopback=True) is not None


def test_allowed_networks_let_their_addresses_through_but_never_unspecified_or_multicast():
    networks = outbound.parse_networks(["10.20.0.0/16", "fd00:1::/32", "0.0.0.0/0"])
    assert outbound.address_refusal("10.20.3.4", allowed_networks=networks) is None
    assert outbound.address_refusal("::ffff:10.20.3.4", allowed_networks=networks) is None
    assert outbound.address_refusal("fd00:1::7", allowed_networks=networks) is None
    assert outbound.address_refusal("fd00:2::7", allowed_networks=networks) is AddressKind.PRIVATE
    assert outbound.address_refusal("0.0.0.0", allowed_networks=networks) is AddressKind.UNSPECIFIED  # noqa: S104
    assert outbound.address_refusal("224.0.0.1", allowed_networks=networks) is AddressKind.MULTICAST


# --- configuration time: check_url ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason", "message"),
    [
        ("https://169.254.169.254/", Reason.FORBIDDEN_ADDRESS, "link-local"),
        ("https://10.0.0.5:8443/", Reason.FORBIDDEN_ADDRESS, "(private network)"),
        ("https://[fd00::1]/", Reason.FORBIDDEN_ADDRESS, "(private network)"),
        ("https://[::ffff:127.0.0.1]/", Reason.FORBIDDEN_ADDRESS, "(loopback)"),
        ("https://localhost/", Reason.FORBIDDEN_ADDRESS, "(loopback)"),
        ("https://metadata.localhost/", Reason.FORBIDDEN_ADDRESS, "(loopback)"),
        ("https://intranet.acme.test/", Reason.FORBIDDEN_ADDRESS, "(private network)"),
        ("http://127.0.0.1/", Reason.INSECURE_SCHEME, "must use https"),
        ("http://idp.acme.test/", Reason.INSECURE_SCHEME, "must use https"),
        ("ftp://idp.acme.test/", Reason.INSECURE_SCHEME, "only https"),
        ("file:///etc/passwd", Reason.INSECURE_SCHEME, "only https"),
        ("https://user:pass@idp.acme.test/", Reason.INVALID_URL, "credentials"),
        ("https://idp.acme.test:99999/", Reason.INVALID_URL, "not usable"),
        ("https:///path", Reason.INVALID_URL, "no host"),
    ],
)
def test_check_url_refuses_what_no_fetch_may_reach(no_loopback, dns, url, reason, message):
    dns.add("intranet.acme.test", ["10.0.0.5"])
    with pytest.raises(FetchError) as caught:
        outbound.check_url(url)
    assert (caught.value.reason, message in caught.value.message) == (reason, True), caught.value.message


def test_check_url_passes_public_names_and_names_not_in_dns_yet(no_loopback, dns):
    dns.add("login.acme.test", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    outbound.check_url("https://login.acme.test/realms/acme")
    outbound.check_url("https://not-in-dns-yet.acme.invalid/")  # judged again when fetched
    outbound.check_url("https://8.8.8.8/")


def test_check_url_refuses_a_name_with_one_private_answer_among_public_ones(no_loopback, dns):
    dns.add("rebind.acme.test", ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(FetchError) as caught:
        outbound.check_url("https://rebind.acme.test/")
    assert caught.value.address_kind is AddressKind.PRIVATE


def test_check_url_allows_plain_http_to_loopback_only_with_the_setting(loopback, dns):
    dns.add("public.acme.test", ["93.184.216.34"])
    outbound.check_url("http://127.0.0.1:8080/")
    outbound.check_url("http://localhost:8080/")
    with pytest.raises(FetchError) as caught:
        outbound.check_url("http://public.acme.test/")
    assert caught.value.reason is Reason.INSECURE_SCHEME


# --- fetching from real servers -------------------------------------------------------------------


def test_a_fetch_reads_the_answer_and_asks_for_no_compression(loopback):
    with LocalServer({"/doc": answer(200, b'{"ok": true}')}) as server:
        response = outbound.fetch("GET", f"{server.url}/doc")
    assert response.json() == {"ok": True}
    assert server.hits[0].headers["Accept-Encoding"] == "identity"


def test_environment_proxies_are_never_used(loopback, monkeypatch):
    with LocalServer() as proxy, LocalServer({"/doc": answer(200, b"{}")}) as server:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        outbound.fetch("GET", f"{server.url}/doc")
    assert [hit.path for hit in server.hits] == ["/doc"]
    assert proxy.hits == []


def test_a_redirect_is_refused_and_never_followed(loopback):
    with LocalServer({"/secret": answer(200, BODY)}) as internal:
        target = f"{internal.url}/secret?{MARKER}"
        with LocalServer({"/doc": redirect(target, body=BODY)}) as server:
            for status in (301, 302, 303, 307, 308):
                server.routes["/doc"] = redirect(target, status=status, body=BODY)
                with pytest.raises(FetchError) as caught:
                    outbound.fetch("GET", f"{server.url}/doc")
                error = _refused(caught)
                assert (error.reason, error.status) == (Reason.REDIRECT, status)
                assert error.message == (
                    f"the answer was a redirect (HTTP {status}), and redirects are never followed"
                )
    assert internal.hits == []  # not even checked and followed: never contacted


def test_loopback_is_refused_without_the_setting(no_loopback):
    with LocalServer({"/doc": answer(200, BODY)}) as server:
        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", server.url.replace("http:", "https:") + "/doc")
        error = _refused(caught)
        assert (error.reason, error.address_kind) == (Reason.FORBIDDEN_ADDRESS, AddressKind.LOOPBACK)
        assert error.message == "the address is not allowed (loopback)"

        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", f"{server.url}/doc")  # plain http: refused before any look-up
        assert caught.value.reason is Reason.INSECURE_SCHEME
    assert server.hits == []


def test_a_name_resolving_to_loopback_is_refused_without_the_setting(no_loopback):
    with LocalServer({"/doc": answer(200, BODY)}) as server, pytest.raises(FetchError) as caught:
        outbound.fetch("GET", f"https://localhost:{server.port}/doc")
    error = _refused(caught)
    assert (error.reason, error.address_kind) == (Reason.FORBIDDEN_ADDRESS, AddressKind.LOOPBACK)
    assert server.hits == []


def test_mixed_dns_answers_are_refused_even_when_one_would_pass(loopback, dns):
    with LocalServer({"/doc": answer(200, BODY)}) as server:
        dns.add("rebind.acme.test", ["127.0.0.1", "10.0.0.5"])
        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", server.url_for("rebind.acme.test", "/doc"))
    error = _refused(caught)
    assert (error.reason, error.address_kind) == (Reason.FORBIDDEN_ADDRESS, AddressKind.PRIVATE)
    assert server.hits == []


def test_the_connection_goes_to_the_address_that_was_checked(loopback, dns):
    with LocalServer({"/doc": answer(200, b'{"ok": 1}')}) as server:
        dns.add("pinned.acme.test", ["127.0.0.1"])
        response = outbound.fetch("GET", server.url_for("pinned.acme.test", "/doc"))
    assert response.json() == {"ok": 1}
    assert dns.lookups == ["pinned.acme.test"]  # resolved once, by the fetcher
    assert server.hits[0].headers["Host"] == f"pinned.acme.test:{server.port}"


def test_tls_verifies_the_host_name_on_the_pinned_address(loopback, dns, tmp_path):
    authority = certificate_authority(tmp_path)
    with LocalServer({"/doc": answer(200, b'{"tls": true}')}, tls=authority.issue("idp.acme.test")) as server:
        dns.add("idp.acme.test", ["127.0.0.1"])
        dns.add("other.acme.test", ["127.0.0.1"])
        url = server.url_for("idp.acme.test", "/doc")
        assert outbound.fetch("GET", url, verify=str(authority.ca_file)).json() == {"tls": True}

        with pytest.raises(FetchError) as caught:  # same address, a name the certificate is not for
            outbound.fetch("GET", server.url_for("other.acme.test", "/doc"), verify=str(authority.ca_file))
        assert caught.value.reason is Reason.TLS
        with pytest.raises(FetchError) as caught:  # a certificate we do not trust
            outbound.fetch("GET", url)
        assert caught.value.reason is Reason.TLS
        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", url, verify=False)
        assert caught.value.message == "certificate verification cannot be turned off"
    assert len(server.hits) == 1


def test_an_answer_over_the_size_limit_is_refused(loopback):
    limits = Limits(max_bytes=1000)
    big = BODY * 200
    with LocalServer({"/declared": answer(200, big), "/streamed": chunked(big, chunk=300)}) as server:
        for path in ("/declared", "/streamed"):
            with pytest.raises(FetchError) as caught:
                outbound.fetch("GET", f"{server.url}{path}", limits=limits)
            error = _refused(caught)
            assert (error.reason, error.message) == (Reason.TOO_LARGE, "the answer is larger than 1000 bytes")
        server.routes["/small"] = chunked(b"x" * 1000, chunk=300)
        assert len(outbound.fetch("GET", f"{server.url}/small", limits=limits).content) == 1000


def test_a_slow_server_times_out(loopback):
    with LocalServer({"/doc": slow(3)}) as server:
        started = time.monotonic()
        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", f"{server.url}/doc", limits=Limits(read_seconds=0.5))
    assert (caught.value.reason, caught.value.message) == (Reason.TIMEOUT, "no answer within 0.5 s")
    assert time.monotonic() - started < 2


def test_a_server_that_drips_is_cut_at_the_total_deadline(loopback):
    with LocalServer({"/doc": drip(every=0.2, count=100)}) as server:
        started = time.monotonic()
        with pytest.raises(FetchError) as caught:
            outbound.fetch("GET", f"{server.url}/doc", limits=Limits(read_seconds=1, total_seconds=1))
    assert (caught.value.reason, caught.value.message) == (Reason.TIMEOUT, "no complete answer within 1 s")
    assert time.monotonic() - started < 2.5  # each read was quick: only the deadline ended it


def test_an_error_status_is_refused_without_its_body_or_headers(loopback):
    routes = {"/doc": answer(500, BODY, {"X-Detail": MARKER, "Content-Type": f"text/{MARKER}"})}
    with LocalServer(routes) as server, pytest.raises(FetchError) as caught:
        outbound.fetch("GET", f"{server.url}/doc")
    error = _refused(caught)
    assert (error.reason, error.status, error.message) == (Reason.BAD_STATUS, 500, "the answer was HTTP 500")


def test_nothing_listening_and_no_such_name_are_unreachable(loopback, free_port):
    with pytest.raises(FetchError) as caught:
        outbound.fetch("GET", f"http://127.0.0.1:{free_port}/")
    assert (caught.value.reason, caught.value.message) == (Reason.UNREACHABLE, "no connection could be made")
    with pytest.raises(FetchError) as caught:
        outbound.fetch("GET", "https://no-such-host.acme.invalid/")
    assert (caught.value.reason, caught.value.message) == (
        Reason.UNREACHABLE,
        "the host name does not resolve",
    )


def test_the_connected_peer_is_checked_again(loopback):
    """The address connected to must be the one checked; a kernel or NAT surprise is refused."""
    with LocalServer() as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        policy = outbound._policy(())
        outbound._check_peer(sock, outbound.ipaddress.ip_address("127.0.0.1"), policy)
        with pytest.raises(FetchError) as caught:
            outbound._check_peer(sock, outbound.ipaddress.ip_address("93.184.216.34"), policy)
    assert caught.value.message == "the connected address is not the checked one"


# --- a library's session (Authlib) under the same policy -------------------------------------------


def test_authlib_session_is_put_under_the_policy(loopback):
    session = outbound.guard_session(OAuth2Session(client_id="ours"), limits=Limits(max_bytes=1000))
    assert session.trust_env is False
    assert {type(adapter) for adapter in session.adapters.values()} == {outbound.GuardedAdapter}
    with LocalServer({"/secret": answer(200, BODY)}) as internal:
        routes = {
            "/userinfo": redirect(f"{internal.url}/secret", body=BODY),
            "/token": answer(200, BODY * 100),
        }
        with LocalServer(routes) as server:
            with pytest.raises(FetchError) as caught:
                session.get(f"{server.url}/userinfo", withhold_token=True)
            assert _refused(caught).reason is Reason.REDIRECT
            with pytest.raises(FetchError) as caught:
                session.fetch_token(f"{server.url}/token", grant_type="client_credentials")
            assert _refused(caught).reason is Reason.TOO_LARGE
    assert internal.hits == []
    with pytest.raises(requests.exceptions.InvalidSchema):  # no adapter for anything but http(s)
        session.get("file:///etc/passwd", withhold_token=True)
