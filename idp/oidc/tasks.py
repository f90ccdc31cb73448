from __future__ import annotations

from celery import shared_task
from oauth2_provider.models import clear_expired

from idp.oidc import blacklist, device, services


@shared_task(name="oidc.rotate_keys_if_due")
def rotate_keys_if_due() -> str:
    return services.rotate_keys_if_due().kid


@shared_task(name="oidc.clear_expired")
def clear_expired_tokens() -> int:
    """DOT's expired-token clean-up, device authorizations nobody finished (their expiry audited)
    or that ended a day ago, plus blacklist rows of tokens that expired anyway."""
    clear_expired()
    device.prune()
    return blacklist.prune()


@shared_task(name="oidc.resync_blacklist")
def resync_blacklist() -> int:
    """Re-assert every unexpired revocation in Redis: a revocation whose announcement was lost
    (Redis briefly unreachable) reaches it within a minute."""
    return blacklist.rebuild()
