"""Stream worker slots in Redis: how a live session is pinned to exactly one worker process.

Every stream worker process owns a few slots (`stream_sessions_per_worker`, one serving thread
each), entries of the `STREAM_SLOTS_HASH` hash that it refreshes with a heartbeat. An API
process claims an idle slot whose heartbeat is fresh with one Lua script, so two API processes
can never claim the same slot, and each claim takes a
new fencing token from a counter: the worker acts only on a session request carrying the
token of the claim it holds, and releases its slot only with that same token, so a late
message from an earlier claim can neither start nor end a later session.

Why slots in Redis rather than a long-running Celery task on a `stream` queue: a session
needs an answer at once ("busy" when no worker is free, the client's protocol demands it),
needs the worker ready and subscribed before the first audio byte, and must not survive as a
queued message that starts minutes later when the client is long gone. A claim that
succeeds or fails in one round trip gives all three; a queue gives none of them.

Every time in a slot (heartbeat, claim) is Redis' own (`TIME` inside the scripts,
`shared.redis_clock`): the worker that writes a heartbeat and the API that judges it run on
different hosts whose clocks may disagree by minutes.

A worker that dies stops refreshing its slot: the slot is never claimed again and is dropped
by the next claim once it is well past the heartbeat timeout. A restarted process registers
a new slot under a new id.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field

import redis

from shared import redis_keys
from shared.redis_clock import LUA_NOW_S, redis_now_s

STATE_IDLE = "idle"
STATE_CLAIMED = "claimed"

#: A slot whose heartbeat is older than this belongs to a dead worker and is never claimed.
SLOT_HEARTBEAT_TTL_S = 3.0
#: ... and past this it is deleted by the next claim.
SLOT_FORGET_AFTER_S = 60.0
#: A host takes a new live session only while its sessions' measured load plus the new one's
#: stays within this share of its cores: the rest is headroom for the VAD, the relay and bursts.
CAPACITY_SHARE = 0.9

# KEYS[1] slots hash, KEYS[2] fence counter; ARGV: now_s ('' = Redis' clock), ttl_s, forget_s, session_id, share
# Admission by measured capacity: every process reports the cores its sessions use now
# (`load_cores`), what one session costs (`session_cost_cores`), its host's cores (`cores`) and
# whether all its sessions keep up (`admit`). A host's load is the sum over its processes of the
# larger of what they measured and their claimed slots times a session's cost (a session claimed a
# moment ago has used nothing yet). An idle slot is handed out only where its process admits and
# its host's load plus one more session stays within `CAPACITY_SHARE` of its cores. Slots of
# workers that report nothing of this (older workers) are counted as before: any idle slot.
# Among the slots that fit, the one whose process runs the fewest sessions: sessions spread
# over processes (and their interpreters' locks) instead of filling one first.
_CLAIM_LUA = """
local now = tonumber(ARGV[1]) or """ + LUA_NOW_S + """
local ttl = tonumber(ARGV[2])
local forget = tonumber(ARGV[3])
local share = tonumber(ARGV[5])
local entries = redis.call('HGETALL', KEYS[1])
local fresh = {}
local proc_load = {}
local proc_claimed = {}
local proc_cost = {}
local proc_host = {}
for i = 1, #entries, 2 do
  local worker = entries[i]
  local slot = cjson.decode(entries[i + 1])
  local age = now - tonumber(slot['heartbeat_s'])
  if age > forget then
    redis.call('HDEL', KEYS[1], worker)
  elseif age <= ttl then
    table.insert(fresh, {worker, slot})
    if slot['cores'] then
      local proc = tostring(slot['host']) .. ':' .. tostring(slot['pid'])
      proc_load[proc] = tonumber(slot['load_cores']) or 0
      proc_cost[proc] = tonumber(slot['session_cost_cores']) or 0
      proc_host[proc] = tostring(slot['host'])
      if slot['state'] == 'claimed' then
        proc_claimed[proc] = (proc_claimed[proc] or 0) + 1
      end
    end
  end
end
local host_load = {}
for proc, load in pairs(proc_load) do
  local booked = (proc_claimed[proc] or 0) * proc_cost[proc]
  local host = proc_host[proc]
  host_load[host] = (host_load[host] or 0) + math.max(load, booked)
end
local chosen = nil
local chosen_slot = nil
local chosen_busy = nil
for _, entry in ipairs(fresh) do
  local slot = entry[2]
  if slot['state'] == 'idle' then
    local fits = true
    local busy = 0
    if slot['cores'] then
      local host = tostring(slot['host'])
      local cost = tonumber(slot['session_cost_cores']) or 0
      fits = slot['admit'] ~= 0 and (host_load[host] or 0) + cost <= tonumber(slot['cores']) * share
      busy = proc_claimed[host .. ':' .. tostring(slot['pid'])] or 0
    end
    if fits and (chosen_busy == nil or busy < chosen_busy) then
      chosen = entry[1]
      chosen_slot = slot
      chosen_busy = busy
    end
  end
end
if chosen == nil then
  return nil
