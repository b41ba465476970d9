"""The login limits in Redis, shared by every node: the rules of `telehealth/login_limits.py` in one script, so an
attempt is checked and counted at once whichever node it reaches. While Redis does not answer, the node falls
back to its own memory: sign-ins go on, limited per node, rather than failing."""

from __future__ import annotations

import hashlib
import logging
import math

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from telehealth.config import SecuritySettings
from telehealth.login_limits import KNOWN_ADDRESS_S, STEPS, MemoryLoginLimiter

log = logging.getLogger("telehealth.login_limits")

# KEYS: the (account, address) count, the account's count, the address's last sign-in to the account.
# ARGV: now, free, account_free, delay, max_delay, forget, known_for. Returns the seconds to wait ("0": counted).
_BEGIN = """
local now = tonumber(ARGV[1])
local free, account_free = tonumber(ARGV[2]), tonumber(ARGV[3])
local delay, max_delay, forget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local known_for = tonumber(ARGV[7])

local function load(key)
  local v = redis.call('HMGET', key, 'failures', 'until')
  local failures, till = tonumber(v[1]), tonumber(v[2])
  if failures == nil or till == nil then return 0, 0 end
  if now >= till + forget then
    redis.call('DEL', key)
    return 0, 0
  end
  return failures, till
end

local function delay_after(failures, allowance)
  if failures < allowance then return 0 end
  local n = failures - allowance
  if n > 64 then n = 64 end
  return math.min(max_delay, delay * 2 ^ n)
end

local function fail(key, failures, allowance)
  failures = failures + 1
  local till = now + delay_after(failures, allowance)
  redis.call('HSET', key, 'failures', failures, 'until', string.format('%.3f', till))
  redis.call('PEXPIRE', key, math.ceil((till - now + forget) * 1000) + 1000)
  return failures
end

local pair_failures, pair_until = load(KEYS[1])
local account_failures, account_until = load(KEYS[2])
local wait = pair_until - now
local seen = tonumber(redis.call('GET', KEYS[3]))
local known = seen ~= nil and now - seen < known_for
if not known and account_until - now > wait then wait = account_until - now end
if wait > 0 then return string.format('%.3f', wait) end
pair_failures = fail(KEYS[1], pair_failures, free)
if pair_failures <= free then fail(KEYS[2], account_failures, account_free) end
return '0'
"""


def _digest(*parts: str) -> str:
    # Names and addresses stay out of Redis's keys: a hash is enough to count by.
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class RedisLoginLimiter:
    """`LoginLimiter` on Redis, for every node of a deployment together."""

    def __init__(self, redis: aioredis.Redis, security: SecuritySettings, *, prefix: str = "th") -> None:
        self._redis = redis
        self._security = security
        self._p = "{" + prefix + "}:login"
        self._begin = redis.register_script(_BEGIN)
        self.fallback = MemoryLoginLimiter.from_settings(security)

    def _keys(self, step: str, account: str, address: str) -> list[str]:
        account = account.strip().lower()
        return [f"{self._p}:pair:{_digest(step, account, address)}", f"{self._p}:account:{_digest(step, account)}",
                f"{self._p}:known:{_digest(account, address)}"]

    async def begin(self, step: str, account: str, address: str, now: float) -> int:
        s = self._security
        try:
            wait = await self._begin(keys=self._keys(step, account, address), args=[
                repr(now), s.login_attempts, s.account_login_attempts, s.login_delay_s, s.login_max_delay_s,
                s.login_window_s, KNOWN_ADDRESS_S])
        except (RedisError, OSError):
            log.warning("login limits: Redis did not answer; counting on this node alone for now")
            return await self.fallback.begin(step, account, address, now)
        return math.ceil(float(wait.decode() if isinstance(wait, bytes) else wait))

    async def passed(self, step: str, account: str, address: str) -> None:
        try:
            await self._redis.delete(*self._keys(step, account, address)[:2])
        except (RedisError, OSError):
            log.warning("login limits: Redis did not answer; a passed step is not cleared there")
        await self.fallback.passed(step, account, address)

    async def succeeded(self, account: str, address: str, now: float) -> None:
        keys = [k for step in STEPS for k in self._keys(step, account, address)[:2]]
        known = self._keys(STEPS[0], account, address)[2]
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*keys)
                pipe.set(known, repr(now), ex=KNOWN_ADDRESS_S)
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("login limits: Redis did not answer; a sign-in is not recorded there")
        await self.fallback.succeeded(account, address, now)

    async def close(self) -> None:
        await self._redis.aclose()
