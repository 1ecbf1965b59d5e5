"""Coordination between server replicas: rate limits, slots, presence, status cache.

`base` is the port; `memory` the in-process adapter (the embedded default); `redis` the
Redis adapter (standalone or cluster); `guard` what the server calls, with the fallback.
"""
