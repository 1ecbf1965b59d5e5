"""Creating jobq's topics: missing ones are created, existing ones are left as they are."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from jobq.events.topics import TopicSpec

log = logging.getLogger("jobq.events")


def ensure_topics(
    admin_config: dict[str, Any],
    specs: Sequence[TopicSpec],
    partitions: int,
    replication_factor: int,
    timeout: float = 30.0,
) -> list[str]:
    """Create each missing topic; return the names created. Blocking: call it in a thread."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient(admin_config)
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=spec.config(),
            )
            for spec in specs
        ],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
        created.append(name)
    if created:
        log.info("created Kafka topics", extra={"topics": sorted(created)})
    return sorted(created)
