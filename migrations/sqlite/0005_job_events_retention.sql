-- Outbox retention (JQ_OUTBOX_RETENTION) deletes the oldest events in batches by `at`:
-- without this index each batch would scan the whole table.
-- depends: 0002_store_probe

CREATE INDEX job_events_at ON job_events (at);
