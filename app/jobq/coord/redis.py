"""The Redis coordinator: redis.asyncio against a standalone server or a cluster.

Each operation that must be atomic is one Lua script over keys of one hash tag, so it runs
on one shard of a cluster and no other client sees it half done. Time inside a script is
the server's TIME: replicas with skewed clocks share one rate and one expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
import zlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobq.coord.base import (
    CACHE_VERSION_TTL,
    CHANNEL_JOBS,
    CacheEntry,
    CoordUnavailable,
    JobsChanged,
    RateAdmission,
    RateDecision,
    SlotGrant,
)
from jobq.core.errors import JobqError
from jobq.core.limits import RateBucket

__all__ = ["RedisCoordinator", "SecretCredentialProvider", "connect_url", "is_cluster_url"]

_PREFIX = "jq:"
# Status-cache keys are spread over this many hash tags (slots), so that one lease or
# outcome batch invalidates its jobs with one script per bucket: 4 cost 7 us per job where
# 16 cost 17 (each script call is ~0.2-0.5 ms of redis-py), and a cache of entries that
# live 2 s needs no more shards than that.
CACHE_BUCKETS = 4

# GCRA over one key holding the theoretical arrival time (seconds, server clock).
_RATE = """
local t = redis.call('TIME')
-- Seconds since 2025 rather than 1970: fewer digits before the point, finer doubles.
local now = (tonumber(t[1]) - 1735689600) + tonumber(t[2]) / 1000000
local interval = 1 / tonumber(ARGV[1])
local burst = math.max(tonumber(ARGV[2]), 1)
local n = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + tolerance - tat) / interval + 1e-3)
local granted = math.max(0, math.min(n, room))
local retry = 0
if granted > 0 then
  local new = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX',
             math.ceil((new - now) * 1000) + 1000)
else
  retry = math.max(0, tat + interval - tolerance - now)
end
return {granted, string.format('%.6f', retry)}
"""

# A whole lease batch (ADR 0017). KEYS: the buckets' keys, then the set of leasing replicas.
# ARGV: bucket count, batch limit, replica id, replica ttl (ms), each bucket's rate and
# burst, then per candidate the number of buckets it draws from and their (1-based) indexes.
_RATE_ADMIT = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1735689600) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local replicas = KEYS[nb + 1]
redis.call('ZREMRANGEBYSCORE', replicas, '-inf', now_ms)
redis.call('ZADD', replicas, now_ms + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', replicas, tonumber(ARGV[4]))
local interval, tolerance, tat, charged = {}, {}, {}, {}
for b = 1, nb do
  interval[b] = 1 / tonumber(ARGV[3 + 2 * b])
  tolerance[b] = interval[b] * math.max(tonumber(ARGV[4 + 2 * b]), 1)
  local stored = tonumber(redis.call('GET', KEYS[b]) or now)
  if stored < now then stored = now end
  tat[b] = stored
end
local admitted, refused = {}, {}
local i = 5 + 2 * nb
local index = 0
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  local full = nil
  if #admitted >= limit then
    full = 0
  else
    for j = 1, k do
      local b = tonumber(ARGV[i + j])
      -- Room for one more: the same test as the single-key script, n = 1.
      if math.floor((now + tolerance[b] - tat[b]) / interval[b] + 1e-3) < 1 then
        full = b
        break
      end
    end
  end
  if full == nil then
    for j = 1, k do
      local b = tonumber(ARGV[i + j])
      tat[b] = tat[b] + interval[b]
      charged[b] = true
    end
    table.insert(admitted, index)
  else
    table.insert(refused, index)
    table.insert(refused, full - 1)
  end
  index = index + 1
  i = i + k + 1
end
for b = 1, nb do
  if charged[b] then
    redis.call('SET', KEYS[b], string.format('%.6f', tat[b]), 'PX',
               math.ceil((tat[b] - now) * 1000) + 1000)
  end
end
return {admitted, refused, redis.call('ZCARD', replicas)}
"""

# A sorted set of holder -> expiry (ms); expired holders are dropped before counting, so a
# holder that died gives its slot back at its expiry without anyone releasing it.
_RECLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

_KEEP_KEY = """
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
"""

_SLOTS_ACQUIRE = (
    _RECLAIM
    + """
local limit = tonumber(ARGV[1])
local expiry = now + tonumber(ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
local granted = {}
for i = 3, #ARGV do
  local h = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], h) then
    redis.call('ZADD', KEYS[1], expiry, h)
    table.insert(granted, h)
  elseif limit == 0 or count < limit then
    redis.call('ZADD', KEYS[1], expiry, h)
    count = count + 1
    table.insert(granted, h)
  end
end
if count > 0 then
"""
    + _KEEP_KEY
    + """
end
return {count, granted}
"""
)

