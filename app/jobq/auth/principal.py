"""The principal an RPC runs as: set by the authentication interceptor, read by the services.

Standard library only, so the core, the services and the tests can share it."""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass

ALL_TENANTS = "*"
"""A principal of this tenant (the platform operator, or local development) sees every tenant."""


class Role(enum.StrEnum):
    SUBMITTER = "submitter"  # submit, get, list, cancel and watch its tenant's jobs
    WORKER = "worker"  # the WorkerService calls, for the queues its credential allows
    OPERATOR = "operator"  # queues, dead letters, workers, stats
    ADMIN = "admin"  # API keys
    VIEWER = "viewer"  # read-only: get and list jobs, queues, stats, workers, dead letters


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str  # who: a key id, a JWT `sub`, a certificate SAN; never key material
    tenant: str  # whose data it may see; ALL_TENANTS for every tenant
    roles: frozenset[Role]
    queues: frozenset[str] | None = None  # worker credentials: the queues it may serve; None = all
    via: str = ""  # how it was authenticated: "api-key", "jwt", "mtls", "unauthenticated"

    def sees(self, tenant: str) -> bool:
        return self.tenant == ALL_TENANTS or self.tenant == tenant

    def serves(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues


current_principal: ContextVar[Principal | None] = ContextVar("jobq_principal", default=None)
"""The calling principal, set by the authentication interceptor for the length of one RPC."""
