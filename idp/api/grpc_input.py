"""What a gRPC call brings, checked before any servicer sees it: the caller's address and the
strings of its request message. Pure functions, so the interceptor stays small and testable."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import unquote

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# A generic bound for every string field of every method (8 KiB, the longest token we accept);
# servicers keep their own tighter limits (logins, passwords, permission names).
MAX_STRING_FIELD_LENGTH = 8192


@lru_cache(maxsize=4096)  # one peer string per connection, and connections carry many calls
def peer_ip(peer: str) -> str | None:
    """The IP address in a gRPC peer string, or None (unix sockets, anything unparsable).

    gRPC core names peers as URIs: `ipv4:10.0.0.5:5678`, `ipv6:[2001:db8::1]:5678`, and some
    versions percent-encode the brackets, `ipv6:%5B::1%5D:5678`; `unix:/path` has no address.
    """
    scheme, _, address = peer.partition(":")
    if scheme not in {"ipv4", "ipv6"}:
        return None
    address = unquote(address)  # %5B…%5D, and %25 before an IPv6 zone (RFC 6874)
    if address.startswith("["):
        host, closed, _port = address[1:].partition("]")
        if not closed:
            return None
    else:
        host = address.rpartition(":")[0]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # the zone names our interface, not them
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)  # an IPv4 client on a dual-stack socket: its IPv4 bucket
    return str(ip)


def _string_values(message: Message, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, value) for every string set in `message`: nested messages, repeated fields
    and maps included. Fields left at their default ("") are not listed, and need no check."""
    for field, value in message.ListFields():
        path = prefix + field.name
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for key, item in value.items():
                if key_field.type == FieldDescriptor.TYPE_STRING:
                    yield f"{path} (key)", key
                if value_field.type == FieldDescriptor.TYPE_STRING:
                    yield path, item
                elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _string_values(item, f"{path}.")
            continue
        items = value if field.is_repeated else (value,)
        if field.type == FieldDescriptor.TYPE_STRING:
            for item in items:
                yield path, item
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in items:
                yield from _string_values(item, f"{path}.")


def string_field_problem(message: Message, max_length: int = MAX_STRING_FIELD_LENGTH) -> str | None:
    """Why the request must be refused (a fixed text naming the field, never its value), or None.
    NUL has no business in a login, token or id, and PostgreSQL refuses it in text columns."""
    for path, value in _string_values(message):
        if "\x00" in value:
            return f"field {path} contains a NUL character"
        if len(value) > max_length:
            return f"field {path} is longer than {max_length} characters"
    return None