end
local fence = redis.call('INCR', KEYS[2])
chosen_slot['state'] = 'claimed'
chosen_slot['fence'] = fence
chosen_slot['session'] = ARGV[4]
chosen_slot['claimed_s'] = now
redis.call('HSET', KEYS[1], chosen, cjson.encode(chosen_slot))
return {chosen, fence, tostring(now)}
"""

# KEYS[1] slots hash; ARGV: worker, now_s ('' = Redis' clock), state, session, fence, host, pid,
# capacity (JSON)
# Refreshes the heartbeat and the process's capacity figures. A missing slot (first beat, or
# Redis restarted and lost it) is written with the state the worker believes it is in, so a busy
# worker is never handed out.
_HEARTBEAT_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local slot
if raw then
  slot = cjson.decode(raw)
else
  slot = {state = ARGV[3], session = ARGV[4], fence = tonumber(ARGV[5]), host = ARGV[6], pid = tonumber(ARGV[7])}
end
slot['heartbeat_s'] = tonumber(ARGV[2]) or """ + LUA_NOW_S + """
if ARGV[8] ~= '' then
  for key, value in pairs(cjson.decode(ARGV[8])) do
    slot[key] = value
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(slot))
return cjson.encode(slot)
"""

# KEYS[1] slots hash; ARGV: worker, fence, now_s ('' = Redis' clock). Only the holder of the claim frees it.
_RELEASE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return 0
end
local slot = cjson.decode(raw)
if tonumber(slot['fence']) ~= tonumber(ARGV[2]) then
  return 0
end
slot['state'] = 'idle'
slot['session'] = ''
slot['heartbeat_s'] = tonumber(ARGV[3]) or """ + LUA_NOW_S + """
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(slot))
return 1
"""


@dataclass(frozen=True)
class Claim:
    """A slot held for one session: the worker to talk to and the token that proves it."""

    worker_id: str
    fence: int
    #: Redis' time of the claim: deadlines for the worker are counted from it, on Redis' clock.
    claimed_at_s: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class SlotCapacity:
    """What a stream worker process measures of its own load, sent with every heartbeat."""

    #: The cores its host gives live sessions (its CPU affinity).
    cores: float
    #: The cores the process's sessions used lately (CPU time over wall time).
    load_cores: float
    #: What one more session is expected to cost, measured from the sessions it ran.
    session_cost_cores: float
    #: False while one of its sessions falls behind real time: it takes no new one.
    admit: bool

    def as_fields(self) -> dict[str, object]:
        return {"cores": round(self.cores, 3), "load_cores": round(self.load_cores, 3),
                "session_cost_cores": round(self.session_cost_cores, 3), "admit": int(self.admit)}


@dataclass(frozen=True)
class SlotSummary:
    live: int
    idle: int


def _arg(now_s: float | None) -> float | str:
    """A script's time argument: a test's fixed time, or '' for Redis' own clock."""
    return "" if now_s is None else now_s


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_slot(client: redis.Redis, session_id: str, now_s: float | None = None) -> Claim | None:
    """Atomically take an idle live slot for `session_id`; None when every worker is busy."""
    result = client.eval(_CLAIM_LUA, 2, redis_keys.STREAM_SLOTS_HASH, redis_keys.STREAM_FENCE_COUNTER,
                         _arg(now_s), SLOT_HEARTBEAT_TTL_S, SLOT_FORGET_AFTER_S, session_id, CAPACITY_SHARE)
    if not result:
        return None
    worker, fence, claimed_at_s = result
    return Claim(worker_id=worker.decode() if isinstance(worker, bytes) else str(worker), fence=int(fence),
                 claimed_at_s=float(claimed_at_s))


def heartbeat_slot(client: redis.Redis, worker_id: str, *, state: str, session_id: str = "", fence: int = 0,
                   now_s: float | None = None, capacity: SlotCapacity | None = None) -> dict[str, object]:
    """Refresh this worker's slot (and its process's capacity figures); returns the slot as
    Redis holds it."""
    fields = json.dumps(capacity.as_fields()) if capacity is not None else ""
    raw = client.eval(_HEARTBEAT_LUA, 1, redis_keys.STREAM_SLOTS_HASH, worker_id, _arg(now_s), state, session_id, fence,
                      socket.gethostname(), os.getpid(), fields)
    return json.loads(raw)


def release_slot(client: redis.Redis, worker_id: str, fence: int, now_s: float | None = None) -> bool:
    return bool(client.eval(_RELEASE_LUA, 1, redis_keys.STREAM_SLOTS_HASH, worker_id, fence, _arg(now_s)))


def forget_slot(client: redis.Redis, worker_id: str) -> None:
    """A worker that stops cleanly removes its slot at once."""
    client.hdel(redis_keys.STREAM_SLOTS_HASH, worker_id)


def summarize_slots(client: redis.Redis, now_s: float | None = None) -> SlotSummary:
    """How many stream workers are alive and how many of them are free, for /readyz."""
    now_s = redis_now_s(client) if now_s is None else now_s
    live = idle = 0
    for raw in client.hvals(redis_keys.STREAM_SLOTS_HASH):
        slot = json.loads(raw)
        if now_s - float(slot.get("heartbeat_s", 0)) > SLOT_HEARTBEAT_TTL_S:
            continue
        live += 1
        idle += slot.get("state") == STATE_IDLE
    return SlotSummary(live=live, idle=idle)


def slot_of_session(client: redis.Redis, session_id: str, now_s: float | None = None) -> Claim | None:
    """The live worker that holds `session_id` now, as a claim (to resume the session), or
    None: the session ended, or its worker died. One read of a hash with one entry per stream
    worker process: small."""
    now_s = redis_now_s(client) if now_s is None else now_s
    for worker, raw in client.hgetall(redis_keys.STREAM_SLOTS_HASH).items():
        slot = json.loads(raw)
        if (slot.get("state") == STATE_CLAIMED and slot.get("session") == session_id
                and now_s - float(slot.get("heartbeat_s", 0)) <= SLOT_HEARTBEAT_TTL_S):
            return Claim(worker_id=worker.decode() if isinstance(worker, bytes) else str(worker),
                         fence=int(slot["fence"]))
    return None
