"""The Redis side of a relay deployment: key names and the scripts that change shared state
atomically (server/cluster.py; the layout is in site_src/federated-protocol.md, *Several relay processes*)."""

from __future__ import annotations


# --- scripts: each runs atomically in Redis --------------------------------------------------------

# KEYS lease, open; ARGV me, ms -> 0 not ours; the fencing epoch when taken now (open.epoch + 1);
# -1 when renewed
LEASE = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return redis.call('HINCRBY', KEYS[2], 'epoch', 1)
end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return -1 end
return 0
"""
# KEYS open; ARGV now, round_seconds, grace_seconds -> the open state after a join
JOIN_START = """
if redis.call('HGET', KEYS[1], 'phase') == 'idle' then
  local dl = tonumber(ARGV[1]) + tonumber(ARGV[2])
  local phase = 'training'
  if tonumber(ARGV[3]) <= 0 then phase = 'grace' end
  redis.call('HSET', KEYS[1], 'phase', phase, 'started_at', ARGV[1], 'deadline', tostring(dl))
end
if redis.call('HGET', KEYS[1], 'idle_since') ~= '' then redis.call('HSET', KEYS[1], 'idle_since', '') end
return redis.call('HGETALL', KEYS[1])
"""
# KEYS conn; ARGV client id, this process, max_clients_per_session, proc key prefix -> {1, the
# live process that held the client or ''}: admitted, conn[client] = this process; {0, ''}: full.
# A client counts while its process's heartbeat lives (as ClusterRelay._connected); one that is
# connected already takes no new place (it moves here, superseding its old connection)
ADMIT_CLIENT = """
local entries = redis.call('HGETALL', KEYS[1])
local live, n, held = {}, 0, ''
for i = 1, #entries, 2 do
  local p = entries[i + 1]
  if live[p] == nil then live[p] = redis.call('EXISTS', ARGV[4] .. p) == 1 end
  if live[p] then
    if entries[i] == ARGV[1] then held = p else n = n + 1 end
  end
end
if held == '' and n >= tonumber(ARGV[3]) then return {0, ''} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, held}
"""
# KEYS open, subs, digests; ARGV client id, this process: a resumed client's delta held by
# another process is forgotten (unless the round is closing), so it may send it again here
RESUME = """
if redis.call('HGET', KEYS[1], 'closing') == '1' then return 0 end
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return 0 end
local d = cjson.decode(m)
if d['proc'] == ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], d['digest'])
return 1
"""
# KEYS open, subs, digests; ARGV round, client id, meta JSON, digest -> submissions, or -1 stale,
# -2 already submitted, -3 replayed bytes
REGISTER = """
local o = redis.call('HMGET', KEYS[1], 'round', 'phase', 'closing')
if o[1] ~= ARGV[1] or o[2] == 'idle' or o[3] == '1' then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -2 end
if redis.call('SADD', KEYS[3], ARGV[4]) == 0 then return -3 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return redis.call('HLEN', KEYS[2])
"""
# KEYS open, subs; ARGV round -> the frozen submissions (flat list), or nil if the round moved
CLOSE_BEGIN = """
if redis.call('HGET', KEYS[1], 'round') ~= ARGV[1] then return nil end
redis.call('HSET', KEYS[1], 'closing', '1')
return redis.call('HGETALL', KEYS[2])
"""
# KEYS open, subs, digests, plan, parts; ARGV round, client ids...: drop deltas lost with a dead process
DROP = """
if redis.call('HGET', KEYS[1], 'round') ~= ARGV[1] then return 0 end
for i = 2, #ARGV do
  local m = redis.call('HGET', KEYS[2], ARGV[i])
  if m then redis.call('SREM', KEYS[3], cjson.decode(m)['digest']) end
  redis.call('HDEL', KEYS[2], ARGV[i])
