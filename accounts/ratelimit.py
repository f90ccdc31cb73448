"""Rate limits on Redis: GCRA (a token bucket kept as one timestamp per key), atomic in Lua.

Each limit allows `limit` requests per `window` seconds with bursts up to `limit`; the answer
says how long to wait. Redis's own clock is used, so app servers with drifting clocks agree.
Without Redis (the embedded default) an in-process bucket does the same for one process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings

# KEYS[1] = bucket; ARGV = emission interval (us), burst tolerance (us). Returns {allowed, retry_us}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window: int  # seconds

    @property
    def interval_us(self) -> int:
        return max(1, self.window * 1_000_000 // self.limit)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds, for Retry-After


def configured(name: str) -> Limit:
    """A limit from settings.IDP_RATE_LIMITS: `name -> (limit, window seconds)`."""
    limit, window = settings.IDP_RATE_LIMITS[name]
    return Limit(name, limit, window)


class _LocalBuckets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def hit(self, key: str, interval: int, tolerance: int) -> tuple[bool, int]:
        now = time.monotonic_ns() // 1000
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + interval
            if new_tat - tolerance > now:
                return False, new_tat - tolerance - now
            self._tat[key] = new_tat
            if len(self._tat) > 100_000:  # bound memory: forget buckets that are full again
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return True, 0

    def clear(self) -> None:
        with self._lock:
            self._tat.clear()


_local = _LocalBuckets()
_script = None


def _redis_script():
    global _script
    if _script is None:
        from django_redis import get_redis_connection

        _script = get_redis_connection("default").register_script(_GCRA)
    return _script


def hit(limit: Limit, subject: str) -> Decision:
    """Count one request by `subject` (an IP, a login, a client id) against `limit`."""
    if not settings.IDP_RATE_LIMITS_ENABLED:
        return Decision(True)
    key = f"idp:rl:{limit.name}:{subject}"
    interval = limit.interval_us
    tolerance = interval * limit.limit
    if settings.REDIS_URL:
        allowed, retry_us = _redis_script()(keys=[key], args=[interval, tolerance])
    else:
        allowed, retry_us = _local.hit(key, interval, tolerance)
    return Decision(bool(allowed), 0 if allowed else max(1, -(-int(retry_us) // 1_000_000)))


def reset_local() -> None:
    """Forget the in-process buckets (tests)."""
    global _script
    _local.clear()
    _script = None
