"""The Redis broker: live state shared by several server nodes; every decision is one Lua script.

All keys share one hash tag (`{prefix}`), so the scripts' keys sit in one slot on Redis Cluster as on a
single server. Layout:

    {p}:c:<id>           hash   entry (JSON), sp (specialty), score, state, ringing (csv), owner, deadline
    {p}:q:<specialty>    zset   queued ids (zero-padded, so equal scores order by id as in memory)
    {p}:offers           zset   offered ids by ring deadline
    {p}:sla              zset   waiting ids by service-level expiry
    {p}:p:<user>         hash   presence (JSON) + ringing, with a TTL
    {p}:avail:<spec>     zset   user ids by idle_since (pruned lazily when the presence is gone)
    {p}:v:<key>          string small values with a TTL
    {p}:epoch            string set when the live state was built from the store
    {p}:ch:<channel>     pub/sub channels
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from telehealth.matching.broker import (
    AtOnce,
    BrokerStats,
    ClaimOutcome,
    LiveConsultation,
    LiveState,
    Message,
    MessageHandler,
    OrderedDelivery,
    QueueEntry,
    ReleaseOutcome,
    SpecialistPresence,
)

log = logging.getLogger("telehealth.broker")

ID_WIDTH = 12

# Shared Lua helpers, prepended to the scripts that need them.
_LUA_HELPERS = """
local function split(csv)
  local out = {}
  if csv and csv ~= '' then
    for part in string.gmatch(csv, '[^,]+') do out[#out + 1] = part end
  end
  return out
end
local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end
local function clear_rings(p, c, id)
  local ringing = split(redis.call('HGET', c, 'ringing'))
  for _, uid in ipairs(ringing) do
    local pk = p .. ':p:' .. uid
    if redis.call('HGET', pk, 'ringing') == id then redis.call('HSET', pk, 'ringing', '') end
  end
  redis.call('HSET', c, 'ringing', '')
  redis.call('ZREM', p .. ':offers', id)
  redis.call('HSET', c, 'deadline', '0')
end
local function win(p, c, id, uid)
  redis.call('ZREM', p .. ':q:' .. redis.call('HGET', c, 'sp'), id)
  clear_rings(p, c, id)
  redis.call('ZREM', p .. ':sla', id)
  redis.call('HSET', c, 'state', 'claimed', 'owner', uid)
  return 'won'
end
"""

# ARGV: prefix, id, entry json, specialty, score, expires_at
_ENQUEUE = """
local p, id = ARGV[1], ARGV[2]
local c = p .. ':c:' .. id
if redis.call('EXISTS', c) == 1 then return 0 end
redis.call('HSET', c, 'entry', ARGV[3], 'sp', ARGV[4], 'score', ARGV[5], 'state', 'queued',
           'ringing', '', 'owner', '', 'deadline', '0')
redis.call('ZADD', p .. ':q:' .. ARGV[4], ARGV[5], id)
if tonumber(ARGV[6]) > 0 then redis.call('ZADD', p .. ':sla', ARGV[6], id) end
return 1
"""

# ARGV: prefix, id, deadline, uid...
_OFFER = _LUA_HELPERS + """
local p, id, deadline = ARGV[1], ARGV[2], ARGV[3]
local c = p .. ':c:' .. id
if redis.call('HGET', c, 'state') ~= 'queued' then return {} end
local rung = {}
for i = 4, #ARGV do
  local uid = ARGV[i]
  local pk = p .. ':p:' .. uid
  if not contains(rung, uid) and redis.call('EXISTS', pk) == 1
     and redis.call('HGET', pk, 'status') == 'available'
     and (redis.call('HGET', pk, 'ringing') or '') == '' then
    redis.call('HSET', pk, 'ringing', id)
    rung[#rung + 1] = uid
  end
end
if #rung == 0 then return {} end
redis.call('ZREM', p .. ':q:' .. redis.call('HGET', c, 'sp'), id)
redis.call('HSET', c, 'state', 'offered', 'ringing', table.concat(rung, ','), 'deadline', deadline)
redis.call('ZADD', p .. ':offers', deadline, id)
return rung
"""

# ARGV: prefix, id, uid, mode ('accept' | 'claim')
_CLAIM = _LUA_HELPERS + """
local p, id, uid, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local c = p .. ':c:' .. id
local state = redis.call('HGET', c, 'state')
if not state then return 'unknown' end
if state == 'claimed' then return 'gone' end
local rung = contains(split(redis.call('HGET', c, 'ringing')), uid)
if mode == 'accept' then
  if state ~= 'offered' or not rung then return 'not_offered' end
elseif state == 'offered' and not rung then
  return 'gone'
end
return win(p, c, id, uid)
"""

# ARGV: prefix, id, uid  -> {released, requeued}
_RELEASE = _LUA_HELPERS + """
local p, id, uid = ARGV[1], ARGV[2], ARGV[3]
local c = p .. ':c:' .. id
if redis.call('HGET', c, 'state') ~= 'offered' then return {0, 0} end
local ringing = split(redis.call('HGET', c, 'ringing'))
if not contains(ringing, uid) then return {0, 0} end
local left = {}
for _, v in ipairs(ringing) do if v ~= uid then left[#left + 1] = v end end
local pk = p .. ':p:' .. uid
if redis.call('HGET', pk, 'ringing') == id then redis.call('HSET', pk, 'ringing', '') end
redis.call('HSET', c, 'ringing', table.concat(left, ','))
if #left > 0 then return {1, 0} end
redis.call('ZREM', p .. ':offers', id)
redis.call('HSET', c, 'state', 'queued', 'deadline', '0')
redis.call('ZADD', p .. ':q:' .. redis.call('HGET', c, 'sp'), redis.call('HGET', c, 'score'), id)
return {1, 1}
"""

# ARGV: prefix, id  -> the hash as a flat list, or {}
_REMOVE = _LUA_HELPERS + """
local p, id = ARGV[1], ARGV[2]
local c = p .. ':c:' .. id
local before = redis.call('HGETALL', c)
if #before == 0 then return {} end
redis.call('ZREM', p .. ':q:' .. redis.call('HGET', c, 'sp'), id)
clear_rings(p, c, id)
redis.call('ZREM', p .. ':sla', id)
redis.call('DEL', c)
return before
"""

# ARGV: prefix, id, entry json, specialty, score, expires_at
_REQUEUE = """
local p, id = ARGV[1], ARGV[2]
local c = p .. ':c:' .. id
if redis.call('HGET', c, 'state') ~= 'claimed' then return 0 end
redis.call('ZREM', p .. ':sla', id)
redis.call('HSET', c, 'entry', ARGV[3], 'sp', ARGV[4], 'score', ARGV[5], 'state', 'queued', 'owner', '')
redis.call('ZADD', p .. ':q:' .. ARGV[4], ARGV[5], id)
if tonumber(ARGV[6]) > 0 then redis.call('ZADD', p .. ':sla', ARGV[6], id) end
return 1
"""

# ARGV: prefix, uid, json, status, ttl_ms, idle_since, specialty...
_SET_PRESENCE = """
local p, uid = ARGV[1], ARGV[2]
local pk = p .. ':p:' .. uid
local ringing = redis.call('HGET', pk, 'ringing') or ''
redis.call('DEL', pk)
redis.call('HSET', pk, 'data', ARGV[3], 'status', ARGV[4], 'ringing', ringing)
redis.call('PEXPIRE', pk, ARGV[5])
for i = 7, #ARGV do
  local key = p .. ':avail:' .. ARGV[i]
  if ARGV[4] == 'available' then redis.call('ZADD', key, ARGV[6], uid) else redis.call('ZREM', key, uid) end
end
return 1
"""

# ARGV: prefix, id -> position (1-based) or -1
_POSITION = """
local p, id = ARGV[1], ARGV[2]
local c = p .. ':c:' .. id
if redis.call('HGET', c, 'state') ~= 'queued' then return -1 end
local rank = redis.call('ZRANK', p .. ':q:' .. redis.call('HGET', c, 'sp'), id)
if not rank then return -1 end
return rank + 1
"""

# ARGV: prefix, specialty -> [uid, {presence fields}, uid, {...}, ...]: who is listed as available, with their
# presence, in one round trip (the offer path asks this for every new request).
_AVAILABLE = """
local p = ARGV[1]
local out = {}
for _, uid in ipairs(redis.call('ZRANGE', p .. ':avail:' .. ARGV[2], 0, -1)) do
  out[#out + 1] = uid
  out[#out + 1] = redis.call('HGETALL', p .. ':p:' .. uid)
end
return out
"""


def _pad(consultation_id: int) -> str:
    return str(consultation_id).zfill(ID_WIDTH)


def _encode_entry(entry: QueueEntry) -> str:
    data: dict[str, Any] = dict(entry.__dict__)
    data["primary_org_ids"] = sorted(entry.primary_org_ids)
    data["partner_org_ids"] = sorted(entry.partner_org_ids)
    return json.dumps(data, separators=(",", ":"))


def _decode_entry(raw: str | bytes) -> QueueEntry:
    data = json.loads(raw)
    data["primary_org_ids"] = frozenset(data["primary_org_ids"])
    data["partner_org_ids"] = frozenset(data["partner_org_ids"])
    return QueueEntry(**data)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _live(fields: dict[str, str]) -> LiveConsultation:
    ringing = frozenset(int(x) for x in fields.get("ringing", "").split(",") if x)
    owner = fields.get("owner") or None
    return LiveConsultation(
        entry=_decode_entry(fields["entry"]), state=LiveState(fields["state"]), ringing=ringing,
        owner=int(owner) if owner else None, offer_deadline=float(fields.get("deadline") or 0))


class _RedisSubscription(OrderedDelivery):
    def __init__(self, broker: RedisBroker, handler: MessageHandler, at_once: AtOnce | None = None) -> None:
        super().__init__(handler, at_once)
        self._broker = broker
        self.channels: set[str] = set()

    async def add(self, *channels: str) -> None:
        new = [c for c in channels if c not in self.channels]
        self.channels.update(new)
        await self._broker._attach(self, new)

    async def remove(self, *channels: str) -> None:
        gone = [c for c in channels if c in self.channels]
        self.channels.difference_update(gone)
        await self._broker._detach(self, gone)

    async def close(self) -> None:
        await self.remove(*list(self.channels))
        await self.stop_delivery()


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for `redis://`, `rediss://` and `unix://` URLs, or for the master a set of Sentinels watch:
    `redis+sentinel://[:password@]host:26379,host:26379/service[/db]`. Through Sentinel the client finds the
    current master itself and follows a failover."""
    if not url.startswith("redis+sentinel://"):
        return aioredis.from_url(url, **options)
    from urllib.parse import unquote

    from redis.asyncio.sentinel import Sentinel

    rest = url[len("redis+sentinel://"):]
    password = None
    if "@" in rest:
        credentials, rest = rest.rsplit("@", 1)
        password = unquote(credentials.split(":", 1)[-1]) or None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts:
        raise ValueError("a Sentinel URL names its sentinels and the service: redis+sentinel://h1:26379,h2:26379/mymaster")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        sentinels.append((host or item, int(port) if host else 26379))
    db = int(parts[1]) if len(parts) > 1 else 0
    sentinel = Sentinel(sentinels, socket_timeout=options.get("socket_timeout", 5))  # type: ignore[no-untyped-call]
    return sentinel.master_for(parts[0], password=password, db=db, **options)  # type: ignore[no-any-return]


class RedisBroker:
    """The broker contract on Redis (`redis.asyncio`), for several nodes."""

    def __init__(self, url: str, *, prefix: str = "th", node: str = "") -> None:
        self.url = url
        self.node = node
        self.p = "{" + prefix + "}"
        self._redis: aioredis.Redis = redis_client(url, health_check_interval=10, socket_timeout=5,
                                                   socket_connect_timeout=5, retry_on_timeout=True)
        self._scripts = {name: self._redis.register_script(body) for name, body in (
            ("enqueue", _ENQUEUE), ("offer", _OFFER), ("claim", _CLAIM), ("release", _RELEASE),
            ("remove", _REMOVE), ("requeue", _REQUEUE), ("presence", _SET_PRESENCE), ("position", _POSITION),
            ("available", _AVAILABLE))}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers: dict[str, set[_RedisSubscription]] = defaultdict(set)
        self._sub_lock = asyncio.Lock()

    def _ch(self, channel: str) -> str:
        return f"{self.p}:ch:{channel}"

    async def start(self) -> None:
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # A channel of the node's own keeps the subscriber connection open before anyone subscribes.
        await self._pubsub.subscribe(self._ch(f"node:{self.node or id(self)}"))
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def close(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def _read(self) -> None:
        """One reader per node; after a lost connection it backs off and resubscribes everything."""
        backoff = 0.1
        prefix = f"{self.p}:ch:"
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError):
                log.warning("Redis subscriber connection lost; reconnecting in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = _text(message["channel"])
            if not channel.startswith(prefix):
                continue
            name = channel[len(prefix):]
            msg = Message(name, message["data"] if isinstance(message["data"], bytes) else
                          _text(message["data"]).encode())
            for sub in list(self._subscribers.get(name, ())):
                sub.put(msg)

    async def _attach(self, sub: _RedisSubscription, channels: Sequence[str]) -> None:
        async with self._sub_lock:
            fresh = []
            for channel in channels:
                if not self._subscribers[channel]:
                    fresh.append(self._ch(channel))
                self._subscribers[channel].add(sub)
            if fresh:
                await self._pubsub.subscribe(*fresh)

    async def _detach(self, sub: _RedisSubscription, channels: Sequence[str]) -> None:
        async with self._sub_lock:
            stale = []
            for channel in channels:
                subs = self._subscribers.get(channel)
                if subs is None:
                    continue
                subs.discard(sub)
                if not subs:
                    del self._subscribers[channel]
                    stale.append(self._ch(channel))
            if stale:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._pubsub.unsubscribe(*stale)

    # -- epoch ------------------------------------------------------------------------------------

    async def ensure_epoch(self) -> bool:
        return bool(await self._redis.set(f"{self.p}:epoch", self.node or "1", nx=True))

    async def clear_epoch(self) -> None:
        await self._redis.delete(f"{self.p}:epoch")

    # -- queue ------------------------------------------------------------------------------------

    async def enqueue(self, entry: QueueEntry) -> bool:
        done = await self._scripts["enqueue"](args=[
            self.p, _pad(entry.consultation_id), _encode_entry(entry), entry.specialty, repr(entry.score),
            repr(entry.expires_at)])
        return bool(done)

    async def get(self, consultation_id: int) -> LiveConsultation | None:
        raw = await self._redis.hgetall(f"{self.p}:c:{_pad(consultation_id)}")
        if not raw:
            return None
        return _live({_text(k): _text(v) for k, v in raw.items()})

    async def queue_head(self, specialty: str, limit: int, offset: int = 0) -> list[QueueEntry]:
        ids = await self._redis.zrange(f"{self.p}:q:{specialty}", offset, offset + limit - 1)
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hget(f"{self.p}:c:{_text(cid)}", "entry")
            raws = await pipe.execute()
        return [_decode_entry(raw) for raw in raws if raw]

    async def queue_length(self, specialty: str) -> int:
        return int(await self._redis.zcard(f"{self.p}:q:{specialty}"))

    async def queue_position(self, consultation_id: int) -> int | None:
        rank = int(await self._scripts["position"](args=[self.p, _pad(consultation_id)]))
        return rank if rank > 0 else None

    async def specialties_queued(self) -> dict[str, int]:
        result: dict[str, int] = {}
        prefix = f"{self.p}:q:"
        async for key in self._redis.scan_iter(match=f"{self.p}:q:*", count=500):
            name = _text(key)
            count = int(await self._redis.zcard(name))
            if count:
                result[name[len(prefix):]] = count
        return result

    async def remove(self, consultation_id: int) -> LiveConsultation | None:
        flat = await self._scripts["remove"](args=[self.p, _pad(consultation_id)])
        if not flat:
            return None
        fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return _live(fields)

    async def requeue(self, consultation_id: int, entry: QueueEntry) -> bool:
        done = await self._scripts["requeue"](args=[
            self.p, _pad(consultation_id), _encode_entry(entry), entry.specialty, repr(entry.score),
            repr(entry.expires_at)])
        return bool(done)

    # -- offers and claims ------------------------------------------------------------------------

    async def offer(self, consultation_id: int, specialist_ids: Sequence[int], deadline: float) -> list[int]:
        if not specialist_ids:
            return []
        rung = await self._scripts["offer"](args=[self.p, _pad(consultation_id), repr(deadline),
                                                  *[str(u) for u in specialist_ids]])
        return [int(_text(u)) for u in rung]

    async def accept(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        result = await self._scripts["claim"](args=[self.p, _pad(consultation_id), str(specialist_id), "accept"])
        return ClaimOutcome(_text(result))

    async def claim(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        result = await self._scripts["claim"](args=[self.p, _pad(consultation_id), str(specialist_id), "claim"])
        return ClaimOutcome(_text(result))

    async def release_offer(self, consultation_id: int, specialist_id: int) -> ReleaseOutcome:
        released, requeued = await self._scripts["release"](args=[self.p, _pad(consultation_id),
                                                                  str(specialist_id)])
        if not released:
            return ReleaseOutcome(released=False, requeued=False)
        live = await self.get(consultation_id)
        return ReleaseOutcome(released=True, requeued=bool(requeued), entry=live.entry if live else None)

    async def due_offers(self, now: float, limit: int = 100) -> list[tuple[int, list[int]]]:
        ids = await self._redis.zrangebyscore(f"{self.p}:offers", "-inf", now, start=0, num=limit)
        due = []
        for cid in ids:
            ringing = await self._redis.hget(f"{self.p}:c:{_text(cid)}", "ringing")
            uids = sorted(int(x) for x in _text(ringing or b"").split(",") if x)
            if uids:
                due.append((int(_text(cid)), uids))
        return due

    async def due_expiries(self, now: float, limit: int = 100) -> list[int]:
        ids = await self._redis.zrangebyscore(f"{self.p}:sla", "-inf", now, start=0, num=limit)
        due = []
        for cid in ids:
            state = await self._redis.hget(f"{self.p}:c:{_text(cid)}", "state")
            if state is not None and _text(state) != LiveState.claimed.value:
                due.append(int(_text(cid)))
        return due

    # -- presence ---------------------------------------------------------------------------------

    async def set_presence(self, presence: SpecialistPresence, ttl: float) -> None:
        data = json.dumps({"user_id": presence.user_id, "status": presence.status,
                           "specialties": list(presence.specialties), "org_id": presence.org_id,
                           "title_rank": presence.title_rank, "idle_since": presence.idle_since,
                           "node": presence.node}, separators=(",", ":"))
        # A specialty the specialist no longer has is dropped from its availability set too.
        await self._scripts["presence"](args=[
            self.p, str(presence.user_id), data, presence.status, str(max(1, int(ttl * 1000))),
            repr(presence.idle_since), *presence.specialties])

    async def touch_presence(self, user_id: int, ttl: float) -> bool:
        return bool(await self._redis.pexpire(f"{self.p}:p:{user_id}", max(1, int(ttl * 1000))))

    @staticmethod
    def _presence(raw: dict[Any, Any]) -> SpecialistPresence | None:
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if "data" not in fields:
            return None
        data = json.loads(fields["data"])
        ringing = fields.get("ringing") or ""
        return SpecialistPresence(
            user_id=data["user_id"], status=fields.get("status", data["status"]),
            specialties=tuple(data["specialties"]), org_id=data["org_id"], title_rank=data["title_rank"],
            idle_since=data["idle_since"], node=data.get("node", ""),
            ringing=int(ringing) if ringing else None)

    async def get_presence(self, user_id: int) -> SpecialistPresence | None:
        return self._presence(await self._redis.hgetall(f"{self.p}:p:{user_id}"))

    async def clear_presence(self, user_id: int) -> None:
        presence = await self.get_presence(user_id)
        await self._redis.delete(f"{self.p}:p:{user_id}")
        if presence is not None:
            for specialty in presence.specialties:
                await self._redis.zrem(f"{self.p}:avail:{specialty}", str(user_id))

    async def available_specialists(self, specialty: str) -> list[SpecialistPresence]:
        key = f"{self.p}:avail:{specialty}"
        flat = await self._scripts["available"](args=[self.p, specialty])
        if not flat:
            return []
        uids = flat[0::2]
        raws = [dict(zip(fields[0::2], fields[1::2], strict=True)) for fields in flat[1::2]]
        found: list[SpecialistPresence] = []
        stale: list[str] = []
        for uid, raw in zip(uids, raws, strict=True):
            presence = self._presence(raw)
            if presence is None or presence.status != "available":
                stale.append(_text(uid))
            elif presence.ringing is None and specialty in presence.specialties:
                found.append(presence)
        if stale:
            await self._redis.zrem(key, *stale)
        found.sort(key=lambda p: (p.idle_since, p.user_id))
        return found

    async def count_presence(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        async for key in self._redis.scan_iter(match=f"{self.p}:p:*", count=500):
            status = await self._redis.hget(key, "status")
            if status is not None:
                counts[_text(status)] += 1
        return dict(counts)

    # -- values with expiry -----------------------------------------------------------------------

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(f"{self.p}:v:{key}", value, px=max(1, int(ttl * 1000)))

    async def fetch(self, key: str) -> str | None:
        value = await self._redis.get(f"{self.p}:v:{key}")
        return _text(value) if value is not None else None

    async def delete(self, key: str) -> None:
        await self._redis.delete(f"{self.p}:v:{key}")

    async def append(self, key: str, value: str, ttl: float) -> None:
        name = f"{self.p}:l:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(name, value)
            pipe.pexpire(name, max(1, int(ttl * 1000)))
            await pipe.execute()

    async def take_all(self, key: str) -> list[str]:
        name = f"{self.p}:l:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(name, 0, -1)
            pipe.delete(name)
            items, _ = await pipe.execute()
        return [_text(v) for v in items]

    # -- pub/sub ----------------------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes) -> None:
        await self._redis.publish(self._ch(channel), data)

    async def subscribe(self, handler: MessageHandler, *channels: str,
                        at_once: AtOnce | None = None) -> _RedisSubscription:
        sub = _RedisSubscription(self, handler, at_once)
        await sub.add(*channels)
        return sub

    async def stats(self) -> BrokerStats:
        counts: dict[str, int] = defaultdict(int)
        async for key in self._redis.scan_iter(match=f"{self.p}:c:*", count=1000):
            state = await self._redis.hget(key, "state")
            if state is not None:
                counts[_text(state)] += 1
        presence = await self.count_presence()
        return BrokerStats(queued=counts["queued"], offered=counts["offered"], claimed=counts["claimed"],
                           presence=sum(presence.values()))
