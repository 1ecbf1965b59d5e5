"""OpenTelemetry tracing: a provider per process, W3C trace context in and out.

Nothing here touches the global tracer provider: each composition root builds its own
with `build_tracer_provider` and hands a `Tracer` down. Propagation is always W3C
`traceparent`/`tracestate`, whatever the global propagator is set to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "jobq"
_W3C = TraceContextTextMapPropagator()

# What a component uses when its composition root gave it no tracer: spans are not
# recorded, but a parent context still flows through (NoOpTracer keeps remote parents).
NO_TRACER: trace.Tracer = trace.NoOpTracer()


def build_tracer_provider(
    service: str,
    otlp_endpoint: str = "",
    exporter: SpanExporter | None = None,
    sample_ratio: float = 1.0,
) -> TracerProvider | None:
    """A provider for one process; spans go to `exporter`, else to OTLP when an endpoint is set.

    With neither, None: spans would go nowhere, so the process makes none and uses NO_TRACER,
    which still carries a caller's trace context into jobs, events and RPCs. A trace with no
    sampled parent is kept with probability `sample_ratio`; a parent's decision is followed.
    """
    if exporter is None and otlp_endpoint:
        # Imported only when export is configured: it pulls in the OTLP protobufs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=_is_plaintext(otlp_endpoint))
    if exporter is None:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _is_plaintext(endpoint: str) -> bool:
    return endpoint.startswith("http://") or "://" not in endpoint


def tracer_from(provider: trace.TracerProvider | None) -> trace.Tracer:
    return NO_TRACER if provider is None else provider.get_tracer(TRACER_NAME)


def inject(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The W3C headers for `ctx` (default: the current context); empty if it has no span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context named by W3C headers (a job's trace_context, RPC metadata)."""
    return _W3C.extract(dict(carrier))


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> otel_context.Context:
    """The context named by gRPC metadata; binary (-bin) entries are ignored."""
    return extract({k: v for k, v in metadata if isinstance(v, str)})