_SLOTS_RENEW = (
    _RECLAIM
    + """
local expiry = now + tonumber(ARGV[2])
local held = 0
for i = 3, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i]) == 1
     or redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    held = held + 1
  end
end
if held > 0 then
"""
    + _KEEP_KEY
    + """
end
return held
"""
)

_SLOTS_RELEASE = (
    _RECLAIM
    + """
if #ARGV == 0 then return 0 end
return redis.call('ZREM', KEYS[1], unpack(ARGV))
"""
)

_SLOTS_COUNT = _RECLAIM + "return redis.call('ZCARD', KEYS[1])"

# KEYS[1]: the index of live workers (expiry ms), KEYS[2]: the worker's own presence key.
_PRESENCE_MARK = (
    _RECLAIM
    + """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""
)

_PRESENCE_LIVE = _RECLAIM + "return redis.call('ZRANGE', KEYS[1], 0, -1)"

# The status cache (ADR 0015): a value, and a version that every invalidation replaces with
# a new unique token. A fill carries the version its reader saw before reading the store
# and lands only if that is still the version: so the first reader after a change fills the
# cache for all (once per change, not once per watcher until a tombstone expires), and a
# reader that read before the change cannot put its stale copy back.
_CACHE_GET = """
local v = redis.call('GET', KEYS[2])
if not v then
  v = ARGV[1]
  redis.call('SET', KEYS[2], v, 'PX', ARGV[2])
end
return {redis.call('GET', KEYS[1]), v}
"""

# A batch's invalidations, for the keys of one bucket: KEYS are (value, version) pairs.
# A new version first, then the value goes: a put between the two is refused, and a read
# between them still sees the copy from before the change (which the change's RPC has not
# yet returned).
_CACHE_INVALIDATE = """
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[i])
end
return #KEYS / 2
"""

_CACHE_PUT = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SecretCredentialProvider:
    """The AUTH login from a secret (jobq.store.postgres.credentials, the same reader and
    cache as the database's), asked on every new connection: a rotated secret is picked up
    when Redis drops the old connections."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def get_credentials(self) -> tuple[str, str]:
        raise NotImplementedError("asyncio connections ask get_credentials_async")

    async def get_credentials_async(self) -> tuple[str, str]:
        try:
            login = await self._credentials.connection_kwargs()
        except JobqError as exc:
            raise CoordUnavailable(f"redis auth secret: {exc}") from exc
        return login["user"], login["password"]


# What redis-py raises when it cannot answer: any Exception, not only its own.
# RedisClusterException ("no reachable node") is not a RedisError, and a cluster failover
# surfaces errors that are not redis-py's at all: on ClusterDownError the cluster client
# closes every node's connections (RedisCluster.aclose()), also those other tasks are using
# at that moment, which then fail with AttributeError ('NoneType' object has no attribute
# 'writelines') or, on uvloop, RuntimeError ("the handler is closed"). Those escaped the
# guard and failed GetJob and LeaseJobs with INTERNAL during a failover. A bug of ours in a
# call lands here too, and still shows: in jq_redis_errors_total, and in the contract suite,
# which calls the adapter unguarded. Cancellation is no Exception and passes through.
_DRIVER_ERRORS = (Exception,)


def _tag(name: str) -> str:
    """`name` as a hash tag: braces inside it would end the tag early, so they go."""
    return "{" + name.replace("{", "(").replace("}", ")") + "}"


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in ("redis+cluster", "rediss+cluster")


def connect_url(url: str) -> str:
    """The URL redis-py understands: the +cluster marker dropped from the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.removesuffix("+cluster")
    if scheme not in ("redis", "rediss"):
        raise ValueError(
            f"unsupported scheme {parts.scheme!r} (use redis://, rediss://, or "
            "redis+cluster:// / rediss+cluster:// for a cluster)"
        )
    return urlunsplit((scheme, *parts[1:]))


class RedisCoordinator:
    """`client` is a redis.asyncio.Redis or RedisCluster; `build()` makes one from a URL."""

    def __init__(self, client: Any, *, cluster: bool) -> None:
        self._client = client
        self._cluster = cluster
        self._ready = False
        self._init_lock = asyncio.Lock()
        self._scripts = {
            name: client.register_script(body)
            for name, body in {
                "rate": _RATE,
                "rate_admit": _RATE_ADMIT,
                "acquire": _SLOTS_ACQUIRE,
                "renew": _SLOTS_RENEW,
                "release": _SLOTS_RELEASE,
                "count": _SLOTS_COUNT,
                "mark": _PRESENCE_MARK,
                "live": _PRESENCE_LIVE,
                "cache_get": _CACHE_GET,
                "cache_put": _CACHE_PUT,
                "cache_invalidate": _CACHE_INVALIDATE,
            }.items()
        }

    @classmethod
    def build(
        cls,
        url: str,
        *,
        cluster: bool = False,
        credential_provider: Any = None,
        timeout: float = 1.0,
    ) -> RedisCoordinator:
        """`cluster`: a RedisCluster even when the URL's scheme does not say so."""
        import redis.asyncio as aioredis
        from redis.asyncio.cluster import RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        cluster = cluster or is_cluster_url(url)
        options: dict[str, Any] = {
            # Short: a Redis that does not answer must cost a request little, not hang it.
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # redis-py's default retries with backoff for seconds: a call must fail fast
            # and fall back instead. One quick retry still covers a pooled connection that
            # a restarted server closed; a cluster's retry also re-reads the slot map,
            # which is how a failover's new master is found.
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 3 if cluster else 1),
        }
        if credential_provider is not None:
            options["credential_provider"] = credential_provider
        target = connect_url(url)
        if cluster:
            client: Any = RedisCluster.from_url(target, **options)
        else:
            client = aioredis.Redis.from_url(target, **options)
        return cls(client, cluster=cluster)

    async def _initialize(self) -> None:
        # A RedisCluster learns the slot map on first use; concurrent first calls would each
        # start that and trip over one another's connections, so one does it for all.
        if self._ready or not self._cluster:
            return
        async with self._init_lock:
            if not self._ready:
                await self._client.initialize()
                self._remember_nodes()
                self._ready = True

    def _remember_nodes(self) -> None:
        # redis-py rebuilds a cluster's slot map from its startup nodes only: the URL's one
        # node. Were that node the master that died, a failover could never be learnt (the
        # client would ask only the dead node for ever). Every node seen becomes a startup
        # node too. (An ElastiCache configuration endpoint is a DNS name that stays live;
        # a URL naming one node, as here and in tests, does not.)
        startup = self._client.nodes_manager.startup_nodes
        for node in self._client.get_nodes():
            startup.setdefault(node.name, node)

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            try:
                await self._initialize()
            except BaseException:
                coro.close()  # never to be awaited: closed, or Python warns of it
                raise
            return await coro
        except CoordUnavailable:
            raise  # the AUTH secret could not be read
        except _DRIVER_ERRORS as exc:
            raise CoordUnavailable(f"redis {what}: {type(exc).__name__}: {exc}") from exc

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(name, self._scripts[name](keys=keys, args=args))

    async def rate_acquire(self, key: str, rate: float, burst: int, n: int) -> RateDecision:
        granted, retry = await self._script(
            "rate", [f"{_PREFIX}rate:{_tag(key)}"], [repr(float(rate)), burst, n]
        )
        return RateDecision(asked=n, granted=int(granted), retry_after=float(retry))

    # Every bucket one lease batch may draw from lives under one hash tag, so the batch is
    # one script on one shard (a cluster would refuse a script across slots: CROSSSLOT).
    _LIMITS = f"{_PREFIX}{{limits}}"

    async def rate_admit(
        self,
        buckets: Sequence[RateBucket],
        wants: Sequence[Sequence[int]],
        limit: int,
        replica: str,
        replica_ttl: float,
    ) -> RateAdmission:
        keys = [f"{self._LIMITS}:rate:{b.key}" for b in buckets] + [f"{self._LIMITS}:replicas"]
        args: list[Any] = [len(buckets), limit, replica, self._ms(replica_ttl)]
        for bucket in buckets:
            args += [repr(float(bucket.rate)), bucket.burst]
        for drawn in wants:
            args += [len(drawn), *(b + 1 for b in drawn)]
        admitted, refused, replicas = await self._script("rate_admit", keys, args)
        pairs = [int(x) for x in refused]
        return RateAdmission(
            admitted=tuple(int(i) for i in admitted),
            refused_by=dict(zip(pairs[::2], pairs[1::2], strict=True)),
            replicas=int(replicas),
        )

    @staticmethod
    def _slots_key(key: str) -> str:
        return f"{_PREFIX}slots:{_tag(key)}"

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    async def slots_acquire(
        self, key: str, limit: int, holders: Sequence[str], ttl: float
    ) -> SlotGrant:
        count, granted = await self._script(
            "acquire", [self._slots_key(key)], [limit, self._ms(ttl), *holders]
        )
        return SlotGrant(
            granted=tuple(h.decode() if isinstance(h, bytes) else str(h) for h in granted),
            in_use=int(count),
        )

    async def slots_renew(self, key: str, holders: Sequence[str], ttl: float) -> int:
        if not holders:
            return 0
        return int(
            await self._script("renew", [self._slots_key(key)], [0, self._ms(ttl), *holders])
        )

    async def slots_release(self, key: str, holders: Sequence[str]) -> int:
        return int(await self._script("release", [self._slots_key(key)], list(holders)))

    async def slots_in_use(self, key: str) -> int:
        return int(await self._script("count", [self._slots_key(key)], []))

    _PRESENCE = f"{_PREFIX}{{presence}}"

    async def presence_mark(self, worker_id: str, ttl: float) -> None:
        await self._script(
            "mark",
            [self._PRESENCE, f"{self._PRESENCE}:worker:{worker_id}"],
            [worker_id, self._ms(ttl)],
        )

    async def presence_clear(self, worker_id: str) -> None:
        pipe = self._client.pipeline(transaction=not self._cluster)
        pipe.zrem(self._PRESENCE, worker_id)
        pipe.delete(f"{self._PRESENCE}:worker:{worker_id}")
        await self._call("presence_clear", pipe.execute())

    async def presence_live(self) -> set[str]:
        members = await self._script("live", [self._PRESENCE], [])
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    @staticmethod
    def _cache_bucket(key: str) -> str:
        return f"{_PREFIX}cache:{{c{zlib.crc32(key.encode()) % CACHE_BUCKETS}}}"

    @classmethod
    def _cache_keys(cls, key: str) -> list[str]:
        """The value's key and its version's, under the bucket's hash tag: one slot for a
        script, and a batch's invalidations one script per bucket."""
        data = f"{cls._cache_bucket(key)}:{key}"
        return [data, f"{data}:v"]

    async def cache_get(self, key: str) -> CacheEntry:
        value, version = await self._script(
            "cache_get", self._cache_keys(key), [uuid.uuid4().hex, self._ms(CACHE_VERSION_TTL)]
        )
        # b"": the tombstone servers before versions wrote (one rolling deploy mixes both).
        return CacheEntry(bytes(value) if value else None, _text(version))

    async def cache_put(self, key: str, value: bytes, ttl: float, version: str) -> None:
        await self._script(
            "cache_put",
            self._cache_keys(key),
            [value, version, self._ms(ttl), self._ms(CACHE_VERSION_TTL)],
        )

    async def cache_invalidate(self, keys: Sequence[str]) -> None:
        # One script per bucket, not two commands per key: redis-py builds each command in
        # Python, ~35 us apiece, which made a 500-job batch's invalidation 40 ms of the
        # server's CPU. The buckets' scripts run at once, each on its own shard.
        by_bucket: dict[str, list[str]] = {}
        for key in keys:
            by_bucket.setdefault(self._cache_bucket(key), []).extend(self._cache_keys(key))
        if not by_bucket:
            return
        version = uuid.uuid4().hex  # unique per key too: one per call suffices
        args = [version, self._ms(CACHE_VERSION_TTL)]
        await asyncio.gather(
            *(self._script("cache_invalidate", pairs, args) for pairs in by_bucket.values())
        )

    async def publish_jobs_changed(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            await self._call("publish", self._client.publish(CHANNEL_JOBS, ",".join(job_ids)))

    async def subscribe_jobs_changed(self, on_change: JobsChanged) -> None:
        # A cluster's PUBLISH reaches every node's subscribers: one connection is enough.
        await self._call("subscribe", asyncio.sleep(0))
        pubsub = self._client.pubsub()
        try:
            try:
                await pubsub.subscribe(CHANNEL_JOBS)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    outcome = on_change([i for i in text.split(",") if i])
                    if inspect.isawaitable(outcome):
                        await outcome
            except CoordUnavailable:
                raise
            except _DRIVER_ERRORS as exc:
                raise CoordUnavailable(f"redis subscribe: {type(exc).__name__}: {exc}") from exc
        finally:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pubsub.aclose()

    async def ping(self) -> None:
        await self._call("ping", self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
