"""The token endpoint's rate limits, per address and per client (the one the request claims to be,
unverified), counted once per request whichever door answers it (idp.oidc.views, idp.lane)."""

from __future__ import annotations

from typing import Any

from core import ratelimit

# The WSGI environ key under which the direct lane leaves the decision for a request it counted
# and then left to the machine stack, so that the stack does not count it again. A client cannot
# set it: servers name headers HTTP_*.
COUNTED = "idp.token_rate_decision"


def hit(address: str, client_id: str) -> ratelimit.Decision:
    return ratelimit.hit_all(
        (ratelimit.configured("token-ip"), address or "unknown"),
        (ratelimit.configured("token-client"), client_id[:100] or "anonymous"),
    )


def decision(environ: dict[str, Any], address: str, client_id: str) -> ratelimit.Decision:
    """The decision the lane left for this request, or a new count."""
    counted = environ.get(COUNTED)
    return counted if isinstance(counted, ratelimit.Decision) else hit(address, client_id)
