"""The authentication interceptor: first in the chain, for every RPC but health.

It resolves the caller's principal, checks the role the RPC needs (jobq.auth.permissions)
and the queues a worker credential may name, and sets `current_principal` for the length
of the call. Refusals and admin actions are written to the `jobq.audit` log, one line each.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from jobq.auth import permissions
from jobq.auth.authenticator import Authenticator, KeyLookup
from jobq.auth.certificates import parse_subjects
from jobq.auth.keys import KeyFormatError, parse_bootstrap
from jobq.auth.principal import Principal, Role, current_principal
from jobq.auth.tokens import JwtVerifier, parse_algorithms
from jobq.config import ServerSettings
from jobq.core.clock import Clock
from jobq.core.errors import JobqError, PermissionDenied, Unauthenticated
from jobq.server.rpc_context import Behaviour, Context, MethodHandler, ServerInterceptor

audit_log = logging.getLogger("jobq.audit")

PEM_CERT = "x509_pem_cert"


def audit(
    method: str, principal: Principal | None, outcome: str, code: str, reason: str = ""
) -> None:
    """One line per refused call or admin action: who, whose tenant, what, how it ended."""
    audit_log.info(
        "audit",
        extra={
            "audit": True,
            "rpc": method,
            "subject": principal.subject if principal else "",
            "tenant": principal.tenant if principal else "",
            "via": principal.via if principal else "",
            "outcome": outcome,
            "code": code,
            "reason": reason,
        },
    )


def build_authenticator(settings: ServerSettings, keys: KeyLookup) -> Authenticator:
    """The authenticator the settings describe; a malformed setting is a JobqError naming it."""
    try:
        jwt = None
        if settings.auth_jwt_jwks:
            jwt = JwtVerifier(
                settings.auth_jwt_jwks,
                issuer=settings.auth_jwt_issuer,
                audience=settings.auth_jwt_audience,
                algorithms=parse_algorithms(settings.auth_jwt_algorithms),
                leeway=settings.auth_jwt_leeway,
                refresh=settings.auth_jwt_jwks_refresh,
                cooldown=settings.auth_jwt_jwks_cooldown,
                tenant_claim=settings.auth_jwt_tenant_claim,
                roles_claim=settings.auth_jwt_roles_claim,
                queues_claim=settings.auth_jwt_queues_claim,
            )
        return Authenticator(
            keys,
            bootstrap=parse_bootstrap(settings.auth_bootstrap_keys)
            if settings.auth_bootstrap_keys
            else None,
            jwt=jwt,
            certificates=parse_subjects(settings.auth_mtls_subjects)
            if settings.auth_mtls_subjects
            else None,
            unauthenticated=settings.auth_unauthenticated,
        )
    except KeyFormatError as exc:
        raise JobqError(str(exc)) from None


def peer_certificate(context: Context) -> bytes | None:
    """The verified client certificate of an mTLS connection, else None."""
    certs = list(context.auth_context().get(PEM_CERT) or ())
    return certs[0] if certs else None


def authorize(method: str, principal: Principal, request: Any) -> None:
    need = permissions.required(method)
    if need is None:
        raise PermissionDenied(f"{method} is not open to any role")
    viewing = Role.VIEWER in principal.roles and method in permissions.READ_ONLY
    if isinstance(need, Role) and need not in principal.roles and not viewing:
        raise PermissionDenied(f"{method} needs the {need.value} role")
    if isinstance(need, frozenset) and not need & principal.roles and not viewing:
        roles = " or ".join(sorted(r.value for r in need))
        raise PermissionDenied(f"{method} needs the {roles} role")
    # An undecodable request has no queues; the request guard refuses it next.
    if (
        method in permissions.QUEUE_SCOPED
        and principal.queues is not None
        and hasattr(request, "queues")
    ):
        named = list(getattr(request, "queues", ()) or ())
        if not named:
            allowed = ", ".join(sorted(principal.queues))
            raise PermissionDenied(f"this credential serves only queues {allowed}: name them")
        for queue in named:
            if not principal.serves(queue):
                raise PermissionDenied(f"this credential may not serve queue {queue[:200]!r}")


class AuthInterceptor(ServerInterceptor):
    def __init__(self, authenticator: Authenticator, clock: Clock) -> None:
        self._authenticator = authenticator
        self._clock = clock

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None or permissions.is_open(details.method):
            return handler
        method = details.method
        metadata = tuple(details.invocation_metadata or ())
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(method, metadata, handler.unary_unary), **kwargs
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap(method, metadata, handler.unary_stream), **kwargs
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(method, metadata, handler.stream_unary, streamed_request=True), **kwargs
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap(method, metadata, handler.stream_stream, streamed_request=True),
                **kwargs,
            )
        return handler

    async def _admit(
        self,
        method: str,
        metadata: Sequence[tuple[str, Any]],
        request: Any,
        context: Context,
    ) -> Principal:
        principal: Principal | None = None
        try:
            principal = await self._authenticator.authenticate(
                metadata, peer_certificate(context), self._clock.now()
            )
            authorize(method, principal, request)
        except (Unauthenticated, PermissionDenied) as exc:
            code = (
                grpc.StatusCode.UNAUTHENTICATED
                if isinstance(exc, Unauthenticated)
                else grpc.StatusCode.PERMISSION_DENIED
            )
            audit(method, principal, "denied", code.name, str(exc))
            await context.abort(code, str(exc))
        assert principal is not None
        return principal

    def _wrap(
        self,
        method: str,
        metadata: Sequence[tuple[str, Any]],
        behaviour: Behaviour,
        streamed_request: bool = False,
    ) -> Behaviour:
        audited = method in permissions.AUDITED

        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                scoped = None if streamed_request else request
                principal = await self._admit(method, metadata, scoped, context)
                token = current_principal.set(principal)
                try:
                    async with contextlib.aclosing(behaviour(request, context)) as responses:
                        async for response in responses:
                            yield response
                finally:
                    with contextlib.suppress(ValueError):  # reset from another context
                        current_principal.reset(token)

            return stream

        async def call(request: Any, context: Context) -> Any:
            scoped = None if streamed_request else request
            principal = await self._admit(method, metadata, scoped, context)
            token = current_principal.set(principal)
            try:
                result = await behaviour(request, context)
            except BaseException as exc:
                if audited:
                    audit(method, principal, "failed", _code_name(exc, context))
                raise
            finally:
                with contextlib.suppress(ValueError):
                    current_principal.reset(token)
            if audited:
                audit(method, principal, "ok", "OK")
            return result

        return call


def _code_name(exc: BaseException, context: Context) -> str:
    if isinstance(exc, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else str(code)
    if isinstance(exc, JobqError):
        return type(exc).__name__
    return "INTERNAL"
