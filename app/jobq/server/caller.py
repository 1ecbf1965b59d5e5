"""Who is calling, and which tenant's data that lets them reach: every scoping rule is here.

The services ask this module and nothing else, so the rules read in one place:

- A principal of tenant T reaches only T's jobs, queues, workers and dead letters; an
  ALL_TENANTS principal reaches every tenant.
- Naming a tenant in a request (a job's `tenant`, a queue's `tenant`, a filter) is allowed
  only for the caller's own tenant; another is PERMISSION_DENIED, decided from the request
  alone, before any data is read.
- An id of another tenant's job or worker reads as absent (NOT_FOUND): an answer never
  reveals that another tenant's object exists.
- A worker id acts only for the principal subject that registered it.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobq.auth.principal import ALL_TENANTS, Principal, current_principal
from jobq.core.errors import InvalidArgument, PermissionDenied, Unauthenticated
from jobq.core.model import DEFAULT_TENANT, WorkerInfo
from jobq.core.validation import TENANT
from jobq.store.base import Tenant


def caller() -> Principal:
    """The principal of the RPC being served, which the authentication interceptor set (in
    local development too, as an all-tenant principal). None means a call reached a service
    some other way: refused, never served as anyone."""
    principal = current_principal.get()
    if principal is None:
        raise Unauthenticated("no principal for this call")
    return principal


def scope(principal: Principal) -> Tenant:
    """The tenant scope of the principal's queries: its tenant, or None for every tenant."""
    return None if principal.tenant == ALL_TENANTS else principal.tenant


def named_tenant(principal: Principal, requested: str, field: str) -> str:
    """The one tenant a request acts in: the one it names, else the caller's own (an
    ALL_TENANTS caller's default is "default")."""
    if requested:
        if not TENANT.fullmatch(requested):
            raise InvalidArgument(field, f"{requested[:64]!r} is not a tenant name")
        if not principal.sees(requested):
            raise PermissionDenied(
                f"{field}: {principal.subject} may not act in tenant {requested!r}"
            )
        return requested
    return DEFAULT_TENANT if principal.tenant == ALL_TENANTS else principal.tenant


def filter_scope(principal: Principal, requested: str, field: str) -> Tenant:
    """A listing's scope: the tenant a filter names (only the caller's own, unless it sees
    every tenant), else everything the caller sees."""
    if requested:
        return named_tenant(principal, requested, field)
    return scope(principal)


def may_act_as(principal: Principal, worker: WorkerInfo | None) -> bool:
    """Whether the principal may use this worker id: it registered it, in a tenant it sees."""
    return (
        worker is not None and worker.subject == principal.subject and principal.sees(worker.tenant)
    )


def serves_all(principal: Principal, queues: Sequence[str], field: str) -> None:
    """A worker credential limited to some queues may register for and lease only those."""
    refused = [name for name in queues if not principal.serves(name)]
    if refused:
        raise PermissionDenied(f"{field}: {principal.subject} may not serve {', '.join(refused)}")


def worker_scope(worker: WorkerInfo) -> Tenant:
    """The jobs a worker leases: its tenant's, fixed when its principal registered it; a
    worker of an ALL_TENANTS principal serves its queue names in every tenant."""
    return None if worker.tenant == ALL_TENANTS else worker.tenant
