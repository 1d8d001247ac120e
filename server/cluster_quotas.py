"""Per-address quotas of a relay deployment on Redis: one count for all its processes, reserved atomically.

The single process keeps these counts in memory (server/quotas.py); here every process checks and
takes its share in one Lua script, so N processes allow what one would, and simultaneous requests
on different processes cannot pass a cap. Keys (under `redis_prefix`; see
site_src/federated-protocol.md, *Several relay processes*):

    pending         create token -> {proc, addr, deadline}: creates admitted but not yet stored.
                    They count against `max_sessions` and the address's live sessions until the
                    create stores its session (then `sessions` and `creator:ADDR` count it) or
                    gives up; one whose process's heartbeat (`proc:P`) lapsed or whose deadline
                    passed is dropped by the next admission, so a killed process leaks none
    rate:ADDR       sorted set of the address's creates in the last 60 s (score: Redis time, ms),
                    the same sliding window as the single process; it expires 60 s after the last
    sockprocs       the processes that may hold sockets
    sock:P          process P's open sockets: address -> count. It expires `lease_s` after P's last
                    heartbeat, so a dead process's sockets stop counting with its heartbeat

Time comes from Redis (`TIME`), one clock for every host. The scripts read keys named by other
keys' contents (a process's `sock:P`, `proc:P`): a deployment runs on one Redis server, not a
Redis Cluster, as the rest of server/cluster*.py assumes.
"""

from __future__ import annotations

import asyncio
import logging

from .quotas import SOCKET_RETRY_S, WINDOW_S, Refusal, retry_seconds
from .settings import RelaySettings

log = logging.getLogger("tabgpt.relay.cluster")

