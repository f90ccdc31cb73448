from __future__ import annotations

from celery import shared_task
from oauth2_provider.models import clear_expired

from idp.oidc import backchannel, blacklist, device, par, services
from idp.oidc.backchannel import send_logout_token

__all__ = ["clear_expired_tokens", "resync_blacklist", "rotate_keys_if_due", "send_logout_token"]


@shared_task(name="oidc.rotate_keys_if_due")
def rotate_keys_if_due() -> str:
    return services.rotate_keys_if_due().kid


@shared_task(name="oidc.clear_expired")
def clear_expired_tokens() -> int:
    """DOT's expired-token clean-up, blacklist rows of tokens that expired anyway, relying
    parties' sessions that expired without a logout, pushed authorization requests past use, and
    device authorizations nobody finished (their expiry audited) or that ended a day ago."""
    clear_expired()
    backchannel.prune()
    par.prune()
    device.prune()
    return blacklist.prune()


@shared_task(name="oidc.resync_blacklist")
def resync_blacklist() -> int:
    """Re-assert every unexpired revocation in Redis: a revocation whose announcement was lost
    (Redis briefly unreachable) reaches it within a minute."""
    return blacklist.rebuild()
