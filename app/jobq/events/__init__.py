"""Job events to Kafka: the outbox relay, topics, the wire format, a deduping consumer."""