# An admitted create that has not stored its session within this long loses its reservation even
# while its process lives (a create takes seconds: weights made off the loop, then one transaction).
RESERVE_S = 60.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS sessions, creator:ADDR, pending, rate:ADDR; ARGV token, proc, addr, max_sessions,
# max_sessions_per_address, creates_per_minute, window ms, reserve ms, proc key prefix
# -> {0} admitted (reserved and counted), {1} max_sessions, {2} sessions_per_address,
#    {3, ms until the oldest create leaves the window} creates_per_minute
ADMIT = _NOW + """
local held, mine = 0, 0
local pending = redis.call('HGETALL', KEYS[3])
for i = 1, #pending, 2 do
  local p = cjson.decode(pending[i + 1])
  if p['deadline'] < now or redis.call('EXISTS', ARGV[9] .. p['proc']) == 0 then
    redis.call('HDEL', KEYS[3], pending[i])
  else
    held = held + 1
    if p['addr'] == ARGV[3] then mine = mine + 1 end
  end
end
if redis.call('SCARD', KEYS[1]) + held >= tonumber(ARGV[4]) then return {1} end
if redis.call('SCARD', KEYS[2]) + mine >= tonumber(ARGV[5]) then return {2} end
local window = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[6]) then
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  return {3, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('PEXPIRE', KEYS[4], window)
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode({proc = ARGV[2], addr = ARGV[3], deadline = now + tonumber(ARGV[8])}))
return {0}
"""
# KEYS pending, sessions, creator:ADDR, then the new session's keys (written with a TTL); ARGV
# token, session id -> 1 stored for good, 0 the reservation lapsed (the session must not appear)
COMMIT = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 4, #KEYS do redis.call('PERSIST', KEYS[i]) end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""
# KEYS sockprocs, sock:ME; ARGV me, addr, this process's count for addr with the new socket,
# limit, ttl ms, sock key prefix -> 1 reserved, 0 over the limit
SOCKET_OPEN = """
local total = tonumber(ARGV[3])
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if p ~= ARGV[1] then
    local key = ARGV[6] .. p
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', KEYS[1], p)
    else
      total = total + tonumber(redis.call('HGET', key, ARGV[2]) or '0')
    end
  end
end
if total > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

_REASONS = {1: "max_sessions", 2: "sessions_per_address", 3: "creates_per_minute"}


class ReservationLapsed(OSError):
    """A create outlived its reservation (its process was stalled past RESERVE_S or taken for dead):
    its session is not stored, and the create is answered as one that could not be stored (503)."""


class ClusterQuotas:
    """The deployment-wide counts of one relay process. `r` is its asyncio Redis client, `keys` its
    server.cluster_keys.Keys, `me` its process id (whose heartbeat is `keys.proc(me)`)."""

    def __init__(self, r, keys, me: str, settings: RelaySettings):
        self.r, self.k, self.me, self.settings = r, keys, me, settings
        self.admit_script = r.register_script(ADMIT)
        self.commit_script = r.register_script(COMMIT)
        self.socket_script = r.register_script(SOCKET_OPEN)
        # this process's open sockets per address: the truth that sock:ME mirrors. Every change of
        # either happens under the lock, so a resync never overwrites a reservation in flight
        self.sockets: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self.stopped = False  # set by forget: sockets closed from then on change only the memory

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.lease_s * 1000)

    # --- creates -------------------------------------------------------------------------------

    async def admit(self, token: str, address: str, idle_retry: int) -> Refusal | None:
        """Check the caps and the rate of a create from `address` and, when it passes, reserve its
        place and count it, in one step. `idle_retry`: the Retry-After of a refusal by a cap."""
        s, k = self.settings, self.k
        code, *rest = await self.admit_script(
            keys=[k.sessions, k.creator(address), k.pending, k.rate(address)],
            args=[token, self.me, address, s.max_sessions, s.max_sessions_per_address, s.creates_per_minute,
                  int(WINDOW_S * 1000), int(RESERVE_S * 1000), k.proc("")])
        if code == 0:
            return None
        reason = _REASONS[code]
        if reason == "max_sessions":
            message = f"the deployment has its maximum of {s.max_sessions} sessions"
        elif reason == "sessions_per_address":
            message = f"at most {s.max_sessions_per_address} live sessions per address; delete one or let one expire"
        else:
            message = f"at most {s.creates_per_minute} sessions may be created per minute from one address"
            return Refusal(reason, message, retry_seconds(rest[0] / 1000))
        return Refusal(reason, message, idle_retry)

    async def commit(self, token: str, sid: str, address: str, session_keys: list[str]) -> None:
        """Make a stored session count (and its keys, written with a TTL, permanent), or raise
        ReservationLapsed when its reservation is gone: then another create may hold its place."""
        k = self.k
        if not await self.commit_script(keys=[k.pending, k.sessions, k.creator(address), *session_keys],
                                        args=[token, sid]):
            raise ReservationLapsed(f"the reservation of session {sid} lapsed before it was stored")

    async def release(self, token: str) -> None:
        """Give back the place of an admitted create that stored nothing (it still counts in the rate)."""
        try:
            await self.r.hdel(self.k.pending, token)
        except Exception as e:  # it lapses by its deadline or with this process's heartbeat
            log.warning("releasing a create reservation failed: %s: %s", type(e).__name__, e)

    # --- sockets -------------------------------------------------------------------------------

    async def open_socket(self, address: str) -> Refusal | None:
        limit = self.settings.max_sockets_per_address
        async with self._lock:
            count = self.sockets.get(address, 0) + 1
            ok = await self.socket_script(keys=[self.k.sockprocs, self.k.sock(self.me)],
                                          args=[self.me, address, count, limit, self.ttl_ms, self.k.sock("")])
            if not ok:
                return Refusal("sockets_per_address", f"at most {limit} open connections per address",
                               SOCKET_RETRY_S)
            self.sockets[address] = count
        return None

    async def close_socket(self, address: str) -> None:
        async with self._lock:
            count = self.sockets.get(address, 0) - 1
            if count > 0:
                self.sockets[address] = count
            else:
                self.sockets.pop(address, None)
            if self.stopped:
                return
            try:
                if count > 0:
                    await self.r.hset(self.k.sock(self.me), address, count)
                else:
                    await self.r.hdel(self.k.sock(self.me), address)
            except Exception as e:  # Redis away: the next resync writes the count
                log.warning("releasing a socket of %s failed: %s: %s", address, type(e).__name__, e)

    async def resync(self) -> None:
        """Write this process's socket counts to sock:ME again: after its heartbeat lapsed (a stalled
        process) the key expired, and a failed release left it too high."""
        mine = self.k.sock(self.me)
        async with self._lock:
            if self.stopped:
                return
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.delete(mine)
                if self.sockets:
                    pipe.hset(mine, mapping=dict(self.sockets))
                    pipe.pexpire(mine, self.ttl_ms)
                    pipe.sadd(self.k.sockprocs, self.me)
                await pipe.execute()

    async def forget(self) -> None:
        """On a clean stop: this process's sockets stop counting at once."""
        self.stopped = True
        await self.r.delete(self.k.sock(self.me))
        await self.r.srem(self.k.sockprocs, self.me)
