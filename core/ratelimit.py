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

from core.pubsub import redis_client

# KEYS = buckets; ARGV = emission interval and burst tolerance (us) for each, in turn.
# All or nothing: a request refused by one bucket is charged to none. Returns {allowed, retry_us}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local updates, wait = {}, 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if allow_at > now then
    if allow_at - now > wait then wait = allow_at - now end
  else
    updates[i] = new_tat
  end
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, updates[i], 'PX', math.ceil((updates[i] - now) / 1000) + 1)
end
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

    def hit(self, buckets: list[tuple[str, int, int]]) -> tuple[bool, int]:
        """The Lua script's rule for one process: (key, interval, tolerance) each, all or nothing."""
        now = time.monotonic_ns() // 1000
        with self._lock:
            updates, wait = {}, 0
            for key, interval, tolerance in buckets:
                new_tat = max(self._tat.get(key, now), now) + interval
                if new_tat - tolerance > now:
                    wait = max(wait, new_tat - tolerance - now)
                else:
                    updates[key] = new_tat
            if wait:
                return False, wait
            self._tat.update(updates)
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
        _script = redis_client().register_script(_GCRA)  # the process's one client
    return _script


def hit(limit: Limit, subject: str) -> Decision:
    """Count one request by `subject` (an IP, a login, a client id) against `limit`."""
    return hit_all((limit, subject))


def hit_all(*checks: tuple[Limit, str]) -> Decision:
    """Count one request against several limits in one Redis round trip; refused if any is
    exhausted, and then charged to none."""
    if not settings.IDP_RATE_LIMITS_ENABLED:
        return Decision(True)
    buckets = [
        (f"idp:rl:{limit.name}:{subject}", limit.interval_us, limit.interval_us * limit.limit)
        for limit, subject in checks
    ]
    if settings.REDIS_URL:
        args = [value for _key, interval, tolerance in buckets for value in (interval, tolerance)]
        allowed, retry_us = _redis_script()(keys=[key for key, _, _ in buckets], args=args)
    else:
        allowed, retry_us = _local.hit(buckets)
    return Decision(bool(allowed), 0 if allowed else max(1, -(-int(retry_us) // 1_000_000)))


def reset_local() -> None:
    """Forget the in-process buckets (tests)."""
    global _script
    _local.clear()
    _script = None
