"""Sending rates shared by every worker: per SMTP relay and per recipient domain.

Each limit is a GCRA bucket (the "generic cell rate algorithm", a token bucket
stored as one timestamp) in Redis, checked and reserved for all the limits of a
message in one Lua call, on Redis's clock, so any number of worker processes
and hosts share them. A message may wait a little (the worker sleeps); when the
wait would be long, nothing is reserved and the caller holds the message back.

A receiver answering 421 or 4.7.x ("too many messages, slow down") halves that
domain's rate for a quarter of an hour (down to one message a minute); the
slowed domains are shared through Redis and read by each worker once a second.

Without Redis (embedded mode, filesystem broker) the same buckets live in the
process: limits then hold per worker process, which is what one process needs.
No limit configured and no domain slowed: no Redis call at all.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from service.config import Config

PREFIX = "lettrine:rate:"
SLOWED = PREFIX + "slowed"  # set of domains currently slowed down
SLOW_FOR = 15 * 60  # seconds a slow-down lasts after the last 421
SLOW_START = 2.0  # msg/s for a domain that had no limit when it first answered 421
SLOW_FLOOR = 1 / 60  # never slower than one message a minute
REFRESH = 1.0  # seconds between two reads of the slowed domains

# KEYS: buckets. ARGV: max wait (ms), then interval and burst tolerance (ms) per key.
# Returns the wait in ms, reserved; or minus the wait when it exceeds the maximum
# (nothing reserved). Redis's own clock: workers' clocks may disagree.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_wait = tonumber(ARGV[1])
local wait, tats = 0, {}
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat
  if tat - burst - now > wait then wait = tat - burst - now end
end
if wait > max_wait then return -math.ceil(wait) end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tat = math.max(tats[i], now + wait) + interval
  redis.call('SET', key, tat, 'PX', math.floor(tat - now + 1000))
end
return math.ceil(wait)
"""


@dataclass(frozen=True)
class Limit:
    key: str
    rate: float  # messages per second
    bursts: bool = True  # a slowed-down domain gets no burst: one message per interval

    @property
    def interval_ms(self) -> float:
        return 1000 / self.rate

    @property
    def burst_ms(self) -> float:
        # Up to about one second's worth of messages may leave at once.
        if not self.bursts:
            return 0.0
        return max(0.0, (max(1.0, self.rate) - 1) * self.interval_ms)


class Throttle:
    """``wait(domain)``: seconds to sleep before sending (reserved), or None to hold back."""

    def __init__(
        self,
        client: "redis.Redis[Any] | None",
        *,
        relay: str,
        relay_rate: float = 0,
        domain_rate: float = 0,
        domain_rates: dict[str, float] | None = None,
        max_wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.relay = relay
        self.relay_rate = relay_rate
        self.domain_rate = domain_rate
        self.domain_rates = domain_rates or {}
        self.max_wait = max_wait
        self.clock = clock
        self._slowed: dict[str, float] = {}
        self._slowed_until: dict[str, float] = {}  # without Redis: when each slow-down ends
        self._read_at = -REFRESH
        self._script: Any = client.register_script(_GCRA) if client is not None else None
        self._local = _LocalBuckets()

    def rate_for(self, domain: str) -> float:
        """The domain's rate now (0: no limit): its setting, lowered by a slow-down."""
        self._refresh()
        configured = self.domain_rates.get(domain, self.domain_rate)
        slowed = self._slowed.get(domain)
        if slowed is None:
            return configured
        return min(configured, slowed) if configured else slowed

    def limits(self, domain: str) -> list[Limit]:
        found = []
        if self.relay_rate:
            found.append(Limit(f"{PREFIX}relay:{self.relay}", self.relay_rate))
        if rate := self.rate_for(domain):
            slowed = domain in self._slowed and rate == self._slowed[domain]
            found.append(Limit(f"{PREFIX}domain:{domain}", rate, bursts=not slowed))
        return found

    def wait(self, domain: str) -> float | None:
        limits = self.limits(domain)
        if not limits:
            return 0.0
        max_ms = self.max_wait * 1000
        if self._script is None:
            waited = self._local.take(limits, max_ms, self.clock() * 1000)
        else:
            args: list[float] = [max_ms]
            for limit in limits:
                args += [limit.interval_ms, limit.burst_ms]
            waited = float(self._script(keys=[limit.key for limit in limits], args=args))
        return None if waited < 0 else waited / 1000

    def slow_down(self, domain: str) -> float:
        """The domain said "too many": halve its rate for a while. Returns the new rate."""
        current = self.rate_for(domain) or SLOW_START * 2
        rate = max(SLOW_FLOOR, current / 2)
        self._slowed[domain] = rate
        self._slowed_until[domain] = self.clock() + SLOW_FOR
        if self.client is not None:
            pipe = self.client.pipeline()
            pipe.set(f"{PREFIX}slow:{domain}", repr(rate), ex=SLOW_FOR)
            pipe.sadd(SLOWED, domain)
            pipe.expire(SLOWED, SLOW_FOR)
            pipe.execute()
        return rate

    def _refresh(self) -> None:
        if self.client is None:
            now = self.clock()
            for domain in [d for d, until in self._slowed_until.items() if until <= now]:
                self._slowed.pop(domain, None)
                del self._slowed_until[domain]
            return
        if self.clock() - self._read_at < REFRESH:
            return
        self._read_at = self.clock()
        domains = sorted(
            d.decode() if isinstance(d, bytes) else d for d in self.client.smembers(SLOWED)
        )
        if not domains:
            self._slowed = {}
            return
        values = self.client.mget([f"{PREFIX}slow:{d}" for d in domains])
        self._slowed = {d: float(v) for d, v in zip(domains, values, strict=True) if v is not None}
        if gone := [d for d, v in zip(domains, values, strict=True) if v is None]:
            self.client.srem(SLOWED, *gone)


class _LocalBuckets:
    """The Lua script's arithmetic, for one process without Redis."""

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, limits: Sequence[Limit], max_ms: float, now: float) -> float:
        with self._lock:
            tats = [max(self._tats.get(limit.key, now), now) for limit in limits]
            wait = max(
                [0.0] + [t - limit.burst_ms - now for t, limit in zip(tats, limits, strict=True)]
            )
            if wait > max_ms:
                return -wait
            for tat, limit in zip(tats, limits, strict=True):
                self._tats[limit.key] = max(tat, now + wait) + limit.interval_ms
            return wait


def make_throttle(config: Config) -> Throttle:
    """The throttle of one worker process, on the deployment's Redis when there is one."""
    client = redis.Redis.from_url(config.redis_url) if config.redis_url else None
    return Throttle(
        client,
        relay=f"{config.smtp_host}:{config.smtp_port}",
        relay_rate=config.send_rate,
        domain_rate=config.domain_rate,
        domain_rates=config.domain_rates,
    )