end
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'closing', '0')
return 1
"""
# KEYS open, head, u, w, m, staged u, staged w, staged m, subs, digests, plan, parts, forwards...;
# ARGV epoch, round, head JSON, u bytes, w bytes, '1' with momentum (DiLoCo) else '0', then the next
# open state's field, value pairs -> 1 committed; 0 fenced off (another epoch, or the round moved);
# -1 a staged value is missing or short. The staged values become the committed ones by RENAME
# (O(1): no large value passes through the script); temporary keys go with UNLINK (freed lazily)
COMMIT = """
local o = redis.call('HMGET', KEYS[1], 'epoch', 'round')
if o[1] ~= ARGV[1] or o[2] ~= ARGV[2] then return 0 end
local m = ARGV[6] == '1'
if redis.call('STRLEN', KEYS[6]) ~= tonumber(ARGV[4]) or redis.call('STRLEN', KEYS[7]) ~= tonumber(ARGV[5])
   or (m and redis.call('STRLEN', KEYS[8]) ~= tonumber(ARGV[5])) then return -1 end
redis.call('RENAME', KEYS[6], KEYS[3])
redis.call('PERSIST', KEYS[3])
redis.call('RENAME', KEYS[7], KEYS[4])
redis.call('PERSIST', KEYS[4])
if m then
  redis.call('RENAME', KEYS[8], KEYS[5])
  redis.call('PERSIST', KEYS[5])
else
  redis.call('DEL', KEYS[5])
end
redis.call('SET', KEYS[2], ARGV[3])
for i = 9, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
return 1
"""
# KEYS open, subs; ARGV round, expected phase, new phase -> 1 when changed (a leader's timer step)
SET_PHASE = """
local o = redis.call('HMGET', KEYS[1], 'round', 'phase', 'closing')
if o[1] ~= ARGV[1] or o[2] ~= ARGV[2] or o[3] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'phase', ARGV[3])
return 1
"""
# KEYS open, subs; ARGV round, attempt, phase, started_at, deadline, idle_since: a round that
# reached its deadline with no delta starts again (or goes idle)
RESTART = """
local o = redis.call('HMGET', KEYS[1], 'round', 'closing')
if o[1] ~= ARGV[1] or o[2] == '1' or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'attempt', ARGV[2], 'phase', ARGV[3], 'started_at', ARGV[4], 'deadline', ARGV[5],
           'idle_since', ARGV[6])
return 1
"""


def _pairs(flat) -> dict:
    return {_s(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _s(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


class Keys:
    def __init__(self, prefix: str):
        self.p = prefix
        self.sessions, self.events = prefix + "sessions", prefix + "events"
        # the deployment-wide quotas (server/cluster_quotas.py)
        self.pending, self.sockprocs = prefix + "pending", prefix + "sockprocs"

    def s(self, sid: str, name: str) -> str:
        return f"{self.p}s:{sid}:{name}"

    def proc(self, proc: str) -> str:
        return f"{self.p}proc:{proc}"

    def creator(self, address: str) -> str:
        return f"{self.p}creator:{address}"

    def rate(self, address: str) -> str:
        return f"{self.p}rate:{address}"

    def sock(self, proc: str) -> str:
        return f"{self.p}sock:{proc}"

    def all_of(self, sid: str) -> list[str]:
        return [self.s(sid, n) for n in ("head", "w", "m", "open", "roster", "conn", "subs", "digests", "plan",
                                         "parts", "u", "lease")]


SCRIPTS = {"lease": LEASE, "join_start": JOIN_START, "admit_client": ADMIT_CLIENT, "resume": RESUME,
           "register": REGISTER, "close_begin": CLOSE_BEGIN, "drop": DROP, "commit": COMMIT, "set_phase": SET_PHASE,
           "restart": RESTART}


def register_scripts(r) -> dict:
    """name -> the script registered on the client `r` (redis-py's EVALSHA with a fallback to EVAL)."""
    return {name: r.register_script(src) for name, src in SCRIPTS.items()}
