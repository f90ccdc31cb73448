"""What sign-in counts for Prometheus beside its audit records (audit.metrics counts those)."""

from __future__ import annotations

from prometheus_client import Counter

# Codes sent are not audited (a resend is not a change), so they are counted here, where
# accounts.mfa.send_code sends one.
CODES_SENT = Counter("idp_mfa_codes_sent", "Sign-in codes sent, by channel (email, sms)", ["channel"])
